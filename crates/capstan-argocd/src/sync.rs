//! How Argo CD syncs an Application, as capstan's apply does it (pure part).
//!
//! * [`SyncPolicy::of`]: `spec.syncPolicy` (`automated.prune/selfHeal/allowEmpty`,
//!   `syncOptions`, `managedNamespaceMetadata`, `retry`), `spec.ignoreDifferences` and the
//!   resources finalizer, parsed strictly: an unknown sync option is an error naming it.
//! * [`ResourceOptions::of`]: the per-resource `argocd.argoproj.io/sync-options` and
//!   `compare-options` annotations (and Helm's `helm.sh/resource-policy: keep`).
//! * [`hook_of`] and [`sync_wave`]: resource hooks (`argocd.argoproj.io/hook`,
//!   `hook-delete-policy`) and Helm hooks mapped as Argo CD maps them, sync waves.
//! * [`plan_sync`]: an Application's objects as Argo CD's sync runs them: PreSync hooks,
//!   then the Sync phase wave by wave (wave N after wave N-1 is healthy), then PostSync;
//!   SyncFail, PreDelete and PostDelete hooks kept apart; `Skip` left out.
//! * [`IgnoreRule`]: `ignoreDifferences` (`jsonPointers`, a documented subset of
//!   `jqPathExpressions`, `managedFieldsManagers`) applied to objects before they are
//!   compared, and to desired objects before they are applied (`RespectIgnoreDifferences`).
//! * [`application_status`]: the `status` Argo CD writes on an Application (`sync`,
//!   `health`, `operationState`, `resources`, `summary`).
//! * [`depends_on`]: capstan's `capstan.io/depends-on` annotation on an Application.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::{ArgoError, ErrorKind};
use crate::string_map;

/// The finalizer asking for the cascading deletion of an Application's resources.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// Its background-deletion variant.
pub const RESOURCES_FINALIZER_BACKGROUND: &str =
    "resources-finalizer.argocd.argoproj.io/background";
/// Annotation of a resource or child Application: its sync wave.
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// Annotation of a resource: its hook types.
pub const HOOK: &str = "argocd.argoproj.io/hook";
/// Annotation of a hook: when it is deleted.
pub const HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
/// Annotation of a resource: its sync options.
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
/// Annotation of a resource: its compare options.
pub const COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";
/// capstan's annotation on an Application: the units it waits for.
pub const DEPENDS_ON: &str = "capstan.io/depends-on";
/// capstan's annotation keeping an object out of prune.
pub const CAPSTAN_PRUNE: &str = "capstan.io/prune";

/// `spec.syncPolicy.automated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Automated {
    pub prune: bool,
    pub self_heal: bool,
    pub allow_empty: bool,
}

/// `spec.syncPolicy.retry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// `limit` (Argo CD: negative is unlimited; default 5... when retry is given).
    pub limit: i64,
    pub backoff_duration: String,
    pub backoff_factor: i64,
    pub backoff_max_duration: String,
}

/// Everything of an Application that decides how it is applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncPolicy {
    /// `None`: manual sync (capstan still applies when asked, without pruning).
    pub automated: Option<Automated>,
    pub create_namespace: bool,
    /// Labels and annotations of the namespace `CreateNamespace=true` creates.
    pub managed_namespace_labels: BTreeMap<String, String>,
    pub managed_namespace_annotations: BTreeMap<String, String>,
    /// `ServerSideApply=true` (capstan always applies server-side; recorded for status).
    pub server_side_apply: bool,
    /// `Replace=true`: objects are replaced (capstan: recreated when an update is refused).
    pub replace: bool,
    /// `Prune=false` at the application level keeps every resource.
    pub prune_disabled: bool,
    pub prune_last: bool,
    pub apply_out_of_sync_only: bool,
    pub skip_dry_run_on_missing_resource: bool,
    /// `Validate=false`.
    pub validate: bool,
    pub respect_ignore_differences: bool,
    pub fail_on_shared_resource: bool,
    /// `PrunePropagationPolicy=foreground|background|orphan` (default foreground).
    pub prune_propagation_policy: String,
    pub retry: Option<Retry>,
    pub ignore_differences: Vec<IgnoreRule>,
    /// The Application carries the resources finalizer: deleting it deletes its resources.
    pub resources_finalizer: bool,
}

impl SyncPolicy {
    /// Does a sync of this Application prune (delete resources no longer rendered)?
    /// Argo CD prunes when `automated.prune` is set (a manual sync prunes only when asked).
    pub fn prunes(&self) -> bool {
        !self.prune_disabled && self.automated.is_some_and(|a| a.prune)
    }

