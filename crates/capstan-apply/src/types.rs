//! Input and output types of the apply layer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use capstan_health::{Health, Status as HealthStatus};

/// Identifies a unit: a Flux `Kustomization` or `HelmRelease` object (as named in the repository).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitRef {
    /// `"Kustomization"` or `"HelmRelease"`.
    pub kind: String,
    /// Namespace of the Kustomization/HelmRelease object.
    pub namespace: String,
    /// Name of the Kustomization/HelmRelease object.
    pub name: String,
}

impl UnitRef {
    /// Convenience constructor.
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        UnitRef {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for UnitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Identifies one Kubernetes object.
///
/// `namespace` is empty for cluster-scoped objects. `version` is informative (the version the
/// object was applied with); identity ([`ObjectRef::id`]) ignores it, like Flux's `ObjMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group (`v1`); may be empty when unknown (resolved by discovery).
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// Builds a reference from `apiVersion` (`apps/v1`, `v1`), kind, namespace and name.
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        ObjectRef {
            group,
            version,
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// Reads apiVersion, kind, metadata.namespace and metadata.name of an object.
    pub fn from_object(obj: &Value) -> Option<Self> {
        let api_version = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        let name = obj.pointer("/metadata/name")?.as_str()?;
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self::new(api_version, kind, namespace, name))
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The inventory id `<namespace>_<name>_<group>_<kind>` (Flux's `ObjMetadata` format).
    pub fn id(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.namespace, self.name, self.group, self.kind
        )
    }

    /// Parses an inventory id (and a version) back into a reference.
    pub fn parse_id(id: &str, version: &str) -> Option<Self> {
        // Namespace and name cannot contain '_', group cannot either; kind is last.
        let mut parts = id.splitn(4, '_');
        let namespace = parts.next()?;
        let name = parts.next()?;
        let group = parts.next()?;
        let kind = parts.next()?;
        if name.is_empty() || kind.is_empty() {
            return None;
        }
        Some(ObjectRef {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// Same object regardless of version.
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        self.id() == other.id()
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Everything the apply layer needs to apply one unit.
#[derive(Debug, Clone)]
pub struct ApplyUnit {
    /// The unit (used for the inventory and for the ownership labels).
    pub id: UnitRef,
    /// Rendered objects (full Kubernetes objects, as JSON). Secrets may carry `data` or
    /// `stringData`; their values never appear in diffs, logs or errors.
    pub objects: Vec<Value>,
    /// Delete objects of the previous inventory that are no longer rendered.
    pub prune: bool,
    /// Wait for every applied object to become Current.
    pub wait: bool,
    /// Upper bound for the health wait (and for waiting on CRDs to be established).
    pub timeout: Duration,
    /// Recreate objects whose immutable fields changed (delete, then create).
    pub force: bool,
    /// Objects to wait for when `wait` is false (Flux `healthChecks`); ignored when `wait` is true.
    pub health_checks: Vec<ObjectRef>,
    /// When set, every namespaced object is put in this namespace (Flux `targetNamespace`).
    /// Namespaced objects without a namespace otherwise go to `default`.
    pub target_namespace: Option<String>,
}

impl ApplyUnit {
    /// A unit with the given objects and defaults: prune on, wait off, 5 minute timeout.
    pub fn new(id: UnitRef, objects: Vec<Value>) -> Self {
        ApplyUnit {
            id,
            objects,
            prune: true,
            wait: false,
            timeout: Duration::from_secs(300),
            force: false,
            health_checks: Vec::new(),
            target_namespace: None,
        }
    }
}

/// What happened (or is happening) to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Created by server-side apply.
    Created,
    /// Changed by server-side apply.
    Configured,
    /// Already as desired; nothing sent.
    Unchanged,
    /// Deleted and created again because an immutable field changed (`force`).
    Replaced,
    /// Deleted because it left the unit.
    Pruned,
    /// Left the unit but kept (annotation `kustomize.toolkit.fluxcd.io/prune: disabled` or
    /// `capstan.io/prune: disabled`), or already gone.
    PruneSkipped,
    /// Deleted by [`crate::Applier::delete_unit`].
    Deleted,
    /// Health check passed (Current).
    Healthy,
    /// Health check still waiting, with the reason.
    Waiting(String),
    /// Health check failed or timed out, with the reason.
    Unhealthy(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Created => f.write_str("created"),
            Action::Configured => f.write_str("configured"),
            Action::Unchanged => f.write_str("unchanged"),
            Action::Replaced => f.write_str("replaced"),
            Action::Pruned => f.write_str("pruned"),
            Action::PruneSkipped => f.write_str("prune skipped"),
            Action::Deleted => f.write_str("deleted"),
            Action::Healthy => f.write_str("healthy"),
            Action::Waiting(m) => write!(f, "waiting: {m}"),
            Action::Unhealthy(m) => write!(f, "unhealthy: {m}"),
        }
    }
}

/// A progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyEvent {
    /// The unit being applied.
    pub unit: UnitRef,
    /// The object concerned.
    pub object: ObjectRef,
    /// What happened.
    pub action: Action,
}

/// Callback receiving progress events.
pub type EventSink = Arc<dyn Fn(&ApplyEvent) + Send + Sync>;

/// Options of [`crate::Applier::apply`] and [`crate::Applier::delete_unit`].
#[derive(Clone)]
pub struct ApplyOptions {
    /// Receives progress events (object applied, pruned, became healthy, ...).
    pub on_event: Option<EventSink>,
    /// Time between two health polls.
    pub poll_interval: Duration,
    /// Stop waiting as soon as an object is Failed (otherwise wait until the timeout).
    pub fail_fast: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            on_event: None,
            poll_interval: Duration::from_millis(500),
            fail_fast: true,
        }
    }
}

impl fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("on_event", &self.on_event.as_ref().map(|_| "<callback>"))
            .field("poll_interval", &self.poll_interval)
            .field("fail_fast", &self.fail_fast)
            .finish()
    }
}

