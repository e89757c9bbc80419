//! Flux's CustomResourceDefinitions, installed by capstan when Flux's own are absent.

use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::StatusError;

/// One Flux kind: enough to write its CRD.
struct FluxKind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    /// Served versions; the first is the storage version.
    versions: &'static [&'static str],
    /// Sources print their `.spec.url` first, as Flux's CRDs do.
    url_column: bool,
    component: &'static str,
}

const KINDS: &[FluxKind] = &[
    FluxKind {
        group: "kustomize.toolkit.fluxcd.io",
        kind: "Kustomization",
        plural: "kustomizations",
        singular: "kustomization",
        short_names: &["ks"],
        versions: &["v1", "v1beta2"],
        url_column: false,
        component: "kustomize-controller",
    },
    FluxKind {
        group: "helm.toolkit.fluxcd.io",
        kind: "HelmRelease",
        plural: "helmreleases",
        singular: "helmrelease",
        short_names: &["hr"],
        versions: &["v2", "v2beta1", "v2beta2"],
        url_column: false,
        component: "helm-controller",
    },
    FluxKind {
        group: "source.toolkit.fluxcd.io",
        kind: "GitRepository",
        plural: "gitrepositories",
        singular: "gitrepository",
        short_names: &["gitrepo"],
        versions: &["v1", "v1beta2"],
        url_column: true,
        component: "source-controller",
    },
    FluxKind {
        group: "source.toolkit.fluxcd.io",
        kind: "OCIRepository",
        plural: "ocirepositories",
        singular: "ocirepository",
        short_names: &["ocirepo"],
        versions: &["v1", "v1beta2"],
        url_column: true,
        component: "source-controller",
    },
    FluxKind {
        group: "source.toolkit.fluxcd.io",
        kind: "HelmRepository",
        plural: "helmrepositories",
        singular: "helmrepository",
        short_names: &["helmrepo"],
        versions: &["v1", "v1beta2"],
        url_column: true,
        component: "source-controller",
    },
    FluxKind {
        group: "notification.toolkit.fluxcd.io",
        kind: "Receiver",
        plural: "receivers",
        singular: "receiver",
        short_names: &[],
        versions: &["v1"],
        url_column: false,
        component: "notification-controller",
    },
];

fn printer_columns(url: bool) -> Vec<Value> {
    let mut cols = Vec::new();
    if url {
        cols.push(json!({"jsonPath": ".spec.url", "name": "URL", "type": "string"}));
    }
    cols.push(json!({"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}));
    cols.push(json!({
        "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status",
        "name": "Ready", "type": "string"
    }));
    cols.push(json!({
        "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message",
        "name": "Status", "type": "string"
    }));
    cols
}

fn schema() -> Value {
    json!({
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }
    })
}

fn crd(k: &FluxKind) -> Value {
    let versions: Vec<Value> = k
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut version = json!({
                "name": v,
                "served": true,
                "storage": i == 0,
                "schema": schema(),
                "subresources": {"status": {}},
                "additionalPrinterColumns": printer_columns(k.url_column),
            });
            if i != 0 {
                version["deprecated"] = json!(true);
                version["deprecationWarning"] = json!(format!(
                    "{}/{} {} is deprecated, upgrade to {}",
                    k.group, v, k.kind, k.versions[0]
                ));
            }
            version
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", k.plural, k.group),
            "labels": {
                "app.kubernetes.io/managed-by": "capstan",
                "app.kubernetes.io/component": k.component,
            },
        },
        "spec": {
            "group": k.group,
            "names": {
                "kind": k.kind,
                "listKind": format!("{}List", k.kind),
                "plural": k.plural,
                "singular": k.singular,
                "shortNames": k.short_names,
            },
            "scope": "Namespaced",
            "versions": versions,
        }
    })
}

