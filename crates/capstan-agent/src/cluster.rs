//! One cluster's worker: render its state from the current revision, run the units that
//! are due in dependency order, and report each unit's status where Flux users look for
//! it (the unit's object in the cluster, Events, metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_apply::{Action, Applier, ApplyOptions, UnitResult};
use capstan_engine::round::{
    honour_suspend, observe, Blocked, Due, ErrorKind, Mode, Outcomes, Ran, Round, RoundSettings,
    RunError, Schedule as RoundSchedule, Targets, UnitState,
};
use capstan_engine::{catch_future, ClusterRender, Panicked};
use capstan_graph::UnitId;
use capstan_source::Artifact;
use capstan_units::{RenderedUnit, UnitOutcome};
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::report::{Outcome, Report, Reporter};
use crate::schedule::{Observed, Reason, Schedule};
use crate::source::Current;
use crate::sources::SourceKey;
use crate::watch::WatchCache;

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
    /// Clusters whose root is Argo CD Applications (`capstan agent --argocd`): the
    /// Applications beneath each cluster's directory (or the one named), with Argo CD
    /// status written on them ([`crate::argo_status`]).
    pub argo: Option<capstan_engine::argo::ArgoRoot>,
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
            argo: None,
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

/// Drives one cluster: the agent's triggers and schedule around the shared [`Round`].
pub struct ClusterWorker {
    pub name: String,
    client: kube::Client,
    reporter: Arc<dyn Reporter>,
    settings: WorkerSettings,
    schedule: Mutex<Schedule>,
    /// Wakes the worker at once (webhook, new cluster, tests).
    pub wake: Arc<Notify>,
    last_render: Mutex<Option<LastRender>>,
    /// The round: rendering, sources, target clusters, apply, garbage collection.
    round: Round,
    /// Group/kind of the toolkit CRDs present in the cluster.
    toolkit_kinds: Mutex<BTreeSet<(String, String)>>,
    /// Round completions (see [`ClusterWorker::rounds`]).
    rounds: watch::Sender<u64>,
    /// The cluster's watch cache: unit objects (wakes the worker on suspend, reconcile
    /// requests and spec changes) and the objects capstan applied (drift without requests).
    cache: Arc<WatchCache>,
    /// The local applier (its counters feed the drift metrics).
    applier: Arc<Applier>,
    /// The applier's counters at the last metrics update.
    counted: Mutex<capstan_apply::ApplyStats>,
}

