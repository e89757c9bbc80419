//! Apply tests against a real API server (skipped when the test bed is not installed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_apply::{
    Action, Applier, ApplyError, ApplyEvent, ApplyOptions, ApplyUnit, ObjectRef, PlanOp, UnitRef,
};
use capstan_testbed::TestCluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

fn unit(name: &str, objects: Vec<Value>) -> ApplyUnit {
    let mut u = ApplyUnit::new(UnitRef::new("Kustomization", "flux-system", name), objects);
    u.timeout = Duration::from_secs(30);
    u
}

fn cm(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":ns},"data":data})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":name}})
}

fn deployment(ns: &str, name: &str) -> Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":name,"namespace":ns},
        "spec":{"replicas":1,"selector":{"matchLabels":{"app":name}},
            "template":{"metadata":{"labels":{"app":name}},
                "spec":{"containers":[{"name":"web","image":"nginx:1.19","ports":[{"containerPort":80}]}]}}}})
}

fn crd() -> Value {
    json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{"name":"widgets.example.com"},
        "spec":{"group":"example.com","scope":"Namespaced",
            "names":{"kind":"Widget","plural":"widgets","singular":"widget","listKind":"WidgetList"},
            "versions":[{"name":"v1","served":true,"storage":true,
                "schema":{"openAPIV3Schema":{"type":"object","properties":{
                    "spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}})
}

fn actions(r: &capstan_apply::UnitResult) -> Vec<(String, Action)> {
    r.objects
        .iter()
        .map(|o| (o.object.to_string(), o.action.clone()))
        .collect()
}

#[tokio::test]
async fn crd_and_custom_resource_in_one_unit() {
    let Some(cluster) = TestCluster::start("apply-crd") else {
        return;
    };
    let applier = Applier::new(cluster.client().await);
    let widget = json!({"apiVersion":"example.com/v1","kind":"Widget",
        "metadata":{"name":"w1","namespace":"widgets"},"spec":{"size":3}});
    // Deliberately out of order: the CR comes first.
    let u = unit("widgets", vec![widget, crd(), namespace("widgets")]);

    let plan = applier.plan(&u).await.expect("plan");
    assert!(
        plan.changes.iter().all(|c| c.op == PlanOp::Create),
        "{plan:#?}"
    );

    let events = Arc::new(Mutex::new(Vec::<ApplyEvent>::new()));
    let sink = events.clone();
    let opts = ApplyOptions::with_events(move |e| sink.lock().unwrap().push(e.clone()));
    let result = applier.apply(&u, &opts).await.expect("first apply");
    assert_eq!(
        actions(&result),
        vec![
            ("Namespace/widgets".to_string(), Action::Created),
            (
                "CustomResourceDefinition/widgets.example.com".to_string(),
                Action::Created
            ),
            ("Widget/widgets/w1".to_string(), Action::Created),
        ]
    );
    assert_eq!(events.lock().unwrap().len(), 3);
    assert_eq!(result.inventory.len(), 3);

    let health = applier
        .health(&ObjectRef::new("example.com/v1", "Widget", "widgets", "w1"))
        .await
        .unwrap();
    assert!(health.is_current(), "{health}");

    let again = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("second apply");
    assert!(again.is_unchanged(), "{:?}", actions(&again));

    // A kind nobody defines: plans as Create (another unit may bring the CRD), fails to apply.
    let gadget = json!({"apiVersion":"example.com/v1","kind":"Gadget",
        "metadata":{"name":"g","namespace":"widgets"}});
    let orphan = unit("gadgets", vec![gadget]);
    let plan = applier.plan(&orphan).await.expect("lenient plan");
    assert_eq!(plan.changes[0].op, PlanOp::Create);
    assert_eq!(plan.changes[0].object.namespace, "widgets");
    let err = applier
        .apply(&orphan, &ApplyOptions::default())
        .await
        .expect_err("unknown kind");
    assert!(matches!(err, ApplyError::UnknownKind { .. }), "{err}");

    // Uninstall in reverse order: the custom resource before its CRD, the namespace last.
    let deleted = applier
        .delete_unit(&u.id, &ApplyOptions::default())
        .await
        .expect("delete unit");
    assert_eq!(
        actions(&deleted),
        vec![
            ("Widget/widgets/w1".to_string(), Action::Deleted),
            (
                "CustomResourceDefinition/widgets.example.com".to_string(),
                Action::Deleted
            ),
            ("Namespace/widgets".to_string(), Action::Deleted),
        ]
    );
    assert!(applier.inventory(&u.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn prune_respects_inventory_and_annotations() {
    let Some(cluster) = TestCluster::start("apply-prune") else {
        return;
    };
    let client = cluster.client().await;
    let applier = Applier::new(client.clone());
    let mut keep = cm("default", "keep", json!({"k":"v"}));
    keep["metadata"]["annotations"] = json!({"kustomize.toolkit.fluxcd.io/prune":"disabled"});
    let first = unit(
        "apps",
        vec![
            cm("default", "a", json!({"x":"1"})),
            cm("default", "b", json!({"x":"2"})),
            keep,
        ],
    );
    applier
        .apply(&first, &ApplyOptions::default())
        .await
        .expect("apply");

    // Created by someone else, not in any inventory.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let foreign = cm("default", "foreign", json!({"y":"1"}));
    cms.patch(
        "foreign",
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(&foreign),
    )
    .await
    .expect("foreign object");

    let second = unit("apps", vec![cm("default", "a", json!({"x":"1"}))]);
    let plan = applier.plan(&second).await.unwrap();
    let prunes: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.op == PlanOp::Prune)
        .map(|c| c.object.to_string())
        .collect();
    // `keep` is annotated prune: disabled, so only `b` would go.
    assert_eq!(prunes, ["ConfigMap/default/b"]);

    let result = applier
        .apply(&second, &ApplyOptions::default())
        .await
        .expect("apply 2");
    let pruned: Vec<(String, Action)> = result
        .pruned
        .iter()
        .map(|o| (o.object.name.clone(), o.action.clone()))
        .collect();
    assert!(
        pruned.contains(&("b".to_string(), Action::Pruned)),
        "{pruned:?}"
    );
    assert!(
        pruned.contains(&("keep".to_string(), Action::PruneSkipped)),
        "{pruned:?}"
    );
    assert!(cms.get_opt("b").await.unwrap().is_none(), "b is pruned");
    assert!(
        cms.get_opt("keep").await.unwrap().is_some(),
        "keep survives"
    );
    assert!(
        cms.get_opt("foreign").await.unwrap().is_some(),
        "foreign survives"
    );
    assert!(cms.get_opt("a").await.unwrap().is_some());
    let inv = applier.inventory(&second.id).await.unwrap();
    assert_eq!(inv.len(), 1, "{inv:?}");

    // Uninstall: deletes what the inventory lists, and the inventory.
    let deleted = applier
        .delete_unit(&second.id, &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(deleted.objects.len(), 1);
    assert_eq!(deleted.objects[0].action, Action::Deleted);
    assert!(cms.get_opt("a").await.unwrap().is_none());
    assert!(cms.get_opt("foreign").await.unwrap().is_some());
    assert!(applier.inventory(&second.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn immutable_change_needs_force() {
    let Some(cluster) = TestCluster::start("apply-immutable") else {
        return;
    };
    let client = capstan_apply::client_from_kubeconfig(Some(cluster.kubeconfig_path()), None)
        .await
        .expect("client from kubeconfig");
    let applier = Applier::new(client.clone());
    let svc = |ip: &str| {
        json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},
            "spec":{"clusterIP":ip,"selector":{"app":"web"},"ports":[{"port":80}]}})
    };
    applier
        .apply(
            &unit("svc", vec![svc("10.96.0.50")]),
            &ApplyOptions::default(),
        )
        .await
        .expect("create");

    let mut changed = unit("svc", vec![svc("10.96.0.51")]);
    let plan = applier.plan(&changed).await.unwrap();
    assert!(
        matches!(&plan.changes[0].op, PlanOp::Replace { reason }
            if reason.contains("immutable") || reason.contains("may not change")),
        "{plan:#?}"
    );
    let err = applier
        .apply(&changed, &ApplyOptions::default())
        .await
        .expect_err("immutable change without force");
    assert!(matches!(err, ApplyError::Immutable { .. }), "{err}");

    changed.force = true;
    let result = applier
        .apply(&changed, &ApplyOptions::default())
        .await
        .expect("forced");
    assert_eq!(result.objects[0].action, Action::Replaced);
    let services: Api<Service> = Api::namespaced(client, "default");
    let live = services.get("web").await.unwrap();
    assert_eq!(live.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.51"));
}

#[tokio::test]
async fn reapply_sends_no_writes() {
    let Some(cluster) = TestCluster::start("apply-idempotent") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let applier = Applier::new(client);
    let objects = vec![
        namespace("shop"),
        json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"shop","namespace":"shop"}}),
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"shop-reader"},
            "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list"]}]}),
        cm("shop", "settings", json!({"color":"blue"})),
        json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","namespace":"shop"},
            "stringData":{"password":"hunter2"}}),
        json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"},
            "spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}),
        deployment("shop", "web"),
    ];
    let mut objects = objects;
    // Many objects of one kind: applied concurrently.
    objects.extend((0..20).map(|i| cm("shop", &format!("cm-{i}"), json!({"i": i.to_string()}))));
    let u = unit("shop", objects);
    let first = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("first");
    assert!(first.objects.iter().all(|o| o.action == Action::Created));
    assert!(!counter.writes().is_empty());

    counter.reset();
    let second = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("second");
    assert!(second.is_unchanged(), "{:?}", actions(&second));
    assert!(
        counter.writes().is_empty(),
        "unexpected writes: {:#?}",
        counter.writes()
    );
    let plan = applier.plan(&u).await.unwrap();
    assert!(!plan.has_changes(), "{plan:#?}");

    // A changed secret: the plan shows the key changed, never the value.
    let mut changed = u.clone();
    changed.objects[4]["stringData"]["password"] = json!("correct-horse");
    let plan = applier.plan(&changed).await.unwrap();
    let secret = plan
        .changes
        .iter()
        .find(|c| c.object.kind == "Secret")
        .unwrap();
    assert_eq!(secret.op, PlanOp::Update);
    let diff = secret.diff.clone().unwrap();
    assert!(
        !diff.contains("hunter2") && !diff.contains("correct-horse"),
        "{diff}"
    );
    assert!(!diff.contains("aHVudGVyMg"), "{diff}"); // base64 of hunter2
    assert!(diff.contains("***"), "{diff}");

    // A malformed Secret: the API server echoes the value in its error; capstan removes it.
    let bad = unit(
        "bad-secret",
        vec![
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"bad","namespace":"shop"},
            "stringData":{"password":["hunter2"]}}),
        ],
    );
    let applier = applier.with_retry(1, Duration::from_millis(10));
    let err = applier
        .apply(&bad, &ApplyOptions::default())
        .await
        .expect_err("malformed secret");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = applier.plan(&bad).await.expect_err("malformed secret");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn deployment_health_wait_and_timeout() {
    let Some(cluster) = TestCluster::start("apply-health") else {
        return;
    };
    let client = cluster.client().await;
    let applier = Arc::new(Applier::new(client.clone()));

    // No controller runs: without a status the wait times out and names the object.
    let mut slow = unit("slow", vec![deployment("default", "slow")]);
    slow.wait = true;
    slow.timeout = Duration::from_secs(2);
    let err = applier
        .apply(&slow, &ApplyOptions::default())
        .await
        .expect_err("times out");
    match &err {
        ApplyError::HealthTimeout { not_ready, .. } => {
            assert_eq!(not_ready.len(), 1);
            assert_eq!(not_ready[0].0.to_string(), "Deployment/default/slow");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("Deployment/default/slow"), "{err}");

    // The test plays the controller: once the status says ready, the wait succeeds. The
    // status is written once the applier reports that it waits for it (an event), never
    // after a fixed time.
    let mut web = unit("web", vec![deployment("default", "web")]);
    web.wait = true;
    web.timeout = Duration::from_secs(30);
    let (waiting_tx, mut waiting) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = {
        let applier = applier.clone();
        let web = web.clone();
        tokio::spawn(async move {
            let opts = ApplyOptions {
                poll_interval: Duration::from_millis(200),
                ..ApplyOptions::with_events(move |e: &ApplyEvent| {
                    if let Action::Waiting(m) = &e.action {
                        let _ = waiting_tx.send(format!("{}: {m}", e.object));
                    }
                })
            };
            applier.apply(&web, &opts).await
        })
    };
    let first = tokio::time::timeout(Duration::from_secs(20), waiting.recv())
        .await
        .expect("the applier waits for the status")
        .expect("a waiting event");
    assert!(first.contains("Deployment/default/web"), "{first}");
    assert!(!task.is_finished(), "must wait for the status");
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    let generation = deployments
        .get_opt("web")
        .await
        .unwrap()
        .expect("applied before the wait")
        .metadata
        .generation;
    let status = json!({"status":{"observedGeneration":generation.unwrap(),"replicas":1,"updatedReplicas":1,
        "readyReplicas":1,"availableReplicas":1,"conditions":[
            {"type":"Available","status":"True","reason":"MinimumReplicasAvailable","message":"ok",
             "lastUpdateTime":"2021-01-01T00:00:00Z","lastTransitionTime":"2021-01-01T00:00:00Z"},
            {"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable","message":"ok",
             "lastUpdateTime":"2021-01-01T00:00:00Z","lastTransitionTime":"2021-01-01T00:00:00Z"}]}});
    deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    let result = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("apply finishes")
        .unwrap()
        .expect("healthy");
    assert_eq!(result.health.len(), 1);
    assert!(result.health[0].1.is_current(), "{:?}", result.health);
}

#[tokio::test]
async fn health_checks_target_namespace_and_fail_fast() {
    let Some(cluster) = TestCluster::start("apply-checks") else {
        return;
    };
    let client = cluster.client().await;
    let applier = Applier::new(client.clone());

    // target_namespace moves namespaced objects; cluster-scoped ones keep no namespace.
    let mut u = ApplyUnit::new(
        UnitRef::new("HelmRelease", "apps", "podinfo"),
        vec![
            namespace("team"),
            cm("elsewhere", "settings", json!({"a":"1"})),
            deployment("", "podinfo"),
        ],
    );
    u.target_namespace = Some("team".into());
    u.timeout = Duration::from_secs(3);
    u.health_checks = vec![ObjectRef::new("apps/v1", "Deployment", "team", "podinfo")];
    let events = Arc::new(Mutex::new(Vec::<ApplyEvent>::new()));
    let sink = events.clone();
    let opts = ApplyOptions {
        poll_interval: Duration::from_millis(100),
        ..ApplyOptions::with_events(move |e| sink.lock().unwrap().push(e.clone()))
    };

    // Only the health check is waited for (wait is false), and it never becomes ready.
    let err = applier
        .apply(&u, &opts)
        .await
        .expect_err("health check times out");
    assert_eq!(
        err.not_ready()
            .iter()
            .map(|(o, _)| o.to_string())
            .collect::<Vec<_>>(),
        ["Deployment/team/podinfo"]
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let settings = cms
        .get("settings")
        .await
        .expect("moved to the target namespace");
    let labels = settings.metadata.labels.unwrap();
    assert_eq!(labels["capstan.io/kind"], "helmrelease");
    assert_eq!(labels["capstan.io/namespace"], "apps");
    assert_eq!(labels["capstan.io/name"], "podinfo");
    {
        let events = events.lock().unwrap();
        assert!(events
            .iter()
            .any(|e| e.object.kind == "Deployment" && e.action == Action::Created));
        assert!(events
            .iter()
            .any(|e| e.object.kind == "Deployment" && matches!(e.action, Action::Waiting(_))));
    }
    // Objects applied before the failed wait are in the inventory.
    assert_eq!(applier.inventory(&u.id).await.unwrap().len(), 3);

    // A Failed object ends the wait early.
    let deployments: Api<Deployment> = Api::namespaced(client, "team");
    let status = json!({"status":{"observedGeneration":1,"conditions":[
        {"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded","message":"too slow",
         "lastUpdateTime":"2021-01-01T00:00:00Z","lastTransitionTime":"2021-01-01T00:00:00Z"}]}});
    deployments
        .patch_status("podinfo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    u.timeout = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let err = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect_err("fails fast");
    assert!(matches!(err, ApplyError::HealthFailed { .. }), "{err}");
    assert!(err.to_string().contains("too slow"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Requests that read one collection (a LIST): GETs of a path without an object name.
fn is_list(r: &capstan_testbed::RecordedRequest, collections: &[&str]) -> bool {
    let path = r.path.split('?').next().unwrap_or("");
    r.method == "GET" && collections.iter().any(|c| path.ends_with(c))
}

fn steady_objects() -> Vec<Value> {
    let mut objects = vec![
        namespace("steady"),
        json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","namespace":"steady"},
            "stringData":{"password":"hunter2"}}),
        json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"steady"},
            "spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}),
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"steady-reader"},
            "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list"]}]}),
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"steady-writer"},
            "rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["update"]}]}),
    ];
    objects.extend((0..3).map(|i| deployment("steady", &format!("web-{i}"))));
    objects.extend((0..5).map(|i| {
        cm(
            "steady",
            &format!("cm-{i}"),
            json!({"key": format!("v{i}")}),
        )
    }));
    objects
}

