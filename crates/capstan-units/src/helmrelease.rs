//! The Flux `HelmRelease` spec (helm.toolkit.fluxcd.io v2, v2beta2, v2beta1), parsed
//! strictly, and the parts of it capstan acts on.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration::parse_duration;
use crate::error::{did_you_mean, UnitError};
use crate::spec::{type_name, SourceRef};
use capstan_graph::UnitId;

const FIELDS: &[&str] = &[
    "chart",
    "chartRef",
    "commonMetadata",
    "dependsOn",
    "driftDetection",
    "install",
    "interval",
    "kubeConfig",
    "maxHistory",
    "persistentClient",
    "postRenderers",
    "releaseName",
    "rollback",
    "serviceAccountName",
    "storageNamespace",
    "suspend",
    "targetNamespace",
    "test",
    "timeout",
    "uninstall",
    "upgrade",
    "values",
    "valuesFrom",
];

/// Where the chart comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartSource {
    /// `spec.chart.spec`: a chart name (HelmRepository) or a path (GitRepository,
    /// Bucket) in a source.
    Template {
        chart: String,
        version: Option<String>,
        source: SourceRef,
        values_files: Vec<String>,
    },
    /// `spec.chartRef`: an OCIRepository or HelmChart object.
    Ref(SourceRef),
}

/// A `valuesFrom` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesRef {
    pub kind: String,
    pub name: String,
    pub values_key: String,
    pub target_path: Option<String>,
    pub optional: bool,
}

/// What to do with the chart's `crds/` directory (Flux's install/upgrade `crds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdPolicy {
    Skip,
    Create,
    CreateReplace,
}

/// The parts of a HelmRelease that capstan acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmReleaseSpec {
    pub chart: ChartSource,
    pub release_name: String,
    /// The namespace the release installs into.
    pub target_namespace: String,
    pub values: Value,
    pub values_from: Vec<ValuesRef>,
    pub install_crds: CrdPolicy,
    pub disable_wait: bool,
    /// `spec.install.disableHooks`: no hooks run on install.
    pub install_disable_hooks: bool,
    /// `spec.upgrade.disableHooks`: no hooks run on upgrade.
    pub upgrade_disable_hooks: bool,
    pub test_enable: bool,
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
    pub suspend: bool,
    pub depends_on: Vec<UnitId>,
    pub post_renderer_patches: Vec<Value>,
}

