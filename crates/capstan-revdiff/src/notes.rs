//! Semantic notes on a changed object: image changes per container, fields Kubernetes
//! treats as immutable ("will be replaced"), CRD changes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Something a reviewer should not miss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Note {
    /// A container's image changed (tag or digest).
    Image {
        container: String,
        from: String,
        to: String,
    },
    /// A container was added or removed from a pod template.
    Container {
        container: String,
        change: String,
        image: String,
    },
    /// A HelmRelease's chart version changed.
    ChartVersion {
        chart: String,
        from: String,
        to: String,
    },
    /// A field the API server refuses to update changed: the object is replaced
    /// (deleted and created again; Flux needs `force: true`, otherwise the apply fails).
    Replace {
        field: String,
        reason: String,
    },
    /// A CustomResourceDefinition was added, removed or changed.
    Crd {
        crd: String,
        change: String,
    },
    /// The unit rendered at the base and fails at the target.
    NewlyFails {
        error: String,
    },
    /// The unit fails at both revisions.
    StillFails {
        error: String,
    },
    /// The unit failed at the base and renders at the target.
    NowRenders {
        error: String,
    },
    /// A dependency edge appeared or disappeared.
    DependencyAdded {
        on: String,
        reason: String,
    },
    DependencyRemoved {
        on: String,
        reason: String,
    },
    /// The unit replaces another whose output was the same.
    Renamed {
        from: String,
    },
    /// Objects the unit no longer renders, which prune deletes (or leaves, prune off).
    Prune {
        objects: usize,
        pruned: bool,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Image { container, from, to } => {
                write!(f, "image of container {container}: {from} -> {to}")
            }
            Note::Container {
                container,
                change,
                image,
            } => write!(f, "container {container} {change} ({image})"),
            Note::ChartVersion { chart, from, to } => {
                write!(f, "chart {chart}: {from} -> {to}")
            }
            Note::Replace { field, reason } => {
                write!(f, "{field} changed, which is immutable: will be replaced ({reason})")
            }
            Note::Crd { crd, change } => write!(f, "CRD {crd}: {change}"),
            Note::NewlyFails { error } => {
                write!(f, "fails to render: {error}; nothing will be pruned")
            }
            Note::StillFails { error } => write!(f, "still fails to render: {error}"),
            Note::NowRenders { error } => write!(
                f,
                "renders again (it failed at the base: {error}); its objects are compared to nothing"
            ),
            Note::DependencyAdded { on, reason } => {
                write!(f, "now waits for {on} ({reason})")
            }
            Note::DependencyRemoved { on, reason } => {
                write!(f, "no longer waits for {on} ({reason})")
            }
            Note::Renamed { from } => write!(
                f,
                "renamed from {from}, output unchanged (the old unit is removed: with prune, its objects are deleted and then created again by this one)"
            ),
            Note::Prune { objects, pruned } => {
                if *pruned {
                    write!(f, "{objects} object(s) will be deleted (prune)")
                } else {
                    write!(f, "{objects} object(s) no longer rendered are left in the cluster (prune is off)")
                }
            }
        }
    }
}

impl Note {
    /// Does this note warn (rather than inform)?
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Note::Replace { .. }
                | Note::NewlyFails { .. }
                | Note::StillFails { .. }
                | Note::Crd { .. }
                | Note::Prune { pruned: true, .. }
        )
    }
}

/// Where a kind keeps its pod spec.
fn pod_spec(obj: &Value) -> Option<&Value> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Pod" => obj.get("spec"),
        "CronJob" => obj.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => obj.pointer("/spec/template/spec"),
    }
}

fn containers(obj: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(spec) = pod_spec(obj) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                out.push((name, image));
            }
        }
    }
    out
}

/// Image changes, container by container.
pub fn image_notes(before: &Value, after: &Value) -> Vec<Note> {
    let b = containers(before);
    let a = containers(after);
    let mut out = Vec::new();
    for (name, image) in &a {
        match b.iter().find(|(n, _)| n == name) {
            Some((_, old)) if old != image => out.push(Note::Image {
                container: name.clone(),
                from: old.clone(),
                to: image.clone(),
            }),
            Some(_) => {}
            None if !b.is_empty() || pod_spec(before).is_some() => out.push(Note::Container {
                container: name.clone(),
                change: "added".into(),
                image: image.clone(),
            }),
            None => {}
        }
    }
    for (name, image) in &b {
        if !a.iter().any(|(n, _)| n == name) && pod_spec(after).is_some() {
            out.push(Note::Container {
                container: name.clone(),
                change: "removed".into(),
                image: image.clone(),
            });
        }
    }
    out
}

