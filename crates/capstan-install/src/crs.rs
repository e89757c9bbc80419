//! Cluster API packaging: manifests as a `ClusterResourceSet` (strategy `Reconcile`) whose
//! resources are `addons.cluster.x-k8s.io/resource-set` Secrets, each under 1 MiB.
//!
//! Objects are put in apply order (Namespaces and CRDs first, kustomize's kind order) and
//! cut into chunks of multi-document YAML; each chunk is one Secret (`<name>-<n>`, key
//! `resources.yaml`). The ClusterResourceSet lists the Secrets in order, so the
//! ClusterResourceSet controller applies the chunks in that order.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};

use crate::InstallError;

/// The Secret type the ClusterResourceSet controller reads.
pub const RESOURCE_SET_SECRET_TYPE: &str = "addons.cluster.x-k8s.io/resource-set";
/// The ClusterResourceSet's apiVersion.
pub const CRS_API_VERSION: &str = "addons.cluster.x-k8s.io/v1beta1";
/// The Kubernetes limit on a Secret's size.
pub const SECRET_LIMIT: usize = 1 << 20;
/// Raw YAML per Secret: base64 makes it 4/3 larger (932 KiB at most), leaving room for
/// the Secret's metadata below [`SECRET_LIMIT`].
pub const DEFAULT_CHUNK_BYTES: usize = 700 * 1024;
/// The data key of each resource-set Secret.
pub const DATA_KEY: &str = "resources.yaml";

/// What to package.
#[derive(Debug, Clone)]
pub struct CrsOptions {
    /// Name of the ClusterResourceSet (and prefix of its Secrets).
    pub name: String,
    /// Namespace of the ClusterResourceSet and its Secrets (the Clusters' namespace).
    pub namespace: String,
    /// `spec.clusterSelector.matchLabels` (Cluster API requires a non-empty selector).
    pub cluster_selector: BTreeMap<String, String>,
    /// Raw YAML bytes per Secret (default [`DEFAULT_CHUNK_BYTES`]).
    pub chunk_bytes: usize,
}

impl CrsOptions {
    /// Options with the default chunk size.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        cluster_selector: BTreeMap<String, String>,
    ) -> Self {
        CrsOptions {
            name: name.into(),
            namespace: namespace.into(),
            cluster_selector,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

/// Parses `key=value` selectors (`--cluster-selector`).
pub fn parse_selector(pairs: &[String]) -> Result<BTreeMap<String, String>, InstallError> {
    let mut out = BTreeMap::new();
    for p in pairs {
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(InstallError::InvalidArgument(format!(
                    "--cluster-selector {p:?}: expected key=value (a label of the Cluster objects, e.g. capstan.io/agent=enabled)"
                )))
            }
        }
    }
    Ok(out)
}

fn describe(o: &Value) -> String {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("?");
    match o.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{} {}/{}", s("/kind"), ns, s("/metadata/name")),
        None => format!("{} {}", s("/kind"), s("/metadata/name")),
    }
}

/// Renders one object as a YAML document.
pub fn to_yaml_document(o: &Value) -> String {
    capstan_yaml::emit_document(&capstan_yaml::from_json(o))
}

/// Packages `objects` as a ClusterResourceSet and its Secrets (Secrets first, then the
/// ClusterResourceSet).
pub fn package(opts: &CrsOptions, objects: &[Value]) -> Result<Vec<Value>, InstallError> {
    if opts.cluster_selector.is_empty() {
        return Err(InstallError::InvalidArgument(
            "a ClusterResourceSet needs --cluster-selector key=value: Cluster API refuses an empty clusterSelector".into(),
        ));
    }
    if objects.is_empty() {
        return Err(InstallError::InvalidArgument(
            "nothing to package: the inputs hold no objects".into(),
        ));
    }
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| {
        capstan_apply::objects::kind_rank(o.get("kind").and_then(Value::as_str).unwrap_or(""))
    });
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for o in ordered {
        if o.get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            || o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(InstallError::InvalidArgument(format!(
                "cannot package {}: an object needs kind and metadata.name",
                describe(o)
            )));
        }
        let doc = to_yaml_document(o);
        if doc.len() + 4 > opts.chunk_bytes {
            return Err(InstallError::TooLarge {
                object: describe(o),
                bytes: doc.len(),
                limit: opts.chunk_bytes,
            });
        }
        if !current.is_empty() && current.len() + 4 + doc.len() > opts.chunk_bytes {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("---\n");
        }
        current.push_str(&doc);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let mut resources = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let name = format!("{}-{i}", opts.name);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": opts.namespace,
                "labels": {crate::LABEL_MANAGED_BY: "capstan", "capstan.io/cluster-resource-set": opts.name},
            },
            "type": RESOURCE_SET_SECRET_TYPE,
            "data": {DATA_KEY: b64.encode(chunk)},
        });
        let size = serde_json::to_vec(&secret)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size >= SECRET_LIMIT {
            return Err(InstallError::TooLarge {
                object: format!("Secret {}/{name}", opts.namespace),
                bytes: size,
                limit: SECRET_LIMIT,
            });
        }
        resources.push(json!({"kind": "Secret", "name": name}));
        out.push(secret);
    }
    out.push(json!({
        "apiVersion": CRS_API_VERSION,
        "kind": "ClusterResourceSet",
        "metadata": {
            "name": opts.name,
            "namespace": opts.namespace,
            "labels": {crate::LABEL_MANAGED_BY: "capstan"},
        },
        "spec": {
            "strategy": "Reconcile",
            "clusterSelector": {"matchLabels": opts.cluster_selector},
            "resources": resources,
        },
    }));
    Ok(out)
}

