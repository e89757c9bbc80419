//! A cluster's units, read the way Flux reads them.
//!
//! Data flows one way: a repository tree ([`capstan_vfs::FileSystem`]) and a cluster
//! path (`clusters/<name>`) go in; [`RenderedUnit`]s come out, each with the objects
//! it will apply. The cluster path is built like Flux's root `flux-system`
//! Kustomization; every Flux `Kustomization` found in a unit's output becomes a unit of
//! its own, recursively. Rendering a unit follows Flux's kustomize-controller:
//!
//! 1. `spec.path` is resolved against the repository root;
//! 2. Flux's kustomization generator runs in memory: if the directory has no
//!    `kustomization.yaml`, one listing every manifest (and every sub-directory holding
//!    a kustomization) is generated; then `targetNamespace`, `namePrefix`,
//!    `nameSuffix`, `patches`, `images` and `components` are merged into it;
//! 3. kustomize builds it (through a [`Renderer`], so this crate stays pure);
//! 4. `commonMetadata` labels and annotations are set on every object;
//! 5. `postBuild.substitute`/`substituteFrom` variables are substituted (ConfigMaps and
//!    Secrets are looked up among the rendered objects of the repository first, then in
//!    the cluster through a [`ClusterLookup`]).
//!
//! Every Flux `HelmRelease` becomes a unit too: its values (`valuesFrom` then
//! `spec.values`) are collected like `substituteFrom`, its chart source (a
//! HelmRepository, OCIRepository or HelmChart, when the chart is not in the repository
//! tree) is found among the rendered toolkit objects, else in the cluster, and the
//! [`Renderer`] renders the chart ([`HelmRequest`]). Hooks (`helm.sh/hook`) are set
//! apart in [`RenderedUnit::hooks`] (test hooks dropped), for the apply layer to run in
//! phases.
//!
//! A unit that fails to render is reported with its error; the others still render.
//!
//! # The unit model
//!
//! Below the readers, a unit is dialect-neutral ([`model`]): an id, a target cluster
//! (and identity), a render recipe (a kustomize directory, a Helm chart with values, a
//! plain directory of manifests), apply options (prune, wait, force, timeout, health
//! checks, namespace creation) and dependencies. This crate's loader is the Flux reader;
//! [`UnitModel::of`] gives its units in the model's terms, and an Argo CD reader is to
//! produce the same model beside it. The toolkit's kinds, versions and annotations are
//! tabled once, in [`toolkit`].

mod duration;
mod error;
mod generator;
mod helmrelease;
mod images;
pub mod isolate;
pub mod model;
mod spec;
pub mod toolkit;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use capstan_graph::UnitId;
use capstan_vfs::FileSystem;
use serde_json::Value;

pub use duration::parse_duration;
pub use error::{did_you_mean, ErrorKind, Location, UnitError, UnitErrorData};
pub use generator::{flux_kustomization, KUSTOMIZATION_FILES};
pub use helmrelease::{merge_values, set_path, ChartSource, CrdPolicy, HelmReleaseSpec, ValuesRef};
pub use images::{ImageResolver, ResolvedImage, SharedImageResolver};
pub use model::{Recipe, UnitModel};
pub use spec::{
    HealthCheckRef, KustomizationSpec, SourceRef, SubstituteRef, HELM_GROUP, KUSTOMIZE_GROUP,
    SOURCE_GROUP,
};

/// Annotation or label that turns substitution off for one object.
pub const SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// Builds a kustomization directory. Implemented with capstan's kustomize engine by the
/// caller; tests may use anything.
pub trait Renderer: Send + Sync {
    /// `kustomize build dir`, with files read from `fs`.
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String>;

    /// Render a Helm chart for a HelmRelease: every object, hooks included (they keep
    /// their `helm.sh/hook` annotation; the loader puts them in
    /// [`RenderedUnit::hooks`]). The default refuses: renderers without a Helm engine
    /// report HelmRelease units as failed.
    fn helm(&self, _fs: &dyn FileSystem, req: &HelmRequest) -> Result<Vec<Value>, String> {
        Err(format!(
            "cannot render chart {:?}: this renderer has no Helm engine",
            req.chart
        ))
    }
}

/// What a [`Renderer`] needs to render a HelmRelease.
#[derive(Debug, Clone)]
pub struct HelmRequest {
    pub chart: ChartSource,
    /// The chart's directory (or archive) in the repository, when the chart comes from
    /// the repository itself (a GitRepository or Bucket source).
    pub chart_path: Option<PathBuf>,
    /// Where the tree of the chart's source starts (`/` for the repository itself, the
    /// mount point of another GitRepository): `spec.chart.spec.valuesFiles` of a chart
    /// in a source tree are relative to it.
    pub source_root: PathBuf,
    pub release_name: String,
    pub namespace: String,
    /// User values: `valuesFrom` merged in order, then `spec.values`.
    pub values: Value,
    /// Include the chart's `crds/` (install.crds is not Skip).
    pub include_crds: bool,
    /// The chart's source object (HelmRepository, OCIRepository, HelmChart) when the chart
    /// does not come from the repository itself: found among the toolkit objects the
    /// repository renders, else in the cluster ([`ClusterLookup`]).
    pub source: Option<Value>,
    /// The HelmRelease unit being rendered (a live renderer asks whether it is
    /// installed, for `.Release.IsUpgrade`).
    pub unit: Option<UnitId>,
}

/// Set (to `disabled`) on a HelmRelease's objects annotated
/// `helm.sh/resource-policy: keep`, which capstan's prune then leaves in place.
pub const PRUNE_DISABLED_ANNOTATION: &str = "capstan.io/prune";

/// The Helm hook annotation: objects carrying it are hooks, applied in phases around
/// the release's objects rather than with them.
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";