/// A worker's lock, also after a panic while it was held: a panic in one unit (caught)
/// must not fail every later round on a poisoned lock. The data behind these locks
/// (schedules, caches) stays consistent between statements.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClusterWorker {
    pub fn new(
        name: impl Into<String>,
        client: kube::Client,
        reporter: Arc<dyn Reporter>,
        settings: WorkerSettings,
    ) -> Self {
        let name = name.into();
        let wake = Arc::new(Notify::new());
        let cache = Arc::new(WatchCache::new(name.clone(), client.clone(), wake.clone()));
        let applier = Arc::new(
            Applier::new(client.clone())
                .with_concurrency(8)
                .with_live_state(cache.clone()),
        );
        let schedule = Schedule::new(settings.retry_base);
        let mut round_settings = RoundSettings::new(name.clone(), settings.cache_dir.join(&name));
        round_settings.root_source = settings.root_source.clone();
        round_settings.concurrency = settings.concurrency;
        round_settings.argo = settings.argo.clone();
        ClusterWorker {
            name,
            round: Round::new(
                client.clone(),
                Targets::new(client.clone(), applier.clone()),
                round_settings,
            ),
            client,
            reporter,
            schedule: Mutex::new(schedule),
            wake,
            cache,
            applier,
            counted: Mutex::new(capstan_apply::ApplyStats::default()),
            last_render: Mutex::new(None),
            toolkit_kinds: Mutex::new(BTreeSet::new()),
            rounds: watch::channel(0).0,
            settings,
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The cluster's watch cache.
    pub fn cache(&self) -> &Arc<WatchCache> {
        &self.cache
    }

    /// Request and drift-decision counters of the cluster's own applier.
    pub fn apply_stats(&self) -> capstan_apply::ApplyStats {
        self.applier.stats()
    }

    /// Reports the cache size and the drift decisions since the last report.
    fn report_cache(&self) {
        let stats = self.applier.stats();
        let mut counted = locked(&self.counted);
        let (objects, bytes) = self.cache.size();
        self.reporter.cache(
            &self.name,
            objects,
            bytes,
            stats.skipped.saturating_sub(counted.skipped),
            stats.dry_runs.saturating_sub(counted.dry_runs),
        );
        *counted = stats;
    }

    /// Round completions: the count of rounds this worker has finished (whether they ran
    /// anything or not). Tests wait for the next one instead of sleeping.
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.subscribe()
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
                        self.round.targets.local().refresh_discovery();
                        self.cache.watch_units();
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
                self.report_cache();
                self.rounds.send_modify(|n| *n += 1);
            }
            let sleep = self.next_wake();
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.cache.stop();
                    return;
                }
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
            .and_then(|k| self.round.sources.revision(k))
            .unwrap_or_else(|| root.to_string())
    }

    /// Render the cluster from `artifact` and run every unit that is due.
    pub async fn round(
        &self,
        artifact: &Artifact,
        cancel: &CancellationToken,
    ) -> Result<RoundSummary, String> {
        // From the watch cache once it listed every unit kind; LISTs until then.
        let observed = match self.cache.observed() {
            Some(o) => o,
            None => observe(&self.client).await?,
        };
        let now = Instant::now();
        // Nothing due, no source due and the revision unchanged: no need to render.
        {
            let last = locked(&self.last_render);
            let schedule = locked(&self.schedule);
            if let Some((rev, units, declared)) = last.as_ref() {
                let ids: BTreeSet<UnitId> = units.iter().map(|u| u.0.clone()).collect();
                if *rev == artifact.revision
                    && !self.round.pending_garbage(&ids)
                    && !self.round.sources.due(declared)
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
        let path = format!(
            "{}/{}",
            self.settings.clusters_dir.trim_end_matches('/'),
            self.name
        );
        let (mut render, wanted) = self
            .round
            .render_with_sources(artifact.path.clone(), path)
            .await?;
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
        let mounted = self.round.sources.mounted();
        for d in &wanted {
            let art = mounted
                .iter()
                .find(|(k, _, _)| k == &d.key)
                .map(|m| m.2.clone());
            let err = self.round.sources.error(&d.key);
            self.reporter
                .source(&self.client, &d.key, art.as_deref(), err.as_deref())
                .await;
        }
        for e in &render.units.errors {
            tracing::warn!(cluster = %self.name, error = %e, "cannot read the cluster's state; nothing is applied or pruned for it");
        }
        self.prepare_units(&mut render);
        honour_suspend(&mut render, &observed);
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
                        reason: ErrorKind::Dependency.flux_reason().into(),
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
        let agent = AgentSide {
            worker: self,
            due: &due,
            observed: &observed,
            revisions: &revisions,
            cancel,
        };
        let result = self
            .round
            .run(
                &render,
                &agent,
                &agent,
                &Mode::Apply,
                &ApplyOptions::default(),
            )
            .await?;
        for (id, st) in &result.status {
            let reason = || due.get(id).map(ToString::to_string).unwrap_or_default();
            match st {
                UnitState::Ran(_) => {
                    summary.ran.push((id.clone(), reason()));
                    summary.succeeded += 1;
                }
                UnitState::NotDue => {}
                UnitState::Failed(e) => {
                    if !matches!(e, RunError::Cancelled) && due.contains_key(id) {
                        summary.ran.push((id.clone(), reason()));
                        summary.failed += 1;
                    }
                }
                UnitState::Suspended => summary.suspended += 1,
                UnitState::Blocked(_) => summary.blocked += 1,
            }
        }
        if !render.has_errors() && !cancel.is_cancelled() {
            for (id, _) in self.round.collect_garbage(&render, &observed).await {
                self.reporter.unit_removed(&self.name, &id);
            }
            if self.round.settings.argo.is_some() {
                for (id, r) in
                    crate::argo_status::collect_removed(&self.client, &self.round.targets, &render)
                        .await
                {
                    match r {
                        Ok(n) => {
                            tracing::info!(cluster = %self.name, unit = %id, deleted = n, "Application removed from the repository: uninstalled")
                        }
                        Err(e) => {
                            tracing::warn!(cluster = %self.name, unit = %id, error = %e, "cannot uninstall a removed Application; will retry")
                        }
                    }
                }
            }
        }
        self.remember(&artifact.revision, units, wanted);
        Ok(summary)
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

    /// Units apply their own toolkit objects (child Kustomizations, HelmReleases, sources)
    /// so their status has a home in the cluster, and the cluster's `suspend` wins.
    fn prepare_units(&self, render: &mut ClusterRender) {
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

/// The agent's side of the shared round: its schedule says what is due; outcomes go to
/// the unit's status, Events and metrics.
struct AgentSide<'a> {
    worker: &'a ClusterWorker,
    due: &'a BTreeMap<UnitId, Reason>,
    observed: &'a BTreeMap<UnitId, Observed>,
    revisions: &'a BTreeMap<UnitId, String>,
    cancel: &'a CancellationToken,
}

impl AgentSide<'_> {
    /// Records a run in the schedule and reports it on the unit.
    async fn record(
        &self,
        unit: &capstan_units::Unit,
        outcome: Outcome,
        result: Option<&UnitResult>,
        took: Duration,
    ) {
        let w = self.worker;
        let id = &unit.id;
        let revision = &self.revisions[id];
        let (ok, message) = match &outcome {
            Outcome::Ready { message, .. } => (true, message.clone()),
            Outcome::Failed { message, .. } | Outcome::DependencyNotReady { message } => {
                (false, message.clone())
            }
        };
        let o = self.observed.get(id).cloned().unwrap_or_default();
        locked(&w.schedule).record(id, Instant::now(), revision, ok, &o, message);
        w.report_unit(unit, revision, self.observed, outcome, result, took)
            .await;
    }
}

impl RoundSchedule for AgentSide<'_> {
    fn due(&self, unit: &RenderedUnit) -> Due {
        let id = &unit.unit.id;
        let Some(reason) = self.due.get(id) else {
            // Not due: it counts as it last ended, so dependents wait on failures.
            let schedule = locked(&self.worker.schedule);
            return match schedule.last(id) {
                Some(l) if !l.ok => Due::Skip(Err(l.message.clone())),
                _ => Due::Skip(Ok(())),
            };
        };
        if self.cancel.is_cancelled() {
            return Due::Cancelled;
        }
        Due::Run(reason.to_string())
    }
}

impl Outcomes for AgentSide<'_> {
    async fn finished(
        &self,
        unit: &RenderedUnit,
        _reason: &str,
        result: &Result<Ran, RunError>,
        took: Duration,
    ) {
        let revision = &self.revisions[&unit.unit.id];
        if self.worker.round.settings.argo.is_some() {
            let r = match result {
                Ok(Ran::Applied(r)) => Some(Ok(r)),
                Ok(Ran::Planned(_)) => None,
                Err(e) => Some(Err(e.to_string())),
            };
            if let Some(r) = r {
                let r = r.as_ref().map_err(String::as_str).copied();
                if let Err(e) =
                    crate::argo_status::write(&self.worker.client, unit, r, revision).await
                {
                    tracing::warn!(cluster = %self.worker.name, unit = %unit.unit.id, error = %e, "cannot write the Application's status");
                }
            }
        }
        match result {
            Ok(ran) => {
                let applied = match ran {
                    Ran::Applied(r) => Some(r),
                    Ran::Planned(_) => None,
                };
                let mut message = format!("Applied revision: {revision}");
                // capstan.io/image-policy: the tags elected for this render.
                if !unit.images.is_empty() {
                    let images: Vec<String> = unit.images.iter().map(ToString::to_string).collect();
                    message.push_str(&format!("; images: {}", images.join(", ")));
                }
                let outcome = Outcome::Ready {
                    message,
                    changes: applied.map(summarize).unwrap_or_default(),
                };
                self.record(&unit.unit, outcome, applied, took).await;
            }
            Err(e) => {
                let outcome = Outcome::Failed {
                    reason: e.kind().flux_reason().into(),
                    message: e.to_string(),
                    stalled: false,
                };
                self.record(&unit.unit, outcome, None, took).await;
            }
        }
    }

    /// Logged once with the unit, counted, recorded as a failure (retried with backoff)
    /// and reported as Flux's ReconciliationFailed.
    async fn panicked(&self, unit: &RenderedUnit, p: &Panicked) -> String {
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
        let outcome = Outcome::Failed {
            reason: ErrorKind::Panic.flux_reason().into(),
            message: message.clone(),
            stalled: false,
        };
        self.record(&unit.unit, outcome, None, Duration::ZERO).await;
        message
    }

    /// Failed to render (BuildFailed; ArtifactFailed when its source has no artifact) or
    /// waits for a unit that did not succeed (DependencyNotReady).
    async fn blocked(&self, unit: &capstan_units::Unit, blocked: &Blocked) {
        if self.cancel.is_cancelled() {
            return;
        }
        let message = blocked.message.clone();
        let outcome = match blocked.kind {
            ErrorKind::Dependency => Outcome::DependencyNotReady { message },
            ErrorKind::Source => Outcome::Failed {
                reason: ErrorKind::Source.flux_reason().into(),
                message,
                stalled: false,
            },
            _ => Outcome::Failed {
                reason: ErrorKind::Render.flux_reason().into(),
                message,
                stalled: true,
            },
        };
        self.record(unit, outcome, None, Duration::ZERO).await;
    }
}

/// How a round runs one unit, and what it does when that panics (the shape of the
/// shared round's driver, tested here in memory).
#[cfg(test)]
pub(crate) trait Guarded {
    type Output;
    /// Apply the unit; an `Err` fails it and blocks its dependents.
    fn run(
        &self,
        unit: &RenderedUnit,
    ) -> impl std::future::Future<Output = Result<Self::Output, String>>;
    /// `run` panicked (caught): record and report it; returns the unit's error.
    fn panicked(
        &self,
        unit: &RenderedUnit,
        p: Panicked,
    ) -> impl std::future::Future<Output = String>;
}

/// Runs units through a [`Guarded`], each inside [`catch_future`]: a panic in one unit
/// fails that unit (its dependents are blocked), never the walk, the round or the worker.
#[cfg(test)]
pub(crate) struct Guard<G>(pub G);

#[cfg(test)]
impl<G: Guarded> capstan_engine::UnitDriver for Guard<G> {
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
    use capstan_engine::{execute, ExecuteOptions, UnitStatus};
    use capstan_units::{HelmRequest, LoadOptions, NoCluster, Renderer};
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
