//! The process: HTTP endpoints, leader election, the source loop, cluster workers and
//! cluster discovery, and a clean shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_source::{GitAuth, GitRepositorySpec, SourceCache};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterWorker, WorkerSettings};
use crate::report::{ClusterReporter, Reporter};
use crate::source::RootSource;

/// A cluster given on the command line (or in tests).
#[derive(Clone)]
pub struct ClusterSource {
    pub name: String,
    pub client: kube::Client,
}

/// How the agent runs.
pub struct AgentConfig {
    /// The repository every cluster reads (`clusters/<name>` in it).
    pub source: GitRepositorySpec,
    pub source_auth: Option<GitAuth>,
    pub source_interval: Duration,
    /// Where fetched revisions are cached.
    pub cache_dir: PathBuf,
    /// Clusters reconciled from the start (usually the agent's own).
    pub clusters: Vec<ClusterSource>,
    /// The cluster holding the Lease, Receivers and kubeconfig Secrets.
    pub management: Option<kube::Client>,
    /// Register clusters from kubeconfig Secrets on the management cluster.
    pub discover_clusters: bool,
    /// Namespace to look for kubeconfig Secrets in (all when None).
    pub discover_namespace: Option<String>,
    /// How often Secrets and Receivers are re-read.
    pub discover_interval: Duration,
    pub settings: WorkerSettings,
    /// `/metrics`, `/healthz`, `/readyz` and `/hook/...` on this address.
    pub listen: Option<SocketAddr>,
    /// Install the toolkit CRDs (status needs them) when missing.
    pub install_crds: bool,
    /// Only the holder of this Lease (on the management cluster) reconciles.
    pub leader_election: Option<capstan_lease::LeaseConfig>,
}

struct Running {
    worker: Arc<ClusterWorker>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The agent.
pub struct Agent {
    cfg: AgentConfig,
    source: Arc<RootSource>,
    metrics: capstan_metrics::Metrics,
    probes: capstan_metrics::Probes,
    reporter: Arc<dyn Reporter>,
    workers: Mutex<BTreeMap<String, Running>>,
    receivers: Mutex<Vec<capstan_receiver::ReceiverSpec>>,
    bound: Mutex<Option<SocketAddr>>,
}

impl Agent {
    /// The agent for `cfg`. Installs capstan's panic hook
    /// ([`capstan_engine::install_panic_hook`]): a unit's panic is logged once, by the
    /// worker, with the unit it belongs to.
    pub fn new(mut cfg: AgentConfig) -> Arc<Self> {
        capstan_engine::install_panic_hook();
        cfg.settings.cache_dir = cfg.cache_dir.join("clusters");
        cfg.settings.root_source = (
            "GitRepository".into(),
            cfg.source.namespace.clone(),
            cfg.source.name.clone(),
        );
        let cache = Arc::new(SourceCache::new(cfg.cache_dir.join("root")));
        let source = Arc::new(RootSource::new(
            cfg.source.clone(),
            cfg.source_auth.clone(),
            cache,
            cfg.source_interval,
        ));
        let metrics = capstan_metrics::Metrics::new();
        let reporter: Arc<dyn Reporter> = Arc::new(ClusterReporter {
            metrics: metrics.clone(),
            install_crds: cfg.install_crds,
        });
        Arc::new(Agent {
            cfg,
            source,
            metrics,
            probes: capstan_metrics::Probes::default(),
            reporter,
            workers: Mutex::new(BTreeMap::new()),
            receivers: Mutex::new(Vec::new()),
            bound: Mutex::new(None),
        })
    }

    pub fn source(&self) -> &Arc<RootSource> {
        &self.source
    }

    /// The address the HTTP server listens on, once it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        *self.bound.lock().expect("bound")
    }

    /// Names of the clusters being reconciled.
    pub fn clusters(&self) -> Vec<String> {
        self.workers
            .lock()
            .expect("workers")
            .keys()
            .cloned()
            .collect()
    }