impl ApplyOptions {
    /// Options that send events to `f`.
    pub fn with_events(f: impl Fn(&ApplyEvent) + Send + Sync + 'static) -> Self {
        ApplyOptions {
            on_event: Some(Arc::new(f)),
            ..Default::default()
        }
    }
}

/// Request and decision counters of an [`crate::Applier`] since it was created (or since
/// [`crate::Applier::reset_stats`]). `skipped` and `dry_runs` are the two paths of drift
/// detection: decided from the inventory hash and one LIST per kind and namespace, or by a
/// server-side dry run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyStats {
    /// Objects found unchanged without a request of their own (intent and live state hash
    /// equal to the recorded one).
    pub skipped: u64,
    /// Server-side dry-run applies (uncertain or changed objects, plans).
    pub dry_runs: u64,
    /// Server-side applies that write an object (creates, updates, replacements).
    pub applies: u64,
    /// LIST requests (live objects of one kind and namespace).
    pub lists: u64,
    /// GET requests (single objects, inventories, health).
    pub gets: u64,
    /// Objects and inventories read from the live-state cache instead of the API server
    /// ([`crate::Applier::with_live_state`]).
    pub cached: u64,
    /// DELETE requests (prune, replace, uninstall).
    pub deletes: u64,
    /// Inventory ConfigMap writes.
    pub inventory_writes: u64,
}

/// The planned operation for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanOp {
    /// The object does not exist and will be created.
    Create,
    /// The object exists and server-side apply would change it.
    Update,
    /// The object is as desired.
    Unchanged,
    /// An immutable field changes: the object must be deleted and created again (needs `force`).
    Replace {
        /// The API server's message (e.g. `spec.selector: ... field is immutable`).
        reason: String,
    },
    /// In the inventory but no longer rendered: will be deleted if the unit prunes.
    Prune,
}

/// One line of a [`UnitPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// The object.
    pub object: ObjectRef,
    /// What apply would do.
    pub op: PlanOp,
    /// Unified diff (`live` → `merged`) of the YAML, with managedFields, resourceVersion,
    /// generation, uid, creationTimestamp and status removed and Secret values masked.
    /// `None` for Unchanged and Prune.
    pub diff: Option<String>,
}

/// The result of [`crate::Applier::plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitPlan {
    /// The unit.
    pub unit: UnitRef,
    /// One entry per rendered object (in apply order), then the prunes.
    pub changes: Vec<PlannedChange>,
}

impl UnitPlan {
    /// True when anything is not Unchanged.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.op != PlanOp::Unchanged)
    }
}

/// The outcome of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectResult {
    /// The object.
    pub object: ObjectRef,
    /// What was done.
    pub action: Action,
}

/// The result of [`crate::Applier::apply`] or [`crate::Applier::delete_unit`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnitResult {
    /// Applied objects in apply order (or deleted objects for `delete_unit`).
    pub objects: Vec<ObjectResult>,
    /// Prune outcomes.
    pub pruned: Vec<ObjectResult>,
    /// Health of the waited-for objects at the end of the wait (empty when nothing waited).
    pub health: Vec<(ObjectRef, Health)>,
    /// The inventory now stored for the unit.
    pub inventory: Vec<ObjectRef>,
}

impl UnitResult {
    /// True when no object was created, changed, replaced or pruned.
    pub fn is_unchanged(&self) -> bool {
        self.objects.iter().all(|o| o.action == Action::Unchanged)
            && self.pruned.iter().all(|o| o.action != Action::Pruned)
    }
}