/// Is this rendered object a Helm hook?
pub fn is_helm_hook(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(HELM_HOOK_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// Is this hook only a test hook (`test`, `test-success`), which capstan never runs?
fn is_test_hook(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(HELM_HOOK_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| {
            s.split(',')
                .map(str::trim)
                .all(|p| p == "test" || p == "test-success" || p.is_empty())
        })
}

/// Reads objects from the live cluster: ConfigMaps and Secrets for `substituteFrom` and
/// `valuesFrom`, Flux sources (HelmRepository, OCIRepository, HelmChart) for HelmRelease
/// charts the repository does not declare.
pub trait ClusterLookup: Send + Sync {
    /// The object, `Ok(None)` if it does not exist.
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, String>;
}

/// No cluster: every lookup finds nothing (offline `capstan build`).
pub struct NoCluster;

impl ClusterLookup for NoCluster {
    fn get(&self, _: &str, _: &str, _: &str) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

/// Flux's SOPS decryption (`spec.decryption`), supplied by the caller (the CLI, through
/// capstan-sops) so this crate stays pure. `unit` is the Kustomization object (its
/// `spec.decryption` says whether and with which keys); `root` is true for the root of the
/// cluster path, which has no Kustomization of its own when the repository declares none.
pub trait Decryptor: Send + Sync {
    /// Flux's `DecryptSources`: the files of the kustomization at `dir` (secretGenerator
    /// files and envs, patches) to read decrypted, as (path, plaintext).
    fn sources(
        &self,
        unit: &Value,
        root: bool,
        fs: &dyn FileSystem,
        source_root: &Path,
        dir: &Path,
    ) -> Result<Vec<(PathBuf, Vec<u8>)>, String>;
    /// Flux's `DecryptResource`, on every built object, before post-build substitution.
    fn objects(&self, unit: &Value, root: bool, objects: &mut [Value]) -> Result<(), String>;
}

/// A shared [`Decryptor`] for [`LoadOptions::decryptor`].
#[derive(Clone)]
pub struct SharedDecryptor(pub std::sync::Arc<dyn Decryptor>);

impl std::fmt::Debug for SharedDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decryptor")
    }
}

/// Where to start and how to behave.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The cluster's directory in the repository, e.g. `clusters/staging`.
    pub cluster_path: String,
    /// Name and namespace of the root unit when the repository does not declare one
    /// (Flux bootstrap calls it `flux-system/flux-system`).
    pub root_name: String,
    pub root_namespace: String,
    /// Unset variables with no default are errors (default) or empty strings.
    pub substitution: capstan_subst::Mode,
    /// Where the trees of sources other than the repository itself are mounted in the
    /// file system, by (kind, namespace, name) of the source: a unit whose `sourceRef`
    /// (or a HelmRelease whose chart source) names one reads its paths there. Units of
    /// any other source read the repository (local builds have only the working tree).
    pub source_roots: BTreeMap<(String, String, String), PathBuf>,
    /// The repository as a source (kind, namespace, name). When set, a Kustomization whose
    /// `sourceRef` names another GitRepository/OCIRepository that is not in
    /// `source_roots` fails with [`SOURCE_NOT_READY`] instead of reading the repository
    /// (the agent fetches sources; offline builds leave this unset).
    pub root_source: Option<(String, String, String)>,
    /// SOPS decryption of units (`spec.decryption`); `None`: nothing is decrypted.
    pub decryptor: Option<SharedDecryptor>,
    /// Apply-time image policies (`capstan.io/image-policy` on a Kustomization); `None`:
    /// the annotation is ignored.
    pub image_resolver: Option<SharedImageResolver>,
}

/// Start of the error of a unit whose source has no artifact (see
/// [`LoadOptions::root_source`]).
pub const SOURCE_NOT_READY: &str = "source not ready:";

impl LoadOptions {
    pub fn new(cluster_path: impl Into<String>) -> Self {
        LoadOptions {
            cluster_path: cluster_path.into(),
            root_name: "flux-system".into(),
            root_namespace: "flux-system".into(),
            substitution: capstan_subst::Mode::Strict,
            source_roots: BTreeMap::new(),
            root_source: None,
            decryptor: None,
            image_resolver: None,
        }
    }
}

/// A unit before rendering.
#[derive(Debug, Clone)]
pub struct Unit {
    pub id: UnitId,
    pub spec: KustomizationSpec,
    /// The unit whose output declared this one (`None` for the root).
    pub parent: Option<UnitId>,
    /// The declaring object as rendered (the root's is synthesised).
    pub object: Value,
    /// The directory of the unit that declared this one, to find its file in errors.
    pub declared_in: Option<PathBuf>,
    /// Set for HelmRelease units. `spec` then carries only the scheduling settings
    /// (dependsOn, suspend, wait, timeout, prune) in Kustomization terms.
    pub helm: Option<HelmReleaseSpec>,
    /// Where the unit's source tree is in the file system (`/`: the repository).
    pub source_root: PathBuf,
}

/// A unit and the objects it applies.
#[derive(Debug, Clone)]
pub struct RenderedUnit {
    pub unit: Unit,
    /// Objects to apply, in kustomize's output order.
    pub objects: Vec<Value>,
    /// Flux toolkit objects found in the output (Kustomizations, HelmReleases,
    /// sources): capstan acts on them instead of applying them.
    pub consumed: Vec<Value>,
    /// Helm hooks of a HelmRelease unit (objects annotated `helm.sh/hook`, test hooks
    /// left out), in Helm's install order. Applied in phases around `objects`, never
    /// recorded in the inventory.
    pub hooks: Vec<Value>,
    /// Images elected by the unit's `capstan.io/image-policy` ImagePolicies, merged into
    /// its `spec.images` for this render (nothing is committed).
    pub images: Vec<ResolvedImage>,
}

/// What became of a unit.
#[derive(Debug, Clone)]
pub enum UnitOutcome {
    Rendered(RenderedUnit),
    Failed { unit: Unit, error: UnitError },
}

impl UnitOutcome {
    pub fn unit(&self) -> &Unit {
        match self {
            UnitOutcome::Rendered(r) => &r.unit,
            UnitOutcome::Failed { unit, .. } => unit,
        }
    }
    pub fn id(&self) -> &UnitId {
        &self.unit().id
    }
}

/// Everything read for one cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterUnits {
    /// In discovery order (root first).
    pub units: Vec<UnitOutcome>,
    /// Problems that are not any one unit's (e.g. a missing cluster path).
    pub errors: Vec<UnitError>,
    /// Non-fatal notes (e.g. HelmReleases not handled yet).
    pub warnings: Vec<String>,
}

