//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! package does it.
//!
//! Several replicas of the agent share one Lease. A [`LeaderElector`] acquires the Lease when it
//! is absent, released (empty `holderIdentity`) or expired (`renewTime + leaseDurationSeconds`
//! in the past), renews it every `retry_period` while it leads, and reports the loss of
//! leadership when renewing has failed for longer than `renew_deadline` (or somebody else
//! took the Lease). All writes use optimistic concurrency (`resourceVersion`), so two
//! candidates never both believe they hold the Lease after a successful write.
//!
//! ```no_run
//! # async fn t(client: kube::Client, shutdown: impl std::future::Future<Output = ()>) -> Result<(), capstan_lease::LeaseError> {
//! use capstan_lease::{LeaderElector, LeaseConfig};
//! let cfg = LeaseConfig::new("flux-system", "capstan-agent", "pod-a");
//! let elector = LeaderElector::new(client, cfg);
//! elector.acquire().await?;
//! let handle = elector.run();
//! tokio::select! {
//!     _ = handle.lost() => { /* stop reconciling and exit */ }
//!     _ = shutdown => { handle.release().await; }
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the Lease lives, who we are, and the timing of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (written to `holderIdentity`); unique per replica, e.g. the pod name.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal (`leaseDurationSeconds`); default 15 s.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership; default 10 s.
    pub renew_deadline: Duration,
    /// The interval between acquire and renew attempts; default 2 s.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration with client-go's default timings (15 s / 10 s / 2 s).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks the timing rules client-go enforces: `lease_duration > renew_deadline >
    /// retry_period > 0`, the Lease duration a whole number of seconds of at least one, and a
    /// non-empty identity, namespace and name.
    pub fn validate(&self) -> Result<(), LeaseError> {
        let bad = |msg: String| Err(LeaseError::Config(msg));
        if self.identity.is_empty() {
            return bad("identity must not be empty (use e.g. the pod name)".into());
        }
        if self.namespace.is_empty() || self.name.is_empty() {
            return bad("the Lease namespace and name must not be empty".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return bad(format!(
                "lease_duration {:?} is shorter than one second (leaseDurationSeconds is whole seconds)",
                self.lease_duration
            ));
        }
        if self.retry_period.is_zero() {
            return bad("retry_period must be greater than zero".into());
        }
        if self.renew_deadline <= self.retry_period {
            return bad(format!(
                "renew_deadline {:?} must be greater than retry_period {:?}",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration <= self.renew_deadline {
            return bad(format!(
                "lease_duration {:?} must be greater than renew_deadline {:?}",
                self.lease_duration, self.renew_deadline
            ));
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs_f64().ceil();
        secs.clamp(1.0, i32::MAX as f64) as i32
    }
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The [`LeaseConfig`] is not usable.
    #[error("leader election config: {0}")]
    Config(String),
    /// The API server refused in a way retrying cannot fix (forbidden, unauthorized, missing
    /// namespace, invalid object).
    #[error("Lease {namespace}/{name}: {message} (hint: the agent needs get/create/update on leases.coordination.k8s.io in {namespace})")]
    Api {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The API server's answer.
        message: String,
    },
}

/// Outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Someone else holds a valid Lease (their identity), or our write lost a race (`None`).
    Busy(Option<String>),
}

/// A candidate for leadership on one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    leading: Arc<AtomicBool>,
    /// Successful renewals by the renew loop (see [`LeaderHandle::renewals`]).
    renewed: watch::Sender<u64>,
}

impl fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector")
            .field("cfg", &self.cfg)
            .field("leading", &self.leading.load(Ordering::SeqCst))
            .finish()
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn is_permanent(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 400 | 401 | 403 | 404 | 422),
        _ => false,
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// Whether the Lease is held by someone (non-empty holder) and not expired at `at`.
fn held_by_other(spec: &LeaseSpec, identity: &str, at: Timestamp) -> Option<String> {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return None;
    }
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        // A holder without any time: treat it as expired, as it can never be renewed validly.
        return None;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    let expiry = renew.0.checked_add(SignedDuration::from_secs(secs)).ok()?;
    if expiry > at {
        Some(holder.to_string())
    } else {
        None
    }
}

/// The spec to write when `identity` takes or renews the Lease whose current spec is `old`.
fn next_spec(old: Option<&LeaseSpec>, identity: &str, seconds: i32, at: Timestamp) -> LeaseSpec {
    let t = MicroTime(at);
    match old {
        Some(old) if old.holder_identity.as_deref() == Some(identity) => LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(seconds),
            acquire_time: old.acquire_time.clone().or(Some(t.clone())),
            renew_time: Some(t),
            lease_transitions: Some(old.lease_transitions.unwrap_or(0)),
            ..old.clone()
        },
        Some(old) => LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(t.clone()),
            renew_time: Some(t),
            lease_transitions: Some(old.lease_transitions.unwrap_or(0).saturating_add(1)),
            ..old.clone()
        },
        None => LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(t.clone()),
            renew_time: Some(t),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        },
    }
}

