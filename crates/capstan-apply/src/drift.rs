//! Drift detection without a request: the *applied state hash* of an object.
//!
//! After every successful apply capstan records, per object, a hash of
//!
//! * its **intent**: the rendered object as capstan sends it (namespaced, defaulted, labelled),
//!   in a canonical form (object keys sorted), and
//! * the **projection** of the live object onto the intent's fields: for every field the intent
//!   sets, the value the API server holds (after defaulting, normalisation and mutating
//!   webhooks). Lists of the same length are projected element by element; any other list is
//!   taken whole; a field the live object lacks is marked absent.
//!
//! On the next apply the hash is computed again from the new intent and the live object (read
//! with one LIST per kind and namespace). Equal hashes mean the intent did not change since the
//! last successful apply and the API server still holds, in every field capstan sets, the values
//! it held right after that apply: nothing needs to be sent. A changed intent, a field changed
//! or removed by someone else, a deleted object, a scaled Deployment all change the hash, and the
//! object goes through the server-side dry run (which decides whether to write).
//!
//! Because the projection records the server's values rather than capstan's, a field the API
//! server normalises (`cpu: 0.5` stored as `500m`) or a webhook rewrites hashes the same on every
//! apply: it costs one dry run after the intent changes, never a re-apply loop.
//!
//! A v1 Secret's `stringData` is write-only: it is projected as the `data` keys it becomes
//! (base64), so drift of a Secret value is seen.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Hex characters of the recorded hash (64 bits: enough to tell states of one object apart, and
/// small enough for inventories of thousands of objects in one ConfigMap).
const HASH_HEX: usize = 16;

/// The applied-state hash of `intent` against `live` (see the module documentation).
pub fn applied_state_hash(intent: &Value, live: &Value) -> String {
    let mut buf = Vec::with_capacity(1024);
    write_canonical(intent, &mut buf);
    buf.push(0);
    let projected = secret_string_data_as_data(intent);
    project(projected.as_ref().unwrap_or(intent), Some(live), &mut buf);
    let digest = Sha256::digest(&buf);
    let mut hex = String::with_capacity(HASH_HEX);
    for b in digest.iter().take(HASH_HEX / 2) {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Writes `v` as JSON with object keys sorted (independent of map insertion order).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            out.push(b'{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        serde_json::to_string(s)
            .expect("strings serialize")
            .as_bytes(),
    );
}

/// Writes the live values at the intent's fields (`~` for an absent field).
fn project(intent: &Value, live: Option<&Value>, out: &mut Vec<u8>) {
    match (intent, live) {
        (_, None) => out.push(b'~'),
        (Value::Object(im), Some(Value::Object(lm))) => {
            out.push(b'{');
            let mut keys: Vec<&String> = im.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                project(&im[k], lm.get(k), out);
            }
            out.push(b'}');
        }
        (Value::Array(ia), Some(Value::Array(la))) if ia.len() == la.len() => {
            out.push(b'[');
            for (i, (x, l)) in ia.iter().zip(la).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                project(x, Some(l), out);
            }
            out.push(b']');
        }
        (_, Some(l)) => {
            // A different shape or length: the whole live value decides.
            out.push(b'=');
            write_canonical(l, out);
        }
    }
}

fn is_v1_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// A v1 Secret with `stringData` as the API server stores it: merged into `data` (base64),
/// `stringData` removed. `None` for anything else.
fn secret_string_data_as_data(obj: &Value) -> Option<Value> {
    use base64::Engine as _;
    if !is_v1_secret(obj) {
        return None;
    }
    let string_data = obj.get("stringData")?.as_object()?;
    let mut out = obj.clone();
    let m = out.as_object_mut()?;
    let mut data = m
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(Map::new);
    for (k, v) in string_data {
        let text = match v {
            Value::String(s) => s.clone(),
            // Not a string: the API server rejects it; keep it visible to the hash.
            other => other.to_string(),
        };
        data.insert(
            k.clone(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(text.as_bytes())),
        );
    }
    m.remove("stringData");
    m.insert("data".into(), Value::Object(data));
    Some(out)
}

