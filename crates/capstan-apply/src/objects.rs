//! Pure helpers on objects: ordering, defaults, normalisation for comparison, secret masking,
//! YAML diffs, immutable-error detection.

use serde_json::{Map, Value};

use crate::types::ObjectRef;

/// Label keys capstan puts on every applied object (the equivalent of Flux's
/// `kustomize.toolkit.fluxcd.io/name` and `/namespace` labels).
pub const LABEL_KIND: &str = "capstan.io/kind";
/// See [`LABEL_KIND`].
pub const LABEL_NAMESPACE: &str = "capstan.io/namespace";
/// See [`LABEL_KIND`].
pub const LABEL_NAME: &str = "capstan.io/name";

/// Annotations that exclude an object from pruning (value `disabled`).
pub const PRUNE_ANNOTATIONS: &[&str] = &["kustomize.toolkit.fluxcd.io/prune", "capstan.io/prune"];

/// Kinds applied first, in this order (kustomize's legacy order, as used by Flux).
const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "CronJob",
    "Job",
    "PodDisruptionBudget",
];

/// Kinds applied last.
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Sort rank of a kind: known kinds first in kustomize's legacy order, unknown kinds (custom
/// resources) after them, webhooks last.
pub fn kind_rank(kind: &str) -> usize {
    if let Some(i) = ORDER_FIRST.iter().position(|k| *k == kind) {
        return i;
    }
    if let Some(i) = ORDER_LAST.iter().position(|k| *k == kind) {
        return ORDER_FIRST.len() + 1 + i;
    }
    ORDER_FIRST.len()
}

/// Stage-one kinds (applied and waited for before everything else).
pub fn is_cluster_definition(r: &ObjectRef) -> bool {
    (r.group.is_empty() && r.kind == "Namespace")
        || (r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition")
}

/// Sort key giving the stable apply order.
pub fn order_key(r: &ObjectRef) -> (usize, String, String, String) {
    (
        kind_rank(&r.kind),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

/// Fills defaults that server-side apply on old API servers needs because they are list-map
/// keys: `protocol: TCP` of container ports and Service ports (as Flux's
/// `SetNativeKindsDefaults`).
pub fn set_native_defaults(obj: &mut Value) {
    let group_kind = {
        let r = ObjectRef::from_object(obj);
        r.map(|r| (r.group, r.kind))
    };
    let Some((group, kind)) = group_kind else {
        return;
    };
    let pod_spec_path: Option<&str> = match (group.as_str(), kind.as_str()) {
        ("", "Pod") => Some("/spec"),
        ("", "ReplicationController")
        | ("apps", "Deployment")
        | ("apps", "StatefulSet")
        | ("apps", "DaemonSet")
        | ("apps", "ReplicaSet")
        | ("batch", "Job") => Some("/spec/template/spec"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    };
    if let Some(path) = pod_spec_path {
        if let Some(spec) = obj.pointer_mut(path) {
            for key in ["containers", "initContainers", "ephemeralContainers"] {
                if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
                    for c in list {
                        default_protocol(c.get_mut("ports"));
                    }
                }
            }
        }
    }
    if group.is_empty() && kind == "Service" {
        default_protocol(obj.pointer_mut("/spec/ports"));
    }
}

fn default_protocol(ports: Option<&mut Value>) {
    if let Some(list) = ports.and_then(Value::as_array_mut) {
        for p in list {
            if let Some(m) = p.as_object_mut() {
                if !m.get("protocol").is_some_and(|v| v.is_string()) {
                    m.insert("protocol".into(), Value::String("TCP".into()));
                }
            }
        }
    }
}

/// Adds the ownership labels of the unit to `metadata.labels`.
pub fn set_owner_labels(obj: &mut Value, unit: &crate::UnitRef) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    let labels = labels.as_object_mut().expect("labels object");
    labels.insert(LABEL_KIND.into(), Value::String(unit.kind.to_lowercase()));
    labels.insert(
        LABEL_NAMESPACE.into(),
        Value::String(unit.namespace.clone()),
    );
    labels.insert(LABEL_NAME.into(), Value::String(unit.name.clone()));
}

/// Removes server-populated fields that must not count as drift: managedFields,
/// resourceVersion, generation, uid, creationTimestamp, selfLink and `status`.
pub fn strip_server_fields(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if meta
                .get("annotations")
                .and_then(Value::as_object)
                .is_some_and(|a| a.is_empty())
            {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// True when `dry_run` (the result of a server-side dry-run apply) equals `live` once server
/// fields are stripped: applying would change nothing.
pub fn same_content(live: &Value, dry_run: &Value) -> bool {
    strip_server_fields(live) == strip_server_fields(dry_run)
}

fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Removes the values of a Secret's `data`/`stringData` from a message (API servers echo
/// parts of malformed requests in errors). Messages about other objects are returned as is.
pub fn redact_secret_values(obj: &Value, message: &str) -> String {
    if !is_secret(obj) {
        return message.to_string();
    }
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    for key in ["data", "stringData"] {
        if let Some(v) = obj.get(key) {
            leaves(v, &mut values);
        }
    }
    // Longest first, so a value containing another is removed whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = message.to_string();
    for v in values.iter().filter(|v| v.len() >= 3) {
        out = out.replace(v.as_str(), "***");
    }
    out
}

/// Values shorter than this are only masked where they are a Secret's value
/// (`data`/`stringData`), not searched for in other fields: a copy of `1` or `on` cannot
/// be told from other text.
const MIN_COPY_LEN: usize = 3;

/// Every value of a Secret in the forms a copy of it may take: `data` values (base64)
/// and their decoded text, `stringData` values and their base64, each also as escaped
/// inside a JSON string.
fn secret_values(obj: &Value, out: &mut Vec<String>) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut push = |v: String| {
        if v.len() >= MIN_COPY_LEN {
            if let Ok(q) = serde_json::to_string(&v) {
                let escaped = &q[1..q.len() - 1];
                if escaped != v {
                    out.push(escaped.to_string());
                }
            }
            out.push(v);
        }
    };
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Bool(b) => out.push(b.to_string()),
            Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
            Value::Null => {}
        }
    }
    let mut data = Vec::new();
    if let Some(d) = obj.get("data") {
        leaves(d, &mut data);
    }
    for v in data {
        if let Some(text) = b64
            .decode(v.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            push(text);
        }
        push(v);
    }
    let mut string_data = Vec::new();
    if let Some(d) = obj.get("stringData") {
        leaves(d, &mut string_data);
    }
    for v in string_data {
        push(b64.encode(v.as_bytes()));
        push(v);
    }
}

/// The Secret values of `obj` (when it is a Secret) and of any Secret JSON carried in its
/// annotations (`kubectl.kubernetes.io/last-applied-configuration` holds the whole
/// Secret as it was applied), longest first.
fn all_secret_values(obj: &Value, out: &mut Vec<String>) {
    if !is_secret(obj) {
        return;
    }
    secret_values(obj, out);
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for v in ann.values().filter_map(Value::as_str) {
            if let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(v) {
                secret_values(&inner, out);
            }
        }
    }
}