fn differs(before: &Value, after: &Value, pointer: &str) -> bool {
    before.pointer(pointer) != after.pointer(pointer)
}

/// Fields of `spec` other than `keep` that differ.
fn spec_fields_other_than(before: &Value, after: &Value, keep: &[&str]) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let a = after
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.dedup();
    let mut out: Vec<String> = keys
        .into_iter()
        .filter(|k| !keep.contains(&k.as_str()) && b.get(*k) != a.get(*k))
        .map(|k| format!("spec.{k}"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Fields Kubernetes refuses to update, by kind (apps/v1, batch/v1, core/v1 validation).
pub fn immutable_notes(before: &Value, after: &Value) -> Vec<Note> {
    let kind = after.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    let mut push = |field: &str, reason: &str| {
        out.push(Note::Replace {
            field: field.to_string(),
            reason: reason.to_string(),
        })
    };
    match kind {
        "Deployment" | "DaemonSet" | "ReplicaSet" if differs(before, after, "/spec/selector") => {
            push(
                "spec.selector",
                "a workload's selector is immutable in apps/v1",
            );
        }
        "StatefulSet" => {
            // Kubernetes: "updates to statefulset spec for fields other than 'replicas',
            // 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit',
            // 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".
            let keep = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            for f in spec_fields_other_than(before, after, &keep) {
                push(
                    &f,
                    "a StatefulSet only updates replicas, template, updateStrategy and a few more",
                );
            }
        }
        "Job" => {
            if differs(before, after, "/spec/template") {
                push("spec.template", "a Job's pod template is immutable");
            }
            if differs(before, after, "/spec/selector") {
                push("spec.selector", "a Job's selector is immutable");
            }
        }
        "Service" => {
            let set = |v: &Value, p: &str| {
                v.pointer(p)
                    .is_some_and(|x| !x.is_null() && x != "" && x != &Value::Array(vec![]))
            };
            for (p, f) in [
                ("/spec/clusterIP", "spec.clusterIP"),
                ("/spec/clusterIPs", "spec.clusterIPs"),
            ] {
                if differs(before, after, p) && set(before, p) && set(after, p) {
                    push(f, "a Service's cluster IP cannot change once allocated");
                }
            }
        }
        "PersistentVolumeClaim" => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(r) = s.pointer_mut("/resources").and_then(Value::as_object_mut) {
                    r.remove("requests");
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeAttributesClassName");
                    if m.get("resources")
                        .is_some_and(|r| r.as_object().is_some_and(|r| r.is_empty()))
                    {
                        m.remove("resources");
                    }
                }
                s
            };
            if strip(before) != strip(after) {
                push("spec", "a PersistentVolumeClaim's spec is immutable after creation, except resources.requests (expansion)");
            }
        }
        "StorageClass" => {
            for f in [
                "provisioner",
                "parameters",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if differs(before, after, &format!("/{f}")) {
                    push(f, "a StorageClass's provisioner, parameters, reclaimPolicy and volumeBindingMode are immutable");
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" if differs(before, after, "/roleRef") => {
            push("roleRef", "a binding's roleRef cannot change");
        }
        "ConfigMap" | "Secret" if before.get("immutable") == Some(&Value::Bool(true)) => {
            for f in ["data", "binaryData", "stringData"] {
                if differs(before, after, &format!("/{f}")) {
                    push(f, "the object is marked immutable: true");
                }
            }
        }
        _ => {}
    }
    out
}

fn crd_name(crd: &Value) -> String {
    let g = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let k = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{k}.{g}")
}

fn crd_versions(crd: &Value) -> Vec<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            let mut s = name.to_string();
            if v.get("storage") == Some(&Value::Bool(true)) {
                s.push_str(" (storage)");
            }
            if v.get("served") == Some(&Value::Bool(false)) {
                s.push_str(" (not served)");
            }
            s
        })
        .collect()
}

/// A note on a CRD that is added (`before` None), removed (`after` None) or changed.
pub fn crd_note(before: Option<&Value>, after: Option<&Value>) -> Option<Note> {
    let is_crd =
        |v: &Value| v.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition");
    match (before, after) {
        (None, Some(a)) if is_crd(a) => Some(Note::Crd {
            crd: crd_name(a),
            change: format!("added, versions {}", crd_versions(a).join(", ")),
        }),
        (Some(b), None) if is_crd(b) => Some(Note::Crd {
            crd: crd_name(b),
            change: "removed: the API server deletes every object of this kind".into(),
        }),
        (Some(b), Some(a)) if is_crd(a) => {
            let (vb, va) = (crd_versions(b), crd_versions(a));
            let change = if vb != va {
                format!("versions {} -> {}", vb.join(", "), va.join(", "))
            } else if differs(b, a, "/spec/scope") {
                "scope changed (immutable: will be replaced, which deletes every object of this kind)".into()
            } else {
                "schema or settings changed".into()
            };
            Some(Note::Crd {
                crd: crd_name(a),
                change,
            })
        }
        _ => None,
    }
}

