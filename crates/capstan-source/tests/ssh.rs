//! GitRepository over ssh against a real `sshd` on loopback (identity +
//! known_hosts from the Secret). Skips when sshd is not installed
//! (`apt-get install -y openssh-server`); CAPSTAN_REQUIRE_SSHD=1 makes that a failure.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use capstan_source::{ErrorKind, GitAuth, GitRepositorySpec, SourceCache};
use common::*;
use serde_json::json;

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn available() -> bool {
    let ok = Path::new(SSHD).exists()
        && Command::new("ssh-keygen").arg("-?").output().is_ok()
        && (Path::new("/run/sshd").is_dir() || std::fs::create_dir_all("/run/sshd").is_ok());
    if !ok {
        if std::env::var("CAPSTAN_REQUIRE_SSHD").as_deref() == Ok("1") {
            panic!("sshd/ssh-keygen missing (apt-get install -y openssh-server) and CAPSTAN_REQUIRE_SSHD=1");
        }
        eprintln!("SKIP: sshd not installed (apt-get install -y openssh-server)");
    }
    ok
}

fn start_sshd(dir: &Path) -> Sshd {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let cfg = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\nLogLevel ERROR\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), cfg).unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    wait_port(port);
    Sshd { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_identity_and_known_hosts() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let sshd = start_sshd(&keys);
    let repo = Repo::new(tmp.path(), "ssh");
    repo.write("deploy/app.yaml", "kind: Deployment\n");
    let c = repo.commit("one");
    repo.run(&["push", "-q", "origin", "main"]);

    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user.trim(),
        sshd.port,
        repo.bare.display()
    );
    let host_pub = std::fs::read_to_string(keys.join("host_key.pub")).unwrap();
    let known_hosts = format!("[127.0.0.1]:{} {}", sshd.port, host_pub.trim());
    let identity = std::fs::read(keys.join("client_key")).unwrap();
    let secret = |kh: &str| {
        GitAuth::from_secret_data(
            &[
                ("identity".to_string(), identity.clone()),
                ("known_hosts".to_string(), kh.as_bytes().to_vec()),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap()
    };
    let spec =
        GitRepositorySpec::from_object(&spec_json("ssh", &url, json!({"branch": "main"}))).unwrap();
    let cache = SourceCache::new(tmp.path().join("cache"));

    let a = cache
        .fetch_git(&spec, Some(&secret(&known_hosts)))
        .await
        .unwrap();
    assert_eq!(a.revision, format!("main@sha1:{c}"));
    assert!(a.path.join("deploy/app.yaml").exists());
    // the identity was written to a private scratch file and removed
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("cache/tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // a known_hosts that does not list the server's key is refused
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    keygen(&other.join("k"));
    let wrong = format!(
        "[127.0.0.1]:{} {}",
        sshd.port,
        std::fs::read_to_string(other.join("k.pub")).unwrap().trim()
    );
    let e = cache
        .fetch_git(&spec, Some(&secret(&wrong)))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");
    assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
    assert!(
        e.to_string().contains("Host key verification failed"),
        "{e}"
    );

    // a key the server does not accept
    keygen(&other.join("stranger"));
    let stranger = GitAuth {
        identity: Some(std::fs::read(other.join("stranger")).unwrap()),
        known_hosts: Some(known_hosts.clone().into_bytes()),
        ..Default::default()
    };
    let e = cache.fetch_git(&spec, Some(&stranger)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");

    // an encrypted identity: `password` in the Secret is its passphrase
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "key-phrase-31", "-f"])
        .arg(other.join("enc"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut ak = std::fs::read_to_string(keys.join("authorized_keys")).unwrap();
    ak.push_str(&std::fs::read_to_string(other.join("enc.pub")).unwrap());
    std::fs::write(keys.join("authorized_keys"), ak).unwrap();
    let mut enc = GitAuth {
        identity: Some(std::fs::read(other.join("enc")).unwrap()),
        known_hosts: Some(known_hosts.clone().into_bytes()),
        password: Some("key-phrase-31".into()),
        ..Default::default()
    };
    let b = cache.fetch_git(&spec, Some(&enc)).await.unwrap();
    assert_eq!(b.revision, a.revision);
    enc.password = Some("not-the-phrase".into());
    let e = cache.fetch_git(&spec, Some(&enc)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");
    assert!(!e.to_string().contains("not-the-phrase"), "{e}");
    enc.password = None;
    let e = cache.fetch_git(&spec, Some(&enc)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");

    // no secret at all: unknown host key, no prompt
    let e = cache.fetch_git(&spec, None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");
}
