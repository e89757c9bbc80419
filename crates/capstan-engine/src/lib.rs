//! One cluster, end to end: source tree -> units -> rendered objects -> plan -> apply.
//!
//! [`render_cluster`] is pure (given a file system and, optionally, a cluster lookup
//! for `substituteFrom`); [`render_cluster_with`] takes a [`LiveRenderer`] that fetches
//! charts from Helm repositories ([`SourceFetcher`]), answers Helm's `lookup` from the
//! cluster and reports the cluster's Capabilities. The apply half lives in [`live`]:
//! [`apply_rendered`] applies a unit, running a HelmRelease's hooks in phases around
//! it ([`hooks`]).
//!
//! Two layers:
//! * planning (this module, [`execute`]): render -> units -> graph -> plan -> walk, pure
//!   over a file system, a [`capstan_units::Renderer`] and a [`ClusterLookup`];
//! * the live shell ([`live`], [`sources`], [`round`]): kube clients, source fetching and
//!   one per-cluster [`round::Round`] that `capstan apply`/`capstan diff` and the agent
//!   both drive, through two seams (what is due: [`round::Schedule`]; where outcomes go:
//!   [`round::Outcomes`]). Errors crossing the seams keep their kind
//!   ([`capstan_units::ErrorKind`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_graph::{Footprint, GraphError, GroupKind, Plan, UnitId, UnitNode};
use capstan_units::{
    ChartSource, ClusterLookup, ClusterUnits, HelmRequest, LoadOptions, Renderer, UnitOutcome,
};
use capstan_vfs::FileSystem;
use serde_json::Value;

/// Renders with capstan's own engines: kustomize with the options Flux uses (files
/// anywhere in the repository may be read; no plugins), and Helm charts from the
/// repository tree, offline (`lookup` finds nothing, Helm's default Capabilities).
/// Charts from HelmRepository/OCIRepository sources need a [`LiveRenderer`] with a
/// [`ChartFetcher`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeRenderer;

impl Renderer for NativeRenderer {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        kustomize_build(fs, dir)
    }

    fn helm(&self, fs: &dyn FileSystem, req: &HelmRequest) -> Result<Vec<Value>, String> {
        LiveRenderer::default().helm(fs, req)
    }
}

fn kustomize_build(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
    let opts = capstan_kustomize::BuildOptions {
        reorder: capstan_kustomize::Reorder::Legacy,
        load_restrictor: capstan_kustomize::LoadRestrictor::None,
        ..Default::default()
    };
    let nodes = capstan_kustomize::build(fs, dir, &opts).map_err(|e| e.to_string())?;
    Ok(nodes.iter().map(capstan_yaml::to_json).collect())
}

/// Fetches charts that do not live in the repository tree. Blocking: implementations
/// backed by async I/O block the calling thread (rendering runs on a blocking thread
/// or inside `tokio::task::block_in_place`).
pub trait ChartFetcher: Send + Sync {
    /// The chart `chart` at `version` (a semver constraint, empty for the latest) from
    /// the Flux `source` object (HelmRepository: `chart` is the chart's name;
    /// OCIRepository: `chart` is empty, the artifact is the chart). Returns a local
    /// chart archive (`.tgz`) or directory.
    fn fetch(&self, source: &Value, chart: &str, version: &str) -> Result<PathBuf, String>;
}

/// [`NativeRenderer`] plus what a live cluster gives Helm: charts from HelmRepository and
/// OCIRepository sources (through a [`ChartFetcher`]), `lookup` answered by the cluster,
/// and the cluster's Capabilities. Every part is optional; `LiveRenderer::default()`
/// renders exactly like [`NativeRenderer`]. See [`live::LiveRenderer::connect`].
#[derive(Clone, Default)]
pub struct LiveRenderer {
    pub fetcher: Option<Arc<dyn ChartFetcher>>,
    pub lookup: Option<capstan_helm::LookupFn>,
    /// `None`: Helm's defaults (what `helm template` reports).
    pub capabilities: Option<capstan_helm::engine::Capabilities>,
    /// Is this HelmRelease unit installed already? Renders `.Release.IsUpgrade`
    /// (`None`: always an install).
    pub installed: Option<InstalledProbe>,
}

