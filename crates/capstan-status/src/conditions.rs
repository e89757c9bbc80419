//! Flux's `Ready` / `Reconciling` / `Stalled` conditions (pure).
//!
//! The condition types and reasons are those of `github.com/fluxcd/pkg/apis/meta`
//! (`conditions.go`) and kustomize-controller's `condition_types.go`; the condition itself is
//! Kubernetes' `metav1.Condition`, which is what `kubectl wait --for=condition=Ready`,
//! `flux get`, kstatus and Flux's printer columns read.

use serde::{Deserialize, Serialize};

/// `Ready`: the object is fully reconciled (True), failed (False) or in progress (Unknown).
pub const READY: &str = "Ready";
/// `Reconciling`: a reconciliation is in progress or will be retried (kstatus "abnormal-true").
pub const RECONCILING: &str = "Reconciling";
/// `Stalled`: the reconciliation cannot succeed without a change to the object or its inputs.
pub const STALLED: &str = "Stalled";

/// Reason of `Ready=True`.
pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
/// Generic failure reason.
pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
/// Reason of `Reconciling=True` (and `Ready=Unknown`) while a reconciliation runs.
pub const PROGRESSING: &str = "Progressing";
/// Reason of `Reconciling=True` after a failure that will be retried.
pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
/// A `dependsOn` entry is not ready.
pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
/// The source artifact could not be fetched.
pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
/// The manifests could not be built (kustomize build, templating, decryption).
pub const BUILD_FAILED: &str = "BuildFailed";
/// The applied objects did not become healthy in time.
pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";

/// `message` of `Ready=Unknown` while a reconciliation is in progress (as Flux writes it).
pub const IN_PROGRESS_MESSAGE: &str = "Reconciliation in progress";

/// Longest condition message the Kubernetes schema for `metav1.Condition` accepts.
pub const MAX_MESSAGE_BYTES: usize = 32768;
/// Longest condition reason the Kubernetes schema for `metav1.Condition` accepts.
pub const MAX_REASON_BYTES: usize = 1024;

/// One status condition, serialized exactly as `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `"True"`, `"False"` or `"Unknown"`.
    pub status: String,
    /// The `.metadata.generation` the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default)]
    pub last_transition_time: String,
    /// CamelCase machine-readable reason.
    #[serde(default)]
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// What a reconciliation of one object came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A reconciliation is running: `Reconciling=True` (Progressing) and `Ready=Unknown`.
    Progressing {
        /// E.g. `Fetching manifests for revision main@sha1:... with a timeout of 5m0s`.
        message: String,
    },
    /// Success: `Ready=True`; `Reconciling` and `Stalled` are removed.
    Ready {
        /// Reason of `Ready=True`; empty means `ReconciliationSucceeded`.
        reason: String,
        /// E.g. `Applied revision: main@sha1:...`.
        message: String,
    },
    /// Failure: `Ready=False` with this reason. When `stalled` (it cannot succeed without a
    /// change, e.g. `BuildFailed` on a bad kustomization.yaml) `Stalled=True` replaces
    /// `Reconciling`; otherwise `Reconciling=True` with reason `ProgressingWithRetry`.
    Failed {
        /// E.g. `BuildFailed`, `HealthCheckFailed`, `ArtifactFailed`; empty means
        /// `ReconciliationFailed`.
        reason: String,
        /// The error, already redacted by the caller.
        message: String,
        /// True when retrying without a change cannot help.
        stalled: bool,
    },
    /// A dependency is not ready: `Ready=False` reason `DependencyNotReady`, retried.
    DependencyNotReady {
        /// E.g. `dependency 'flux-system/infra' is not ready`.
        message: String,
    },
}

impl Outcome {
    /// The `Ready` condition's status for this outcome: `"True"`, `"False"` or `"Unknown"`.
    pub fn ready_status(&self) -> &'static str {
        match self {
            Outcome::Progressing { .. } => "Unknown",
            Outcome::Ready { .. } => "True",
            Outcome::Failed { .. } | Outcome::DependencyNotReady { .. } => "False",
        }
    }
}

/// Truncates `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Makes `reason` match the `metav1.Condition` pattern `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`
/// (the API server rejects the whole status otherwise); `fallback` when nothing is left.
fn sanitize_reason(reason: &str, fallback: &str) -> String {
    // Words separated by other characters are joined in CamelCase: "health check" ->
    // "HealthCheck".
    let separated = reason
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':')));
    let mut out = String::with_capacity(reason.len());
    let mut word_start = separated;
    for c in reason.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':') {
            out.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c
            });
            word_start = false;
        } else {
            word_start = true;
        }
    }
    let start = out
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(out.len());
    out.drain(..start);
    out.truncate(MAX_REASON_BYTES);
    while out.ends_with([',', ':']) {
        out.pop();
    }
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