    /// Parse an Application's `spec.syncPolicy`, `spec.ignoreDifferences` and finalizers.
    pub fn of(app: &Value) -> Result<SyncPolicy, ArgoError> {
        let mut p = SyncPolicy {
            validate: true,
            prune_propagation_policy: "foreground".into(),
            ..SyncPolicy::default()
        };
        let finalizers = app
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        p.resources_finalizer = finalizers.iter().filter_map(Value::as_str).any(|f| {
            f == RESOURCES_FINALIZER
                || f == RESOURCES_FINALIZER_BACKGROUND
                || f.starts_with("resources-finalizer.argocd.argoproj.io/")
        });
        if let Some(rules) = app.pointer("/spec/ignoreDifferences") {
            let Some(rules) = rules.as_array() else {
                return Err(ArgoError::new(
                    ErrorKind::BadInput,
                    "spec.ignoreDifferences",
                    "must be a list",
                ));
            };
            for (i, r) in rules.iter().enumerate() {
                p.ignore_differences.push(IgnoreRule::parse(
                    r,
                    &format!("spec.ignoreDifferences[{i}]"),
                )?);
            }
        }
        let Some(sp) = app.pointer("/spec/syncPolicy") else {
            return Ok(p);
        };
        if sp.is_null() {
            return Ok(p);
        }
        let Some(sp) = sp.as_object() else {
            return Err(ArgoError::new(
                ErrorKind::BadInput,
                "spec.syncPolicy",
                "must be a mapping",
            ));
        };
        if let Some(a) = sp.get("automated") {
            let flag = |k: &str| -> Result<bool, ArgoError> {
                match a.get(k) {
                    None | Some(Value::Null) => Ok(false),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(ArgoError::new(
                        ErrorKind::BadInput,
                        format!("spec.syncPolicy.automated.{k}"),
                        "must be true or false",
                    )),
                }
            };
            // `automated: {enabled: false}` (Argo CD 3) turns automation off.
            let enabled = !matches!(a.get("enabled"), Some(Value::Bool(false)));
            if enabled && (a.is_object() || a.is_null()) {
                p.automated = Some(Automated {
                    prune: flag("prune")?,
                    self_heal: flag("selfHeal")?,
                    allow_empty: flag("allowEmpty")?,
                });
            }
        }
        if let Some(opts) = sp.get("syncOptions") {
            let Some(opts) = opts.as_array() else {
                return Err(ArgoError::new(
                    ErrorKind::BadInput,
                    "spec.syncPolicy.syncOptions",
                    "must be a list of KEY=VALUE strings",
                ));
            };
            for (i, o) in opts.iter().enumerate() {
                let field = format!("spec.syncPolicy.syncOptions[{i}]");
                let Some(s) = o.as_str() else {
                    return Err(ArgoError::new(
                        ErrorKind::BadInput,
                        field,
                        "must be a KEY=VALUE string",
                    ));
                };
                p.set_option(s.trim(), &field)?;
            }
        }
        if let Some(m) = sp.get("managedNamespaceMetadata") {
            p.managed_namespace_labels = string_map(m.get("labels"));
            p.managed_namespace_annotations = string_map(m.get("annotations"));
        }
        if let Some(r) = sp.get("retry").filter(|r| !r.is_null()) {
            let b = r.get("backoff");
            let s = |v: Option<&Value>, d: &str| v.and_then(Value::as_str).unwrap_or(d).to_string();
            p.retry = Some(Retry {
                limit: r.get("limit").and_then(Value::as_i64).unwrap_or(5),
                backoff_duration: s(b.and_then(|b| b.get("duration")), "5s"),
                backoff_factor: b
                    .and_then(|b| b.get("factor"))
                    .and_then(Value::as_i64)
                    .unwrap_or(2),
                backoff_max_duration: s(b.and_then(|b| b.get("maxDuration")), "3m"),
            });
        }
        Ok(p)
    }

    fn set_option(&mut self, s: &str, field: &str) -> Result<(), ArgoError> {
        let Some((k, v)) = s.split_once('=') else {
            return Err(ArgoError::new(
                ErrorKind::BadInput,
                field,
                format!("sync option {s:?} is not KEY=VALUE"),
            ));
        };
        let on = v.eq_ignore_ascii_case("true");
        match k {
            "CreateNamespace" => self.create_namespace = on,
            "ServerSideApply" => self.server_side_apply = on,
            "Replace" => self.replace = on,
            "Prune" => self.prune_disabled = v.eq_ignore_ascii_case("false"),
            "PruneLast" => self.prune_last = on,
            "ApplyOutOfSyncOnly" => self.apply_out_of_sync_only = on,
            "SkipDryRunOnMissingResource" => self.skip_dry_run_on_missing_resource = on,
            "Validate" => self.validate = !v.eq_ignore_ascii_case("false"),
            "RespectIgnoreDifferences" => self.respect_ignore_differences = on,
            "FailOnSharedResource" => self.fail_on_shared_resource = on,
            "PrunePropagationPolicy" => {
                let v = v.to_ascii_lowercase();
                if !matches!(v.as_str(), "foreground" | "background" | "orphan") {
                    return Err(ArgoError::new(
                        ErrorKind::BadInput,
                        field,
                        format!("PrunePropagationPolicy={v}: not foreground, background or orphan"),
                    ));
                }
                self.prune_propagation_policy = v;
            }
            // Accepted, with nothing to do in capstan (always server-side, no client-side
            // apply to migrate from; Delete applies to resources).
            "ClientSideApplyMigration" | "Delete" => {}
            _ => {
                return Err(ArgoError::new(
                    ErrorKind::BadInput,
                    field,
                    format!("unknown sync option {k:?}"),
                )
                .with_hint(
                    "Argo CD's sync options: CreateNamespace, ServerSideApply, Replace, Prune, PruneLast, ApplyOutOfSyncOnly, SkipDryRunOnMissingResource, Validate, RespectIgnoreDifferences, FailOnSharedResource, PrunePropagationPolicy",
                ))
            }
        }
        Ok(())
    }