/// Answers whether a HelmRelease unit is installed (see [`LiveRenderer::installed`]).
pub type InstalledProbe = Arc<dyn Fn(&capstan_graph::UnitId) -> bool + Send + Sync>;

impl std::fmt::Debug for LiveRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRenderer")
            .field("fetcher", &self.fetcher.is_some())
            .field("lookup", &self.lookup.is_some())
            .field("capabilities", &self.capabilities)
            .field("installed", &self.installed.is_some())
            .finish()
    }
}

impl LiveRenderer {
    pub fn with_fetcher(mut self, f: Arc<dyn ChartFetcher>) -> Self {
        self.fetcher = Some(f);
        self
    }
    pub fn with_lookup(mut self, l: capstan_helm::LookupFn) -> Self {
        self.lookup = Some(l);
        self
    }
    pub fn with_capabilities(mut self, c: capstan_helm::engine::Capabilities) -> Self {
        self.capabilities = Some(c);
        self
    }
    pub fn with_installed(mut self, probe: InstalledProbe) -> Self {
        self.installed = Some(probe);
        self
    }

    fn chart(&self, fs: &dyn FileSystem, req: &HelmRequest) -> Result<capstan_helm::Chart, String> {
        if let Some(path) = &req.chart_path {
            return capstan_helm::load(fs, path).map_err(|e| e.to_string());
        }
        let Some(source) = &req.source else {
            return Err(format!("no source for chart {:?}", req.chart));
        };
        let kind = source.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(fetcher) = &self.fetcher else {
            return Err(format!(
                "the chart comes from {kind} {}: charts from HelmRepository and OCIRepository sources are fetched by the agent; offline builds only read charts in the repository (GitRepository sources)",
                object_name(source)
            ));
        };
        let (chart, version) = match &req.chart {
            ChartSource::Template { chart, version, .. } => {
                (chart.as_str(), version.as_deref().unwrap_or(""))
            }
            ChartSource::Ref(_) => ("", ""),
        };
        let path = fetcher.fetch(source, chart, version)?;
        load_local_chart(&path)
    }
}

/// Flux's `spec.chart.spec.valuesFiles`: the chart's default values become these files
/// merged in order (`values.yaml` is the chart's own). Paths are relative to the root
/// of the chart's source tree (and stay beneath it) for charts in a source tree, to the
/// chart otherwise.
fn chart_values_from_files(
    fs: &dyn FileSystem,
    req: &HelmRequest,
    chart: &capstan_helm::Chart,
    files: &[String],
) -> Result<capstan_helm::Map, String> {
    let mut merged = capstan_helm::Map::new();
    for f in files {
        let rel = f.trim_start_matches("./");
        let values = if rel == "values.yaml" {
            chart.values.clone()
        } else {
            let text = match &req.chart_path {
                Some(_) => fs
                    .read_to_string(&capstan_vfs::join_within(&req.source_root, rel))
                    .map_err(|e| format!("spec.chart.spec.valuesFiles: {f}: {e}"))?,
                None => chart
                    .files
                    .iter()
                    .find(|cf| cf.name == rel)
                    .map(|cf| String::from_utf8_lossy(&cf.data).into_owned())
                    .ok_or_else(|| {
                        format!("spec.chart.spec.valuesFiles: {f} is not in the chart")
                    })?,
            };
            capstan_helm::yaml::parse_values(&text)
                .map_err(|e| format!("spec.chart.spec.valuesFiles: {f}: {e}"))?
        };
        merged = capstan_helm::strvals::merge_maps(merged, values);
    }
    Ok(merged)
}

