//! The sync mapping, from Argo CD's documented behaviour (sync options, sync phases and
//! waves, Helm hooks, ignoreDifferences, Application status).

use super::*;
use serde_json::json;

fn app(extra: Value) -> Value {
    let mut a = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "argocd"},
        "spec": {"project": "default", "destination": {"name": "in-cluster", "namespace": "web"},
                 "source": {"repoURL": "https://x/y.git", "path": "web"}}});
    merge(&mut a, extra);
    a
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn obj(kind: &str, name: &str, ann: Value) -> Value {
    json!({"apiVersion": if kind == "Job" { "batch/v1" } else { "v1" }, "kind": kind,
           "metadata": {"name": name, "annotations": ann}})
}

fn names(v: &[Value]) -> Vec<&str> {
    v.iter().map(name_of).collect()
}

/// syncPolicy.automated: prune, selfHeal, allowEmpty; prune only when automated.prune.
#[test]
fn automated_prune_self_heal_allow_empty() {
    let p = SyncPolicy::of(&app(json!({"spec": {"syncPolicy": {"automated": {"prune": true, "selfHeal": true, "allowEmpty": true}}}}))).unwrap();
    assert_eq!(
        p.automated,
        Some(Automated {
            prune: true,
            self_heal: true,
            allow_empty: true
        })
    );
    assert!(p.prunes());
    let manual = SyncPolicy::of(&app(json!({}))).unwrap();
    assert_eq!(manual.automated, None);
    assert!(!manual.prunes());
    let no_prune =
        SyncPolicy::of(&app(json!({"spec": {"syncPolicy": {"automated": {}}}}))).unwrap();
    assert!(!no_prune.prunes());
    let disabled = SyncPolicy::of(&app(
        json!({"spec": {"syncPolicy": {"automated": {"prune": true, "enabled": false}}}}),
    ))
    .unwrap();
    assert_eq!(disabled.automated, None);
}

/// syncOptions: every documented option; Prune=false at the application level turns
/// pruning off; an unknown option is an error naming it and its field.
#[test]
fn sync_options_are_mapped() {
    let p = SyncPolicy::of(&app(json!({"spec": {"syncPolicy": {"automated": {"prune": true}, "syncOptions": [
        "CreateNamespace=true", "ServerSideApply=true", "Replace=true", "Prune=false", "PruneLast=true",
        "ApplyOutOfSyncOnly=true", "SkipDryRunOnMissingResource=true", "Validate=false",
        "RespectIgnoreDifferences=true", "FailOnSharedResource=true", "PrunePropagationPolicy=background"]}}}))).unwrap();
    assert!(p.create_namespace && p.server_side_apply && p.replace && p.prune_last);
    assert!(p.apply_out_of_sync_only && p.skip_dry_run_on_missing_resource && !p.validate);
    assert!(p.respect_ignore_differences && p.fail_on_shared_resource);
    assert_eq!(p.prune_propagation_policy, "background");
    assert!(p.prune_disabled && !p.prunes());
    let e = SyncPolicy::of(&app(json!({"spec": {"syncPolicy": {"syncOptions": ["CreateNamespace=true", "CreateNamespce=true"]}}}))).unwrap_err();
    assert_eq!(e.field, "spec.syncPolicy.syncOptions[1]");
    assert!(e.message.contains("CreateNamespce"), "{e}");
    let e = SyncPolicy::of(&app(
        json!({"spec": {"syncPolicy": {"syncOptions": ["Replace"]}}}),
    ))
    .unwrap_err();
    assert!(e.message.contains("KEY=VALUE"), "{e}");
}

/// CreateNamespace=true with managedNamespaceMetadata: the Namespace carries its labels
/// and annotations; without CreateNamespace there is none.
#[test]
fn create_namespace_with_managed_metadata() {
    let p = SyncPolicy::of(&app(
        json!({"spec": {"syncPolicy": {"syncOptions": ["CreateNamespace=true"],
        "managedNamespaceMetadata": {"labels": {"team": "web"}, "annotations": {"a": "b"}}}}}),
    ))
    .unwrap();
    assert_eq!(
        p.managed_namespace("web"),
        Some(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "web", "labels": {"team": "web"}, "annotations": {"a": "b"}}}))
    );
    assert_eq!(
        SyncPolicy::of(&app(json!({})))
            .unwrap()
            .managed_namespace("web"),
        None
    );
}

