//! Prometheus metrics and health probes for the capstan agent.
//!
//! [`Metrics`] owns a `prometheus-client` registry with capstan's own families
//! and the Flux GitOps Toolkit (`gotk_*`) families, so the stock Flux Grafana
//! dashboards work against a capstan agent:
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `capstan_reconcile_duration_seconds` | histogram | kind, name, namespace, cluster |
//! | `gotk_reconcile_duration_seconds` | histogram | kind, name, namespace |
//! | `capstan_reconcile_condition` | gauge | kind, name, namespace, cluster, type, status |
//! | `gotk_reconcile_condition` | gauge | kind, name, namespace, type, status |
//! | `gotk_suspend_status` | gauge | kind, name, namespace |
//! | `capstan_unit_ready` | gauge (1/0) | kind, name, namespace, cluster |
//! | `capstan_source_fetch_duration_seconds` | histogram | kind, name, namespace, result |
//! | `capstan_apply_objects_total` | counter | cluster, action |
//! | `capstan_reconciles_total` | counter | kind, cluster, result |
//! | `capstan_unit_panics_total` | counter | kind, name, namespace, cluster |
//! | `capstan_clusters` | gauge | |
//! | `capstan_leader` | gauge (1/0) | |
//!
//! Conditions follow Flux: for a condition type, the series whose `status`
//! label is the current status (`True`, `False` or `Unknown`) is 1 and the two
//! others are 0. [`Metrics::remove_unit`] drops every series of a unit when it
//! disappears, so no stale series stay behind.
//!
//! [`Probes`] holds the liveness and readiness flags, and [`router`] serves
//! `GET /metrics` (OpenMetrics text), `GET /healthz` and `GET /readyz`.
//!
//! The crate does no I/O by itself; the agent mounts [`router`] in its server.
//!
//! ```
//! use std::time::Duration;
//! use capstan_metrics::{router, Metrics, Probes};
//!
//! let metrics = Metrics::new();
//! let probes = Probes::new();
//! metrics.observe_reconcile("Kustomization", "flux-system", "apps", "prod", Duration::from_millis(40), true);
//! metrics.set_condition("Kustomization", "flux-system", "apps", "prod", "Ready", "True");
//! assert!(metrics.encode().contains("gotk_reconcile_condition"));
//! probes.set_ready(true);
//! let app: axum::Router = router(metrics.clone(), probes.clone());
//! # drop(app);
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The three condition statuses of the Kubernetes conventions.
const STATUSES: [&str; 3] = ["True", "False", "Unknown"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnitLabels {
    kind: String,
    name: String,
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnitConditionLabels {
    kind: String,
    name: String,
    namespace: String,
    cluster: String,
    r#type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectConditionLabels {
    kind: String,
    name: String,
    namespace: String,
    r#type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    kind: String,
    name: String,
    namespace: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplyLabels {
    cluster: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    cluster: String,
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileCountLabels {
    kind: String,
    cluster: String,
    result: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets of Flux's `gotk_reconcile_duration_seconds`: 10ms doubling ten times.
fn gotk_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 10))
}

/// Buckets of capstan's histograms: 10ms doubling up to ~82s (fetches and
/// applies of big units can take a while).
fn capstan_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// What is known about one unit's series, so they can all be removed.
#[derive(Default)]
struct UnitSeries {
    /// Condition types set for the unit.
    condition_types: BTreeSet<String>,
    /// Whether a fetch was observed under each result label.
    fetch_results: BTreeSet<String>,
}

struct Inner {
    registry: Registry,
    reconcile_duration: HistogramFamily<UnitLabels>,
    gotk_reconcile_duration: HistogramFamily<ObjectLabels>,
    condition: Family<UnitConditionLabels, Gauge>,
    gotk_condition: Family<ObjectConditionLabels, Gauge>,
    gotk_suspend: Family<ObjectLabels, Gauge>,
    unit_ready: Family<UnitLabels, Gauge>,
    fetch_duration: HistogramFamily<FetchLabels>,
    apply_objects: Family<ApplyLabels, Counter>,
    reconciles: Family<ReconcileCountLabels, Counter>,
    unit_panics: Family<UnitLabels, Counter>,
    clusters: Gauge,
    leader: Gauge,
    cache_objects: Family<ClusterLabels, Gauge>,
    cache_bytes: Family<ClusterLabels, Gauge>,
    drift_checks: Family<DriftLabels, Counter>,
    /// Series bookkeeping per unit (kind, namespace, name, cluster) and per
    /// source object (kind, namespace, name, with cluster "").
    units: Mutex<HashMap<UnitLabels, UnitSeries>>,
}

/// The agent's metrics. Cheap to clone: every clone shares one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn unit(kind: &str, namespace: &str, name: &str, cluster: &str) -> UnitLabels {
    UnitLabels {
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
    }
}

fn object(kind: &str, namespace: &str, name: &str) -> ObjectLabels {
    ObjectLabels {
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: namespace.to_string(),
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and no series yet).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_duration: HistogramFamily<UnitLabels> =
            Family::new_with_constructor(capstan_histogram);
        registry.register(
            "capstan_reconcile_duration_seconds",
            "Time spent reconciling a unit, per target cluster",
            reconcile_duration.clone(),
        );
        let gotk_reconcile_duration: HistogramFamily<ObjectLabels> =
            Family::new_with_constructor(gotk_histogram);
        registry.register(
            "gotk_reconcile_duration_seconds",
            "The duration in seconds of a GitOps Toolkit resource reconciliation",
            gotk_reconcile_duration.clone(),
        );
        let condition = Family::<UnitConditionLabels, Gauge>::default();
        registry.register(
            "capstan_reconcile_condition",
            "The current condition status of a unit, per target cluster",
            condition.clone(),
        );
        let gotk_condition = Family::<ObjectConditionLabels, Gauge>::default();
        registry.register(
            "gotk_reconcile_condition",
            "The current condition status of a GitOps Toolkit resource reconciliation",
            gotk_condition.clone(),
        );
        let gotk_suspend = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "gotk_suspend_status",
            "The current suspend status of a GitOps Toolkit resource",
            gotk_suspend.clone(),
        );
        let unit_ready = Family::<UnitLabels, Gauge>::default();
        registry.register(
            "capstan_unit_ready",
            "Whether a unit is ready (1) or not (0), per target cluster",
            unit_ready.clone(),
        );
        let fetch_duration: HistogramFamily<FetchLabels> =
            Family::new_with_constructor(capstan_histogram);
        registry.register(
            "capstan_source_fetch_duration_seconds",
            "Time spent fetching a source (Git, Helm, OCI, bucket), by result",
            fetch_duration.clone(),
        );
        let apply_objects = Family::<ApplyLabels, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "capstan_apply_objects",
            "Objects handled by server-side apply, by target cluster and action",
            apply_objects.clone(),
        );
        let reconciles = Family::<ReconcileCountLabels, Counter>::default();
        registry.register(
            "capstan_reconciles",
            "Reconciliations run, by kind, target cluster and result",
            reconciles.clone(),
        );
        let unit_panics = Family::<UnitLabels, Counter>::default();
        registry.register(
            "capstan_unit_panics",
            "Panics caught while rendering or applying a unit (a bug in capstan; only that unit failed)",
            unit_panics.clone(),
        );
        let clusters = Gauge::default();
        registry.register(
            "capstan_clusters",
            "Target clusters known to the agent",
            clusters.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "capstan_leader",
            "Whether this agent replica holds the leader lease (1) or not (0)",
            leader.clone(),
        );
        let cache_objects = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "capstan_cache_objects",
            "Objects held by the agent's watch cache of a cluster (unit objects and reduced applied objects)",
            cache_objects.clone(),
        );
        let cache_bytes = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "capstan_cache_bytes",
            "Approximate size in bytes of the reduced objects in the agent's watch cache of a cluster",
            cache_bytes.clone(),
        );
        let drift_checks = Family::<DriftLabels, Counter>::default();
        registry.register(
            "capstan_drift_checks",
            "Drift decisions per target cluster, by path: `cache` (decided from the watch cache or a LIST, no request of its own) or `dry_run` (server-side dry run)",
            drift_checks.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                reconcile_duration,
                gotk_reconcile_duration,
                condition,
                gotk_condition,
                gotk_suspend,
                unit_ready,
                fetch_duration,
                apply_objects,
                reconciles,
                unit_panics,
                clusters,
                leader,
                cache_objects,
                cache_bytes,
                drift_checks,
                units: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn track(&self, key: &UnitLabels, f: impl FnOnce(&mut UnitSeries)) {
        let mut units = self.inner.units.lock().unwrap_or_else(|e| e.into_inner());
        f(units.entry(key.clone()).or_default());
    }

    /// Records one reconciliation of a unit on a cluster: its duration (in both
    /// the capstan and the gotk histogram), `capstan_unit_ready` and
    /// `capstan_reconciles_total{result="success"|"failure"}`.
    pub fn observe_reconcile(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        cluster: &str,
        duration: Duration,
        ready: bool,
    ) {
        let key = unit(kind, namespace, name, cluster);
        self.track(&key, |_| {});
        let secs = duration.as_secs_f64();
        self.inner
            .reconcile_duration
            .get_or_create(&key)
            .observe(secs);
        self.inner
            .gotk_reconcile_duration
            .get_or_create(&object(kind, namespace, name))
            .observe(secs);
        self.inner
            .unit_ready
            .get_or_create(&key)
            .set(i64::from(ready));
        self.inner
            .reconciles
            .get_or_create(&ReconcileCountLabels {
                kind: kind.to_string(),
                cluster: cluster.to_string(),
                result: if ready { "success" } else { "failure" }.to_string(),
            })
            .inc();
    }

    /// Sets a condition of a unit on a cluster, Flux style: the series of
    /// `status` (`True`, `False` or `Unknown`; anything else counts as
    /// `Unknown`) is 1, the two others 0. Sets `gotk_reconcile_condition` too.
    pub fn set_condition(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        cluster: &str,
        condition_type: &str,
        status: &str,
    ) {
        let key = unit(kind, namespace, name, cluster);
        self.track(&key, |s| {
            s.condition_types.insert(condition_type.to_string());
        });
        let current = if STATUSES.contains(&status) {
            status
        } else {
            "Unknown"
        };
        for s in STATUSES {
            let value = i64::from(s == current);
            self.inner
                .condition
                .get_or_create(&UnitConditionLabels {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    cluster: cluster.to_string(),
                    r#type: condition_type.to_string(),
                    status: s.to_string(),
                })
                .set(value);
            self.inner
                .gotk_condition
                .get_or_create(&ObjectConditionLabels {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    r#type: condition_type.to_string(),
                    status: s.to_string(),
                })
                .set(value);
        }
    }

    /// Sets Flux's `gotk_suspend_status` of an object (1 when suspended).
    pub fn set_suspended(&self, kind: &str, namespace: &str, name: &str, suspended: bool) {
        self.track(&unit(kind, namespace, name, ""), |_| {});
        self.inner
            .gotk_suspend
            .get_or_create(&object(kind, namespace, name))
            .set(i64::from(suspended));
    }

    /// Removes every series of a unit on a cluster (durations, conditions,
    /// readiness, panics). The cluster-less `gotk_*` series of the object go as well
    /// once no cluster has the unit any more. Counters aggregated by kind or
    /// cluster (`capstan_reconciles_total`, `capstan_apply_objects_total`)
    /// stay, as counters must.
    pub fn remove_unit(&self, kind: &str, namespace: &str, name: &str, cluster: &str) {
        let key = unit(kind, namespace, name, cluster);
        let mut units = self.inner.units.lock().unwrap_or_else(|e| e.into_inner());
        let series = units.remove(&key).unwrap_or_default();
        self.inner.reconcile_duration.remove(&key);
        self.inner.unit_ready.remove(&key);
        self.inner.unit_panics.remove(&key);
        let mut types = series.condition_types;
        for t in &types {
            for s in STATUSES {
                self.inner.condition.remove(&UnitConditionLabels {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    cluster: cluster.to_string(),
                    r#type: t.clone(),
                    status: s.to_string(),
                });
            }
        }
        for result in &series.fetch_results {
            self.inner.fetch_duration.remove(&FetchLabels {
                kind: kind.to_string(),
                name: name.to_string(),
                namespace: namespace.to_string(),
                result: result.clone(),
            });
        }
        // The object's cluster-less series stay while another cluster (or the
        // source / suspend bookkeeping under cluster "") still knows it.
        let others: Vec<&UnitLabels> = units
            .keys()
            .filter(|k| k.kind == kind && k.namespace == namespace && k.name == name)
            .collect();
        let still_used: BTreeSet<String> = others
            .iter()
            .filter_map(|k| units.get(*k))
            .flat_map(|s| s.condition_types.iter().cloned())
            .collect();
        types.retain(|t| !still_used.contains(t));
        for t in &types {
            for s in STATUSES {
                self.inner.gotk_condition.remove(&ObjectConditionLabels {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    r#type: t.clone(),
                    status: s.to_string(),
                });
            }
        }
        if others.is_empty() {
            let obj = object(kind, namespace, name);
            self.inner.gotk_reconcile_duration.remove(&obj);
            self.inner.gotk_suspend.remove(&obj);
        }
    }

    /// Removes every series of a unit on every cluster (the unit was deleted).
    pub fn remove_object(&self, kind: &str, namespace: &str, name: &str) {
        let clusters: Vec<String> = {
            let units = self.inner.units.lock().unwrap_or_else(|e| e.into_inner());
            units
                .keys()
                .filter(|k| k.kind == kind && k.namespace == namespace && k.name == name)
                .map(|k| k.cluster.clone())
                .collect()
        };
        for cluster in clusters {
            self.remove_unit(kind, namespace, name, &cluster);
        }
    }

    /// Records one source fetch (`result` is `success` or `failure`). The
    /// series belong to the object with cluster `""` for [`Metrics::remove_unit`].
    pub fn observe_fetch(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        duration: Duration,
        ok: bool,
    ) {
        let result = if ok { "success" } else { "failure" };
        self.track(&unit(kind, namespace, name, ""), |s| {
            s.fetch_results.insert(result.to_string());
        });
        self.inner
            .fetch_duration
            .get_or_create(&FetchLabels {
                kind: kind.to_string(),
                name: name.to_string(),
                namespace: namespace.to_string(),
                result: result.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Adds `n` to `capstan_apply_objects_total{cluster, action}` (action as
    /// printed by apply: `created`, `configured`, `unchanged`, `pruned`, ...).
    pub fn count_apply(&self, cluster: &str, action: &str, n: u64) {
        self.inner
            .apply_objects
            .get_or_create(&ApplyLabels {
                cluster: cluster.to_string(),
                action: action.to_string(),
            })
            .inc_by(n);
    }

    /// Counts a panic caught while rendering or applying a unit
    /// (`capstan_unit_panics_total`). The series goes with the unit ([`Metrics::remove_unit`]).
    pub fn count_unit_panic(&self, kind: &str, namespace: &str, name: &str, cluster: &str) {
        let key = unit(kind, namespace, name, cluster);
        self.track(&key, |_| {});
        self.inner.unit_panics.get_or_create(&key).inc();
    }

    /// Sets `capstan_clusters`.
    pub fn set_clusters(&self, n: usize) {
        self.inner
            .clusters
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets `capstan_cache_objects{cluster}` and `capstan_cache_bytes{cluster}`: the size of
    /// the agent's watch cache of one cluster.
    pub fn set_cache_size(&self, cluster: &str, objects: usize, bytes: usize) {
        let key = ClusterLabels {
            cluster: cluster.to_string(),
        };
        self.inner
            .cache_objects
            .get_or_create(&key)
            .set(i64::try_from(objects).unwrap_or(i64::MAX));
        self.inner
            .cache_bytes
            .get_or_create(&key)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Adds `n` to `capstan_drift_checks_total{cluster, path}`; `path` is `cache` (decided
    /// without a request of its own) or `dry_run` (a server-side dry run decided).
    pub fn count_drift_checks(&self, cluster: &str, path: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.inner
            .drift_checks
            .get_or_create(&DriftLabels {
                cluster: cluster.to_string(),
                path: path.to_string(),
            })
            .inc_by(n);
    }

    /// Sets `capstan_leader` to 1 or 0.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// The registry in OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

/// Liveness and readiness flags of the agent. Cheap to clone; clones share
/// the flags. A new `Probes` is live and not ready.
#[derive(Clone, Debug)]
pub struct Probes {
    live: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
}

impl Default for Probes {
    fn default() -> Self {
        Self::new()
    }
}

impl Probes {
    /// Live, not ready.
    pub fn new() -> Self {
        Probes {
            live: Arc::new(AtomicBool::new(true)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sets readiness (`/readyz` answers 200 when true, 503 otherwise).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Sets liveness (`/healthz` answers 200 when true, 503 otherwise).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
    }

    /// Current readiness.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Current liveness.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    probes: Probes,
}

/// Serves `GET /metrics`, `GET /healthz` and `GET /readyz`.
pub fn router(metrics: Metrics, probes: Probes) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(serve_healthz))
        .route("/readyz", get(serve_readyz))
        .with_state(AppState { metrics, probes })
}

async fn serve_metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

fn probe(ok: bool) -> Response {
    if ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ok\n").into_response()
    }
}

async fn serve_healthz(State(state): State<AppState>) -> Response {
    probe(state.probes.is_live())
}

async fn serve_readyz(State(state): State<AppState>) -> Response {
    probe(state.probes.is_ready())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watch cache's size and both drift-detection paths are exported per cluster
    /// (`capstan_cache_objects`, `capstan_cache_bytes`, `capstan_drift_checks_total`).
    #[test]
    fn cache_size_and_drift_paths() {
        let m = Metrics::new();
        m.set_cache_size("prod", 120, 4096);
        m.set_cache_size("prod", 121, 4100);
        m.count_drift_checks("prod", "cache", 10);
        m.count_drift_checks("prod", "cache", 5);
        m.count_drift_checks("prod", "dry_run", 2);
        m.count_drift_checks("prod", "dry_run", 0);
        m.count_drift_checks("staging", "dry_run", 0);
        let text = m.encode();
        for needle in [
            "capstan_cache_objects{cluster=\"prod\"} 121",
            "capstan_cache_bytes{cluster=\"prod\"} 4100",
            "capstan_drift_checks_total{cluster=\"prod\",path=\"cache\"} 15",
            "capstan_drift_checks_total{cluster=\"prod\",path=\"dry_run\"} 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // A zero count creates no series.
        assert!(!text.contains("cluster=\"staging\""), "{text}");
    }

    #[test]
    fn encode_has_families_with_labels() {
        let m = Metrics::new();
        m.observe_reconcile(
            "Kustomization",
            "flux-system",
            "apps",
            "prod",
            Duration::from_millis(30),
            true,
        );
        m.set_condition(
            "Kustomization",
            "flux-system",
            "apps",
            "prod",
            "Ready",
            "True",
        );
        m.set_suspended("Kustomization", "flux-system", "apps", false);
        m.observe_fetch(
            "GitRepository",
            "flux-system",
            "repo",
            Duration::from_millis(5),
            false,
        );
        m.count_apply("prod", "created", 3);
        m.count_apply("prod", "created", 2);
        m.count_unit_panic("HelmRelease", "apps", "web", "prod");
        m.count_unit_panic("HelmRelease", "apps", "web", "prod");
        m.set_clusters(2);
        m.set_leader(true);
        let text = m.encode();
        for needle in [
            "# TYPE capstan_reconcile_duration_seconds histogram",
            "capstan_reconcile_duration_seconds_count{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",cluster=\"prod\"} 1",
            "gotk_reconcile_duration_seconds_bucket{le=\"0.04\",kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\"} 1",
            "capstan_reconcile_condition{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",cluster=\"prod\",type=\"Ready\",status=\"True\"} 1",
            "capstan_reconcile_condition{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",cluster=\"prod\",type=\"Ready\",status=\"False\"} 0",
            "gotk_reconcile_condition{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",type=\"Ready\",status=\"Unknown\"} 0",
            "gotk_suspend_status{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\"} 0",
            "capstan_unit_ready{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",cluster=\"prod\"} 1",
            "capstan_source_fetch_duration_seconds_count{kind=\"GitRepository\",name=\"repo\",namespace=\"flux-system\",result=\"failure\"} 1",
            "capstan_apply_objects_total{cluster=\"prod\",action=\"created\"} 5",
            "# TYPE capstan_unit_panics counter",
            "capstan_unit_panics_total{kind=\"HelmRelease\",name=\"web\",namespace=\"apps\",cluster=\"prod\"} 2",
            "capstan_reconciles_total{kind=\"Kustomization\",cluster=\"prod\",result=\"success\"} 1",
            "capstan_clusters 2",
            "capstan_leader 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn condition_flips_status() {
        let m = Metrics::new();
        m.set_condition("HelmRelease", "ns", "r", "c", "Ready", "True");
        m.set_condition("HelmRelease", "ns", "r", "c", "Ready", "False");
        let text = m.encode();
        assert!(text.contains("capstan_reconcile_condition{kind=\"HelmRelease\",name=\"r\",namespace=\"ns\",cluster=\"c\",type=\"Ready\",status=\"False\"} 1"));
        assert!(text.contains("capstan_reconcile_condition{kind=\"HelmRelease\",name=\"r\",namespace=\"ns\",cluster=\"c\",type=\"Ready\",status=\"True\"} 0"));
        m.set_condition("HelmRelease", "ns", "r", "c", "Ready", "bogus");
        assert!(m.encode().contains("type=\"Ready\",status=\"Unknown\"} 1"));
    }

    #[test]
    fn removed_units_disappear() {
        let m = Metrics::new();
        for cluster in ["a", "b"] {
            m.observe_reconcile(
                "Kustomization",
                "ns",
                "gone",
                cluster,
                Duration::from_millis(1),
                false,
            );
            m.set_condition("Kustomization", "ns", "gone", cluster, "Ready", "False");
            m.count_unit_panic("Kustomization", "ns", "gone", cluster);
        }
        m.observe_reconcile(
            "Kustomization",
            "ns",
            "kept",
            "a",
            Duration::from_millis(1),
            true,
        );
        m.set_condition("Kustomization", "ns", "kept", "a", "Ready", "True");

        m.remove_unit("Kustomization", "ns", "gone", "a");
        let text = m.encode();
        assert!(
            !text.contains("name=\"gone\",namespace=\"ns\",cluster=\"a\""),
            "{text}"
        );
        assert!(
            text.contains("name=\"gone\",namespace=\"ns\",cluster=\"b\""),
            "{text}"
        );
        // cluster b still has it: the gotk series stay.
        assert!(
            text.contains("gotk_reconcile_condition{kind=\"Kustomization\",name=\"gone\""),
            "{text}"
        );

        m.remove_unit("Kustomization", "ns", "gone", "b");
        let text = m.encode();
        assert!(!text.contains("name=\"gone\""), "{text}");
        assert!(text.contains("name=\"kept\""), "{text}");
        // Counters are cumulative and stay.
        assert!(text.contains(
            "capstan_reconciles_total{kind=\"Kustomization\",cluster=\"b\",result=\"failure\"} 1"
        ));

        m.observe_fetch("GitRepository", "ns", "src", Duration::from_millis(1), true);
        m.set_suspended("GitRepository", "ns", "src", true);
        m.remove_object("GitRepository", "ns", "src");
        assert!(!m.encode().contains("name=\"src\""));
    }

    #[test]
    fn probes_default_live_not_ready() {
        let p = Probes::new();
        assert!(p.is_live());
        assert!(!p.is_ready());
        let q = p.clone();
        q.set_ready(true);
        q.set_live(false);
        assert!(p.is_ready());
        assert!(!p.is_live());
    }
}