/// Errors of the apply layer. Messages never contain Secret values.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A rendered object lacks apiVersion, kind or metadata.name.
    #[error("invalid object #{index} in {unit}: {reason}")]
    InvalidObject {
        /// The unit.
        unit: UnitRef,
        /// Position in `ApplyUnit::objects`.
        index: usize,
        /// What is missing.
        reason: String,
    },
    /// The API server does not know the kind (and no CRD of the unit defines it).
    #[error("{object}: no matches for kind {kind:?} in version {api_version:?}")]
    UnknownKind {
        /// The object.
        object: ObjectRef,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// An API call failed.
    #[error("{object}: {operation} failed: {source}")]
    Api {
        /// The object (or the inventory ConfigMap).
        object: ObjectRef,
        /// `get`, `dry-run apply`, `apply`, `delete`, ...
        operation: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An immutable field changed and `force` is off.
    #[error("{object}: immutable field changed (set force to recreate it): {message}")]
    Immutable {
        /// The object.
        object: ObjectRef,
        /// The API server's message.
        message: String,
    },
    /// Objects did not become Current in time.
    #[error("health check timed out after {timeout:?}: {}", describe(not_ready))]
    HealthTimeout {
        /// The timeout.
        timeout: Duration,
        /// Objects that are not Current, with their health.
        not_ready: Vec<(ObjectRef, Health)>,
    },
    /// Objects reached the Failed state.
    #[error("health check failed: {}", describe(failed))]
    HealthFailed {
        /// Failed objects with their health.
        failed: Vec<(ObjectRef, Health)>,
    },
    /// Waiting for an object to go away (replace) timed out.
    #[error("{object}: timed out waiting for deletion")]
    DeleteTimeout {
        /// The object.
        object: ObjectRef,
    },
    /// The stored inventory cannot be read.
    #[error("inventory of {unit} is corrupt: {reason}")]
    Inventory {
        /// The unit.
        unit: UnitRef,
        /// Why.
        reason: String,
    },
}

fn describe(list: &[(ObjectRef, Health)]) -> String {
    list.iter()
        .map(|(o, h)| format!("{o} ({h})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ApplyError {
    /// The objects that are not ready, for health errors.
    pub fn not_ready(&self) -> &[(ObjectRef, Health)] {
        match self {
            ApplyError::HealthTimeout { not_ready, .. } => not_ready,
            ApplyError::HealthFailed { failed } => failed,
            _ => &[],
        }
    }
}

impl fmt::Display for PlanOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanOp::Create => f.write_str("create"),
            PlanOp::Update => f.write_str("update"),
            PlanOp::Unchanged => f.write_str("unchanged"),
            PlanOp::Replace { reason } => write!(f, "replace ({reason})"),
            PlanOp::Prune => f.write_str("prune"),
        }
    }
}

/// Human-readable plan: one line per object that changes (`+` create, `~` update, `-/+`
/// replace, `-` prune), each followed by its diff.
impl fmt::Display for UnitPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            let sign = match c.op {
                PlanOp::Unchanged => continue,
                PlanOp::Create => "+",
                PlanOp::Update => "~",
                PlanOp::Replace { .. } => "-/+",
                PlanOp::Prune => "-",
            };
            writeln!(f, "{sign} {} {} ({})", self.unit, c.object, c.op)?;
            if let Some(d) = &c.diff {
                f.write_str(d)?;
                if !d.ends_with('\n') {
                    f.write_str("\n")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_display() {
        let plan = UnitPlan {
            unit: UnitRef::new("Kustomization", "flux-system", "apps"),
            changes: vec![
                PlannedChange {
                    object: ObjectRef::new("v1", "ConfigMap", "default", "a"),
                    op: PlanOp::Update,
                    diff: Some("--- live\n+++ merged\n-a\n+b\n".into()),
                },
                PlannedChange {
                    object: ObjectRef::new("v1", "ConfigMap", "default", "same"),
                    op: PlanOp::Unchanged,
                    diff: None,
                },
                PlannedChange {
                    object: ObjectRef::new("v1", "Namespace", "", "old"),
                    op: PlanOp::Prune,
                    diff: None,
                },
            ],
        };
        assert!(plan.has_changes());
        let text = plan.to_string();
        assert_eq!(
            text,
            "~ Kustomization/flux-system/apps ConfigMap/default/a (update)\n--- live\n+++ merged\n-a\n+b\n\
             - Kustomization/flux-system/apps Namespace/old (prune)\n"
        );
    }

    #[test]
    fn ids_round_trip() {
        let r = ObjectRef::new("rbac.authorization.k8s.io/v1", "ClusterRole", "", "a.b-c");
        assert_eq!(r.id(), "_a.b-c_rbac.authorization.k8s.io_ClusterRole");
        assert_eq!(ObjectRef::parse_id(&r.id(), "v1"), Some(r.clone()));
        assert_eq!(r.api_version(), "rbac.authorization.k8s.io/v1");
        assert_eq!(r.to_string(), "ClusterRole/a.b-c");
        assert!(ObjectRef::parse_id("a_b", "v1").is_none());
    }
}