/// The resources finalizer (foreground and background) asks for cascading deletion.
#[test]
fn resources_finalizer() {
    for f in [RESOURCES_FINALIZER, RESOURCES_FINALIZER_BACKGROUND] {
        let p = SyncPolicy::of(&app(json!({"metadata": {"finalizers": [f]}}))).unwrap();
        assert!(p.resources_finalizer, "{f}");
    }
    assert!(!SyncPolicy::of(&app(json!({}))).unwrap().resources_finalizer);
}

/// retry: limit and backoff, with Argo CD's defaults.
#[test]
fn retry_backoff() {
    let p = SyncPolicy::of(&app(
        json!({"spec": {"syncPolicy": {"retry": {"limit": 3, "backoff": {"duration": "10s"}}}}}),
    ))
    .unwrap();
    let r = p.retry.unwrap();
    assert_eq!(
        (
            r.limit,
            r.backoff_duration.as_str(),
            r.backoff_factor,
            r.backoff_max_duration.as_str()
        ),
        (3, "10s", 2, "3m")
    );
}

/// Resource annotations: sync-options Prune=false, Delete=false, Replace=true,
/// ServerSideApply, Validate=false, SkipDryRunOnMissingResource, PruneLast;
/// helm.sh/resource-policy: keep is Delete=false; compare-options IgnoreExtraneous.
#[test]
fn resource_options() {
    let r = ResourceOptions::of(&obj(
        "ConfigMap",
        "c",
        json!({SYNC_OPTIONS: "Prune=false,Delete=false, Replace=true,ServerSideApply=false,Validate=false,SkipDryRunOnMissingResource=true,PruneLast=true", COMPARE_OPTIONS: "IgnoreExtraneous"}),
    ));
    assert!(!r.prune && !r.delete && r.replace && r.server_side_apply == Some(false));
    assert!(
        !r.validate && r.skip_dry_run_on_missing_resource && r.prune_last && r.ignore_extraneous
    );
    let keep = ResourceOptions::of(&obj(
        "ConfigMap",
        "c",
        json!({"helm.sh/resource-policy": "keep"}),
    ));
    assert!(!keep.delete && keep.prune);
    let plain = ResourceOptions::of(&obj("ConfigMap", "c", json!({})));
    assert!(plain.prune && plain.delete && !plain.ignore_extraneous);
}

/// Phases: PreSync, then Sync (waves ascending, Sync hooks in their wave), then
/// PostSync; SyncFail/PreDelete/PostDelete apart; Skip never applied. Within a wave,
/// Argo CD's kind order, then name.
#[test]
fn phases_and_waves() {
    let objs = vec![
        obj("Deployment", "web", json!({})),
        obj("Job", "migrate", json!({HOOK: "PreSync"})),
        obj("ConfigMap", "late", json!({SYNC_WAVE: "2"})),
        obj("Namespace", "ns", json!({})),
        obj("ConfigMap", "early", json!({SYNC_WAVE: "-1"})),
        obj(
            "Job",
            "smoke",
            json!({HOOK: "PostSync", HOOK_DELETE_POLICY: "HookSucceeded"}),
        ),
        obj("Job", "during", json!({HOOK: "Sync", SYNC_WAVE: "2"})),
        obj("Job", "cleanup", json!({HOOK: "SyncFail"})),
        obj("Job", "bye", json!({HOOK: "PostDelete"})),
        obj("Job", "before-bye", json!({HOOK: "PreDelete"})),
        obj("ConfigMap", "never", json!({HOOK: "Skip"})),
        obj("ConfigMap", "bad-wave", json!({SYNC_WAVE: "soon"})),
    ];
    let p = plan_sync(&objs);
    assert_eq!(names(&p.pre_sync), ["migrate"]);
    let waves: Vec<(i64, Vec<&str>)> = p.waves.iter().map(|(w, o)| (*w, names(o))).collect();
    assert_eq!(
        waves,
        vec![
            (-1, vec!["early"]),
            (0, vec!["ns", "bad-wave", "web"]),
            (2, vec!["late", "during"])
        ]
    );
    assert_eq!(names(&p.sync_hooks), ["during"]);
    assert_eq!(names(&p.post_sync), ["smoke"]);
    assert_eq!(names(&p.sync_fail), ["cleanup"]);
    assert_eq!(names(&p.pre_delete), ["before-bye"]);
    assert_eq!(names(&p.post_delete), ["bye"]);
    assert_eq!(names(&p.skipped), ["never"]);
}

