//! kstatus-style health of Kubernetes objects, computed from the object alone (no I/O).
//!
//! This follows the semantics of `sigs.k8s.io/cli-utils/pkg/kstatus` (as used by Flux):
//!
//! 1. an object with `metadata.deletionTimestamp` is [`Status::Terminating`];
//! 2. when `status.observedGeneration` is present and differs from `metadata.generation`, the
//!    object is [`Status::InProgress`] (its controller has not seen the latest spec yet);
//! 3. a `Reconciling` condition that is `True` means [`Status::InProgress`], a `Stalled`
//!    condition that is `True` means [`Status::Failed`];
//! 4. built-in kinds have their own rules (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//!    Pod, PersistentVolumeClaim, Service, CustomResourceDefinition, Namespace);
//! 5. any other object: a `Ready` condition decides (`True` → Current, `False`/`Unknown` →
//!    InProgress); without one, the object is [`Status::Current`] (objects with no status at all,
//!    e.g. ConfigMaps, are Current).
//!
//! A missing object is [`Status::NotFound`]: use [`compute_opt`] with `None`.

use serde_json::Value;

/// The kstatus status of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// The object is fully reconciled: its actual state matches the desired state.
    Current,
    /// The object is being reconciled.
    InProgress,
    /// Reconciliation failed and is not expected to succeed without a change.
    Failed,
    /// The object is being deleted.
    Terminating,
    /// The object does not exist.
    NotFound,
}

impl Status {
    /// The kstatus spelling (`Current`, `InProgress`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "Current",
            Status::InProgress => "InProgress",
            Status::Failed => "Failed",
            Status::Terminating => "Terminating",
            Status::NotFound => "NotFound",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status with a human-readable explanation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// The status.
    pub status: Status,
    /// Why (e.g. `Ready: 0/1`).
    pub message: String,
}

impl Health {
    fn new(status: Status, message: impl Into<String>) -> Self {
        Health {
            status,
            message: message.into(),
        }
    }
    fn current(message: impl Into<String>) -> Self {
        Self::new(Status::Current, message)
    }
    fn in_progress(message: impl Into<String>) -> Self {
        Self::new(Status::InProgress, message)
    }
    fn failed(message: impl Into<String>) -> Self {
        Self::new(Status::Failed, message)
    }
    /// The health of a missing object.
    pub fn not_found() -> Self {
        Self::new(Status::NotFound, "Resource not found")
    }
    /// True when the status is [`Status::Current`].
    pub fn is_current(&self) -> bool {
        self.status == Status::Current
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

/// Health of an object that may be missing (`None` → [`Status::NotFound`]).
pub fn compute_opt(obj: Option<&Value>) -> Health {
    match obj {
        Some(o) => compute(o),
        None => Health::not_found(),
    }
}

/// Health of an object (a full Kubernetes object as JSON, with `apiVersion` and `kind`).
pub fn compute(obj: &Value) -> Health {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Health::new(Status::Terminating, "Resource scheduled for deletion");
    }
    if let Some(h) = generic(obj) {
        return h;
    }
    let group = group_of(obj);
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    match (group, kind) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps", "DaemonSet") => daemonset(obj),
        ("apps", "ReplicaSet") => replicaset(obj),
        ("batch", "Job") => job(obj),
        ("", "Pod") => pod(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Service") => service(obj),
        ("", "Namespace") => namespace(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        _ => ready_condition(obj),
    }
}

/// The API group of an object (`""` for the core group).
fn group_of(obj: &Value) -> &str {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

fn int_at(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// A condition of `status.conditions`.
struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<Condition<'a>> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| Condition {
            status: c.get("status").and_then(Value::as_str).unwrap_or_default(),
            reason: c.get("reason").and_then(Value::as_str).unwrap_or_default(),
            message: c.get("message").and_then(Value::as_str).unwrap_or_default(),
        })
}

fn cond_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c.status == "True")
}

fn message_or<'a>(c: &Condition<'a>, fallback: &'a str) -> &'a str {
    if !c.message.is_empty() {
        c.message
    } else if !c.reason.is_empty() {
        c.reason
    } else {
        fallback
    }
}

