//! The loader against in-memory repositories, with a minimal renderer (resources and
//! namespace only) so these tests do not depend on the kustomize engine.

use std::path::Path;

use capstan_graph::UnitId;
use capstan_units::{load, ClusterLookup, LoadOptions, NoCluster, Renderer, UnitOutcome};
use capstan_vfs::{FileSystem, MemFs};
use serde_json::{json, Value};

struct MiniKustomize;

impl MiniKustomize {
    fn build_dir(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
        out: &mut Vec<Value>,
    ) -> Result<(), String> {
        let text = fs
            .read_to_string(&dir.join("kustomization.yaml"))
            .map_err(|e| e.to_string())?;
        let docs = capstan_yaml::parse_documents(&text, "k").map_err(|e| e.to_string())?;
        let k = capstan_yaml::to_json(&docs[0]);
        let mut mine = Vec::new();
        for r in k
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let p = capstan_vfs::join(dir, r.as_str().unwrap());
            if fs.is_dir(&p) {
                self.build_dir(fs, &p, &mut mine)?;
            } else {
                let t = fs.read_to_string(&p).map_err(|e| e.to_string())?;
                for d in capstan_yaml::parse_documents(&t, "r").map_err(|e| e.to_string())? {
                    if !d.is_null() {
                        mine.push(capstan_yaml::to_json(&d));
                    }
                }
            }
        }
        if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
            for o in &mut mine {
                o["metadata"]["namespace"] = json!(ns);
            }
        }
        out.extend(mine);
        Ok(())
    }
}

impl Renderer for MiniKustomize {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        self.build_dir(fs, dir, &mut out)?;
        Ok(out)
    }
}

fn ks(name: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{extra}"
    )
}

fn repo() -> MemFs {
    MemFs::new()
        .with("/clusters/staging/infra.yaml", ks("infra", "./infrastructure", ""))
        .with(
            "/clusters/staging/apps.yaml",
            ks("apps", "./apps/staging", "  dependsOn:\n  - name: infra\n  postBuild:\n    substitute:\n      cluster_name: staging\n      replicas: \"3\"\n    substituteFrom:\n    - kind: ConfigMap\n      name: cluster-vars\n"),
        )
        .with("/infrastructure/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
        .with("/infrastructure/vars.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-vars\n  namespace: flux-system\ndata:\n  region: eu-1\n")
        .with("/apps/staging/kustomization.yaml", "resources:\n- deploy.yaml\n")
        .with(
            "/apps/staging/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-${cluster_name}\n  namespace: shop\n  annotations:\n    region: ${region}\n    literal: $${region}\nspec:\n  replicas: ${replicas}\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:${tag:=1.25}\n",
        )
}

#[test]
fn discovers_renders_and_substitutes() {
    let fs = repo();
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let ids: Vec<String> = out.units.iter().map(|u| u.id().to_string()).collect();
    // apps waits for infra, which renders the ConfigMap its substituteFrom names.
    assert_eq!(
        ids,
        [
            "Kustomization/flux-system/flux-system",
            "Kustomization/flux-system/infra",
            "Kustomization/flux-system/apps"
        ]
    );
    let apps = match out
        .get(&UnitId::new("Kustomization", "flux-system", "apps"))
        .unwrap()
    {
        UnitOutcome::Rendered(r) => r,
        UnitOutcome::Failed { error, .. } => panic!("{error}"),
    };
    let d = &apps.objects[0];
    assert_eq!(d["metadata"]["name"], "web-staging");
    assert_eq!(
        d["spec"]["replicas"],
        json!(3),
        "substituted numbers become numbers"
    );
    assert_eq!(
        d["metadata"]["annotations"]["region"], "eu-1",
        "substituteFrom found in the repository"
    );
    assert_eq!(d["metadata"]["annotations"]["literal"], "${region}");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    // The root consumed the Kustomizations instead of applying them.
    let root = out.rendered().next().unwrap();
    assert!(root.objects.is_empty());
    assert_eq!(root.consumed.len(), 2);
}

#[test]
fn missing_variable_is_a_clear_error_and_blocks_only_that_unit() {
    let mut fs = repo();
    fs.add(
        "/apps/staging/deploy.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${nope}\n",
    );
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    let (unit, err) = out.failed().next().expect("apps fails");
    assert_eq!(unit.id.name, "apps");
    let msg = err.to_string();
    assert!(
        msg.contains("variable `nope` has no value and no default"),
        "{msg}"
    );
    assert!(
        msg.contains("/clusters/staging/apps.yaml (document 1, Kustomization flux-system/apps)"),
        "{msg}"
    );
    assert!(msg.contains("hint: set `nope`"), "{msg}");
    assert_eq!(out.rendered().count(), 2, "root and infra still render");
}

#[test]
fn missing_path_names_file_and_field_with_hint() {
    let mut fs = repo();
    fs.add(
        "/clusters/staging/apps.yaml",
        ks("apps", "./apps/stagin", ""),
    );
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    let (_, err) = out.failed().next().unwrap();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "Kustomization flux-system/apps: spec.path: `./apps/stagin` does not exist"
        ),
        "{msg}"
    );
    assert!(msg.contains("--> /clusters/staging/apps.yaml"), "{msg}");
    assert!(msg.contains("did you mean `./apps/staging`?"), "{msg}");
}