    /// A cluster's worker.
    pub fn worker(&self, name: &str) -> Option<Arc<ClusterWorker>> {
        self.workers
            .lock()
            .expect("workers")
            .get(name)
            .map(|r| r.worker.clone())
    }

    fn start_worker(&self, name: &str, client: kube::Client, parent: &CancellationToken) {
        let mut workers = self.workers.lock().expect("workers");
        if workers.contains_key(name) {
            return;
        }
        let worker = Arc::new(ClusterWorker::new(
            name,
            client,
            self.reporter.clone(),
            self.cfg.settings.clone(),
        ));
        let cancel = parent.child_token();
        let task = tokio::spawn(worker.clone().run(self.source.subscribe(), cancel.clone()));
        tracing::info!(cluster = name, "reconciling cluster");
        workers.insert(
            name.to_string(),
            Running {
                worker,
                cancel,
                task,
            },
        );
        self.metrics.set_clusters(workers.len());
    }

    fn stop_worker(&self, name: &str) -> Option<JoinHandle<()>> {
        let mut workers = self.workers.lock().expect("workers");
        let r = workers.remove(name)?;
        r.cancel.cancel();
        tracing::info!(
            cluster = name,
            "cluster gone: no longer reconciled (nothing deleted)"
        );
        self.metrics.set_clusters(workers.len());
        Some(r.task)
    }

