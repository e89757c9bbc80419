//! The Flux `Kustomization` spec (kustomize.toolkit.fluxcd.io v1, v1beta2, v1beta1),
//! parsed strictly: unknown fields are errors with a "did you mean" hint.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration::parse_duration;
use crate::error::{did_you_mean, UnitError};
use capstan_graph::UnitId;

pub const KUSTOMIZE_GROUP: &str = "kustomize.toolkit.fluxcd.io";
pub const HELM_GROUP: &str = "helm.toolkit.fluxcd.io";
pub const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";

const V1_FIELDS: &[&str] = &[
    "commonMetadata",
    "components",
    "decryption",
    "deletionPolicy",
    "dependsOn",
    "force",
    "healthCheckExprs",
    "healthChecks",
    "ignoreMissingComponents",
    "images",
    "interval",
    "kubeConfig",
    "namePrefix",
    "nameSuffix",
    "patches",
    "path",
    "postBuild",
    "prune",
    "retryInterval",
    "serviceAccountName",
    "sourceRef",
    "suspend",
    "targetNamespace",
    "timeout",
    "wait",
];
const BETA_FIELDS: &[&str] = &["patchesStrategicMerge", "patchesJson6902", "validation"];

/// A reference to a source object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// A `substituteFrom` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubstituteRef {
    pub kind: String,
    pub name: String,
    pub optional: bool,
}

/// A `healthChecks` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

/// The parts of a Flux Kustomization that capstan acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct KustomizationSpec {
    pub api_version: String,
    pub path: String,
    pub source_ref: Option<SourceRef>,
    pub depends_on: Vec<UnitId>,
    pub target_namespace: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    /// `patches` entries (`{patch, target}`), passed to kustomize unchanged.
    pub patches: Vec<Value>,
    /// v1beta2 `patchesStrategicMerge` (objects).
    pub patches_strategic_merge: Vec<Value>,
    /// v1beta2 `patchesJson6902` (`{patch: [ops], target}`).
    pub patches_json6902: Vec<Value>,
    pub images: Vec<Value>,
    pub components: Vec<String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub substitute: BTreeMap<String, String>,
    pub substitute_from: Vec<SubstituteRef>,
    pub suspend: bool,
    pub prune: bool,
    pub wait: bool,
    pub force: bool,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retry_interval: Option<Duration>,
    pub health_checks: Vec<HealthCheckRef>,
    pub service_account_name: Option<String>,
    /// `spec.kubeConfig.secretRef.name` (and key), for remote clusters.
    pub kube_config_secret: Option<(String, Option<String>)>,
}