#[test]
fn unknown_field_in_kustomization_is_reported_with_file() {
    let mut fs = repo();
    fs.add(
        "/clusters/staging/apps.yaml",
        ks("apps", "./apps/staging", "  dependOn:\n  - name: infra\n"),
    );
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    let (unit, err) = out.failed().next().unwrap();
    assert_eq!(
        unit.id.name, "flux-system",
        "the declaring unit fails: its output is not trustworthy"
    );
    let msg = err.to_string();
    assert!(msg.contains("spec.dependOn: unknown field"), "{msg}");
    assert!(msg.contains("/clusters/staging/apps.yaml"), "{msg}");
}

#[test]
fn substitute_from_the_cluster_and_optional_refs() {
    struct Live;
    impl ClusterLookup for Live {
        fn get(&self, kind: &str, ns: &str, name: &str) -> Result<Option<Value>, String> {
            Ok((kind == "Secret" && ns == "flux-system" && name == "live")
                .then(|| json!({"data": {"token": "czNjcmV0"}})))
        }
    }
    let fs = MemFs::new()
        .with(
            "/clusters/c/a.yaml",
            ks("a", "./a", "  postBuild:\n    substituteFrom:\n    - kind: Secret\n      name: live\n    - kind: ConfigMap\n      name: absent\n      optional: true\n"),
        )
        .with("/a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\ndata:\n  t: ${token}\n");
    let out = load(&fs, &MiniKustomize, &Live, &LoadOptions::new("clusters/c"));
    let a = out
        .rendered()
        .find(|r| r.unit.id.name == "a")
        .expect("rendered");
    assert_eq!(a.objects[0]["data"]["t"], "s3cret");
}

#[test]
fn disabled_substitution_and_generated_kustomization() {
    let fs = MemFs::new()
        .with("/clusters/c/a.yaml", ks("a", "./plain", "  targetNamespace: team\n  postBuild:\n    substitute:\n      x: \"1\"\n"))
        .with("/plain/one.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  s: ${keep}\n")
        .with("/plain/sub/two.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\ndata:\n  s: v${x}\n")
        .with("/plain/README.md", "not yaml: [");
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/c"),
    );
    assert!(
        out.failed().next().is_none(),
        "{:?}",
        out.failed().next().map(|f| f.1.to_string())
    );
    let a = out.rendered().find(|r| r.unit.id.name == "a").unwrap();
    let names: Vec<&str> = a
        .objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(a.objects[0]["data"]["s"], "${keep}");
    assert_eq!(a.objects[1]["data"]["s"], "v1");
    assert_eq!(a.objects[1]["metadata"]["namespace"], "team");
}

