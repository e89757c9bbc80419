//! When does a unit run? Pure bookkeeping, tested without a cluster.
//!
//! A unit is due when:
//! - its source revision differs from the one it last attempted;
//! - someone asked (`reconcile.fluxcd.io/requestedAt` differs from the value handled last);
//! - its object's `metadata.generation` changed (someone edited the spec in the cluster);
//! - its interval has passed since the last attempt (drift correction), or, after a
//!   failure, its retry delay has: exponential from [`Schedule::retry_base`], capped at
//!   `retryInterval` (else the interval), as Flux retries failed reconciliations.
//!
//! Suspended units are never due.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use capstan_graph::UnitId;

/// The last run of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub at: Instant,
    pub revision: String,
    pub ok: bool,
    /// Consecutive failures (0 after a success).
    pub failures: u32,
    /// The `requestedAt` value handled by that run.
    pub handled_request: Option<String>,
    /// The object generation seen by that run.
    pub generation: Option<i64>,
    /// What the run reported (the Ready message), for dependents that wait on it.
    pub message: String,
}

/// What the cluster says about a unit's object (read by the shared round).
pub use capstan_engine::round::Observed;

/// Why a unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Never ran in this process.
    First,
    NewRevision,
    Requested,
    SpecChanged,
    Interval,
    Retry,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::First => "first reconciliation",
            Reason::NewRevision => "new revision",
            Reason::Requested => "reconcile requested",
            Reason::SpecChanged => "spec changed",
            Reason::Interval => "interval",
            Reason::Retry => "retry",
        })
    }
}

/// Per-unit run history of one cluster.
#[derive(Debug, Clone)]
pub struct Schedule {
    runs: BTreeMap<UnitId, LastRun>,
    /// First retry delay after a failure (doubles per failure).
    pub retry_base: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            runs: BTreeMap::new(),
            retry_base: Duration::from_secs(5),
        }
    }
}

impl Schedule {
    /// An empty schedule whose first retry waits `retry_base`.
    pub fn new(retry_base: Duration) -> Self {
        Schedule {
            runs: BTreeMap::new(),
            retry_base,
        }
    }

    pub fn last(&self, id: &UnitId) -> Option<&LastRun> {
        self.runs.get(id)
    }

    /// Is the unit due, and why?
    pub fn due(
        &self,
        id: &UnitId,
        observed: &Observed,
        revision: &str,
        interval: Duration,
        retry_interval: Option<Duration>,
        now: Instant,
    ) -> Option<Reason> {
        if observed.suspended {
            return None;
        }
        let Some(last) = self.runs.get(id) else {
            return Some(Reason::First);
        };
        if last.revision != revision {
            return Some(Reason::NewRevision);
        }
        if observed.requested_at.is_some() && observed.requested_at != last.handled_request {
            return Some(Reason::Requested);
        }
        if observed.generation.is_some() && observed.generation != last.generation {
            return Some(Reason::SpecChanged);
        }
        let elapsed = now.saturating_duration_since(last.at);
        if !last.ok && elapsed >= self.retry_delay(last.failures, interval, retry_interval) {
            return Some(Reason::Retry);
        }
        if elapsed >= interval {
            return Some(Reason::Interval);
        }
        None
    }

    /// When the unit will next be due by time alone (None when suspended).
    pub fn next_due(
        &self,
        id: &UnitId,
        interval: Duration,
        retry_interval: Option<Duration>,
    ) -> Option<Instant> {
        let last = self.runs.get(id)?;
        let wait = if last.ok {
            interval
        } else {
            self.retry_delay(last.failures, interval, retry_interval)
        };
        Some(last.at + wait)
    }

    fn retry_delay(
        &self,
        failures: u32,
        interval: Duration,
        retry_interval: Option<Duration>,
    ) -> Duration {
        let cap = retry_interval.unwrap_or(interval);
        let exp = self
            .retry_base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        exp.min(cap)
    }

    /// Record a run.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        id: &UnitId,
        at: Instant,
        revision: &str,
        ok: bool,
        observed: &Observed,
        message: String,
    ) {
        let failures = if ok {
            0
        } else {
            self.runs.get(id).map_or(0, |l| l.failures) + 1
        };
        self.runs.insert(
            id.clone(),
            LastRun {
                at,
                revision: revision.to_string(),
                ok,
                failures,
                handled_request: observed.requested_at.clone(),
                generation: observed.generation,
                message,
            },
        );
    }

    /// Forget units that are gone from the repository.
    pub fn retain(&mut self, keep: impl Fn(&UnitId) -> bool) {
        self.runs.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> UnitId {
        UnitId::new("Kustomization", "flux-system", "apps")
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn first_run_then_nothing_until_interval() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        let o = Observed::default();
        assert_eq!(s.due(&id(), &o, "r1", MIN, None, t0), Some(Reason::First));
        s.record(&id(), t0, "r1", true, &o, String::new());
        assert_eq!(s.due(&id(), &o, "r1", MIN, None, t0 + MIN / 2), None);
        assert_eq!(
            s.due(&id(), &o, "r1", MIN, None, t0 + MIN),
            Some(Reason::Interval)
        );
        assert_eq!(s.next_due(&id(), MIN, None), Some(t0 + MIN));
    }

    #[test]
    fn new_revision_request_and_generation_make_it_due() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        let o = Observed {
            generation: Some(1),
            ..Default::default()
        };
        s.record(&id(), t0, "r1", true, &o, String::new());
        assert_eq!(
            s.due(&id(), &o, "r2", MIN, None, t0),
            Some(Reason::NewRevision)
        );
        let asked = Observed {
            requested_at: Some("2026-11-23T10:00:00Z".into()),
            generation: Some(1),
            ..Default::default()
        };
        assert_eq!(
            s.due(&id(), &asked, "r1", MIN, None, t0),
            Some(Reason::Requested)
        );
        s.record(&id(), t0, "r1", true, &asked, String::new());
        assert_eq!(s.due(&id(), &asked, "r1", MIN, None, t0), None);
        let edited = Observed {
            generation: Some(2),
            ..asked.clone()
        };
        assert_eq!(
            s.due(&id(), &edited, "r1", MIN, None, t0),
            Some(Reason::SpecChanged)
        );
    }

    #[test]
    fn suspended_is_never_due() {
        let s = Schedule::default();
        let o = Observed {
            suspended: true,
            ..Default::default()
        };
        assert_eq!(s.due(&id(), &o, "r1", MIN, None, Instant::now()), None);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_retry_interval() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        let o = Observed::default();
        s.record(&id(), t0, "r1", false, &o, "boom".into());
        assert_eq!(s.last(&id()).unwrap().failures, 1);
        assert_eq!(
            s.due(&id(), &o, "r1", MIN, None, t0 + Duration::from_secs(4)),
            None
        );
        assert_eq!(
            s.due(&id(), &o, "r1", MIN, None, t0 + Duration::from_secs(5)),
            Some(Reason::Retry)
        );
        for _ in 0..10 {
            s.record(&id(), t0, "r1", false, &o, "boom".into());
        }
        let cap = Duration::from_secs(30);
        assert_eq!(s.next_due(&id(), MIN, Some(cap)), Some(t0 + cap));
        assert_eq!(s.next_due(&id(), MIN, None), Some(t0 + MIN));
        s.record(&id(), t0, "r1", true, &o, String::new());
        assert_eq!(s.last(&id()).unwrap().failures, 0);
    }
}