/// Reads back the objects a packaged resource-set Secret holds (what the
/// ClusterResourceSet controller applies).
pub fn unpack(secret: &Value) -> Result<Vec<Value>, InstallError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let Some(data) = secret.get("data").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (key, v) in data {
        let bytes = v.as_str().and_then(|s| b64.decode(s).ok()).ok_or_else(|| {
            InstallError::InvalidArgument(format!("{}: data.{key} is not base64", describe(secret)))
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            InstallError::InvalidArgument(format!("{}: data.{key} is not UTF-8", describe(secret)))
        })?;
        let docs = capstan_yaml::parse_documents(&text, key).map_err(|e| {
            InstallError::InvalidArgument(format!("{}: data.{key}: {e}", describe(secret)))
        })?;
        out.extend(
            docs.iter()
                .map(capstan_yaml::to_json)
                .filter(|v| !v.is_null()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> BTreeMap<String, String> {
        BTreeMap::from([("capstan.io/agent".to_string(), "enabled".to_string())])
    }

    fn cm(name: &str, bytes: usize) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"x": "y".repeat(bytes)}})
    }

    #[test]
    fn crs_has_reconcile_strategy_selector_and_resource_set_secrets_in_order() {
        let objs = vec![
            cm("a", 10),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
        ];
        let out = package(&CrsOptions::new("agent", "default", selector()), &objs).unwrap();
        assert_eq!(out.len(), 2);
        let crs = &out[1];
        assert_eq!(crs["kind"], "ClusterResourceSet");
        assert_eq!(crs["apiVersion"], CRS_API_VERSION);
        assert_eq!(crs["spec"]["strategy"], "Reconcile");
        assert_eq!(
            crs["spec"]["clusterSelector"]["matchLabels"]["capstan.io/agent"],
            "enabled"
        );
        assert_eq!(
            crs["spec"]["resources"],
            json!([{"kind": "Secret", "name": "agent-0"}])
        );
        assert_eq!(out[0]["type"], RESOURCE_SET_SECRET_TYPE);
        assert_eq!(out[0]["metadata"]["namespace"], "default");
        let back = unpack(&out[0]).unwrap();
        // Namespaces first (apply order).
        assert_eq!(back[0]["kind"], "Namespace");
        assert_eq!(back[1], objs[0]);
    }

    #[test]
    fn crs_splits_into_secrets_under_one_mebibyte() {
        let objs: Vec<Value> = (0..6).map(|i| cm(&format!("c{i}"), 300 * 1024)).collect();
        let out = package(&CrsOptions::new("big", "default", selector()), &objs).unwrap();
        let secrets: Vec<&Value> = out.iter().filter(|o| o["kind"] == "Secret").collect();
        assert_eq!(secrets.len(), 3, "two 300 KiB objects per 700 KiB chunk");
        let mut all = Vec::new();
        for s in &secrets {
            assert!(serde_json::to_vec(s).unwrap().len() < SECRET_LIMIT);
            all.extend(unpack(s).unwrap());
        }
        assert_eq!(all, objs, "every object once, in order");
        let names: Vec<&Value> = out.last().unwrap()["spec"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["name"])
            .collect();
        assert_eq!(names, [&json!("big-0"), &json!("big-1"), &json!("big-2")]);
    }

    #[test]
    fn crs_errors_empty_selector_oversized_object_and_nameless_object() {
        let e = package(
            &CrsOptions::new("x", "default", BTreeMap::new()),
            &[cm("a", 1)],
        )
        .unwrap_err();
        assert!(e.to_string().contains("--cluster-selector"), "{e}");
        let e = package(
            &CrsOptions::new("x", "default", selector()),
            &[cm("huge", 800 * 1024)],
        )
        .unwrap_err();
        assert!(e.to_string().contains("ConfigMap default/huge"), "{e}");
        let e = package(
            &CrsOptions::new("x", "default", selector()),
            &[json!({"kind": "ConfigMap"})],
        )
        .unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
        let e = package(&CrsOptions::new("x", "default", selector()), &[]).unwrap_err();
        assert!(e.to_string().contains("nothing to package"), "{e}");
        assert!(parse_selector(&["novalue".into()]).is_err());
        assert_eq!(
            parse_selector(&["a=b".into(), "c=".into()]).unwrap().len(),
            2
        );
    }
}