fn object_name(o: &Value) -> String {
    let m = |k: &str| {
        o.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!("{}/{}", m("namespace"), m("name"))
}

/// Load a fetched chart: a `.tgz`, or a directory holding the chart (or one
/// sub-directory with it, as a chart archive extracts). A directory is read through a
/// [`capstan_vfs::DiskFs`] rooted at it, so the chart's symlinks stay inside it; the
/// archive is a file of capstan's own cache (the fetcher's answer), read as a whole.
pub fn load_local_chart(path: &Path) -> Result<capstan_helm::Chart, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.is_file() {
        let data = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
        return capstan_helm::load_archive(&data).map_err(|e| format!("{shown}: {e}"));
    }
    let fs = capstan_vfs::DiskFs::new(path).map_err(|e| format!("{shown}: {e}"))?;
    let top = Path::new("/");
    let mut root = top.to_path_buf();
    if !fs.is_file(&top.join("Chart.yaml")) {
        let subs: Vec<PathBuf> = fs
            .read_dir(top)
            .map_err(|e| format!("{shown}: {e}"))?
            .into_iter()
            .map(|n| top.join(n))
            .filter(|p| fs.is_dir(p) && fs.is_file(&p.join("Chart.yaml")))
            .collect();
        match subs.as_slice() {
            [one] => root = one.clone(),
            _ => return Err(format!("{shown}: no Chart.yaml in the artifact")),
        }
    }
    capstan_helm::load_dir(&fs, &root).map_err(|e| format!("{shown}: {e}"))
}

impl Renderer for LiveRenderer {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        kustomize_build(fs, dir)
    }

    /// Every rendered object, hooks included (they keep their `helm.sh/hook`
    /// annotations; the loader sets them apart).
    fn helm(&self, fs: &dyn FileSystem, req: &HelmRequest) -> Result<Vec<Value>, String> {
        let mut chart = self.chart(fs, req)?;
        if let ChartSource::Template { values_files, .. } = &req.chart {
            if !values_files.is_empty() {
                chart.values = chart_values_from_files(fs, req, &chart, values_files)?;
            }
        }
        // JSON is YAML: Helm's own values parser gives the values Helm's types.
        let values = capstan_helm::yaml::parse_values(
            &serde_json::to_string(&req.values).unwrap_or_default(),
        )
        .map_err(|e| format!("values: {e}"))?;
        let ro = capstan_helm::ReleaseOptions {
            name: req.release_name.clone(),
            namespace: req.namespace.clone(),
            capabilities: self.capabilities.clone().unwrap_or_default(),
            lookup: self.lookup.clone(),
            is_upgrade: match (&self.installed, &req.unit) {
                (Some(probe), Some(unit)) => probe(unit),
                _ => false,
            },
        };
        let manifests =
            capstan_helm::render_release_with(&chart, &values, &ro).map_err(|e| e.to_string())?;
        Ok(manifests
            .into_iter()
            .filter(|m| req.include_crds || m.hook.is_some() || !m.source.contains("/crds/"))
            .map(|m| m.object)
            .collect())
    }
}

/// A cluster's units, rendered, with the dependency plan.
#[derive(Debug, Clone)]
pub struct ClusterRender {
    pub units: ClusterUnits,
    /// The plan, or why there is none (a cycle or a missing dependency stops everything).
    pub plan: Result<Plan, GraphError>,
    /// Units that cannot be applied, and why (failed to render, or depend on one that did).
    pub blocked: BTreeMap<UnitId, String>,
}

impl ClusterRender {
    /// Did anything go wrong before applying?
    pub fn has_errors(&self) -> bool {
        !self.units.errors.is_empty() || self.plan.is_err() || self.units.failed().next().is_some()
    }
}

