//! Reading and writing the `.status` of Flux objects.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::conditions::{conditions_for, Condition, Outcome};
use crate::{now_rfc3339, ObjectKey, StatusError};

/// Annotation `flux reconcile` sets to ask for an immediate reconciliation.
pub const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// Field manager of capstan's status writes.
pub const FIELD_MANAGER: &str = "capstan";

/// One entry of a Kustomization's `.status.inventory.entries`, as kustomize-controller writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// `<namespace>_<name>_<group>_<kind>` (namespace and group empty when not applicable).
    pub id: String,
    /// The object's API version, e.g. `v1`.
    pub v: String,
}

impl InventoryEntry {
    /// Builds the entry of one object: `api_version` is `group/version` or `version`.
    pub fn new(namespace: &str, name: &str, api_version: &str, kind: &str) -> InventoryEntry {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        InventoryEntry {
            id: format!("{namespace}_{name}_{group}_{kind}"),
            v: version.to_string(),
        }
    }
}

/// `.status.artifact` of a source, as source-controller writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStatus {
    /// E.g. `main@sha1:<hex>` or `sha256:<hex>` / chart version.
    pub revision: String,
    /// `<algorithm>:<hex>` of the artifact file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// RFC 3339 time the artifact was produced.
    pub last_update_time: String,
    /// Relative path of the artifact in storage, e.g. `gitrepository/ns/name/<sha>.tar.gz`.
    pub path: String,
    /// HTTP address of the artifact.
    pub url: String,
}

/// What to record on an object after a reconciliation. `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// `.status.observedGeneration` (also each condition's `observedGeneration`). Flux sets it
    /// to `.metadata.generation` when a reconciliation of that generation is done (succeeded or
    /// stalled); kstatus and `flux get` treat a status whose observedGeneration lags the
    /// generation as still in progress.
    pub observed_generation: Option<i64>,
    /// Sets `Ready` / `Reconciling` / `Stalled` through [`conditions_for`].
    pub outcome: Outcome,
    /// `.status.lastAppliedRevision` (Kustomization).
    pub last_applied_revision: Option<String>,
    /// `.status.lastAttemptedRevision` (Kustomization, HelmRelease).
    pub last_attempted_revision: Option<String>,
    /// `.status.lastHandledReconcileAt`: the `reconcile.fluxcd.io/requestedAt` value handled.
    pub last_handled_reconcile_at: Option<String>,
    /// `.status.inventory.entries` (Kustomization).
    pub inventory: Option<Vec<InventoryEntry>>,
    /// `.status.artifact` (sources).
    pub artifact: Option<ArtifactStatus>,
}

impl StatusUpdate {
    /// An update that only sets the conditions of `outcome` for `generation`.
    pub fn new(outcome: Outcome, observed_generation: Option<i64>) -> StatusUpdate {
        StatusUpdate {
            observed_generation,
            outcome,
            last_applied_revision: None,
            last_attempted_revision: None,
            last_handled_reconcile_at: None,
            inventory: None,
            artifact: None,
        }
    }
}

/// The parts of a live object the agent's schedule needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    /// `.metadata.generation`.
    pub generation: Option<i64>,
    /// `.spec.suspend`.
    pub suspend: bool,
    /// The `reconcile.fluxcd.io/requestedAt` annotation.
    pub requested_at: Option<String>,
    /// `.status` (`Value::Null` when absent).
    pub status: Value,
}

impl LiveObject {
    /// The conditions in `.status.conditions` (entries that do not parse are skipped).
    pub fn conditions(&self) -> Vec<Condition> {
        parse_conditions(&self.status)
    }

    /// The `Ready` condition, if any.
    pub fn ready(&self) -> Option<Condition> {
        self.conditions()
            .into_iter()
            .find(|c| c.type_ == crate::conditions::READY)
    }

    /// `.status.observedGeneration`.
    pub fn observed_generation(&self) -> Option<i64> {
        self.status
            .get("observedGeneration")
            .and_then(Value::as_i64)
    }

    /// Ready as Flux's `dependsOn` checks it: `Ready=True` and the status observed the current
    /// generation (when the object has one).
    pub fn is_ready(&self) -> bool {
        let current = match self.generation {
            Some(g) => self.observed_generation() == Some(g),
            None => true,
        };
        current && self.ready().is_some_and(|c| c.status == "True")
    }
}

