//! One cluster round, shared by `capstan apply`/`capstan diff` and the agent.
//!
//! A [`Round`] is the live shell around the pure planning of this crate
//! (render -> units -> graph -> plan): it renders a cluster's units with what the cluster
//! gives (charts fetched into a content-addressed cache, `lookup`, Capabilities), fetches
//! the other sources the units name ([`SourceSet`]), honours `spec.suspend` set in the
//! cluster, sends every unit to its target cluster ([`Targets`]: `spec.kubeConfig.secretRef`,
//! `spec.serviceAccountName` impersonation), walks the plan and uninstalls units removed
//! from the repository ([`Round::collect_garbage`]).
//!
//! Two seams make the difference between the CLI and the agent:
//! * what is due ([`Schedule`]): the agent's schedule (new revision, interval, request,
//!   retry); the CLI's [`Everything`];
//! * where outcomes go ([`Outcomes`]): the agent's status, Events and metrics; the CLI's
//!   progress and table, or a diff printer.
//!
//! Errors keep their kind across the seams ([`RunError::kind`], [`ErrorKind`]), so the
//! agent maps them to Flux's reasons without reading messages.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_apply::{Applier, ApplyError, ApplyOptions, UnitPlan, UnitResult};
use capstan_graph::UnitId;
pub use capstan_units::ErrorKind;
use capstan_units::{LoadOptions, RenderedUnit, Unit, UnitOutcome};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::execute::{execute, ExecuteOptions, UnitDriver, UnitStatus};
use crate::isolate::{catch_future, render_thread, Panicked};
use crate::sources::{declared, Declared, SourceKey, SourceSet};
use crate::{ClusterRender, KubeLookup, LiveRenderer};

/// What the cluster says about a unit's object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `spec.suspend: true` (`capstan suspend`, `flux suspend`).
    pub suspended: bool,
    /// `reconcile.fluxcd.io/requestedAt`.
    pub requested_at: Option<String>,
    pub generation: Option<i64>,
}

/// Reads every unit object of the cluster (one LIST per toolkit kind that units are; a
/// kind whose CRD is not installed has none).
pub async fn observe(client: &kube::Client) -> Result<BTreeMap<UnitId, Observed>, String> {
    let mut out = BTreeMap::new();
    for kind in capstan_units::toolkit::UNIT_KINDS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&kind));
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(format!("listing {}s: {e}", kind.kind)),
        };
        for o in list.items {
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            let name = o.metadata.name.clone().unwrap_or_default();
            let observed = Observed {
                suspended: o.data.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true),
                requested_at: o
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(capstan_units::toolkit::RECONCILE_REQUESTED_AT))
                    .cloned(),
                generation: o.metadata.generation,
            };
            out.insert(UnitId::new(kind.kind, ns, name), observed);
        }
    }
    Ok(out)
}

/// The API resource of a toolkit kind, at the version capstan writes.
pub fn api_resource(kind: &capstan_units::toolkit::ToolkitKind) -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: kind.group.into(),
        version: kind.version.into(),
        api_version: kind.api_version(),
        kind: kind.kind.into(),
        plural: kind.plural.into(),
    }
}

/// The cluster's `suspend` wins: units suspended in the cluster are not run.
pub fn honour_suspend(render: &mut ClusterRender, observed: &BTreeMap<UnitId, Observed>) {
    for u in &mut render.units.units {
        let unit = match u {
            UnitOutcome::Rendered(r) => &mut r.unit,
            UnitOutcome::Failed { unit, .. } => unit,
        };
        if observed.get(&unit.id).is_some_and(|o| o.suspended) {
            unit.spec.suspend = true;
        }
    }
}

/// Run every unit, suspended or not (`--ignore-suspend`).
pub fn ignore_suspend(render: &mut ClusterRender) {
    for u in &mut render.units.units {
        match u {
            UnitOutcome::Rendered(r) => r.unit.spec.suspend = false,
            UnitOutcome::Failed { unit, .. } => unit.spec.suspend = false,
        }
    }
}

/// A `spec.kubeConfig.secretRef`: namespace (the unit's), Secret name, key.
pub type KubeConfigRef = (String, String, Option<String>);

/// The cluster a unit applies to, and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// `None`: the cluster the round drives.
    pub kube_config: Option<KubeConfigRef>,
    /// `spec.serviceAccountName`: impersonated as `system:serviceaccount:<ns>:<name>`.
    pub service_account: Option<(String, String)>,
    /// An Argo CD Application's destination cluster, reached through its cluster Secret.
    pub argo: Option<crate::argo::ArgoDestination>,
}

