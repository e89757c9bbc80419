//! HelmReleases end to end against the test bed: charts from a loopback Helm HTTP
//! repository (index.yaml + .tgz), installed, upgraded and pruned; charts cached by
//! digest; hooks in phases around the apply; `lookup` and Capabilities from the cluster;
//! a release that fails to render applies nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_apply::{Applier, ApplyOptions, UnitRef, UnitResult};
use capstan_engine::{
    execute, render_cluster_with, ApplyDriver, ClusterRender, ExecuteOptions, Execution,
    KubeLookup, LiveRenderer, UnitStatus,
};
use capstan_graph::UnitId;
use capstan_source::SourceCache;
use capstan_testbed::TestCluster;
use capstan_units::LoadOptions;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("capstan-helm-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A chart archive as `helm package` lays it out (`<name>/Chart.yaml`, ...).
fn chart_tgz(name: &str, version: &str, templates: &[(&str, &str)]) -> Vec<u8> {
    let mut files: Vec<(String, String)> = vec![(
        format!("{name}/Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )];
    files.push((format!("{name}/values.yaml"), "greeting: hello\n".into()));
    for (p, c) in templates {
        files.push((format!("{name}/templates/{p}"), c.to_string()));
    }
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

/// A Helm repository directory: charts written next to an index listing them all.
struct HelmRepoDir {
    root: PathBuf,
    entries: Vec<(String, String, String)>,
}

impl HelmRepoDir {
    fn new(root: PathBuf) -> Self {
        std::fs::create_dir_all(&root).unwrap();
        HelmRepoDir {
            root,
            entries: Vec::new(),
        }
    }
    fn publish(&mut self, name: &str, version: &str, templates: &[(&str, &str)]) -> PathBuf {
        let data = chart_tgz(name, version, templates);
        let file = format!("{name}-{version}.tgz");
        std::fs::write(self.root.join(&file), &data).unwrap();
        self.entries.push((
            name.into(),
            version.into(),
            capstan_source::sha256_digest(&data),
        ));
        let mut index = String::from("apiVersion: v1\nentries:\n");
        let mut names: Vec<&str> = self.entries.iter().map(|e| e.0.as_str()).collect();
        names.dedup();
        for n in names {
            index.push_str(&format!("  {n}:\n"));
            for (_, v, d) in self.entries.iter().filter(|e| e.0 == n) {
                index.push_str(&format!(
                    "  - name: {n}\n    version: {v}\n    digest: {}\n    urls:\n    - {n}-{v}.tgz\n",
                    d.trim_start_matches("sha256:")
                ));
            }
        }
        std::fs::write(self.root.join("index.yaml"), index).unwrap();
        self.root.join(file)
    }
}

fn api(
    client: &kube::Client,
    group: &str,
    kind: &str,
    plural: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let (version, api_version) = match group {
        "" => ("v1", "v1".to_string()),
        g => ("v1", format!("{g}/v1")),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn create_namespace(client: &kube::Client, ns: &str) {
    let ar = ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Namespace".into(),
        plural: "namespaces".into(),
    };
    let nss: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let obj: DynamicObject = serde_json::from_value(
        json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}}),
    )
    .unwrap();
    let _ = nss.create(&PostParams::default(), &obj).await;
}

fn helm_repository(ns: &str, url: &str) -> String {
    format!("apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: {ns}\nspec:\n  interval: 10m\n  url: {url}\n")
}

fn helm_release(ns: &str, name: &str, chart: &str, version: &str, values: &str) -> String {
    format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  interval: 10m\n  timeout: 60s\n  chart:\n    spec:\n      chart: {chart}\n      version: \"{version}\"\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n  values:\n{values}")
}

struct Env {
    client: kube::Client,
    renderer: LiveRenderer,
    repo: PathBuf,
    root_name: String,
}

impl Env {
    fn render(&self) -> ClusterRender {
        let fs = capstan_vfs::DiskFs::new(&self.repo).unwrap();
        let mut opts = LoadOptions::new("clusters/test");
        opts.root_name = self.root_name.clone();
        render_cluster_with(
            &fs,
            &self.renderer,
            &KubeLookup::new(self.client.clone()),
            &opts,
        )
    }

    async fn apply(&self) -> Execution<UnitResult> {
        let render = self.render();
        assert!(render.units.errors.is_empty(), "{:?}", render.units.errors);
        let applier = Applier::new(self.client.clone());
        execute(
            &ApplyDriver {
                applier: &applier,
                options: ApplyOptions::default(),
            },
            &render,
            &ExecuteOptions::default(),
        )
        .await
        .unwrap()
    }

    fn write(&self, path: &str, content: &str) {
        let p = self.repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

async fn cm_data(client: &kube::Client, ns: &str, name: &str) -> Option<Value> {
    api(client, "", "ConfigMap", "configmaps", ns)
        .get_opt(name)
        .await
        .unwrap()
        .map(|o| o.data["data"].clone())
}

const WEB_CM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
  version: {{ .Chart.Version | quote }}
  kubeMinor: {{ .Capabilities.KubeVersion.Minor | quote }}
  hasApps: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}
  seed: {{ dig "data" "value" "none" (lookup "v1" "ConfigMap" .Release.Namespace "seed") | quote }}
"#;

const WEB_EXTRA: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
data:
  a: b
"#;

const WEB_KEPT: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-kept
  annotations:
    helm.sh/resource-policy: keep
data:
  a: b
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_repository_charts_install_upgrade_and_prune() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let base = tmp("repo");
    let ns = format!("h2-helm-{}", std::process::id());
    create_namespace(&client, &ns).await;
    // lookup reads this from the cluster while rendering.
    let seed: DynamicObject = serde_json::from_value(
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seed","namespace":ns},"data":{"value":"from-cluster"}}),
    )
    .unwrap();
    api(&client, "", "ConfigMap", "configmaps", &ns)
        .create(&PostParams::default(), &seed)
        .await
        .unwrap();

    let mut charts = HelmRepoDir::new(base.join("charts"));
    charts.publish(
        "web",
        "1.0.0",
        &[
            ("cm.yaml", WEB_CM),
            ("extra.yaml", WEB_EXTRA),
            ("kept.yaml", WEB_KEPT),
        ],
    );
    let server = capstan_testbed::servers::static_files(base.join("charts"), None).await;
    let url = format!("http://{}/", server.addr);

    let cache = base.join("cache");
    let env = Env {
        renderer: LiveRenderer::connect(client.clone(), SourceCache::new(&cache))
            .await
            .unwrap(),
        client: client.clone(),
        repo: base.join("git"),
        root_name: format!("h2-helm-{}", std::process::id()),
    };
    env.write("clusters/test/repo.yaml", &helm_repository(&ns, &url));
    env.write(
        "clusters/test/web.yaml",
        &helm_release(&ns, "web", "web", "1.x", "    greeting: hi\n"),
    );
    // A release whose chart version does not exist: it fails to render, nothing of it
    // is applied, and the others still are.
    env.write(
        "clusters/test/broken.yaml",
        &helm_release(&ns, "broken", "web", "9.9.9", "    greeting: x\n"),
    );

    let ex = env.apply().await;
    let web = UnitId::new("HelmRelease", &ns, "web");
    let broken = UnitId::new("HelmRelease", &ns, "broken");
    assert!(ex.status[&web].is_ok(), "{:#?}", ex.status);
    assert!(
        matches!(&ex.status[&broken], UnitStatus::Blocked(m) if m.contains("failed to render") && m.contains("9.9.9")),
        "{:?}",
        ex.status[&broken]
    );
    assert!(cm_data(&client, &ns, "broken-config").await.is_none());
    assert!(cm_data(&client, &ns, "broken-extra").await.is_none());

    let d = cm_data(&client, &ns, "web-config").await.unwrap();
    assert_eq!(d["greeting"], "hi");
    assert_eq!(d["version"], "1.0.0");
    assert_eq!(
        d["kubeMinor"], "20",
        "Capabilities come from the test bed's kube-apiserver 1.20"
    );
    assert_eq!(d["hasApps"], "true");
    assert_eq!(d["seed"], "from-cluster", "lookup answered by the cluster");
    assert!(cm_data(&client, &ns, "web-extra").await.is_some());

    // Offline (NativeRenderer): a clear error instead of a download.
    let fs = capstan_vfs::DiskFs::new(&env.repo).unwrap();
    let mut opts = LoadOptions::new("clusters/test");
    opts.root_name = env.root_name.clone();
    let offline = capstan_engine::render_cluster(&fs, &capstan_units::NoCluster, &opts);
    let (_, err) = offline
        .units
        .failed()
        .find(|(u, _)| u.id == web)
        .expect("web fails offline");
    assert!(err.message.contains("fetched by the agent"), "{err}");

    // Upgrade: new chart version without the extra template, new values.
    charts.publish("web", "2.0.0", &[("cm.yaml", WEB_CM)]);
    std::fs::remove_file(env.repo.join("clusters/test/broken.yaml")).unwrap();
    env.write(
        "clusters/test/web.yaml",
        &helm_release(&ns, "web", "web", "2.0.0", "    greeting: bonjour\n"),
    );
    let ex = env.apply().await;
    assert!(ex.all_ok(), "{:#?}", ex.status);
    let d = cm_data(&client, &ns, "web-config").await.unwrap();
    assert_eq!(d["greeting"], "bonjour");
    assert_eq!(d["version"], "2.0.0");
    assert!(
        cm_data(&client, &ns, "web-extra").await.is_none(),
        "the template the new chart version removed is pruned"
    );
    assert!(
        cm_data(&client, &ns, "web-kept").await.is_some(),
        "helm.sh/resource-policy: keep is never pruned"
    );

    // Cached by digest: with the archive gone from the server, rendering still works
    // (only index.yaml is read again).
    std::fs::remove_file(charts.root.join("web-2.0.0.tgz")).unwrap();
    let render = env.render();
    assert!(
        render.units.failed().next().is_none(),
        "{:?}",
        render.units.failed().next()
    );
    let tgzs = walk(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .count();
    assert_eq!(tgzs, 2, "one archive per chart version in the cache");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const HOOK_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "1"
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: busybox
"#;

const HOOK_MARKER: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-pre-marker
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: hook-succeeded
data: {}
"#;

const HOOK_KEEP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-pre-keep
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-weight: "-5"
data: {}
"#;

const HOOK_POST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-post
  annotations:
    helm.sh/hook: post-install,post-upgrade
data:
  greeting: {{ .Values.greeting | quote }}
"#;

const HOOK_TEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
data: {}
"#;

const APP_CM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-app
data:
  greeting: {{ .Values.greeting | quote }}
  upgrade: {{ .Release.IsUpgrade | quote }}
"#;

/// Waits for the hook Job to exist (checking that the release's objects are not applied
/// yet), then marks it complete (no kubelet or job controller runs in the test bed).
async fn complete_job_when_created(
    client: &kube::Client,
    ns: &str,
    name: &str,
    old_uid: Option<String>,
    not_yet: Option<&str>,
) -> String {
    let jobs = api(client, "batch", "Job", "jobs", ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(j) = jobs.get_opt(name).await.unwrap() {
            let uid = j.metadata.uid.clone().unwrap_or_default();
            if Some(&uid) != old_uid.as_ref() {
                if let Some(n) = not_yet {
                    assert!(
                        cm_data(client, ns, n).await.is_none(),
                        "{n} must wait for the pre-install hooks"
                    );
                }
                let status = json!({"status": {
                    "startTime": "2026-01-01T00:00:00Z",
                    "completionTime": "2026-01-01T00:00:10Z",
                    "succeeded": 1,
                    "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": "2026-01-01T00:00:10Z", "lastTransitionTime": "2026-01-01T00:00:10Z"}],
                }});
                jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .unwrap();
                return uid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hook Job {name} never created"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_phases_around_the_release() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let base = tmp("hooks");
    let ns = format!("h2-hooks-{}", std::process::id());
    create_namespace(&client, &ns).await;
    let mut charts = HelmRepoDir::new(base.join("charts"));
    charts.publish(
        "hooked",
        "1.0.0",
        &[
            ("app.yaml", APP_CM),
            ("job.yaml", HOOK_JOB),
            ("marker.yaml", HOOK_MARKER),
            ("keep.yaml", HOOK_KEEP),
            ("post.yaml", HOOK_POST),
            ("test.yaml", HOOK_TEST),
        ],
    );
    let server = capstan_testbed::servers::static_files(base.join("charts"), None).await;
    let env = Arc::new(Env {
        renderer: LiveRenderer::connect(client.clone(), SourceCache::new(base.join("cache")))
            .await
            .unwrap(),
        client: client.clone(),
        repo: base.join("git"),
        root_name: format!("h2-hooks-{}", std::process::id()),
    });
    env.write(
        "clusters/test/repo.yaml",
        &helm_repository(&ns, &format!("http://{}", server.addr)),
    );
    env.write(
        "clusters/test/rel.yaml",
        &helm_release(&ns, "rel", "hooked", "1.0.0", "    greeting: one\n"),
    );

    // Install: pre-install hooks, then the release, then post-install hooks.
    let run = {
        let env = env.clone();
        tokio::spawn(async move { env.apply().await })
    };
    let job = complete_job_when_created(&client, &ns, "rel-migrate", None, Some("rel-app")).await;
    let ex = run.await.unwrap();
    let id = UnitId::new("HelmRelease", &ns, "rel");
    assert!(ex.all_ok(), "{:#?}", ex.status);
    let app = cm_data(&client, &ns, "rel-app").await.unwrap();
    assert_eq!(app["greeting"], "one");
    assert_eq!(app["upgrade"], "false", ".Release.IsUpgrade once installed");
    assert_eq!(
        cm_data(&client, &ns, "rel-post").await.unwrap()["greeting"],
        "one"
    );
    assert!(
        cm_data(&client, &ns, "rel-pre-marker").await.is_none(),
        "hook-succeeded deletes it"
    );
    assert!(
        cm_data(&client, &ns, "rel-pre-keep").await.is_some(),
        "no policy: kept until the next run"
    );
    assert!(
        cm_data(&client, &ns, "rel-test").await.is_none(),
        "test hooks never run"
    );
    let UnitStatus::Done(result) = &ex.status[&id] else {
        unreachable!()
    };
    assert!(
        result
            .objects
            .iter()
            .any(|o| o.object.name == "rel-migrate"),
        "hooks are reported"
    );
    let inv = Applier::new(client.clone())
        .inventory(&UnitRef::new("HelmRelease", ns.clone(), "rel"))
        .await
        .unwrap();
    let names: Vec<&str> = inv.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["rel-app"], "hooks are not in the inventory");

    // Upgrade: the unit has an inventory, so pre-upgrade hooks run (the Job is deleted
    // and created again: before-hook-creation), pre-install ones do not.
    env.write(
        "clusters/test/rel.yaml",
        &helm_release(&ns, "rel", "hooked", "1.0.0", "    greeting: two\n"),
    );
    let run = {
        let env = env.clone();
        tokio::spawn(async move { env.apply().await })
    };
    let job2 =
        complete_job_when_created(&client, &ns, "rel-migrate", Some(job.clone()), None).await;
    assert_ne!(job, job2);
    let ex = run.await.unwrap();
    assert!(ex.all_ok(), "{:#?}", ex.status);
    let app = cm_data(&client, &ns, "rel-app").await.unwrap();
    assert_eq!(app["greeting"], "two");
    assert_eq!(app["upgrade"], "true", ".Release.IsUpgrade once installed");
    assert_eq!(
        cm_data(&client, &ns, "rel-post").await.unwrap()["greeting"],
        "two"
    );
    assert!(
        cm_data(&client, &ns, "rel-pre-marker").await.is_none(),
        "pre-install only"
    );
}

/// Push a Helm chart to an OCI registry as `helm push` does.
async fn push_chart(port: u16, repo: &str, tag: &str, tgz: Vec<u8>) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference =
        oci_client::Reference::with_tag(format!("127.0.0.1:{port}"), repo.into(), tag.into());
    let layer = ImageLayer::new(
        tgz,
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
        None,
    );
    let config = Config::new(
        br#"{"apiVersion":"v2","name":"web","version":"1.0.0"}"#.to_vec(),
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
        .expect("push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_from_oci_helm_repositories_and_oci_repository_chart_refs() {
    if !capstan_testbed::servers::registry_available() {
        return;
    }
    let base = tmp("oci");
    let reg = capstan_testbed::servers::start_registry(&base, None);
    for v in ["1.0.0", "1.1.0"] {
        push_chart(
            reg.port,
            "charts/web",
            v,
            chart_tgz("web", v, &[("cm.yaml", WEB_CM)]),
        )
        .await;
    }
    let renderer = LiveRenderer::default().with_fetcher(Arc::new(
        capstan_engine::SourceFetcher::new(SourceCache::new(base.join("cache")), None),
    ));
    let ns = "apps";
    let repo = capstan_vfs::MemFs::new()
        .with(
            "/clusters/test/sources.yaml",
            format!(
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: {ns}\nspec:\n  type: oci\n  insecure: true\n  url: oci://127.0.0.1:{port}/charts\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: web-chart\n  namespace: {ns}\nspec:\n  insecure: true\n  url: oci://127.0.0.1:{port}/charts/web\n  ref:\n    tag: 1.0.0\n",
                port = reg.port
            ),
        )
        .with(
            "/clusters/test/a.yaml",
            helm_release(ns, "a", "web", "1.x", "    greeting: from-helm-oci\n"),
        )
        .with(
            "/clusters/test/b.yaml",
            format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: b\n  namespace: {ns}\nspec:\n  interval: 5m\n  chartRef:\n    kind: OCIRepository\n    name: web-chart\n  values:\n    greeting: from-chart-ref\n"),
        );
    let render = render_cluster_with(
        &repo,
        &renderer,
        &capstan_units::NoCluster,
        &LoadOptions::new("clusters/test"),
    );
    assert!(
        render.units.failed().next().is_none(),
        "{:?}",
        render.units.failed().next()
    );
    let objects = |name: &str| -> Value {
        render
            .units
            .rendered()
            .find(|r| r.unit.id.name == name)
            .unwrap()
            .objects[0]
            .clone()
    };
    let a = objects("a");
    assert_eq!(a["metadata"]["name"], "a-config");
    assert_eq!(a["data"]["greeting"], "from-helm-oci");
    assert_eq!(a["data"]["version"], "1.1.0", "highest tag matching 1.x");
    assert_eq!(a["data"]["seed"], "none", "no lookup: empty");
    let b = objects("b");
    assert_eq!(b["data"]["greeting"], "from-chart-ref");
    assert_eq!(b["data"]["version"], "1.0.0");
}

const FAILING_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-check
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-delete-policy: hook-failed
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: check
        image: busybox
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hook_fails_the_release_and_applies_nothing() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let base = tmp("failhook");
    let ns = format!("h2-failhook-{}", std::process::id());
    create_namespace(&client, &ns).await;
    let mut charts = HelmRepoDir::new(base.join("charts"));
    charts.publish(
        "guarded",
        "1.0.0",
        &[("app.yaml", APP_CM), ("check.yaml", FAILING_JOB)],
    );
    let server = capstan_testbed::servers::static_files(base.join("charts"), None).await;
    let env = Arc::new(Env {
        renderer: LiveRenderer::connect(client.clone(), SourceCache::new(base.join("cache")))
            .await
            .unwrap(),
        client: client.clone(),
        repo: base.join("git"),
        root_name: format!("h2-failhook-{}", std::process::id()),
    });
    env.write(
        "clusters/test/repo.yaml",
        &helm_repository(&ns, &format!("http://{}", server.addr)),
    );
    env.write(
        "clusters/test/rel.yaml",
        &helm_release(&ns, "g", "guarded", "1.0.0", "    greeting: x\n"),
    );
    let run = {
        let env = env.clone();
        tokio::spawn(async move { env.apply().await })
    };
    // The hook Job fails.
    let jobs = api(&client, "batch", "Job", "jobs", &ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while jobs.get_opt("g-check").await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "hook never created");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = json!({"status": {
        "startTime": "2026-01-01T00:00:00Z", "failed": 1,
        "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": "2026-01-01T00:00:10Z", "lastTransitionTime": "2026-01-01T00:00:10Z"}],
    }});
    jobs.patch_status("g-check", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let ex = run.await.unwrap();
    let id = UnitId::new("HelmRelease", &ns, "g");
    assert!(
        matches!(&ex.status[&id], UnitStatus::Failed(m) if m.contains("g-check") && m.contains("backoff limit")),
        "{:?}",
        ex.status[&id]
    );
    assert!(
        cm_data(&client, &ns, "g-app").await.is_none(),
        "nothing of the release is applied after a failed pre-install hook"
    );
    assert!(
        jobs.get_opt("g-check").await.unwrap().is_none(),
        "hook-failed deletes the failed hook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_repository_credentials_come_from_the_secret_ref() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let base = tmp("auth");
    let ns = format!("h2-auth-{}", std::process::id());
    create_namespace(&client, &ns).await;
    let mut charts = HelmRepoDir::new(base.join("charts"));
    charts.publish("web", "1.0.0", &[("cm.yaml", APP_CM)]);
    let server = capstan_testbed::servers::static_files(
        base.join("charts"),
        Some(("fluxuser", "s3cret-pw")),
    )
    .await;
    let secrets = api(&client, "", "Secret", "secrets", &ns);
    let secret = |pw: &str| -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"repo-auth","namespace":ns},
            "stringData":{"username":"fluxuser","password":pw}}),
        )
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &secret("wrong-pw-123"))
        .await
        .unwrap();
    let env = Env {
        renderer: LiveRenderer::connect(client.clone(), SourceCache::new(base.join("cache")))
            .await
            .unwrap(),
        client: client.clone(),
        repo: base.join("git"),
        root_name: format!("h2-auth-{}", std::process::id()),
    };
    env.write(
        "clusters/test/repo.yaml",
        &format!(
            "{}  secretRef:\n    name: repo-auth\n",
            helm_repository(&ns, &format!("http://{}", server.addr))
        ),
    );
    env.write(
        "clusters/test/rel.yaml",
        &helm_release(&ns, "private", "web", "1.0.0", "    greeting: secret\n"),
    );

    // Wrong password: the release fails to render, the error says why, without the password.
    let render = env.render();
    let (_, err) = render
        .units
        .failed()
        .next()
        .expect("fails with a wrong password");
    let text = format!("{err} {err:?}");
    assert!(text.contains("401"), "{text}");
    assert!(
        !text.contains("wrong-pw-123"),
        "the password leaked: {text}"
    );

    secrets
        .replace("repo-auth", &PostParams::default(), &{
            let mut s = secret("s3cret-pw");
            s.metadata.resource_version = secrets
                .get("repo-auth")
                .await
                .unwrap()
                .metadata
                .resource_version;
            s
        })
        .await
        .unwrap();
    let render = env.render();
    assert!(
        render.units.failed().next().is_none(),
        "{:?}",
        render.units.failed().next()
    );
    let rel = render
        .units
        .rendered()
        .find(|r| r.unit.id.name == "private")
        .unwrap();
    assert_eq!(rel.objects[0]["data"]["greeting"], "secret");
}