/// Read, render and plan a cluster.
pub fn render_cluster(
    fs: &dyn FileSystem,
    lookup: &dyn ClusterLookup,
    opts: &LoadOptions,
) -> ClusterRender {
    render_cluster_with(fs, &NativeRenderer, lookup, opts)
}

/// [`render_cluster`] with another renderer (a [`LiveRenderer`] for charts from Helm
/// repositories, live `lookup` and the cluster's Capabilities).
pub fn render_cluster_with(
    fs: &dyn FileSystem,
    renderer: &dyn Renderer,
    lookup: &dyn ClusterLookup,
    opts: &LoadOptions,
) -> ClusterRender {
    load_and_plan(fs, renderer, lookup, opts, false)
}

/// [`render_cluster_with`], planned with [`plan_units_isolating`]: what the agent does,
/// so that one unit's bad `dependsOn` never stops the cluster.
pub fn render_cluster_isolating(
    fs: &dyn FileSystem,
    renderer: &dyn Renderer,
    lookup: &dyn ClusterLookup,
    opts: &LoadOptions,
) -> ClusterRender {
    load_and_plan(fs, renderer, lookup, opts, true)
}

fn load_and_plan(
    fs: &dyn FileSystem,
    renderer: &dyn Renderer,
    lookup: &dyn ClusterLookup,
    opts: &LoadOptions,
    isolating: bool,
) -> ClusterRender {
    let units = capstan_units::load(fs, renderer, lookup, opts);
    let (plan, blocked) = plan_units_with(fs, &units, isolating);
    ClusterRender {
        units,
        plan,
        blocked,
    }
}

/// Build the dependency graph of rendered and failed units. A `dependsOn` naming a unit
/// that does not exist, or a cycle, fails the plan (nothing is applied).
pub fn plan_units(
    fs: &dyn FileSystem,
    units: &ClusterUnits,
) -> (Result<Plan, GraphError>, BTreeMap<UnitId, String>) {
    plan_units_with(fs, units, false)
}

/// [`plan_units`], but as Flux's controllers treat each unit on its own: a unit whose
/// `spec.dependsOn` names a unit that does not exist, and the units of a dependency
/// cycle, are blocked (with the graph's error, e.g. "spec.dependsOn names ..., which does
/// not exist") and so are the units waiting for them; every other unit is planned.
pub fn plan_units_isolating(
    fs: &dyn FileSystem,
    units: &ClusterUnits,
) -> (Result<Plan, GraphError>, BTreeMap<UnitId, String>) {
    plan_units_with(fs, units, true)
}