impl Target {
    /// Where `unit` applies.
    pub fn of(unit: &Unit) -> Target {
        Target {
            kube_config: unit
                .spec
                .kube_config_secret
                .as_ref()
                .map(|(s, k)| (unit.id.namespace.clone(), s.clone(), k.clone())),
            service_account: unit
                .spec
                .service_account_name
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| (unit.id.namespace.clone(), s.clone())),
            argo: crate::argo::destination(unit),
        }
    }
}

/// The Kubernetes user a service account is impersonated as.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// `config`, impersonating `namespace/name`'s service account (as Flux's controllers do
/// for `spec.serviceAccountName`).
pub fn impersonating(mut config: kube::Config, namespace: &str, name: &str) -> kube::Config {
    config.auth_info.impersonate = Some(service_account_user(namespace, name));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
    ]);
    config
}

/// How long a client built from a kubeConfig Secret is reused before the Secret is read again.
const REMOTE_CLIENT_TTL: Duration = Duration::from_secs(300);

/// The appliers of the clusters a round's units target: the round's own cluster, the
/// clusters `spec.kubeConfig.secretRef` Secrets name (re-read every few minutes), and
/// impersonated clients for `spec.serviceAccountName`.
pub struct Targets {
    client: kube::Client,
    /// The local cluster's configuration, to impersonate service accounts on it.
    config: Option<kube::Config>,
    local: Arc<Applier>,
    concurrency: usize,
    cache: Mutex<BTreeMap<Target, (Arc<Applier>, Instant)>>,
}

/// Why a unit's target cluster cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    /// What was being read (`Secret flux-system/d-kubeconfig (spec.kubeConfig.secretRef)`).
    pub what: String,
    pub message: String,
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

impl std::error::Error for TargetError {}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Targets {
    /// `local` applies the units without `spec.kubeConfig`.
    pub fn new(client: kube::Client, local: Arc<Applier>) -> Self {
        Targets {
            client,
            config: None,
            local,
            concurrency: 8,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The local cluster's configuration: `spec.serviceAccountName` is impersonated on it
    /// (without one, such units apply with the round's own credentials).
    pub fn with_config(mut self, config: kube::Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The round's own cluster.
    pub fn local(&self) -> &Arc<Applier> {
        &self.local
    }

    /// The applier of `target`.
    pub async fn applier(&self, target: &Target) -> Result<Arc<Applier>, TargetError> {
        if target.kube_config.is_none()
            && target.argo.is_none()
            && (target.service_account.is_none() || self.config.is_none())
        {
            return Ok(self.local.clone());
        }
        if let Some((applier, at)) = locked(&self.cache).get(target) {
            if at.elapsed() < REMOTE_CLIENT_TTL {
                return Ok(applier.clone());
            }
        }
        let client = match (&target.kube_config, &target.argo) {
            (None, Some(dest)) => {
                let (what, config) = crate::argo::destination_config(&self.client, dest)
                    .await
                    .map_err(|(what, message)| TargetError { what, message })?;
                kube::Client::try_from(config).map_err(|e| TargetError {
                    what,
                    message: format!("cannot build a client: {e}"),
                })?
            }
            (Some((ns, secret, key)), _) => {
                let what = format!("Secret {ns}/{secret} (spec.kubeConfig.secretRef)");
                let config = capstan_fleet::kubeconfig_config_with(
                    &self.client,
                    ns,
                    secret,
                    key.as_deref(),
                    &capstan_fleet::KubeconfigPolicy::default(),
                )
                .await
                .map_err(|e| TargetError {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
                let config = match &target.service_account {
                    Some((sa_ns, sa)) => impersonating(config, sa_ns, sa),
                    None => config,
                };
                kube::Client::try_from(config).map_err(|e| TargetError {
                    what,
                    message: format!("cannot build a client: {e}"),
                })?
            }
            (None, None) => {
                let (ns, sa) = target.service_account.as_ref().expect("checked above");
                let config = impersonating(self.config.clone().expect("checked above"), ns, sa);
                kube::Client::try_from(config).map_err(|e| TargetError {
                    what: format!("ServiceAccount {ns}/{sa} (spec.serviceAccountName)"),
                    message: format!("cannot build a client: {e}"),
                })?
            }
        };
        let applier = Arc::new(Applier::new(client).with_concurrency(self.concurrency));
        locked(&self.cache).insert(target.clone(), (applier.clone(), Instant::now()));
        Ok(applier)
    }
}

/// Is a unit due, and why?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Run it now, for this reason (shown in logs and summaries).
    Run(String),
    /// Not due: it counts as it last ended (`Err`: its last failure, so dependents wait).
    Skip(Result<(), String>),
    /// The round is stopping: nothing more starts.
    Cancelled,
}

/// What is due: the agent's schedule, or [`Everything`].
pub trait Schedule: Sync {
    fn due(&self, unit: &RenderedUnit) -> Due;
}

/// The CLI's schedule: every unit, now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Everything;

impl Schedule for Everything {
    fn due(&self, _: &RenderedUnit) -> Due {
        Due::Run("requested".into())
    }
}

/// Apply the units, or plan them with server-side dry runs.
#[derive(Clone, Default)]
pub enum Mode {
    #[default]
    Apply,
    /// Changes nothing; dependencies are not waited for.
    Diff,
}

/// What running a unit did.
#[derive(Debug, Clone)]
pub enum Ran {
    Applied(UnitResult),
    Planned(UnitPlan),
}

/// Why a unit failed, with its kind.
#[derive(Debug)]
pub enum RunError {
    /// Its target cluster cannot be reached.
    Target(TargetError),
    /// Applying failed (the apply layer's typed error).
    Apply(ApplyError),
    /// Not due, and its last run failed.
    LastRun(String),
    /// Running it panicked (a bug in capstan, caught).
    Panicked(String),
    /// The round stopped before it started.
    Cancelled,
}

impl RunError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunError::Target(_) => ErrorKind::Target,
            RunError::Apply(e) if !e.not_ready().is_empty() => ErrorKind::HealthCheck,
            RunError::Apply(_) => ErrorKind::Apply,
            RunError::LastRun(_) => ErrorKind::Apply,
            RunError::Panicked(_) => ErrorKind::Panic,
            RunError::Cancelled => ErrorKind::Cancelled,
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Target(e) => write!(f, "{e}"),
            RunError::Apply(e) => write!(f, "{e}"),
            RunError::LastRun(m) | RunError::Panicked(m) => f.write_str(m),
            RunError::Cancelled => f.write_str("the round was cancelled"),
        }
    }
}

/// Why a unit was not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// [`ErrorKind::Source`] (its source has no artifact), [`ErrorKind::Render`] (it failed
    /// to render) or [`ErrorKind::Dependency`] (something it waits for did not succeed).
    pub kind: ErrorKind,
    pub message: String,
}

