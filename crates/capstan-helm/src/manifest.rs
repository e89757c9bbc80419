//! Splitting rendered files into documents, hook separation and Helm's install order
//! (pkg/release/v1/util: manifest.go, manifest_sorter.go, kind_sorter.go).

use crate::error::HelmError;
use crate::value::Val;
use crate::yaml::{self, Numbers};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Helm's install order by kind.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The head of a document (`SimpleHead`).
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub has_metadata: bool,
}

/// A document of the rendered output.
#[derive(Debug, Clone)]
pub struct Document {
    /// The template it came from (`chart/templates/x.yaml`).
    pub source: String,
    /// The document text as Helm prints it.
    pub content: String,
    pub head: Head,
}

/// A hook document.
#[derive(Debug, Clone)]
pub struct HookDoc {
    pub doc: Document,
    /// Events (`pre-install`, `test`...), lower-cased.
    pub events: Vec<String>,
    pub weight: i64,
    pub delete_policies: Vec<String>,
}

impl HookDoc {
    pub fn is_test(&self) -> bool {
        self.events.iter().any(|e| e == "test")
    }
}

fn sep() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?:^|[\t\n\f\r ]*\n)---[\t\n\f\r ]*").unwrap())
}

/// `SplitManifests`: the documents of a file, in order.
pub fn split_manifests(big: &str) -> Vec<String> {
    let trimmed = big.trim_start();
    let mut out = Vec::new();
    for d in sep().split(trimmed) {
        if d.is_empty() {
            continue;
        }
        out.push(d.trim_start().to_string());
    }
    out
}

fn head_of(content: &str, path: &str) -> Result<Head, HelmError> {
    let v = yaml::parse(content, Numbers::Text).map_err(|e| {
        HelmError::Manifest(format!(
            "YAML parse error on {path}: error converting YAML to JSON: {e}"
        ))
    })?;
    let mut h = Head::default();
    let m = match v {
        Val::Map(m) => m,
        Val::Null => return Ok(h),
        _ => {
            return Err(HelmError::Manifest(format!(
                "YAML parse error on {path}: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type releaseutil.SimpleHead",
                match v {
                    Val::List(_) => "array",
                    _ => "string",
                }
            )))
        }
    };
    let s = |v: Option<&Val>| match v {
        Some(Val::Str(s)) => s.clone(),
        _ => String::new(),
    };
    h.api_version = s(m.get("apiVersion"));
    h.kind = s(m.get("kind"));
    if let Some(Val::Map(md)) = m.get("metadata") {
        h.has_metadata = true;
        h.name = s(md.get("name"));
        if let Some(Val::Map(a)) = md.get("annotations") {
            for (k, v) in a {
                h.annotations.insert(k.clone(), s(Some(v)));
            }
        }
    }
    Ok(h)
}

const HOOK_EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
];

/// `SortManifests`: (hooks, manifests), each sorted by kind in install order.
pub fn sort_manifests(
    files: &BTreeMap<String, String>,
) -> Result<(Vec<HookDoc>, Vec<Document>), HelmError> {
    let mut hooks = Vec::new();
    let mut generic = Vec::new();
    for (path, content) in files {
        if path.rsplit('/').next().is_some_and(|b| b.starts_with('_')) {
            continue;
        }
        if content.trim().is_empty() {
            continue;
        }
        for m in split_manifests(content) {
            let head = head_of(&m, path)?;
            let doc = Document {
                source: path.clone(),
                content: m,
                head,
            };
            let Some(hook_types) = doc.head.annotations.get("helm.sh/hook").cloned() else {
                generic.push(doc);
                continue;
            };
            let weight = doc
                .head
                .annotations
                .get("helm.sh/hook-weight")
                .and_then(|w| w.trim().parse::<i64>().ok())
                .unwrap_or(0);
            let mut events = Vec::new();
            let mut unknown = false;
            for t in hook_types.split(',') {
                let t = t.trim().to_lowercase();
                let t = if t == "test-success" {
                    "test".to_string()
                } else {
                    t
                };
                if !HOOK_EVENTS.contains(&t.as_str()) {
                    unknown = true;
                    break;
                }
                events.push(t);
            }
            if unknown {
                continue;
            }
            let delete_policies = doc
                .head
                .annotations
                .get("helm.sh/hook-delete-policy")
                .map(|p| p.split(',').map(|s| s.trim().to_lowercase()).collect())
                .unwrap_or_default();
            hooks.push(HookDoc {
                doc,
                events,
                weight,
                delete_policies,
            });
        }
    }
    sort_by_kind(&mut generic, |d| &d.head.kind);
    sort_by_kind(&mut hooks, |h| &h.doc.head.kind);
    Ok((hooks, generic))
}

/// Stable sort by Helm's `lessByKind`.
pub fn sort_by_kind<T>(items: &mut [T], kind: impl Fn(&T) -> &str) {
    let order = |k: &str| INSTALL_ORDER.iter().position(|x| *x == k);
    items.sort_by(|a, b| {
        let (ka, kb) = (kind(a), kind(b));
        match (order(ka), order(kb)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => ka.cmp(kb),
        }
    });
}
