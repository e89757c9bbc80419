//! One cluster's worker: render its state from the current revision, run the units that
//! are due in dependency order, and report each unit's status where Flux users look for
//! it (the unit's object in the cluster, Events, metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_apply::{Action, Applier, ApplyOptions, UnitResult};
use capstan_engine::{
    catch_future, execute, render_thread, ClusterRender, ExecuteOptions, KubeLookup, LiveRenderer,
    Panicked, UnitDriver, UnitStatus,
};
use capstan_graph::UnitId;
use capstan_source::Artifact;
use capstan_units::{LoadOptions, RenderedUnit, UnitOutcome, SOURCE_NOT_READY};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::report::{Outcome, Report, Reporter};
use crate::schedule::{Observed, Reason, Schedule};
use crate::source::Current;
use crate::sources::{declared, SourceKey, SourceSet};

/// Settings shared by every cluster worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Where cluster directories live in the repository (`clusters`).
    pub clusters_dir: String,
    /// Interval of units that set none.
    pub default_interval: Duration,
    /// How often the cluster is checked for reconcile requests, suspends and due units.
    pub poll_interval: Duration,
    /// Units applied at once.
    pub concurrency: usize,
    /// First retry delay after a failure.
    pub retry_base: Duration,
    /// Where the cluster's other sources are cached (`<dir>/<cluster>`).
    pub cache_dir: PathBuf,
    /// The root repository as a source (kind, namespace, name): units naming it read the
    /// repository's tree.
    pub root_source: SourceKey,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            clusters_dir: "clusters".into(),
            default_interval: Duration::from_secs(300),
            poll_interval: Duration::from_secs(5),
            concurrency: 8,
            retry_base: Duration::from_secs(5),
            cache_dir: std::env::temp_dir().join("capstan-agent-sources"),
            root_source: (
                "GitRepository".into(),
                "flux-system".into(),
                "flux-system".into(),
            ),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundSummary {
    pub revision: String,
    /// Units run, with why.
    pub ran: Vec<(UnitId, String)>,
    pub succeeded: usize,
    pub failed: usize,
    pub blocked: usize,
    pub suspended: usize,
}

/// A unit as the schedule sees it: id, interval, retry interval, other source.
type UnitEntry = (UnitId, Duration, Option<Duration>, Option<SourceKey>);

/// The last render: root revision, units, other sources declared.
type LastRender = (String, Vec<UnitEntry>, Vec<crate::sources::Declared>);

/// A `spec.kubeConfig.secretRef`: namespace, Secret name, key.
type RemoteKey = (String, String, Option<String>);

/// Drives one cluster.
pub struct ClusterWorker {
    pub name: String,
    client: kube::Client,
    applier: Arc<Applier>,
    reporter: Arc<dyn Reporter>,
    settings: WorkerSettings,
    schedule: Mutex<Schedule>,
    /// Wakes the worker at once (webhook, new cluster, tests).
    pub wake: Arc<Notify>,
    last_render: Mutex<Option<LastRender>>,
    /// Appliers of remote clusters (`spec.kubeConfig`), re-read from their Secret now and then.
    remote: Mutex<BTreeMap<RemoteKey, (Arc<Applier>, Instant)>>,
    /// Other sources the units name.
    sources: SourceSet,
    /// The renderer with the cluster's charts, `lookup` and Capabilities, and when it was made.
    renderer: tokio::sync::Mutex<Option<(Arc<LiveRenderer>, Instant)>>,
    /// Group/kind of the toolkit CRDs present in the cluster.
    toolkit_kinds: Mutex<BTreeSet<(String, String)>>,
    /// Units seen by this process: whether they prune, and their remote cluster.
    known: Mutex<BTreeMap<UnitId, (bool, Option<RemoteKey>)>>,
}

/// How long the live renderer (Capabilities from discovery) is reused.
const RENDERER_TTL: Duration = Duration::from_secs(300);

/// How long a client built from a kubeConfig Secret is reused before the Secret is read again.
const REMOTE_CLIENT_TTL: Duration = Duration::from_secs(300);

const KS: (&str, &str, &str) = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations");
const HR: (&str, &str, &str) = ("helm.toolkit.fluxcd.io", "v2", "helmreleases");

fn resource((group, version, plural): (&str, &str, &str), kind: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A worker's lock, also after a panic while it was held: a panic in one unit (caught)
/// must not fail every later round on a poisoned lock. The data behind these locks
/// (schedules, caches) stays consistent between statements.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_shutdown(e: &str) -> bool {
    e == SHUTDOWN
}

const SHUTDOWN: &str = "the agent is shutting down";