/// hook-delete-policy: listed policies; none given is BeforeHookCreation.
#[test]
fn hook_delete_policies() {
    let h = hook_of(
        &obj(
            "Job",
            "j",
            json!({HOOK: "PreSync,PostSync", HOOK_DELETE_POLICY: "HookSucceeded,HookFailed"}),
        ),
        true,
    )
    .unwrap();
    assert_eq!(h.types, vec![HookType::PreSync, HookType::PostSync]);
    assert_eq!(
        h.delete_policies,
        vec![DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]
    );
    let d = hook_of(&obj("Job", "j", json!({HOOK: "PreSync"})), true).unwrap();
    assert_eq!(d.delete_policies, vec![DeletePolicy::BeforeHookCreation]);
}

/// Helm hooks mapped as Argo CD maps them: pre-install/pre-upgrade -> PreSync,
/// post-install/post-upgrade -> PostSync, pre-delete/post-delete, crd-install a normal
/// resource, tests unsupported (skipped), hook-weight the wave, Helm delete policies;
/// beside an Argo CD hook every Helm hook is ignored.
#[test]
fn helm_hooks_are_mapped() {
    let pre = obj(
        "Job",
        "pre",
        json!({"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-5", "helm.sh/hook-delete-policy": "hook-succeeded"}),
    );
    let h = hook_of(&pre, false).unwrap();
    assert_eq!(h.types, vec![HookType::PreSync]);
    assert_eq!(h.delete_policies, vec![DeletePolicy::HookSucceeded]);
    assert_eq!(sync_wave(&pre), -5);
    assert_eq!(
        hook_of(
            &obj("Job", "p", json!({"helm.sh/hook": "post-upgrade"})),
            false
        )
        .unwrap()
        .types,
        vec![HookType::PostSync]
    );
    assert_eq!(
        hook_of(
            &obj("Job", "p", json!({"helm.sh/hook": "pre-delete"})),
            false
        )
        .unwrap()
        .types,
        vec![HookType::PreDelete]
    );
    assert_eq!(
        hook_of(
            &obj("Job", "p", json!({"helm.sh/hook": "post-delete"})),
            false
        )
        .unwrap()
        .types,
        vec![HookType::PostDelete]
    );
    assert_eq!(
        hook_of(
            &obj(
                "CustomResourceDefinition",
                "c",
                json!({"helm.sh/hook": "crd-install"})
            ),
            false
        ),
        None
    );
    assert_eq!(
        hook_of(
            &obj("Pod", "t", json!({"helm.sh/hook": "test-success"})),
            false
        )
        .unwrap()
        .types,
        vec![HookType::Skip]
    );
    // hook-weight is not a wave for objects that are not Helm hooks.
    assert_eq!(
        sync_wave(&obj("Job", "x", json!({"helm.sh/hook-weight": "3"}))),
        0
    );
    let p = plan_sync(&[
        pre.clone(),
        obj("Job", "argo", json!({HOOK: "PostSync"})),
        obj("ConfigMap", "c", json!({})),
    ]);
    assert_eq!(names(&p.skipped), ["pre"]);
    assert!(p.pre_sync.is_empty());
    assert_eq!(names(&p.post_sync), ["argo"]);
}

/// Argo hooks expressed for capstan's hook phases: PreSync runs before the apply (both
/// Helm events), Sync and PostSync after it (Sync first), the wave as weight, the delete
/// policies by their Helm names.
#[test]
fn hooks_as_helm_phases() {
    let j = obj("Job", "j", json!({HOOK: "PreSync", SYNC_WAVE: "3"}));
    let h = as_helm_hook(&j, HookType::PreSync, &[DeletePolicy::HookSucceeded]);
    assert_eq!(
        h.pointer("/metadata/annotations/helm.sh~1hook"),
        Some(&json!("pre-install,pre-upgrade"))
    );
    assert_eq!(
        h.pointer("/metadata/annotations/helm.sh~1hook-weight"),
        Some(&json!("3"))
    );
    assert_eq!(
        h.pointer("/metadata/annotations/helm.sh~1hook-delete-policy"),
        Some(&json!("hook-succeeded"))
    );
    let s = as_helm_hook(
        &obj("Job", "s", json!({HOOK: "Sync"})),
        HookType::Sync,
        &[DeletePolicy::BeforeHookCreation],
    );
    let post = as_helm_hook(
        &obj("Job", "p", json!({HOOK: "PostSync", SYNC_WAVE: "-100"})),
        HookType::PostSync,
        &[],
    );
    let w = |o: &Value| {
        o.pointer("/metadata/annotations/helm.sh~1hook-weight")
            .and_then(Value::as_str)
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert!(w(&s) < w(&post));
    assert_eq!(
        s.pointer("/metadata/annotations/helm.sh~1hook"),
        Some(&json!("post-install,post-upgrade"))
    );
}

/// Prune=false on a resource: capstan's prune-disabled annotation.
#[test]
fn keep_from_prune_annotates() {
    let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    keep_from_prune(&mut o);
    assert_eq!(
        o.pointer("/metadata/annotations/capstan.io~1prune"),
        Some(&json!("disabled"))
    );
}

fn deploy() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "web"},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "side:1"}]}}}})
}