/// Where outcomes go: the agent's status, Events and metrics; the CLI's progress.
pub trait Outcomes: Sync {
    /// A unit that was due ran (or could not reach its cluster), taking `took`.
    fn finished(
        &self,
        unit: &RenderedUnit,
        reason: &str,
        result: &Result<Ran, RunError>,
        took: Duration,
    ) -> impl Future<Output = ()>;
    /// Running a unit panicked (caught); returns the unit's error message.
    fn panicked(&self, unit: &RenderedUnit, p: &Panicked) -> impl Future<Output = String>;
    /// A unit was not run: it failed to render or a dependency did not succeed.
    fn blocked(&self, unit: &Unit, blocked: &Blocked) -> impl Future<Output = ()>;
}

/// Outcomes nobody wants to hear about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Outcomes for Silent {
    async fn finished(&self, _: &RenderedUnit, _: &str, _: &Result<Ran, RunError>, _: Duration) {}
    async fn panicked(&self, _: &RenderedUnit, p: &Panicked) -> String {
        format!("applying {p}")
    }
    async fn blocked(&self, _: &Unit, _: &Blocked) {}
}

/// One unit's end in a round.
#[derive(Debug)]
pub enum UnitState {
    /// It was due and ran.
    Ran(Ran),
    /// Not due; its last run was fine.
    NotDue,
    Failed(RunError),
    Blocked(Blocked),
    Suspended,
}

impl UnitState {
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            UnitState::Ran(_) | UnitState::NotDue | UnitState::Suspended
        )
    }
}

/// Every unit's end, in plan order.
#[derive(Debug, Default)]
pub struct RoundResult {
    pub order: Vec<UnitId>,
    pub status: BTreeMap<UnitId, UnitState>,
}

/// Settings of a [`Round`].
#[derive(Debug, Clone)]
pub struct RoundSettings {
    /// Names render threads and logs.
    pub name: String,
    /// Charts (`<dir>/charts`) and other sources (`<dir>/sources`) are cached here.
    pub cache_dir: PathBuf,
    /// The repository as a source (kind, namespace, name): units naming it read the
    /// repository's tree; units naming another GitRepository/OCIRepository read that one.
    pub root_source: SourceKey,
    /// Units run at once.
    pub concurrency: usize,
    /// The cluster's root is Argo CD Applications (`None`: Flux units of the cluster path).
    pub argo: Option<crate::argo::ArgoRoot>,
    /// Forbid the network: sources and charts come from the cache only
    /// ([`capstan_source::SourceCache::offline`]), a missing one fails its units naming it.
    pub offline: bool,
}