#[test]
fn bootstrap_root_is_not_rendered_twice() {
    let fs = repo().with(
        "/clusters/staging/flux-system/gotk-sync.yaml",
        ks("flux-system", "./clusters/staging", ""),
    );
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.units.len(), 3);
}

#[test]
fn missing_cluster_path() {
    let out = load(
        &repo(),
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/stagin"),
    );
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0]
            .to_string()
            .contains("did you mean `clusters/staging`?"),
        "{}",
        out.errors[0]
    );
}

/// Renders HelmRelease charts as fixed objects and records each request's source.
struct FakeHelm(std::sync::Mutex<Vec<Option<Value>>>);

impl Renderer for FakeHelm {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        MiniKustomize.build(fs, dir)
    }
    fn helm(
        &self,
        _fs: &dyn FileSystem,
        req: &capstan_units::HelmRequest,
    ) -> Result<Vec<Value>, String> {
        self.0.lock().unwrap().push(req.source.clone());
        if req.source.is_none() && req.chart_path.is_none() {
            return Err("no chart".into());
        }
        Ok(vec![
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"main","annotations":{"helm.sh/resource-policy":"keep"}}}),
            json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"migrate","annotations":{"helm.sh/hook":"pre-install,pre-upgrade"}}}),
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"test","annotations":{"helm.sh/hook":"test"}}}),
        ])
    }
}

fn hr(name: &str, source_kind: &str, source_name: &str) -> String {
    format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  chart:\n    spec:\n      chart: podinfo\n      version: \"6.x\"\n      sourceRef:\n        kind: {source_kind}\n        name: {source_name}\n")
}