#[tokio::test]
async fn unchanged_reapply_reads_once_per_kind_and_namespace() {
    let Some(cluster) = TestCluster::start("apply-steady") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let applier = Applier::new(client);
    let u = unit("steady", steady_objects());
    let first = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("first");
    assert!(first.objects.iter().all(|o| o.action == Action::Created));

    for round in 0..3 {
        counter.reset();
        applier.reset_stats();
        let again = applier
            .apply(&u, &ApplyOptions::default())
            .await
            .expect("again");
        assert!(again.is_unchanged(), "{:?}", actions(&again));
        let requests = counter.requests();
        assert!(
            counter.writes().is_empty(),
            "round {round}: unexpected writes: {:#?}",
            counter.writes()
        );
        assert!(
            requests.iter().all(|r| r.method == "GET"),
            "round {round}: only reads (no dry run): {requests:#?}"
        );
        // The inventory, then one read per kind and namespace: Namespace, Secret and Service
        // (one object each: a GET), ConfigMaps, Deployments and ClusterRoles (a LIST each).
        assert_eq!(requests.len(), 1 + 6, "round {round}: {requests:#?}");
        let lists = requests
            .iter()
            .filter(|r| is_list(r, &["/configmaps", "/deployments", "/clusterroles"]))
            .count();
        assert_eq!(lists, 3, "round {round}: {requests:#?}");
        let stats = applier.stats();
        assert_eq!(stats.skipped as usize, u.objects.len(), "{stats:?}");
        assert_eq!(stats.dry_runs, 0, "{stats:?}");
        assert_eq!(stats.applies, 0, "{stats:?}");
        assert_eq!(stats.inventory_writes, 0, "{stats:?}");
    }

    // A plan (`capstan diff`) takes the same path: no dry run for unchanged objects.
    counter.reset();
    let plan = applier.plan(&u).await.unwrap();
    assert!(!plan.has_changes(), "{plan:#?}");
    assert!(counter
        .requests()
        .iter()
        .all(|r| !r.is_dry_run() && r.method == "GET"));

    // A fresh applier (the next CLI run) has no state but the inventory: the same count,
    // plus discovery.
    let (client, counter) = cluster.counting_client().await;
    let fresh = Applier::new(client);
    let again = fresh
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("fresh");
    assert!(again.is_unchanged(), "{:?}", actions(&again));
    assert!(counter.writes().is_empty(), "{:#?}", counter.writes());
    assert!(counter.requests().iter().all(|r| !r.is_dry_run()));
    assert_eq!(fresh.stats().skipped as usize, u.objects.len());
}