impl RoundSettings {
    pub fn new(name: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        RoundSettings {
            name: name.into(),
            cache_dir: cache_dir.into(),
            root_source: (
                "GitRepository".into(),
                "flux-system".into(),
                "flux-system".into(),
            ),
            concurrency: 4,
            argo: None,
            offline: false,
        }
    }

    /// The cache of the other sources (`<cache_dir>/sources`).
    fn source_cache(&self) -> capstan_source::SourceCache {
        capstan_source::SourceCache::new(self.cache_dir.join("sources")).offline(self.offline)
    }

    /// The cache of charts (`<cache_dir>/charts`).
    fn chart_cache(&self) -> capstan_source::SourceCache {
        capstan_source::SourceCache::new(self.cache_dir.join("charts")).offline(self.offline)
    }
}

/// How long the live renderer (Capabilities from discovery) is reused.
const RENDERER_TTL: Duration = Duration::from_secs(300);

/// Renders `cluster_path` of the repository at `root` on a render thread, with the
/// fetched `sources` mounted; `isolating`: planned as Flux treats units, each on its own.
#[allow(clippy::too_many_arguments)]
async fn render_mounted(
    root: PathBuf,
    cluster_path: String,
    sources: &SourceSet,
    root_source: SourceKey,
    renderer: Arc<LiveRenderer>,
    lookup: impl capstan_units::ClusterLookup + 'static,
    name: &str,
    isolating: bool,
    decryptor: Option<capstan_units::SharedDecryptor>,
    images: Option<capstan_units::SharedImageResolver>,
    argo: Option<crate::argo::ArgoRoot>,
) -> Result<ClusterRender, String> {
    let mounted = sources.mounted();
    let thread = format!("render-{name}");
    render_thread(&thread, move || -> Result<ClusterRender, String> {
        let base: Arc<dyn capstan_vfs::FileSystem> = Arc::new(
            capstan_vfs::DiskFs::new(&root).map_err(|e| format!("{}: {e}", root.display()))?,
        );
        let mut fs = capstan_vfs::MountFs::new(base);
        let mut opts = LoadOptions::new(cluster_path);
        // A unit whose source has no artifact fails: never read from the repository's
        // tree by mistake.
        opts.root_source = Some(root_source);
        opts.decryptor = decryptor;
        opts.image_resolver = images;
        for (key, at, artifact) in &mounted {
            let tree = capstan_vfs::DiskFs::new(&artifact.path)
                .map_err(|e| format!("{}: {e}", artifact.path.display()))?;
            fs.mount(at, Arc::new(tree));
            opts.source_roots.insert(key.clone(), at.clone());
        }
        if let Some(mut argo) = argo {
            // Without --path or --app: the Applications beneath the cluster's directory.
            if argo.path.is_none() && argo.app.is_none() {
                argo.path = Some(opts.cluster_path.clone());
            }
            let argo = &argo;
            // Argo CD: the Applications of `argo` (and the Flux units of its flux path).
            let flux = argo.flux_path.as_ref().map(|p| {
                let mut o = opts.clone();
                o.cluster_path = p.clone();
                o
            });
            return Ok(crate::argo::render_argo_cluster(
                &fs,
                renderer.as_ref(),
                &lookup,
                flux.as_ref(),
                argo,
                isolating,
            ));
        }
        Ok(if isolating {
            crate::render_cluster_isolating(&fs, renderer.as_ref(), &lookup, &opts)
        } else {
            crate::render_cluster_with(&fs, renderer.as_ref(), &lookup, &opts)
        })
    })
    .await
    .map_err(|p| format!("rendering the cluster {p}"))?
}

/// Names the cause (the fetch error) in the errors of units whose source is missing.
fn name_source_errors(render: &mut ClusterRender, sources: &SourceSet) {
    for u in &mut render.units.units {
        let UnitOutcome::Failed { unit, error } = u else {
            continue;
        };
        let Some(r) = unit.spec.source_ref.as_ref() else {
            continue;
        };
        if error.kind == ErrorKind::Source {
            let key = (r.kind.clone(), r.namespace.clone(), r.name.clone());
            let Some(cause) = sources.error(&key).or_else(|| {
                capstan_units::toolkit::unsupported_source(&r.kind)
                    .is_none()
                    .then(|| "not fetched yet".to_string())
            }) else {
                continue;
            };
            *error = capstan_units::UnitError::new(
                Some(unit.id.clone()),
                format!("{}: {cause}", error.message),
            )
            .field("spec.sourceRef")
            .kind(ErrorKind::Source);
        }
    }
}