    /// Run until `shutdown` is cancelled (or the Lease is lost).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), String> {
        let work = shutdown.child_token();
        if let Some(addr) = self.cfg.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("listening on {addr}: {e}"))?;
            *self.bound.lock().expect("bound") = listener.local_addr().ok();
            let app = capstan_metrics::router(self.metrics.clone(), self.probes.clone())
                .merge(capstan_receiver::router(Arc::new(Hooks(self.clone()))));
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
        }
        self.probes.set_live(true);

        let mut leader = None;
        if let (Some(lease), Some(mgmt)) = (&self.cfg.leader_election, &self.cfg.management) {
            let elector = capstan_lease::LeaderElector::new(mgmt.clone(), lease.clone());
            tracing::info!(lease = %lease.name, "waiting for leadership");
            tokio::select! {
                r = elector.acquire() => r.map_err(|e| e.to_string())?,
                _ = shutdown.cancelled() => return Ok(()),
            }
            tracing::info!("leading");
            leader = Some(elector.run());
        }
        self.metrics.set_leader(true);

        let source = self.source.clone();
        let reporter = self.reporter.clone();
        let source_cancel = work.clone();
        let source_task = tokio::spawn(async move { source.run(reporter, source_cancel).await });
        for c in &self.cfg.clusters {
            self.start_worker(&c.name, c.client.clone(), &work);
        }
        self.probes.set_ready(true);

        let lost_signal = leader.as_ref().map(|h| h.lost());
        let lost = async move {
            match lost_signal {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(lost);
        let mut lost_lease = false;
        loop {
            if let Some(mgmt) = &self.cfg.management {
                self.refresh(mgmt, &work).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = &mut lost => { lost_lease = true; break }
                _ = tokio::time::sleep(self.cfg.discover_interval) => {}
            }
        }

        // Shut down: stop starting units; running ones finish.
        tracing::info!("shutting down");
        self.probes.set_ready(false);
        work.cancel();
        let tasks: Vec<JoinHandle<()>> = {
            let mut w = self.workers.lock().expect("workers");
            std::mem::take(&mut *w)
                .into_values()
                .map(|r| r.task)
                .collect()
        };
        for t in tasks {
            let _ = t.await;
        }
        let _ = source_task.await;
        if let Some(h) = leader {
            h.release().await;
        }
        self.metrics.set_leader(false);
        if lost_lease {
            return Err("lost the leader lease".into());
        }
        Ok(())
    }

    /// Re-read kubeconfig Secrets (start/stop workers) and Receivers.
    async fn refresh(&self, mgmt: &kube::Client, work: &CancellationToken) {
        if self.cfg.discover_clusters {
            match capstan_fleet::discover_lenient(mgmt, self.cfg.discover_namespace.as_deref())
                .await
            {
                Ok(d) => {
                    for p in &d.problems {
                        tracing::warn!(error = %p, "unusable cluster Secret");
                    }
                    let found = d.clusters;
                    let statics: Vec<&str> =
                        self.cfg.clusters.iter().map(|c| c.name.as_str()).collect();
                    let mut seen = Vec::new();
                    for spec in found {
                        seen.push(spec.name.clone());
                        if statics.contains(&spec.name.as_str()) {
                            continue;
                        }
                        if self
                            .workers
                            .lock()
                            .expect("workers")
                            .contains_key(&spec.name)
                        {
                            continue;
                        }
                        match capstan_fleet::client_for(&spec).await {
                            Ok(client) => self.start_worker(&spec.name, client, work),
                            Err(e) => {
                                tracing::warn!(cluster = %spec.name, error = %e, "cannot connect to cluster")
                            }
                        }
                    }
                    let gone: Vec<String> = self
                        .clusters()
                        .into_iter()
                        .filter(|n| !statics.contains(&n.as_str()) && !seen.contains(n))
                        .collect();
                    for name in gone {
                        drop(self.stop_worker(&name));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot discover clusters"),
            }
        }
        match load_receivers(mgmt).await {
            Ok(r) => *self.receivers.lock().expect("receivers") = r,
            Err(e) => tracing::debug!(error = %e, "cannot read Receivers"),
        }
    }
}

/// Receivers (notification.toolkit.fluxcd.io/v1) on the management cluster, with their tokens.
async fn load_receivers(
    client: &kube::Client,
) -> Result<Vec<capstan_receiver::ReceiverSpec>, String> {
    let ar = ApiResource {
        group: "notification.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "notification.toolkit.fluxcd.io/v1".into(),
        kind: "Receiver".into(),
        plural: "receivers".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    for item in list.items {
        let ns = item.metadata.namespace.clone().unwrap_or_default();
        let name = item.metadata.name.clone().unwrap_or_default();
        let obj = serde_json::to_value(&item).unwrap_or_default();
        let Some(secret) = obj.pointer("/spec/secretRef/name").and_then(|v| v.as_str()) else {
            continue;
        };
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
        let token = match secrets.get_opt(secret).await {
            Ok(Some(s)) => s
                .data
                .and_then(|d| d.get("token").map(|b| b.0.clone()))
                .unwrap_or_default(),
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(receiver = %format!("{ns}/{name}"), error = %e, "cannot read the receiver's secret");
                continue;
            }
        };
        match capstan_receiver::ReceiverSpec::from_object(&obj, &token) {
            Ok(r) => out.push(r),
            Err(e) => {
                tracing::warn!(receiver = %format!("{ns}/{name}"), error = %e, "invalid receiver")
            }
        }
    }
    Ok(out)
}

struct Hooks(Arc<Agent>);

impl capstan_receiver::HookSink for Hooks {
    fn receivers(&self) -> Vec<capstan_receiver::ReceiverSpec> {
        self.0.receivers.lock().expect("receivers").clone()
    }

    fn trigger(
        &self,
        receiver: &capstan_receiver::ReceiverSpec,
        resources: &[capstan_receiver::ResourceRef],
    ) {
        let src = &self.0.cfg.source;
        let mut fetch = false;
        let mut wake = false;
        for r in resources {
            match r.kind.as_str() {
                "GitRepository" | "OCIRepository" | "HelmRepository" => {
                    if r.name == "*" || (r.name == src.name && r.namespace == src.namespace) {
                        fetch = true;
                    }
                }
                _ => wake = true,
            }
        }
        tracing::info!(receiver = %receiver.name, fetch, wake, "webhook");
        if fetch {
            self.0.source.trigger.notify_one();
        }
        if wake {
            for w in self.0.workers.lock().expect("workers").values() {
                w.worker.wake.notify_one();
            }
        }
    }
}