impl ClusterUnits {
    pub fn get(&self, id: &UnitId) -> Option<&UnitOutcome> {
        self.units.iter().find(|u| u.id() == id)
    }
    pub fn failed(&self) -> impl Iterator<Item = (&Unit, &UnitError)> {
        self.units.iter().filter_map(|u| match u {
            UnitOutcome::Failed { unit, error } => Some((unit, error)),
            _ => None,
        })
    }
    pub fn rendered(&self) -> impl Iterator<Item = &RenderedUnit> {
        self.units.iter().filter_map(|u| match u {
            UnitOutcome::Rendered(r) => Some(r),
            _ => None,
        })
    }
}

/// Is this object a Flux toolkit object capstan consumes rather than applies?
/// Flux 2.7's `ArtifactGenerator`s (source-watcher) count as toolkit objects too: capstan
/// does not run source-watcher, so they are reported rather than applied.
pub fn is_toolkit_object(obj: &Value) -> bool {
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = capstan_graph::group_of(api);
    group == KUSTOMIZE_GROUP
        || group == HELM_GROUP
        || group == SOURCE_GROUP
        || group == toolkit::ARTIFACT_GENERATOR.group
}

/// The warning for an `ArtifactGenerator` found in a unit's output: what it would
/// generate, and that capstan neither runs nor applies it.
fn artifact_generator_warning(obj: &Value) -> String {
    let artifacts: Vec<&str> = obj
        .pointer("/spec/artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("name").and_then(Value::as_str))
        .collect();
    format!(
        "ArtifactGenerator {}/{}: not supported by capstan (Flux 2.7 source-watcher composes ExternalArtifacts from other sources; capstan neither generates them nor applies the ArtifactGenerator): the ExternalArtifact{} {} cannot be read and the units naming {} fail",
        meta_str(obj, "namespace").unwrap_or("default"),
        meta_str(obj, "name").unwrap_or(""),
        if artifacts.len() == 1 { "" } else { "s" },
        if artifacts.is_empty() { "it would generate".to_string() } else { artifacts.join(", ") },
        if artifacts.len() == 1 { "it" } else { "them" },
    )
}

fn kind_of(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// Read and render every unit of a cluster.
pub fn load(
    fs: &dyn FileSystem,
    renderer: &dyn Renderer,
    cluster: &dyn ClusterLookup,
    opts: &LoadOptions,
) -> ClusterUnits {
    Loader {
        fs,
        renderer,
        cluster,
        opts,
    }
    .run()
}

struct Loader<'a> {
    fs: &'a dyn FileSystem,
    renderer: &'a dyn Renderer,
    cluster: &'a dyn ClusterLookup,
    opts: &'a LoadOptions,
}

impl Loader<'_> {
    fn run(&self) -> ClusterUnits {
        let mut out = ClusterUnits::default();
        let root_dir = capstan_vfs::join(Path::new("/"), &self.opts.cluster_path);
        if let Err(e) = self.fs.stat(&root_dir) {
            out.errors.push(UnitError::new(
                None,
                format!("cluster path `{}`: {e}", self.opts.cluster_path),
            ));
            return out;
        }
        if !self.fs.is_dir(&root_dir) {
            let mut e = UnitError::new(
                None,
                format!(
                    "cluster path `{}` is not a directory in the repository",
                    self.opts.cluster_path
                ),
            );
            if let Some(h) = self.suggest_dir(&root_dir) {
                e = e.hint(format!("did you mean `{h}`?"));
            }
            out.errors.push(e);
            return out;
        }
        let root_id = UnitId::new(
            "Kustomization",
            self.opts.root_namespace.clone(),
            self.opts.root_name.clone(),
        );
        let root_spec = KustomizationSpec::parse(
            &serde_json::json!({"apiVersion": format!("{KUSTOMIZE_GROUP}/v1"), "kind": "Kustomization", "spec": {"path": self.opts.cluster_path, "prune": true}}),
            &root_id,
        )
        .expect("synthetic root spec is valid");
        let root_object = serde_json::json!({
            "apiVersion": format!("{KUSTOMIZE_GROUP}/v1"), "kind": "Kustomization",
            "metadata": {"name": root_id.name, "namespace": root_id.namespace},
            "spec": {"path": self.opts.cluster_path, "prune": true},
        });
        let mut queue: VecDeque<Unit> = VecDeque::new();
        queue.push_back(Unit {
            id: root_id.clone(),
            spec: root_spec,
            parent: None,
            object: root_object,
            declared_in: None,
            helm: None,
            source_root: PathBuf::from("/"),
        });
        let mut seen: HashSet<UnitId> = HashSet::new();
        seen.insert(root_id);
        // ConfigMaps/Secrets rendered so far, for substituteFrom.
        let mut repo_objects: HashMap<(String, String, String), Value> = HashMap::new();
        // Flux sources rendered so far, for HelmRelease charts.
        let mut repo_sources: HashMap<(String, String, String), Value> = HashMap::new();
        // ImagePolicies and ImageRepositories rendered so far, for capstan.io/image-policy.
        let mut repo_images = images::ImageObjects::new();
        let mut deferred_rounds = 0usize;
        let mut root_redeclared = false;

        while let Some(unit) = queue.pop_front() {
            // substituteFrom: wait until every referenced object has been rendered, as
            // long as other units may still produce it.
            let last_chance = deferred_rounds > queue.len();
            // A panic (a bug in an engine) fails this unit only.
            let inputs = isolate::catch(|| match &unit.helm {
                Some(hr) => self
                    .collect_values(&unit, hr, &repo_objects, last_chance)
                    .and_then(|v| {
                        let Some(v) = v else { return Ok(None) };
                        Ok(self
                            .find_source(&unit, hr, &repo_sources, last_chance)?
                            .map(|s| Inputs::Values(v, s)))
                    }),
                None => self
                    .collect_vars(&unit, &repo_objects, last_chance)
                    .and_then(|v| {
                        let Some(v) = v else { return Ok(None) };
                        Ok(images::resolve(
                            &unit,
                            self.opts.image_resolver.as_ref(),
                            &repo_images,
                            self.cluster,
                            last_chance,
                        )?
                        .map(|i| Inputs::Vars(v, i)))
                    }),
            })
            .unwrap_or_else(|p| {
                Err(UnitError::from_panic(
                    Some(unit.id.clone()),
                    "reading its inputs",
                    p,
                ))
            });
            let inputs = match inputs {
                Ok(Some(v)) => v,
                Ok(None) => {
                    deferred_rounds += 1;
                    queue.push_back(unit);
                    continue;
                }
                Err(e) => {
                    out.units.push(UnitOutcome::Failed { unit, error: e });
                    continue;
                }
            };
            deferred_rounds = 0;
            let rendered = isolate::catch(|| match (inputs, &unit.helm) {
                (Inputs::Values(values, source), Some(hr)) => self
                    .render_helm(&unit, hr, &values, source)
                    .map(|(o, h)| (o, h, Vec::new())),
                (Inputs::Vars(vars, imgs), _) if !imgs.is_empty() => self
                    .render(&images::with_images(&unit, &imgs), &vars)
                    .map(|o| (o, Vec::new(), imgs)),
                (Inputs::Vars(vars, _), _) => self
                    .render(&unit, &vars)
                    .map(|o| (o, Vec::new(), Vec::new())),
                (Inputs::Values(..), None) => {
                    unreachable!("values are only collected for HelmReleases")
                }
            })
            .unwrap_or_else(|p| Err(UnitError::from_panic(Some(unit.id.clone()), "rendering", p)));
            match rendered {
                Err(error) => out.units.push(UnitOutcome::Failed { unit, error }),
                Ok((objects, hooks, resolved_images)) => {
                    let mut applied = Vec::with_capacity(objects.len());
                    let mut consumed = Vec::new();
                    let mut children = Vec::new();
                    let mut failed: Option<UnitError> = None;
                    for obj in objects {
                        if images::is_image_object(&obj) {
                            let key = (
                                kind_of(&obj).to_string(),
                                meta_str(&obj, "namespace").unwrap_or("default").to_string(),
                                meta_str(&obj, "name").unwrap_or("").to_string(),
                            );
                            repo_images.insert(key, obj.clone());
                        }
                        if !is_toolkit_object(&obj) {
                            let kind = kind_of(&obj);
                            if kind == "ConfigMap" || kind == "Secret" {
                                let key = (
                                    kind.to_string(),
                                    meta_str(&obj, "namespace").unwrap_or("default").to_string(),
                                    meta_str(&obj, "name").unwrap_or("").to_string(),
                                );
                                repo_objects.insert(key, obj.clone());
                            }
                            applied.push(obj);
                            continue;
                        }
                        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                        if capstan_graph::group_of(api) == toolkit::ARTIFACT_GENERATOR.group {
                            out.warnings.push(artifact_generator_warning(&obj));
                        }
                        if capstan_graph::group_of(api) == SOURCE_GROUP {
                            let key = (
                                kind_of(&obj).to_string(),
                                meta_str(&obj, "namespace").unwrap_or("default").to_string(),
                                meta_str(&obj, "name").unwrap_or("").to_string(),
                            );
                            repo_sources.insert(key, obj.clone());
                        }
                        if capstan_graph::group_of(api) == KUSTOMIZE_GROUP
                            && kind_of(&obj) == "Kustomization"
                        {
                            match isolate::catch(|| self.child_unit(&unit, &obj)).unwrap_or_else(
                                |p| {
                                    Err(UnitError::from_panic(
                                        Some(unit.id.clone()),
                                        "reading a child Kustomization",
                                        p,
                                    ))
                                },
                            ) {
                                Ok(child) => children.push(child),
                                Err(e) => {
                                    failed.get_or_insert(e);
                                }
                            }
                        } else if capstan_graph::group_of(api) == HELM_GROUP
                            && kind_of(&obj) == "HelmRelease"
                        {
                            match isolate::catch(|| self.helm_unit(&unit, &obj)).unwrap_or_else(
                                |p| {
                                    Err(UnitError::from_panic(
                                        Some(unit.id.clone()),
                                        "reading a HelmRelease",
                                        p,
                                    ))
                                },
                            ) {
                                Ok(child) => children.push(child),
                                Err(e) => {
                                    failed.get_or_insert(e);
                                }
                            }
                        }
                        consumed.push(obj);
                    }
                    if let Some(error) = failed {
                        out.units.push(UnitOutcome::Failed { unit, error });
                        continue;
                    }
                    let mut rendered = RenderedUnit {
                        unit,
                        objects: applied,
                        consumed,
                        hooks,
                        images: resolved_images,
                    };
                    for child in children {
                        // A repository that declares its own root (Flux bootstrap's
                        // flux-system Kustomization pointing at the cluster path) renames
                        // the synthetic root instead of rendering it twice.
                        if rendered.unit.parent.is_none()
                            && !root_redeclared
                            && normalize_rel(&child.spec.path)
                                == normalize_rel(&rendered.unit.spec.path)
                        {
                            root_redeclared = true;
                            seen.remove(&rendered.unit.id);
                            seen.insert(child.id.clone());
                            rendered.unit.id = child.id.clone();
                            rendered.unit.spec = child.spec.clone();
                            rendered.unit.object = child.object.clone();
                            continue;
                        }
                        if !seen.insert(child.id.clone()) {
                            out.errors.push(
                                UnitError::new(
                                    Some(child.id.clone()),
                                    format!("declared twice (again by {})", rendered.unit.id),
                                )
                                .at(locate(
                                    self.fs,
                                    &unit_dir(&rendered.unit),
                                    "Kustomization",
                                    &child.id.name,
                                ))
                                .hint("every Kustomization needs a unique namespace/name"),
                            );
                            continue;
                        }
                        queue.push_back(child);
                    }
                    out.units.push(UnitOutcome::Rendered(rendered));
                }
            }
        }
        out
    }

    fn suggest_dir(&self, dir: &Path) -> Option<String> {
        let parent = dir.parent()?;
        let name = dir.file_name()?.to_string_lossy().into_owned();
        let entries = self.fs.read_dir(parent).ok()?;
        let dirs: Vec<String> = entries
            .into_iter()
            .filter(|e| self.fs.is_dir(&parent.join(e)))
            .collect();
        did_you_mean(&name, dirs.iter().map(String::as_str)).map(|m| {
            parent
                .join(m)
                .to_string_lossy()
                .trim_start_matches('/')
                .to_string()
        })
    }

    /// The directory of a source's tree: its mount, or the repository itself.
    fn source_root(&self, source: Option<&SourceRef>) -> PathBuf {
        source
            .and_then(|s| {
                self.opts
                    .source_roots
                    .get(&(s.kind.clone(), s.namespace.clone(), s.name.clone()))
            })
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    fn child_unit(&self, parent: &Unit, obj: &Value) -> Result<Unit, UnitError> {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let namespace = meta_str(obj, "namespace").unwrap_or("default").to_string();
        let id = UnitId::new("Kustomization", namespace, name.clone());
        let spec = KustomizationSpec::parse(obj, &id).map_err(|e| {
            e.at(
                locate_recursive(self.fs, &unit_dir(parent), "Kustomization", &name)
                    .unwrap_or_default(),
            )
        })?;
        let source_root = self.source_root(spec.source_ref.as_ref());
        Ok(Unit {
            id,
            spec,
            parent: Some(parent.id.clone()),
            object: obj.clone(),
            declared_in: Some(unit_dir(parent)),
            helm: None,
            source_root,
        })
    }

    fn helm_unit(&self, parent: &Unit, obj: &Value) -> Result<Unit, UnitError> {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let namespace = meta_str(obj, "namespace").unwrap_or("default").to_string();
        let id = UnitId::new("HelmRelease", namespace, name.clone());
        let hr = HelmReleaseSpec::parse(obj, &id).map_err(|e| {
            e.at(
                locate_recursive(self.fs, &unit_dir(parent), "HelmRelease", &name)
                    .unwrap_or_default(),
            )
        })?;
        // Scheduling settings in Kustomization terms; Flux waits for a release's
        // resources unless install.disableWait.
        let mut spec = KustomizationSpec::parse(
            &serde_json::json!({"apiVersion": format!("{KUSTOMIZE_GROUP}/v1"), "kind": "Kustomization", "spec": {"path": "", "prune": true}}),
            &id,
        )
        .expect("synthetic spec is valid");
        spec.depends_on = hr.depends_on.clone();
        spec.suspend = hr.suspend;
        spec.wait = !hr.disable_wait;
        spec.timeout = hr.timeout;
        spec.interval = hr.interval;
        Ok(Unit {
            id,
            spec,
            parent: Some(parent.id.clone()),
            object: obj.clone(),
            declared_in: Some(unit_dir(parent)),
            helm: Some(hr),
            source_root: PathBuf::from("/"),
        })
    }

    /// A ConfigMap or Secret from the rendered repository, else (on the last chance)
    /// the cluster. `Ok(None)`: defer; `Ok(Some(None))`: absent and `optional`; absent
    /// and required is an error naming `field`.
    #[allow(clippy::too_many_arguments)]
    fn find_object(
        &self,
        unit: &Unit,
        kind: &str,
        name: &str,
        optional: bool,
        field: &str,
        repo: &HashMap<(String, String, String), Value>,
        last_chance: bool,
    ) -> Result<Option<Option<Value>>, UnitError> {
        let key = (
            kind.to_string(),
            unit.id.namespace.clone(),
            name.to_string(),
        );
        let found = match repo.get(&key) {
            Some(o) => Some(o.clone()),
            None if !last_chance => return Ok(None),
            None => self
                .cluster
                .get(kind, &unit.id.namespace, name)
                .map_err(|e| {
                    UnitError::new(
                        Some(unit.id.clone()),
                        format!("looking up {kind} {}/{name}: {e}", unit.id.namespace),
                    )
                    .field(field.to_string())
                    .kind(ErrorKind::Lookup)
                })?,
        };
        if found.is_none() && !optional {
            return Err(UnitError::new(
                Some(unit.id.clone()),
                format!(
                    "{kind} {}/{name} was found neither in the repository nor in the cluster",
                    unit.id.namespace
                ),
            )
            .field(field.to_string())
            .hint("create it, or mark the reference `optional: true`")
            .kind(ErrorKind::Lookup));
        }
        Ok(Some(found))
    }

    /// Helm values for a HelmRelease unit: `valuesFrom` in order, then `spec.values`.
    fn collect_values(
        &self,
        unit: &Unit,
        hr: &HelmReleaseSpec,
        repo: &HashMap<(String, String, String), Value>,
        last_chance: bool,
    ) -> Result<Option<Value>, UnitError> {
        let mut values = Value::Object(Default::default());
        for (i, r) in hr.values_from.iter().enumerate() {
            let field = format!("spec.valuesFrom[{i}]");
            let Some(found) = self.find_object(
                unit,
                &r.kind,
                &r.name,
                r.optional,
                &field,
                repo,
                last_chance,
            )?
            else {
                return Ok(None);
            };
            let Some(obj) = found else { continue };
            let Some(text) = data_value(&obj, &r.kind, &r.values_key) else {
                if r.optional {
                    continue;
                }
                return Err(UnitError::new(
                    Some(unit.id.clone()),
                    format!(
                        "{} {}/{} has no key {:?}",
                        r.kind, unit.id.namespace, r.name, r.values_key
                    ),
                )
                .field(format!("{field}.valuesKey")));
            };
            match &r.target_path {
                Some(path) => set_path(&mut values, path, Value::String(text)),
                None => {
                    let docs = capstan_yaml::parse_documents_last_key_wins(&text, &r.values_key)
                        .map_err(|e| {
                            UnitError::new(
                                Some(unit.id.clone()),
                                format!(
                                    "{} {}/{} key {}: {e}",
                                    r.kind, unit.id.namespace, r.name, r.values_key
                                ),
                            )
                            .field(field.clone())
                        })?;
                    if let Some(d) = docs.first() {
                        merge_values(&mut values, &capstan_yaml::to_json(d));
                    }
                }
            }
        }
        if !hr.values.is_null() {
            merge_values(&mut values, &hr.values);
        }
        Ok(Some(values))
    }

    /// The post-build variables of a unit; `Ok(None)` to defer until more of the
    /// repository has rendered. With `last_chance`, missing objects are looked up in the
    /// cluster.
    fn collect_vars(
        &self,
        unit: &Unit,
        repo: &HashMap<(String, String, String), Value>,
        last_chance: bool,
    ) -> Result<Option<BTreeMap<String, String>>, UnitError> {
        let mut vars = BTreeMap::new();
        for (i, r) in unit.spec.substitute_from.iter().enumerate() {
            let field = format!("spec.postBuild.substituteFrom[{i}]");
            let Some(found) = self.find_object(
                unit,
                &r.kind,
                &r.name,
                r.optional,
                &field,
                repo,
                last_chance,
            )?
            else {
                return Ok(None);
            };
            let Some(obj) = found else { continue };
            let data = obj.get("data").and_then(Value::as_object);
            for (k, v) in data.into_iter().flatten() {
                let s = v.as_str().unwrap_or_default();
                let value = if r.kind == "Secret" {
                    use base64::Engine;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map_err(|_| {
                            UnitError::new(
                                Some(unit.id.clone()),
                                format!(
                                    "Secret {}/{} key {k}: data is not valid base64",
                                    unit.id.namespace, r.name
                                ),
                            )
                            .field(field.clone())
                        })?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    s.to_string()
                };
                vars.insert(k.clone(), value.replace('\n', ""));
            }
            if r.kind == "Secret" {
                for (k, v) in obj
                    .get("stringData")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    vars.insert(k.clone(), v.as_str().unwrap_or_default().replace('\n', ""));
                }
            }
        }
        capstan_subst::validate_names(vars.keys()).map_err(|e| {
            UnitError::new(Some(unit.id.clone()), e.to_string())
                .field("spec.postBuild.substituteFrom")
        })?;
        for (k, v) in &unit.spec.substitute {
            vars.insert(k.clone(), v.replace('\n', ""));
        }
        Ok(Some(vars))
    }

    fn render(
        &self,
        unit: &Unit,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, UnitError> {
        if let Some(r) = &unit.spec.source_ref {
            if let Some(why) = toolkit::unsupported_source(&r.kind) {
                return Err(UnitError::new(
                    Some(unit.id.clone()),
                    format!("sourceRef {} {}/{}: {why}", r.kind, r.namespace, r.name),
                )
                .field("spec.sourceRef.kind")
                .kind(ErrorKind::Source));
            }
        }
        if let (Some(root), Some(r)) = (&self.opts.root_source, &unit.spec.source_ref) {
            let key = (r.kind.clone(), r.namespace.clone(), r.name.clone());
            if (r.kind == "GitRepository" || r.kind == "OCIRepository")
                && &key != root
                && !self.opts.source_roots.contains_key(&key)
            {
                return Err(UnitError::new(
                    Some(unit.id.clone()),
                    format!("{SOURCE_NOT_READY} {}/{}/{}", r.kind, r.namespace, r.name),
                )
                .field("spec.sourceRef")
                .kind(ErrorKind::Source));
            }
        }
        let dir = unit_dir(unit);
        if let Err(e) = self.fs.stat(&dir) {
            return Err(self.with_origin(
                unit,
                UnitError::new(Some(unit.id.clone()), format!("`{}`: {e}", unit.spec.path))
                    .field("spec.path"),
            ));
        }
        if !self.fs.exists(&dir) {
            let mut e = UnitError::new(
                Some(unit.id.clone()),
                format!("`{}` does not exist in the repository", unit.spec.path),
            )
            .field("spec.path");
            if let Some(h) = self.suggest_dir(&dir) {
                e = e.hint(format!("did you mean `./{h}`?"));
            }
            return Err(self.with_origin(unit, e));
        }
        if !self.fs.is_dir(&dir) {
            return Err(self.with_origin(
                unit,
                UnitError::new(
                    Some(unit.id.clone()),
                    format!("`{}` is not a directory", unit.spec.path),
                )
                .field("spec.path"),
            ));
        }
        let overlay = generator::flux_kustomization(self.fs, &dir, &unit.spec)
            .map_err(|e| self.with_origin(unit, e.unit(unit.id.clone())))?;
        let root = unit.parent.is_none();
        let decrypt_err = |e: String| {
            UnitError::new(Some(unit.id.clone()), format!("decryption failed: {e}"))
                .field("spec.decryption")
        };
        let mut decrypted = None;
        if let Some(d) = &self.opts.decryptor {
            let files =
                d.0.sources(&unit.object, root, &overlay, &unit.source_root, &dir)
                    .map_err(decrypt_err)?;
            if !files.is_empty() {
                let mut o = capstan_vfs::OverlayFs::new(&overlay as &dyn FileSystem);
                for (p, c) in files {
                    o.put(p, c);
                }
                decrypted = Some(o);
            }
        }
        let build_fs: &dyn FileSystem = match &decrypted {
            Some(o) => o,
            None => &overlay,
        };
        let mut objects = self.renderer.build(build_fs, &dir).map_err(|e| {
            UnitError::new(
                Some(unit.id.clone()),
                format!("kustomize build {} failed: {e}", unit.spec.path),
            )
        })?;
        if let Some(d) = &self.opts.decryptor {
            d.0.objects(&unit.object, root, &mut objects)
                .map_err(decrypt_err)?;
        }
        if !unit.spec.common_labels.is_empty() || !unit.spec.common_annotations.is_empty() {
            for obj in &mut objects {
                set_common_metadata(obj, &unit.spec.common_labels, &unit.spec.common_annotations);
            }
        }
        if unit.spec.substitutes() {
            for obj in &mut objects {
                substitute_object(obj, vars, self.opts.substitution)
                    .map_err(|e| self.with_origin(unit, e.unit(unit.id.clone())))?;
            }
        }
        Ok(objects)
    }

    /// The source object of a chart that does not come from the repository tree:
    /// `Ok(None)` to defer, `Ok(Some(None))` when the chart is in the tree.
    fn find_source(
        &self,
        unit: &Unit,
        hr: &HelmReleaseSpec,
        repo: &HashMap<(String, String, String), Value>,
        last_chance: bool,
    ) -> Result<Option<Option<Value>>, UnitError> {
        let (source, field) = match &hr.chart {
            ChartSource::Template { source, .. }
                if source.kind == "GitRepository" || source.kind == "Bucket" =>
            {
                return Ok(Some(None))
            }
            ChartSource::Template { source, .. } => (source, "spec.chart.spec.sourceRef"),
            ChartSource::Ref(source) => (source, "spec.chartRef"),
        };
        let key = (
            source.kind.clone(),
            source.namespace.clone(),
            source.name.clone(),
        );
        if let Some(o) = repo.get(&key) {
            return Ok(Some(Some(o.clone())));
        }
        if !last_chance {
            return Ok(None);
        }
        let found = self
            .cluster
            .get(&source.kind, &source.namespace, &source.name)
            .map_err(|e| {
                self.with_origin(
                    unit,
                    UnitError::new(
                        Some(unit.id.clone()),
                        format!(
                            "looking up {} {}/{}: {e}",
                            source.kind, source.namespace, source.name
                        ),
                    )
                    .field(field.to_string())
                    .kind(ErrorKind::Lookup),
                )
            })?;
        match found {
            Some(o) => Ok(Some(Some(o))),
            None => Err(self.with_origin(
                unit,
                UnitError::new(
                    Some(unit.id.clone()),
                    format!(
                        "{} {}/{} was found neither in the repository nor in the cluster",
                        source.kind, source.namespace, source.name
                    ),
                )
                .field(field.to_string())
                .hint(format!(
                    "declare the {} in the repository, or check {field}",
                    source.kind
                ))
                .kind(ErrorKind::Lookup),
            )),
        }
    }

    fn render_helm(
        &self,
        unit: &Unit,
        hr: &HelmReleaseSpec,
        values: &Value,
        source: Option<Value>,
    ) -> Result<(Vec<Value>, Vec<Value>), UnitError> {
        let source_root = match &hr.chart {
            ChartSource::Template { source, .. } => self.source_root(Some(source)),
            ChartSource::Ref(_) => PathBuf::from("/"),
        };
        let chart_path = match &hr.chart {
            ChartSource::Template { chart, source, .. }
                if source.kind == "GitRepository" || source.kind == "Bucket" =>
            {
                let p = capstan_vfs::join_within(&self.source_root(Some(source)), chart);
                if let Err(e) = self.fs.stat(&p) {
                    return Err(self.with_origin(
                        unit,
                        UnitError::new(Some(unit.id.clone()), format!("chart `{chart}`: {e}"))
                            .field("spec.chart.spec.chart"),
                    ));
                }
                if !self.fs.exists(&p) {
                    return Err(self.with_origin(
                        unit,
                        UnitError::new(
                            Some(unit.id.clone()),
                            format!("chart `{chart}` does not exist in the repository"),
                        )
                        .field("spec.chart.spec.chart"),
                    ));
                }
                Some(p)
            }
            _ => None,
        };
        let req = HelmRequest {
            chart: hr.chart.clone(),
            chart_path,
            source_root,
            release_name: hr.release_name.clone(),
            namespace: hr.target_namespace.clone(),
            values: values.clone(),
            include_crds: hr.install_crds != CrdPolicy::Skip,
            source,
            unit: Some(unit.id.clone()),
        };
        let mut objects = self.renderer.helm(self.fs, &req).map_err(|e| {
            self.with_origin(
                unit,
                UnitError::new(
                    Some(unit.id.clone()),
                    format!("rendering the chart failed: {e}"),
                ),
            )
        })?;
        // Helm installs namespaced objects without a namespace into the release's.
        for o in &mut objects {
            let gk = capstan_graph::GroupKind {
                group: capstan_graph::group_of(
                    o.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                )
                .to_string(),
                kind: kind_of(o).to_string(),
            };
            let cluster_scoped = capstan_graph::CLUSTER_SCOPED
                .iter()
                .any(|(g, k)| *g == gk.group && *k == gk.kind);
            if !cluster_scoped && meta_str(o, "namespace").is_none() {
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert(
                        "namespace".into(),
                        Value::String(hr.target_namespace.clone()),
                    );
                }
            }
        }
        // Helm never deletes objects annotated `helm.sh/resource-policy: keep` (on
        // upgrade or uninstall): capstan's prune skips them.
        for o in &mut objects {
            let keep = o
                .pointer("/metadata/annotations/helm.sh~1resource-policy")
                .and_then(Value::as_str)
                == Some("keep");
            if let (true, Some(a)) = (
                keep,
                o.pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut),
            ) {
                a.insert(PRUNE_DISABLED_ANNOTATION.into(), "disabled".into());
            }
        }
        let (mut hooks, objects): (Vec<Value>, Vec<Value>) =
            objects.into_iter().partition(is_helm_hook);
        hooks.retain(|h| !is_test_hook(h));
        let mut objects = objects;
        if !hr.post_renderer_patches.is_empty() {
            objects = self.post_render(unit, objects, &hr.post_renderer_patches)?;
        }
        Ok((objects, hooks))
    }

    /// Flux's kustomize post-renderer: the release's objects as resources of an
    /// in-memory kustomization with the patches.
    fn post_render(
        &self,
        unit: &Unit,
        objects: Vec<Value>,
        patches: &[Value],
    ) -> Result<Vec<Value>, UnitError> {
        let docs: Vec<String> = objects
            .iter()
            .map(|o| serde_json::to_string(o).unwrap_or_default())
            .collect();
        let kus = serde_json::json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["resources.yaml"], "patches": patches});
        let fs = capstan_vfs::MemFs::new()
            .with("/post-render/resources.yaml", docs.join("\n---\n"))
            .with(
                "/post-render/kustomization.yaml",
                serde_json::to_string(&kus).unwrap_or_default(),
            );
        self.renderer
            .build(&fs, Path::new("/post-render"))
            .map_err(|e| {
                self.with_origin(
                    unit,
                    UnitError::new(Some(unit.id.clone()), format!("post-renderer failed: {e}"))
                        .field("spec.postRenderers"),
                )
            })
    }

    fn with_origin(&self, unit: &Unit, e: UnitError) -> UnitError {
        if e.location.file.is_some() {
            return e;
        }
        match &unit.declared_in {
            None => e,
            Some(dir) => {
                let loc = locate_recursive(self.fs, dir, &unit.id.kind, &unit.id.name)
                    .unwrap_or_default();
                e.at(loc)
            }
        }
    }
}