impl KustomizationSpec {
    /// Parse a Flux Kustomization object (already known to be one).
    pub fn parse(obj: &Value, id: &UnitId) -> Result<KustomizationSpec, UnitError> {
        let err = |field: &str, msg: String| {
            UnitError::new(Some(id.clone()), msg).field(field.to_string())
        };
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = api_version.rsplit('/').next().unwrap_or("");
        let spec = match obj.get("spec") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(err("spec", "must be a mapping".into())),
            None => return Err(err("spec", "is missing".into())),
        };
        let beta = version.starts_with("v1beta");
        for key in spec.keys() {
            let known =
                V1_FIELDS.contains(&key.as_str()) || (beta && BETA_FIELDS.contains(&key.as_str()));
            if !known {
                let mut e = err(
                    &format!("spec.{key}"),
                    format!("unknown field in {api_version} Kustomization"),
                );
                let cands = V1_FIELDS
                    .iter()
                    .chain(if beta { BETA_FIELDS } else { &[] })
                    .copied();
                if let Some(m) = did_you_mean(key, cands) {
                    e = e.hint(format!("did you mean `spec.{m}`?"));
                } else if BETA_FIELDS.contains(&key.as_str()) {
                    e = e.hint(format!(
                        "`{key}` was removed in {KUSTOMIZE_GROUP}/v1; use `spec.patches`"
                    ));
                }
                return Err(e);
            }
        }
        let s = Fields { map: spec, id };
        let path = s.string("path")?.unwrap_or_default();
        let source_ref = match spec.get("sourceRef") {
            None => None,
            Some(Value::Object(m)) => {
                let f = Fields { map: m, id };
                Some(SourceRef {
                    kind: f
                        .string("kind")?
                        .ok_or_else(|| err("spec.sourceRef.kind", "is required".into()))?,
                    name: f
                        .string("name")?
                        .ok_or_else(|| err("spec.sourceRef.name", "is required".into()))?,
                    namespace: f
                        .string("namespace")?
                        .unwrap_or_else(|| id.namespace.clone()),
                })
            }
            Some(_) => return Err(err("spec.sourceRef", "must be a mapping".into())),
        };
        let mut depends_on = Vec::new();
        for (i, d) in s.list("dependsOn")?.iter().enumerate() {
            let field = format!("spec.dependsOn[{i}]");
            let m = d.as_object().ok_or_else(|| {
                err(
                    &field,
                    "must be a mapping with `name` (and optional `namespace`)".into(),
                )
            })?;
            let f = Fields { map: m, id };
            let name = f
                .string("name")?
                .ok_or_else(|| err(&format!("{field}.name"), "is required".into()))?;
            let namespace = f
                .string("namespace")?
                .unwrap_or_else(|| id.namespace.clone());
            // capstan extension: `kind: HelmRelease` lets a Kustomization wait for a release.
            let kind = f.string("kind")?.unwrap_or_else(|| id.kind.clone());
            depends_on.push(UnitId::new(kind, namespace, name));
        }
        let mut components = Vec::new();
        for (i, c) in s.list("components")?.iter().enumerate() {
            components.push(
                c.as_str()
                    .ok_or_else(|| {
                        err(
                            &format!("spec.components[{i}]"),
                            "must be a string path".into(),
                        )
                    })?
                    .to_string(),
            );
        }
        let (common_labels, common_annotations) = match spec.get("commonMetadata") {
            None => Default::default(),
            Some(Value::Object(m)) => (
                string_map(m.get("labels"), id, "spec.commonMetadata.labels")?,
                string_map(m.get("annotations"), id, "spec.commonMetadata.annotations")?,
            ),
            Some(_) => return Err(err("spec.commonMetadata", "must be a mapping".into())),
        };
        let (substitute, substitute_from) = match spec.get("postBuild") {
            None => Default::default(),
            Some(Value::Object(m)) => {
                for key in m.keys() {
                    if key != "substitute" && key != "substituteFrom" {
                        let mut e = err(&format!("spec.postBuild.{key}"), "unknown field".into());
                        if let Some(h) = did_you_mean(key, ["substitute", "substituteFrom"]) {
                            e = e.hint(format!("did you mean `spec.postBuild.{h}`?"));
                        }
                        return Err(e);
                    }
                }
                let subst = string_map(m.get("substitute"), id, "spec.postBuild.substitute")?;
                let mut from = Vec::new();
                if let Some(list) = m.get("substituteFrom") {
                    let list = list.as_array().ok_or_else(|| {
                        err("spec.postBuild.substituteFrom", "must be a list".into())
                    })?;
                    for (i, r) in list.iter().enumerate() {
                        let field = format!("spec.postBuild.substituteFrom[{i}]");
                        let rm = r
                            .as_object()
                            .ok_or_else(|| err(&field, "must be a mapping".into()))?;
                        let f = Fields { map: rm, id };
                        let kind = f.string("kind")?.ok_or_else(|| {
                            err(
                                &format!("{field}.kind"),
                                "is required (ConfigMap or Secret)".into(),
                            )
                        })?;
                        if kind != "ConfigMap" && kind != "Secret" {
                            return Err(err(
                                &format!("{field}.kind"),
                                format!("must be ConfigMap or Secret, not {kind:?}"),
                            ));
                        }
                        from.push(SubstituteRef {
                            kind,
                            name: f.string("name")?.ok_or_else(|| {
                                err(&format!("{field}.name"), "is required".into())
                            })?,
                            optional: f.bool("optional")?.unwrap_or(false),
                        });
                    }
                }
                (subst, from)
            }
            Some(_) => return Err(err("spec.postBuild", "must be a mapping".into())),
        };
        capstan_subst::validate_names(substitute.keys())
            .map_err(|e| err("spec.postBuild.substitute", e.to_string()))?;
        let mut health_checks = Vec::new();
        for (i, h) in s.list("healthChecks")?.iter().enumerate() {
            let field = format!("spec.healthChecks[{i}]");
            let m = h
                .as_object()
                .ok_or_else(|| err(&field, "must be a mapping".into()))?;
            let f = Fields { map: m, id };
            health_checks.push(HealthCheckRef {
                api_version: f.string("apiVersion")?.unwrap_or_default(),
                kind: f
                    .string("kind")?
                    .ok_or_else(|| err(&format!("{field}.kind"), "is required".into()))?,
                name: f
                    .string("name")?
                    .ok_or_else(|| err(&format!("{field}.name"), "is required".into()))?,
                namespace: f.string("namespace")?,
            });
        }
        let prune = match s.bool("prune")? {
            Some(p) => p,
            None if version == "v1" => return Err(err("spec.prune", "is required in kustomize.toolkit.fluxcd.io/v1".into()).hint("add `prune: true` to delete objects removed from the repository, or `prune: false`")),
            None => false,
        };
        let kube_config_secret = match spec.get("kubeConfig") {
            None => None,
            Some(kc) => {
                let name = kc
                    .pointer("/secretRef/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err("spec.kubeConfig.secretRef.name", "is required".into()))?;
                let key = kc
                    .pointer("/secretRef/key")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Some((name.to_string(), key))
            }
        };
        Ok(KustomizationSpec {
            api_version,
            path,
            source_ref,
            depends_on,
            target_namespace: s.string("targetNamespace")?,
            name_prefix: s.string("namePrefix")?,
            name_suffix: s.string("nameSuffix")?,
            patches: s.list("patches")?.to_vec(),
            patches_strategic_merge: s.list("patchesStrategicMerge")?.to_vec(),
            patches_json6902: s.list("patchesJson6902")?.to_vec(),
            images: s.list("images")?.to_vec(),
            components,
            common_labels,
            common_annotations,
            substitute,
            substitute_from,
            suspend: s.bool("suspend")?.unwrap_or(false),
            prune,
            wait: s.bool("wait")?.unwrap_or(false),
            force: s.bool("force")?.unwrap_or(false),
            interval: s.duration("interval")?,
            timeout: s.duration("timeout")?,
            retry_interval: s.duration("retryInterval")?,
            health_checks,
            service_account_name: s.string("serviceAccountName")?,
            kube_config_secret,
        })
    }