fn plan_units_with(
    fs: &dyn FileSystem,
    units: &ClusterUnits,
    isolate: bool,
) -> (Result<Plan, GraphError>, BTreeMap<UnitId, String>) {
    // Kinds the repository declares cluster-scoped through CRDs.
    let mut cluster_scoped: BTreeSet<GroupKind> = BTreeSet::new();
    for r in units.rendered() {
        for o in &r.objects {
            if o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                && capstan_graph::crd_is_cluster_scoped(o)
            {
                if let Some(gk) = capstan_graph::crd_group_kind(o) {
                    cluster_scoped.insert(gk);
                }
            }
        }
    }
    let known: BTreeSet<&UnitId> = units.units.iter().map(UnitOutcome::id).collect();
    let any_failed = units.failed().next().is_some();
    let mut blocked: BTreeMap<UnitId, String> = BTreeMap::new();
    let mut nodes = Vec::new();
    for u in &units.units {
        let unit = u.unit();
        let mut depends_on = Vec::new();
        for d in &unit.spec.depends_on {
            if !known.contains(d) && any_failed {
                // Its declaring unit may be the one that failed: block, don't guess.
                blocked.insert(unit.id.clone(), format!("depends on {d}, which was not found (a unit failed to render, so not every unit is known)"));
                continue;
            }
            depends_on.push(d.clone());
        }
        let footprint = match u {
            UnitOutcome::Rendered(r) => {
                Footprint::of_objects(&r.objects, &|gk| cluster_scoped.contains(gk))
            }
            UnitOutcome::Failed { error, .. } => {
                blocked.insert(
                    unit.id.clone(),
                    format!("failed to render: {}", error.message),
                );
                Footprint::default()
            }
        };
        // Only worth a look at the files when the graph will complain about this unit.
        let origin = if depends_on.iter().any(|d| !known.contains(d)) {
            unit.declared_in
                .as_ref()
                .and_then(|dir| {
                    capstan_units::locate_recursive(fs, dir, &unit.id.kind, &unit.id.name)
                })
                .and_then(|l| l.file)
                .map(|f| f.display().to_string())
        } else {
            None
        };
        nodes.push(UnitNode {
            id: unit.id.clone(),
            depends_on,
            origin,
            footprint,
        });
    }
    // Each pass cuts at least one `dependsOn` edge, so this ends.
    let plan = loop {
        let plan = capstan_graph::plan(&nodes);
        let cut: Vec<(UnitId, Vec<UnitId>)> = match &plan {
            Err(e @ GraphError::MissingDependency(m)) if isolate => {
                blocked.insert(m.unit.clone(), e.to_string());
                vec![(m.unit.clone(), vec![m.missing.clone()])]
            }
            Err(e @ GraphError::Cycle { path }) if isolate => {
                for u in path {
                    blocked.insert(u.clone(), e.to_string());
                }
                path.iter().map(|u| (u.clone(), path.clone())).collect()
            }
            _ => break plan,
        };
        for (unit, gone) in cut {
            if let Some(n) = nodes.iter_mut().find(|n| n.id == unit) {
                n.depends_on.retain(|d| !gone.contains(d));
            }
        }
    };
    if let Ok(p) = &plan {
        let roots: Vec<UnitId> = blocked.keys().cloned().collect();
        for b in roots {
            for d in p.transitive_dependents(&b) {
                blocked
                    .entry(d)
                    .or_insert_with(|| format!("blocked: depends on {b}, which cannot be applied"));
            }
        }
    }
    (plan, blocked)
}

/// Render objects as YAML the way `kustomize build` prints them.
pub fn to_yaml(objects: &[Value]) -> String {
    let nodes: Vec<capstan_yaml::Node> = objects.iter().map(capstan_yaml::from_json).collect();
    capstan_kustomize::render(&nodes)
}

pub mod decryption;
pub mod execute;
pub use execute::{execute, ExecuteOptions, Execution, UnitDriver, UnitStatus};

pub mod hooks;
pub mod images;

pub mod isolate;
pub use isolate::{
    catch_future, install_panic_hook, render_thread, spawn_render, Panicked, RENDER_STACK_SIZE,
};

