//! Resources and their ids.

use std::fmt;

use capstan_yaml::{Mapping, Node};

/// A resource id as kustomize prints it: `Kind.version.group/name.namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ResId {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.version.is_empty() {
            "[noVer]"
        } else {
            &self.version
        };
        let g = if self.group.is_empty() {
            "[noGrp]"
        } else {
            &self.group
        };
        let ns = if self.namespace.is_empty() {
            "[noNs]"
        } else {
            &self.namespace
        };
        let k = if self.kind.is_empty() {
            "[noKind]"
        } else {
            &self.kind
        };
        let n = if self.name.is_empty() {
            "[noName]"
        } else {
            &self.name
        };
        write!(f, "{k}.{v}.{g}/{n}.{ns}")
    }
}

impl ResId {
    pub fn gvk_string(&self) -> String {
        let v = if self.version.is_empty() {
            "[noVer]"
        } else {
            &self.version
        };
        let g = if self.group.is_empty() {
            "[noGrp]"
        } else {
            &self.group
        };
        format!("{}.{}.{}", self.kind, v, g)
    }
}

/// What a generated resource does to an existing one of the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    #[default]
    Create,
    Merge,
    Replace,
}

/// One resource with kustomize's bookkeeping: its original id and name history (for
/// name reference fix-ups and patch targeting) and generator options.
#[derive(Debug, Clone)]
pub struct Resource {
    pub node: Node,
    /// (name, namespace) before each rename, oldest first.
    pub(crate) prev: Vec<(String, String)>,
    /// The kind at each entry of `prev`.
    pub(crate) prev_kinds: Vec<String>,
    pub(crate) orig_kind: String,
    pub(crate) behavior: Behavior,
    pub(crate) needs_hash: bool,
    /// Names of kustomizations this resource passed through don't matter; the root
    /// directory it was loaded in does for `configurations`.
    pub(crate) generated: bool,
    /// Rendered from a helm chart (kustomize's `HelmGeneratedAnnotation` build
    /// annotation): the namespace transformers leave it alone, at every level.
    pub(crate) helm_generated: bool,
    /// Name prefixes and suffixes applied, in order (kustomize's nameReference uses them
    /// to choose between candidates).
    pub(crate) prefixes: Vec<String>,
    pub(crate) suffixes: Vec<String>,
    /// Vars bound to this resource by the kustomization that declared them.
    pub(crate) ref_vars: Vec<String>,
    /// Where the resource came from (kustomize's `config.kubernetes.io/origin`), kept
    /// while `buildMetadata` asks for it.
    pub(crate) origin: Option<Origin>,
    /// Transformers that ran over it (`alpha.config.kubernetes.io/transformations`).
    pub(crate) transformations: Vec<Origin>,
}

/// kustomize's `resource.Origin`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    pub path: String,
    pub configured_in: String,
    pub by_api_version: String,
    pub by_kind: String,
    pub by_name: String,
    pub by_namespace: String,
}

impl Origin {
    pub fn to_node(&self) -> Node {
        let mut m = Mapping::new();
        if !self.path.is_empty() {
            m.insert("path", Node::string(self.path.clone()));
        }
        if !self.configured_in.is_empty() {
            m.insert("configuredIn", Node::string(self.configured_in.clone()));
        }
        let mut by = Mapping::new();
        for (k, v) in [
            ("apiVersion", &self.by_api_version),
            ("kind", &self.by_kind),
            ("name", &self.by_name),
            ("namespace", &self.by_namespace),
        ] {
            if !v.is_empty() {
                by.insert(k, Node::string(v.clone()));
            }
        }
        if !by.is_empty() {
            m.insert("configuredBy", Node::Mapping(by));
        }
        Node::Mapping(m)
    }
    /// A builtin generator or transformer configured by the kustomization file `file`.
    pub fn builtin(file: String, kind: &str) -> Origin {
        Origin {
            configured_in: file,
            by_api_version: "builtin".into(),
            by_kind: kind.into(),
            ..Default::default()
        }
    }
}

/// `filepath.Join` of relative paths (cleaned; `..` kept at the front).
pub fn join_rel(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in base.split('/').chain(rel.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            x => parts.push(x),
        }
    }
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

pub fn split_api_version(av: &str) -> (String, String) {
    match av.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), av.to_string()),
    }
}