    /// Does post-build substitution run for this unit? (Flux runs it only when some
    /// variables are declared.)
    pub fn substitutes(&self) -> bool {
        !self.substitute.is_empty() || !self.substitute_from.is_empty()
    }
}

struct Fields<'a> {
    map: &'a Map<String, Value>,
    id: &'a UnitId,
}

impl Fields<'_> {
    fn err(&self, key: &str, msg: &str) -> UnitError {
        UnitError::new(Some(self.id.clone()), msg.to_string()).field(format!("spec.{key}"))
    }
    fn string(&self, key: &str) -> Result<Option<String>, UnitError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(
                key,
                &format!("must be a string, found {}", type_name(other)),
            )),
        }
    }
    fn bool(&self, key: &str) -> Result<Option<bool>, UnitError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(
                key,
                &format!("must be true or false, found {}", type_name(other)),
            )),
        }
    }
    fn list(&self, key: &str) -> Result<&[Value], UnitError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => {
                Err(self.err(key, &format!("must be a list, found {}", type_name(other))))
            }
        }
    }
    fn duration(&self, key: &str) -> Result<Option<Duration>, UnitError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => parse_duration(&s).map(Some).map_err(|e| {
                self.err(key, &e)
                    .hint("use a Go duration such as 30s, 5m or 1h")
            }),
        }
    }
}

fn string_map(
    v: Option<&Value>,
    id: &UnitId,
    field: &str,
) -> Result<BTreeMap<String, String>, UnitError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(UnitError::new(
                            Some(id.clone()),
                            format!("must be a string, found {}", type_name(other)),
                        )
                        .field(format!("{field}.{k}")));
                    }
                };
                out.insert(k.clone(), s);
            }
        }
        Some(other) => {
            return Err(UnitError::new(
                Some(id.clone()),
                format!("must be a mapping, found {}", type_name(other)),
            )
            .field(field.to_string()))
        }
    }
    Ok(out)
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> UnitId {
        UnitId::new("Kustomization", "flux-system", "apps")
    }

    #[test]
    fn parses_a_v1_kustomization() {
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization","metadata":{"name":"apps","namespace":"flux-system"},
            "spec":{"interval":"10m","path":"./apps/staging","prune":true,"wait":true,"timeout":"5m",
                "sourceRef":{"kind":"GitRepository","name":"flux-system"},
                "dependsOn":[{"name":"infra-configs"}],
                "postBuild":{"substitute":{"cluster_env":"staging","replicas":2},"substituteFrom":[{"kind":"ConfigMap","name":"cluster-vars"}]}}});
        let s = KustomizationSpec::parse(&obj, &id()).unwrap();
        assert_eq!(s.path, "./apps/staging");
        assert_eq!(
            s.depends_on,
            vec![UnitId::new("Kustomization", "flux-system", "infra-configs")]
        );
        assert_eq!(s.substitute["replicas"], "2");
        assert_eq!(s.timeout, Some(Duration::from_secs(300)));
        assert_eq!(s.source_ref.unwrap().namespace, "flux-system");
        assert!(s.prune && s.wait);
    }

    #[test]
    fn unknown_fields_have_hints() {
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization","spec":{"path":"./x","prune":true,"dependOn":[]}});
        let e = KustomizationSpec::parse(&obj, &id()).unwrap_err();
        assert_eq!(e.location.field.as_deref(), Some("spec.dependOn"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `spec.dependsOn`?"));
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization","spec":{"path":"./x","prune":true,"patchesStrategicMerge":[]}});
        let e = KustomizationSpec::parse(&obj, &id()).unwrap_err();
        assert!(e.hint.as_deref().unwrap().contains("removed"));
    }

    #[test]
    fn type_errors_name_the_field() {
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization","spec":{"path":"./x","prune":"yes"}});
        let e = KustomizationSpec::parse(&obj, &id()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Kustomization flux-system/apps: spec.prune: must be true or false, found a string"
        );
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization","spec":{"path":"./x","prune":true,"timeout":"5"}});
        assert!(KustomizationSpec::parse(&obj, &id())
            .unwrap_err()
            .to_string()
            .contains("spec.timeout"));
    }

    #[test]
    fn v1_requires_prune() {
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization","spec":{"path":"./x"}});
        assert!(KustomizationSpec::parse(&obj, &id()).is_err());
        let obj = json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1beta2","kind":"Kustomization","spec":{"path":"./x"}});
        assert!(!KustomizationSpec::parse(&obj, &id()).unwrap().prune);
    }
}