fn parse_conditions(status: &Value) -> Vec<Condition> {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Which of [`StatusUpdate`]'s optional fields a kind's status has. Fields a kind lacks are
/// not written: Flux's structural schemas would prune them and every write would then look
/// like a change.
#[derive(Debug, Clone, Copy)]
struct Fields {
    applied: bool,
    attempted: bool,
    inventory: bool,
    artifact: bool,
}

fn fields_for(kind: &str) -> Fields {
    match kind {
        "Kustomization" => Fields {
            applied: true,
            attempted: true,
            inventory: true,
            artifact: false,
        },
        // helm-controller v2: lastAttemptedRevision and (since 2026) inventory; no
        // lastAppliedRevision.
        "HelmRelease" => Fields {
            applied: false,
            attempted: true,
            inventory: true,
            artifact: false,
        },
        "GitRepository" | "OCIRepository" | "HelmRepository" | "Bucket" | "HelmChart" => Fields {
            applied: false,
            attempted: false,
            inventory: false,
            artifact: true,
        },
        "Receiver" => Fields {
            applied: false,
            attempted: false,
            inventory: false,
            artifact: false,
        },
        _ => Fields {
            applied: true,
            attempted: true,
            inventory: true,
            artifact: true,
        },
    }
}

/// RFC 7386 merge of `patch` into `target`.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// `status` without the timestamps a rewrite alone would change.
fn without_timestamps(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(cs) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    if let Some(a) = s.get_mut("artifact").and_then(Value::as_object_mut) {
        a.remove("lastUpdateTime");
    }
    if s.is_null() {
        s = Value::Object(Map::new());
    }
    s
}

/// The merge patch for `.status` that records `update` on an object of `kind` whose live
/// status is `live`, or `None` when it would change nothing but timestamps. Pure.
///
/// Only the fields the kind's status has are written (Kustomization: lastAppliedRevision,
/// lastAttemptedRevision, inventory; HelmRelease: lastAttemptedRevision, inventory; sources:
/// artifact; every kind: conditions, observedGeneration, lastHandledReconcileAt).
pub fn status_patch(kind: &str, live: &Value, update: &StatusUpdate, now: &str) -> Option<Value> {
    build_patch(kind, live, update, &Map::new(), now, &|_| false)
}

/// [`status_patch`] plus `extra` top-level status fields (e.g. a HelmRelease's `history`),
/// leaving out the fields for which `skip` is true.
pub(crate) fn build_patch(
    kind: &str,
    live: &Value,
    update: &StatusUpdate,
    extra: &Map<String, Value>,
    now: &str,
    skip: &dyn Fn(&str) -> bool,
) -> Option<Value> {
    let fields = fields_for(kind);
    let previous = parse_conditions(live);
    let conditions = conditions_for(&update.outcome, update.observed_generation, &previous, now);
    let mut patch = Map::new();
    for (k, v) in extra {
        patch.insert(k.clone(), v.clone());
    }
    patch.insert("conditions".into(), json!(conditions));
    if let Some(g) = update.observed_generation {
        patch.insert("observedGeneration".into(), json!(g));
    }
    if let Some(r) = &update.last_handled_reconcile_at {
        patch.insert("lastHandledReconcileAt".into(), json!(r));
    }
    if fields.applied {
        if let Some(r) = &update.last_applied_revision {
            patch.insert("lastAppliedRevision".into(), json!(r));
        }
    }
    if fields.attempted {
        if let Some(r) = &update.last_attempted_revision {
            patch.insert("lastAttemptedRevision".into(), json!(r));
        }
    }
    if fields.inventory {
        if let Some(entries) = &update.inventory {
            patch.insert("inventory".into(), json!({ "entries": entries }));
        }
    }
    if fields.artifact {
        if let Some(a) = &update.artifact {
            let mut a = json!(a);
            // Same artifact: keep the time it was first recorded.
            if let Some(old) = live.get("artifact") {
                if without_timestamps(&json!({"artifact": old}))
                    == without_timestamps(&json!({"artifact": a}))
                {
                    if let Some(t) = old.get("lastUpdateTime") {
                        a["lastUpdateTime"] = t.clone();
                    }
                }
            }
            patch.insert("artifact".into(), a);
        }
    }
    patch.retain(|k, _| k == "conditions" || !skip(k));
    let patch = Value::Object(patch);
    let mut merged = if live.is_object() {
        live.clone()
    } else {
        Value::Object(Map::new())
    };
    merge(&mut merged, &patch);
    if without_timestamps(&merged) == without_timestamps(live) {
        None
    } else {
        Some(patch)
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn live_object(obj: &DynamicObject) -> LiveObject {
    LiveObject {
        generation: obj.metadata.generation,
        suspend: obj
            .data
            .pointer("/spec/suspend")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        requested_at: obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUESTED_AT_ANNOTATION))
            .cloned(),
        status: obj.data.get("status").cloned().unwrap_or(Value::Null),
    }
}

/// Reads and writes the status of Flux objects through the status subresource.
#[derive(Clone)]
pub struct StatusClient {
    client: kube::Client,
}

/// `(apiVersion, kind, field)` triples the API server dropped from a status write (Flux's
/// structural schemas prune fields their version lacks). They are not sent again, so they
/// cannot cause a write on every reconciliation. Process-wide, so that short-lived
/// [`StatusClient`]s share it.
fn pruned_fields() -> &'static Mutex<HashSet<(String, String, String)>> {
    static PRUNED: OnceLock<Mutex<HashSet<(String, String, String)>>> = OnceLock::new();
    PRUNED.get_or_init(|| Mutex::new(HashSet::new()))
}