fn rule(v: Value) -> IgnoreRule {
    IgnoreRule::parse(&v, "spec.ignoreDifferences[0]").unwrap()
}

/// ignoreDifferences jsonPointers: the pointed field is left out (~1 is /).
#[test]
fn ignore_json_pointers() {
    let r = rule(
        json!({"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas", "/metadata/annotations/a~1b"]}),
    );
    let mut d = deploy();
    d["metadata"]["annotations"] = json!({"a/b": "x", "c": "y"});
    strip_ignored(&mut d, None, std::slice::from_ref(&r));
    assert_eq!(d.pointer("/spec/replicas"), None);
    assert_eq!(d.pointer("/metadata/annotations"), Some(&json!({"c": "y"})));
    // Another kind, name or namespace: untouched.
    let other = rule(
        json!({"group": "apps", "kind": "Deployment", "name": "api", "jsonPointers": ["/spec/replicas"]}),
    );
    let mut d = deploy();
    strip_ignored(&mut d, None, &[other]);
    assert_eq!(d.pointer("/spec/replicas"), Some(&json!(3)));
    let core = rule(json!({"kind": "ConfigMap", "jsonPointers": ["/data"]}));
    assert!(
        core.matches(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
    );
}

/// ignoreDifferences jqPathExpressions (the documented subset): fields, `[]`, `[N]`,
/// `select(.name == "...")`; other jq constructs are refused by name.
#[test]
fn ignore_jq_paths() {
    let r = rule(
        json!({"group": "apps", "kind": "Deployment", "jqPathExpressions": [
        ".spec.template.spec.containers[] | select(.name == \"sidecar\")",
        ".spec.template.spec.containers[].env",
        ".spec[\"replicas\"]"]}),
    );
    let mut d = deploy();
    strip_ignored(&mut d, None, &[r]);
    assert_eq!(d.pointer("/spec/replicas"), None);
    assert_eq!(
        d.pointer("/spec/template/spec/containers"),
        Some(&json!([{"name": "web", "image": "web:1"}]))
    );
    let idx = parse_jq_path(".spec.template.spec.containers[0].image").unwrap();
    let mut d = deploy();
    remove_path(&mut d, &idx);
    assert_eq!(d.pointer("/spec/template/spec/containers/0/image"), None);
    for bad in [
        ".spec | length",
        ".spec.containers | map(.name)",
        "spec.replicas",
        ".. | .image?",
    ] {
        let e = IgnoreRule::parse(
            &json!({"kind": "Deployment", "jqPathExpressions": [bad]}),
            "spec.ignoreDifferences[2]",
        )
        .unwrap_err();
        assert_eq!(
            e.field, "spec.ignoreDifferences[2].jqPathExpressions[0]",
            "{bad}"
        );
        assert!(
            e.message.contains("unsupported") || e.message.contains("not a comparison"),
            "{bad}: {e}"
        );
    }
}

/// ignoreDifferences managedFieldsManagers: fields the named managers own in the live
/// object (managedFields fieldsV1, list elements by key) are left out.
#[test]
fn ignore_managed_fields_managers() {
    let mut live = deploy();
    live["metadata"]["managedFields"] = json!([
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "injector", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}}}}}}}},
        {"manager": "capstan", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]);
    let r = rule(
        json!({"group": "apps", "kind": "Deployment", "managedFieldsManagers": ["kube-controller-manager", "injector"]}),
    );
    let mut d = deploy();
    strip_ignored(&mut d, Some(&live), &[r]);
    assert_eq!(d.pointer("/spec/replicas"), None);
    assert_eq!(
        d.pointer("/spec/template/spec/containers/1"),
        Some(&json!({"name": "sidecar"}))
    );
    assert_eq!(
        d.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("web:1"))
    );
}