impl ClusterWorker {
    pub fn new(
        name: impl Into<String>,
        client: kube::Client,
        reporter: Arc<dyn Reporter>,
        settings: WorkerSettings,
    ) -> Self {
        let name = name.into();
        let applier = Applier::new(client.clone()).with_concurrency(8);
        let schedule = Schedule::new(settings.retry_base);
        ClusterWorker {
            name: name.clone(),
            client,
            applier: Arc::new(applier),
            reporter,
            schedule: Mutex::new(schedule),
            wake: Arc::new(Notify::new()),
            last_render: Mutex::new(None),
            remote: Mutex::new(BTreeMap::new()),
            known: Mutex::new(BTreeMap::new()),
            toolkit_kinds: Mutex::new(BTreeSet::new()),
            sources: SourceSet::new(Arc::new(capstan_source::SourceCache::new(
                settings.cache_dir.join(&name).join("sources"),
            ))),
            renderer: tokio::sync::Mutex::new(None),
            settings,
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Reconcile until cancelled: on every new revision, every poll, and when woken.
    pub async fn run(
        self: Arc<Self>,
        mut source: watch::Receiver<Current>,
        cancel: CancellationToken,
    ) {
        let mut prepared = false;
        loop {
            if !prepared {
                let ready = match self.reporter.prepare(&self.client).await {
                    Ok(()) => ensure_namespace(&self.client, "flux-system").await,
                    Err(e) => Err(e),
                };
                match ready {
                    Ok(()) => {
                        self.applier.refresh_discovery();
                        match toolkit_kinds(&self.client).await {
                            Ok(kinds) => {
                                *locked(&self.toolkit_kinds) = kinds;
                                prepared = true;
                            }
                            Err(e) => {
                                tracing::warn!(cluster = %self.name, error = %e, "cannot list CRDs; retrying")
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %self.name, error = %e, "cannot prepare the cluster (CRDs); retrying")
                    }
                }
            }
            let artifact = source.borrow_and_update().clone();
            if let (true, Some(a)) = (prepared, artifact) {
                // Units' panics are caught where they happen; this one keeps the worker
                // (and every other cluster) going whatever else panics in a round.
                match catch_future(self.round(&a, &cancel)).await {
                    Ok(Ok(s)) if !s.ran.is_empty() => tracing::info!(
                        cluster = %self.name, revision = %s.revision, ran = s.ran.len(),
                        succeeded = s.succeeded, failed = s.failed, blocked = s.blocked,
                        "reconciled"
                    ),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(cluster = %self.name, error = %e, "round failed"),
                    Err(p) => tracing::error!(
                        cluster = %self.name,
                        location = p.location.as_deref().unwrap_or("unknown"),
                        panic = %p.message,
                        "a round panicked (a bug in capstan); the cluster is reconciled again at the next wake"
                    ),
                }
            }
            let sleep = self.next_wake();
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = source.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// How long to sleep: the poll interval, or less when a unit comes due sooner.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let schedule = locked(&self.schedule);
        let last = locked(&self.last_render);
        let mut wait = self.settings.poll_interval;
        if let Some((_, units, _)) = last.as_ref() {
            for (id, interval, retry, _) in units {
                if let Some(at) = schedule.next_due(id, *interval, *retry) {
                    wait = wait.min(at.saturating_duration_since(now));
                }
            }
        }
        wait.max(Duration::from_millis(50))
    }

    /// Reads every unit object of the cluster (one LIST per kind).
    async fn observe(&self) -> Result<BTreeMap<UnitId, Observed>, String> {
        let mut out = BTreeMap::new();
        for (res, kind) in [(KS, "Kustomization"), (HR, "HelmRelease")] {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource(res, kind));
            let list = match api.list(&ListParams::default()).await {
                Ok(l) => l,
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(format!("listing {kind}s: {e}")),
            };
            for o in list.items {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let name = o.metadata.name.clone().unwrap_or_default();
                let observed = Observed {
                    suspended: o.data.pointer("/spec/suspend").and_then(Value::as_bool)
                        == Some(true),
                    requested_at: o
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("reconcile.fluxcd.io/requestedAt"))
                        .cloned(),
                    generation: o.metadata.generation,
                };
                out.insert(UnitId::new(kind, ns, name), observed);
            }
        }
        Ok(out)
    }

    fn interval_of(&self, r: &capstan_units::Unit) -> (Duration, Option<Duration>) {
        (
            r.spec.interval.unwrap_or(self.settings.default_interval),
            r.spec.retry_interval,
        )
    }

    /// The source a unit reads: its `sourceRef` (HelmReleases: their chart's source)
    /// when that is another GitRepository/OCIRepository than the root, else None.
    fn unit_source(&self, unit: &capstan_units::Unit) -> Option<SourceKey> {
        let r = match &unit.helm {
            Some(hr) => match &hr.chart {
                capstan_units::ChartSource::Template { source, .. } => source,
                capstan_units::ChartSource::Ref(source) => source,
            },
            None => unit.spec.source_ref.as_ref()?,
        };
        if r.kind != "GitRepository" && r.kind != "OCIRepository" {
            return None;
        }
        let key = (r.kind.clone(), r.namespace.clone(), r.name.clone());
        (key != self.settings.root_source).then_some(key)
    }

    /// The revision a unit is reconciled at: its source's, else the repository's.
    fn unit_revision(&self, source: Option<&SourceKey>, root: &str) -> String {
        source
            .and_then(|k| self.sources.revision(k))
            .unwrap_or_else(|| root.to_string())
    }

    /// Render the cluster from `artifact` and run every unit that is due.
    pub async fn round(
        &self,
        artifact: &Artifact,
        cancel: &CancellationToken,
    ) -> Result<RoundSummary, String> {
        let observed = self.observe().await?;
        let now = Instant::now();
        // Nothing due, no source due and the revision unchanged: no need to render.
        {
            let last = locked(&self.last_render);
            let schedule = locked(&self.schedule);
            if let Some((rev, units, declared)) = last.as_ref() {
                let pending_gc = locked(&self.known)
                    .keys()
                    .any(|id| !units.iter().any(|u| &u.0 == id));
                if *rev == artifact.revision
                    && !pending_gc
                    && !self.sources.due(declared)
                    && !units.iter().any(|(id, interval, retry, source)| {
                        let o = observed.get(id).cloned().unwrap_or_default();
                        let revision = self.unit_revision(source.as_ref(), &artifact.revision);
                        schedule
                            .due(id, &o, &revision, *interval, *retry, now)
                            .is_some()
                    })
                {
                    return Ok(RoundSummary {
                        revision: artifact.revision.clone(),
                        ..Default::default()
                    });
                }
            }
        }
        let mut render = self.render(artifact.path.clone()).await?;
        // Other sources the units name: fetch what is new or due, render again if any moved.
        let wanted = declared(&render.units, &self.settings.root_source);
        if self.sources.refresh(&self.client, &wanted).await {
            render = self.render(artifact.path.clone()).await?;
        }
        for (unit, p) in render_panics(&render) {
            tracing::error!(
                cluster = %self.name, kind = %unit.kind, namespace = %unit.namespace, name = %unit.name,
                location = p.location.as_deref().unwrap_or("unknown"), panic = %p.message,
                "rendering a unit panicked (a bug in capstan): only this unit and its dependents fail"
            );
            self.reporter.unit_panicked(&self.name, unit);
        }
        // Sources' status, on their objects in this cluster (written only when it changed).
        self.reporter
            .source(
                &self.client,
                &self.settings.root_source,
                Some(artifact),
                None,
            )
            .await;
        let mounted = self.sources.mounted();
        for d in &wanted {
            let art = mounted
                .iter()
                .find(|(k, _, _)| k == &d.key)
                .map(|m| m.2.clone());
            let err = self.sources.error(&d.key);
            self.reporter
                .source(&self.client, &d.key, art.as_deref(), err.as_deref())
                .await;
        }
        for e in &render.units.errors {
            tracing::warn!(cluster = %self.name, error = %e, "cannot read the cluster's state; nothing is applied or pruned for it");
        }
        self.prepare_units(&mut render, &observed);
        let units: Vec<UnitEntry> = render
            .units
            .units
            .iter()
            .map(|u| {
                let (i, r) = self.interval_of(u.unit());
                (u.id().clone(), i, r, self.unit_source(u.unit()))
            })
            .collect();
        let revisions: BTreeMap<UnitId, String> = units
            .iter()
            .map(|(id, _, _, src)| {
                (
                    id.clone(),
                    self.unit_revision(src.as_ref(), &artifact.revision),
                )
            })
            .collect();
        let mut due: BTreeMap<UnitId, Reason> = BTreeMap::new();
        {
            let schedule = locked(&self.schedule);
            for (id, interval, retry, _) in &units {
                let o = observed.get(id).cloned().unwrap_or_default();
                if let Some(reason) = schedule.due(id, &o, &revisions[id], *interval, *retry, now) {
                    due.insert(id.clone(), reason);
                }
            }
        }
        let mut summary = RoundSummary {
            revision: artifact.revision.clone(),
            ..Default::default()
        };
        if let Err(e) = &render.plan {
            // A cycle or a missing dependency: nothing is applied, every unit says why.
            let msg = e.to_string();
            for u in &render.units.units {
                self.report_unit(
                    u.unit(),
                    &revisions[u.id()],
                    &observed,
                    Outcome::Failed {
                        reason: "DependencyNotReady".into(),
                        message: msg.clone(),
                        stalled: true,
                    },
                    None,
                    Duration::ZERO,
                )
                .await;
            }
            self.remember(&artifact.revision, units, wanted);
            return Err(msg);
        }
        let driver = AgentDriver {
            worker: self,
            due: &due,
            observed: &observed,
            revisions: &revisions,
            cancel,
        };
        let opts = ExecuteOptions {
            concurrency: self.settings.concurrency,
            ignore_dependencies: false,
        };
        let exec = execute(&Guard(driver), &render, &opts).await?;
        for (id, st) in &exec.status {
            let Some(u) = render.units.get(id) else {
                continue;
            };
            match st {
                UnitStatus::Done(ran) => {
                    if *ran {
                        summary.ran.push((
                            id.clone(),
                            due.get(id).map(ToString::to_string).unwrap_or_default(),
                        ));
                        summary.succeeded += 1;
                    }
                }
                UnitStatus::Failed(e) => {
                    if !is_shutdown(e) && due.contains_key(id) {
                        summary.ran.push((
                            id.clone(),
                            due.get(id).map(ToString::to_string).unwrap_or_default(),
                        ));
                        summary.failed += 1;
                    }
                }
                UnitStatus::Suspended => summary.suspended += 1,
                UnitStatus::Blocked(why) => {
                    summary.blocked += 1;
                    if cancel.is_cancelled() {
                        continue;
                    }
                    let outcome = match u {
                        UnitOutcome::Failed { error, .. } => Outcome::Failed {
                            reason: if error.message.starts_with(SOURCE_NOT_READY) {
                                "ArtifactFailed".into()
                            } else {
                                "BuildFailed".into()
                            },
                            message: error.to_string(),
                            stalled: !error.message.starts_with(SOURCE_NOT_READY),
                        },
                        UnitOutcome::Rendered(_) => Outcome::DependencyNotReady {
                            message: why.clone(),
                        },
                    };
                    let o = observed.get(id).cloned().unwrap_or_default();
                    locked(&self.schedule).record(
                        id,
                        Instant::now(),
                        &revisions[id],
                        false,
                        &o,
                        why.clone(),
                    );
                    self.report_unit(
                        u.unit(),
                        &revisions[id],
                        &observed,
                        outcome,
                        None,
                        Duration::ZERO,
                    )
                    .await;
                }
            }
        }
        if !render.has_errors() && !cancel.is_cancelled() {
            self.collect_garbage(&render, &observed).await;
        }
        self.remember(&artifact.revision, units, wanted);
        Ok(summary)
    }

    /// Units gone from the repository (their object pruned by their parent) are
    /// uninstalled as Flux's finalizer does: their objects are deleted when they pruned,
    /// kept otherwise. Only after a render without errors, and only for units this process
    /// saw (it knows their `prune`): nothing is deleted on a guess.
    async fn collect_garbage(&self, render: &ClusterRender, observed: &BTreeMap<UnitId, Observed>) {
        let current: BTreeMap<UnitId, (bool, Option<RemoteKey>)> = render
            .units
            .units
            .iter()
            .map(|u| {
                let unit = u.unit();
                let remote = unit
                    .spec
                    .kube_config_secret
                    .as_ref()
                    .map(|(s, k)| (unit.id.namespace.clone(), s.clone(), k.clone()));
                (unit.id.clone(), (unit.spec.prune, remote))
            })
            .collect();
        let gone: Vec<(UnitId, (bool, Option<RemoteKey>))> = locked(&self.known)
            .iter()
            .filter(|(id, _)| !current.contains_key(*id) && !observed.contains_key(*id))
            .map(|(id, v)| (id.clone(), v.clone()))
            .collect();
        for (id, (prune, remote)) in gone {
            if prune {
                let applier = match &remote {
                    None => Ok(self.applier.clone()),
                    Some((ns, secret, key)) => {
                        capstan_fleet::kubeconfig_client(&self.client, ns, secret, key.as_deref())
                            .await
                            .map(|c| Arc::new(Applier::new(c)))
                            .map_err(|e| e.to_string())
                    }
                };
                let unit = capstan_apply::UnitRef::new(
                    id.kind.clone(),
                    id.namespace.clone(),
                    id.name.clone(),
                );
                let result = match applier {
                    Ok(a) => a
                        .delete_unit(&unit, &ApplyOptions::default())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(r) => {
                        tracing::info!(cluster = %self.name, unit = %id, deleted = r.objects.len(), "unit removed from the repository: uninstalled")
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %self.name, unit = %id, error = %e, "cannot uninstall a removed unit; will retry");
                        continue;
                    }
                }
            } else {
                tracing::info!(cluster = %self.name, unit = %id, "unit removed from the repository: its objects are kept (prune: false)");
            }
            locked(&self.known).remove(&id);
            self.reporter.unit_removed(&self.name, &id);
        }
        let mut known = locked(&self.known);
        for (id, v) in current {
            known.insert(id, v);
        }
    }

    fn remember(
        &self,
        revision: &str,
        units: Vec<UnitEntry>,
        declared: Vec<crate::sources::Declared>,
    ) {
        let ids: BTreeSet<UnitId> = units.iter().map(|u| u.0.clone()).collect();
        locked(&self.schedule).retain(|id| ids.contains(id));
        *locked(&self.last_render) = Some((revision.to_string(), units, declared));
    }

    /// Charts fetched with the cluster's credentials, `lookup` answered by the cluster, its
    /// Capabilities (re-read every few minutes).
    async fn live_renderer(&self) -> Result<Arc<LiveRenderer>, String> {
        let mut cached = self.renderer.lock().await;
        if let Some((r, at)) = cached.as_ref() {
            if at.elapsed() < RENDERER_TTL {
                return Ok(r.clone());
            }
        }
        let cache = capstan_source::SourceCache::new(
            self.settings.cache_dir.join(&self.name).join("charts"),
        );
        let r = Arc::new(LiveRenderer::connect(self.client.clone(), cache).await?);
        *cached = Some((r.clone(), Instant::now()));
        Ok(r)
    }

    async fn render(&self, root: PathBuf) -> Result<ClusterRender, String> {
        let client = self.client.clone();
        let path = format!(
            "{}/{}",
            self.settings.clusters_dir.trim_end_matches('/'),
            self.name
        );
        let mounted = self.sources.mounted();
        let root_source = self.settings.root_source.clone();
        let renderer = self.live_renderer().await?;
        let thread = format!("render-{}", self.name);
        let mut render = render_thread(&thread, move || -> Result<ClusterRender, String> {
            let base: Arc<dyn capstan_vfs::FileSystem> = Arc::new(
                capstan_vfs::DiskFs::new(&root).map_err(|e| format!("{}: {e}", root.display()))?,
            );
            let mut fs = capstan_vfs::MountFs::new(base);
            let mut opts = LoadOptions::new(path);
            // A unit whose source has no artifact fails: never read from the repository's
            // tree by mistake.
            opts.root_source = Some(root_source);
            for (key, at, artifact) in &mounted {
                let tree = capstan_vfs::DiskFs::new(&artifact.path)
                    .map_err(|e| format!("{}: {e}", artifact.path.display()))?;
                fs.mount(at, Arc::new(tree));
                opts.source_roots.insert(key.clone(), at.clone());
            }
            let lookup = KubeLookup::new(client);
            Ok(capstan_engine::render_cluster_isolating(
                &fs,
                renderer.as_ref(),
                &lookup,
                &opts,
            ))
        })
        .await
        .map_err(|p| format!("rendering the cluster {p}"))??;
        // Name the cause (the fetch error) in those units' errors.
        for u in &mut render.units.units {
            let UnitOutcome::Failed { unit, error } = u else {
                continue;
            };
            let Some(r) = unit.spec.source_ref.as_ref() else {
                continue;
            };
            if error.message.starts_with(SOURCE_NOT_READY) {
                let key = (r.kind.clone(), r.namespace.clone(), r.name.clone());
                let cause = self
                    .sources
                    .error(&key)
                    .unwrap_or_else(|| "not fetched yet".to_string());
                *error = capstan_units::UnitError::new(
                    Some(unit.id.clone()),
                    format!("{}: {cause}", error.message),
                )
                .field("spec.sourceRef");
            }
        }
        Ok(render)
    }

    /// Units apply their own toolkit objects (child Kustomizations, HelmReleases, sources)
    /// so their status has a home in the cluster, and the cluster's `suspend` wins.
    fn prepare_units(&self, render: &mut ClusterRender, observed: &BTreeMap<UnitId, Observed>) {
        for u in &mut render.units.units {
            let UnitOutcome::Rendered(r) = u else {
                continue;
            };
            if r.unit.parent.is_none()
                && !r.consumed.iter().any(|c| same_object(c, &r.unit.object))
                && locked(&self.toolkit_kinds).contains(&group_kind(&r.unit.object))
            {
                r.objects.push(r.unit.object.clone());
            }
            // Only kinds the cluster knows (with --no-install-crds and no Flux, none):
            // the units still apply, their status just has no home.
            let kinds = locked(&self.toolkit_kinds);
            r.objects.extend(
                r.consumed
                    .iter()
                    .filter(|o| kinds.contains(&group_kind(o)))
                    .cloned(),
            );
            drop(kinds);
            if observed.get(&r.unit.id).is_some_and(|o| o.suspended) {
                r.unit.spec.suspend = true;
            }
        }
        for u in &mut render.units.units {
            if let UnitOutcome::Failed { unit, .. } = u {
                if observed.get(&unit.id).is_some_and(|o| o.suspended) {
                    unit.spec.suspend = true;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn report_unit(
        &self,
        unit: &capstan_units::Unit,
        revision: &str,
        observed: &BTreeMap<UnitId, Observed>,
        outcome: Outcome,
        result: Option<&UnitResult>,
        took: Duration,
    ) {
        let o = observed.get(&unit.id).cloned().unwrap_or_default();
        let report = Report {
            cluster: &self.name,
            unit: &unit.id,
            api_version: unit
                .object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or(""),
            revision,
            requested_at: o.requested_at.as_deref(),
            generation: o.generation,
            outcome,
            result,
            took,
        };
        self.reporter.unit(&self.client, &report).await;
    }

    /// The applier of the cluster a unit applies to: this one, or the one its
    /// `spec.kubeConfig.secretRef` names (a Secret in the unit's namespace, as in Flux).
    async fn applier_for(&self, unit: &RenderedUnit) -> Result<Arc<Applier>, String> {
        let Some((secret, key)) = &unit.unit.spec.kube_config_secret else {
            return Ok(self.applier.clone());
        };
        let ns = &unit.unit.id.namespace;
        let cache_key = (ns.clone(), secret.clone(), key.clone());
        if let Some((applier, at)) = locked(&self.remote).get(&cache_key) {
            if at.elapsed() < REMOTE_CLIENT_TTL {
                return Ok(applier.clone());
            }
        }
        let client = capstan_fleet::kubeconfig_client(&self.client, ns, secret, key.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let applier = Arc::new(Applier::new(client).with_concurrency(8));
        locked(&self.remote).insert(cache_key, (applier.clone(), Instant::now()));
        Ok(applier)
    }

    async fn run_unit(
        &self,
        unit: &RenderedUnit,
        due: Option<&Reason>,
        observed: &BTreeMap<UnitId, Observed>,
        revision: &str,
        cancel: &CancellationToken,
    ) -> Result<bool, String> {
        let id = &unit.unit.id;
        let Some(reason) = due else {
            // Not due: it counts as it last ended, so dependents wait on failures.
            let schedule = locked(&self.schedule);
            return match schedule.last(id) {
                Some(l) if !l.ok => Err(l.message.clone()),
                _ => Ok(false),
            };
        };
        if cancel.is_cancelled() {
            return Err(SHUTDOWN.into());
        }
        tracing::debug!(cluster = %self.name, unit = %id, reason = %reason, "reconciling");
        let started = Instant::now();
        let result = match self.applier_for(unit).await {
            Ok(applier) => capstan_engine::apply_rendered(&applier, unit, &ApplyOptions::default())
                .await
                .map_err(|e| {
                    let reason = if e.not_ready().is_empty() {
                        "ReconciliationFailed"
                    } else {
                        "HealthCheckFailed"
                    };
                    (reason, e.to_string())
                }),
            Err(e) => Err(("ReconciliationFailed", e)),
        };
        let took = started.elapsed();
        let o = observed.get(id).cloned().unwrap_or_default();
        let (ok, message, outcome) = match &result {
            Ok(r) => {
                let msg = format!("Applied revision: {revision}");
                (
                    true,
                    msg.clone(),
                    Outcome::Ready {
                        message: msg,
                        changes: summarize(r),
                    },
                )
            }
            Err((reason, msg)) => (
                false,
                msg.clone(),
                Outcome::Failed {
                    reason: (*reason).into(),
                    message: msg.clone(),
                    stalled: false,
                },
            ),
        };
        locked(&self.schedule).record(id, Instant::now(), revision, ok, &o, message.clone());
        self.report_unit(
            &unit.unit,
            revision,
            observed,
            outcome,
            result.as_ref().ok(),
            took,
        )
        .await;
        if ok {
            Ok(true)
        } else {
            Err(message)
        }
    }
}

/// The namespace of the root unit and of Flux's toolkit objects (Flux bootstrap creates it).
async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<(), String> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if api
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(
        name,
        &kube::api::PatchParams::apply("capstan"),
        &kube::api::Patch::Apply(&ns),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("creating namespace {name}: {e}"))
}

/// (group, kind) of an object.
fn group_kind(o: &Value) -> (String, String) {
    let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    (
        capstan_graph::group_of(api).to_string(),
        o.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

/// The Flux toolkit kinds (group, kind) whose CRDs the cluster has.
async fn toolkit_kinds(client: &kube::Client) -> Result<BTreeSet<(String, String)>, String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing CRDs: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|c| c.spec.group.ends_with(".toolkit.fluxcd.io"))
        .map(|c| (c.spec.group, c.spec.names.kind))
        .collect())
}

fn same_object(a: &Value, b: &Value) -> bool {
    let key = |o: &Value| {
        (
            o.get("kind").cloned(),
            o.pointer("/metadata/namespace").cloned(),
            o.pointer("/metadata/name").cloned(),
        )
    };
    key(a) == key(b)
}

/// `Kind/ns/name action` lines of what changed (for events).
fn summarize(r: &UnitResult) -> Vec<String> {
    r.objects
        .iter()
        .chain(r.pruned.iter())
        .filter(|o| {
            matches!(
                o.action,
                Action::Created | Action::Configured | Action::Replaced | Action::Pruned
            )
        })
        .map(|o| format!("{} {}", o.object, o.action))
        .collect()
}

struct AgentDriver<'a> {
    worker: &'a ClusterWorker,
    due: &'a BTreeMap<UnitId, Reason>,
    observed: &'a BTreeMap<UnitId, Observed>,
    revisions: &'a BTreeMap<UnitId, String>,
    cancel: &'a CancellationToken,
}

impl Guarded for AgentDriver<'_> {
    /// Whether the unit ran (false: not due, last run fine).
    type Output = bool;
    async fn run(&self, unit: &RenderedUnit) -> Result<bool, String> {
        self.worker
            .run_unit(
                unit,
                self.due.get(&unit.unit.id),
                self.observed,
                &self.revisions[&unit.unit.id],
                self.cancel,
            )
            .await
    }

    /// Logged once with the unit, counted, recorded as a failure (retried with backoff)
    /// and reported as Flux's ReconciliationFailed.
    async fn panicked(&self, unit: &RenderedUnit, p: Panicked) -> String {
        let w = self.worker;
        let id = &unit.unit.id;
        tracing::error!(
            cluster = %w.name, kind = %id.kind, namespace = %id.namespace, name = %id.name,
            location = p.location.as_deref().unwrap_or("unknown"), panic = %p.message,
            "applying a unit panicked (a bug in capstan): only this unit and its dependents fail"
        );
        w.reporter.unit_panicked(&w.name, id);
        let message = format!(
            "applying {p} (a bug in capstan, not an error in the repository; only this unit is affected)"
        );
        let revision = &self.revisions[id];
        let o = self.observed.get(id).cloned().unwrap_or_default();
        locked(&w.schedule).record(id, Instant::now(), revision, false, &o, message.clone());
        w.report_unit(
            &unit.unit,
            revision,
            self.observed,
            Outcome::Failed {
                reason: "ReconciliationFailed".into(),
                message: message.clone(),
                stalled: false,
            },
            None,
            Duration::ZERO,
        )
        .await;
        message
    }
}

/// How a round runs one unit, and what it does when that panics.
pub(crate) trait Guarded {
    type Output;
    /// Apply the unit; an `Err` fails it and blocks its dependents.
    fn run(&self, unit: &RenderedUnit) -> impl Future<Output = Result<Self::Output, String>>;
    /// `run` panicked (caught): record and report it; returns the unit's error.
    fn panicked(&self, unit: &RenderedUnit, p: Panicked) -> impl Future<Output = String>;
}

/// Runs units through a [`Guarded`], each inside [`catch_future`]: a panic in one unit
/// fails that unit (its dependents are blocked), never the walk, the round or the worker.
pub(crate) struct Guard<G>(pub G);

impl<G: Guarded> UnitDriver for Guard<G> {
    type Output = G::Output;
    async fn run(&self, unit: &RenderedUnit) -> Result<G::Output, String> {
        match catch_future(self.0.run(unit)).await {
            Ok(r) => r,
            Err(p) => Err(self.0.panicked(unit, p).await),
        }
    }
}

/// The units whose rendering panicked (caught by the loader), with the panic.
pub(crate) fn render_panics(render: &ClusterRender) -> Vec<(&UnitId, &Panicked)> {
    render
        .units
        .failed()
        .filter_map(|(unit, e)| e.panicked.as_ref().map(|p| (&unit.id, p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_units::{HelmRequest, NoCluster, Renderer};
    use capstan_vfs::FileSystem;
    use std::path::Path;

    /// Kustomize as the agent builds; panics (stand-ins for engine bugs) building `./boom`
    /// and rendering any chart.
    struct Panicking;

    impl Renderer for Panicking {
        fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
            if dir.ends_with("boom") {
                let s = String::from("é");
                return Ok(vec![Value::String(s[..1].to_string())]);
            }
            capstan_engine::NativeRenderer.build(fs, dir)
        }
        fn helm(&self, _: &dyn FileSystem, _: &HelmRequest) -> Result<Vec<Value>, String> {
            panic!("chart engine bug")
        }
    }

    /// Applies nothing; panics applying `crash`; remembers what ran and what panicked.
    #[derive(Default)]
    struct Recorder {
        ran: Mutex<Vec<String>>,
        panicked: Mutex<Vec<(String, String)>>,
    }

    impl Guarded for &Recorder {
        type Output = ();
        async fn run(&self, unit: &RenderedUnit) -> Result<(), String> {
            tokio::task::yield_now().await;
            if unit.unit.id.name == "crash" {
                panic!("apply bug");
            }
            locked(&self.ran).push(unit.unit.id.name.clone());
            Ok(())
        }
        async fn panicked(&self, unit: &RenderedUnit, p: Panicked) -> String {
            locked(&self.panicked).push((unit.unit.id.name.clone(), p.message.clone()));
            format!("applying {p}")
        }
    }

    fn ks(name: &str, path: &str, depends_on: Option<&str>) -> String {
        let deps = depends_on
            .map(|d| format!("  dependsOn:\n  - name: {d}\n"))
            .unwrap_or_default();
        format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{deps}")
    }

    fn cm(name: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"
        )
    }

    /// Collects what the global `tracing` subscriber writes.
    #[derive(Clone)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            locked(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The panic hook: an uncaught panic is logged once through `tracing` with its
    /// location and message; a panic a unit's catch handles is left to the worker.
    #[test]
    fn panics_are_logged_once_through_tracing_and_caught_ones_by_their_catcher() {
        let buf = SharedBuf(Arc::new(Mutex::new(Vec::new())));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only global subscriber of these tests");
        capstan_engine::install_panic_hook();
        let t = std::thread::Builder::new()
            .name("uncaught".into())
            .spawn(|| panic!("uncaught engine bug"))
            .unwrap();
        assert!(t.join().is_err());
        let p = capstan_engine::isolate::catch(|| -> u8 { panic!("caught engine bug") });
        assert_eq!(p.unwrap_err().message, "caught engine bug");
        let log = String::from_utf8(locked(&buf.0).clone()).unwrap();
        assert_eq!(log.matches("uncaught engine bug").count(), 1, "{log}");
        assert!(log.contains("panicked: uncaught engine bug"), "{log}");
        assert!(
            log.contains("ERROR") && log.contains("thread=\"uncaught\""),
            "{log}"
        );
        assert!(
            log.contains("location=\"crates/capstan-agent/src/cluster.rs:"),
            "{log}"
        );
        assert!(!log.contains("panicked: caught engine bug"), "{log}");
    }

    /// The isolation of a round, in memory: a unit whose render panics and a unit whose
    /// apply panics each fail alone (their dependents wait); every other unit runs.
    #[tokio::test]
    async fn a_panicking_unit_fails_alone_and_only_its_dependents_wait() {
        capstan_engine::install_panic_hook();
        let fs = capstan_vfs::MemFs::new()
            .with("/clusters/c/ok.yaml", ks("ok", "./ok", None))
            .with("/clusters/c/boom.yaml", ks("boom", "./boom", None))
            .with("/clusters/c/after-boom.yaml", ks("after-boom", "./ok2", Some("boom")))
            .with("/clusters/c/crash.yaml", ks("crash", "./ok3", None))
            .with("/clusters/c/after-crash.yaml", ks("after-crash", "./ok4", Some("crash")))
            .with(
                "/clusters/c/web.yaml",
                "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: flux-system\nspec:\n  chart:\n    spec:\n      chart: ./charts/web\n      sourceRef:\n        kind: GitRepository\n        name: flux-system\n",
            )
            .with("/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n")
            .with("/ok/cm.yaml", cm("ok"))
            .with("/boom/cm.yaml", cm("boom"))
            .with("/ok2/cm.yaml", cm("ok2"))
            .with("/ok3/cm.yaml", cm("ok3"))
            .with("/ok4/cm.yaml", cm("ok4"));
        let render = capstan_engine::render_cluster_with(
            &fs,
            &Panicking,
            &NoCluster,
            &LoadOptions::new("clusters/c"),
        );
        // The plan stands; nothing is collected after a render with failed units.
        assert!(render.plan.is_ok(), "{:?}", render.plan);
        assert!(render.has_errors());
        let mut panics: Vec<(String, String)> = render_panics(&render)
            .into_iter()
            .map(|(id, p)| (id.name.clone(), p.message.clone()))
            .collect();
        panics.sort();
        assert_eq!(panics[0].0, "boom");
        assert!(panics[0].1.contains("char boundary"), "{panics:?}");
        assert_eq!(
            panics[1],
            ("web".to_string(), "chart engine bug".to_string())
        );

        let recorder = Recorder::default();
        let exec = execute(&Guard(&recorder), &render, &ExecuteOptions::default())
            .await
            .expect("the walk goes on");
        let status = |name: &str| {
            exec.status
                .iter()
                .find(|(id, _)| id.name == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| panic!("no status for {name}"))
        };
        for name in ["flux-system", "ok"] {
            assert_eq!(status(name), UnitStatus::Done(()), "{name}");
        }
        assert!(
            matches!(status("crash"), UnitStatus::Failed(m) if m.contains("panicked") && m.contains("apply bug"))
        );
        assert!(matches!(status("after-crash"), UnitStatus::Blocked(m) if m.contains("crash")));
        assert!(
            matches!(status("boom"), UnitStatus::Blocked(m) if m.contains("rendering panicked"))
        );
        assert!(matches!(status("after-boom"), UnitStatus::Blocked(m) if m.contains("boom")));
        assert!(matches!(status("web"), UnitStatus::Blocked(m) if m.contains("chart engine bug")));
        let mut ran = locked(&recorder.ran).clone();
        ran.sort();
        assert_eq!(ran, ["flux-system", "ok"]);
        assert_eq!(
            *locked(&recorder.panicked),
            [("crash".to_string(), "apply bug".to_string())]
        );
    }
}