    /// The Namespace `CreateNamespace=true` creates for destination namespace `ns`, with
    /// `managedNamespaceMetadata`; `None` when not asked for (or no namespace).
    pub fn managed_namespace(&self, ns: &str) -> Option<Value> {
        if !self.create_namespace || ns.is_empty() {
            return None;
        }
        let mut meta = json!({"name": ns});
        if !self.managed_namespace_labels.is_empty() {
            meta["labels"] = json!(self.managed_namespace_labels);
        }
        if !self.managed_namespace_annotations.is_empty() {
            meta["annotations"] = json!(self.managed_namespace_annotations);
        }
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}))
    }
}

/// A resource's own sync and compare options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceOptions {
    /// `Prune=false` (or `Prune=confirm`): never pruned.
    pub prune: bool,
    /// `Delete=false` or `helm.sh/resource-policy: keep`: kept when the Application is deleted.
    pub delete: bool,
    pub replace: bool,
    pub server_side_apply: Option<bool>,
    pub validate: bool,
    pub skip_dry_run_on_missing_resource: bool,
    pub prune_last: bool,
    /// `compare-options: IgnoreExtraneous`: not part of the Application's sync status when
    /// it is not rendered.
    pub ignore_extraneous: bool,
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn options_list(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(',').filter_map(|p| {
        let p = p.trim();
        (!p.is_empty()).then(|| p.split_once('=').unwrap_or((p, "")))
    })
}

impl ResourceOptions {
    pub fn of(obj: &Value) -> ResourceOptions {
        let mut r = ResourceOptions {
            prune: true,
            delete: true,
            replace: false,
            server_side_apply: None,
            validate: true,
            skip_dry_run_on_missing_resource: false,
            prune_last: false,
            ignore_extraneous: false,
        };
        if let Some(s) = annotation(obj, SYNC_OPTIONS) {
            for (k, v) in options_list(s) {
                let on = v.eq_ignore_ascii_case("true");
                match k {
                    "Prune" => r.prune = on,
                    "Delete" => r.delete = on,
                    "Replace" => r.replace = on,
                    "ServerSideApply" => r.server_side_apply = Some(on),
                    "Validate" => r.validate = !v.eq_ignore_ascii_case("false"),
                    "SkipDryRunOnMissingResource" => r.skip_dry_run_on_missing_resource = on,
                    "PruneLast" => r.prune_last = on,
                    _ => {}
                }
            }
        }
        if annotation(obj, "helm.sh/resource-policy") == Some("keep") {
            r.delete = false;
        }
        if let Some(s) = annotation(obj, COMPARE_OPTIONS) {
            r.ignore_extraneous = options_list(s).any(|(k, _)| k == "IgnoreExtraneous");
        }
        r
    }
}

/// An Argo CD hook type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookType {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    PreDelete,
    PostDelete,
    /// Not applied at all.
    Skip,
}

impl HookType {
    pub fn parse(s: &str) -> Option<HookType> {
        Some(match s.trim() {
            "PreSync" => HookType::PreSync,
            "Sync" => HookType::Sync,
            "PostSync" => HookType::PostSync,
            "SyncFail" => HookType::SyncFail,
            "PreDelete" => HookType::PreDelete,
            "PostDelete" => HookType::PostDelete,
            "Skip" => HookType::Skip,
            _ => return None,
        })
    }
}

/// When a hook is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeletePolicy {
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

/// A hook's types and delete policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInfo {
    pub types: Vec<HookType>,
    /// Argo CD's default when none is given: `BeforeHookCreation`.
    pub delete_policies: Vec<DeletePolicy>,
}