#[test]
fn helm_chart_sources_are_found_in_the_repository_then_the_cluster() {
    // The HelmRelease comes before its HelmRepository (declared by a later unit): the
    // release waits for it.
    let fs = MemFs::new()
        .with("/clusters/c/kustomization.yaml", "resources:\n- a\n- b.yaml\n")
        .with("/clusters/c/a/kustomization.yaml", "resources:\n- hr.yaml\n- hr2.yaml\n")
        .with("/clusters/c/a/hr.yaml", hr("web", "HelmRepository", "charts"))
        .with("/clusters/c/a/hr2.yaml", hr("other", "HelmRepository", "elsewhere"))
        .with("/clusters/c/b.yaml", ks("b", "./sources", ""))
        .with("/sources/kustomization.yaml", "resources:\n- repo.yaml\n")
        .with("/sources/repo.yaml", "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: apps\nspec:\n  url: http://charts.example\n");
    struct Cluster;
    impl ClusterLookup for Cluster {
        fn get(&self, kind: &str, ns: &str, name: &str) -> Result<Option<Value>, String> {
            Ok((kind == "HelmRepository" && name == "elsewhere").then(|| {
                json!({"apiVersion":"source.toolkit.fluxcd.io/v1","kind":kind,"metadata":{"name":name,"namespace":ns},"spec":{"url":"http://live"}})
            }))
        }
    }
    let r = FakeHelm(Default::default());
    let units = load(&fs, &r, &Cluster, &LoadOptions::new("clusters/c"));
    assert!(
        units.failed().next().is_none(),
        "{:?}",
        units.failed().next()
    );
    let web = match units
        .get(&UnitId::new("HelmRelease", "apps", "web"))
        .unwrap()
    {
        UnitOutcome::Rendered(r) => r,
        _ => unreachable!(),
    };
    assert_eq!(web.objects.len(), 1);
    assert_eq!(
        web.objects[0]["metadata"]["annotations"]["capstan.io/prune"], "disabled",
        "helm.sh/resource-policy: keep is never pruned"
    );
    assert_eq!(web.hooks.len(), 1, "test hooks are dropped");
    assert_eq!(web.hooks[0]["metadata"]["name"], "migrate");
    assert_eq!(web.hooks[0]["metadata"]["namespace"], "apps");
    let sources = r.0.lock().unwrap().clone();
    let urls: Vec<&str> = sources
        .iter()
        .map(|s| s.as_ref().unwrap()["spec"]["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&"http://charts.example") && urls.contains(&"http://live"),
        "{urls:?}"
    );

    // Found nowhere: a clear error on the field, nothing rendered.
    let units = load(
        &fs,
        &FakeHelm(Default::default()),
        &NoCluster,
        &LoadOptions::new("clusters/c"),
    );
    let (unit, err) = units.failed().next().unwrap();
    assert_eq!(unit.id.name, "other");
    assert!(
        err.message
            .contains("HelmRepository apps/elsewhere was found neither"),
        "{err}"
    );
    assert_eq!(
        err.location.field.as_deref(),
        Some("spec.chart.spec.sourceRef")
    );
    assert_eq!(err.kind, capstan_units::ErrorKind::Lookup);
}

#[test]
fn units_of_other_sources_read_their_mount_or_fail_when_it_is_missing() {
    let other = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: apps\n";
    let fs = MemFs::new()
        .with("/clusters/c/apps.yaml", other)
        .with("/deploy/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with(
            "/deploy/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-repository\n",
        )
        .with(
            "/mnt/apps/deploy/kustomization.yaml",
            "resources:\n- cm.yaml\n",
        )
        .with(
            "/mnt/apps/deploy/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-apps\n",
        );
    let apps = UnitId::new("Kustomization", "flux-system", "apps");
    let root = (
        "GitRepository".to_string(),
        "flux-system".to_string(),
        "flux-system".to_string(),
    );
    let source = (
        "GitRepository".to_string(),
        "flux-system".to_string(),
        "apps".to_string(),
    );

    // Mounted: the unit reads its own source's tree.
    let mut opts = LoadOptions::new("clusters/c");
    opts.root_source = Some(root.clone());
    opts.source_roots.insert(source, "/mnt/apps".into());
    let units = load(&fs, &MiniKustomize, &NoCluster, &opts);
    let Some(UnitOutcome::Rendered(r)) = units.get(&apps) else {
        panic!("apps did not render: {:?}", units.get(&apps));
    };
    assert_eq!(r.objects[0]["metadata"]["name"], "from-apps");

    // Not mounted: the unit fails (its parent still renders), never reading the repository.
    let mut opts = LoadOptions::new("clusters/c");
    opts.root_source = Some(root);
    let units = load(&fs, &MiniKustomize, &NoCluster, &opts);
    let Some(UnitOutcome::Failed { error, .. }) = units.get(&apps) else {
        panic!("apps should fail: {:?}", units.get(&apps));
    };
    assert!(
        error.message.starts_with(capstan_units::SOURCE_NOT_READY),
        "{}",
        error.message
    );
    // Its kind says so (the agent reports ArtifactFailed from it, not from the message).
    assert_eq!(error.kind, capstan_units::ErrorKind::Source);
    assert_eq!(error.kind.flux_reason(), "ArtifactFailed");
    assert_eq!(error.location.field.as_deref(), Some("spec.sourceRef"));
    assert_eq!(units.failed().count(), 1);
}

/// Flux joins `spec.path` into its source's artifact securely: `..` and absolute paths
/// stay beneath the source's root, never reaching another tree.
#[test]
fn spec_path_stays_beneath_its_sources_root() {
    let other = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  path: ../../../deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: apps\n";
    let fs = MemFs::new()
        .with("/clusters/c/apps.yaml", other)
        .with("/deploy/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with(
            "/deploy/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-repository\n",
        )
        .with(
            "/mnt/apps/deploy/kustomization.yaml",
            "resources:\n- cm.yaml\n",
        )
        .with(
            "/mnt/apps/deploy/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-apps\n",
        );
    let mut opts = LoadOptions::new("clusters/c");
    opts.source_roots.insert(
        (
            "GitRepository".to_string(),
            "flux-system".to_string(),
            "apps".to_string(),
        ),
        "/mnt/apps".into(),
    );
    let units = load(&fs, &MiniKustomize, &NoCluster, &opts);
    let apps = UnitId::new("Kustomization", "flux-system", "apps");
    let Some(UnitOutcome::Rendered(r)) = units.get(&apps) else {
        panic!("apps did not render: {:?}", units.get(&apps));
    };
    assert_eq!(r.objects[0]["metadata"]["name"], "from-apps");
}

/// A file system that refuses one path, as `DiskFs` refuses a symlink leading out of
/// its root.
struct Refusing {
    inner: MemFs,
    refused: &'static str,
}

impl Refusing {
    fn err(&self) -> std::io::Error {
        capstan_vfs::Confinement::Escapes {
            link: self.refused.into(),
            target: "/etc".into(),
            root: "/repo".into(),
        }
        .into()
    }
}

impl FileSystem for Refusing {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path.starts_with(self.refused) {
            return Err(self.err());
        }
        self.inner.read(path)
    }
    fn file_type(&self, path: &Path) -> Option<capstan_vfs::FileType> {
        if path.starts_with(self.refused) {
            return Some(capstan_vfs::FileType::File);
        }
        self.inner.file_type(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        if path.starts_with(self.refused) {
            return Err(self.err());
        }
        self.inner.read_dir(path)
    }
    fn stat(&self, path: &Path) -> std::io::Result<Option<capstan_vfs::FileType>> {
        if path.starts_with(self.refused) {
            return Err(self.err());
        }
        Ok(self.inner.file_type(path))
    }
}

#[test]
fn a_refused_spec_path_names_the_link_and_the_field() {
    let fs = Refusing {
        inner: repo(),
        refused: "/apps/staging",
    };
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    let (_, err) = out.failed().next().expect("apps fails");
    let msg = err.to_string();
    assert_eq!(err.location.field.as_deref(), Some("spec.path"), "{msg}");
    assert!(
        msg.contains("symlink /apps/staging -> /etc leads outside the root"),
        "{msg}"
    );
    // A refused cluster path is an error of the whole cluster.
    let fs = Refusing {
        inner: repo(),
        refused: "/clusters/staging",
    };
    let out = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    let msg = out.errors[0].to_string();
    assert!(
        msg.contains("cluster path `clusters/staging`") && msg.contains("outside the root"),
        "{msg}"
    );
}

/// Panics (a stand-in for an engine bug) when building `infrastructure` or rendering a
/// chart; builds everything else like [`MiniKustomize`].
struct PanickingRenderer;

impl Renderer for PanickingRenderer {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        if dir.ends_with("infrastructure") {
            let s = String::from("é");
            // A string sliced inside a character, as `trunc` at a multi-byte boundary did.
            return Ok(vec![json!(s[..1].to_string())]);
        }
        MiniKustomize.build(fs, dir)
    }
    fn helm(
        &self,
        _fs: &dyn FileSystem,
        _req: &capstan_units::HelmRequest,
    ) -> Result<Vec<Value>, String> {
        panic!("chart engine bug")
    }
}