/// How [`render_detached_with`] fetches.
#[derive(Debug, Clone, Default)]
pub struct Detached {
    /// Charts (`<dir>/charts`) and other sources (`<dir>/sources`) are cached here.
    pub cache_dir: PathBuf,
    /// `--source-mirror`.
    pub mirrors: crate::sources::Mirrors,
    /// Decrypts SOPS files and objects of units that ask for it (keys given on the
    /// command line).
    pub decryptor: Option<capstan_units::SharedDecryptor>,
    /// `--offline`: no network; sources and charts come from the cache.
    pub offline: bool,
    /// `--source-secret`: credentials for sources' `spec.secretRef`.
    pub secrets: crate::sources::LocalSecrets,
    /// Send Git credentials over plain `http://` (`--allow-insecure-http`).
    pub allow_insecure_http: bool,
}

/// A cluster's units rendered without a cluster (`capstan build`): charts fetched from
/// Helm/OCI repositories into `cache_dir`, other GitRepository/OCIRepository sources
/// fetched and mounted (credentials in Secrets need a cluster or [`Detached::secrets`]:
/// without them such sources fail),
/// `lookup` answers nothing, Helm's default Capabilities. The same cache and sources as
/// the round.
///
/// `decryptor` decrypts SOPS files and objects of units that ask for it (keys given on
/// the command line).
pub async fn render_detached(
    root: PathBuf,
    cluster_path: String,
    cache_dir: PathBuf,
    mirrors: crate::sources::Mirrors,
    decryptor: Option<capstan_units::SharedDecryptor>,
) -> Result<ClusterRender, String> {
    render_detached_with(
        root,
        cluster_path,
        &Detached {
            cache_dir,
            mirrors,
            decryptor,
            ..Default::default()
        },
    )
    .await
}

/// [`render_detached`] with every option: offline, local Secrets for `spec.secretRef`.
/// Units are planned each on its own (as the agent plans them): a bad `dependsOn` or a
/// dependency cycle blocks those units ([`ClusterRender::blocked`]), not the cluster.
pub async fn render_detached_with(
    root: PathBuf,
    cluster_path: String,
    how: &Detached,
) -> Result<ClusterRender, String> {
    let sources = SourceSet::new(Arc::new(
        capstan_source::SourceCache::new(how.cache_dir.join("sources"))
            .offline(how.offline)
            .allow_insecure_http_credentials(how.allow_insecure_http),
    ))
    .with_mirrors(how.mirrors.clone())
    .with_secrets(how.secrets.clone());
    let fetcher = crate::SourceFetcher::new(
        capstan_source::SourceCache::new(how.cache_dir.join("charts")).offline(how.offline),
        None,
    )
    .with_mirrors(how.mirrors.clone())
    .with_secrets(how.secrets.clone());
    let renderer = Arc::new(LiveRenderer::default().with_fetcher(Arc::new(fetcher)));
    let root_source: SourceKey = (
        "GitRepository".into(),
        "flux-system".into(),
        "flux-system".into(),
    );
    // capstan.io/image-policy: registry credentials from the environment.
    let images = Some(crate::images::RegistryResolver::from_env()?.shared());
    let mut render = render_mounted(
        root.clone(),
        cluster_path.clone(),
        &sources,
        root_source.clone(),
        renderer.clone(),
        capstan_units::NoCluster,
        "build",
        true,
        how.decryptor.clone(),
        images.clone(),
        None,
    )
    .await?;
    let wanted = declared(&render.units, &root_source);
    if !wanted.is_empty() {
        sources.refresh(None, &wanted).await;
        render = render_mounted(
            root,
            cluster_path,
            &sources,
            root_source,
            renderer,
            capstan_units::NoCluster,
            "build",
            true,
            how.decryptor.clone(),
            images.clone(),
            None,
        )
        .await?;
    }
    name_source_errors(&mut render, &sources);
    Ok(render)
}

