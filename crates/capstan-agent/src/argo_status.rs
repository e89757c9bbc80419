//! Argo CD-compatible status on the Application objects capstan reconciles, so that
//! `kubectl get applications` (and Argo CD's UI, when it runs) shows Synced/Healthy.
//!
//! After an Application unit ran, its Application object is applied to the cluster the
//! round drives (server-side, field manager `capstan`; Argo CD's finalizers are left out:
//! capstan honours them from the repository, and no controller would remove them) and its
//! `status` written: `sync.status` (Synced when the apply succeeded and every object is
//! applied), `health.status` (from the health capstan waited for: Current -> Healthy,
//! InProgress -> Progressing, Failed -> Degraded, NotFound -> Missing), `operationState`
//! (phase Succeeded/Failed, message, times), `resources`, `summary.images`. Nothing is
//! written when the Application CRD is not installed (Argo CD itself is never required).
//! Earlier sync-wave units (`ApplicationWave`) have no object of their own.
//!
//! [`collect_removed`]: an Application capstan wrote that is gone from the repository (after
//! a render without errors) is uninstalled as Argo CD's resources finalizer asks: with the
//! finalizer its units' objects are deleted on its destination cluster, without it they
//! are kept; then the Application object goes.

use capstan_apply::{Action, ApplyOptions, HealthStatus, UnitRef, UnitResult};
use capstan_engine::argo::reader::sync::{self, ResourceStatus, SyncOutcome};
use capstan_engine::round::{Target, Targets};
use capstan_engine::ClusterRender;
use capstan_graph::UnitId;
use capstan_units::RenderedUnit;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{json, Value};

/// The field manager of capstan's Application writes.
pub const FIELD_MANAGER: &str = "capstan";

fn now() -> String {
    capstan_status::now_rfc3339()
}

/// The Application status of a unit's outcome (pure: see the module docs).
pub fn status_of(unit: &RenderedUnit, result: Result<&UnitResult, &str>, revision: &str) -> Value {
    let at = now();
    let mut resources = Vec::new();
    let (phase, message) = match result {
        Ok(r) => {
            for o in &r.objects {
                let health = r
                    .health
                    .iter()
                    .find(|(h, _)| h == &o.object)
                    .map(|(_, h)| match h.status {
                        HealthStatus::Current => "Healthy",
                        HealthStatus::InProgress => "Progressing",
                        HealthStatus::Failed => "Degraded",
                        HealthStatus::NotFound => "Missing",
                        _ => "Progressing",
                    })
                    .map(str::to_string);
                let synced = matches!(
                    o.action,
                    Action::Created
                        | Action::Configured
                        | Action::Unchanged
                        | Action::Replaced
                        | Action::Healthy
                );
                let api_version = if o.object.group.is_empty() {
                    o.object.version.clone()
                } else {
                    format!("{}/{}", o.object.group, o.object.version)
                };
                resources.push(ResourceStatus {
                    api_version,
                    kind: o.object.kind.clone(),
                    namespace: o.object.namespace.clone(),
                    name: o.object.name.clone(),
                    sync: if synced { "Synced" } else { "OutOfSync" }.into(),
                    health,
                    hook: false,
                });
            }
            (
                "Succeeded".to_string(),
                "successfully synced (all tasks run)".to_string(),
            )
        }
        Err(m) => ("Failed".to_string(), m.to_string()),
    };
    let outcome = SyncOutcome {
        revision: revision.to_string(),
        phase,
        message,
        started_at: at.clone(),
        finished_at: at,
        resources,
    };
    sync::application_status(&unit.unit.object, &outcome, &sync::images_of(&unit.objects))
}

/// Apply the Application object of `unit` and write its status (see the module docs).
/// `Ok` without writing anything for units that are not Applications, and when the
/// Application CRD is not installed.
pub async fn write(
    client: &kube::Client,
    unit: &RenderedUnit,
    result: Result<&UnitResult, &str>,
    revision: &str,
) -> Result<(), String> {
    if unit.unit.id.kind != capstan_engine::argo::APPLICATION
        || !capstan_engine::argo::is_argo_unit(&unit.unit)
    {
        return Ok(());
    }
    let version = unit
        .unit
        .object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|a| a.split_once('/'))
        .map_or("v1alpha1", |(_, v)| v);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", version, "Application"),
        "applications",
    );
    let ns = &unit.unit.id.namespace;
    let name = &unit.unit.id.name;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj = capstan_engine::argo::application_object(&unit.unit);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(name, &pp, &Patch::Apply(&obj)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(format!("writing Application {ns}/{name}: {e}")),
    }
    let status = json!({"status": status_of(unit, result, revision)});
    // Argo CD's CRD has no status subresource: the status is part of the object. When a
    // CRD declares one, the subresource takes it.
    let merge = PatchParams::default();
    api.patch(name, &merge, &Patch::Merge(&status))
        .await
        .map_err(|e| format!("writing the status of Application {ns}/{name}: {e}"))?;
    let _ = api.patch_status(name, &merge, &Patch::Merge(&status)).await;
    Ok(())
}

fn application_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", version, "Application"),
        "applications",
    )
}

/// Uninstall Applications capstan wrote that the repository no longer has (see the module
/// docs). Nothing happens after a render with errors (nothing is pruned on a guess) or
/// without the Application CRD. Returns each removed Application with the number of
/// objects deleted, or why it could not be (it is retried on the next run).
pub async fn collect_removed(
    client: &kube::Client,
    targets: &Targets,
    render: &ClusterRender,
) -> Vec<(UnitId, Result<usize, String>)> {
    let mut out = Vec::new();
    if render.has_errors() {
        return out;
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &application_resource("v1alpha1"));
    let list = match api
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=capstan"))
        .await
    {
        Ok(l) => l,
        Err(_) => return out,
    };
    let current: std::collections::BTreeSet<&UnitId> =
        render.units.units.iter().map(|u| u.id()).collect();
    for app in list.items {
        let ns = app.metadata.namespace.clone().unwrap_or_default();
        let name = app.metadata.name.clone().unwrap_or_default();
        let id = UnitId::new(capstan_engine::argo::APPLICATION, ns.clone(), name.clone());
        if current.contains(&id) {
            continue;
        }
        let written = match serde_json::to_value(&app) {
            Ok(v) => v,
            Err(e) => {
                out.push((id, Err(e.to_string())));
                continue;
            }
        };
        let mut deleted = 0;
        let mut failed = None;
        for unit in capstan_engine::argo::removed_units(&written) {
            if !capstan_engine::argo::deletes_on_removal(&unit) {
                continue;
            }
            let r = match targets.applier(&Target::of(&unit)).await {
                Ok(a) => a
                    .delete_unit(
                        &UnitRef::new(
                            unit.id.kind.clone(),
                            unit.id.namespace.clone(),
                            unit.id.name.clone(),
                        ),
                        &ApplyOptions::default(),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match r {
                Ok(r) => deleted += r.objects.len(),
                Err(e) => failed = Some(format!("{}: {e}", unit.id)),
            }
        }
        if let Some(e) = failed {
            out.push((id, Err(e)));
            continue;
        }
        let ns_api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &application_resource("v1alpha1"));
        match ns_api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => out.push((id, Ok(deleted))),
            Err(kube::Error::Api(s)) if s.code == 404 => out.push((id, Ok(deleted))),
            Err(e) => out.push((id, Err(format!("deleting the Application: {e}")))),
        }
    }
    out
}
