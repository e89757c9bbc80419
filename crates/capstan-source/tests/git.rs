//! GitRepository fetching against real git servers on loopback.

mod common;

use std::collections::BTreeMap;

use capstan_source::{ErrorKind, GitAuth, GitRepositorySpec, SourceCache};
use common::*;
use serde_json::json;

fn spec(name: &str, url: &str, r: serde_json::Value) -> GitRepositorySpec {
    GitRepositorySpec::from_object(&spec_json(name, url, r)).unwrap()
}

/// main: c1 (v1.0.0) → c2 (v1.1.0, annotated) → c3 (v2.0.0); HEAD = c3.
fn tagged_repo(tmp: &std::path::Path, name: &str) -> (Repo, [String; 3]) {
    let repo = Repo::new(tmp, name);
    repo.write("app/deploy.yaml", "version: 1.0.0\n");
    let c1 = repo.commit("one");
    repo.run(&["tag", "v1.0.0"]);
    repo.write("app/deploy.yaml", "version: 1.1.0\n");
    let c2 = repo.commit("two");
    repo.run(&["tag", "-a", "v1.1.0", "-m", "annotated"]);
    repo.write("app/deploy.yaml", "version: 2.0.0\n");
    let c3 = repo.commit("three");
    repo.run(&["tag", "v2.0.0"]);
    repo.run(&["push", "-q", "origin", "main", "--tags"]);
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    (repo, [c1, c2, c3])
}