/// The `helm.sh/chart` labels (`name-version`) of a unit's objects.
pub fn chart_labels(objects: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            o.pointer("/metadata/labels/helm.sh~1chart")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(image: &str, sel: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": sel}},
                "template": {"spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn deployment_image_change_per_container() {
        let n = image_notes(&deploy("nginx:1.25", "a"), &deploy("nginx:1.26", "a"));
        assert_eq!(
            n,
            vec![Note::Image {
                container: "web".into(),
                from: "nginx:1.25".into(),
                to: "nginx:1.26".into()
            }]
        );
    }

    #[test]
    fn cronjob_images_are_read_from_the_job_template() {
        let cj = |i: &str| json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": i}]}}}}}});
        assert_eq!(image_notes(&cj("a@sha256:1"), &cj("a@sha256:2")).len(), 1);
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let n = immutable_notes(&deploy("x", "a"), &deploy("x", "b"));
        assert!(matches!(&n[..], [Note::Replace { field, .. }] if field == "spec.selector"));
        assert!(immutable_notes(&deploy("x", "a"), &deploy("y", "a")).is_empty());
    }

    #[test]
    fn statefulset_fields_other_than_template_are_immutable() {
        let ss = |svc: &str, r: u32| json!({"kind": "StatefulSet", "spec": {"serviceName": svc, "replicas": r}});
        assert!(immutable_notes(&ss("a", 1), &ss("a", 3)).is_empty());
        let n = immutable_notes(&ss("a", 1), &ss("b", 1));
        assert!(matches!(&n[..], [Note::Replace { field, .. }] if field == "spec.serviceName"));
    }

    #[test]
    fn job_template_is_immutable() {
        let job = |i: &str| json!({"kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "c", "image": i}]}}}});
        let n = immutable_notes(&job("a"), &job("b"));
        assert!(matches!(&n[..], [Note::Replace { field, .. }] if field == "spec.template"));
    }

    #[test]
    fn service_cluster_ip_is_immutable_once_set() {
        let svc = |ip: &str| json!({"kind": "Service", "spec": {"clusterIP": ip}});
        assert_eq!(immutable_notes(&svc("10.0.0.1"), &svc("10.0.0.2")).len(), 1);
        assert!(immutable_notes(&svc(""), &svc("10.0.0.2")).is_empty());
    }

    #[test]
    fn pvc_spec_is_immutable_except_requests() {
        let pvc = |size: &str, sc: &str| json!({"kind": "PersistentVolumeClaim", "spec": {"storageClassName": sc, "resources": {"requests": {"storage": size}}}});
        assert!(immutable_notes(&pvc("1Gi", "a"), &pvc("2Gi", "a")).is_empty());
        assert_eq!(immutable_notes(&pvc("1Gi", "a"), &pvc("1Gi", "b")).len(), 1);
    }

    #[test]
    fn immutable_configmap_data_and_binding_roleref() {
        let cm = |v: &str| json!({"kind": "ConfigMap", "immutable": true, "data": {"k": v}});
        assert_eq!(immutable_notes(&cm("a"), &cm("b")).len(), 1);
        let rb = |r: &str| json!({"kind": "RoleBinding", "roleRef": {"name": r}});
        assert_eq!(immutable_notes(&rb("a"), &rb("b")).len(), 1);
    }

    #[test]
    fn crd_changes_name_the_versions() {
        let crd = |vs: Value| json!({"kind": "CustomResourceDefinition", "spec": {"group": "x.io", "names": {"kind": "W"}, "versions": vs}});
        let a = crd(json!([{"name": "v1", "served": true, "storage": true}]));
        let b = crd(
            json!([{"name": "v1", "served": true, "storage": false}, {"name": "v2", "served": true, "storage": true}]),
        );
        let n = crd_note(Some(&a), Some(&b)).unwrap();
        assert_eq!(
            n.to_string(),
            "CRD W.x.io: versions v1 (storage) -> v1, v2 (storage)"
        );
        assert!(crd_note(Some(&a), None)
            .unwrap()
            .to_string()
            .contains("removed"));
    }
}