impl LeaderElector {
    /// A candidate using `client` for the Lease described by `cfg`.
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &cfg.namespace);
        LeaderElector {
            api,
            cfg,
            leading: Arc::new(AtomicBool::new(false)),
            renewed: watch::channel(0).0,
        }
    }

    /// The configuration this elector runs with.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Whether the last attempt left us holding the Lease.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    fn api_error(&self, e: &kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            message: api_message(e),
        }
    }

    /// One acquire-or-renew round (client-go `tryAcquireOrRenew`).
    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let seconds = self.cfg.lease_seconds();
        let identity = self.cfg.identity.as_str();
        let existing = self.api.get_opt(&self.cfg.name).await?;
        let at = now();
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(next_spec(None, identity, seconds, at)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(kube::Error::Api(s)) if s.is_conflict() || s.code == 409 => {
                    Ok(Attempt::Busy(None))
                }
                Err(e) => Err(e),
            };
        };
        if let Some(other) = lease
            .spec
            .as_ref()
            .and_then(|s| held_by_other(s, identity, at))
        {
            return Ok(Attempt::Busy(Some(other)));
        }
        lease.spec = Some(next_spec(lease.spec.as_ref(), identity, seconds, at));
        // `replace` sends metadata.resourceVersion from the GET: a concurrent writer makes it 409.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(s)) if s.is_conflict() || s.code == 409 => Ok(Attempt::Busy(None)),
            Err(e) => Err(e),
        }
    }

    /// Blocks until this candidate holds the Lease: creates it when absent, takes it when
    /// released or expired, retrying every `retry_period`. Transient API errors are logged and
    /// retried; configuration errors and permanent refusals (forbidden, unauthorized, missing
    /// namespace) are returned. Cancel-safe.
    pub async fn acquire(&self) -> Result<(), LeaseError> {
        self.cfg.validate()?;
        let mut last_holder: Option<String> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    self.leading.store(true, Ordering::SeqCst);
                    tracing::info!(
                        lease = %format!("{}/{}", self.cfg.namespace, self.cfg.name),
                        identity = %self.cfg.identity,
                        "acquired leader lease"
                    );
                    return Ok(());
                }
                Ok(Attempt::Busy(holder)) => {
                    if holder.is_some() && holder != last_holder {
                        tracing::info!(
                            lease = %format!("{}/{}", self.cfg.namespace, self.cfg.name),
                            holder = holder.as_deref().unwrap_or(""),
                            "leader lease held by another candidate; waiting"
                        );
                        last_holder = holder;
                    }
                }
                Err(e) if is_permanent(&e) => return Err(self.api_error(&e)),
                Err(e) => {
                    tracing::warn!(
                        lease = %format!("{}/{}", self.cfg.namespace, self.cfg.name),
                        error = %api_message(&e),
                        "acquiring leader lease failed; retrying"
                    );
                }
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Spawns the renew loop and returns its handle. When this elector does not hold the Lease
    /// yet, the task first acquires it (so `run` alone also works); [`LeaderHandle::is_leader`]
    /// stays false until then. Must be called inside a Tokio runtime.
    pub fn run(self) -> LeaderHandle {
        let (lost_tx, lost_rx) = watch::channel(false);
        let leading = self.leading.clone();
        let elector = Arc::new(self);
        let task_elector = elector.clone();
        let task = tokio::spawn(async move { task_elector.renew_loop(lost_tx).await });
        LeaderHandle {
            elector,
            leading,
            lost: lost_rx,
            task: Some(task),
        }
    }

    async fn renew_loop(&self, lost: watch::Sender<bool>) {
        if !self.is_leader() {
            if let Err(e) = self.acquire().await {
                tracing::error!(error = %e, "leader election failed");
                let _ = lost.send(true);
                return;
            }
        }
        let lease = format!("{}/{}", self.cfg.namespace, self.cfg.name);
        let mut last_renew = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let remaining = self.cfg.renew_deadline.saturating_sub(last_renew.elapsed());
            let outcome = tokio::time::timeout(
                remaining.max(Duration::from_millis(1)),
                self.try_acquire_or_renew(),
            )
            .await;
            match outcome {
                Ok(Ok(Attempt::Held)) => {
                    last_renew = tokio::time::Instant::now();
                    self.renewed.send_modify(|n| *n += 1);
                    tracing::trace!(lease = %lease, "renewed leader lease");
                    continue;
                }
                Ok(Ok(Attempt::Busy(Some(holder)))) => {
                    tracing::warn!(lease = %lease, holder = %holder, "leader lease taken by another candidate");
                    break;
                }
                Ok(Ok(Attempt::Busy(None))) => {
                    tracing::debug!(lease = %lease, "renewing leader lease raced with another write; retrying");
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %lease, error = %api_message(&e), "renewing leader lease failed");
                }
                Err(_) => {
                    tracing::warn!(lease = %lease, "renewing leader lease timed out");
                }
            }
            if last_renew.elapsed() >= self.cfg.renew_deadline {
                tracing::error!(
                    lease = %lease,
                    deadline = ?self.cfg.renew_deadline,
                    "could not renew leader lease within the renew deadline; leadership lost"
                );
                break;
            }
        }
        self.leading.store(false, Ordering::SeqCst);
        let _ = lost.send(true);
    }

    /// Gives the Lease up if we hold it (client-go `ReleaseOnCancel`): empty holder,
    /// `leaseDurationSeconds: 1`, so a successor takes over at once.
    async fn release_lease(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(false);
        }
        let t = MicroTime(now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(t.clone());
        spec.acquire_time = Some(t);
        self.api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await?;
        Ok(true)
    }
}