fn sorted_values(mut values: Vec<String>) -> Vec<String> {
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

/// Replaces every copy of a value in `text` by `***`.
fn mask_text(text: &str, values: &[String]) -> String {
    let mut out = text.to_string();
    for v in values {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "***");
        }
    }
    out
}

/// Masks a Secret (or an object held in one of its annotations): `data`/`stringData`
/// values become `***`; in every other string (annotations, labels, any field; a JSON
/// annotation is masked as an object and written back) copies of `values` become `***`.
/// The object's identity (apiVersion, kind, name, namespace) is kept as it is.
fn mask_with(obj: &Value, values: &[String]) -> Value {
    let mut v = obj.clone();
    let Some(m) = v.as_object_mut() else {
        return v;
    };
    for key in ["data", "stringData"] {
        if let Some(d) = m.get_mut(key).and_then(Value::as_object_mut) {
            for val in d.values_mut() {
                *val = Value::String("***".into());
            }
        }
    }
    for (k, field) in m.iter_mut() {
        match k.as_str() {
            "data" | "stringData" | "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(meta) = field.as_object_mut() {
                    for (mk, mv) in meta.iter_mut() {
                        match mk.as_str() {
                            "name" | "namespace" | "generateName" => {}
                            "annotations" => {
                                if let Some(ann) = mv.as_object_mut() {
                                    for av in ann.values_mut() {
                                        if let Value::String(s) = av {
                                            *s = mask_annotation(s, values);
                                        }
                                    }
                                }
                            }
                            _ => mask_strings(mv, values),
                        }
                    }
                }
            }
            _ => mask_strings(field, values),
        }
    }
    v
}

/// An annotation of a Secret: JSON objects (the last-applied configuration) are masked as
/// objects, other text by copies of values.
fn mask_annotation(s: &str, values: &[String]) -> String {
    if let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(s) {
        if let Ok(mut text) = serde_json::to_string(&mask_with(&inner, values)) {
            if s.ends_with('\n') {
                text.push('\n');
            }
            return text;
        }
    }
    mask_text(s, values)
}