impl HelmReleaseSpec {
    pub fn parse(obj: &Value, id: &UnitId) -> Result<HelmReleaseSpec, UnitError> {
        let err = |field: &str, msg: String| {
            UnitError::new(Some(id.clone()), msg).field(field.to_string())
        };
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let spec = match obj.get("spec") {
            Some(Value::Object(m)) => m,
            _ => return Err(err("spec", "is missing or not a mapping".into())),
        };
        for key in spec.keys() {
            if !FIELDS.contains(&key.as_str()) {
                let mut e = err(
                    &format!("spec.{key}"),
                    format!("unknown field in {api_version} HelmRelease"),
                );
                if let Some(m) = did_you_mean(key, FIELDS.iter().copied()) {
                    e = e.hint(format!("did you mean `spec.{m}`?"));
                }
                return Err(e);
            }
        }
        let str_at =
            |m: &Map<String, Value>, key: &str, field: &str| -> Result<Option<String>, UnitError> {
                match m.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(o) => Err(err(
                        field,
                        format!("must be a string, found {}", type_name(o)),
                    )),
                }
            };
        let source_ref = |v: &Value, field: &str| -> Result<SourceRef, UnitError> {
            let m = v
                .as_object()
                .ok_or_else(|| err(field, "must be a mapping".into()))?;
            Ok(SourceRef {
                kind: str_at(m, "kind", &format!("{field}.kind"))?
                    .ok_or_else(|| err(&format!("{field}.kind"), "is required".into()))?,
                name: str_at(m, "name", &format!("{field}.name"))?
                    .ok_or_else(|| err(&format!("{field}.name"), "is required".into()))?,
                namespace: str_at(m, "namespace", &format!("{field}.namespace"))?
                    .unwrap_or_else(|| id.namespace.clone()),
            })
        };
        let chart = match (spec.get("chart"), spec.get("chartRef")) {
            (Some(c), None) => {
                let cs = c
                    .get("spec")
                    .and_then(Value::as_object)
                    .ok_or_else(|| err("spec.chart.spec", "is required".into()))?;
                ChartSource::Template {
                    chart: str_at(cs, "chart", "spec.chart.spec.chart")?
                        .ok_or_else(|| err("spec.chart.spec.chart", "is required".into()))?,
                    version: str_at(cs, "version", "spec.chart.spec.version")?,
                    source: source_ref(
                        cs.get("sourceRef").ok_or_else(|| {
                            err("spec.chart.spec.sourceRef", "is required".into())
                        })?,
                        "spec.chart.spec.sourceRef",
                    )?,
                    values_files: cs
                        .get("valuesFiles")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            }
            (None, Some(r)) => ChartSource::Ref(source_ref(r, "spec.chartRef")?),
            (Some(_), Some(_)) => {
                return Err(err(
                    "spec.chartRef",
                    "cannot be set together with spec.chart".into(),
                )
                .hint("keep one of spec.chart and spec.chartRef"))
            }
            (None, None) => return Err(err("spec.chart", "is required (or spec.chartRef)".into())),
        };
        let target_namespace = str_at(spec, "targetNamespace", "spec.targetNamespace")?;
        // Flux: the release name defaults to [targetNamespace-]name.
        let release_name = match str_at(spec, "releaseName", "spec.releaseName")? {
            Some(n) => n,
            None => match &target_namespace {
                Some(t) => format!("{t}-{}", id.name),
                None => id.name.clone(),
            },
        };
        let mut values_from = Vec::new();
        for (i, v) in spec
            .get("valuesFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("spec.valuesFrom[{i}]");
            let m = v
                .as_object()
                .ok_or_else(|| err(&field, "must be a mapping".into()))?;
            let kind = str_at(m, "kind", &format!("{field}.kind"))?
                .ok_or_else(|| err(&format!("{field}.kind"), "is required".into()))?;
            if kind != "ConfigMap" && kind != "Secret" {
                return Err(err(
                    &format!("{field}.kind"),
                    format!("must be ConfigMap or Secret, not {kind:?}"),
                ));
            }
            values_from.push(ValuesRef {
                kind,
                name: str_at(m, "name", &format!("{field}.name"))?
                    .ok_or_else(|| err(&format!("{field}.name"), "is required".into()))?,
                values_key: str_at(m, "valuesKey", &format!("{field}.valuesKey"))?
                    .unwrap_or_else(|| "values.yaml".into()),
                target_path: str_at(m, "targetPath", &format!("{field}.targetPath"))?,
                optional: m.get("optional").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        let install_crds = match spec
            .get("install")
            .and_then(|i| i.get("crds"))
            .and_then(Value::as_str)
        {
            None | Some("Create") => CrdPolicy::Create,
            Some("CreateReplace") => CrdPolicy::CreateReplace,
            Some("Skip") => CrdPolicy::Skip,
            Some(o) => {
                return Err(err(
                    "spec.install.crds",
                    format!("must be Skip, Create or CreateReplace, not {o:?}"),
                ))
            }
        };
        let mut depends_on = Vec::new();
        for (i, d) in spec
            .get("dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("spec.dependsOn[{i}]");
            let m = d
                .as_object()
                .ok_or_else(|| err(&field, "must be a mapping".into()))?;
            let name = str_at(m, "name", &format!("{field}.name"))?
                .ok_or_else(|| err(&format!("{field}.name"), "is required".into()))?;
            let namespace = str_at(m, "namespace", &format!("{field}.namespace"))?
                .unwrap_or_else(|| id.namespace.clone());
            // capstan extension: `kind` lets a HelmRelease wait for a Kustomization.
            let kind = str_at(m, "kind", &format!("{field}.kind"))?
                .unwrap_or_else(|| "HelmRelease".into());
            depends_on.push(UnitId::new(kind, namespace, name));
        }
        let duration = |key: &str| -> Result<Option<Duration>, UnitError> {
            match str_at(spec, key, &format!("spec.{key}"))? {
                None => Ok(None),
                Some(s) => parse_duration(&s)
                    .map(Some)
                    .map_err(|e| err(&format!("spec.{key}"), e)),
            }
        };
        let post_renderer_patches = spec
            .get("postRenderers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.pointer("/kustomize/patches").and_then(Value::as_array))
            .flatten()
            .cloned()
            .collect();
        Ok(HelmReleaseSpec {
            chart,
            release_name,
            target_namespace: target_namespace.unwrap_or_else(|| id.namespace.clone()),
            values: spec.get("values").cloned().unwrap_or(Value::Null),
            values_from,
            install_crds,
            disable_wait: spec
                .get("install")
                .and_then(|i| i.get("disableWait"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            install_disable_hooks: spec
                .get("install")
                .and_then(|i| i.get("disableHooks"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            upgrade_disable_hooks: spec
                .get("upgrade")
                .and_then(|i| i.get("disableHooks"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            test_enable: spec
                .get("test")
                .and_then(|t| t.get("enable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            timeout: duration("timeout")?,
            interval: duration("interval")?,
            suspend: spec
                .get("suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            depends_on,
            post_renderer_patches,
        })
    }
}

/// Deep-merge `from` into `into` (maps merge, everything else replaces), as Helm merges
/// values files.
pub fn merge_values(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_values(existing, v)
                    }
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Set `value` at a dotted `path` (Helm's `--set` path syntax, without list indexes).
pub fn set_path(into: &mut Value, path: &str, value: Value) {
    let mut cur = into;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().unwrap();
        if i == parts.len() - 1 {
            m.insert(p.to_string(), value);
            return;
        }
        cur = m
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_v2_helmrelease() {
        let id = UnitId::new("HelmRelease", "flux-system", "podinfo");
        let obj = json!({"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease","spec":{
            "interval":"5m","targetNamespace":"apps","chart":{"spec":{"chart":"./charts/podinfo","sourceRef":{"kind":"GitRepository","name":"flux-system"}}},
            "values":{"replicaCount":2},"valuesFrom":[{"kind":"ConfigMap","name":"vals"}],
            "install":{"crds":"CreateReplace","disableHooks":true},"dependsOn":[{"name":"infra","kind":"Kustomization"}]}});
        let s = HelmReleaseSpec::parse(&obj, &id).unwrap();
        assert_eq!(s.release_name, "apps-podinfo");
        assert_eq!(s.target_namespace, "apps");
        assert_eq!(s.install_crds, CrdPolicy::CreateReplace);
        assert!(s.install_disable_hooks && !s.upgrade_disable_hooks);
        assert_eq!(s.values_from[0].values_key, "values.yaml");
        assert_eq!(
            s.depends_on,
            vec![UnitId::new("Kustomization", "flux-system", "infra")]
        );
        assert!(
            matches!(s.chart, ChartSource::Template { ref chart, .. } if chart == "./charts/podinfo")
        );
    }

    #[test]
    fn unknown_fields_and_missing_chart() {
        let id = UnitId::new("HelmRelease", "ns", "x");
        let e = HelmReleaseSpec::parse(&json!({"spec":{"chart":{"spec":{"chart":"c","sourceRef":{"kind":"HelmRepository","name":"r"}}},"value":{}}}), &id).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `spec.values`?"));
        let e = HelmReleaseSpec::parse(&json!({"spec":{"values":{}}}), &id).unwrap_err();
        assert_eq!(e.location.field.as_deref(), Some("spec.chart"));
    }

    #[test]
    fn values_merge_and_target_paths() {
        let mut v = json!({"a":{"b":1,"c":2},"l":[1]});
        merge_values(&mut v, &json!({"a":{"c":3},"l":[2]}));
        assert_eq!(v, json!({"a":{"b":1,"c":3},"l":[2]}));
        set_path(&mut v, "x.y", json!("z"));
        assert_eq!(v["x"]["y"], "z");
    }
}
