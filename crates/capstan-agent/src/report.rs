//! Where a unit's outcome goes: Flux-compatible status on its object in the cluster,
//! a Kubernetes Event when something changed, and metrics.
//!
//! Messages come from the engine and the apply layer, which redact Secret values, so
//! nothing secret reaches status, events or logs from here.

use std::time::Duration;

use capstan_apply::UnitResult;
use capstan_graph::UnitId;
use capstan_source::{GitRepositorySpec, SourceError};
use futures::future::BoxFuture;

/// A unit's outcome in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (and healthy when waited for); `changes` lists what changed.
    Ready {
        message: String,
        changes: Vec<String>,
    },
    /// Failed; `stalled` when it cannot succeed without a change in the repository.
    Failed {
        reason: String,
        message: String,
        stalled: bool,
    },
    /// Waiting for a dependency that is not Ready.
    DependencyNotReady { message: String },
}

/// Everything reported about one unit run.
#[derive(Debug)]
pub struct Report<'a> {
    pub cluster: &'a str,
    pub unit: &'a UnitId,
    /// apiVersion of the unit's object (the version its status is written with).
    pub api_version: &'a str,
    pub revision: &'a str,
    /// The `reconcile.fluxcd.io/requestedAt` value handled by this run.
    pub requested_at: Option<&'a str>,
    pub generation: Option<i64>,
    pub outcome: Outcome,
    pub result: Option<&'a UnitResult>,
    pub took: Duration,
}

/// Receives outcomes. Implementations must not fail the reconciliation: they log.
pub trait Reporter: Send + Sync {
    /// Make the cluster ready for status (install the toolkit CRDs when missing).
    fn prepare<'a>(&'a self, client: &'a kube::Client) -> BoxFuture<'a, Result<(), String>>;
    /// A unit ran (or could not).
    fn unit<'a>(&'a self, client: &'a kube::Client, report: &'a Report<'a>) -> BoxFuture<'a, ()>;
    /// A unit left the cluster's state: forget its series.
    fn unit_removed(&self, cluster: &str, unit: &UnitId);
    /// Rendering or applying a unit panicked (caught; only that unit failed). The worker
    /// has logged it; this counts it.
    fn unit_panicked(&self, _cluster: &str, _unit: &UnitId) {}
    /// The size of a cluster's watch cache, and the drift decisions taken since the last call
    /// from the cache (no request) and with a server-side dry run.
    fn cache(&self, _cluster: &str, _objects: usize, _bytes: usize, _cached: u64, _dry_runs: u64) {}
    /// The root source was fetched.
    fn source_fetched(&self, spec: &GitRepositorySpec, took: Duration, error: Option<&SourceError>);
    /// A source's state, for its object in a cluster (`kind`, `namespace`, `name`): the
    /// artifact it has, or why the last fetch failed.
    fn source<'a>(
        &'a self,
        client: &'a kube::Client,
        key: &'a (String, String, String),
        artifact: Option<&'a capstan_source::Artifact>,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, ()>;
}

/// Reports nothing (tests of the loop itself).
pub struct NoReport;