fn mask_strings(v: &mut Value, values: &[String]) {
    match v {
        Value::String(s) => *s = mask_text(s, values),
        Value::Array(a) => a.iter_mut().for_each(|x| mask_strings(x, values)),
        Value::Object(m) => m.values_mut().for_each(|x| mask_strings(x, values)),
        _ => {}
    }
}

/// Replaces every Secret value by `***`: `data`, `stringData`, the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (and any annotation
/// holding the Secret as JSON), and copies of a value in any other field. Non-Secrets
/// are returned as is.
pub fn mask_secret(obj: &Value) -> Value {
    if !is_secret(obj) {
        return obj.clone();
    }
    let mut values = Vec::new();
    all_secret_values(obj, &mut values);
    mask_with(obj, &sorted_values(values))
}

/// Masks the Secret values of both sides of a diff (each side also masks copies of the
/// other side's values); values that differ are shown as `*** (before)` and
/// `*** (after)` so the diff still says which keys changed.
pub fn mask_secret_pair(before: Option<&Value>, after: &Value) -> (Option<Value>, Value) {
    if !is_secret(after) && !before.is_some_and(is_secret) {
        return (before.cloned(), after.clone());
    }
    let mut values = Vec::new();
    if let Some(b) = before {
        all_secret_values(b, &mut values);
    }
    all_secret_values(after, &mut values);
    let values = sorted_values(values);
    let mask = |o: &Value| {
        if is_secret(o) {
            mask_with(o, &values)
        } else {
            o.clone()
        }
    };
    let mut b = before.map(mask);
    let mut a = mask(after);
    for key in ["data", "stringData"] {
        let orig_b = before.and_then(|o| o.get(key)).and_then(Value::as_object);
        let orig_a = after.get(key).and_then(Value::as_object);
        if let (Some(ob), Some(oa)) = (orig_b, orig_a) {
            for (k, va) in oa {
                if ob.get(k).is_some_and(|vb| vb != va) {
                    if let Some(m) = b
                        .as_mut()
                        .and_then(|b| b.get_mut(key))
                        .and_then(Value::as_object_mut)
                    {
                        m.insert(k.clone(), Value::String("*** (before)".into()));
                    }
                    if let Some(m) = a.get_mut(key).and_then(Value::as_object_mut) {
                        m.insert(k.clone(), Value::String("*** (after)".into()));
                    }
                }
            }
        }
    }
    (b, a)
}

/// Recursively sorts object keys (so YAML output does not depend on map ordering).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Renders an object as YAML (keys sorted).
pub fn to_yaml(v: &Value) -> String {
    capstan_yaml::emit_document(&capstan_yaml::from_json(&canonical(v)))
}

/// Unified diff between the live object (`None` when absent) and the merged object, both
/// stripped of server fields and with Secret values masked. `None` when they are equal.
pub fn diff(object: &ObjectRef, live: Option<&Value>, merged: &Value) -> Option<String> {
    let live = live.map(strip_server_fields);
    let merged = strip_server_fields(merged);
    let (live, merged) = mask_secret_pair(live.as_ref(), &merged);
    let old = live.as_ref().map(to_yaml).unwrap_or_default();
    let new = to_yaml(&merged);
    if old == new {
        return None;
    }
    let text = similar::TextDiff::from_lines(&old, &new);
    let out = text
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{object}"), &format!("merged/{object}"))
        .to_string();
    Some(out)
}