#[test]
fn a_panic_while_rendering_fails_only_that_unit_with_a_typed_error() {
    let fs = repo()
        .with("/clusters/staging/other.yaml", ks("other", "./other", ""))
        .with("/other/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with(
            "/other/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: default\n",
        )
        .with(
            "/clusters/staging/hr.yaml",
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: flux-system\nspec:\n  chart:\n    spec:\n      chart: ./charts/web\n      sourceRef:\n        kind: GitRepository\n        name: flux-system\n",
        )
        .with(
            "/charts/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.0.0\n",
        );
    let out = load(
        &fs,
        &PanickingRenderer,
        &NoCluster,
        &LoadOptions::new("clusters/staging"),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let outcome = |name: &str| {
        out.units
            .iter()
            .find(|u| u.id().name == name)
            .unwrap_or_else(|| panic!("no unit {name}"))
    };
    for name in ["infra", "web"] {
        let UnitOutcome::Failed { error, .. } = outcome(name) else {
            panic!("{name} rendered")
        };
        let p = error.panicked.as_ref().expect("typed as a panic");
        assert!(error.message.starts_with("rendering panicked"), "{error}");
        assert!(error.hint.as_deref().unwrap().contains("bug in capstan"));
        if name == "web" {
            assert_eq!(p.message, "chart engine bug");
        } else {
            assert!(p.message.contains("char boundary"), "{}", p.message);
        }
    }
    // The others render (apps fails on its own: its substituteFrom came from infra).
    assert!(matches!(outcome("other"), UnitOutcome::Rendered(_)));
    assert!(matches!(outcome("flux-system"), UnitOutcome::Rendered(_)));
    // An ordinary failure is not typed as a panic.
    let plain = load(
        &repo(),
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/nope"),
    );
    assert!(plain.errors[0].panicked.is_none());
}

/// A Kustomization reading a Bucket or a Flux 2.7 ExternalArtifact fails naming the kind
/// (it is never read from the repository's tree), in offline builds too.
#[test]
fn bucket_and_external_artifact_sources_are_refused_by_name() {
    for kind in ["Bucket", "ExternalArtifact"] {
        let ks = format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: {kind}\n    name: apps\n");
        let fs = MemFs::new()
            .with("/clusters/c/apps.yaml", ks)
            .with("/deploy/kustomization.yaml", "resources:\n- cm.yaml\n")
            .with(
                "/deploy/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-repository\n",
            );
        let units = load(
            &fs,
            &MiniKustomize,
            &NoCluster,
            &LoadOptions::new("clusters/c"),
        );
        let apps = UnitId::new("Kustomization", "flux-system", "apps");
        let Some(UnitOutcome::Failed { error, .. }) = units.get(&apps) else {
            panic!("{kind}: apps should fail: {:?}", units.get(&apps));
        };
        assert!(
            error
                .message
                .contains(&format!("sourceRef {kind} flux-system/apps"))
                && error.message.contains("not supported"),
            "{}",
            error.message
        );
        assert_eq!(error.location.field.as_deref(), Some("spec.sourceRef.kind"));
        assert_eq!(error.kind, capstan_units::ErrorKind::Source);
    }
}

/// A Flux 2.7 ArtifactGenerator is neither applied nor silently dropped: it is a warning
/// naming it, the kind and the ExternalArtifacts it would generate; the unit naming one of
/// them fails naming ExternalArtifact, and the other units render.
#[test]
fn artifact_generators_are_reported_not_applied() {
    let fs = MemFs::new()
        .with("/clusters/c/gen.yaml", "apiVersion: source.extensions.fluxcd.io/v1beta1\nkind: ArtifactGenerator\nmetadata:\n  name: composed\n  namespace: flux-system\nspec:\n  sources:\n  - alias: base\n    kind: GitRepository\n    name: shared\n  artifacts:\n  - name: apps\n    copy:\n    - from: '@base/apps/**'\n      to: '@artifact/'\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  path: ./\n  prune: true\n  sourceRef:\n    kind: ExternalArtifact\n    name: apps\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: local\n  namespace: flux-system\nspec:\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n")
        .with("/deploy/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with(
            "/deploy/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-repository\n",
        );
    let units = load(
        &fs,
        &MiniKustomize,
        &NoCluster,
        &LoadOptions::new("clusters/c"),
    );
    let warning = units
        .warnings
        .iter()
        .find(|w| w.contains("ArtifactGenerator"))
        .unwrap_or_else(|| panic!("no warning: {:?}", units.warnings));
    assert!(
        warning.starts_with("ArtifactGenerator flux-system/composed: not supported")
            && warning.contains("ExternalArtifact apps"),
        "{warning}"
    );
    for r in units.rendered() {
        assert!(
            r.objects.iter().all(|o| o["kind"] != "ArtifactGenerator"),
            "{} applies it",
            r.unit.id
        );
    }
    let id = |n: &str| UnitId::new("Kustomization", "flux-system", n);
    let Some(UnitOutcome::Failed { error, .. }) = units.get(&id("apps")) else {
        panic!("apps should fail");
    };
    assert!(error.message.contains("ExternalArtifact"), "{error}");
    assert!(matches!(
        units.get(&id("local")),
        Some(UnitOutcome::Rendered(_))
    ));
}

/// A stand-in for SOPS: sources `*.sealed` read as their `.plain` sibling; objects' `SEALED`
/// strings become `${cluster_name}` (so substitution must run after decryption).
struct FakeDecryptor;

impl capstan_units::Decryptor for FakeDecryptor {
    fn sources(
        &self,
        unit: &Value,
        _root: bool,
        fs: &dyn FileSystem,
        _source_root: &Path,
        dir: &Path,
    ) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>, String> {
        assert_eq!(unit["spec"]["decryption"]["provider"], "sops");
        let plain = fs.read(&dir.join("cm.plain")).map_err(|e| e.to_string())?;
        Ok(vec![(dir.join("cm.yaml"), plain)])
    }
    fn objects(&self, _unit: &Value, _root: bool, objects: &mut [Value]) -> Result<(), String> {
        for o in objects {
            if o["data"]["v"] == "SEALED" {
                o["data"]["v"] = json!("${cluster_name}");
            }
        }
        Ok(())
    }
}

#[test]
fn decryption_hook_decrypts_sources_and_objects_before_substitution() {
    let fs = MemFs::new()
        .with(
            "/clusters/staging/apps.yaml",
            ks("apps", "./apps", "  decryption:\n    provider: sops\n  postBuild:\n    substitute:\n      cluster_name: staging\n"),
        )
        .with("/apps/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with("/apps/cm.yaml", "encrypted: true\n")
        .with("/apps/cm.plain", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: shop\ndata:\n  v: SEALED\n");
    let mut opts = LoadOptions::new("clusters/staging");
    // The root has no spec.decryption: the fake asserts it is only asked for units that
    // have one, so give the root nothing to decrypt by rendering only what it declares.
    opts.decryptor = Some(capstan_units::SharedDecryptor(std::sync::Arc::new(
        OnlySops(FakeDecryptor),
    )));
    let out = load(&fs, &MiniKustomize, &NoCluster, &opts);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let apps = match out
        .get(&UnitId::new("Kustomization", "flux-system", "apps"))
        .unwrap()
    {
        UnitOutcome::Rendered(r) => r,
        UnitOutcome::Failed { error, .. } => panic!("{error}"),
    };
    assert_eq!(apps.objects[0]["data"]["v"], "staging");
}

/// Passes only units with `spec.decryption` to the inner decryptor.
struct OnlySops<D>(D);

impl<D: capstan_units::Decryptor> capstan_units::Decryptor for OnlySops<D> {
    fn sources(
        &self,
        unit: &Value,
        root: bool,
        fs: &dyn FileSystem,
        source_root: &Path,
        dir: &Path,
    ) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>, String> {
        if unit.pointer("/spec/decryption").is_none() {
            return Ok(Vec::new());
        }
        self.0.sources(unit, root, fs, source_root, dir)
    }
    fn objects(&self, unit: &Value, root: bool, objects: &mut [Value]) -> Result<(), String> {
        if unit.pointer("/spec/decryption").is_none() {
            return Ok(());
        }
        self.0.objects(unit, root, objects)
    }
}