#[tokio::test]
async fn drift_is_corrected_and_reported() {
    let Some(cluster) = TestCluster::start("apply-drift") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let applier = Applier::new(client.clone());
    let u = unit("steady", steady_objects());
    applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("first");

    // Another field manager takes a field capstan owns (server-side apply, force).
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "steady");
    let intruder = json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"cm-1","namespace":"steady"},"data":{"key":"theirs"}});
    cms.patch(
        "cm-1",
        &PatchParams::apply("intruder").force(),
        &Patch::Apply(&intruder),
    )
    .await
    .expect("intruder apply");
    // Someone deletes an object.
    cms.delete("cm-3", &Default::default())
        .await
        .expect("delete");
    // Someone scales a Deployment (an update by another manager).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "steady");
    deployments
        .patch(
            "web-2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec":{"replicas":5}})),
        )
        .await
        .expect("scale");
    // Someone edits a Secret value capstan set through stringData.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "steady");
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(json!({"data":{"password":"b3RoZXI="}})),
        )
        .await
        .expect("edit secret");

    // `capstan diff` reports each drift.
    let plan = applier.plan(&u).await.unwrap();
    let mut changed: Vec<(String, PlanOp)> = plan
        .changes
        .iter()
        .filter(|c| c.op != PlanOp::Unchanged)
        .map(|c| (c.object.to_string(), c.op.clone()))
        .collect();
    changed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changed,
        vec![
            ("ConfigMap/steady/cm-1".to_string(), PlanOp::Update),
            ("ConfigMap/steady/cm-3".to_string(), PlanOp::Create),
            ("Deployment/steady/web-2".to_string(), PlanOp::Update),
            ("Secret/steady/creds".to_string(), PlanOp::Update),
        ]
    );

    // Apply corrects exactly these.
    counter.reset();
    let fixed = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("fix");
    let mut touched: Vec<(String, Action)> = actions(&fixed)
        .into_iter()
        .filter(|(_, a)| *a != Action::Unchanged)
        .collect();
    touched.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        touched,
        vec![
            ("ConfigMap/steady/cm-1".to_string(), Action::Configured),
            ("ConfigMap/steady/cm-3".to_string(), Action::Created),
            ("Deployment/steady/web-2".to_string(), Action::Configured),
            ("Secret/steady/creds".to_string(), Action::Configured),
        ]
    );
    let object_writes: Vec<_> = counter
        .writes()
        .into_iter()
        .filter(|r| !r.path.contains("/namespaces/capstan-system/"))
        .collect();
    assert_eq!(object_writes.len(), 4, "{object_writes:#?}");
    assert_eq!(
        cms.get("cm-1").await.unwrap().data.unwrap()["key"],
        "v1",
        "capstan's value is back"
    );
    assert_eq!(
        deployments
            .get("web-2")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(1)
    );
    assert!(cms.get_opt("cm-3").await.unwrap().is_some());

    // And then the steady state costs no write again.
    counter.reset();
    let again = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("again");
    assert!(again.is_unchanged(), "{:?}", actions(&again));
    assert!(counter.writes().is_empty(), "{:#?}", counter.writes());
    assert!(counter.requests().iter().all(|r| !r.is_dry_run()));
}