/// A running leader election: renews the Lease in the background until released or dropped.
///
/// Dropping the handle stops renewing without releasing (the Lease then expires after
/// `lease_duration`); call [`LeaderHandle::release`] on a clean shutdown.
pub struct LeaderHandle {
    elector: Arc<LeaderElector>,
    leading: Arc<AtomicBool>,
    lost: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for LeaderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderHandle")
            .field("cfg", &self.elector.cfg)
            .field("leading", &self.is_leader())
            .finish()
    }
}

impl LeaderHandle {
    /// Whether we currently hold the Lease.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// The configuration of the election.
    pub fn config(&self) -> &LeaseConfig {
        &self.elector.cfg
    }

    /// How many times the renew loop has renewed the Lease so far (to wait for renewals
    /// instead of sleeping).
    pub fn renewals(&self) -> watch::Receiver<u64> {
        self.elector.renewed.subscribe()
    }

    /// Resolves once leadership is lost: renewing failed past `renew_deadline`, another
    /// candidate took the Lease, or acquiring failed permanently. Never resolves while we lead.
    /// The future does not borrow the handle, so it can be awaited in `select!` next to other
    /// work and the handle released afterwards.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.lost.clone();
        async move {
            // An error means the sender is gone: the renew task ended, which only happens
            // after sending `true` (or when the handle was dropped).
            let _ = rx.wait_for(|lost| *lost).await;
        }
    }

    /// Stops renewing and releases the Lease if we still hold it, so a successor takes over
    /// without waiting for expiry. Errors while releasing are logged (the Lease then expires).
    pub async fn release(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.leading.store(false, Ordering::SeqCst);
        let cfg = &self.elector.cfg;
        let lease = format!("{}/{}", cfg.namespace, cfg.name);
        // A renewal cut off by the abort may still land: retry a lost race a few times.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.elector.release_lease().await {
                Ok(true) => {
                    tracing::info!(lease = %lease, "released leader lease");
                    break;
                }
                Ok(false) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 5 => continue,
                Err(e) => {
                    tracing::warn!(
                        lease = %lease,
                        error = %api_message(&e),
                        "releasing leader lease failed; it expires after the lease duration"
                    );
                    break;
                }
            }
        }
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.leading.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn spec(holder: Option<&str>, renew: i64, secs: i32, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: Some(MicroTime(ts(renew))),
            acquire_time: Some(MicroTime(ts(renew - 100))),
            lease_duration_seconds: Some(secs),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn validity() {
        let s = spec(Some("a"), 1000, 15, 0);
        assert_eq!(held_by_other(&s, "b", ts(1010)), Some("a".into()));
        assert_eq!(held_by_other(&s, "b", ts(1016)), None, "expired");
        assert_eq!(held_by_other(&s, "a", ts(1010)), None, "our own");
        let released = spec(None, 1000, 1, 3);
        assert_eq!(held_by_other(&released, "b", ts(1000)), None);
        let empty = spec(Some(""), 1000, 15, 3);
        assert_eq!(held_by_other(&empty, "b", ts(1000)), None);
    }

    #[test]
    fn transitions() {
        let fresh = next_spec(None, "a", 15, ts(5));
        assert_eq!(fresh.lease_transitions, Some(0));
        assert_eq!(fresh.holder_identity.as_deref(), Some("a"));
        let renewed = next_spec(Some(&spec(Some("a"), 1000, 15, 2)), "a", 15, ts(1005));
        assert_eq!(renewed.lease_transitions, Some(2));
        assert_eq!(renewed.acquire_time, Some(MicroTime(ts(900))));
        assert_eq!(renewed.renew_time, Some(MicroTime(ts(1005))));
        let taken = next_spec(Some(&spec(Some("a"), 1000, 15, 2)), "b", 15, ts(1100));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(ts(1100))));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
    }

    #[test]
    fn config_rules() {
        assert!(LeaseConfig::new("ns", "l", "me").validate().is_ok());
        let mut c = LeaseConfig::new("ns", "l", "");
        assert!(c.validate().is_err());
        c.identity = "me".into();
        c.renew_deadline = c.lease_duration;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("renew_deadline"));
        let mut c = LeaseConfig::new("ns", "l", "me");
        c.lease_duration = Duration::from_millis(1500);
        assert_eq!(c.lease_seconds(), 2);
    }
}