impl std::fmt::Debug for StatusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusClient").finish_non_exhaustive()
    }
}

/// Attempts of [`StatusClient::write`] when the object changes between read and write.
const WRITE_ATTEMPTS: usize = 4;

impl StatusClient {
    /// A status client on `client`.
    pub fn new(client: kube::Client) -> StatusClient {
        StatusClient { client }
    }

    fn api(&self, key: &ObjectKey) -> Result<Api<DynamicObject>, StatusError> {
        let ar = key.api_resource()?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            &key.namespace,
            &ar,
        ))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<DynamicObject>, StatusError> {
        match self.api(key)?.get_opt(&key.name).await {
            Ok(o) => Ok(o),
            // The CRD itself is missing: same as a missing object.
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(StatusError::Kube {
                object: key.to_string(),
                action: "reading",
                source,
            }),
        }
    }

    /// Reads generation, `spec.suspend`, the requestedAt annotation and `.status`;
    /// `None` when the object (or its CRD) does not exist.
    pub async fn read(&self, key: &ObjectKey) -> Result<Option<LiveObject>, StatusError> {
        Ok(self.get(key).await?.as_ref().map(live_object))
    }

    /// Records `update` on the object: reads the live status, merges the conditions with
    /// [`conditions_for`], and sends a JSON merge patch to `/status` (field manager `capstan`,
    /// guarded by the read's resourceVersion, re-read and retried on conflict) only when
    /// something other than timestamps changes. Fields `update` leaves `None`, fields the
    /// kind's status does not have, and conditions of other types stay as they are.
    ///
    /// Returns whether it wrote. A missing object or CRD gives `Ok(false)`.
    pub async fn write(&self, key: &ObjectKey, update: &StatusUpdate) -> Result<bool, StatusError> {
        self.write_with_extra(key, update, &Map::new()).await
    }

    /// [`StatusClient::write`] plus extra top-level `.status` fields written as given, e.g. a
    /// HelmRelease's `history` (a list of [`HelmSnapshot`], newest first),
    /// `storageNamespace`, `lastAttemptedValuesChecksum`. Extra fields take part in the
    /// change detection; `null` removes a field.
    pub async fn write_with_extra(
        &self,
        key: &ObjectKey,
        update: &StatusUpdate,
        extra: &Map<String, Value>,
    ) -> Result<bool, StatusError> {
        let api = self.api(key)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(obj) = self.get(key).await? else {
                tracing::debug!(object = %key, "status not written: object not found");
                return Ok(false);
            };
            let live = obj.data.get("status").cloned().unwrap_or(Value::Null);
            let pruned = pruned_fields().lock().expect("pruned lock").clone();
            let skip = |field: &str| {
                pruned.contains(&(key.api_version.clone(), key.kind.clone(), field.to_string()))
            };
            let Some(status) = build_patch(&key.kind, &live, update, extra, &now_rfc3339(), &skip)
            else {
                return Ok(false);
            };
            let mut patch = json!({ "status": status });
            if let Some(rv) = &obj.metadata.resource_version {
                patch["metadata"] = json!({ "resourceVersion": rv });
            }
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            };
            match api
                .patch_status(&key.name, &pp, &Patch::Merge(&patch))
                .await
            {
                Ok(written) => {
                    self.note_pruned(key, &patch["status"], written.data.get("status"));
                    return Ok(true);
                }
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(e) if is_conflict(&e) && attempt < WRITE_ATTEMPTS => {
                    tracing::debug!(object = %key, attempt, "status write conflict, retrying");
                }
                Err(source) => {
                    return Err(StatusError::Kube {
                        object: key.to_string(),
                        action: "writing the status of",
                        source,
                    })
                }
            }
        }
    }

    /// Remembers the fields of `sent` that the server did not keep.
    fn note_pruned(&self, key: &ObjectKey, sent: &Value, stored: Option<&Value>) {
        let Some(sent) = sent.as_object() else { return };
        for (field, value) in sent {
            if value.is_null() || field == "conditions" {
                continue;
            }
            if stored.and_then(|s| s.get(field)).is_none() {
                tracing::debug!(object = %key, field, "status field pruned by the CRD schema; not sent again");
                pruned_fields().lock().expect("pruned lock").insert((
                    key.api_version.clone(),
                    key.kind.clone(),
                    field.clone(),
                ));
            }
        }
    }
}

