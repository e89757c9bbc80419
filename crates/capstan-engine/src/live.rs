//! The live half: reading `substituteFrom` objects from the cluster, and drivers that
//! apply or diff units with [`capstan_apply::Applier`].

use std::time::Duration;

use capstan_apply::{Applier, ApplyOptions, ApplyUnit, ObjectRef, UnitPlan, UnitRef, UnitResult};
use capstan_units::{ClusterLookup, RenderedUnit};
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::Value;

use crate::execute::UnitDriver;

/// Flux's default timeout when neither `timeout` nor `interval` is set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// `substituteFrom` lookups against the live cluster. Must be used from a
/// multi-threaded tokio runtime (it blocks one worker while the request runs).
pub struct KubeLookup {
    client: kube::Client,
}

impl KubeLookup {
    pub fn new(client: kube::Client) -> Self {
        KubeLookup { client }
    }
}

impl ClusterLookup for KubeLookup {
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, String> {
        let plural = match kind {
            "ConfigMap" => "configmaps",
            "Secret" => "secrets",
            other => return Err(format!("cannot look up kind {other}")),
        };
        let ar = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let handle = tokio::runtime::Handle::current();
        // Errors never include the object's content, so no secret value can leak here.
        let obj = tokio::task::block_in_place(|| handle.block_on(api.get_opt(name)))
            .map_err(|e| e.to_string())?;
        Ok(obj.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
    }
}

/// What the apply layer needs to know about a rendered unit.
pub fn apply_unit(r: &RenderedUnit) -> ApplyUnit {
    let spec = &r.unit.spec;
    let id = UnitRef::new(
        r.unit.id.kind.clone(),
        r.unit.id.namespace.clone(),
        r.unit.id.name.clone(),
    );
    let default_ns = spec
        .target_namespace
        .clone()
        .unwrap_or_else(|| r.unit.id.namespace.clone());
    let mut unit = ApplyUnit::new(id, r.objects.clone());
    unit.prune = spec.prune;
    unit.wait = spec.wait;
    unit.force = spec.force;
    unit.timeout = spec.timeout.or(spec.interval).unwrap_or(DEFAULT_TIMEOUT);
    unit.target_namespace = spec.target_namespace.clone();
    unit.health_checks = spec
        .health_checks
        .iter()
        .map(|h| {
            ObjectRef::new(
                &h.api_version,
                &h.kind,
                h.namespace.as_deref().unwrap_or(&default_ns),
                &h.name,
            )
        })
        .collect();
    unit
}

/// Applies units.
pub struct ApplyDriver<'a> {
    pub applier: &'a Applier,
    pub options: ApplyOptions,
}

impl UnitDriver for ApplyDriver<'_> {
    type Output = UnitResult;
    async fn run(&self, unit: &RenderedUnit) -> Result<UnitResult, String> {
        self.applier
            .apply(&apply_unit(unit), &self.options)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Plans units with server-side dry runs (changes nothing).
pub struct DiffDriver<'a> {
    pub applier: &'a Applier,
}

impl UnitDriver for DiffDriver<'_> {
    type Output = UnitPlan;
    async fn run(&self, unit: &RenderedUnit) -> Result<UnitPlan, String> {
        self.applier
            .plan(&apply_unit(unit))
            .await
            .map_err(|e| e.to_string())
    }
}