/// RespectIgnoreDifferences: the desired object keeps the live values of ignored fields.
#[test]
fn respect_ignore_differences_keeps_live_values() {
    let r = rule(
        json!({"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"],
        "jqPathExpressions": [".spec.template.spec.containers[] | select(.name == \"web\") | .image"]}),
    );
    let mut live = deploy();
    live["spec"]["replicas"] = json!(7);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:live");
    let mut desired = deploy();
    desired["spec"]["template"]["spec"]["containers"][1]["image"] = json!("side:2");
    respect_ignored(&mut desired, Some(&live), std::slice::from_ref(&r));
    assert_eq!(desired.pointer("/spec/replicas"), Some(&json!(7)));
    assert_eq!(
        desired.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("web:live"))
    );
    // Not ignored: the desired value stays.
    assert_eq!(
        desired.pointer("/spec/template/spec/containers/1/image"),
        Some(&json!("side:2"))
    );
    // No live object yet: the desired object as it is.
    let mut fresh = deploy();
    respect_ignored(&mut fresh, None, &[r]);
    assert_eq!(fresh, deploy());
}

fn res(kind: &str, name: &str, sync: &str, health: Option<&str>) -> ResourceStatus {
    ResourceStatus {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        namespace: "web".into(),
        name: name.into(),
        sync: sync.into(),
        health: health.map(str::to_string),
        hook: false,
    }
}

/// Application status: Synced/Healthy after a successful sync of healthy resources;
/// OutOfSync and the worst health otherwise; operationState, resources, summary.
#[test]
fn status_as_argo_cd_writes_it() {
    let a = app(json!({}));
    let ok = SyncOutcome {
        revision: "abc".into(),
        phase: "Succeeded".into(),
        message: "successfully synced (all tasks run)".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: "2026-01-01T00:00:05Z".into(),
        resources: vec![
            res("Deployment", "web", "Synced", Some("Healthy")),
            res("ConfigMap", "c", "Synced", None),
        ],
    };
    let s = application_status(&a, &ok, &images_of(&[deploy()]));
    assert_eq!(s.pointer("/sync/status"), Some(&json!("Synced")));
    assert_eq!(s.pointer("/sync/revision"), Some(&json!("abc")));
    assert_eq!(s.pointer("/health/status"), Some(&json!("Healthy")));
    assert_eq!(
        s.pointer("/operationState/phase"),
        Some(&json!("Succeeded"))
    );
    assert_eq!(
        s.pointer("/resources/0"),
        Some(
            &json!({"group": "apps", "version": "v1", "kind": "Deployment", "name": "web", "status": "Synced", "namespace": "web", "health": {"status": "Healthy"}})
        )
    );
    assert_eq!(
        s.pointer("/summary/images"),
        Some(&json!(["side:1", "web:1"]))
    );
    assert_eq!(s.pointer("/sourceType"), Some(&json!("Directory")));
    let bad = SyncOutcome {
        phase: "Failed".into(),
        resources: vec![res("Deployment", "web", "OutOfSync", Some("Progressing"))],
        ..ok
    };
    let s = application_status(&a, &bad, &[]);
    assert_eq!(s.pointer("/sync/status"), Some(&json!("OutOfSync")));
    assert_eq!(s.pointer("/health/status"), Some(&json!("Progressing")));
}

/// capstan.io/depends-on: NAME, KIND/NAME, KIND/NAMESPACE/NAME; malformed entries named.
#[test]
fn depends_on_annotation() {
    let a = app(
        json!({"metadata": {"annotations": {DEPENDS_ON: "widget-crds, Kustomization/infra\nKustomization/flux-system/base"}}}),
    );
    assert_eq!(
        depends_on(&a).unwrap(),
        vec![
            (
                "Application".to_string(),
                "argocd".to_string(),
                "widget-crds".to_string()
            ),
            ("Kustomization".into(), "argocd".into(), "infra".into()),
            ("Kustomization".into(), "flux-system".into(), "base".into())
        ]
    );
    let e = depends_on(&app(
        json!({"metadata": {"annotations": {DEPENDS_ON: "a/b/c/d"}}}),
    ))
    .unwrap_err();
    assert!(
        e.field.contains("capstan.io/depends-on") && e.message.contains("a/b/c/d"),
        "{e}"
    );
    assert!(depends_on(&app(json!({}))).unwrap().is_empty());
}
