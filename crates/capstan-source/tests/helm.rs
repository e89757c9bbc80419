//! Helm HTTP repository: index.yaml + chart .tgz served on loopback.

mod common;

use std::collections::BTreeMap;

use capstan_source::{sha256_digest, ErrorKind, HelmRepositorySpec, HttpAuth, SourceCache};
use common::*;
use serde_json::json;

fn chart_tgz(name: &str, version: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, body) in [
        (
            format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        ),
        (format!("{name}/values.yaml"), "replicas: 1\n".to_string()),
        (
            format!("{name}/templates/cm.yaml"),
            "kind: ConfigMap\n".to_string(),
        ),
    ] {
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

fn repo_spec(url: &str) -> HelmRepositorySpec {
    HelmRepositorySpec::from_object(&json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": "flux-system"},
        "spec": {"url": url, "interval": "10m"}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_index_semver_download_and_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(www.join("charts")).unwrap();
    let mut index = String::from("apiVersion: v1\nentries:\n  podinfo:\n");
    let mut digests = BTreeMap::new();
    for v in ["1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0"] {
        let data = chart_tgz("podinfo", v);
        let d = sha256_digest(&data);
        std::fs::write(www.join(format!("charts/podinfo-{v}.tgz")), &data).unwrap();
        index.push_str(&format!(
            "  - name: podinfo\n    version: {v}\n    digest: {}\n    urls:\n    - charts/podinfo-{v}.tgz\n",
            d.trim_start_matches("sha256:")
        ));
        digests.insert(v, d);
    }
    std::fs::write(www.join("index.yaml"), &index).unwrap();
    let server = static_files(www.clone(), Some(("helm", "chart-pass"))).await;
    let url = format!("http://{}/", server.addr);
    let cache = SourceCache::new(tmp.path().join("cache"));
    let auth = HttpAuth::from_secret_data(
        &[("username", "helm"), ("password", "chart-pass")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
    )
    .unwrap();
    let repo = repo_spec(&url);

    let a = cache
        .fetch_helm_chart(&repo, "podinfo", ">=1.0.0 <2.0.0", Some(&auth))
        .await
        .unwrap();
    assert_eq!(a.revision, "1.2.0");
    assert_eq!(a.digest, digests["1.2.0"]);
    assert_eq!(sha256_digest(&std::fs::read(&a.path).unwrap()), a.digest);

    let latest = cache
        .fetch_helm_chart(&repo, "podinfo", "", Some(&auth))
        .await
        .unwrap();
    assert_eq!(latest.revision, "2.0.0");
    let exact = cache
        .fetch_helm_chart(&repo, "podinfo", "1.3.0-rc.1", Some(&auth))
        .await
        .unwrap();
    assert_eq!(exact.revision, "1.3.0-rc.1");

    // cached by digest: the chart file is not downloaded again
    std::fs::remove_file(www.join("charts/podinfo-1.2.0.tgz")).unwrap();
    let again = cache
        .fetch_helm_chart(&repo, "podinfo", "~1.2", Some(&auth))
        .await
        .unwrap();
    assert_eq!(again, a);

    // errors
    let e = cache
        .fetch_helm_chart(&repo, "podinfo", ">=3", Some(&auth))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let e = cache
        .fetch_helm_chart(&repo, "nginx", "*", Some(&auth))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let bad = HttpAuth {
        username: Some("helm".into()),
        password: Some("bad-pass-77".into()),
        ..Default::default()
    };
    let e = cache
        .fetch_helm_chart(&repo, "podinfo", "*", Some(&bad))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{e}");
    assert!(!format!("{e:?} {bad:?}").contains("bad-pass-77"));
    assert!(
        e.to_string().contains("HelmRepository flux-system/charts"),
        "{e}"
    );
    let down = repo_spec(&format!("http://127.0.0.1:{}/", free_port()));
    let e = cache
        .fetch_helm_chart(&down, "podinfo", "*", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
}

/// Offline (`SourceCache::offline`): a chart fetched before is served from the cache
/// after its server is gone, by the same repository URL, chart and version; anything
/// else is `NotCached`, naming the repository, its URL (credentials removed) and the chart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_fetches_answer_from_the_cache_only() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let data = chart_tgz("podinfo", "6.5.0");
    std::fs::write(www.join("podinfo-6.5.0.tgz"), &data).unwrap();
    std::fs::write(
        www.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  podinfo:\n  - name: podinfo\n    version: 6.5.0\n    digest: {}\n    urls:\n    - podinfo-6.5.0.tgz\n",
            sha256_digest(&data).trim_start_matches("sha256:")
        ),
    )
    .unwrap();
    let server = static_files(www, None).await;
    let url = format!("http://user:hunter2@{}/", server.addr);
    let root = tmp.path().join("cache");
    let online = SourceCache::new(&root);
    let a = online
        .fetch_helm_chart(&repo_spec(&url), "podinfo", ">=6.0.0", None)
        .await
        .unwrap();
    drop(server);
    let offline = SourceCache::new(&root).offline(true);
    assert!(offline.is_offline());
    let b = offline
        .fetch_helm_chart(&repo_spec(&url), "podinfo", ">=6.0.0", None)
        .await
        .unwrap();
    assert_eq!(a, b);
    let e = offline
        .fetch_helm_chart(&repo_spec(&url), "podinfo", "6.4.0", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotCached);
    let shown = e.to_string();
    assert!(
        shown.contains("HelmRepository flux-system/charts")
            && shown.contains(&format!(
                "http://{}",
                url.rsplit('@').next().unwrap().trim_end_matches('/')
            ))
            && shown.contains("chart \"podinfo\" version \"6.4.0\"")
            && !shown.contains("hunter2"),
        "{shown}"
    );
    // An empty cache has nothing.
    let e = SourceCache::new(tmp.path().join("empty"))
        .offline(true)
        .fetch_helm_chart(&repo_spec(&url), "podinfo", ">=6.0.0", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotCached);
}