/// Computes the conditions after `outcome`, Flux-style.
///
/// - `Progressing`: `Ready=Unknown` (Progressing, "Reconciliation in progress"),
///   `Reconciling=True` (Progressing, the message); no `Stalled`.
/// - `Ready`: `Ready=True` (default reason `ReconciliationSucceeded`); no `Reconciling`/`Stalled`.
/// - `Failed { stalled: false }` and `DependencyNotReady`: `Ready=False` with the reason,
///   `Reconciling=True` reason `ProgressingWithRetry` (message kept from the previous
///   `Reconciling` condition, as Flux does, else the failure message); no `Stalled`.
/// - `Failed { stalled: true }`: `Ready=False` and `Stalled=True` with the reason; no `Reconciling`.
///
/// `Ready` comes first, then `Reconciling`, then `Stalled`; conditions of other types in
/// `previous` (e.g. Flux's `Healthy`) follow unchanged. `lastTransitionTime` is kept from
/// `previous` when the status of that type did not change, and `now` otherwise (like
/// `meta.SetStatusCondition`). Every condition written gets `observedGeneration = generation`.
/// Reasons are sanitized to the `metav1.Condition` pattern and messages cut to 32 KiB.
pub fn conditions_for(
    outcome: &Outcome,
    generation: Option<i64>,
    previous: &[Condition],
    now: &str,
) -> Vec<Condition> {
    let prev = |t: &str| previous.iter().find(|c| c.type_ == t);
    let make = |type_: &str, status: &str, reason: &str, message: &str| {
        let last_transition_time = match prev(type_) {
            Some(p) if p.status == status && !p.last_transition_time.is_empty() => {
                p.last_transition_time.clone()
            }
            _ => now.to_string(),
        };
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            observed_generation: generation,
            last_transition_time,
            reason: reason.to_string(),
            message: truncate_bytes(message, MAX_MESSAGE_BYTES),
        }
    };
    let retry_message = |fallback: &str| {
        prev(RECONCILING)
            .filter(|c| c.status == "True" && !c.message.is_empty())
            .map(|c| c.message.clone())
            .unwrap_or_else(|| fallback.to_string())
    };

    let mut out = Vec::with_capacity(previous.len() + 2);
    match outcome {
        Outcome::Progressing { message } => {
            out.push(make(READY, "Unknown", PROGRESSING, IN_PROGRESS_MESSAGE));
            let msg = if message.is_empty() {
                IN_PROGRESS_MESSAGE
            } else {
                message
            };
            out.push(make(RECONCILING, "True", PROGRESSING, msg));
        }
        Outcome::Ready { reason, message } => {
            let reason = sanitize_reason(reason, RECONCILIATION_SUCCEEDED);
            out.push(make(READY, "True", &reason, message));
        }
        Outcome::Failed {
            reason,
            message,
            stalled,
        } => {
            let reason = sanitize_reason(reason, RECONCILIATION_FAILED);
            out.push(make(READY, "False", &reason, message));
            if *stalled {
                out.push(make(STALLED, "True", &reason, message));
            } else {
                let msg = retry_message(message);
                out.push(make(RECONCILING, "True", PROGRESSING_WITH_RETRY, &msg));
            }
        }
        Outcome::DependencyNotReady { message } => {
            out.push(make(READY, "False", DEPENDENCY_NOT_READY, message));
            let msg = retry_message(message);
            out.push(make(RECONCILING, "True", PROGRESSING_WITH_RETRY, &msg));
        }
    }
    out.extend(
        previous
            .iter()
            .filter(|c| ![READY, RECONCILING, STALLED].contains(&c.type_.as_str()))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:01:00Z";
    const T2: &str = "2026-01-01T00:02:00Z";

    fn get<'a>(cs: &'a [Condition], t: &str) -> Option<&'a Condition> {
        cs.iter().find(|c| c.type_ == t)
    }

    fn ready(msg: &str) -> Outcome {
        Outcome::Ready {
            reason: String::new(),
            message: msg.into(),
        }
    }

    #[test]
    fn progressing_then_ready() {
        let p = conditions_for(
            &Outcome::Progressing {
                message: "Fetching manifests for revision main@sha1:abc".into(),
            },
            Some(1),
            &[],
            T0,
        );
        let r = get(&p, READY).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str(), r.message.as_str()),
            ("Unknown", PROGRESSING, IN_PROGRESS_MESSAGE)
        );
        let rc = get(&p, RECONCILING).unwrap();
        assert_eq!(
            (rc.status.as_str(), rc.reason.as_str()),
            ("True", PROGRESSING)
        );
        assert!(rc.message.contains("main@sha1:abc"));
        assert!(get(&p, STALLED).is_none());
        assert_eq!(r.observed_generation, Some(1));
        assert_eq!(r.last_transition_time, T0);

        let d = conditions_for(&ready("Applied revision: main@sha1:abc"), Some(1), &p, T1);
        assert_eq!(d.len(), 1);
        let r = get(&d, READY).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", RECONCILIATION_SUCCEEDED)
        );
        assert_eq!(
            r.last_transition_time, T1,
            "Unknown -> True is a transition"
        );
    }

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let a = conditions_for(&ready("Applied revision: a"), Some(1), &[], T0);
        let b = conditions_for(&ready("Applied revision: b"), Some(2), &a, T1);
        let r = get(&b, READY).unwrap();
        assert_eq!(r.last_transition_time, T0);
        assert_eq!(r.message, "Applied revision: b");
        assert_eq!(r.observed_generation, Some(2));
        // Identical input gives identical output (no spurious writes).
        let c = conditions_for(&ready("Applied revision: b"), Some(2), &b, T2);
        assert_eq!(b, c);
    }

    #[test]
    fn retryable_failure_keeps_reconciling_message_with_retry_reason() {
        let p = conditions_for(
            &Outcome::Progressing {
                message: "Building manifests".into(),
            },
            Some(3),
            &[],
            T0,
        );
        let f = conditions_for(
            &Outcome::Failed {
                reason: HEALTH_CHECK_FAILED.into(),
                message: "timeout waiting for: [Deployment/default/web]".into(),
                stalled: false,
            },
            Some(3),
            &p,
            T1,
        );
        let r = get(&f, READY).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", HEALTH_CHECK_FAILED)
        );
        assert!(r.message.contains("Deployment/default/web"));
        assert_eq!(r.last_transition_time, T1);
        let rc = get(&f, RECONCILING).unwrap();
        assert_eq!(
            (rc.status.as_str(), rc.reason.as_str(), rc.message.as_str()),
            ("True", PROGRESSING_WITH_RETRY, "Building manifests")
        );
        assert_eq!(rc.last_transition_time, T0, "Reconciling stayed True");
        assert!(get(&f, STALLED).is_none());
    }

    #[test]
    fn failure_without_previous_reconciling_uses_its_message() {
        let f = conditions_for(
            &Outcome::Failed {
                reason: ARTIFACT_FAILED.into(),
                message: "source not found".into(),
                stalled: false,
            },
            None,
            &[],
            T0,
        );
        let rc = get(&f, RECONCILING).unwrap();
        assert_eq!(rc.message, "source not found");
        assert_eq!(rc.observed_generation, None);
    }

    #[test]
    fn stalled_failure_replaces_reconciling() {
        let p = conditions_for(
            &Outcome::Progressing {
                message: "x".into(),
            },
            Some(1),
            &[],
            T0,
        );
        let s = conditions_for(
            &Outcome::Failed {
                reason: BUILD_FAILED.into(),
                message: "kustomization.yaml: unknown field".into(),
                stalled: true,
            },
            Some(1),
            &p,
            T1,
        );
        assert!(get(&s, RECONCILING).is_none());
        let st = get(&s, STALLED).unwrap();
        assert_eq!(
            (st.status.as_str(), st.reason.as_str()),
            ("True", BUILD_FAILED)
        );
        assert_eq!(get(&s, READY).unwrap().status, "False");
        // Recovery removes Stalled.
        let ok = conditions_for(&ready("Applied"), Some(2), &s, T2);
        assert!(get(&ok, STALLED).is_none());
        assert_eq!(get(&ok, READY).unwrap().last_transition_time, T2);
    }

    #[test]
    fn dependency_not_ready() {
        let d = conditions_for(
            &Outcome::DependencyNotReady {
                message: "dependency 'flux-system/infra' is not ready".into(),
            },
            Some(1),
            &[],
            T0,
        );
        let r = get(&d, READY).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", DEPENDENCY_NOT_READY)
        );
        assert_eq!(get(&d, RECONCILING).unwrap().reason, PROGRESSING_WITH_RETRY);
    }

    #[test]
    fn foreign_conditions_kept_after_ours() {
        let healthy = Condition {
            type_: "Healthy".into(),
            status: "True".into(),
            observed_generation: Some(1),
            last_transition_time: T0.into(),
            reason: "Succeeded".into(),
            message: "Health check passed".into(),
        };
        let out = conditions_for(&ready("ok"), Some(1), std::slice::from_ref(&healthy), T1);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].type_, READY);
        assert_eq!(out[1], healthy);
    }

    #[test]
    fn reasons_sanitized_and_messages_truncated() {
        let f = conditions_for(
            &Outcome::Failed {
                reason: "1 bad reason!".into(),
                message: "é".repeat(MAX_MESSAGE_BYTES),
                stalled: false,
            },
            None,
            &[],
            T0,
        );
        let r = get(&f, READY).unwrap();
        assert_eq!(r.reason, "BadReason");
        assert!(r.message.len() <= MAX_MESSAGE_BYTES);
        let g = conditions_for(
            &Outcome::Failed {
                reason: "  ".into(),
                message: String::new(),
                stalled: false,
            },
            None,
            &[],
            T0,
        );
        assert_eq!(get(&g, READY).unwrap().reason, RECONCILIATION_FAILED);
    }

    #[test]
    fn serde_matches_metav1_condition() {
        let c = conditions_for(&ready("ok"), Some(4), &[], T0).remove(0);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "Ready", "status": "True", "observedGeneration": 4,
                "lastTransitionTime": T0, "reason": "ReconciliationSucceeded", "message": "ok"})
        );
        let back: Condition = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }
}
