//! Field specs (kustomize's `fieldSpecs`) and the transformer configuration: the builtin
//! tables plus `configurations` files and CRDs.

use capstan_yaml::{Mapping, Node};

use crate::error::{kerr, Result};
use crate::resource::{split_api_version, Resource};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSpec {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub path: Vec<String>,
    pub create: bool,
}

/// Split a field spec path on `/`, honouring `\/` escapes.
pub fn split_path(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'/') {
            cur.push('/');
            chars.next();
        } else if c == '/' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.retain(|s| !s.is_empty());
    out
}

impl FieldSpec {
    pub fn new(kind: &str, group: &str, path: &str, create: bool) -> FieldSpec {
        FieldSpec {
            group: group.into(),
            version: String::new(),
            kind: kind.into(),
            path: split_path(path),
            create,
        }
    }
    pub fn from_node(n: &Node) -> Result<FieldSpec> {
        let m = n
            .as_mapping()
            .ok_or_else(|| kerr!("fieldSpec must be a mapping"))?;
        let s = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let create = m.get("create").and_then(|v| v.as_str()) == Some("true");
        Ok(FieldSpec {
            group: s("group"),
            version: s("version"),
            kind: s("kind"),
            path: split_path(&s("path")),
            create,
        })
    }
    pub fn matches(&self, r: &Resource) -> bool {
        if !self.kind.is_empty() && self.kind != r.kind() {
            return false;
        }
        if self.group.is_empty() && self.version.is_empty() {
            return true;
        }
        let (g, v) = split_api_version(r.api_version());
        (self.group.is_empty() || self.group == g) && (self.version.is_empty() || self.version == v)
    }
}

/// Apply `f` to every node at `path` below `node`, descending into sequences; with
/// `create`, missing mappings are created (the last field is created as a null for `f`
/// to fill).
pub fn apply_path(
    node: &mut Node,
    path: &[String],
    create: bool,
    f: &mut dyn FnMut(&mut Node) -> Result<()>,
) -> Result<()> {
    if let Node::Sequence(items) = node {
        for it in items.iter_mut() {
            apply_path(it, path, create, f)?;
        }
        return Ok(());
    }
    let Some((first, rest)) = path.split_first() else {
        return f(node);
    };
    let (field, is_seq) = match first.strip_suffix("[]") {
        Some(x) => (x, true),
        None => (first.as_str(), false),
    };
    if node.is_null() {
        if !create {
            return Ok(());
        }
        *node = Node::mapping();
    }
    let Node::Mapping(m) = node else {
        return Ok(());
    };
    match m.get_mut(field) {
        Some(child) => {
            if child.is_null() && !rest.is_empty() {
                if !create {
                    return Ok(());
                }
                *child = if is_seq {
                    Node::Sequence(vec![])
                } else {
                    Node::mapping()
                };
            }
            apply_path(child, rest, create, f)
        }
        None => {
            if !create || is_seq {
                return Ok(());
            }
            let mut child = if rest.is_empty() {
                Node::null()
            } else {
                Node::mapping()
            };
            apply_path(&mut child, rest, create, f)?;
            if !child.is_null() {
                m.insert(field, child);
            }
            Ok(())
        }
    }
}

