//! capstan-status against a real kube-apiserver (the shared test bed).

use capstan_status::conditions::{BUILD_FAILED, READY, RECONCILIATION_SUCCEEDED, STALLED};
use capstan_status::{
    ensure_crds, ArtifactStatus, EventRecorder, InventoryEntry, ObjectKey, Outcome, StatusClient,
    StatusUpdate,
};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn dyn_api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, kind));
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn create(client: &kube::Client, obj: Value) {
    let api_version = obj["apiVersion"].as_str().unwrap().to_string();
    let kind = obj["kind"].as_str().unwrap().to_string();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
    let api = dyn_api(client, &api_version, &kind, ns.as_deref());
    let o: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &o).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating {kind}: {e}"),
    }
}

async fn namespace(client: &kube::Client, name: &str) {
    create(
        client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

async fn kustomization(client: &kube::Client, ns: &str, name: &str, annotations: Value) {
    create(
        client,
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"interval": "5m", "path": "./apps", "prune": true,
                     "sourceRef": {"kind": "GitRepository", "name": "repo"}, "suspend": true}
        }),
    )
    .await;
}

fn ready_update(rev: &str, generation: Option<i64>) -> StatusUpdate {
    StatusUpdate {
        last_applied_revision: Some(rev.into()),
        last_attempted_revision: Some(rev.into()),
        inventory: Some(vec![
            InventoryEntry::new("", "team", "v1", "Namespace"),
            InventoryEntry::new("team", "web", "apps/v1", "Deployment"),
        ]),
        ..StatusUpdate::new(
            Outcome::Ready {
                reason: String::new(),
                message: format!("Applied revision: {rev}"),
            },
            generation,
        )
    }
}

#[tokio::test]
async fn ensure_crds_twice_creates_nothing_the_second_time_and_columns_print() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    ensure_crds(&client).await.expect("first ensure");
    let (counting, counter) = cluster.counting_client().await;
    let again = ensure_crds(&counting).await.expect("second ensure");
    assert!(again.is_empty(), "{again:?}");
    assert!(counter.writes().is_empty(), "{:?}", counter.writes());

    // The CRDs read back with Flux's printer columns and short names.
    let crds = dyn_api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
    );
    let ks = crds
        .get("kustomizations.kustomize.toolkit.fluxcd.io")
        .await
        .unwrap();
    assert_eq!(ks.data["spec"]["names"]["shortNames"], json!(["ks"]));
    let cols: Vec<&str> = ks.data["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Age", "Ready", "Status"]);
    for name in [
        "helmreleases.helm.toolkit.fluxcd.io",
        "gitrepositories.source.toolkit.fluxcd.io",
        "ocirepositories.source.toolkit.fluxcd.io",
        "helmrepositories.source.toolkit.fluxcd.io",
        "receivers.notification.toolkit.fluxcd.io",
    ] {
        crds.get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // `kubectl get ks -A` prints READY/STATUS from the Ready condition.
    namespace(&client, "st-print").await;
    kustomization(&client, "st-print", "apps", json!({})).await;
    let status = StatusClient::new(client.clone());
    let key = ObjectKey::kustomization("st-print", "apps");
    assert!(status
        .write(&key, &ready_update("main@sha1:1234", Some(1)))
        .await
        .unwrap());
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["get", "ks", "-A"])
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("{text}");
            let header = text.lines().next().unwrap_or_default();
            for col in ["NAMESPACE", "NAME", "AGE", "READY", "STATUS"] {
                assert!(header.contains(col), "{text}");
            }
            let row = text
                .lines()
                .find(|l| l.starts_with("st-print"))
                .expect(&text);
            assert!(row.contains("True"), "{row}");
            assert!(row.contains("Applied revision: main@sha1:1234"), "{row}");
        }
        Ok(out) => panic!(
            "kubectl get ks -A: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("kubectl not runnable ({e}); printer columns checked on the CRD only"),
    }
}

