//! OCIRepository against a real registry (Debian's `docker-registry`) on loopback.
//! Skips with a message when the binary is absent, unless CAPSTAN_REQUIRE_CLUSTER=1.

mod common;

use capstan_source::{ErrorKind, HttpAuth, OciRepositorySpec, SourceCache};
use common::*;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;

fn artifact_tgz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

async fn push(
    port: u16,
    repo: &str,
    tag: &str,
    files: &[(&str, &str)],
    auth: &RegistryAuth,
) -> String {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference = Reference::with_tag(format!("127.0.0.1:{port}"), repo.into(), tag.into());
    let layer = ImageLayer::new(
        artifact_tgz(files),
        "application/vnd.cncf.flux.content.v1.tar+gzip".into(),
        None,
    );
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.cncf.flux.config.v1+json".into(),
        None,
    );
    client
        .push(&reference, &[layer], config, auth, None)
        .await
        .expect("push")
        .manifest_url
}

fn spec(port: u16, repo: &str, r: serde_json::Value) -> OciRepositorySpec {
    OciRepositorySpec::from_object(&json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "manifests", "namespace": "flux-system"},
        "spec": {"url": format!("oci://127.0.0.1:{port}/{repo}"), "interval": "5m", "insecure": true, "ref": r}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_tags_semver_digest_and_cache() {
    if !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path(), None);
    let anon = RegistryAuth::Anonymous;
    for (tag, v) in [
        ("v1.0.0", "1.0.0"),
        ("v1.1.0", "1.1.0"),
        ("v2.0.0", "2.0.0"),
        ("latest", "latest"),
    ] {
        push(
            reg.port,
            "fleet/manifests",
            tag,
            &[
                ("apps/app.yaml", &format!("version: {v}\n")),
                ("logo.png", "png"),
            ],
            &anon,
        )
        .await;
    }
    let cache = SourceCache::new(tmp.path().join("cache"));

    let a = cache
        .fetch_oci(
            &spec(reg.port, "fleet/manifests", json!({"tag": "v1.0.0"})),
            None,
        )
        .await
        .unwrap();
    assert!(a.revision.starts_with("v1.0.0@sha256:"), "{}", a.revision);
    assert_eq!(
        std::fs::read_to_string(a.path.join("apps/app.yaml")).unwrap(),
        "version: 1.0.0\n"
    );
    assert!(!a.path.join("logo.png").exists(), "default excludes apply");

    let s = cache
        .fetch_oci(
            &spec(
                reg.port,
                "fleet/manifests",
                json!({"semver": ">=1.0.0 <2.0.0"}),
            ),
            None,
        )
        .await
        .unwrap();
    assert!(s.revision.starts_with("v1.1.0@sha256:"), "{}", s.revision);
    assert_eq!(
        std::fs::read_to_string(s.path.join("apps/app.yaml")).unwrap(),
        "version: 1.1.0\n"
    );

    let l = cache
        .fetch_oci(&spec(reg.port, "fleet/manifests", json!({})), None)
        .await
        .unwrap();
    assert!(l.revision.starts_with("latest@sha256:"), "{}", l.revision);

    let digest = s.revision.split_once('@').unwrap().1.to_string();
    let d = cache
        .fetch_oci(
            &spec(reg.port, "fleet/manifests", json!({"digest": digest})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(d.revision, digest);
    assert_eq!(d.path, s.path);

    // reuse: nothing rewritten
    let marker = s.path.join("marker");
    std::fs::write(&marker, "x").unwrap();
    let again = cache
        .fetch_oci(
            &spec(reg.port, "fleet/manifests", json!({"tag": "v1.1.0"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(again, s);
    assert!(marker.exists());

    let e = cache
        .fetch_oci(
            &spec(reg.port, "fleet/manifests", json!({"tag": "v9"})),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string()
            .contains("OCIRepository flux-system/manifests"),
        "{e}"
    );
    let e = cache
        .fetch_oci(
            &spec(reg.port, "fleet/manifests", json!({"semver": ">=3"})),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let e = cache
        .fetch_oci(&spec(free_port(), "x", json!({"tag": "v1"})), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_basic_auth() {
    if !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path(), Some(("flux", "reg-pass-99")));
    let auth = RegistryAuth::Basic("flux".into(), "reg-pass-99".into());
    push(
        reg.port,
        "private/app",
        "v1.0.0",
        &[("a.yaml", "a: 1\n")],
        &auth,
    )
    .await;
    let cache = SourceCache::new(tmp.path().join("cache"));
    let s = spec(reg.port, "private/app", json!({"tag": "v1.0.0"}));

    let good = HttpAuth {
        username: Some("flux".into()),
        password: Some("reg-pass-99".into()),
        ..Default::default()
    };
    let a = cache.fetch_oci(&s, Some(&good)).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(a.path.join("a.yaml")).unwrap(),
        "a: 1\n"
    );

    let bad = HttpAuth {
        username: Some("flux".into()),
        password: Some("wrong-reg-pass".into()),
        ..Default::default()
    };
    let s2 = spec(reg.port, "private/app", json!({"tag": "v1.0.0"}));
    let e = SourceCache::new(tmp.path().join("cache2"))
        .fetch_oci(&s2, Some(&bad))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");
    assert!(!e.to_string().contains("wrong-reg-pass"), "{e}");

    // .dockerconfigjson secrets
    let cfg = format!(
        r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"{}"}}}}}}"#,
        reg.port,
        b64(b"flux:reg-pass-99")
    );
    let data = [(".dockerconfigjson".to_string(), cfg.into_bytes())]
        .into_iter()
        .collect();
    let dc = HttpAuth::from_secret_data(&data).unwrap();
    let b = SourceCache::new(tmp.path().join("cache3"))
        .fetch_oci(&s, Some(&dc))
        .await
        .unwrap();
    assert_eq!(b.digest, a.digest);
}
