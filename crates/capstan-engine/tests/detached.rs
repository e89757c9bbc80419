//! `capstan build`'s render ([`capstan_engine::round::render_detached`]): without a cluster,
//! charts from a HelmRepository and units of another GitRepository are fetched (through
//! `--source-mirror` from loopback servers) into the same cache as the round's.

use std::path::Path;

use capstan_engine::round::render_detached;
use capstan_engine::sources::Mirrors;
use capstan_testbed::servers::{git, GitDaemon, Repo};
use capstan_units::UnitOutcome;

fn chart_tgz(name: &str, version: &str, template: &str) -> Vec<u8> {
    let files = [
        (
            format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        ),
        (
            format!("{name}/values.yaml"),
            "greeting: hello\n".to_string(),
        ),
        (format!("{name}/templates/cm.yaml"), template.to_string()),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (p, c) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, p, c.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The shape of Flux's public examples (a HelmRepository chart, a second GitRepository,
/// a Bucket), with public URLs pointed at loopback servers by mirrors: every supported
/// unit renders; the Bucket unit fails naming its kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_fetches_helm_charts_and_other_git_repositories_through_mirrors() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    // A Helm repository on loopback.
    let charts = base.join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    let tgz = chart_tgz(
        "podinfo",
        "6.5.0",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    );
    std::fs::write(charts.join("podinfo-6.5.0.tgz"), &tgz).unwrap();
    std::fs::write(
        charts.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  podinfo:\n  - name: podinfo\n    version: 6.5.0\n    digest: {}\n    urls:\n    - podinfo-6.5.0.tgz\n",
            capstan_source::sha256_digest(&tgz).trim_start_matches("sha256:")
        ),
    )
    .unwrap();
    let server = capstan_testbed::servers::static_files(charts, None).await;

    // A second Git repository on loopback.
    let apps = Repo::new(base, "apps");
    git(&apps.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    apps.write("deploy/kustomization.yaml", "resources:\n- cm.yaml\n");
    apps.write(
        "deploy/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-apps-repository\n  namespace: default\n",
    );
    apps.commit("apps");
    apps.run(&["push", "-q", "origin", "HEAD:main"]);
    let daemon = GitDaemon::start(&apps.srv);

    // The fleet repository (a working tree).
    let repo = base.join("fleet");
    write(&repo, "clusters/c/sources.yaml", "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  interval: 10m\n  url: https://stefanprodan.github.io/podinfo\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://github.com/example/apps\n  ref:\n    branch: main\n");
    write(&repo, "clusters/c/podinfo.yaml", "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  interval: 10m\n  targetNamespace: default\n  chart:\n    spec:\n      chart: podinfo\n      version: '>=6.0.0'\n      sourceRef:\n        kind: HelmRepository\n        name: podinfo\n  values:\n    greeting: mirrored\n");
    write(&repo, "clusters/c/apps.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: apps\n");
    write(&repo, "clusters/c/bucket.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: from-bucket\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./\n  prune: true\n  sourceRef:\n    kind: Bucket\n    name: artifacts\n");

    let mirrors = Mirrors::parse(&[
        format!(
            "https://stefanprodan.github.io/podinfo=http://{}",
            server.addr
        ),
        format!("https://github.com/example/apps={}", daemon.url("apps")),
    ])
    .unwrap();
    let render = render_detached(repo, "clusters/c".into(), base.join("cache"), mirrors, None)
        .await
        .unwrap();
    let get = |name: &str| {
        render
            .units
            .units
            .iter()
            .find(|u| u.id().name == name)
            .unwrap_or_else(|| panic!("no unit {name}"))
    };
    let UnitOutcome::Rendered(hr) = get("podinfo") else {
        panic!("podinfo: {:?}", get("podinfo"));
    };
    // Flux names the release <targetNamespace>-<name>.
    assert_eq!(hr.objects[0]["metadata"]["name"], "default-podinfo-cm");
    assert_eq!(hr.objects[0]["data"]["greeting"], "mirrored");
    let UnitOutcome::Rendered(ks) = get("apps") else {
        panic!("apps: {:?}", get("apps"));
    };
    assert_eq!(ks.objects[0]["metadata"]["name"], "from-apps-repository");
    let UnitOutcome::Failed { error, .. } = get("from-bucket") else {
        panic!("the Bucket unit should fail");
    };
    assert!(error.message.contains("Bucket"), "{error}");
    assert_eq!(error.kind, capstan_units::ErrorKind::Source);

    // Without the mirror for the second repository, its unit fails naming the source.
    let mirrors = Mirrors::parse(&[format!(
        "https://stefanprodan.github.io/podinfo=http://{}",
        server.addr
    )])
    .unwrap();
    let repo = base.join("fleet");
    std::fs::remove_file(repo.join("clusters/c/apps.yaml")).unwrap();
    write(&repo, "clusters/c/apps.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: elsewhere\n");
    write(&repo, "clusters/c/elsewhere.yaml", &format!("apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: elsewhere\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: git://127.0.0.1:{}/missing.git\n  ref:\n    branch: main\n", daemon.port));
    let render = render_detached(
        repo,
        "clusters/c".into(),
        base.join("cache2"),
        mirrors,
        None,
    )
    .await
    .unwrap();
    let failed = render
        .units
        .failed()
        .find(|(u, _)| u.id.name == "apps")
        .map(|(_, e)| e.clone())
        .expect("apps fails");
    assert!(
        failed
            .message
            .contains("GitRepository/flux-system/elsewhere"),
        "{failed}"
    );
    assert_eq!(failed.kind, capstan_units::ErrorKind::Source);
    // The chart is still rendered.
    assert!(render.units.rendered().any(|r| r.unit.id.name == "podinfo"));
}