/// Is this object a hook, and of which kind? Argo CD's annotations win; without them
/// (`argo_hooks_present` false: no object of the Application carries one), Helm hooks are
/// mapped as Argo CD maps them: `pre-install`/`pre-upgrade` -> PreSync,
/// `post-install`/`post-upgrade` -> PostSync, `pre-delete` -> PreDelete, `post-delete` ->
/// PostDelete, `crd-install` -> not a hook (a normal CRD); tests and rollbacks are not
/// supported (the object is skipped, `Skip`).
pub fn hook_of(obj: &Value, argo_hooks_present: bool) -> Option<HookInfo> {
    if let Some(h) = annotation(obj, HOOK) {
        let types: Vec<HookType> = h.split(',').filter_map(HookType::parse).collect();
        if types.is_empty() {
            return None;
        }
        let policies = annotation(obj, HOOK_DELETE_POLICY)
            .map(|p| {
                p.split(',')
                    .filter_map(|x| match x.trim() {
                        "BeforeHookCreation" => Some(DeletePolicy::BeforeHookCreation),
                        "HookSucceeded" => Some(DeletePolicy::HookSucceeded),
                        "HookFailed" => Some(DeletePolicy::HookFailed),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Some(HookInfo {
            types,
            delete_policies: default_policy(policies),
        });
    }
    let helm = annotation(obj, "helm.sh/hook")?;
    if argo_hooks_present {
        // "If you define any Argo CD hooks, all Helm hooks will be ignored."
        return None;
    }
    let mut types = Vec::new();
    let mut unsupported = false;
    for e in helm.split(',').map(str::trim) {
        let t = match e {
            "crd-install" => continue,
            "pre-install" | "pre-upgrade" => HookType::PreSync,
            "post-install" | "post-upgrade" => HookType::PostSync,
            "pre-delete" => HookType::PreDelete,
            "post-delete" => HookType::PostDelete,
            _ => {
                unsupported = true;
                continue;
            }
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() {
        if unsupported {
            // test-success, test-failure, rollbacks: unsupported hooks are ignored.
            return Some(HookInfo {
                types: vec![HookType::Skip],
                delete_policies: Vec::new(),
            });
        }
        return None;
    }
    let policies = annotation(obj, "helm.sh/hook-delete-policy")
        .map(|p| {
            p.split(',')
                .filter_map(|x| match x.trim() {
                    "before-hook-creation" => Some(DeletePolicy::BeforeHookCreation),
                    "hook-succeeded" => Some(DeletePolicy::HookSucceeded),
                    "hook-failed" => Some(DeletePolicy::HookFailed),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(HookInfo {
        types,
        delete_policies: default_policy(policies),
    })
}

fn default_policy(p: Vec<DeletePolicy>) -> Vec<DeletePolicy> {
    if p.is_empty() {
        vec![DeletePolicy::BeforeHookCreation]
    } else {
        p
    }
}

/// An object's sync wave: `argocd.argoproj.io/sync-wave`, else (Helm hooks)
/// `helm.sh/hook-weight`, else 0. A value that is not an integer counts as 0 (as Argo CD).
pub fn sync_wave(obj: &Value) -> i64 {
    annotation(obj, SYNC_WAVE)
        .or_else(|| {
            annotation(obj, "helm.sh/hook").and_then(|_| annotation(obj, "helm.sh/hook-weight"))
        })
        .and_then(|w| w.trim().parse::<i64>().ok())
        .unwrap_or(0)
}

/// Argo CD's order of kinds inside one wave (its `kindOrder`: Namespaces and CRDs early,
/// workloads late); kinds not listed come after.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_rank(obj: &Value) -> usize {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// An Application's objects in the order Argo CD syncs them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncPlan {
    /// PreSync hooks, by wave, kind, name.
    pub pre_sync: Vec<Value>,
    /// The Sync phase: (wave, objects), waves ascending; each wave waits for the previous
    /// one to be healthy. Sync hooks belong to their wave.
    pub waves: Vec<(i64, Vec<Value>)>,
    /// Sync hooks (also in `waves`): not recorded in the inventory.
    pub sync_hooks: Vec<Value>,
    pub post_sync: Vec<Value>,
    pub sync_fail: Vec<Value>,
    pub pre_delete: Vec<Value>,
    pub post_delete: Vec<Value>,
    /// `Skip` hooks and unsupported Helm hooks: never applied.
    pub skipped: Vec<Value>,
}

/// Split an Application's rendered objects into phases and waves (see [`SyncPlan`]).
/// A hook of several types is in each of its phases.
pub fn plan_sync(objects: &[Value]) -> SyncPlan {
    let argo_hooks = objects.iter().any(|o| annotation(o, HOOK).is_some());
    let mut plan = SyncPlan::default();
    let mut waves: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for o in objects {
        let Some(h) = hook_of(o, argo_hooks) else {
            if argo_hooks && annotation(o, "helm.sh/hook").is_some() {
                // Helm hooks beside Argo CD hooks are ignored altogether.
                plan.skipped.push(o.clone());
                continue;
            }
            waves.entry(sync_wave(o)).or_default().push(o.clone());
            continue;
        };
        if h.types.contains(&HookType::Skip) {
            plan.skipped.push(o.clone());
            continue;
        }
        for t in &h.types {
            match t {
                HookType::PreSync => plan.pre_sync.push(o.clone()),
                HookType::Sync => {
                    plan.sync_hooks.push(o.clone());
                    waves.entry(sync_wave(o)).or_default().push(o.clone());
                }
                HookType::PostSync => plan.post_sync.push(o.clone()),
                HookType::SyncFail => plan.sync_fail.push(o.clone()),
                HookType::PreDelete => plan.pre_delete.push(o.clone()),
                HookType::PostDelete => plan.post_delete.push(o.clone()),
                HookType::Skip => {}
            }
        }
    }
    let order = |v: &mut Vec<Value>| {
        v.sort_by(|a, b| {
            sync_wave(a)
                .cmp(&sync_wave(b))
                .then_with(|| kind_rank(a).cmp(&kind_rank(b)))
                .then_with(|| name_of(a).cmp(name_of(b)))
        })
    };
    for v in [
        &mut plan.pre_sync,
        &mut plan.post_sync,
        &mut plan.sync_fail,
        &mut plan.pre_delete,
        &mut plan.post_delete,
    ] {
        order(v);
    }
    plan.waves = waves
        .into_iter()
        .map(|(w, mut objs)| {
            order(&mut objs);
            (w, objs)
        })
        .collect();
    plan
}

/// The same hook in Helm's annotations, for capstan's hook phases (which run Helm's
/// `pre-*`/`post-*` events around a unit's apply): PreSync -> `pre-install,pre-upgrade`,
/// Sync and PostSync -> `post-install,post-upgrade` (Sync hooks weighted before PostSync
/// ones), the sync wave as `helm.sh/hook-weight`, delete policies by their Helm names.
/// Argo CD runs every sync as both install and upgrade, so both events are listed.
pub fn as_helm_hook(obj: &Value, phase: HookType, policies: &[DeletePolicy]) -> Value {
    let mut o = obj.clone();
    let events = match phase {
        HookType::PreSync => "pre-install,pre-upgrade",
        _ => "post-install,post-upgrade",
    };
    // Sync hooks run before PostSync hooks: shift them well below any PostSync weight.
    let weight = match phase {
        HookType::Sync => sync_wave(obj).saturating_sub(1 << 32),
        _ => sync_wave(obj),
    };
    let policy: Vec<&str> = policies
        .iter()
        .map(|p| match p {
            DeletePolicy::BeforeHookCreation => "before-hook-creation",
            DeletePolicy::HookSucceeded => "hook-succeeded",
            DeletePolicy::HookFailed => "hook-failed",
        })
        .collect();
    if !o.get("metadata").is_some_and(Value::is_object) {
        o["metadata"] = json!({});
    }
    let meta = o["metadata"].as_object_mut().expect("metadata object");
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        *ann = Value::Object(Map::new());
    }
    let ann = ann.as_object_mut().expect("annotations object");
    ann.insert("helm.sh/hook".into(), Value::String(events.into()));
    ann.insert(
        "helm.sh/hook-weight".into(),
        Value::String(weight.to_string()),
    );
    ann.insert(
        "helm.sh/hook-delete-policy".into(),
        Value::String(policy.join(",")),
    );
    o
}

/// Mark an object capstan must never prune (`capstan.io/prune: disabled`).
pub fn keep_from_prune(obj: &mut Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"].as_object_mut().expect("metadata object");
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        *ann = Value::Object(Map::new());
    }
    ann.as_object_mut()
        .expect("annotations object")
        .insert(CAPSTAN_PRUNE.into(), Value::String("disabled".into()));
}

// ---------------------------------------------------------------------------------------
// ignoreDifferences

/// One step of a path into an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// Every element of a list (or value of a map).
    Each,
    /// Elements of a list where the value at the path equals (or, `!=`, does not equal) the
    /// literal.
    Select(Vec<Step>, bool, Value),
}

/// One `ignoreDifferences` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoreRule {
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// `jsonPointers` and `jqPathExpressions`, as paths.
    pub paths: Vec<Vec<Step>>,
    pub managed_fields_managers: Vec<String>,
}

impl IgnoreRule {
    /// Parse one entry; `field` names it in errors.
    pub fn parse(v: &Value, field: &str) -> Result<IgnoreRule, ArgoError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let mut r = IgnoreRule {
            group: s("group").unwrap_or_default(),
            kind: s("kind").unwrap_or_default(),
            name: s("name").filter(|n| !n.is_empty()),
            namespace: s("namespace").filter(|n| !n.is_empty()),
            paths: Vec::new(),
            managed_fields_managers: Vec::new(),
        };
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        for (i, p) in list("jsonPointers").iter().enumerate() {
            r.paths.push(parse_json_pointer(p).map_err(|m| {
                ArgoError::new(ErrorKind::BadInput, format!("{field}.jsonPointers[{i}]"), m)
            })?);
        }
        for (i, p) in list("jqPathExpressions").iter().enumerate() {
            r.paths.push(parse_jq_path(p).map_err(|m| {
                ArgoError::new(
                    ErrorKind::BadInput,
                    format!("{field}.jqPathExpressions[{i}]"),
                    m,
                )
                .with_hint("capstan supports jq paths: .field, .\"key\", .[\"key\"], [], [N], `| select(.path == \"value\")` (and !=); use jsonPointers for the rest")
            })?);
        }
        r.managed_fields_managers = list("managedFieldsManagers");
        Ok(r)
    }

    /// Does the rule apply to `obj`? (`kind` may be `*`; an empty group is the core group.)
    pub fn matches(&self, obj: &Value) -> bool {
        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = api.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        (self.group == "*" || self.group == group)
            && (self.kind == "*" || self.kind == kind)
            && self.name.as_deref().is_none_or(|n| n == name_of(obj))
            && self.namespace.as_deref().is_none_or(|n| n == ns)
    }
}

fn parse_json_pointer(p: &str) -> Result<Vec<Step>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!("JSON pointer {p:?} must start with /"));
    };
    Ok(rest
        .split('/')
        .map(|t| {
            let t = t.replace("~1", "/").replace("~0", "~");
            match t.parse::<usize>() {
                Ok(i) if !t.starts_with('+') => Step::Index(i),
                _ => Step::Key(t),
            }
        })
        .collect())
}

/// A jq path expression, in the subset documented on [`IgnoreRule::parse`]'s hint.
pub fn parse_jq_path(expr: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, part) in split_pipes(expr).into_iter().enumerate() {
        let part = part.trim();
        if let Some(inner) = part
            .strip_prefix("select(")
            .and_then(|r| r.strip_suffix(')'))
        {
            if n == 0 {
                return Err(format!("{expr:?}: select() needs a list before it"));
            }
            let (lhs, rhs, eq) = if let Some((l, r)) = inner.split_once("==") {
                (l, r, true)
            } else if let Some((l, r)) = inner.split_once("!=") {
                (l, r, false)
            } else {
                return Err(format!(
                    "{expr:?}: select({inner}) is not a comparison with == or !="
                ));
            };
            let path = parse_jq_steps(lhs.trim(), expr)?;
            let lit: Value = serde_json::from_str(rhs.trim()).map_err(|_| {
                format!(
                    "{expr:?}: {:?} in select() is not a JSON literal",
                    rhs.trim()
                )
            })?;
            steps.push(Step::Select(path, eq, lit));
        } else {
            steps.extend(parse_jq_steps(part, expr)?);
        }
    }
    if steps.is_empty() {
        return Err(format!("{expr:?}: an empty path"));
    }
    Ok(steps)
}