/// The `fieldsV1` set of the `Apply` entry of `manager` in the object's managedFields.
pub fn applied_fields<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
        })
        .map(|e| e.get("fieldsV1").unwrap_or(&Value::Null))
}

/// True when every map field of `fields` (a managedFields `fieldsV1` set) is set by `intent`:
/// the manager owns nothing the intent dropped (server-side apply would remove such a field).
/// List entries (`k:`, `v:`, `i:` keys) are not descended into. A v1 Secret's `stringData`
/// keys also count as `data` keys.
pub fn owns_only_intent_fields(fields: &Value, intent: &Value) -> bool {
    let alt = secret_string_data_as_data(intent);
    owned_within(fields, intent, alt.as_ref())
}

fn owned_within(fields: &Value, intent: &Value, alt: Option<&Value>) -> bool {
    let Some(fm) = fields.as_object() else {
        return true;
    };
    for (key, sub) in fm {
        let Some(name) = key.strip_prefix("f:") else {
            // `.` (the field itself) and list-entry keys.
            continue;
        };
        let here = intent.get(name);
        let there = alt.and_then(|a| a.get(name));
        let Some(value) = here.or(there) else {
            return false;
        };
        let has_children = sub.as_object().is_some_and(|m| m.keys().any(|k| k != "."));
        if !has_children {
            continue;
        }
        match value {
            Value::Object(_) => {
                let alt_value = there.filter(|v| v.is_object());
                // Either view of the intent may hold the nested field (Secret data).
                let value_ok = owned_within(sub, value, alt_value);
                let alt_ok = alt_value.is_some_and(|a| owned_within(sub, a, Some(value)));
                if !value_ok && !alt_ok {
                    return false;
                }
            }
            // Lists: ownership of entries is not compared.
            Value::Array(_) => {}
            // The manager owns children of a field the intent sets to a scalar.
            _ => return false,
        }
    }
    true
}

/// The part of a live object that drift detection needs, for a watch cache that keeps many
/// objects in memory: `apiVersion`, `kind`, the identity and bookkeeping of `metadata`
/// (`name`, `namespace`, `uid`, `resourceVersion`, `generation`, `deletionTimestamp`,
/// `labels`), the managedFields entry of `manager`'s `Apply`, and every field that entry
/// owns (the annotations it owns among them). A list capstan owns is kept whole (its entries
/// are compared whole). Everything else (status, fields set by other managers or defaulted
/// outside capstan's fields, other managers' managedFields) is dropped.
///
/// As long as `manager` owns every field of an intent (it applied them, and no other manager
/// took one over), [`applied_state_hash`] of the intent gives the same value against the
/// reduced object as against the full one. A field another manager took over is missing from
/// the reduced object, so the hash differs and the object is compared in full again: the
/// reduced object is never used to decide that something must be written.
///
/// A v1 Secret whose `stringData` keys `manager` owns keeps those `data` keys too.
pub fn reduce_live(obj: &Value, manager: &str) -> Value {
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = obj.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let owned = applied_fields(obj, manager);
    let mut meta = Map::new();
    if let Some(m) = obj.get("metadata").and_then(Value::as_object) {
        for key in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
            "labels",
        ] {
            if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
                meta.insert(key.into(), v.clone());
            }
        }
        if let (Some(annotations), Some(fields)) = (
            m.get("annotations").and_then(Value::as_object),
            owned.and_then(|f| f.pointer("/f:metadata/f:annotations")),
        ) {
            let kept = keep_owned_map(annotations, fields);
            if !kept.is_empty() {
                meta.insert("annotations".into(), Value::Object(kept));
            }
        }
        if let Some(entry) = m
            .get("managedFields")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter().find(|e| {
                    e.get("manager").and_then(Value::as_str) == Some(manager)
                        && e.get("operation").and_then(Value::as_str) == Some("Apply")
                })
            })
        {
            meta.insert("managedFields".into(), Value::Array(vec![entry.clone()]));
        }
    }
    out.insert("metadata".into(), Value::Object(meta));
    let (Some(fields), Some(live)) = (owned.and_then(Value::as_object), obj.as_object()) else {
        return Value::Object(out);
    };
    let secret = is_v1_secret(obj);
    for (key, sub) in fields {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        if matches!(name, "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if secret && name == "stringData" {
            // Written through stringData, stored (and compared) as data.
            if let (Some(data), Some(sub)) =
                (live.get("data").and_then(Value::as_object), sub.as_object())
            {
                let entry = out
                    .entry("data")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(kept) = entry.as_object_mut() {
                    for k in sub.keys().filter_map(|k| k.strip_prefix("f:")) {
                        if let Some(v) = data.get(k) {
                            kept.insert(k.to_string(), v.clone());
                        }
                    }
                }
            }
            continue;
        }
        if let Some(v) = live.get(name) {
            let kept = keep_owned(v, sub);
            match (out.get_mut(name), kept) {
                (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
                (_, kept) => {
                    out.insert(name.to_string(), kept);
                }
            }
        }
    }
    Value::Object(out)
}