/// Checks that apply to every kind: observedGeneration, Reconciling, Stalled.
fn generic(obj: &Value) -> Option<Health> {
    if let Some(observed) = int_at(obj, "/status/observedGeneration") {
        let generation = int_at(obj, "/metadata/generation").unwrap_or(0);
        if observed != generation {
            let kind = obj
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("Resource");
            return Some(Health::in_progress(format!(
                "{kind} generation is {generation}, but latest observed generation is {observed}"
            )));
        }
    }
    if let Some(c) = condition(obj, "Reconciling").filter(|c| c.status == "True") {
        return Some(Health::in_progress(message_or(&c, "Reconciling")));
    }
    if let Some(c) = condition(obj, "Stalled").filter(|c| c.status == "True") {
        return Some(Health::failed(message_or(&c, "Stalled")));
    }
    None
}

fn ready_condition(obj: &Value) -> Health {
    match condition(obj, "Ready") {
        Some(c) if c.status == "True" => Health::current(message_or(&c, "Resource is Ready")),
        Some(c) => Health::in_progress(message_or(&c, "Resource is not Ready")),
        None => Health::current("Resource is current"),
    }
}

fn spec_replicas(obj: &Value) -> i64 {
    int_at(obj, "/spec/replicas").unwrap_or(1)
}