#[tokio::test]
async fn kustomization_status_roundtrip_skip_identical_and_failure() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    ensure_crds(&client).await.unwrap();
    namespace(&client, "st-ks").await;
    kustomization(
        &client,
        "st-ks",
        "apps",
        json!({"reconcile.fluxcd.io/requestedAt": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let key = ObjectKey::kustomization("st-ks", "apps");
    let (counting, counter) = cluster.counting_client().await;
    let status = StatusClient::new(counting);

    let live = status.read(&key).await.unwrap().expect("object exists");
    assert_eq!(live.generation, Some(1));
    assert!(live.suspend);
    assert_eq!(live.requested_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    assert!(
        live.status.is_null() || live.status == json!({}),
        "{}",
        live.status
    );

    // Progressing first, then Ready.
    let progressing = StatusUpdate::new(
        Outcome::Progressing {
            message: "Fetching manifests for revision main@sha1:aaa".into(),
        },
        None,
    );
    assert!(status.write(&key, &progressing).await.unwrap());
    let mut ok = ready_update("main@sha1:aaa", live.generation);
    ok.last_handled_reconcile_at = live.requested_at.clone();
    assert!(status.write(&key, &ok).await.unwrap());

    let live = status.read(&key).await.unwrap().unwrap();
    let s = &live.status;
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(s["lastAppliedRevision"], "main@sha1:aaa");
    assert_eq!(s["lastAttemptedRevision"], "main@sha1:aaa");
    assert_eq!(s["lastHandledReconcileAt"], "2026-01-01T00:00:00Z");
    assert_eq!(
        s["inventory"]["entries"],
        json!([{"id": "_team__Namespace", "v": "v1"}, {"id": "team_web_apps_Deployment", "v": "v1"}])
    );
    let ready = live.ready().expect("Ready condition");
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason, RECONCILIATION_SUCCEEDED);
    assert_eq!(ready.observed_generation, Some(1));
    assert_eq!(live.conditions().len(), 1, "Reconciling removed: {s}");

    // Identical update: nothing written.
    counter.reset();
    assert!(!status.write(&key, &ok).await.unwrap());
    assert!(counter.writes().is_empty(), "{:?}", counter.writes());
    assert_eq!(counter.count_method("GET"), 1);

    // Failure: Ready=False, Stalled, lastAppliedRevision kept.
    let failed = StatusUpdate {
        last_attempted_revision: Some("main@sha1:bbb".into()),
        ..StatusUpdate::new(
            Outcome::Failed {
                reason: BUILD_FAILED.into(),
                message: "kustomization.yaml: accumulating resources: missing.yaml not found"
                    .into(),
                stalled: true,
            },
            Some(1),
        )
    };
    assert!(status.write(&key, &failed).await.unwrap());
    let live = status.read(&key).await.unwrap().unwrap();
    assert_eq!(live.status["lastAppliedRevision"], "main@sha1:aaa");
    assert_eq!(live.status["lastAttemptedRevision"], "main@sha1:bbb");
    assert_eq!(
        live.status["inventory"]["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let conds = live.conditions();
    let ready = conds.iter().find(|c| c.type_ == READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", BUILD_FAILED)
    );
    assert!(conds
        .iter()
        .any(|c| c.type_ == STALLED && c.status == "True"));
    // Once more: unchanged, no write.
    counter.reset();
    assert!(!status.write(&key, &failed).await.unwrap());
    assert!(counter.writes().is_empty(), "{:?}", counter.writes());

    // Status writes leave the spec alone.
    assert!(live.suspend);
}

#[tokio::test]
async fn missing_object_and_missing_crd_are_not_errors() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    ensure_crds(&client).await.unwrap();
    let status = StatusClient::new(client);
    let gone = ObjectKey::kustomization("st-nowhere", "nothing");
    assert!(status.read(&gone).await.unwrap().is_none());
    assert!(!status
        .write(&gone, &ready_update("x", Some(1)))
        .await
        .unwrap());
    let no_crd = ObjectKey::new("widgets.example.com/v1", "Widget", "default", "w");
    assert!(status.read(&no_crd).await.unwrap().is_none());
    assert!(!status
        .write(&no_crd, &ready_update("x", Some(1)))
        .await
        .unwrap());
}

#[tokio::test]
async fn git_repository_artifact_written_and_read_through_v1beta2() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    ensure_crds(&client).await.unwrap();
    namespace(&client, "st-src").await;
    create(
        &client,
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1beta2",
            "kind": "GitRepository",
            "metadata": {"name": "repo", "namespace": "st-src"},
            "spec": {"interval": "1m", "url": "https://example.com/repo.git", "ref": {"branch": "main"}}
        }),
    )
    .await;
    let status = StatusClient::new(client.clone());
    let key = ObjectKey::git_repository("st-src", "repo");
    let update = StatusUpdate {
        artifact: Some(ArtifactStatus {
            revision: "main@sha1:ccc".into(),
            digest: Some("sha256:0123".into()),
            last_update_time: "2026-01-01T00:00:00Z".into(),
            path: "gitrepository/st-src/repo/ccc.tar.gz".into(),
            url: "http://capstan.flux-system.svc/gitrepository/st-src/repo/ccc.tar.gz".into(),
        }),
        ..StatusUpdate::new(
            Outcome::Ready {
                reason: "Succeeded".into(),
                message: "stored artifact for revision 'main@sha1:ccc'".into(),
            },
            Some(1),
        )
    };
    assert!(status.write(&key, &update).await.unwrap());
    let mut later = update.clone();
    later.artifact.as_mut().unwrap().last_update_time = "2026-01-01T01:00:00Z".into();
    assert!(!status.write(&key, &later).await.unwrap(), "same artifact");
    let old = dyn_api(
        &client,
        "source.toolkit.fluxcd.io/v1beta2",
        "GitRepository",
        Some("st-src"),
    )
    .get("repo")
    .await
    .unwrap();
    assert_eq!(old.data["status"]["artifact"]["revision"], "main@sha1:ccc");
    assert_eq!(
        old.data["status"]["artifact"]["lastUpdateTime"],
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(old.data["status"]["conditions"][0]["reason"], "Succeeded");
}

#[tokio::test]
async fn events_are_created_and_aggregated() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    ensure_crds(&client).await.unwrap();
    namespace(&client, "st-events").await;
    kustomization(&client, "st-events", "apps", json!({})).await;
    let key = ObjectKey::kustomization("st-events", "apps");
    let recorder = EventRecorder::new(client.clone(), "capstan");
    let long = "x".repeat(5000);
    recorder
        .publish(
            &key,
            false,
            "ReconciliationSucceeded",
            "Applied revision: main@sha1:aaa",
        )
        .await
        .unwrap();
    recorder
        .publish(
            &key,
            false,
            "ReconciliationSucceeded",
            "Applied revision: main@sha1:aaa",
        )
        .await
        .unwrap();
    // A fresh recorder (another instance, or the agent after a restart) still aggregates.
    EventRecorder::new(client.clone(), "capstan")
        .publish(
            &key,
            false,
            "ReconciliationSucceeded",
            "Applied revision: main@sha1:aaa",
        )
        .await
        .unwrap();
    recorder
        .publish(&key, true, "BuildFailed", &long)
        .await
        .unwrap();

    let events = dyn_api(&client, "v1", "Event", Some("st-events"))
        .list(&ListParams::default())
        .await
        .unwrap();
    let ours: Vec<&DynamicObject> = events
        .items
        .iter()
        .filter(|e| e.data["involvedObject"]["name"] == "apps")
        .collect();
    assert_eq!(ours.len(), 2, "{:#?}", events.items);
    let ok = ours
        .iter()
        .find(|e| e.data["reason"] == "ReconciliationSucceeded")
        .unwrap();
    assert_eq!(ok.data["count"], 3);
    assert_eq!(ok.data["type"], "Normal");
    assert_eq!(ok.data["source"]["component"], "capstan");
    assert_eq!(ok.data["involvedObject"]["kind"], "Kustomization");
    assert_eq!(
        ok.data["involvedObject"]["apiVersion"],
        "kustomize.toolkit.fluxcd.io/v1"
    );
    assert!(ok.data["involvedObject"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert!(ok.data["firstTimestamp"].is_string() && ok.data["lastTimestamp"].is_string());
    let warn = ours
        .iter()
        .find(|e| e.data["reason"] == "BuildFailed")
        .unwrap();
    assert_eq!(warn.data["type"], "Warning");
    assert_eq!(warn.data["message"].as_str().unwrap().len(), 1024);
    assert_eq!(warn.data["count"], 1);

    // Events about objects that do not exist (yet) are still recorded, without uid.
    let ghost = ObjectKey::helm_release("st-events", "ghost");
    recorder
        .publish(&ghost, true, "InstallFailed", "chart not found")
        .await
        .unwrap();
}

#[tokio::test]
async fn helm_release_history_extra_and_inventory() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    ensure_crds(&client).await.unwrap();
    namespace(&client, "st-hr").await;
    create(
        &client,
        json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "podinfo", "namespace": "st-hr"},
            "spec": {"interval": "5m", "chart": {"spec": {"chart": "podinfo", "version": "6.x",
                     "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}}
        }),
    )
    .await;
    let key = ObjectKey::helm_release("st-hr", "podinfo");
    let status = StatusClient::new(client.clone());
    let snapshot = capstan_status::HelmSnapshot {
        api_version: String::new(),
        digest: "sha256:aa".into(),
        name: "podinfo".into(),
        namespace: "st-hr".into(),
        version: 1,
        status: "deployed".into(),
        chart_name: "podinfo".into(),
        chart_version: "6.5.0".into(),
        config_digest: "sha256:bb".into(),
        first_deployed: "2026-01-01T00:00:00Z".into(),
        last_deployed: "2026-01-01T00:00:00Z".into(),
        deleted: None,
        oci_digest: None,
    };
    let mut extra = serde_json::Map::new();
    extra.insert("history".into(), json!([snapshot]));
    extra.insert("storageNamespace".into(), json!("st-hr"));
    let update = StatusUpdate {
        last_applied_revision: Some("6.5.0".into()),
        last_attempted_revision: Some("6.5.0".into()),
        inventory: Some(vec![InventoryEntry::new(
            "st-hr",
            "podinfo",
            "apps/v1",
            "Deployment",
        )]),
        ..StatusUpdate::new(
            Outcome::Ready {
                reason: "InstallSucceeded".into(),
                message:
                    "Helm install succeeded for release st-hr/podinfo.v1 with chart podinfo@6.5.0"
                        .into(),
            },
            Some(1),
        )
    };
    assert!(status
        .write_with_extra(&key, &update, &extra)
        .await
        .unwrap());
    assert!(!status
        .write_with_extra(&key, &update, &extra)
        .await
        .unwrap());
    let live = status.read(&key).await.unwrap().unwrap();
    assert_eq!(live.status["history"][0]["chartVersion"], "6.5.0");
    assert_eq!(live.status["storageNamespace"], "st-hr");
    assert_eq!(live.status["lastAttemptedRevision"], "6.5.0");
    assert!(
        live.status.get("lastAppliedRevision").is_none(),
        "not a v2 field"
    );
    assert_eq!(
        live.status["inventory"]["entries"][0]["id"],
        "st-hr_podinfo_apps_Deployment"
    );
    assert_eq!(live.ready().unwrap().reason, "InstallSucceeded");
}

/// The validation Kubernetes generates for `metav1.Condition` (as in Flux's CRDs).
fn condition_schema() -> Value {
    json!({
        "type": "object",
        "required": ["lastTransitionTime", "message", "reason", "status", "type"],
        "properties": {
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "message": {"type": "string", "maxLength": 32768},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "reason": {"type": "string", "maxLength": 1024, "minLength": 1,
                "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "type": {"type": "string", "maxLength": 316,
                "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"}
        }
    })
}

/// A CRD whose structural status schema lacks fields capstan writes (like an older Flux
/// CRD): the pruned fields are remembered and identical updates stop writing.
#[tokio::test]
async fn pruned_status_fields_do_not_cause_endless_writes() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    create(
        &client,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.status.capstan.test"},
            "spec": {
                "group": "status.capstan.test",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "status": {"type": "object", "properties": {
                            "observedGeneration": {"type": "integer"},
                            "conditions": {"type": "array", "items": condition_schema()}
                        }}
                    }}}
                }]
            }
        }),
    )
    .await;
    namespace(&client, "st-prune").await;
    let widgets = dyn_api(
        &client,
        "status.capstan.test/v1",
        "Widget",
        Some("st-prune"),
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "status.capstan.test/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "st-prune"}, "spec": {}
    }))
    .unwrap();
    // The CRD may take a moment to be served.
    for i in 0.. {
        match widgets.create(&PostParams::default(), &obj).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => break,
            Err(e) if i < 100 => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating Widget: {e}"),
        }
    }
    let key = ObjectKey::new("status.capstan.test/v1", "Widget", "st-prune", "w");
    let (counting, counter) = cluster.counting_client().await;
    let status = StatusClient::new(counting);
    let update = ready_update("main@sha1:aaa", Some(1));
    assert!(status.write(&key, &update).await.unwrap());
    counter.reset();
    assert!(!status.write(&key, &update).await.unwrap());
    assert!(counter.writes().is_empty(), "{:?}", counter.writes());
    let live = status.read(&key).await.unwrap().unwrap();
    assert_eq!(live.status["observedGeneration"], 1);
    assert_eq!(live.ready().unwrap().status, "True");
    // Conditions pass metav1.Condition validation, even with a reason that needs sanitizing.
    let failed = StatusUpdate::new(
        Outcome::Failed {
            reason: "health check failed!".into(),
            message: "timeout".into(),
            stalled: false,
        },
        Some(1),
    );
    assert!(status.write(&key, &failed).await.unwrap());
    let after = status.read(&key).await.unwrap().unwrap();
    assert_eq!(after.ready().unwrap().reason, "HealthCheckFailed");
    assert!(
        live.status.get("lastAppliedRevision").is_none() && live.status.get("inventory").is_none(),
        "the schema prunes them: {}",
        live.status
    );
}