/// The `apiextensions.k8s.io/v1` CRDs capstan installs when Flux's are absent:
/// Kustomization (v1 storage, v1beta2), HelmRelease (v2 storage, v2beta1, v2beta2),
/// GitRepository / OCIRepository / HelmRepository (v1 storage, v1beta2) and Receiver (v1).
///
/// Spec and status keep unknown fields (`x-kubernetes-preserve-unknown-fields`), the schema
/// is the same in every version (conversion `None`), the status subresource is on, and the
/// short names (`ks`, `hr`, `gitrepo`, `ocirepo`, `helmrepo`) and printer columns
/// (`URL` for sources, `Age`, `Ready`, `Status`) are Flux's. Labelled
/// `app.kubernetes.io/managed-by: capstan`.
pub fn flux_crds() -> Vec<Value> {
    KINDS.iter().map(crd).collect()
}

fn crd_api(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    Api::all_with(client.clone(), &ar)
}

fn is_established(obj: &DynamicObject) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// How long [`ensure_crds`] waits for a created CRD to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates the CRDs of [`flux_crds`] that are missing and waits until they are Established.
///
/// Existing CRDs are never modified (Flux may own them). Returns the names of the CRDs it
/// created (empty when all were present).
pub async fn ensure_crds(client: &kube::Client) -> Result<Vec<String>, StatusError> {
    let api = crd_api(client);
    let mut created = Vec::new();
    for crd in flux_crds() {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let crd_err = |action: &'static str, source: kube::Error| StatusError::Crd {
            name: name.clone(),
            action,
            source,
        };
        if api
            .get_opt(&name)
            .await
            .map_err(|e| crd_err("reading", e))?
            .is_some()
        {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(crd).map_err(|e| StatusError::Invalid {
            object: format!("CustomResourceDefinition/{name}"),
            message: e.to_string(),
        })?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {
                tracing::info!(crd = %name, "created CustomResourceDefinition");
                created.push(name);
            }
            // Created concurrently by someone else (another agent, Flux): not ours.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(crd_err("creating", e)),
        }
    }
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    for name in &created {
        loop {
            let obj = api.get_opt(name).await.map_err(|source| StatusError::Crd {
                name: name.clone(),
                action: "reading",
                source,
            })?;
            if obj.as_ref().is_some_and(is_established) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StatusError::NotEstablished {
                    name: name.clone(),
                    waited: ESTABLISH_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_crds_with_flux_names_versions_and_columns() {
        let crds = flux_crds();
        let names: Vec<&str> = crds
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "helmreleases.helm.toolkit.fluxcd.io",
                "gitrepositories.source.toolkit.fluxcd.io",
                "ocirepositories.source.toolkit.fluxcd.io",
                "helmrepositories.source.toolkit.fluxcd.io",
                "receivers.notification.toolkit.fluxcd.io",
            ]
        );
        for c in &crds {
            let versions = c["spec"]["versions"].as_array().unwrap();
            assert_eq!(
                versions.iter().filter(|v| v["storage"] == true).count(),
                1,
                "{c}"
            );
            let first = &versions[0];
            for v in versions {
                assert_eq!(v["schema"], first["schema"]);
                assert_eq!(
                    v["additionalPrinterColumns"],
                    first["additionalPrinterColumns"]
                );
                assert_eq!(v["subresources"], json!({"status": {}}));
            }
            let cols: Vec<&str> = first["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            assert!(cols.ends_with(&["Age", "Ready", "Status"]), "{cols:?}");
        }
        let ks = &crds[0];
        assert_eq!(ks["spec"]["names"]["shortNames"], json!(["ks"]));
        assert_eq!(ks["spec"]["versions"][0]["name"], "v1");
        let hr = &crds[1];
        assert_eq!(hr["spec"]["names"]["shortNames"], json!(["hr"]));
        let hr_versions: Vec<&str> = hr["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(hr_versions, ["v2", "v2beta1", "v2beta2"]);
        assert_eq!(crds[2]["spec"]["names"]["shortNames"], json!(["gitrepo"]));
        assert_eq!(
            crds[2]["spec"]["versions"][0]["additionalPrinterColumns"][0]["jsonPath"],
            ".spec.url"
        );
    }
}