/// One cluster's round: see the [module docs](self).
pub struct Round {
    client: kube::Client,
    pub targets: Targets,
    /// The other sources the units name.
    pub sources: SourceSet,
    pub settings: RoundSettings,
    renderer: tokio::sync::Mutex<Option<(Arc<LiveRenderer>, Instant)>>,
    /// Units seen by this round: whether they prune, and where they applied.
    known: Mutex<BTreeMap<UnitId, (bool, Target)>>,
    mirrors: crate::sources::Mirrors,
    /// SOPS keys given besides the units' decryption Secrets (`--decryption-key`, ...).
    decryption_keys: capstan_sops::Keys,
}

impl Round {
    pub fn new(client: kube::Client, targets: Targets, settings: RoundSettings) -> Self {
        Round {
            sources: SourceSet::new(Arc::new(settings.source_cache())),
            client,
            targets,
            settings,
            renderer: tokio::sync::Mutex::new(None),
            known: Mutex::new(BTreeMap::new()),
            mirrors: Default::default(),
            decryption_keys: capstan_sops::Keys::new(),
        }
    }

    /// SOPS keys used besides the decryption Secrets units name (`spec.decryption`), e.g.
    /// from `--decryption-key`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`.
    pub fn with_decryption_keys(mut self, keys: capstan_sops::Keys) -> Self {
        self.decryption_keys = keys;
        self
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Fetch sources and charts through `mirrors` (`--source-mirror`).
    pub fn with_mirrors(mut self, mirrors: crate::sources::Mirrors) -> Self {
        self.sources =
            SourceSet::new(Arc::new(self.settings.source_cache())).with_mirrors(mirrors.clone());
        self.mirrors = mirrors;
        self
    }

    /// Charts fetched with the cluster's credentials, `lookup` answered by the cluster, its
    /// Capabilities (re-read every few minutes).
    pub async fn live_renderer(&self) -> Result<Arc<LiveRenderer>, String> {
        let mut cached = self.renderer.lock().await;
        if let Some((r, at)) = cached.as_ref() {
            if at.elapsed() < RENDERER_TTL {
                return Ok(r.clone());
            }
        }
        let cache = self.settings.chart_cache();
        let mut r = LiveRenderer::connect(self.client.clone(), cache.clone()).await?;
        if !self.mirrors.is_empty() {
            r.fetcher = Some(Arc::new(
                crate::SourceFetcher::new(cache, Some(self.client.clone()))
                    .with_mirrors(self.mirrors.clone()),
            ));
        }
        let r = Arc::new(r);
        *cached = Some((r.clone(), Instant::now()));
        Ok(r)
    }

    /// Render `cluster_path` of the repository at `root` with the sources fetched so far
    /// (on a render thread; units are planned as Flux treats them, each on its own).
    pub async fn render(
        &self,
        root: PathBuf,
        cluster_path: String,
    ) -> Result<ClusterRender, String> {
        let mut render = self.render_unnamed(root, cluster_path).await?;
        name_source_errors(&mut render, &self.sources);
        Ok(render)
    }

    /// [`Round::render`] without the sources' fetch errors in the units' errors.
    async fn render_unnamed(
        &self,
        root: PathBuf,
        cluster_path: String,
    ) -> Result<ClusterRender, String> {
        let renderer = self.live_renderer().await?;
        let lookup = KubeLookup::new(self.client.clone());
        // capstan.io/image-policy: credentials from the ImageRepositories' secretRef.
        let images = crate::images::RegistryResolver::with_cluster(Arc::new(KubeLookup::new(
            self.client.clone(),
        )))
        .shared();
        // Flux's decryption: units with `spec.decryption` get the keys of the Secret their
        // `secretRef` names, read from this cluster, besides the keys given. Values stay
        // decrypted (apply needs them); diffs mask Secret values.
        let decryptor = crate::decryption::SopsDecryptor::new(self.decryption_keys.clone(), true)
            .with_cluster(Arc::new(KubeLookup::new(self.client.clone())));
        render_mounted(
            root,
            cluster_path,
            &self.sources,
            self.settings.root_source.clone(),
            renderer,
            lookup,
            &self.settings.name,
            true,
            Some(capstan_units::SharedDecryptor(Arc::new(decryptor))),
            Some(images),
            self.settings.argo.clone(),
        )
        .await
    }

    /// [`Round::render`], then fetch the other sources the units declare (those new,
    /// changed or due) and render again when any moved. Returns the sources declared.
    pub async fn render_with_sources(
        &self,
        root: PathBuf,
        cluster_path: String,
    ) -> Result<(ClusterRender, Vec<Declared>), String> {
        let mut render = self
            .render_unnamed(root.clone(), cluster_path.clone())
            .await?;
        let wanted = declared(&render.units, &self.settings.root_source);
        if self.sources.refresh(Some(&self.client), &wanted).await {
            render = self.render_unnamed(root, cluster_path).await?;
        }
        // Named after the fetch: a source that failed just now shows its cause.
        name_source_errors(&mut render, &self.sources);
        Ok((render, wanted))
    }

    /// Walk the plan: every unit `schedule` says is due runs (`mode`) on its target
    /// cluster, in dependency order; outcomes go to `outcomes`. A panic while running a
    /// unit fails that unit only.
    pub async fn run<S: Schedule, O: Outcomes>(
        &self,
        render: &ClusterRender,
        schedule: &S,
        outcomes: &O,
        mode: &Mode,
        options: &ApplyOptions,
    ) -> Result<RoundResult, String> {
        let driver = Driver {
            round: self,
            schedule,
            outcomes,
            mode,
            options,
            errors: Mutex::new(BTreeMap::new()),
        };
        let opts = ExecuteOptions {
            concurrency: self.settings.concurrency,
            ignore_dependencies: matches!(mode, Mode::Diff),
        };
        let exec = execute(&driver, render, &opts).await?;
        let mut errors = std::mem::take(&mut *locked(&driver.errors));
        let mut result = RoundResult {
            order: exec.order,
            status: BTreeMap::new(),
        };
        for (id, st) in exec.status {
            let state = match st {
                UnitStatus::Done(Some(ran)) => UnitState::Ran(ran),
                UnitStatus::Done(None) => UnitState::NotDue,
                UnitStatus::Suspended => UnitState::Suspended,
                UnitStatus::Failed(m) => {
                    UnitState::Failed(errors.remove(&id).unwrap_or(RunError::LastRun(m)))
                }
                UnitStatus::Blocked(why) => {
                    let blocked = match render.units.get(&id) {
                        Some(UnitOutcome::Failed { error, .. }) => Blocked {
                            kind: error.kind,
                            message: error.to_string(),
                        },
                        _ => Blocked {
                            kind: ErrorKind::Dependency,
                            message: why,
                        },
                    };
                    if let Some(u) = render.units.get(&id) {
                        outcomes.blocked(u.unit(), &blocked).await;
                    }
                    UnitState::Blocked(blocked)
                }
            };
            result.status.insert(id, state);
        }
        Ok(result)
    }

    /// Units gone from the repository (their object pruned by their parent) are
    /// uninstalled as Flux's finalizer does: their objects are deleted (on the cluster they
    /// applied to) when they pruned, kept otherwise. Only after a render without errors, and
    /// only for units this round saw (it knows their `prune`): nothing is deleted on a
    /// guess. Returns the units forgotten, with what happened.
    pub async fn collect_garbage(
        &self,
        render: &ClusterRender,
        observed: &BTreeMap<UnitId, Observed>,
    ) -> Vec<(UnitId, Result<usize, String>)> {
        let current: BTreeMap<UnitId, (bool, Target)> = render
            .units
            .units
            .iter()
            .map(|u| {
                let unit = u.unit();
                (
                    unit.id.clone(),
                    (crate::argo::deletes_on_removal(unit), Target::of(unit)),
                )
            })
            .collect();
        let gone: Vec<(UnitId, (bool, Target))> = locked(&self.known)
            .iter()
            .filter(|(id, _)| !current.contains_key(*id) && !observed.contains_key(*id))
            .map(|(id, v)| (id.clone(), v.clone()))
            .collect();
        let mut removed = Vec::new();
        for (id, (prune, target)) in gone {
            if prune {
                let unit = capstan_apply::UnitRef::new(
                    id.kind.clone(),
                    id.namespace.clone(),
                    id.name.clone(),
                );
                let result = match self.targets.applier(&target).await {
                    Ok(a) => a
                        .delete_unit(&unit, &ApplyOptions::default())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match result {
                    Ok(r) => {
                        tracing::info!(cluster = %self.settings.name, unit = %id, deleted = r.objects.len(), "unit removed from the repository: uninstalled");
                        removed.push((id.clone(), Ok(r.objects.len())));
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %self.settings.name, unit = %id, error = %e, "cannot uninstall a removed unit; will retry");
                        continue;
                    }
                }
            } else {
                tracing::info!(cluster = %self.settings.name, unit = %id, "unit removed from the repository: its objects are kept (prune: false)");
                removed.push((id.clone(), Ok(0)));
            }
            locked(&self.known).remove(&id);
        }
        let mut known = locked(&self.known);
        for (id, v) in current {
            known.insert(id, v);
        }
        removed
    }

    /// Are there units this round saw that are gone from `units`?
    pub fn pending_garbage(&self, units: &BTreeSet<UnitId>) -> bool {
        locked(&self.known).keys().any(|id| !units.contains(id))
    }
}

struct Driver<'a, S, O> {
    round: &'a Round,
    schedule: &'a S,
    outcomes: &'a O,
    mode: &'a Mode,
    options: &'a ApplyOptions,
    errors: Mutex<BTreeMap<UnitId, RunError>>,
}