fn split_pipes(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'(' | b'[' if !quoted => depth += 1,
            b')' | b']' if !quoted => depth -= 1,
            b'|' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

fn parse_jq_steps(s: &str, expr: &str) -> Result<Vec<Step>, String> {
    let unsupported = |what: &str| format!("{expr:?}: unsupported jq construct {what:?}");
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    if b.is_empty() || b[0] != '.' {
        return Err(unsupported(s));
    }
    while i < b.len() {
        match b[i] {
            '.' => {
                i += 1;
                if i < b.len() && b[i] == '"' {
                    let (key, next) = jq_string(&b, i).ok_or_else(|| unsupported(s))?;
                    steps.push(Step::Key(key));
                    i = next;
                } else {
                    let start = i;
                    while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                        i += 1;
                    }
                    if i > start {
                        steps.push(Step::Key(b[start..i].iter().collect()));
                    } else if i < b.len() && b[i] != '[' {
                        return Err(unsupported(&b[start - 1..].iter().collect::<String>()));
                    }
                }
            }
            '[' => {
                i += 1;
                if i < b.len() && b[i] == ']' {
                    steps.push(Step::Each);
                    i += 1;
                } else if i < b.len() && b[i] == '"' {
                    let (key, next) = jq_string(&b, i).ok_or_else(|| unsupported(s))?;
                    if b.get(next) != Some(&']') {
                        return Err(unsupported(s));
                    }
                    steps.push(Step::Key(key));
                    i = next + 1;
                } else {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == start || b.get(i) != Some(&']') {
                        return Err(unsupported(&b[start - 1..].iter().collect::<String>()));
                    }
                    let n: String = b[start..i].iter().collect();
                    steps.push(Step::Index(n.parse().map_err(|_| unsupported(&n))?));
                    i += 1;
                }
                // `[]?` is the same path, errors suppressed.
                if b.get(i) == Some(&'?') {
                    i += 1;
                }
            }
            c if c.is_whitespace() => i += 1,
            _ => return Err(unsupported(&b[i..].iter().collect::<String>())),
        }
    }
    Ok(steps)
}