/// What a unit renders with.
enum Inputs {
    /// Post-build variables and apply-time images (Kustomizations).
    Vars(BTreeMap<String, String>, Vec<ResolvedImage>),
    /// Helm values and the chart's source object (HelmReleases).
    Values(Value, Option<Value>),
}

/// The text under `key` of a ConfigMap's data or a Secret's data/stringData.
fn data_value(obj: &Value, kind: &str, key: &str) -> Option<String> {
    if kind == "Secret" {
        if let Some(s) = obj
            .pointer("/stringData")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
        {
            return Some(s.to_string());
        }
        use base64::Engine;
        let b = obj.get("data")?.get(key)?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    obj.get("data")?.get(key)?.as_str().map(str::to_string)
}

/// The directory a unit builds.
/// The directory of a Kustomization unit: `spec.path` beneath its source's root (`..`
/// stops at the source's root, as Flux's `SecureJoin` does).
pub fn unit_dir(unit: &Unit) -> PathBuf {
    capstan_vfs::join_within(&unit.source_root, &unit.spec.path)
}

fn normalize_rel(p: &str) -> PathBuf {
    capstan_vfs::join(Path::new("/"), p)
}

/// An error raised while generating or substituting, before the unit is attached.
#[derive(Debug)]
pub struct Partial(pub UnitError);

impl Partial {
    pub fn unit(mut self, id: UnitId) -> UnitError {
        self.0.unit = Some(id);
        self.0
    }
}

fn set_common_metadata(
    obj: &mut Value,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    for (field, values) in [("labels", labels), ("annotations", annotations)] {
        if values.is_empty() {
            continue;
        }
        let m = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Default::default()));
        if !m.is_object() {
            *m = Value::Object(Default::default());
        }
        let m = m.as_object_mut().unwrap();
        for (k, v) in values {
            m.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

fn substitution_disabled(obj: &Value) -> bool {
    ["labels", "annotations"].iter().any(|f| {
        obj.get("metadata")
            .and_then(|m| m.get(*f))
            .and_then(|m| m.get(SUBSTITUTE_ANNOTATION))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

/// Substitute variables in one object through its YAML text, as Flux does (so that
/// `replicas: ${count}` becomes a number).
fn substitute_object(
    obj: &mut Value,
    vars: &BTreeMap<String, String>,
    mode: capstan_subst::Mode,
) -> Result<(), Partial> {
    if substitution_disabled(obj) {
        return Ok(());
    }
    let describe = || format!("{} {}", kind_of(obj), meta_str(obj, "name").unwrap_or(""));
    let text = capstan_yaml::emit_document(&capstan_yaml::from_json(obj));
    if !capstan_subst::has_references(&text) {
        return Ok(());
    }
    let out = capstan_subst::substitute(&text, vars, mode).map_err(|e| {
        let mut err = UnitError::new(None, format!("post-build substitution in {}: {e}", describe()));
        if let capstan_subst::SubstError::Unset { name, .. } = &e {
            err = err.field("spec.postBuild").hint(format!("set `{name}` in spec.postBuild.substitute or a substituteFrom source, or give a default: ${{{name}:=value}}"));
        }
        Partial(err)
    })?;
    let docs = capstan_yaml::parse_documents(&out, "substituted").map_err(|e| {
        Partial(
            UnitError::new(
                None,
                format!("{} is not valid YAML after substitution: {e}", describe()),
            )
            .field("spec.postBuild"),
        )
    })?;
    match docs.as_slice() {
        [doc] => {
            *obj = capstan_yaml::to_json(doc);
            Ok(())
        }
        _ => Err(Partial(
            UnitError::new(
                None,
                format!(
                    "{} became {} documents after substitution",
                    describe(),
                    docs.len()
                ),
            )
            .field("spec.postBuild"),
        )),
    }
}

/// Find the file and document declaring `kind`/`name` in one directory (not recursive).
pub fn locate(fs: &dyn FileSystem, dir: &Path, kind: &str, name: &str) -> Location {
    locate_in(fs, dir, kind, name, false).unwrap_or_default()
}

/// Find the file and document declaring `kind`/`name` anywhere below `dir`.
pub fn locate_recursive(
    fs: &dyn FileSystem,
    dir: &Path,
    kind: &str,
    name: &str,
) -> Option<Location> {
    locate_in(fs, dir, kind, name, true)
}

fn locate_in(
    fs: &dyn FileSystem,
    dir: &Path,
    kind: &str,
    name: &str,
    recursive: bool,
) -> Option<Location> {
    let entries = fs.read_dir(dir).ok()?;
    for e in &entries {
        let p = dir.join(e);
        if fs.is_dir(&p) {
            continue;
        }
        if !(e.ends_with(".yaml") || e.ends_with(".yml")) {
            continue;
        }
        let Ok(text) = fs.read_to_string(&p) else {
            continue;
        };
        if !text.contains(name) {
            continue;
        }
        let Ok(docs) = capstan_yaml::parse_documents(&text, &p.to_string_lossy()) else {
            continue;
        };
        for (i, d) in docs.iter().enumerate() {
            let j = capstan_yaml::to_json(d);
            if kind_of(&j) == kind && meta_str(&j, "name") == Some(name) {
                return Some(Location {
                    file: Some(p),
                    document: Some(i + 1),
                    object: Some(format!(
                        "{kind} {}/{name}",
                        meta_str(&j, "namespace").unwrap_or("default")
                    )),
                    field: None,
                });
            }
        }
    }
    if recursive {
        for e in &entries {
            let p = dir.join(e);
            if fs.is_dir(&p) {
                if let Some(l) = locate_in(fs, &p, kind, name, true) {
                    return Some(l);
                }
            }
        }
    }
    None
}
