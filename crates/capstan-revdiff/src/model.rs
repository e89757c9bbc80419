//! What one revision renders: clusters -> units -> objects. Readers (Flux today, Argo CD
//! next) produce these; [`crate::compare`] compares two of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every cluster of one revision.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevisionSnapshot {
    /// How the revision was named (`main`, a commit id, `working tree`, a directory).
    pub label: String,
    pub clusters: Vec<ClusterSnapshot>,
}

/// One cluster (a `clusters/<name>` directory, or one Argo CD destination).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub name: String,
    /// Where it starts in the repository (`clusters/staging`).
    pub path: String,
    pub units: Vec<UnitSnapshot>,
    /// Problems that are not one unit's (the cluster path is missing, a dependency cycle).
    pub errors: Vec<String>,
}

/// One unit (a Flux Kustomization or HelmRelease, an Argo CD Application).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnitSnapshot {
    /// `Kustomization/flux-system/apps`.
    pub id: String,
    pub kind: String,
    /// What it renders: `spec.path`, or the chart for a HelmRelease.
    pub source: String,
    /// Objects it applies, in render order (hooks included, after them).
    pub objects: Vec<Value>,
    /// Why it did not render (`objects` is then empty).
    pub error: Option<String>,
    /// Edges of the dependency graph: (unit it waits for, why).
    pub depends_on: Vec<(String, String)>,
    /// Does removing an object from its output delete it from the cluster?
    pub prune: bool,
    /// A HelmRelease's chart (`name`, `version` as declared; empty when not declared).
    pub chart: Option<(String, String)>,
}

/// An object's identity inside a cluster: API group (no version), kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of(obj: &Value) -> ObjectKey {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let api = s("/apiVersion");
        let group = match api.rsplit_once('/') {
            Some((g, _)) => g.to_string(),
            None => String::new(),
        };
        ObjectKey {
            group,
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)?;
        } else {
            write!(f, "{}.{}", self.kind, self.group)?;
        }
        if self.namespace.is_empty() {
            write!(f, " {}", self.name)
        } else {
            write!(f, " {}/{}", self.namespace, self.name)
        }
    }
}