impl<S: Schedule, O: Outcomes> Driver<'_, S, O> {
    async fn attempt(&self, unit: &RenderedUnit) -> Result<Ran, RunError> {
        let applier = self
            .round
            .targets
            .applier(&Target::of(&unit.unit))
            .await
            .map_err(RunError::Target)?;
        match self.mode {
            Mode::Apply => crate::apply_rendered(&applier, unit, self.options)
                .await
                .map(Ran::Applied)
                .map_err(RunError::Apply),
            Mode::Diff => applier
                .plan(&{
                    let mut u = crate::apply_unit(unit);
                    u.objects = crate::argo::diff_objects(unit);
                    u
                })
                .await
                .map(Ran::Planned)
                .map_err(RunError::Apply),
        }
    }

    async fn run_unit(&self, unit: &RenderedUnit) -> Result<Option<Ran>, RunError> {
        let reason = match self.schedule.due(unit) {
            Due::Skip(Ok(())) => return Ok(None),
            Due::Skip(Err(m)) => return Err(RunError::LastRun(m)),
            Due::Cancelled => return Err(RunError::Cancelled),
            Due::Run(reason) => reason,
        };
        tracing::debug!(cluster = %self.round.settings.name, unit = %unit.unit.id, reason = %reason, "reconciling");
        let started = Instant::now();
        let result = self.attempt(unit).await;
        self.outcomes
            .finished(unit, &reason, &result, started.elapsed())
            .await;
        result.map(Some)
    }
}

