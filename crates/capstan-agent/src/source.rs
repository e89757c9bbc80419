//! The root source: the Git repository every registered cluster reads its state from.
//! Fetched on its interval and when asked (webhook, `reconcile.fluxcd.io/requestedAt`),
//! published to the cluster workers as the newest [`Artifact`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_source::{Artifact, GitAuth, GitRepositorySpec, SourceCache, SourceError};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::report::Reporter;

/// A fetched revision, shared by every cluster worker.
pub type Current = Option<Arc<Artifact>>;

/// The root source and its fetch loop.
pub struct RootSource {
    pub spec: GitRepositorySpec,
    pub auth: Option<GitAuth>,
    pub cache: Arc<SourceCache>,
    pub interval: Duration,
    /// Wakes the loop for an immediate fetch.
    pub trigger: Arc<Notify>,
    tx: watch::Sender<Current>,
}

impl RootSource {
    pub fn new(
        spec: GitRepositorySpec,
        auth: Option<GitAuth>,
        cache: Arc<SourceCache>,
        interval: Duration,
    ) -> Self {
        let (tx, _) = watch::channel(None);
        RootSource {
            spec,
            auth,
            cache,
            interval,
            trigger: Arc::new(Notify::new()),
            tx,
        }
    }

    /// Receives every new revision.
    pub fn subscribe(&self) -> watch::Receiver<Current> {
        self.tx.subscribe()
    }

    /// Fetch once; publishes the artifact when its revision is new.
    pub async fn fetch(&self, reporter: &dyn Reporter) -> Result<Arc<Artifact>, SourceError> {
        let started = Instant::now();
        let result = self.cache.fetch_git(&self.spec, self.auth.as_ref()).await;
        reporter.source_fetched(&self.spec, started.elapsed(), result.as_ref().err());
        let artifact = Arc::new(result?);
        let changed = self
            .tx
            .borrow()
            .as_ref()
            .is_none_or(|a| a.revision != artifact.revision);
        if changed {
            tracing::info!(source = %self.spec.id(), revision = %artifact.revision, "new revision");
            let previous = self.tx.send_replace(Some(artifact.clone()));
            // Keep the previous tree until the workers moved on; drop older ones.
            let mut keep: Vec<&std::path::Path> = vec![artifact.path.as_path()];
            if let Some(p) = &previous {
                keep.push(p.path.as_path());
            }
            if let Err(e) = self.cache.retain(&keep).await {
                tracing::warn!(error = %e, "cannot clean the source cache");
            }
        }
        Ok(artifact)
    }

    /// Fetch on the interval and when triggered, until cancelled. Failures keep the
    /// last good revision and retry with backoff (capped at the interval).
    pub async fn run(&self, reporter: Arc<dyn Reporter>, cancel: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let wait = match self.fetch(reporter.as_ref()).await {
                Ok(_) => {
                    failures = 0;
                    self.interval
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(source = %self.spec.id(), error = %e, "fetch failed; keeping the last good revision");
                    Duration::from_secs(2)
                        .saturating_mul(1 << failures.min(8))
                        .min(self.interval)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.trigger.notified() => {}
            }
        }
    }
}