/// Apply `f` to every node at `path` below `node` as kustomize's field spec filter does for
/// transformers that take the whole field: sequences on the way are descended into, the
/// node at the end of the path is passed as it is (a list included), missing or null
/// fields are skipped.
pub fn apply_path_leaf(
    node: &mut Node,
    path: &[String],
    f: &mut dyn FnMut(&mut Node) -> Result<()>,
) -> Result<()> {
    let Some((first, rest)) = path.split_first() else {
        return f(node);
    };
    match node {
        Node::Sequence(items) => {
            for it in items.iter_mut() {
                apply_path_leaf(it, path, f)?;
            }
            Ok(())
        }
        Node::Mapping(m) => {
            let field = first.strip_suffix("[]").unwrap_or(first);
            match m.get_mut(field) {
                Some(child) if !child.is_null() => apply_path_leaf(child, rest, f),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// A nameReference entry: resources of `kind` (and `group`) are referred to by the
/// `field_specs`.
#[derive(Debug, Clone, Default)]
#[allow(dead_code)]
pub struct NameRef {
    pub kind: String,
    pub group: String,
    pub version: String,
    pub field_specs: Vec<FieldSpec>,
}

/// The transformer configuration (`configurations:`, builtin defaults).
#[derive(Debug, Clone, Default)]
pub struct TransformerConfig {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    /// Extra fields for the `labels:` entries (`labels` in a configurations file).
    pub labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_reference: Vec<NameRef>,
    pub var_reference: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

/// kustomize's `FsSlice.MergeAll`: a field spec is left out when one for the same path
/// that it selects (same or more specific group/version/kind) is already there.
fn push_all_unique(v: &mut Vec<FieldSpec>, new: &[FieldSpec]) {
    let selected_by = |s: &FieldSpec, sel: &FieldSpec| {
        (sel.group.is_empty() || sel.group == s.group)
            && (sel.version.is_empty() || sel.version == s.version)
            && (sel.kind.is_empty() || sel.kind == s.kind)
    };
    for fs in new {
        if !v.iter().any(|s| s.path == fs.path && selected_by(s, fs)) {
            v.push(fs.clone());
        }
    }
}

impl TransformerConfig {
    pub fn is_empty(&self) -> bool {
        [
            &self.name_prefix,
            &self.name_suffix,
            &self.namespace,
            &self.common_labels,
            &self.template_labels,
            &self.labels,
            &self.common_annotations,
            &self.var_reference,
            &self.images,
            &self.replicas,
        ]
        .iter()
        .all(|v| v.is_empty())
            && self.name_reference.is_empty()
    }

    /// Merge another configuration (e.g. from a `configurations` file) into this one.
    pub fn merge(&mut self, o: &TransformerConfig) {
        for (a, b) in [
            (&mut self.name_prefix, &o.name_prefix),
            (&mut self.name_suffix, &o.name_suffix),
            (&mut self.namespace, &o.namespace),
            (&mut self.common_labels, &o.common_labels),
            (&mut self.template_labels, &o.template_labels),
            (&mut self.labels, &o.labels),
            (&mut self.common_annotations, &o.common_annotations),
            (&mut self.var_reference, &o.var_reference),
            (&mut self.images, &o.images),
            (&mut self.replicas, &o.replicas),
        ] {
            push_all_unique(a, b);
        }
        for nr in &o.name_reference {
            match self
                .name_reference
                .iter_mut()
                .find(|x| x.kind == nr.kind && x.group == nr.group)
            {
                Some(x) => push_all_unique(&mut x.field_specs, &nr.field_specs),
                None => self.name_reference.push(nr.clone()),
            }
        }
    }

    /// Parse a `configurations` file.
    pub fn from_node(n: &Node) -> Result<TransformerConfig> {
        let mut c = TransformerConfig::default();
        let Some(m) = n.as_mapping() else {
            return Ok(c);
        };
        let list = |m: &Mapping, k: &str| -> Result<Vec<FieldSpec>> {
            match m.get(k).and_then(|v| v.as_sequence()) {
                Some(s) => s.iter().map(FieldSpec::from_node).collect(),
                None => Ok(vec![]),
            }
        };
        c.name_prefix = list(m, "namePrefix")?;
        c.name_suffix = list(m, "nameSuffix")?;
        c.namespace = list(m, "namespace")?;
        c.common_labels = list(m, "commonLabels")?;
        c.template_labels = list(m, "templateLabels")?;
        c.labels = list(m, "labels")?;
        c.common_annotations = list(m, "commonAnnotations")?;
        c.var_reference = list(m, "varReference")?;
        c.images = list(m, "images")?;
        c.replicas = list(m, "replicas")?;
        if let Some(s) = m.get("nameReference").and_then(|v| v.as_sequence()) {
            for e in s {
                let s = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                let fss = match e.get("fieldSpecs").and_then(|v| v.as_sequence()) {
                    Some(s) => s
                        .iter()
                        .map(FieldSpec::from_node)
                        .collect::<Result<Vec<_>>>()?,
                    None => vec![],
                };
                let (g, v) = if e.get("apiVersion").is_some() {
                    split_api_version(&s("apiVersion"))
                } else {
                    (s("group"), s("version"))
                };
                c.name_reference.push(NameRef {
                    kind: s("kind"),
                    group: g,
                    version: v,
                    field_specs: fss,
                });
            }
        }
        Ok(c)
    }

    /// kustomize's builtin configuration.
    /// The builtin configuration, shared.
    pub fn builtin_shared() -> std::rc::Rc<TransformerConfig> {
        thread_local! {
            static SHARED: std::rc::Rc<TransformerConfig> =
                std::rc::Rc::new(TransformerConfig::builtin());
        }
        SHARED.with(|c| c.clone())
    }

    pub fn builtin() -> TransformerConfig {
        static BUILTIN: std::sync::OnceLock<TransformerConfig> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(Self::make_builtin).clone()
    }

    fn make_builtin() -> TransformerConfig {
        let mut c = TransformerConfig::default();
        c.name_prefix
            .push(FieldSpec::new("", "", "metadata/name", false));
        c.name_suffix
            .push(FieldSpec::new("", "", "metadata/name", false));
        c.namespace = vec![
            FieldSpec::new("", "", "metadata/namespace", true),
            FieldSpec::new("Namespace", "", "metadata/name", true),
            FieldSpec::new("RoleBinding", "", "subjects", false),
            FieldSpec::new("ClusterRoleBinding", "", "subjects", false),
            FieldSpec::new(
                "APIService",
                "apiregistration.k8s.io",
                "spec/service/namespace",
                true,
            ),
            FieldSpec::new(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                "spec/conversion/webhook/clientConfig/service/namespace",
                false,
            ),
        ];
        // Template labels (metadata labels of pod templates) are in both tables.
        let mut meta_labels = vec![FieldSpec::new("", "", "metadata/labels", true)];
        for (k, g) in [
            ("ReplicationController", ""),
            ("Deployment", ""),
            ("ReplicaSet", ""),
            ("DaemonSet", ""),
            ("StatefulSet", "apps"),
            ("Job", "batch"),
        ] {
            let mut fs = FieldSpec::new(k, g, "spec/template/metadata/labels", true);
            if k == "ReplicationController" {
                fs.version = "v1".into();
            }
            meta_labels.push(fs);
        }
        meta_labels.push(FieldSpec::new(
            "CronJob",
            "batch",
            "spec/jobTemplate/metadata/labels",
            true,
        ));
        meta_labels.push(FieldSpec::new(
            "CronJob",
            "batch",
            "spec/jobTemplate/spec/template/metadata/labels",
            true,
        ));
        let mut cl = Vec::new();
        let mut svc = FieldSpec::new("Service", "", "spec/selector", true);
        svc.version = "v1".into();
        cl.push(svc);
        let mut rc = FieldSpec::new("ReplicationController", "", "spec/selector", true);
        rc.version = "v1".into();
        cl.push(rc);
        cl.push(FieldSpec::new(
            "Deployment",
            "",
            "spec/selector/matchLabels",
            true,
        ));
        let affinity = [
            "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
            "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
            "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
            "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
            "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        ];
        for p in affinity {
            cl.push(FieldSpec::new("Deployment", "apps", p, false));
        }
        cl.push(FieldSpec::new(
            "ReplicaSet",
            "",
            "spec/selector/matchLabels",
            true,
        ));
        cl.push(FieldSpec::new(
            "DaemonSet",
            "",
            "spec/selector/matchLabels",
            true,
        ));
        cl.push(FieldSpec::new(
            "StatefulSet",
            "apps",
            "spec/selector/matchLabels",
            true,
        ));
        cl.push(FieldSpec::new(
            "StatefulSet",
            "apps",
            "spec/volumeClaimTemplates[]/metadata/labels",
            true,
        ));
        for p in affinity {
            cl.push(FieldSpec::new("StatefulSet", "apps", p, false));
        }
        cl.push(FieldSpec::new(
            "Job",
            "batch",
            "spec/selector/matchLabels",
            false,
        ));
        cl.push(FieldSpec::new(
            "CronJob",
            "batch",
            "spec/jobTemplate/spec/selector/matchLabels",
            false,
        ));
        cl.push(FieldSpec::new(
            "PodDisruptionBudget",
            "policy",
            "spec/selector/matchLabels",
            false,
        ));
        cl.push(FieldSpec::new(
            "NetworkPolicy",
            "networking.k8s.io",
            "spec/podSelector/matchLabels",
            false,
        ));
        cl.push(FieldSpec::new(
            "NetworkPolicy",
            "networking.k8s.io",
            "spec/ingress/from/podSelector/matchLabels",
            false,
        ));
        cl.push(FieldSpec::new(
            "NetworkPolicy",
            "networking.k8s.io",
            "spec/egress/to/podSelector/matchLabels",
            false,
        ));
        cl.extend(meta_labels.iter().cloned());
        c.common_labels = cl;
        c.template_labels = meta_labels;

        let mut ca = vec![FieldSpec::new("", "", "metadata/annotations", true)];
        for (k, g) in [
            ("ReplicationController", ""),
            ("Deployment", ""),
            ("ReplicaSet", ""),
            ("DaemonSet", ""),
            ("StatefulSet", "apps"),
            ("Job", "batch"),
        ] {
            let mut fs = FieldSpec::new(k, g, "spec/template/metadata/annotations", true);
            if k == "ReplicationController" {
                fs.version = "v1".into();
            }
            ca.push(fs);
        }
        ca.push(FieldSpec::new(
            "CronJob",
            "batch",
            "spec/jobTemplate/metadata/annotations",
            true,
        ));
        ca.push(FieldSpec::new(
            "CronJob",
            "batch",
            "spec/jobTemplate/spec/template/metadata/annotations",
            true,
        ));
        c.common_annotations = ca;

        for k in [
            "Deployment",
            "ReplicationController",
            "ReplicaSet",
            "StatefulSet",
        ] {
            c.replicas
                .push(FieldSpec::new(k, "", "spec/replicas", true));
        }
        c.var_reference = builtin_var_reference();
        c.name_reference = builtin_name_reference();
        c
    }
}

const WORKLOADS: [(&str, &str); 8] = [
    ("Pod", "spec"),
    ("PodTemplate", "template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
];

const SA_WORKLOADS: [(&str, &str); 7] = [
    ("Pod", "spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicationController", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
];

fn builtin_var_reference() -> Vec<FieldSpec> {
    let mut v = Vec::new();
    for (k, base) in WORKLOADS {
        if k == "PodTemplate" {
            continue;
        }
        for p in [
            "containers/args",
            "containers/command",
            "containers/env/value",
            "containers/volumeMounts/mountPath",
            "initContainers/args",
            "initContainers/command",
            "initContainers/env/value",
            "initContainers/volumeMounts/mountPath",
            "volumes/nfs/server",
        ] {
            // kustomize's table has the CronJob volumes one level up.
            let p = if k == "CronJob" && p == "volumes/nfs/server" {
                "spec/jobTemplate/spec/template/volumes/nfs/server".to_string()
            } else {
                format!("{base}/{p}")
            };
            v.push(FieldSpec::new(k, "", &p, false));
        }
        if k == "Deployment" {
            v.push(FieldSpec::new(
                k,
                "",
                "spec/template/metadata/annotations",
                false,
            ));
        }
    }
    v.push(FieldSpec::new("Ingress", "", "spec/rules/host", false));
    v.push(FieldSpec::new("Ingress", "", "spec/tls/hosts", false));
    v.push(FieldSpec::new("Ingress", "", "spec/tls/secretName", false));
    v.push(FieldSpec::new("Service", "", "spec/ports/port", false));
    v.push(FieldSpec::new(
        "Service",
        "",
        "spec/ports/targetPort",
        false,
    ));
    v.push(FieldSpec::new(
        "StatefulSet",
        "",
        "spec/volumeClaimTemplates/spec/nfs/server",
        false,
    ));
    v.push(FieldSpec::new(
        "PersistentVolume",
        "",
        "spec/nfs/server",
        false,
    ));
    v.push(FieldSpec::new("", "", "metadata/labels", false));
    v.push(FieldSpec::new("", "", "metadata/annotations", false));
    v
}

fn builtin_name_reference() -> Vec<NameRef> {
    let nr = |kind: &str, group: &str, fss: Vec<FieldSpec>| NameRef {
        kind: kind.into(),
        group: group.into(),
        version: String::new(),
        field_specs: fss,
    };
    let mut out = Vec::new();
    for k in [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ] {
        out.push(nr(
            k,
            "",
            vec![FieldSpec::new(
                "HorizontalPodAutoscaler",
                "",
                "spec/scaleTargetRef/name",
                false,
            )],
        ));
    }
    let mut cm = Vec::new();
    let mut sec = Vec::new();
    for (k, base) in WORKLOADS {
        for p in [
            "volumes/configMap/name",
            "containers/env/valueFrom/configMapKeyRef/name",
            "initContainers/env/valueFrom/configMapKeyRef/name",
            "containers/envFrom/configMapRef/name",
            "initContainers/envFrom/configMapRef/name",
            "volumes/projected/sources/configMap/name",
        ] {
            cm.push(FieldSpec::new(k, "", &format!("{base}/{p}"), false));
        }
        for p in [
            "volumes/secret/secretName",
            "containers/env/valueFrom/secretKeyRef/name",
            "initContainers/env/valueFrom/secretKeyRef/name",
            "containers/envFrom/secretRef/name",
            "initContainers/envFrom/secretRef/name",
            "imagePullSecrets/name",
            "volumes/projected/sources/secret/name",
        ] {
            sec.push(FieldSpec::new(k, "", &format!("{base}/{p}"), false));
        }
    }
    cm.push(FieldSpec::new(
        "Node",
        "",
        "spec/configSource/configMap",
        false,
    ));
    cm.push(FieldSpec::new("Role", "", "rules/resourceNames", false));
    cm.push(FieldSpec::new(
        "ClusterRole",
        "",
        "rules/resourceNames",
        false,
    ));
    cm.push(FieldSpec::new(
        "Ingress",
        "",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap",
        false,
    ));
    out.push(nr("ConfigMap", "", cm));
    sec.push(FieldSpec::new("Ingress", "", "spec/tls/secretName", false));
    sec.push(FieldSpec::new(
        "Ingress",
        "",
        "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
        false,
    ));
    sec.push(FieldSpec::new(
        "Ingress",
        "",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
        false,
    ));
    sec.push(FieldSpec::new(
        "Ingress",
        "",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
        false,
    ));
    sec.push(FieldSpec::new(
        "ServiceAccount",
        "",
        "imagePullSecrets/name",
        false,
    ));
    for p in [
        "parameters/secretName",
        "parameters/adminSecretName",
        "parameters/userSecretName",
        "parameters/secretRef",
    ] {
        sec.push(FieldSpec::new("StorageClass", "", p, false));
    }
    sec.push(FieldSpec::new("Role", "", "rules/resourceNames", false));
    sec.push(FieldSpec::new(
        "ClusterRole",
        "",
        "rules/resourceNames",
        false,
    ));
    sec.push(FieldSpec::new(
        "Service",
        "serving.knative.dev",
        "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
        false,
    ));
    sec.push(FieldSpec::new(
        "PersistentVolume",
        "",
        "spec/azureFile/secretName",
        false,
    ));
    out.push(nr("Secret", "", sec));
    out.push(nr(
        "Service",
        "",
        vec![
            FieldSpec::new("StatefulSet", "apps", "spec/serviceName", false),
            FieldSpec::new(
                "Ingress",
                "",
                "spec/rules/http/paths/backend/serviceName",
                false,
            ),
            FieldSpec::new("Ingress", "", "spec/backend/serviceName", false),
            FieldSpec::new(
                "Ingress",
                "",
                "spec/rules/http/paths/backend/service/name",
                false,
            ),
            FieldSpec::new("Ingress", "", "spec/defaultBackend/service/name", false),
            FieldSpec::new(
                "APIService",
                "apiregistration.k8s.io",
                "spec/service/name",
                false,
            ),
            FieldSpec::new(
                "ValidatingWebhookConfiguration",
                "admissionregistration.k8s.io",
                "webhooks/clientConfig/service",
                false,
            ),
            FieldSpec::new(
                "MutatingWebhookConfiguration",
                "admissionregistration.k8s.io",
                "webhooks/clientConfig/service",
                false,
            ),
            FieldSpec::new("HTTPRoute", "", "spec/rules/backendRefs/name", false),
        ],
    ));
    out.push(nr(
        "Role",
        "rbac.authorization.k8s.io",
        vec![FieldSpec::new(
            "RoleBinding",
            "rbac.authorization.k8s.io",
            "roleRef/name",
            false,
        )],
    ));
    out.push(nr(
        "ClusterRole",
        "rbac.authorization.k8s.io",
        vec![
            FieldSpec::new(
                "RoleBinding",
                "rbac.authorization.k8s.io",
                "roleRef/name",
                false,
            ),
            FieldSpec::new(
                "ClusterRoleBinding",
                "rbac.authorization.k8s.io",
                "roleRef/name",
                false,
            ),
        ],
    ));
    let mut sa = vec![
        FieldSpec::new(
            "RoleBinding",
            "rbac.authorization.k8s.io",
            "subjects",
            false,
        ),
        FieldSpec::new(
            "ClusterRoleBinding",
            "rbac.authorization.k8s.io",
            "subjects",
            false,
        ),
    ];
    let mut pvc = Vec::new();
    let mut pc = Vec::new();
    for (k, base) in SA_WORKLOADS {
        sa.push(FieldSpec::new(
            k,
            "",
            &format!("{base}/serviceAccountName"),
            false,
        ));
        pvc.push(FieldSpec::new(
            k,
            "",
            &format!("{base}/volumes/persistentVolumeClaim/claimName"),
            false,
        ));
        pc.push(FieldSpec::new(
            k,
            "",
            &format!("{base}/priorityClassName"),
            false,
        ));
    }
    out.push(nr("ServiceAccount", "", sa));
    out.push(nr("PersistentVolumeClaim", "", pvc));
    out.push(nr(
        "PersistentVolume",
        "",
        vec![
            FieldSpec::new("PersistentVolumeClaim", "", "spec/volumeName", false),
            FieldSpec::new("ClusterRole", "", "rules/resourceNames", false),
        ],
    ));
    out.push(nr(
        "StorageClass",
        "storage.k8s.io",
        vec![
            FieldSpec::new("PersistentVolume", "", "spec/storageClassName", false),
            FieldSpec::new("PersistentVolumeClaim", "", "spec/storageClassName", false),
            FieldSpec::new(
                "StatefulSet",
                "",
                "spec/volumeClaimTemplates/spec/storageClassName",
                false,
            ),
        ],
    ));
    out.push(nr("PriorityClass", "scheduling.k8s.io", pc));
    out.push(nr(
        "ValidatingAdmissionPolicy",
        "admissionregistration.k8s.io",
        vec![FieldSpec::new(
            "ValidatingAdmissionPolicyBinding",
            "",
            "spec/policyName",
            false,
        )],
    ));
    out.push(nr(
        "IngressClass",
        "networking.k8s.io",
        vec![FieldSpec::new(
            "Ingress",
            "",
            "spec/ingressClassName",
            false,
        )],
    ));
    out
}