/// Whether an API error says that an immutable field changed (Flux's `IsImmutableError`).
pub fn is_immutable_error(code: u16, message: &str) -> bool {
    if code != 422 {
        return false;
    }
    let m = message.to_ascii_lowercase();
    [
        "field is immutable",
        "cannot change roleref",
        "may not change once set",
        "updates to statefulset spec for fields other than",
        "updates to parameters are forbidden",
        "is immutable",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// True when the object carries a prune-disabling annotation.
pub fn prune_disabled(obj: &Value) -> bool {
    PRUNE_ANNOTATIONS.iter().any(|a| {
        obj.pointer("/metadata/annotations")
            .and_then(|m| m.get(*a))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ordering() {
        assert!(kind_rank("Namespace") < kind_rank("CustomResourceDefinition"));
        assert!(kind_rank("ClusterRole") < kind_rank("ConfigMap"));
        assert!(kind_rank("ConfigMap") < kind_rank("Service"));
        assert!(kind_rank("Service") < kind_rank("Deployment"));
        assert!(kind_rank("Deployment") < kind_rank("Widget"));
        assert!(kind_rank("Widget") < kind_rank("ValidatingWebhookConfiguration"));
        let mut refs = [
            ObjectRef::new("apps/v1", "Deployment", "a", "x"),
            ObjectRef::new("v1", "Service", "a", "x"),
            ObjectRef::new("v1", "Namespace", "", "a"),
            ObjectRef::new("v1", "ConfigMap", "a", "b"),
            ObjectRef::new("v1", "ConfigMap", "a", "a"),
        ];
        refs.sort_by_key(order_key);
        let names: Vec<String> = refs
            .iter()
            .map(|r| format!("{}:{}", r.kind, r.name))
            .collect();
        assert_eq!(
            names,
            [
                "Namespace:a",
                "ConfigMap:a",
                "ConfigMap:b",
                "Service:x",
                "Deployment:x"
            ]
        );
        assert!(is_cluster_definition(&ObjectRef::new(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "x"
        )));
    }

    #[test]
    fn defaults() {
        let mut d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"template":{"spec":{"containers":[{"name":"c","ports":[{"containerPort":80},{"containerPort":53,"protocol":"UDP"}]}]}}}});
        set_native_defaults(&mut d);
        assert_eq!(
            d.pointer("/spec/template/spec/containers/0/ports/0/protocol"),
            Some(&json!("TCP"))
        );
        assert_eq!(
            d.pointer("/spec/template/spec/containers/0/ports/1/protocol"),
            Some(&json!("UDP"))
        );
        let mut s = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":80}]}});
        set_native_defaults(&mut s);
        assert_eq!(s.pointer("/spec/ports/0/protocol"), Some(&json!("TCP")));
        let mut cj = json!({"apiVersion":"batch/v1beta1","kind":"CronJob","metadata":{"name":"c"},
            "spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[{"name":"i","ports":[{"containerPort":1}]}]}}}}}});
        set_native_defaults(&mut cj);
        assert_eq!(
            cj.pointer("/spec/jobTemplate/spec/template/spec/initContainers/0/ports/0/protocol"),
            Some(&json!("TCP"))
        );
    }

    #[test]
    fn labels() {
        let mut o = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}});
        set_owner_labels(
            &mut o,
            &crate::UnitRef::new("Kustomization", "flux-system", "apps"),
        );
        assert_eq!(
            o.pointer("/metadata/labels"),
            Some(
                &json!({"capstan.io/kind":"kustomization","capstan.io/namespace":"flux-system","capstan.io/name":"apps"})
            )
        );
    }

    #[test]
    fn comparison_ignores_server_fields() {
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"5","uid":"u",
            "managedFields":[{"manager":"x"}],"creationTimestamp":"t"},"data":{"a":"1"}});
        let dry = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"6","uid":"u",
            "managedFields":[{"manager":"capstan"}],"creationTimestamp":"t"},"data":{"a":"1"}});
        assert!(same_content(&live, &dry));
        let dry2 =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"2"}});
        assert!(!same_content(&live, &dry2));
    }

    #[test]
    fn secrets_are_masked_in_diffs() {
        let r = ObjectRef::new("v1", "Secret", "ns", "s");
        let live = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"a":"c2VjcmV0MQ==","b":"c2FtZQ=="}});
        let new = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"a":"c2VjcmV0Mg==","b":"c2FtZQ=="},"stringData":{"c":"plain"}});
        let d = diff(&r, Some(&live), &new).expect("diff");
        assert!(!d.contains("c2VjcmV0"), "{d}");
        assert!(!d.contains("c2FtZQ"), "{d}");
        assert!(!d.contains("plain"), "{d}");
        assert!(
            d.contains("*** (before)") && d.contains("*** (after)"),
            "{d}"
        );
        let created = diff(&r, None, &new).expect("diff");
        assert!(
            !created.contains("c2VjcmV0") && !created.contains("plain"),
            "{created}"
        );
    }

    /// kubectl's client-side apply leaves the whole Secret, values included, in the
    /// `kubectl.kubernetes.io/last-applied-configuration` annotation; other annotations
    /// and labels may carry copies. None reaches a diff.
    #[test]
    fn secret_values_are_masked_in_last_applied_and_other_annotations() {
        let r = ObjectRef::new("v1", "Secret", "ns", "s");
        let last_applied = |pw: &str| {
            format!(
                "{{\"apiVersion\":\"v1\",\"data\":{{\"password\":\"{pw}\"}},\"kind\":\"Secret\",\"metadata\":{{\"annotations\":{{}},\"name\":\"s\",\"namespace\":\"ns\"}},\"stringData\":{{\"token\":\"tok-\\\"quoted\\\"-en\"}},\"type\":\"Opaque\"}}\n"
            )
        };
        // base64("hunter2-old") and base64("hunter2-new").
        let live = json!({"apiVersion":"v1","kind":"Secret","type":"Opaque",
            "metadata":{"name":"s","namespace":"ns","annotations":{
                "kubectl.kubernetes.io/last-applied-configuration": last_applied("aHVudGVyMi1vbGQ="),
                "example.com/copy": "pw=hunter2-old",
                "example.com/copy-b64": "aHVudGVyMi1vbGQ="},
                "labels":{"token":"tok-\"quoted\"-en"}},
            "data":{"password":"aHVudGVyMi1vbGQ=","token":"dG9rLSJxdW90ZWQiLWVu"}});
        let new = json!({"apiVersion":"v1","kind":"Secret","type":"Opaque",
            "metadata":{"name":"s","namespace":"ns","annotations":{
                "kubectl.kubernetes.io/last-applied-configuration": last_applied("aHVudGVyMi1uZXc="),
                "example.com/copy": "pw=hunter2-new"}},
            "data":{"password":"aHVudGVyMi1uZXc=","token":"dG9rLSJxdW90ZWQiLWVu"}});
        let d = diff(&r, Some(&live), &new).expect("diff");
        for leak in ["aHVudGVy", "hunter2", "tok-", "dG9r", "quoted"] {
            assert!(!d.contains(leak), "{leak} leaked:\n{d}");
        }
        assert!(d.contains("last-applied-configuration"), "{d}");
        assert!(d.contains("pw=***"), "{d}");
        assert!(
            d.contains("*** (before)") && d.contains("*** (after)"),
            "{d}"
        );
        // The annotation stays JSON, masked as an object.
        let masked = mask_secret(&live);
        let la = masked["metadata"]["annotations"]
            ["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
        let inner: Value = serde_json::from_str(la).unwrap();
        assert_eq!(inner["data"]["password"], "***");
        assert_eq!(inner["stringData"]["token"], "***");
        assert_eq!(inner["metadata"]["name"], "s");
        assert!(la.ends_with('\n'));
        // Creating: every copy masked too.
        let created = diff(&r, None, &live).expect("diff");
        assert!(
            !created.contains("hunter2") && !created.contains("aHVudGVy"),
            "{created}"
        );
        // Not a Secret: untouched.
        let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"annotations":{"a":"hunter2-old"}},"data":{"password":"hunter2-old"}});
        assert_eq!(mask_secret(&cm), cm);
    }

    #[test]
    fn secret_values_are_redacted_from_messages() {
        let secret = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "stringData":{"password":["hunter2"],"token":"abc123"}});
        let msg = "failed to create typed patch object: .stringData.password: expected string, got []interface {}{\"hunter2\"} (abc123)";
        let red = redact_secret_values(&secret, msg);
        assert!(!red.contains("hunter2") && !red.contains("abc123"), "{red}");
        assert!(red.contains(".stringData.password"));
        let cm = json!({"apiVersion":"v1","kind":"ConfigMap","data":{"a":"hunter2"}});
        assert_eq!(redact_secret_values(&cm, msg), msg);
    }

    #[test]
    fn diff_of_configmap() {
        let r = ObjectRef::new("v1", "ConfigMap", "ns", "c");
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"1"},"data":{"a":"1"}});
        let new = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"2"},"data":{"a":"2"}});
        let d = diff(&r, Some(&live), &new).expect("diff");
        assert!(
            d.contains("-  a: \"1\"") && d.contains("+  a: \"2\""),
            "{d}"
        );
        assert!(!d.contains("resourceVersion"));
        assert!(diff(&r, Some(&live), &live).is_none());
    }

    #[test]
    fn immutable_errors() {
        assert!(is_immutable_error(
            422,
            "Service \"s\" is invalid: spec.clusterIP: Invalid value: \"10.96.0.9\": field is immutable"
        ));
        assert!(is_immutable_error(422, "Job.batch \"j\" is invalid: spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"));
        assert!(!is_immutable_error(422, "spec.replicas: Invalid value: -1"));
        assert!(!is_immutable_error(409, "field is immutable"));
    }

    #[test]
    fn prune_annotation() {
        assert!(prune_disabled(
            &json!({"metadata":{"annotations":{"kustomize.toolkit.fluxcd.io/prune":"disabled"}}})
        ));
        assert!(!prune_disabled(&json!({"metadata":{}})));
    }
}