fn read(a: &capstan_source::Artifact, p: &str) -> String {
    std::fs::read_to_string(a.path.join(p)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_daemon_branch_tag_semver_commit_and_reuse() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, [c1, c2, c3]) = tagged_repo(tmp.path(), "fleet");
    let daemon = GitDaemon::start(&repo.srv);
    let url = daemon.url("fleet");
    let cache = SourceCache::new(tmp.path().join("cache"));

    // branch
    let a = cache
        .fetch_git(&spec("fleet", &url, json!({"branch": "main"})), None)
        .await
        .unwrap();
    assert_eq!(a.revision, format!("main@sha1:{c3}"));
    assert_eq!(read(&a, "app/deploy.yaml"), "version: 2.0.0\n");
    assert!(a.path.ends_with(&c3), "{}", a.path.display());
    assert!(a.digest.starts_with("sha256:"));
    assert!(!a.path.join(".git").exists());

    // no ref: the remote's HEAD branch
    let d = cache
        .fetch_git(&spec("fleet", &url, json!({})), None)
        .await
        .unwrap();
    assert_eq!(d.revision, format!("main@sha1:{c3}"));

    // lightweight tag
    let t = cache
        .fetch_git(&spec("fleet", &url, json!({"tag": "v1.0.0"})), None)
        .await
        .unwrap();
    assert_eq!(t.revision, format!("v1.0.0@sha1:{c1}"));
    assert_eq!(read(&t, "app/deploy.yaml"), "version: 1.0.0\n");

    // semver over an annotated tag (peeled to the commit)
    let s = cache
        .fetch_git(
            &spec("fleet", &url, json!({"semver": ">=1.0.0 <2.0.0"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.revision, format!("v1.1.0@sha1:{c2}"));
    assert_eq!(read(&s, "app/deploy.yaml"), "version: 1.1.0\n");

    // commit pin, alone and with a branch
    let p = cache
        .fetch_git(&spec("fleet", &url, json!({"commit": c1})), None)
        .await
        .unwrap();
    assert_eq!(p.revision, format!("sha1:{c1}"));
    assert_eq!(p.path, t.path, "same commit, same artifact");
    let pb = cache
        .fetch_git(
            &spec("fleet", &url, json!({"branch": "main", "commit": c2})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(pb.revision, format!("main@sha1:{c2}"));

    // reuse: a second fetch of the same revision writes nothing
    let marker = a.path.join("marker-not-in-git");
    std::fs::write(&marker, "x").unwrap();
    let before = std::fs::metadata(a.path.join("app/deploy.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    let again = cache
        .fetch_git(&spec("fleet", &url, json!({"branch": "main"})), None)
        .await
        .unwrap();
    assert_eq!(again, a);
    assert!(marker.exists(), "artifact was rewritten");
    let after = std::fs::metadata(a.path.join("app/deploy.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    std::fs::remove_file(&marker).unwrap();

    // refs that do not exist
    for r in [
        json!({"branch": "nope"}),
        json!({"tag": "v9.9.9"}),
        json!({"semver": ">=5.0.0"}),
        json!({"commit": "0123456789abcdef0123456789abcdef01234567"}),
    ] {
        let e = cache
            .fetch_git(&spec("fleet", &url, r.clone()), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{r}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("GitRepository flux-system/fleet"), "{msg}");
        assert!(msg.contains(&url), "{msg}");
    }
    // nothing left in the scratch area
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("cache/tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_pushed_branch_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "fp");
    repo.write("a.yaml", "base\n");
    let base = repo.commit("base");
    repo.run(&["checkout", "-q", "-b", "feature"]);
    repo.write("a.yaml", "first\n");
    let first = repo.commit("first");
    repo.run(&["push", "-q", "origin", "main", "feature"]);
    let daemon = GitDaemon::start(&repo.srv);
    let url = daemon.url("fp");
    let cache = SourceCache::new(tmp.path().join("cache"));
    let s = spec("fp", &url, json!({"branch": "feature"}));

    let a = cache.fetch_git(&s, None).await.unwrap();
    assert_eq!(a.revision, format!("feature@sha1:{first}"));

    repo.run(&["reset", "-q", "--hard", &base]);
    repo.write("a.yaml", "rewritten\n");
    let second = repo.commit("rewritten");
    repo.run(&["push", "-q", "--force", "origin", "feature"]);

    let b = cache.fetch_git(&s, None).await.unwrap();
    assert_eq!(b.revision, format!("feature@sha1:{second}"));
    assert_eq!(read(&b, "a.yaml"), "rewritten\n");
    assert_eq!(read(&a, "a.yaml"), "first\n", "old artifact untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_basic_bearer_and_public() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, [_, _, c3]) = tagged_repo(tmp.path(), "app");
    let server = git_http(
        repo.srv.clone(),
        vec![
            ("public", Access::Public),
            ("private", Access::Basic("flux", "s3cr3t-pa55")),
            ("token", Access::Bearer("tok-123456")),
        ],
    )
    .await;
    let base = format!("http://{}", server.addr);
    let strict = SourceCache::new(tmp.path().join("cache"));
    let cache = strict.clone().allow_insecure_http_credentials(true);
    let main = json!({"branch": "main"});

    let a = cache
        .fetch_git(
            &spec("pub", &format!("{base}/public/app.git"), main.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.revision, format!("main@sha1:{c3}"));

    let secret = |pairs: &[(&str, &str)]| -> GitAuth {
        let data: BTreeMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        GitAuth::from_secret_data(&data).unwrap()
    };
    let good = secret(&[("username", "flux"), ("password", "s3cr3t-pa55")]);
    let private = spec("priv", &format!("{base}/private/app.git"), main.clone());
    let b = cache.fetch_git(&private, Some(&good)).await.unwrap();
    assert_eq!(b.revision, format!("main@sha1:{c3}"));
    assert!(
        !format!("{good:?}").contains("s3cr3t"),
        "Debug leaks the password"
    );
    let e = strict.fetch_git(&private, Some(&good)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidAuth, "{e}");

    let bad = secret(&[("username", "flux"), ("password", "wrong-password-42")]);
    let e = cache.fetch_git(&private, Some(&bad)).await.unwrap_err();
    let msg = format!("{e} / {e:?}");
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{msg}");
    assert!(!msg.contains("wrong-password-42"), "{msg}");
    assert!(
        msg.contains("GitRepository flux-system/priv") && msg.contains("/private/app.git"),
        "{msg}"
    );
    assert!(msg.contains("hint"), "{msg}");

    let e = cache.fetch_git(&private, None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");

    let tok = secret(&[("bearerToken", "tok-123456")]);
    let c = cache
        .fetch_git(
            &spec("tok", &format!("{base}/token/app.git"), main.clone()),
            Some(&tok),
        )
        .await
        .unwrap();
    assert_eq!(c.revision, format!("main@sha1:{c3}"));
    assert!(!format!("{tok:?}").contains("tok-123456"));

    // credentials in the URL never reach errors
    let e = cache
        .fetch_git(
            &spec(
                "u",
                &format!(
                    "http://flux:inurl-secret@{}/private/missing.git",
                    server.addr
                ),
                main,
            ),
            None,
        )
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("inurl-secret"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path().join("cache"));
    let port = free_port();
    for url in [
        format!("git://127.0.0.1:{port}/x.git"),
        format!("http://127.0.0.1:{port}/x.git"),
    ] {
        let e = cache
            .fetch_git(&spec("down", &url, json!({"branch": "main"})), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("GitRepository flux-system/down") && msg.contains(&url),
            "{msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_rules_drop_files() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "ign");
    repo.write("apps/app.yaml", "kind: ConfigMap\n");
    repo.write("apps/.sourceignore", "local-only.yaml\n");
    repo.write("apps/local-only.yaml", "x\n");
    repo.write(".github/workflows/ci.yaml", "on: push\n");
    repo.write("docs/logo.png", "png\n");
    repo.write("docs/readme.md", "# hi\n");
    repo.write(".gitignore", "*.tmp\n");
    repo.commit("files");
    repo.run(&["push", "-q", "origin", "main"]);
    let cache = SourceCache::new(tmp.path().join("cache"));
    let url = format!("file://{}", repo.bare.display());

    // a .sourceignore exists, so Flux's default excludes give way to it (VCS excludes stay)
    let a = cache
        .fetch_git(&spec("ign", &url, json!({"branch": "main"})), None)
        .await
        .unwrap();
    assert!(a.path.join("apps/app.yaml").exists());
    assert!(!a.path.join("apps/local-only.yaml").exists());
    assert!(!a.path.join(".gitignore").exists());
    assert!(a.path.join(".github/workflows/ci.yaml").exists());

    let mut s = spec("ign", &url, json!({"branch": "main"}));
    s.ignore = Some("/docs/\n.github/\n".into());
    let b = cache.fetch_git(&s, None).await.unwrap();
    assert_ne!(a.path, b.path, "different ignore rules, different artifact");
    assert_ne!(a.digest, b.digest);
    assert!(!b.path.join("docs").exists());
    assert!(!b.path.join(".github").exists());
    assert!(b.path.join("apps/app.yaml").exists());

    // without any user patterns the defaults apply
    let repo2 = Repo::new(tmp.path(), "ign2");
    repo2.write("a.yaml", "a\n");
    repo2.write("logo.png", "png\n");
    repo2.write(".github/x.yaml", "x\n");
    repo2.commit("files");
    repo2.run(&["push", "-q", "origin", "main"]);
    let c = cache
        .fetch_git(
            &spec(
                "ign2",
                repo2.bare.to_str().unwrap(),
                json!({"branch": "main"}),
            ),
            None,
        )
        .await
        .unwrap();
    assert!(c.path.join("a.yaml").exists());
    assert!(!c.path.join("logo.png").exists());
    assert!(!c.path.join(".github").exists());
}

#[test]
fn spec_parsing() {
    let s = GitRepositorySpec::from_object(&json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "podinfo", "namespace": "flux-system"},
        "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "5m",
                 "ref": {"semver": "6.x"}, "secretRef": {"name": "auth"}, "ignore": "/*\n!/deploy\n"}
    }))
    .unwrap();
    assert_eq!(s.reference.semver.as_deref(), Some("6.x"));
    assert_eq!(s.secret_ref.as_deref(), Some("auth"));
    assert_eq!(s.interval.as_deref(), Some("5m"));
    assert_eq!(s.id(), "GitRepository flux-system/podinfo");
    assert_eq!(
        s.interval_duration(),
        Some(std::time::Duration::from_secs(300))
    );
    assert_eq!(s.timeout_duration(), std::time::Duration::from_secs(60));
    let e =
        GitRepositorySpec::from_object(&json!({"kind": "GitRepository", "metadata": {"name": "x"},
        "spec": {"url": "https://h/x", "interval": "5 minutes"}}))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidSpec);
    let e = GitRepositorySpec::from_object(
        &json!({"kind": "GitRepository", "metadata": {"name": "x"}, "spec": {}}),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidSpec);
    let e =
        GitRepositorySpec::from_object(&json!({"kind": "GitRepository", "metadata": {"name": "x"},
        "spec": {"url": "https://h/x", "ref": {"semver": "not a range"}}}))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidSpec);
}

#[test]
fn ssh_secret_requires_identity_and_known_hosts() {
    let data: BTreeMap<String, Vec<u8>> = [(
        "identity".to_string(),
        b"-----BEGIN KEY-----\nabc\n".to_vec(),
    )]
    .into();
    let auth = GitAuth::from_secret_data(&data).unwrap();
    assert!(!format!("{auth:?}").contains("BEGIN"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path());
    let e = rt
        .block_on(cache.fetch_git(
            &spec(
                "s",
                "ssh://git@127.0.0.1:1/x.git",
                json!({"branch": "main"}),
            ),
            Some(&auth),
        ))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidAuth, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path().join("cache"));
    // accepts connections and never answers
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut s = spec(
        "slow",
        &format!("git://127.0.0.1:{port}/x.git"),
        json!({"branch": "main"}),
    );
    s.timeout = Some("1s".into());
    let start = std::time::Instant::now();
    let e = cache.fetch_git(&s, None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_and_retain() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, [c1, _, c3]) = tagged_repo(tmp.path(), "cc");
    let url = format!("file://{}", repo.bare.display());
    let cache = SourceCache::new(tmp.path().join("cache"));
    let main = spec("cc", &url, json!({"branch": "main"}));
    let old = spec("cc", &url, json!({"tag": "v1.0.0"}));
    let (a, b, c) = tokio::join!(
        cache.fetch_git(&main, None),
        cache.fetch_git(&main, None),
        cache.fetch_git(&old, None)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a, b);
    assert!(a.revision.ends_with(&c3) && c.revision.ends_with(&c1));

    let removed = cache.retain(&[a.path.as_path()]).await.unwrap();
    assert_eq!(removed, vec![c.path.clone()]);
    assert!(a.path.exists() && !c.path.exists());
    // fetching the removed revision again re-materialises it
    let c2 = cache.fetch_git(&old, None).await.unwrap();
    assert_eq!(c2, c);
    assert!(c.path.join("app/deploy.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ref_name_fetches_non_branch_refs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "pr");
    repo.write("a.yaml", "main\n");
    repo.commit("main");
    repo.run(&["push", "-q", "origin", "main"]);
    repo.run(&["checkout", "-q", "-b", "pr-1"]);
    repo.write("a.yaml", "pull request\n");
    let pr = repo.commit("pr");
    repo.run(&["push", "-q", "origin", "HEAD:refs/pull/1/head"]);
    let cache = SourceCache::new(tmp.path().join("cache"));
    let url = format!("file://{}", repo.bare.display());
    let a = cache
        .fetch_git(&spec("pr", &url, json!({"name": "refs/pull/1/head"})), None)
        .await
        .unwrap();
    assert_eq!(a.revision, format!("refs/pull/1/head@sha1:{pr}"));
    assert_eq!(read(&a, "a.yaml"), "pull request\n");
    let b = cache
        .fetch_git(&spec("pr", &url, json!({"name": "refs/heads/main"})), None)
        .await
        .unwrap();
    assert_eq!(read(&b, "a.yaml"), "main\n");
}

/// A symlink that leads outside the repository is kept in the checkout, and reading it
/// through the confined file system the artifact is read with fails naming the link and
/// its target (the working-tree mode's error), instead of the link vanishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_leading_outside_are_kept_and_refused_when_read() {
    use capstan_vfs::{confinement, Confinement, DiskFs, FileSystem};
    use std::path::Path;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside.yaml");
    std::fs::write(&outside, "stolen: outside-secret\n").unwrap();
    let repo = Repo::new(tmp.path(), "links");
    repo.write("apps/app.yaml", "kind: ConfigMap\n");
    let link = |at: &str, target: &str| {
        std::os::unix::fs::symlink(target, repo.work.join(at)).unwrap();
    };
    link("apps/absolute.yaml", outside.to_str().unwrap());
    link("apps/environ", "/proc/self/environ");
    link("apps/climbs.yaml", "../../../../../../../../outside.yaml");
    link("apps/inside.yaml", "app.yaml");
    repo.commit("links");
    repo.run(&["push", "-q", "origin", "main"]);
    let cache = SourceCache::new(tmp.path().join("cache"));
    let url = format!("file://{}", repo.bare.display());
    let a = cache
        .fetch_git(&spec("links", &url, json!({"branch": "main"})), None)
        .await
        .unwrap();
    let fs = DiskFs::new(&a.path).unwrap();
    assert_eq!(
        fs.read_to_string(Path::new("/apps/inside.yaml")).unwrap(),
        "kind: ConfigMap\n"
    );
    for (at, target) in [
        ("/apps/absolute.yaml", outside.to_str().unwrap()),
        ("/apps/environ", "/proc/self/environ"),
        ("/apps/climbs.yaml", "../../../../../../../../outside.yaml"),
    ] {
        let e = fs.read(Path::new(at)).unwrap_err();
        match confinement(&e) {
            Some(Confinement::Escapes {
                link, target: t, ..
            }) => {
                assert_eq!(link, Path::new(at));
                assert_eq!(t, Path::new(target));
            }
            other => panic!("{at}: {other:?}: {e}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(at) && msg.contains(target), "{msg}");
        assert!(!msg.contains("outside-secret"), "{msg}");
        // a tree walk sees the link (as a file that fails to read), not nothing
        assert!(fs.exists(Path::new(at)), "{at}");
    }
}