impl<S: Schedule, O: Outcomes> UnitDriver for Driver<'_, S, O> {
    type Output = Option<Ran>;
    async fn run(&self, unit: &RenderedUnit) -> Result<Option<Ran>, String> {
        let result = match catch_future(self.run_unit(unit)).await {
            Ok(r) => r,
            Err(p) => Err(RunError::Panicked(self.outcomes.panicked(unit, &p).await)),
        };
        result.map_err(|e| {
            let message = e.to_string();
            locked(&self.errors).insert(unit.unit.id.clone(), e);
            message
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(yaml: &str) -> Unit {
        let fs = capstan_vfs::MemFs::new()
            .with("/clusters/c/u.yaml", yaml)
            .with(
                "/app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
            );
        let r = crate::render_cluster(
            &fs,
            &capstan_units::NoCluster,
            &LoadOptions::new("clusters/c"),
        );
        r.units
            .units
            .iter()
            .map(|u| u.unit().clone())
            .find(|u| u.id.name == "u")
            .expect("unit u")
    }

    /// `spec.kubeConfig.secretRef` names a Secret in the unit's namespace (Flux), and
    /// `spec.serviceAccountName` a service account there.
    #[test]
    fn targets_of_units_follow_kube_config_and_service_account_name() {
        let u = unit("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: u\n  namespace: apps\nspec:\n  interval: 1m\n  path: ./app\n  prune: true\n  serviceAccountName: deployer\n  kubeConfig:\n    secretRef:\n      name: remote\n      key: value.yaml\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n    namespace: flux-system\n");
        assert_eq!(
            Target::of(&u),
            Target {
                kube_config: Some(("apps".into(), "remote".into(), Some("value.yaml".into()))),
                service_account: Some(("apps".into(), "deployer".into())),
                argo: None,
            }
        );
        let local = unit("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: u\n  namespace: apps\nspec:\n  interval: 1m\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n    namespace: flux-system\n");
        assert_eq!(Target::of(&local), Target::default());
    }

    /// `spec.serviceAccountName`: the service account's user and groups, as the API
    /// server authenticates its tokens.
    #[test]
    fn service_accounts_are_impersonated_with_their_groups() {
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        let c = impersonating(config, "apps", "deployer");
        assert_eq!(
            c.auth_info.impersonate.as_deref(),
            Some("system:serviceaccount:apps:deployer")
        );
        assert_eq!(
            c.auth_info.impersonate_groups,
            Some(vec![
                "system:serviceaccounts".to_string(),
                "system:serviceaccounts:apps".to_string()
            ])
        );
    }
}