pub mod argo;
pub mod live;
pub mod round;
pub mod sources;
pub use live::{
    apply_rendered, apply_unit, cluster_capabilities, helm_lookup, installed_probe, ApplyDriver,
    DiffDriver, KubeLookup, SourceFetcher,
};

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_units::SourceRef;
    use serde_json::json;

    fn req(values_files: &[&str], chart_path: Option<&str>) -> HelmRequest {
        HelmRequest {
            chart: ChartSource::Template {
                chart: "./charts/c".into(),
                version: None,
                source: SourceRef {
                    kind: "GitRepository".into(),
                    name: "flux-system".into(),
                    namespace: "flux-system".into(),
                },
                values_files: values_files.iter().map(|s| s.to_string()).collect(),
            },
            chart_path: chart_path.map(PathBuf::from),
            source_root: PathBuf::from("/"),
            release_name: "r".into(),
            namespace: "apps".into(),
            values: json!({"b": "user"}),
            include_crds: true,
            source: None,
            unit: None,
        }
    }

    #[test]
    fn values_files_replace_the_chart_defaults_and_hooks_are_kept() {
        let fs = capstan_vfs::MemFs::new()
            .with("/charts/c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 1.0.0\n")
            .with("/charts/c/values.yaml", "a: default\nb: default\nc: default\n")
            .with("/charts/c/values-prod.yaml", "a: prod\n")
            .with("/envs/prod.yaml", "c: env\n")
            .with(
                "/charts/c/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: {{ .Values.a | default \"unset\" | quote }}\n  b: {{ .Values.b | quote }}\n  c: {{ .Values.c | default \"unset\" | quote }}\n",
            )
            .with(
                "/charts/c/templates/hook.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook\n  annotations:\n    helm.sh/hook: pre-install\n",
            );
        let out = NativeRenderer
            .helm(
                &fs,
                &req(
                    &[
                        "values.yaml",
                        "charts/c/values-prod.yaml",
                        "./envs/prod.yaml",
                    ],
                    Some("/charts/c"),
                ),
            )
            .unwrap();
        assert_eq!(
            out[0]["data"],
            json!({"a": "prod", "b": "user", "c": "env"})
        );
        assert!(capstan_units::is_helm_hook(&out[1]));
        // Without values.yaml in the list, the chart's defaults are gone.
        let out = NativeRenderer
            .helm(&fs, &req(&["charts/c/values-prod.yaml"], Some("/charts/c")))
            .unwrap();
        assert_eq!(
            out[0]["data"],
            json!({"a": "prod", "b": "user", "c": "unset"})
        );
        let e = NativeRenderer
            .helm(&fs, &req(&["nope.yaml"], Some("/charts/c")))
            .unwrap_err();
        assert!(e.contains("valuesFiles: nope.yaml"), "{e}");
    }

    /// Flux: `valuesFiles` of a chart in a source tree are relative to that source's
    /// root and never leave it (`..` stops there).
    #[test]
    fn values_files_stay_beneath_the_charts_source_root() {
        let fs = capstan_vfs::MemFs::new()
            .with("/src/charts/c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 1.0.0\n")
            .with(
                "/src/charts/c/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: {{ .Values.a | default \"unset\" | quote }}\n",
            )
            .with("/src/prod.yaml", "a: source\n")
            .with("/prod.yaml", "a: repository\n");
        let mut r = req(&["../../prod.yaml"], Some("/src/charts/c"));
        r.source_root = PathBuf::from("/src");
        let out = NativeRenderer.helm(&fs, &r).unwrap();
        assert_eq!(out[0]["data"]["a"], "source");
        let mut r = req(&["/prod.yaml"], Some("/src/charts/c"));
        r.source_root = PathBuf::from("/src");
        let out = NativeRenderer.helm(&fs, &r).unwrap();
        assert_eq!(out[0]["data"]["a"], "source");
    }

    /// A fetched chart directory is read beneath itself: a template linked out of it
    /// fails the load, naming the link.
    #[cfg(unix)]
    #[test]
    fn fetched_chart_directories_are_confined() {
        let dir = std::env::temp_dir().join(format!("capstan-engine-chart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("artifact/c/templates")).unwrap();
        std::fs::write(
            dir.join("artifact/c/Chart.yaml"),
            "apiVersion: v2\nname: c\nversion: 1.0.0\n",
        )
        .unwrap();
        std::fs::write(dir.join("secret"), "TOP-SECRET").unwrap();
        let chart = load_local_chart(&dir.join("artifact")).unwrap();
        assert_eq!(chart.name(), "c");
        std::os::unix::fs::symlink("../../../secret", dir.join("artifact/c/templates/x.yaml"))
            .unwrap();
        let e = load_local_chart(&dir.join("artifact")).unwrap_err();
        assert!(
            e.contains("/c/templates/x.yaml")
                && e.contains("../../../secret")
                && !e.contains("TOP-SECRET"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The deepest recursion the template budgets allow fits in a render thread's stack
    /// (a debug build): a self-including template ends in Helm's nested-reference error.
    /// Measured: 12 MiB overflow, 32 MiB suffice. Ignored by default: 1,000 nested
    /// includes take minutes in a debug build (`cargo test -p capstan-engine -- --ignored`).
    #[test]
    #[ignore = "slow in debug builds"]
    fn recursive_include_to_the_budget_fits_in_a_render_thread() {
        let fs = capstan_vfs::MemFs::new()
            .with("/charts/c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 1.0.0\n")
            .with(
                "/charts/c/templates/_loop.tpl",
                "{{- define \"loop\" -}}{{ include \"loop\" . }}{{- end -}}",
            )
            .with(
                "/charts/c/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: {{ include \"loop\" . | quote }}\n",
            );
        let e = spawn_render("render", move || {
            NativeRenderer.helm(&fs, &req(&[], Some("/charts/c")))
        })
        .unwrap()
        .join()
        .expect("no panic")
        .unwrap_err();
        assert!(e.contains("nested reference"), "{e}");
    }

    /// One unit's `dependsOn` naming nothing, and a cycle, block those units (and what
    /// waits for them) only, when isolating; they fail the whole plan otherwise.
    #[test]
    fn isolating_plans_block_missing_dependencies_and_cycles_only() {
        let ks = |name: &str, deps: &[&str]| {
            let deps: String = deps.iter().map(|d| format!("  - name: {d}\n")).collect();
            let deps = if deps.is_empty() {
                String::new()
            } else {
                format!("  dependsOn:\n{deps}")
            };
            format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{deps}")
        };
        let fs = capstan_vfs::MemFs::new()
            .with("/clusters/c/ok.yaml", ks("ok", &[]))
            .with("/clusters/c/after-ok.yaml", ks("after-ok", &["ok"]))
            .with("/clusters/c/typo.yaml", ks("typo", &["ok", "nope"]))
            .with("/clusters/c/after-typo.yaml", ks("after-typo", &["typo"]))
            .with("/clusters/c/a.yaml", ks("a", &["b"]))
            .with("/clusters/c/b.yaml", ks("b", &["a"]))
            .with(
                "/app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: default\n",
            );
        let opts = LoadOptions::new("clusters/c");
        let strict = render_cluster(&fs, &capstan_units::NoCluster, &opts);
        assert!(strict.plan.is_err());
        let r = render_cluster_isolating(&fs, &NativeRenderer, &capstan_units::NoCluster, &opts);
        let plan = r.plan.as_ref().expect("a plan for the others");
        let id = |n: &str| UnitId::new("Kustomization", "flux-system", n);
        assert!(plan.order.contains(&id("ok")) && plan.order.contains(&id("after-ok")));
        let why = |n: &str| r.blocked.get(&id(n)).cloned().unwrap_or_default();
        assert!(
            why("typo").contains(
                "spec.dependsOn names Kustomization/flux-system/nope, which does not exist"
            ),
            "{}",
            why("typo")
        );
        assert!(why("after-typo").contains("typo"), "{}", why("after-typo"));
        assert!(why("a").contains("dependency cycle") && why("b").contains("dependency cycle"));
        for n in ["ok", "after-ok", "flux-system"] {
            assert!(!r.blocked.contains_key(&id(n)), "{n} blocked: {}", why(n));
        }
    }

    #[test]
    fn offline_charts_from_helm_repositories_are_a_clear_error() {
        let mut r = req(&[], None);
        r.source = Some(
            json!({"apiVersion":"source.toolkit.fluxcd.io/v1","kind":"HelmRepository","metadata":{"name":"charts","namespace":"apps"}}),
        );
        let e = NativeRenderer
            .helm(&capstan_vfs::MemFs::new(), &r)
            .unwrap_err();
        assert!(
            e.contains("HelmRepository apps/charts") && e.contains("fetched by the agent"),
            "{e}"
        );
    }
}