/// One entry of a HelmRelease's `.status.history` (helm-controller v2 `Snapshot`), for
/// [`StatusClient::write_with_extra`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmSnapshot {
    /// Snapshot format version (optional in Flux).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `<algo>:<checksum>` of the release object in storage.
    pub digest: String,
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Release version (revision) in storage.
    pub version: i64,
    /// Helm release status, e.g. `deployed`, `superseded`, `failed`.
    pub status: String,
    /// Chart name.
    pub chart_name: String,
    /// Chart version.
    pub chart_version: String,
    /// `<algo>:<checksum>` of the values.
    pub config_digest: String,
    /// RFC 3339 time of the first deployment.
    pub first_deployed: String,
    /// RFC 3339 time of the last deployment.
    pub last_deployed: String,
    /// RFC 3339 time of the deletion, if deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
    /// Digest of the OCI artifact of the chart, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_digest: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:05:00Z";

    fn ok_update(rev: &str) -> StatusUpdate {
        StatusUpdate {
            last_applied_revision: Some(rev.into()),
            last_attempted_revision: Some(rev.into()),
            inventory: Some(vec![InventoryEntry::new(
                "default",
                "web",
                "apps/v1",
                "Deployment",
            )]),
            ..StatusUpdate::new(
                Outcome::Ready {
                    reason: String::new(),
                    message: format!("Applied revision: {rev}"),
                },
                Some(1),
            )
        }
    }

    fn apply(live: &Value, patch: &Value) -> Value {
        let mut v = live.clone();
        merge(&mut v, patch);
        v
    }

    #[test]
    fn live_object_readiness() {
        let status = apply(
            &Value::Null,
            &status_patch("Kustomization", &Value::Null, &ok_update("a"), T0).unwrap(),
        );
        let mut live = LiveObject {
            generation: Some(1),
            suspend: false,
            requested_at: None,
            status,
        };
        assert!(live.is_ready());
        live.generation = Some(2);
        assert!(!live.is_ready(), "status is for an older generation");
        live.status = Value::Null;
        assert!(!live.is_ready() && live.ready().is_none());
    }

    #[test]
    fn inventory_entry_ids() {
        let e = InventoryEntry::new("default", "web", "apps/v1", "Deployment");
        assert_eq!(
            (e.id.as_str(), e.v.as_str()),
            ("default_web_apps_Deployment", "v1")
        );
        let n = InventoryEntry::new("", "team", "v1", "Namespace");
        assert_eq!((n.id.as_str(), n.v.as_str()), ("_team__Namespace", "v1"));
    }

    #[test]
    fn first_write_then_identical_is_none() {
        let u = ok_update("main@sha1:aaa");
        let p = status_patch("Kustomization", &Value::Null, &u, T0).unwrap();
        assert_eq!(p["lastAppliedRevision"], "main@sha1:aaa");
        assert_eq!(p["observedGeneration"], 1);
        assert_eq!(
            p["inventory"],
            json!({"entries": [{"id": "default_web_apps_Deployment", "v": "v1"}]})
        );
        let live = apply(&Value::Null, &p);
        assert_eq!(status_patch("Kustomization", &live, &u, T1), None);
    }

    #[test]
    fn failure_keeps_last_applied_revision() {
        let live = apply(
            &Value::Null,
            &status_patch("Kustomization", &Value::Null, &ok_update("a"), T0).unwrap(),
        );
        let fail = StatusUpdate {
            last_attempted_revision: Some("b".into()),
            ..StatusUpdate::new(
                Outcome::Failed {
                    reason: BUILD_FAILED.into(),
                    message: "bad".into(),
                    stalled: true,
                },
                Some(2),
            )
        };
        let p = status_patch("Kustomization", &live, &fail, T1).unwrap();
        assert!(p.get("lastAppliedRevision").is_none());
        assert!(p.get("inventory").is_none());
        let after = apply(&live, &p);
        assert_eq!(after["lastAppliedRevision"], "a");
        assert_eq!(after["lastAttemptedRevision"], "b");
        assert_eq!(after["conditions"][0]["status"], "False");
        assert_eq!(after["conditions"][1]["type"], STALLED);
    }

    #[test]
    fn unknown_status_fields_stay() {
        let live = json!({"lastAppliedOriginRevision": "x", "conditions": []});
        let p = status_patch("Kustomization", &live, &ok_update("a"), T0).unwrap();
        assert_eq!(apply(&live, &p)["lastAppliedOriginRevision"], "x");
    }

    #[test]
    fn kind_fields() {
        let u = StatusUpdate {
            artifact: Some(ArtifactStatus {
                revision: "main@sha1:aaa".into(),
                digest: Some("sha256:00".into()),
                last_update_time: T0.into(),
                path: "gitrepository/ns/n/aaa.tar.gz".into(),
                url: "http://x/aaa.tar.gz".into(),
            }),
            ..ok_update("main@sha1:aaa")
        };
        let hr = status_patch("HelmRelease", &Value::Null, &u, T0).unwrap();
        assert!(hr.get("lastAppliedRevision").is_none());
        assert_eq!(
            hr["inventory"]["entries"][0]["id"],
            "default_web_apps_Deployment"
        );
        assert_eq!(hr["lastAttemptedRevision"], "main@sha1:aaa");
        let git = status_patch("GitRepository", &Value::Null, &u, T0).unwrap();
        assert!(git.get("lastAttemptedRevision").is_none());
        assert_eq!(git["artifact"]["lastUpdateTime"], T0);
        assert_eq!(git["artifact"]["digest"], "sha256:00");
        // Same artifact later: no write, and a write for another reason keeps the old time.
        let live = apply(&Value::Null, &git);
        let mut later = u.clone();
        later.artifact.as_mut().unwrap().last_update_time = T1.into();
        assert_eq!(status_patch("GitRepository", &live, &later, T1), None);
        later.last_handled_reconcile_at = Some("now".into());
        let p = status_patch("GitRepository", &live, &later, T1).unwrap();
        assert_eq!(p["artifact"]["lastUpdateTime"], T0);
    }

    #[test]
    fn requested_at_handled_is_a_change() {
        let u = ok_update("a");
        let live = apply(
            &Value::Null,
            &status_patch("Kustomization", &Value::Null, &u, T0).unwrap(),
        );
        let mut v = u.clone();
        v.last_handled_reconcile_at = Some("2026-01-01T00:03:00Z".into());
        let p = status_patch("Kustomization", &live, &v, T1).unwrap();
        assert_eq!(p["lastHandledReconcileAt"], "2026-01-01T00:03:00Z");
        // The unchanged Ready condition keeps its transition time.
        assert_eq!(p["conditions"][0]["lastTransitionTime"], T0);
    }
}