#[tokio::test]
async fn server_normalised_values_do_not_reapply() {
    let Some(cluster) = TestCluster::start("apply-defaulted") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let applier = Applier::new(client.clone());
    // The API server stores `cpu: "0.5"` as `500m` and `memory: 1024Mi` as `1Gi`, and fills
    // defaults (imagePullPolicy, strategy, targetPort, ...) capstan never sent.
    let mut web = deployment("default", "web");
    web["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits":{"cpu":"0.5","memory":"1024Mi"}});
    let limits = json!({"apiVersion":"v1","kind":"LimitRange","metadata":{"name":"limits","namespace":"default"},
        "spec":{"limits":[{"type":"Container","default":{"cpu":"0.25"}}]}});
    let u = unit("defaulted", vec![web, limits]);
    applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("first");
    let live = Api::<Deployment>::namespaced(client, "default")
        .get("web")
        .await
        .unwrap();
    let limits = live.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["cpu"].0, "500m", "the server normalised the value");
    assert_eq!(limits["memory"].0, "1Gi", "the server normalised the value");
    for round in 0..3 {
        counter.reset();
        applier.reset_stats();
        let again = applier
            .apply(&u, &ApplyOptions::default())
            .await
            .expect("again");
        assert!(again.is_unchanged(), "round {round}: {:?}", actions(&again));
        assert!(
            counter.writes().is_empty(),
            "round {round}: {:#?}",
            counter.writes()
        );
        let stats = applier.stats();
        assert_eq!(stats.dry_runs, 0, "round {round}: {stats:?}");
        assert_eq!(stats.skipped, 2, "round {round}: {stats:?}");
    }
}