/// A minimal CRD for a Flux source kind (the test bed has no Flux installed).
async fn install_source_crd(client: &kube::Client, kind: &str, plural: &str) {
    let ar = ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    };
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let name = format!("{plural}.source.toolkit.fluxcd.io");
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": "source.toolkit.fluxcd.io", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    let _ = crds.create(&PostParams::default(), &crd).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let c = crds.get(&name).await.unwrap();
        let established = c.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if established {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "CRD {name} not established"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_sources_only_in_the_cluster_and_helm_chart_refs() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    install_source_crd(&client, "HelmRepository", "helmrepositories").await;
    install_source_crd(&client, "HelmChart", "helmcharts").await;
    let base = tmp("incluster");
    let ns = format!("h2-incluster-{}", std::process::id());
    create_namespace(&client, &ns).await;
    let mut charts = HelmRepoDir::new(base.join("charts"));
    charts.publish("web", "1.0.0", &[("cm.yaml", APP_CM)]);
    charts.publish("web", "1.2.0", &[("cm.yaml", APP_CM)]);
    let server = capstan_testbed::servers::static_files(base.join("charts"), None).await;
    let source = |kind: &str, plural: &str| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &ns,
            &ApiResource {
                group: "source.toolkit.fluxcd.io".into(),
                version: "v1".into(),
                api_version: "source.toolkit.fluxcd.io/v1".into(),
                kind: kind.into(),
                plural: plural.into(),
            },
        )
    };
    // Only in the cluster: the repository declares neither.
    let repo_obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": ns},
        "spec": {"interval": "10m", "url": format!("http://{}", server.addr)}
    }))
    .unwrap();
    source("HelmRepository", "helmrepositories")
        .create(&PostParams::default(), &repo_obj)
        .await
        .unwrap();
    let chart_obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "web-chart", "namespace": ns},
        "spec": {"interval": "10m", "chart": "web", "version": "1.0.0",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"}}
    }))
    .unwrap();
    source("HelmChart", "helmcharts")
        .create(&PostParams::default(), &chart_obj)
        .await
        .unwrap();

    let env = Env {
        renderer: LiveRenderer::connect(client.clone(), SourceCache::new(base.join("cache")))
            .await
            .unwrap(),
        client: client.clone(),
        repo: base.join("git"),
        root_name: format!("h2-incluster-{}", std::process::id()),
    };
    env.write(
        "clusters/test/a.yaml",
        &helm_release(&ns, "a", "web", "1.x", "    greeting: via-cluster-repo\n"),
    );
    env.write(
        "clusters/test/b.yaml",
        &format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: b\n  namespace: {ns}\nspec:\n  interval: 5m\n  chartRef:\n    kind: HelmChart\n    name: web-chart\n  values:\n    greeting: via-helm-chart\n"),
    );
    let render = env.render();
    assert!(
        render.units.failed().next().is_none(),
        "{:?}",
        render.units.failed().next()
    );
    let obj = |name: &str| -> Value {
        render
            .units
            .rendered()
            .find(|r| r.unit.id.name == name)
            .unwrap()
            .objects[0]
            .clone()
    };
    assert_eq!(obj("a")["data"]["greeting"], "via-cluster-repo");
    assert_eq!(obj("a")["metadata"]["name"], "a-app");
    assert_eq!(obj("b")["data"]["greeting"], "via-helm-chart");
}