impl Reporter for NoReport {
    fn prepare<'a>(&'a self, _: &'a kube::Client) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn unit<'a>(&'a self, _: &'a kube::Client, _: &'a Report<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn source_fetched(&self, _: &GitRepositorySpec, _: Duration, _: Option<&SourceError>) {}
    fn unit_removed(&self, _: &str, _: &UnitId) {}
    fn source<'a>(
        &'a self,
        _: &'a kube::Client,
        _: &'a (String, String, String),
        _: Option<&'a capstan_source::Artifact>,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Status on the unit objects (Flux's format), Events, and metrics.
pub struct ClusterReporter {
    pub metrics: capstan_metrics::Metrics,
    /// Install the toolkit CRDs when they are missing.
    pub install_crds: bool,
}

fn status_key(unit: &UnitId, api_version: &str) -> capstan_status::ObjectKey {
    capstan_status::ObjectKey {
        api_version: api_version.to_string(),
        kind: unit.kind.clone(),
        namespace: unit.namespace.clone(),
        name: unit.name.clone(),
    }
}

impl Reporter for ClusterReporter {
    fn prepare<'a>(&'a self, client: &'a kube::Client) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.install_crds {
                let created = capstan_status::ensure_crds(client)
                    .await
                    .map_err(|e| e.to_string())?;
                if !created.is_empty() {
                    tracing::info!(crds = ?created, "installed the toolkit CRDs");
                }
            }
            Ok(())
        })
    }

    fn unit<'a>(&'a self, client: &'a kube::Client, r: &'a Report<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (ready, outcome) = match &r.outcome {
                Outcome::Ready { message, .. } => (
                    true,
                    capstan_status::Outcome::Ready {
                        reason: "ReconciliationSucceeded".into(),
                        message: message.clone(),
                    },
                ),
                Outcome::Failed {
                    reason,
                    message,
                    stalled,
                } => (
                    false,
                    capstan_status::Outcome::Failed {
                        reason: reason.clone(),
                        message: message.clone(),
                        stalled: *stalled,
                    },
                ),
                Outcome::DependencyNotReady { message } => (
                    false,
                    capstan_status::Outcome::DependencyNotReady {
                        message: message.clone(),
                    },
                ),
            };
            let update = capstan_status::StatusUpdate {
                observed_generation: r.generation,
                outcome,
                last_applied_revision: ready.then(|| r.revision.to_string()),
                last_attempted_revision: Some(r.revision.to_string()),
                last_handled_reconcile_at: r.requested_at.map(str::to_string),
                inventory: r.result.map(|res| {
                    res.inventory
                        .iter()
                        .map(|o| capstan_status::InventoryEntry {
                            id: o.id(),
                            v: o.version.clone(),
                        })
                        .collect()
                }),
                artifact: None,
            };
            let key = status_key(r.unit, r.api_version);
            let written = match capstan_status::StatusClient::new(client.clone())
                .write(&key, &update)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(cluster = r.cluster, unit = %r.unit, error = %e, "cannot write status");
                    false
                }
            };
            let (warning, reason, message) = match &r.outcome {
                Outcome::Ready { message, changes } => {
                    let text = if changes.is_empty() {
                        message.clone()
                    } else {
                        changes.join("\n")
                    };
                    (false, "ReconciliationSucceeded", text)
                }
                Outcome::Failed {
                    reason, message, ..
                } => (true, reason.as_str(), message.clone()),
                Outcome::DependencyNotReady { message } => {
                    (false, "DependencyNotReady", message.clone())
                }
            };
            let changed =
                matches!(&r.outcome, Outcome::Ready { changes, .. } if !changes.is_empty());
            if written || changed {
                let events = capstan_status::EventRecorder::new(client.clone(), "capstan");
                if let Err(e) = events.publish(&key, warning, reason, &message).await {
                    tracing::debug!(error = %e, "cannot publish event");
                }
            }
            if ready || matches!(r.outcome, Outcome::Failed { .. }) {
                self.metrics.observe_reconcile(
                    &r.unit.kind,
                    &r.unit.namespace,
                    &r.unit.name,
                    r.cluster,
                    r.took,
                    ready,
                );
            }
            self.metrics.set_condition(
                &r.unit.kind,
                &r.unit.namespace,
                &r.unit.name,
                r.cluster,
                "Ready",
                if ready { "True" } else { "False" },
            );
            if let Some(res) = r.result {
                let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
                for o in res.objects.iter().chain(res.pruned.iter()) {
                    *counts.entry(o.action.to_string()).or_default() += 1;
                }
                for (action, n) in counts {
                    self.metrics.count_apply(r.cluster, &action, n);
                }
            }
        })
    }

    fn source<'a>(
        &'a self,
        client: &'a kube::Client,
        key: &'a (String, String, String),
        artifact: Option<&'a capstan_source::Artifact>,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (kind, ns, name) = key;
            let api_version = if kind == "OCIRepository" {
                "source.toolkit.fluxcd.io/v1beta2"
            } else {
                "source.toolkit.fluxcd.io/v1"
            };
            let key = capstan_status::ObjectKey {
                api_version: api_version.into(),
                kind: kind.clone(),
                namespace: ns.clone(),
                name: name.clone(),
            };
            let failed_reason = if kind == "OCIRepository" {
                "OCIOperationFailed"
            } else {
                "GitOperationFailed"
            };
            let (outcome, warning, reason, message) = match (error, artifact) {
                (Some(e), _) => (
                    capstan_status::Outcome::Failed {
                        reason: failed_reason.into(),
                        message: e.to_string(),
                        stalled: false,
                    },
                    true,
                    failed_reason,
                    e.to_string(),
                ),
                (None, Some(a)) => {
                    let message = format!("stored artifact for revision '{}'", a.revision);
                    (
                        capstan_status::Outcome::Ready {
                            reason: "Succeeded".into(),
                            message: message.clone(),
                        },
                        false,
                        "NewArtifact",
                        message,
                    )
                }
                (None, None) => return,
            };
            let mut update = capstan_status::StatusUpdate::new(outcome, None);
            update.artifact = artifact.map(|a| capstan_status::ArtifactStatus {
                revision: a.revision.clone(),
                digest: Some(a.digest.clone()),
                last_update_time: capstan_status::now_rfc3339(),
                path: format!(
                    "{}/{ns}/{name}/{}",
                    kind.to_lowercase(),
                    a.digest.trim_start_matches("sha256:")
                ),
                url: format!("file://{}", a.path.display()),
            });
            let status = capstan_status::StatusClient::new(client.clone());
            match status.write(&key, &update).await {
                Ok(true) => {
                    let events = capstan_status::EventRecorder::new(client.clone(), "capstan");
                    if let Err(e) = events.publish(&key, warning, reason, &message).await {
                        tracing::debug!(error = %e, "cannot publish event");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(source = %key, error = %e, "cannot write source status"),
            }
        })
    }

    fn unit_removed(&self, cluster: &str, unit: &UnitId) {
        self.metrics
            .remove_unit(&unit.kind, &unit.namespace, &unit.name, cluster);
    }

    fn cache(&self, cluster: &str, objects: usize, bytes: usize, cached: u64, dry_runs: u64) {
        self.metrics.set_cache_size(cluster, objects, bytes);
        self.metrics.count_drift_checks(cluster, "cache", cached);
        self.metrics
            .count_drift_checks(cluster, "dry_run", dry_runs);
    }

    fn unit_panicked(&self, cluster: &str, unit: &UnitId) {
        self.metrics
            .count_unit_panic(&unit.kind, &unit.namespace, &unit.name, cluster);
    }

    fn source_fetched(
        &self,
        spec: &GitRepositorySpec,
        took: Duration,
        error: Option<&SourceError>,
    ) {
        self.metrics.observe_fetch(
            "GitRepository",
            &spec.namespace,
            &spec.name,
            took,
            error.is_none(),
        );
    }
}