fn jq_string(b: &[char], at: usize) -> Option<(String, usize)> {
    let mut i = at + 1;
    let mut out = String::new();
    while i < b.len() {
        match b[i] {
            '\\' => {
                out.push(*b.get(i + 1)?);
                i += 2;
            }
            '"' => return Some((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

fn get_path<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Step::Key(k) => cur.get(k.as_str())?,
            Step::Index(i) => cur.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Remove every value `path` reaches in `v` (as jq's `del(path)`).
pub fn remove_path(v: &mut Value, path: &[Step]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match first {
        Step::Key(k) => {
            if let Some(m) = v.as_object_mut() {
                if rest.is_empty() {
                    m.remove(k);
                } else if let Some(c) = m.get_mut(k) {
                    remove_path(c, rest);
                }
            }
        }
        Step::Index(i) => {
            if let Some(a) = v.as_array_mut() {
                if rest.is_empty() {
                    if *i < a.len() {
                        a.remove(*i);
                    }
                } else if let Some(c) = a.get_mut(*i) {
                    remove_path(c, rest);
                }
            }
        }
        Step::Each => match v {
            Value::Array(a) if rest.is_empty() => a.clear(),
            // `.list[] | select(...)`: the selected elements leave the list.
            Value::Array(a) if matches!(rest, [Step::Select(..)]) => {
                if let [Step::Select(p, eq, lit)] = rest {
                    a.retain(|c| (get_path(c, p) == Some(lit)) != *eq);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|c| remove_path(c, rest)),
            Value::Object(m) if rest.is_empty() => m.clear(),
            Value::Object(m) => m.values_mut().for_each(|c| remove_path(c, rest)),
            _ => {}
        },
        Step::Select(p, eq, lit) => {
            let hit = |c: &Value| (get_path(c, p) == Some(lit)) == *eq;
            if rest.is_empty() {
                // `.. | select(...)` itself: the selected elements go.
                if let Some(a) = v.as_array_mut() {
                    a.retain(|c| !hit(c));
                } else if hit(v) {
                    *v = Value::Null;
                }
            } else if let Some(a) = v.as_array_mut() {
                for c in a.iter_mut().filter(|c| hit(c)) {
                    remove_path(c, rest);
                }
            } else if hit(v) {
                remove_path(v, rest);
            }
        }
    }
}

/// Fields of `live` owned by one of `managers` (from `metadata.managedFields`, operation
/// Apply or Update), as paths.
pub fn managed_paths(live: &Value, managers: &[String]) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    let Some(entries) = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return out;
    };
    for e in entries {
        let m = e.get("manager").and_then(Value::as_str).unwrap_or("");
        if !managers.iter().any(|x| x == m) {
            continue;
        }
        if let Some(f) = e.get("fieldsV1") {
            fields_v1_paths(f, live, &mut Vec::new(), &mut out);
        }
    }
    out
}

fn fields_v1_paths(set: &Value, at: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let Some(m) = set.as_object() else { return };
    for (k, sub) in m {
        if k == "." {
            continue;
        }
        let step = if let Some(f) = k.strip_prefix("f:") {
            Some(Step::Key(f.to_string()))
        } else if let Some(keys) = k.strip_prefix("k:") {
            // A list element identified by its keys: its index in the live list.
            serde_json::from_str::<Map<String, Value>>(keys)
                .ok()
                .and_then(|keys| {
                    get_path(at, prefix)?
                        .as_array()?
                        .iter()
                        .position(|el| keys.iter().all(|(kk, kv)| el.get(kk) == Some(kv)))
                })
                .map(Step::Index)
        } else if let Some(val) = k.strip_prefix("v:") {
            serde_json::from_str::<Value>(val).ok().and_then(|val| {
                get_path(at, prefix)?
                    .as_array()?
                    .iter()
                    .position(|el| *el == val)
                    .map(Step::Index)
            })
        } else {
            None
        };
        let Some(step) = step else { continue };
        prefix.push(step);
        let leaf = sub
            .as_object()
            .is_none_or(|o| o.is_empty() || o.len() == 1 && o.contains_key("."));
        if leaf {
            out.push(prefix.clone());
        } else {
            fields_v1_paths(sub, at, prefix, out);
        }
        prefix.pop();
    }
}

/// Remove the fields `rules` ignore from `obj` (a desired or a live object, before they
/// are compared). `live` gives `managedFields` for `managedFieldsManagers`.
pub fn strip_ignored(obj: &mut Value, live: Option<&Value>, rules: &[IgnoreRule]) {
    let matching: Vec<&IgnoreRule> = rules.iter().filter(|r| r.matches(obj)).collect();
    for r in matching {
        let mut paths = r.paths.clone();
        if !r.managed_fields_managers.is_empty() {
            if let Some(l) = live {
                paths.extend(managed_paths(l, &r.managed_fields_managers));
            }
        }
        // Deepest and last first, so indexes stay valid.
        paths.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| index_key(b).cmp(&index_key(a)))
        });
        for p in &paths {
            remove_path(obj, p);
        }
    }
}

fn index_key(p: &[Step]) -> Vec<usize> {
    p.iter()
        .map(|s| if let Step::Index(i) = s { *i } else { 0 })
        .collect()
}

/// `RespectIgnoreDifferences=true`: the desired object keeps the live values of ignored
/// fields (and leaves out ignored fields the live object does not have), so applying it
/// changes none of them.
pub fn respect_ignored(desired: &mut Value, live: Option<&Value>, rules: &[IgnoreRule]) {
    let Some(live) = live else {
        return;
    };
    let mut kept_live = desired.clone();
    strip_ignored(&mut kept_live, Some(live), rules);
    let mut ignored_live = live.clone();
    let mut stripped_live = live.clone();
    strip_ignored(&mut stripped_live, Some(live), rules);
    // The live values of ignored fields: what `strip_ignored` removed from the live object.
    restore_removed(&mut kept_live, &mut ignored_live, &stripped_live);
    *desired = kept_live;
}

/// Copy into `out` every value of `full` that `stripped` lacks.
fn restore_removed(out: &mut Value, full: &mut Value, stripped: &Value) {
    match (full, stripped) {
        (Value::Object(f), Value::Object(s)) => {
            if !out.is_object() {
                *out = Value::Object(Map::new());
            }
            let o = out.as_object_mut().expect("object");
            for (k, fv) in f.iter_mut() {
                match s.get(k) {
                    None => {
                        o.insert(k.clone(), fv.clone());
                    }
                    Some(sv) if sv != fv => {
                        let slot = o.entry(k.clone()).or_insert(Value::Null);
                        restore_removed(slot, fv, sv);
                    }
                    _ => {}
                }
            }
        }
        (Value::Array(f), Value::Array(s))
            if f.len() == s.len() && out.as_array().is_some_and(|o| o.len() == f.len()) =>
        {
            let o = out.as_array_mut().expect("array");
            for ((slot, fv), sv) in o.iter_mut().zip(f.iter_mut()).zip(s) {
                if sv != fv {
                    restore_removed(slot, fv, sv);
                }
            }
        }
        (f, _) => *out = f.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Status

/// One resource of an Application, as its status lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `Synced` / `OutOfSync`.
    pub sync: String,
    /// `Healthy`, `Progressing`, `Degraded`, `Missing`; `None`: no health for this kind.
    pub health: Option<String>,
    /// Hooks are listed with `hook: true`.
    pub hook: bool,
}

/// What a reconcile of one Application came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub revision: String,
    /// `Succeeded`, `Failed`, `Error`, `Running`.
    pub phase: String,
    pub message: String,
    pub started_at: String,
    pub finished_at: String,
    pub resources: Vec<ResourceStatus>,
}

/// The Application's `status`, as Argo CD writes it, from a sync's outcome: `sync.status`
/// Synced when the operation succeeded and every resource is synced, `health.status` the
/// worst health of its resources (Healthy when none has one), `operationState`,
/// `resources`, `summary.images`, `sourceType`, `reconciledAt`.
pub fn application_status(app: &Value, outcome: &SyncOutcome, images: &[String]) -> Value {
    let resources: Vec<&ResourceStatus> = outcome.resources.iter().filter(|r| !r.hook).collect();
    let synced = outcome.phase == "Succeeded" && resources.iter().all(|r| r.sync == "Synced");
    let rank = |h: &str| match h {
        "Healthy" => 0,
        "Suspended" => 1,
        "Progressing" => 2,
        "Missing" => 3,
        "Degraded" => 4,
        _ => 2,
    };
    let mut health = resources
        .iter()
        .filter_map(|r| r.health.as_deref())
        .max_by_key(|h| rank(h))
        .unwrap_or("Healthy")
        .to_string();
    if outcome.phase != "Succeeded" && health == "Healthy" && outcome.phase != "Running" {
        health = "Degraded".into();
    }
    let spec = app.get("spec").cloned().unwrap_or(Value::Null);
    let mut compared =
        json!({"destination": spec.get("destination").cloned().unwrap_or(json!({}))});
    if let Some(s) = spec.get("source") {
        compared["source"] = s.clone();
    }
    if let Some(s) = spec.get("sources") {
        compared["sources"] = s.clone();
    }
    let res_json: Vec<Value> = resources
        .iter()
        .map(|r| {
            let (group, version) = r
                .api_version
                .rsplit_once('/')
                .map_or(("", r.api_version.as_str()), |(g, v)| (g, v));
            let mut o = json!({"group": group, "version": version, "kind": r.kind,
                "name": r.name, "status": r.sync});
            if !r.namespace.is_empty() {
                o["namespace"] = json!(r.namespace);
            }
            if let Some(h) = &r.health {
                o["health"] = json!({"status": h});
            }
            o
        })
        .collect();
    let result_resources: Vec<Value> = outcome
        .resources
        .iter()
        .map(|r| {
            let (group, version) = r
                .api_version
                .rsplit_once('/')
                .map_or(("", r.api_version.as_str()), |(g, v)| (g, v));
            let mut o = json!({"group": group, "version": version, "kind": r.kind,
                "namespace": r.namespace, "name": r.name,
                "status": if r.sync == "Synced" { "Synced" } else { "SyncFailed" },
                "syncPhase": "Sync", "message": ""});
            if r.hook {
                o["hookType"] = json!("Sync");
            }
            o
        })
        .collect();
    let mut images: Vec<String> = images.to_vec();
    images.sort();
    images.dedup();
    json!({
        "sync": {
            "status": if synced { "Synced" } else { "OutOfSync" },
            "revision": outcome.revision,
            "comparedTo": compared,
        },
        "health": {"status": health, "lastTransitionTime": outcome.finished_at},
        "operationState": {
            "operation": {"sync": {"revision": outcome.revision}, "initiatedBy": {"username": "capstan", "automated": true}},
            "phase": outcome.phase,
            "message": outcome.message,
            "startedAt": outcome.started_at,
            "finishedAt": outcome.finished_at,
            "syncResult": {"revision": outcome.revision, "resources": result_resources, "source": compared.get("source").cloned().unwrap_or(Value::Null)},
        },
        "resources": res_json,
        "summary": {"images": images},
        "reconciledAt": outcome.finished_at,
        "sourceType": source_type_name(app),
    })
}

fn source_type_name(app: &Value) -> &'static str {
    let src = app
        .pointer("/spec/source")
        .or_else(|| app.pointer("/spec/sources/0"));
    match src {
        Some(s) if s.get("chart").is_some() || s.get("helm").is_some() => "Helm",
        Some(s) if s.get("kustomize").is_some() => "Kustomize",
        Some(s) if s.get("plugin").is_some() => "Plugin",
        _ => "Directory",
    }
}

/// The container images of objects (for `status.summary.images`).
pub fn images_of(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    if k == "containers" || k == "initContainers" {
                        for el in c.as_array().into_iter().flatten() {
                            if let Some(i) = el.get("image").and_then(Value::as_str) {
                                out.push(i.to_string());
                            }
                        }
                    } else {
                        walk(c, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    for o in objects {
        walk(o, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------------------
// depends-on

/// A unit named by `capstan.io/depends-on`: kind, namespace, name.
pub type UnitName = (String, String, String);

/// The units an Application waits for: `capstan.io/depends-on`, a comma (or newline)
/// separated list of `NAME` (an Application in the Application's namespace),
/// `KIND/NAME` (a unit of that kind in the Application's namespace) or
/// `KIND/NAMESPACE/NAME` (e.g. `Kustomization/flux-system/infra`).
pub fn depends_on(app: &Value) -> Result<Vec<UnitName>, ArgoError> {
    let ns = app
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("argocd");
    let Some(s) = annotation(app, DEPENDS_ON) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in s
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let parts: Vec<&str> = entry.split('/').map(str::trim).collect();
        let u = match parts.as_slice() {
            [n] => ("Application".to_string(), ns.to_string(), n.to_string()),
            [k, n] => (k.to_string(), ns.to_string(), n.to_string()),
            [k, namespace, n] => (k.to_string(), namespace.to_string(), n.to_string()),
            _ => {
                return Err(ArgoError::new(
                    ErrorKind::BadInput,
                    format!("metadata.annotations[{DEPENDS_ON}]"),
                    format!("{entry:?} is not NAME, KIND/NAME or KIND/NAMESPACE/NAME"),
                ))
            }
        };
        if u.0.is_empty() || u.1.is_empty() || u.2.is_empty() {
            return Err(ArgoError::new(
                ErrorKind::BadInput,
                format!("metadata.annotations[{DEPENDS_ON}]"),
                format!("{entry:?} has an empty part"),
            ));
        }
        out.push(u);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