/// The owned part of `live` under a `fieldsV1` node: a map with owned children is filtered,
/// anything else (a leaf, a list, a scalar) is kept whole.
fn keep_owned(live: &Value, fields: &Value) -> Value {
    let has_children = fields
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k.starts_with("f:")));
    match live {
        Value::Object(m) if has_children => Value::Object(keep_owned_map(m, fields)),
        other => other.clone(),
    }
}

fn keep_owned_map(live: &Map<String, Value>, fields: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(fm) = fields.as_object() {
        for (key, sub) in fm {
            if let Some(name) = key.strip_prefix("f:") {
                if let Some(v) = live.get(name) {
                    out.insert(name.to_string(), keep_owned(v, sub));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
            "spec":{"replicas":replicas,"template":{"spec":{"containers":[
                {"name":"web","image":"nginx","ports":[{"containerPort":80,"protocol":"TCP"}]}]}}}})
    }

    fn live_of(intent: &Value) -> Value {
        // What the API server returns: the intent plus defaults and server fields.
        let mut live = intent.clone();
        live["metadata"]["uid"] = json!("1234");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["managedFields"] = json!([{"manager":"capstan","operation":"Apply",
            "apiVersion":"apps/v1","fieldsV1":{"f:spec":{"f:replicas":{}}}}]);
        live["spec"]["strategy"] = json!({"type":"RollingUpdate"});
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["status"] = json!({"replicas": 1});
        live
    }

    #[test]
    fn hash_ignores_key_order_server_fields_and_defaults() {
        let intent = deployment(1);
        let live = live_of(&intent);
        let h = applied_state_hash(&intent, &live);
        assert_eq!(h.len(), HASH_HEX);
        // Same object with keys in another order.
        let reordered: Value =
            serde_json::from_str(&serde_json::to_string(&json!({"spec": intent["spec"].clone(),
                "metadata": intent["metadata"].clone(), "kind":"Deployment","apiVersion":"apps/v1"}))
            .unwrap())
            .unwrap();
        assert_eq!(applied_state_hash(&reordered, &live), h);
        // Server-side changes outside the intent's fields (status, resourceVersion, a
        // controller's annotation) do not count.
        let mut later = live.clone();
        later["status"]["readyReplicas"] = json!(1);
        later["metadata"]["resourceVersion"] = json!("9");
        later["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision":"1"});
        assert_eq!(applied_state_hash(&intent, &later), h);
    }

    #[test]
    fn hash_changes_with_intent_and_with_drift_of_owned_fields() {
        let intent = deployment(1);
        let live = live_of(&intent);
        let h = applied_state_hash(&intent, &live);
        // The intent changed in Git.
        assert_ne!(applied_state_hash(&deployment(2), &live), h);
        // Someone scaled the Deployment.
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert_ne!(applied_state_hash(&intent, &scaled), h);
        // Someone removed a label capstan sets.
        let mut unlabelled = live.clone();
        unlabelled["metadata"]["labels"] = json!({});
        assert_ne!(applied_state_hash(&intent, &unlabelled), h);
        // Someone added a container (list of another length).
        let mut extra = live.clone();
        extra["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name":"sidecar","image":"busybox"}));
        assert_ne!(applied_state_hash(&intent, &extra), h);
    }

    #[test]
    fn normalised_values_hash_stably() {
        // The API server stores `cpu: 0.5` as `500m`: the projection holds the server's value,
        // so the hash recorded after the apply matches on the next apply.
        let intent = json!({"apiVersion":"v1","kind":"LimitRange","metadata":{"name":"l"},
            "spec":{"limits":[{"type":"Container","default":{"cpu":0.5}}]}});
        let live = json!({"apiVersion":"v1","kind":"LimitRange","metadata":{"name":"l"},
            "spec":{"limits":[{"type":"Container","default":{"cpu":"500m"},"defaultRequest":{"cpu":"500m"}}]}});
        assert_eq!(
            applied_state_hash(&intent, &live),
            applied_state_hash(&intent, &live.clone())
        );
        let mut changed = live.clone();
        changed["spec"]["limits"][0]["default"]["cpu"] = json!("1");
        assert_ne!(
            applied_state_hash(&intent, &live),
            applied_state_hash(&intent, &changed)
        );
    }

    #[test]
    fn secret_string_data_is_projected_as_data() {
        let intent = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "stringData":{"password":"hunter2"}});
        let live = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "type":"Opaque","data":{"password":"aHVudGVyMg=="}});
        let h = applied_state_hash(&intent, &live);
        let mut changed = live.clone();
        changed["data"]["password"] = json!("b3RoZXI=");
        assert_ne!(applied_state_hash(&intent, &changed), h);
        // Secret fields capstan owns through stringData count as set by the intent.
        let fields = json!({"f:data":{"f:password":{}},"f:metadata":{"f:name":{}}});
        assert!(owns_only_intent_fields(&fields, &intent));
    }

    #[test]
    fn ownership_beyond_the_intent_is_detected() {
        let intent = deployment(1);
        let fields = json!({"f:metadata":{"f:labels":{".":{},"f:app":{}}},
            "f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
                "k:{\"name\":\"web\"}":{".":{},"f:image":{}}}}}}});
        assert!(owns_only_intent_fields(&fields, &intent));
        let mut dropped = intent.clone();
        dropped["spec"].as_object_mut().unwrap().remove("replicas");
        assert!(!owns_only_intent_fields(&fields, &dropped));
        let mut label_gone = intent.clone();
        label_gone["metadata"]["labels"] = json!({});
        assert!(!owns_only_intent_fields(&fields, &label_gone));
    }

    #[test]
    fn applied_fields_of_the_manager() {
        let obj = json!({"metadata":{"managedFields":[
            {"manager":"capstan","operation":"Update","fieldsV1":{"f:a":{}}},
            {"manager":"capstan","operation":"Apply","fieldsV1":{"f:b":{}}}]}});
        assert_eq!(applied_fields(&obj, "capstan"), Some(&json!({"f:b":{}})));
        assert_eq!(applied_fields(&obj, "kubectl"), None);
    }

    /// A Deployment as the API server returns it after capstan applied `deployment(1)`:
    /// managedFields of capstan and of the controller, defaults, status.
    fn applied_live() -> Value {
        let intent = deployment(1);
        let mut live = intent.clone();
        live["metadata"]["uid"] = json!("1234");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["generation"] = json!(1);
        live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision":"1",
            "kubectl.kubernetes.io/last-applied-configuration":"{...}"});
        live["metadata"]["managedFields"] = json!([
            {"manager":"capstan","operation":"Apply","apiVersion":"apps/v1","fieldsV1":{
                "f:metadata":{"f:labels":{"f:app":{}}},
                "f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
                    "k:{\"name\":\"web\"}":{".":{},"f:name":{},"f:image":{},"f:ports":{}}}}}}}},
            {"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1",
                "fieldsV1":{"f:status":{"f:replicas":{}}}}]);
        live["spec"]["strategy"] = json!({"type":"RollingUpdate"});
        live["spec"]["revisionHistoryLimit"] = json!(10);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        live["status"] = json!({"replicas": 1, "conditions": [{"type":"Available"}]});
        live
    }

    /// The watch cache's reduced object: identity, capstan's managedFields entry and the
    /// fields capstan owns (lists whole); no status, defaults elsewhere or other managers.
    #[test]
    fn reduced_object_keeps_what_drift_detection_needs() {
        let live = applied_live();
        let reduced = reduce_live(&live, "capstan");
        assert_eq!(reduced["kind"], "Deployment");
        assert_eq!(reduced["metadata"]["name"], "web");
        assert_eq!(reduced["metadata"]["resourceVersion"], "7");
        assert_eq!(reduced["metadata"]["labels"], json!({"app":"web"}));
        assert!(
            reduced["metadata"].get("annotations").is_none(),
            "{reduced}"
        );
        assert_eq!(
            reduced["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(reduced.get("status").is_none(), "{reduced}");
        assert!(reduced["spec"].get("strategy").is_none(), "{reduced}");
        assert!(reduced["spec"]["template"]["spec"]
            .get("restartPolicy")
            .is_none());
        // The owned list is kept whole, defaults of its entries included.
        assert_eq!(
            reduced["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert!(
            serde_json::to_string(&reduced).unwrap().len()
                < serde_json::to_string(&live).unwrap().len()
        );
    }

    /// The hash against the reduced object equals the hash against the full one while capstan
    /// owns every field of the intent; drift (scaled, relabelled, a field taken over by
    /// another manager) changes it.
    #[test]
    fn reduced_object_hashes_as_the_full_object() {
        let intent = deployment(1);
        let live = applied_live();
        let h = applied_state_hash(&intent, &live);
        assert_eq!(
            applied_state_hash(&intent, &reduce_live(&live, "capstan")),
            h
        );
        let fields = applied_fields(&reduce_live(&live, "capstan"), "capstan").cloned();
        assert_eq!(fields.as_ref(), applied_fields(&live, "capstan"));
        // Scaled by someone else (value changed, ownership kept or lost).
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert_ne!(
            applied_state_hash(&intent, &reduce_live(&scaled, "capstan")),
            h
        );
        let mut taken = live.clone();
        taken["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
            .as_object_mut()
            .unwrap()
            .remove("f:replicas");
        assert_ne!(
            applied_state_hash(&intent, &reduce_live(&taken, "capstan")),
            h
        );
        // A controller's status and annotations do not count.
        let mut busy = live.clone();
        busy["status"]["readyReplicas"] = json!(1);
        busy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("2");
        assert_eq!(
            applied_state_hash(&intent, &reduce_live(&busy, "capstan")),
            h
        );
    }

    /// A Secret written through stringData keeps the owned keys' `data` values.
    #[test]
    fn reduced_secret_keeps_data_written_as_string_data() {
        let intent = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "stringData":{"password":"hunter2"}});
        let live = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s",
            "managedFields":[{"manager":"capstan","operation":"Apply","fieldsV1":{
                "f:stringData":{"f:password":{}}}}]},
            "type":"Opaque","data":{"password":"aHVudGVyMg==","other":"eA=="}});
        let reduced = reduce_live(&live, "capstan");
        assert_eq!(reduced["data"], json!({"password":"aHVudGVyMg=="}));
        assert_eq!(
            applied_state_hash(&intent, &reduced),
            applied_state_hash(&intent, &live)
        );
        // Not applied by capstan: identity only.
        let other = reduce_live(&live, "kubectl");
        assert!(other.get("data").is_none(), "{other}");
        assert_eq!(other["metadata"]["name"], "s");
    }
}
