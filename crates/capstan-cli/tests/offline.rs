//! `capstan build` fetches every source kind a unit names (a HelmRepository over HTTP, a
//! Helm OCI repository, another GitRepository) through `--source-mirror` from loopback
//! servers; `--offline` renders the same from the cache once the servers are gone, and
//! names each source missing from an empty cache. A source that cannot be fetched fails
//! only the units that use it, naming the source, its URL without credentials and the
//! cause; an ExternalArtifact (from an ArtifactGenerator) is refused by name while the
//! other units render. Credentials for a source's `secretRef` come from
//! `--source-secret` / `$CAPSTAN_SOURCE_SECRETS` without a cluster.

use std::path::Path;
use std::process::{Command, Output};

use capstan_testbed::servers::{
    free_port, git, registry_available, start_registry, static_files, GitDaemon, Repo,
};

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs capstan off the runtime's workers (the loopback servers run on them).
async fn capstan(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(&args)
            .env_remove("CAPSTAN_SOURCE_SECRETS")
            .envs(env)
            .output()
            .expect("run capstan")
    })
    .await
    .unwrap()
}

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

/// `helm push`: the chart as an OCI artifact with Helm's media types.
async fn push_chart(port: u16, repository: &str, version: &str, tgz: Vec<u8>) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference = oci_client::Reference::with_tag(
        format!("127.0.0.1:{port}"),
        repository.into(),
        version.into(),
    );
    let layer = ImageLayer::new(
        tgz,
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
        None,
    );
    let config = Config::new(
        format!("{{\"name\":\"redis\",\"version\":\"{version}\"}}").into_bytes(),
        "application/vnd.cncf.helm.config.v1+json".into(),
        None,
    );
    client
        .push(
            &reference,
            &[layer],
            config,
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .expect("push the chart");
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n";

fn helm_release(name: &str, chart: &str, version: &str, repo: &str) -> String {
    format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  targetNamespace: default\n  chart:\n    spec:\n      chart: {chart}\n      version: '{version}'\n      sourceRef:\n        kind: HelmRepository\n        name: {repo}\n  values:\n    greeting: from-{name}\n")
}

fn kustomization(name: &str, path: &str, kind: &str, source: &str) -> String {
    format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: {kind}\n    name: {source}\n")
}

/// The shape of Flux's public example repositories (flux2-kustomize-helm-example and
/// friends): charts from an HTTP Helm repository (with credentials) and an OCI one, a
/// second GitRepository, and a Flux 2.7 ArtifactGenerator with the ExternalArtifact unit
/// it feeds. Public URLs reach loopback servers through `--source-mirror`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_fetches_every_source_kind_and_renders_offline_from_the_cache() {
    if !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    // An HTTP Helm repository that wants basic auth.
    let www = base.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let podinfo = chart_tgz("podinfo", "6.5.0", CM);
    std::fs::write(www.join("podinfo-6.5.0.tgz"), &podinfo).unwrap();
    std::fs::write(
        www.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  podinfo:\n  - name: podinfo\n    version: 6.5.0\n    digest: {}\n    urls:\n    - podinfo-6.5.0.tgz\n",
            capstan_source::sha256_digest(&podinfo).trim_start_matches("sha256:")
        ),
    )
    .unwrap();
    let helm = static_files(www, Some(("helm", "chart-pass"))).await;

    // A Helm OCI repository.
    let reg_dir = base.join("registry");
    std::fs::create_dir_all(&reg_dir).unwrap();
    let registry = start_registry(&reg_dir, None);
    push_chart(
        registry.port,
        "mirror/charts/redis",
        "1.2.3",
        chart_tgz("redis", "1.2.3", CM),
    )
    .await;

    // Another Git repository.
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

    // The fleet: clusters/c has the supported units; clusters/mixed adds an
    // ExternalArtifact unit and a GitRepository whose server is down.
    let fleet = base.join("fleet");
    let sources = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  interval: 10m\n  url: https://stefanprodan.github.io/podinfo\n  secretRef:\n    name: podinfo-auth\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: flux-system\nspec:\n  interval: 10m\n  type: oci\n  url: oci://ghcr.io/example/charts\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://github.com/example/apps\n  ref:\n    branch: main\n";
    for dir in ["clusters/c", "clusters/mixed"] {
        write(&fleet, &format!("{dir}/sources.yaml"), sources);
        write(
            &fleet,
            &format!("{dir}/podinfo.yaml"),
            &helm_release("podinfo", "podinfo", ">=6.0.0", "podinfo"),
        );
        write(
            &fleet,
            &format!("{dir}/redis.yaml"),
            &helm_release("redis", "redis", "1.2.3", "charts"),
        );
        write(
            &fleet,
            &format!("{dir}/apps.yaml"),
            &kustomization("apps", "./deploy", "GitRepository", "apps"),
        );
        write(
            &fleet,
            &format!("{dir}/local.yaml"),
            &kustomization("local", "./local", "GitRepository", "flux-system"),
        );
    }
    write(
        &fleet,
        "local/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-this-repository\n  namespace: default\n",
    );
    let down = free_port();
    write(&fleet, "clusters/mixed/more.yaml", &format!("apiVersion: source.extensions.fluxcd.io/v1beta1\nkind: ArtifactGenerator\nmetadata:\n  name: composed\n  namespace: flux-system\nspec:\n  sources:\n  - alias: base\n    kind: GitRepository\n    name: apps\n  artifacts:\n  - name: generated\n    copy:\n    - from: '@base/deploy/**'\n      to: '@artifact/'\n---\n{}---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: private\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: http://bot:s3cr3t@127.0.0.1:{down}/private.git\n  ref:\n    branch: main\n---\n{}",
        kustomization("generated", "./", "ExternalArtifact", "generated"),
        kustomization("private", "./", "GitRepository", "private")));
    let creds = base.join("creds.yaml");
    write(base, "creds.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: podinfo-auth\n  namespace: flux-system\nstringData:\n  username: helm\n  password: chart-pass\n");

    let fleet_arg = fleet.to_str().unwrap().to_string();
    let mirrors = [
        format!(
            "https://stefanprodan.github.io/podinfo=http://{}",
            helm.addr
        ),
        format!(
            "oci://ghcr.io/example/charts=http://127.0.0.1:{}/mirror/charts",
            registry.port
        ),
        format!("https://github.com/example/apps={}", daemon.url("apps")),
    ];
    let build = |path: &str, cache: &Path, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "build".into(),
            fleet_arg.clone(),
            "--path".into(),
            path.into(),
            "--cache-dir".into(),
            cache.to_str().unwrap().into(),
        ];
        for m in &mirrors {
            args.push("--source-mirror".into());
            args.push(m.clone());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let cache = base.join("cache");

    // Without credentials the HTTP repository refuses: that unit fails naming the Secret.
    let out = capstan(build("clusters/c", &cache, &[]), vec![]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Secret flux-system/podinfo-auth") && stderr.contains("--source-secret"),
        "{stderr}"
    );

    // Online, credentials from $CAPSTAN_SOURCE_SECRETS: every unit renders.
    let out = capstan(
        build("clusters/c", &cache, &[]),
        vec![(
            "CAPSTAN_SOURCE_SECRETS",
            creds.to_str().unwrap().to_string(),
        )],
    )
    .await;
    let (online, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for name in [
        "default-podinfo-cm",
        "default-redis-cm",
        "from-apps-repository",
        "from-this-repository",
    ] {
        assert!(
            online.contains(&format!("name: {name}")),
            "{name}:\n{online}"
        );
    }
    assert!(online.contains("greeting: from-redis"), "{online}");

    // The shape of the public repositories: the ExternalArtifact unit is refused naming
    // the kind and what is unsupported; the unreachable source fails its unit only,
    // naming the source, its URL without credentials and the cause; the rest renders.
    let out = capstan(
        build(
            "clusters/mixed",
            &cache,
            &["--keep-going", "--source-secret", creds.to_str().unwrap()],
        ),
        vec![],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ExternalArtifact") && stderr.contains("ArtifactGenerator"),
        "{stderr}"
    );
    assert!(
        stderr.contains("GitRepository flux-system/private")
            && stderr.contains(&format!("http://127.0.0.1:{down}/private.git"))
            && !stderr.contains("s3cr3t"),
        "{stderr}"
    );
    for name in [
        "default-podinfo-cm",
        "default-redis-cm",
        "from-apps-repository",
        "from-this-repository",
    ] {
        assert!(
            stdout.contains(&format!("name: {name}")),
            "{name}:\n{stdout}"
        );
    }

    // The servers go away: --offline renders the same from the cache.
    drop(helm);
    drop(registry);
    drop(daemon);
    let out = capstan(build("clusters/c", &cache, &["--offline"]), vec![]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), online);

    // An empty cache: each missing source is named with its URL and reference.
    let out = capstan(
        build("clusters/c", &base.join("empty"), &["--offline"]),
        vec![],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    for needle in [
        "HelmRepository flux-system/podinfo: not in the cache",
        "chart \"podinfo\" version \">=6.0.0\"",
        "HelmRepository flux-system/charts: not in the cache",
        "/mirror/charts/redis",
        "GitRepository flux-system/apps: not in the cache",
        "/apps.git",
        "branch \"main\"",
    ] {
        assert!(stderr.contains(needle), "{needle}:\n{stderr}");
    }
}

/// One unit's plan error (a `dependsOn` naming no unit, a dependency cycle) is that
/// unit's error: the build reports each unit on its own and exits 2; every unit still
/// renders (`--keep-going` prints them), the others without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_reports_plan_errors_per_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path();
    let with_deps = |name: &str, deps: &[&str]| {
        let mut k = kustomization(name, &format!("./{name}"), "GitRepository", "flux-system");
        k.push_str("  dependsOn:\n");
        for d in deps {
            k.push_str(&format!("  - name: {d}\n"));
        }
        k
    };
    write(
        fleet,
        "clusters/c/ok.yaml",
        &kustomization("ok", "./ok", "GitRepository", "flux-system"),
    );
    write(fleet, "clusters/c/typo.yaml", &with_deps("typo", &["nope"]));
    write(fleet, "clusters/c/a.yaml", &with_deps("a", &["b"]));
    write(fleet, "clusters/c/b.yaml", &with_deps("b", &["a"]));
    for name in ["ok", "typo", "a", "b"] {
        write(fleet, &format!("{name}/cm.yaml"), &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{name}\n  namespace: default\n"));
    }
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "build".into(),
            fleet.to_str().unwrap().into(),
            "--cluster".into(),
            "c".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let out = capstan(args(&[]), vec![]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("error: Kustomization/flux-system/typo:")
            && stderr.contains("Kustomization/flux-system/nope, which does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: Kustomization/flux-system/a:")
            && stderr.contains("error: Kustomization/flux-system/b:")
            && stderr.contains("cycle"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Kustomization/flux-system/ok:"),
        "{stderr}"
    );
    let out = capstan(args(&["--keep-going"]), vec![]).await;
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    for name in ["ok", "typo", "a", "b"] {
        assert!(
            stdout.contains(&format!("name: cm-{name}")),
            "{name}:\n{stdout}"
        );
    }
}