/// A live-state cache for tests: the reduced objects of a unit, read once with GETs (as the
/// agent's watch cache holds them), or marked missing.
struct SnapshotCache {
    objects: Mutex<std::collections::HashMap<String, Value>>,
}

impl capstan_apply::live::LiveState for SnapshotCache {
    fn lookup(&self, r: &ObjectRef) -> capstan_apply::live::Cached {
        match self.objects.lock().unwrap().get(&r.id()) {
            Some(v) => capstan_apply::live::Cached::Present(v.clone()),
            None => capstan_apply::live::Cached::Missing,
        }
    }
    fn track(&self, _: &kube::discovery::ApiResource, _: bool) {}
}

async fn snapshot(client: &kube::Client, refs: &[ObjectRef]) -> SnapshotCache {
    let mut objects = std::collections::HashMap::new();
    for r in refs {
        let gvk = kube::api::GroupVersionKind::gvk(&r.group, &r.version, &r.kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
        let api: Api<kube::api::DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced
        {
            Api::namespaced_with(client.clone(), &r.namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        if let Some(o) = api.get_opt(&r.name).await.unwrap() {
            let full = serde_json::to_value(&o).unwrap();
            objects.insert(
                r.id(),
                capstan_apply::drift::reduce_live(&full, capstan_apply::FIELD_MANAGER),
            );
        }
    }
    SnapshotCache {
        objects: Mutex::new(objects),
    }
}

/// With a live-state cache (the agent's watch cache) an unchanged unit costs no request at
/// all: inventory and objects come from the cache. The first apply writes the inventory
/// once. A cache showing a drifted object (or missing one) falls back to the API server,
/// which corrects exactly that object.
#[tokio::test]
async fn a_live_state_cache_makes_unchanged_applies_free() {
    let Some(cluster) = TestCluster::start("apply-cache") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let u = unit("steady", steady_objects());
    let plain = Applier::new(client.clone());
    let first = plain
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("first");
    assert!(first.objects.iter().all(|o| o.action == Action::Created));
    assert_eq!(
        plain.stats().inventory_writes,
        1,
        "a first apply writes the inventory once: {:?}",
        plain.stats()
    );

    let mut refs = first.inventory.clone();
    refs.push(capstan_apply::inventory::inventory_ref(&u.id));
    let cache = Arc::new(snapshot(&client, &refs).await);
    let applier = Applier::new(client.clone()).with_live_state(cache.clone());
    // Discovery is cached per applier: warm it.
    applier.plan(&u).await.unwrap();
    for round in 0..2 {
        counter.reset();
        applier.reset_stats();
        let again = applier
            .apply(&u, &ApplyOptions::default())
            .await
            .expect("again");
        assert!(again.is_unchanged(), "{:?}", actions(&again));
        assert!(
            counter.requests().is_empty(),
            "round {round}: {:#?}",
            counter.requests()
        );
        let stats = applier.stats();
        assert_eq!(stats.skipped as usize, u.objects.len(), "{stats:?}");
        // Every object and the inventory.
        assert_eq!(stats.cached as usize, u.objects.len() + 1, "{stats:?}");
    }

    // Someone scales web-1; the cache has seen it (as a watch would) and one object is
    // missing from it (not watched yet): only the scaled one is written.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "steady");
    deployments
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec":{"replicas":3}})),
        )
        .await
        .unwrap();
    let web1 = ObjectRef::new("apps/v1", "Deployment", "steady", "web-1");
    let fresh = snapshot(&client, std::slice::from_ref(&web1)).await;
    {
        let mut objects = cache.objects.lock().unwrap();
        objects.extend(fresh.objects.into_inner().unwrap());
        objects.remove(&ObjectRef::new("v1", "ConfigMap", "steady", "cm-2").id());
    }
    counter.reset();
    let fixed = applier
        .apply(&u, &ApplyOptions::default())
        .await
        .expect("fix");
    let touched: Vec<(String, Action)> = actions(&fixed)
        .into_iter()
        .filter(|(_, a)| *a != Action::Unchanged)
        .collect();
    assert_eq!(
        touched,
        [("Deployment/steady/web-1".to_string(), Action::Configured)]
    );
    assert_eq!(counter.writes().len(), 1, "{:#?}", counter.writes());
    assert_eq!(
        deployments
            .get("web-1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(1)
    );
}