fn deployment(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Progressing") {
        if c.reason == "ProgressDeadlineExceeded" {
            return Health::failed(format!(
                "Progress deadline exceeded: {}",
                message_or(&c, "ProgressDeadlineExceeded")
            ));
        }
    }
    let progressing = condition(obj, "Progressing")
        .is_some_and(|c| c.status == "True" && c.reason == "NewReplicaSetAvailable");
    let available = cond_true(obj, "Available");
    let spec = spec_replicas(obj);
    let replicas = int_at(obj, "/status/replicas").unwrap_or(0);
    let updated = int_at(obj, "/status/updatedReplicas").unwrap_or(0);
    let ready = int_at(obj, "/status/readyReplicas").unwrap_or(0);
    let avail = int_at(obj, "/status/availableReplicas").unwrap_or(0);
    if obj.pointer("/status/observedGeneration").is_none() && obj.get("status").is_none() {
        return Health::in_progress("Deployment has no status yet");
    }
    if spec > replicas {
        return Health::in_progress(format!("Replicas: {replicas}/{spec}"));
    }
    if spec > updated {
        return Health::in_progress(format!("Updated: {updated}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    if updated > avail {
        return Health::in_progress(format!("Available: {avail}/{updated}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if !progressing {
        return Health::in_progress("ReplicaSet not Available");
    }
    if !available {
        return Health::in_progress("Deployment not Available");
    }
    Health::current(format!("Deployment is available. Replicas: {replicas}"))
}

fn statefulset(obj: &Value) -> Health {
    let strategy = str_at(obj, "/spec/updateStrategy/type").unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return Health::current(format!(
            "StatefulSet is using the {strategy} update strategy"
        ));
    }
    if obj.get("status").is_none() {
        return Health::in_progress("StatefulSet has no status yet");
    }
    let spec = spec_replicas(obj);
    let replicas = int_at(obj, "/status/replicas").unwrap_or(0);
    let ready = int_at(obj, "/status/readyReplicas").unwrap_or(0);
    let current = int_at(obj, "/status/currentReplicas").unwrap_or(0);
    let updated = int_at(obj, "/status/updatedReplicas").unwrap_or(0);
    if let Some(partition) = int_at(obj, "/spec/updateStrategy/rollingUpdate/partition") {
        if partition > 0 {
            let expected = (spec - partition).max(0);
            if updated < expected {
                return Health::in_progress(format!(
                    "updated: {updated}/{expected} (partition {partition})"
                ));
            }
            return Health::current(format!("Partitioned roll out complete. updated: {updated}"));
        }
    }
    if spec > replicas {
        return Health::in_progress(format!("Replicas: {replicas}/{spec}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    let current_rev = str_at(obj, "/status/currentRevision").unwrap_or_default();
    let update_rev = str_at(obj, "/status/updateRevision").unwrap_or_default();
    if current_rev != update_rev {
        return Health::in_progress(format!(
            "Waiting for updated revision: updated {updated}/{spec}"
        ));
    }
    if spec > current {
        return Health::in_progress(format!("Current: {current}/{spec}"));
    }
    Health::current(format!(
        "All replicas scheduled as expected. Replicas: {replicas}"
    ))
}

fn daemonset(obj: &Value) -> Health {
    let Some(desired) = int_at(obj, "/status/desiredNumberScheduled") else {
        return Health::in_progress("Missing .status.desiredNumberScheduled");
    };
    let current = int_at(obj, "/status/currentNumberScheduled").unwrap_or(0);
    let updated = int_at(obj, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int_at(obj, "/status/numberAvailable").unwrap_or(0);
    let ready = int_at(obj, "/status/numberReady").unwrap_or(0);
    if desired > current {
        return Health::in_progress(format!("Current: {current}/{desired}"));
    }
    if desired > updated {
        return Health::in_progress(format!("Updated: {updated}/{desired}"));
    }
    if desired > available {
        return Health::in_progress(format!("Available: {available}/{desired}"));
    }
    if desired > ready {
        return Health::in_progress(format!("Ready: {ready}/{desired}"));
    }
    Health::current(format!(
        "All replicas scheduled as expected. Replicas: {desired}"
    ))
}

fn replicaset(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "ReplicaFailure").filter(|c| c.status == "True") {
        return Health::in_progress(format!("Replica Failure: {}", message_or(&c, "")));
    }
    if obj.get("status").is_none() {
        return Health::in_progress("ReplicaSet has no status yet");
    }
    let spec = spec_replicas(obj);
    let replicas = int_at(obj, "/status/replicas").unwrap_or(0);
    let labelled = int_at(obj, "/status/fullyLabeledReplicas").unwrap_or(0);
    let available = int_at(obj, "/status/availableReplicas").unwrap_or(0);
    let ready = int_at(obj, "/status/readyReplicas").unwrap_or(0);
    if spec > labelled {
        return Health::in_progress(format!("Labelled: {labelled}/{spec}"));
    }
    if spec > available {
        return Health::in_progress(format!("Available: {available}/{spec}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    Health::current(format!("ReplicaSet is available. Replicas: {replicas}"))
}

fn job(obj: &Value) -> Health {
    let parallelism = int_at(obj, "/spec/parallelism").unwrap_or(1);
    let completions = int_at(obj, "/spec/completions").unwrap_or(parallelism);
    let succeeded = int_at(obj, "/status/succeeded").unwrap_or(0);
    let active = int_at(obj, "/status/active").unwrap_or(0);
    let failed = int_at(obj, "/status/failed").unwrap_or(0);
    if let Some(c) = condition(obj, "Failed").filter(|c| c.status == "True") {
        return Health::failed(format!("Job Failed: {}", message_or(&c, "")));
    }
    if cond_true(obj, "Complete") {
        return Health::current(format!(
            "Job Completed. succeeded: {succeeded}/{completions}"
        ));
    }
    if obj.pointer("/status/startTime").is_none() {
        return Health::in_progress("Job not started");
    }
    Health::in_progress(format!(
        "Job in progress. success:{succeeded}, active: {active}, failed: {failed}"
    ))
}

const FAILING_WAIT_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

fn pod(obj: &Value) -> Health {
    let phase = str_at(obj, "/status/phase").unwrap_or_default();
    match phase {
        "Succeeded" => return Health::current("Pod has completed successfully"),
        "Failed" => return Health::failed("Pod has completed, but not successfully"),
        _ => {}
    }
    for key in ["initContainerStatuses", "containerStatuses"] {
        if let Some(list) = obj
            .pointer(&format!("/status/{key}"))
            .and_then(Value::as_array)
        {
            for cs in list {
                if let Some(reason) = cs.pointer("/state/waiting/reason").and_then(Value::as_str) {
                    if FAILING_WAIT_REASONS.contains(&reason) {
                        let name = cs.get("name").and_then(Value::as_str).unwrap_or("?");
                        return Health::failed(format!("Container {name} is in {reason}"));
                    }
                }
            }
        }
    }
    if phase == "Running" {
        if cond_true(obj, "Ready") {
            return Health::current("Pod is Ready");
        }
        return Health::in_progress("Pod is running but is not Ready");
    }
    if let Some(c) = condition(obj, "PodScheduled").filter(|c| c.status == "False") {
        if c.reason == "Unschedulable" {
            return Health::in_progress(format!("Pod could not be scheduled: {}", c.message));
        }
    }
    if phase.is_empty() {
        Health::in_progress("Pod phase not available")
    } else {
        Health::in_progress(format!("Pod is in the {phase} phase"))
    }
}

fn pvc(obj: &Value) -> Health {
    match str_at(obj, "/status/phase") {
        Some("Bound") => Health::current("PVC is Bound"),
        Some(phase) => Health::in_progress(format!("PVC is not Bound. phase: {phase}")),
        None => Health::in_progress("PVC is not Bound"),
    }
}

fn service(obj: &Value) -> Health {
    if str_at(obj, "/spec/type") == Some("LoadBalancer") {
        let has_ingress = obj
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_ingress {
            return Health::in_progress("LoadBalancer has no ingress yet");
        }
    }
    Health::current("Service is ready")
}

fn namespace(obj: &Value) -> Health {
    match str_at(obj, "/status/phase") {
        Some("Terminating") => Health::new(Status::Terminating, "Namespace is terminating"),
        _ => Health::current("Namespace is active"),
    }
}

fn crd(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "NamesAccepted").filter(|c| c.status == "False") {
        return Health::failed(format!("CRD names not accepted: {}", message_or(&c, "")));
    }
    if cond_true(obj, "Established") {
        return Health::current("CRD is established");
    }
    Health::in_progress("CRD is not established")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(v: Value) -> Status {
        compute(&v).status
    }

    #[test]
    fn not_found_and_terminating() {
        assert_eq!(compute_opt(None).status, Status::NotFound);
        let v = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","deletionTimestamp":"2020-01-01T00:00:00Z"}});
        assert_eq!(st(v), Status::Terminating);
    }

    #[test]
    fn no_status_is_current() {
        assert_eq!(
            st(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{}})),
            Status::Current
        );
        assert_eq!(
            st(json!({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"}})),
            Status::Current
        );
    }

    #[test]
    fn generic_conditions_and_generation() {
        let base = |status: Value| json!({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a","generation":2},"status":status});
        assert_eq!(
            st(base(json!({"observedGeneration":1}))),
            Status::InProgress
        );
        assert_eq!(st(base(json!({"observedGeneration":2}))), Status::Current);
        assert_eq!(
            st(base(
                json!({"conditions":[{"type":"Reconciling","status":"True"}]})
            )),
            Status::InProgress
        );
        let h = compute(&base(
            json!({"conditions":[{"type":"Stalled","status":"True","message":"broken"}]}),
        ));
        assert_eq!(h.status, Status::Failed);
        assert_eq!(h.message, "broken");
        assert_eq!(
            st(base(
                json!({"conditions":[{"type":"Ready","status":"False"}]})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(base(
                json!({"conditions":[{"type":"Ready","status":"True"}]})
            )),
            Status::Current
        );
    }

    fn deploy(status: Value) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generation":1},
               "spec":{"replicas":2},"status":status})
    }

    #[test]
    fn deployment() {
        assert_eq!(
            st(
                json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{}})
            ),
            Status::InProgress
        );
        let good_conds = json!([
            {"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"},
            {"type":"Available","status":"True"}]);
        let h = compute(&deploy(
            json!({"observedGeneration":1,"replicas":2,"updatedReplicas":2,
            "readyReplicas":1,"availableReplicas":2,"conditions":good_conds}),
        ));
        assert_eq!(h.status, Status::InProgress);
        assert_eq!(h.message, "Ready: 1/2");
        assert_eq!(
            st(deploy(
                json!({"observedGeneration":1,"replicas":2,"updatedReplicas":2,
            "readyReplicas":2,"availableReplicas":2,"conditions":good_conds})
            )),
            Status::Current
        );
        assert_eq!(
            st(deploy(
                json!({"observedGeneration":0,"replicas":2,"updatedReplicas":2,
            "readyReplicas":2,"availableReplicas":2,"conditions":good_conds})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(deploy(
                json!({"observedGeneration":1,"replicas":3,"updatedReplicas":2,
            "readyReplicas":2,"availableReplicas":2,"conditions":good_conds})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(deploy(json!({"observedGeneration":1,"conditions":[
                {"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}]}))),
            Status::Failed
        );
    }

    #[test]
    fn statefulset() {
        let s = |spec: Value, status: Value| json!({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"s"},"spec":spec,"status":status});
        assert_eq!(
            st(s(
                json!({"replicas":2}),
                json!({"replicas":2,"readyReplicas":1})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(s(
                json!({"replicas":2}),
                json!({"replicas":2,"readyReplicas":2,"currentReplicas":2,"updatedReplicas":2,
                       "currentRevision":"r1","updateRevision":"r1"})
            )),
            Status::Current
        );
        assert_eq!(
            st(s(
                json!({"replicas":2}),
                json!({"replicas":2,"readyReplicas":2,"currentReplicas":1,"updatedReplicas":1,
                       "currentRevision":"r1","updateRevision":"r2"})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(s(json!({"updateStrategy":{"type":"OnDelete"}}), json!({}))),
            Status::Current
        );
        assert_eq!(
            st(s(
                json!({"replicas":3,"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}),
                json!({"replicas":3,"updatedReplicas":1})
            )),
            Status::Current
        );
    }

    #[test]
    fn daemonset() {
        let d = |status: Value| json!({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"d"},"status":status});
        assert_eq!(st(d(json!({}))), Status::InProgress);
        assert_eq!(
            st(d(
                json!({"desiredNumberScheduled":2,"currentNumberScheduled":2,"updatedNumberScheduled":2,"numberAvailable":1,"numberReady":2})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(d(
                json!({"desiredNumberScheduled":2,"currentNumberScheduled":2,"updatedNumberScheduled":2,"numberAvailable":2,"numberReady":2})
            )),
            Status::Current
        );
    }

    #[test]
    fn replicaset() {
        let r = |status: Value| json!({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"r"},"spec":{"replicas":1},"status":status});
        assert_eq!(
            st(r(
                json!({"replicas":1,"fullyLabeledReplicas":1,"availableReplicas":1,"readyReplicas":1})
            )),
            Status::Current
        );
        assert_eq!(st(r(json!({"replicas":1}))), Status::InProgress);
    }

    #[test]
    fn job() {
        let j = |status: Value| json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{},"status":status});
        assert_eq!(st(j(json!({}))), Status::InProgress);
        assert_eq!(
            st(j(json!({"startTime":"2020-01-01T00:00:00Z","active":1}))),
            Status::InProgress
        );
        assert_eq!(
            st(j(
                json!({"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]})
            )),
            Status::Current
        );
        assert_eq!(
            st(j(
                json!({"conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded"}]})
            )),
            Status::Failed
        );
    }

    #[test]
    fn pod() {
        let p = |status: Value| json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"status":status});
        assert_eq!(st(p(json!({"phase":"Succeeded"}))), Status::Current);
        assert_eq!(st(p(json!({"phase":"Failed"}))), Status::Failed);
        assert_eq!(st(p(json!({"phase":"Pending"}))), Status::InProgress);
        assert_eq!(
            st(p(
                json!({"phase":"Running","conditions":[{"type":"Ready","status":"True"}]})
            )),
            Status::Current
        );
        assert_eq!(
            st(p(
                json!({"phase":"Running","conditions":[{"type":"Ready","status":"False"}]})
            )),
            Status::InProgress
        );
        assert_eq!(
            st(p(
                json!({"phase":"Running","containerStatuses":[{"name":"c","state":{"waiting":{"reason":"CrashLoopBackOff"}}}]})
            )),
            Status::Failed
        );
    }

    #[test]
    fn pvc_service_namespace() {
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"p"},"status":{"phase":"Pending"}})
            ),
            Status::InProgress
        );
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"p"},"status":{"phase":"Bound"}})
            ),
            Status::Current
        );
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"ClusterIP"}})
            ),
            Status::Current
        );
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"LoadBalancer"},"status":{"loadBalancer":{}}})
            ),
            Status::InProgress
        );
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"LoadBalancer"},"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}})
            ),
            Status::Current
        );
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"},"status":{"phase":"Active"}})
            ),
            Status::Current
        );
        assert_eq!(
            st(
                json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"},"status":{"phase":"Terminating"}})
            ),
            Status::Terminating
        );
    }

    #[test]
    fn crd() {
        let c = |conds: Value| json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"c"},"status":{"conditions":conds}});
        assert_eq!(st(c(json!([]))), Status::InProgress);
        assert_eq!(
            st(c(
                json!([{"type":"NamesAccepted","status":"True"},{"type":"Established","status":"True"}])
            )),
            Status::Current
        );
        assert_eq!(
            st(c(
                json!([{"type":"NamesAccepted","status":"False","reason":"Conflict"}])
            )),
            Status::Failed
        );
    }
}