impl Resource {
    pub fn new(node: Node) -> Resource {
        let orig_kind = node.str_at(&["kind"]).unwrap_or("").to_string();
        Resource {
            node,
            prev: Vec::new(),
            prev_kinds: Vec::new(),
            orig_kind,
            behavior: Behavior::Create,
            needs_hash: false,
            generated: false,
            helm_generated: false,
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            ref_vars: Vec::new(),
            origin: None,
            transformations: Vec::new(),
        }
    }
    pub fn kind(&self) -> &str {
        self.node.str_at(&["kind"]).unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.node.str_at(&["apiVersion"]).unwrap_or("")
    }
    pub fn group(&self) -> String {
        split_api_version(self.api_version()).0
    }
    pub fn name(&self) -> &str {
        self.node.str_at(&["metadata", "name"]).unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.node.str_at(&["metadata", "namespace"]).unwrap_or("")
    }
    pub fn id(&self) -> ResId {
        let (group, version) = split_api_version(self.api_version());
        ResId {
            group,
            version,
            kind: self.kind().to_string(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }
    /// The id the resource was loaded with.
    pub fn orig_id(&self) -> ResId {
        let mut id = self.id();
        id.kind = self.orig_kind.clone();
        if let Some((n, ns)) = self.prev.first() {
            id.name = n.clone();
            id.namespace = ns.clone();
        }
        id
    }
    /// All (name, namespace) pairs this resource had, oldest first, current last.
    pub fn all_names(&self) -> Vec<(String, String)> {
        let mut v = self.prev.clone();
        v.push((self.name().to_string(), self.namespace().to_string()));
        v
    }
    fn record(&mut self) {
        let cur = (self.name().to_string(), self.namespace().to_string());
        // The same id twice in a row says nothing more.
        if self.prev.last() == Some(&cur)
            && self.prev_kinds.last().map(String::as_str) == Some(self.kind())
        {
            return;
        }
        self.prev.push(cur);
        self.prev_kinds.push(self.kind().to_string());
    }
    /// kustomize's `StorePreviousId`: remember the current id as a previous one even when
    /// nothing changes (the namespace transformer does so for every resource, which
    /// makes each a name-reference candidate).
    pub fn store_previous_id(&mut self) {
        self.record();
    }
    pub fn set_name(&mut self, name: &str) {
        if name == self.name() {
            return;
        }
        self.record();
        self.node
            .ensure_mapping_path(&["metadata"])
            .insert("name", Node::string(name));
    }
    pub fn set_namespace(&mut self, ns: &str) {
        if ns == self.namespace() {
            return;
        }
        self.record();
        self.node
            .ensure_mapping_path(&["metadata"])
            .insert("namespace", Node::string(ns));
    }
    /// Record the current id as a previous one (before a patch may change it).
    pub fn note_name_change(&mut self, old_name: &str, old_ns: &str) {
        if old_name != self.name() || old_ns != self.namespace() {
            self.prev.push((old_name.to_string(), old_ns.to_string()));
            self.prev_kinds.push(self.kind().to_string());
        }
    }
    /// Record an id (kind, name, namespace) the resource had before a change.
    pub fn note_id_change(&mut self, old_kind: &str, old_name: &str, old_ns: &str) {
        if old_kind != self.kind() || old_name != self.name() || old_ns != self.namespace() {
            self.prev.push((old_name.to_string(), old_ns.to_string()));
            self.prev_kinds.push(old_kind.to_string());
        }
    }
    pub fn labels(&self) -> Option<&Mapping> {
        self.node.get_path(&["metadata", "labels"])?.as_mapping()
    }
    pub fn annotations(&self) -> Option<&Mapping> {
        self.node
            .get_path(&["metadata", "annotations"])?
            .as_mapping()
    }
    /// Whether an id (kind/group/version/name/namespace) names this resource now or
    /// before (kustomize's `GetMatchingResourcesByAnyId` with `Equals`).
    pub fn matches_any_id(&self, id: &ResId) -> bool {
        let me = self.id();
        if id.kind != me.kind && id.kind != self.orig_kind {
            return false;
        }
        if id.group != me.group {
            return false;
        }
        if !id.version.is_empty() && !me.version.is_empty() && id.version != me.version {
            return false;
        }
        let ns_eq = |a: &str, b: &str| {
            let a = if a.is_empty() { "default" } else { a };
            let b = if b.is_empty() { "default" } else { b };
            a == b
        };
        if me.kind == id.kind && me.name == id.name && ns_eq(&me.namespace, &id.namespace) {
            return true;
        }
        self.prev.iter().enumerate().any(|(i, (n, ns))| {
            let k = self.prev_kinds.get(i).unwrap_or(&self.orig_kind);
            *k == id.kind && *n == id.name && ns_eq(ns, &id.namespace)
        })
    }
}

/// Groups of kustomize's builtin Kubernetes schema.
pub fn builtin_group(g: &str) -> bool {
    matches!(
        g,
        "" | "apps"
            | "batch"
            | "extensions"
            | "policy"
            | "autoscaling"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "apiextensions.k8s.io"
            | "admissionregistration.k8s.io"
            | "scheduling.k8s.io"
            | "coordination.k8s.io"
            | "certificates.k8s.io"
            | "discovery.k8s.io"
            | "node.k8s.io"
            | "events.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "apiregistration.k8s.io"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
            | "resource.k8s.io"
            | "internal.apiserver.k8s.io"
            | "storagemigration.k8s.io"
    )
}

/// Whether a group/kind is cluster-scoped in the builtin schema (a kind of the same
/// name in another group is namespaced).
pub fn is_cluster_scoped_gk(group: &str, kind: &str) -> bool {
    builtin_group(group) && is_cluster_scoped(kind)
}

/// Cluster-scoped kinds of the builtin schema (the namespace transformer skips them).
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "MutatingAdmissionPolicy"
            | "MutatingAdmissionPolicyBinding"
            | "APIService"
            | "Node"
            | "ComponentStatus"
            | "CertificateSigningRequest"
            | "IngressClass"
            | "RuntimeClass"
            | "CSIDriver"
            | "CSINode"
            | "VolumeAttachment"
            | "PodSecurityPolicy"
            | "TokenReview"
            | "SelfSubjectAccessReview"
            | "SelfSubjectRulesReview"
            | "SubjectAccessReview"
            | "FlowSchema"
            | "PriorityLevelConfiguration"
            | "StorageVersion"
            | "ClusterTrustBundle"
            | "DeviceClass"
            | "IPAddress"
            | "ServiceCIDR"
    )
}
