//! `capstan apply --argocd` on examples/argocd-fleet, end to end on two test-bed clusters:
//! the management cluster (Argo CD's `in-cluster`, also registered as `staging`) and a
//! workload cluster (`production`), both reached through Argo CD cluster Secrets. Argo CD
//! itself is never installed: only its Application CRD (test data), so capstan can write
//! the Applications' status.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use capstan_testbed::TestCluster;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{json, Value};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn res(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

async fn create(api: &Api<DynamicObject>, obj: Value) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("creating {:?}: {e}", obj.metadata.name),
    }
}

fn copy_dir(from: &Path, to: &Path, replace: &[(&str, String)]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst, replace);
        } else {
            let mut t = std::fs::read_to_string(&src).unwrap();
            for (a, b) in replace {
                t = t.replace(a, b);
            }
            std::fs::write(dst, t).unwrap();
        }
    }
}

/// Server, CA and token of a test-bed cluster, from its self-contained kubeconfig.
fn credentials(c: &TestCluster) -> (String, String, String) {
    let docs =
        capstan_yaml::parse_documents_last_key_wins(&c.self_contained_kubeconfig(), "kubeconfig")
            .unwrap();
    let kc = capstan_yaml::to_json(&docs[0]);
    let s = |p: &str| kc.pointer(p).and_then(Value::as_str).unwrap().to_string();
    (
        s("/clusters/0/cluster/server"),
        s("/clusters/0/cluster/certificate-authority-data"),
        s("/users/0/user/token"),
    )
}

fn cluster_secret(name: &str, env: &str, server: &str, ca: &str, token: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("cluster-{name}"), "namespace": "argocd",
                     "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": env}},
        "stringData": {"name": name, "server": server,
            "config": json!({"bearerToken": token, "tlsClientConfig": {"caData": ca}}).to_string()}})
}

/// No kubelet and no controller-manager run in the test bed: Deployments and DaemonSets
/// are marked ready as a controller would, while `stop` is unset.
async fn fake_controllers(clients: Vec<kube::Client>, stop: Arc<AtomicBool>) {
    let deploy = res("apps", "v1", "Deployment", "deployments");
    let ds = res("apps", "v1", "DaemonSet", "daemonsets");
    while !stop.load(Ordering::SeqCst) {
        for c in &clients {
            for (r, status) in [
                (
                    &deploy,
                    json!({"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                   {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
                ),
                (
                    &ds,
                    json!({"desiredNumberScheduled": 1, "currentNumberScheduled": 1, "updatedNumberScheduled": 1,
                    "numberAvailable": 1, "numberReady": 1, "numberMisscheduled": 0}),
                ),
            ] {
                let all: Api<DynamicObject> = Api::all_with(c.clone(), r);
                let Ok(list) = all.list(&ListParams::default()).await else {
                    continue;
                };
                for o in list.items {
                    let generation = o.metadata.generation.unwrap_or(1);
                    if o.data
                        .pointer("/status/observedGeneration")
                        .and_then(Value::as_i64)
                        == Some(generation)
                    {
                        continue;
                    }
                    let mut st = status.clone();
                    st["observedGeneration"] = json!(generation);
                    if let Some(n) = o.data.pointer("/spec/replicas").and_then(Value::as_i64) {
                        for k in [
                            "replicas",
                            "updatedReplicas",
                            "readyReplicas",
                            "availableReplicas",
                        ] {
                            st[k] = json!(n);
                        }
                    }
                    let api: Api<DynamicObject> = Api::namespaced_with(
                        c.clone(),
                        o.metadata.namespace.as_deref().unwrap_or("default"),
                        r,
                    );
                    let _ = api
                        .patch_status(
                            o.metadata.name.as_deref().unwrap_or(""),
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"status": st})),
                        )
                        .await;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn exists(c: &kube::Client, r: &ApiResource, ns: &str, name: &str) -> bool {
    let api: Api<DynamicObject> = if ns.is_empty() {
        Api::all_with(c.clone(), r)
    } else {
        Api::namespaced_with(c.clone(), ns, r)
    };
    api.get_opt(name).await.unwrap().is_some()
}

async fn apply(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(&args)
            .output()
            .expect("run capstan")
    })
    .await
    .unwrap()
}

/// examples/argocd-fleet applied from its root Application: converges on the first run
/// (the Widget CRD and its custom resources are in different Applications: wave -1 and
/// the CRD edge order them, as the order of writes shows), the list and clusters
/// generators reach both clusters through cluster Secrets, every Application gets
/// Synced/Healthy status, and an Application removed from the repository has its objects
/// pruned because its resources finalizer asks for it (one without keeps them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_fleet_applies_in_waves_to_both_clusters() {
    let (Some(mgmt), Some(prod)) = (
        TestCluster::start("argo-mgmt"),
        TestCluster::start("argo-prod"),
    ) else {
        return;
    };
    let (cm, cp) = (mgmt.client().await, prod.client().await);
    let (m_server, m_ca, m_token) = credentials(&mgmt);
    let (p_server, p_ca, p_token) = credentials(&prod);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/argocd-fleet");
    copy_dir(
        &example,
        &repo,
        &[
            ("https://staging.example.com:6443", m_server.clone()),
            ("https://production.example.com:6443", p_server.clone()),
        ],
    );

    let namespaces: Api<DynamicObject> =
        Api::all_with(cm.clone(), &res("", "v1", "Namespace", "namespaces"));
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}),
    )
    .await;
    let secrets: Api<DynamicObject> =
        Api::namespaced_with(cm.clone(), "argocd", &res("", "v1", "Secret", "secrets"));
    create(
        &secrets,
        cluster_secret("staging", "staging", &m_server, &m_ca, &m_token),
    )
    .await;
    create(
        &secrets,
        cluster_secret("production", "production", &p_server, &p_ca, &p_token),
    )
    .await;
    let crd_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/argocd-application-crd.yaml"),
    )
    .unwrap();
    let crd = capstan_yaml::to_json(
        &capstan_yaml::parse_documents_last_key_wins(&crd_text, "crd").unwrap()[0],
    );
    let crds: Api<DynamicObject> = Api::all_with(
        cm.clone(),
        &res(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    create(&crds, crd).await;
    let apps_res = res("argoproj.io", "v1alpha1", "Application", "applications");
    let apps: Api<DynamicObject> = Api::namespaced_with(cm.clone(), "argocd", &apps_res);
    let mut tries = 0;
    while let Err(e) = apps.list(&ListParams::default()).await {
        tries += 1;
        assert!(tries < 600, "the Application CRD is never served: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let controllers = tokio::spawn(fake_controllers(vec![cm.clone(), cp.clone()], stop.clone()));
    let args: Vec<String> = [
        "apply",
        repo.to_str().unwrap(),
        "--cluster",
        "mgmt",
        "--argocd",
        "--path",
        "bootstrap",
        "--this-repo",
        "example/argocd-fleet",
        "--kubeconfig",
        mgmt.kubeconfig_path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = apply(args.clone()).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Wave order, in the order of writes: the CRD before any Widget.
    let crd_at = stderr
        .find("CustomResourceDefinition/widgets.example.com")
        .unwrap_or_else(|| panic!("{stderr}"));
    let widget_at = stderr
        .find("Widget/widgets/small")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(crd_at < widget_at, "{stderr}");
    let widgets_res = res("example.com", "v1", "Widget", "widgets");
    assert!(exists(&cm, &widgets_res, "widgets", "small").await);
    // The list generator (servers) and the clusters generator (cluster Secrets): both clusters.
    let deploy = res("apps", "v1", "Deployment", "deployments");
    let ds = res("apps", "v1", "DaemonSet", "daemonsets");
    assert!(exists(&cm, &deploy, "web", "web").await, "{stdout}");
    assert!(exists(&cp, &deploy, "web", "web").await, "{stdout}");
    assert!(
        exists(&cm, &ds, "monitoring", "monitoring-agent").await,
        "{stdout}"
    );
    assert!(
        exists(&cp, &ds, "monitoring", "monitoring-agent").await,
        "{stdout}"
    );
    // Synced/Healthy status on every Application, as `kubectl get applications` prints it.
    let list = apps.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|a| a.metadata.name.clone())
        .collect();
    for want in [
        "root",
        "widget-crds",
        "widgets",
        "web-staging",
        "web-production",
        "monitoring-agent-staging",
        "monitoring-agent-production",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    for a in &list.items {
        assert_eq!(
            a.data.pointer("/status/sync/status"),
            Some(&json!("Synced")),
            "{:?}",
            a.metadata.name
        );
        assert_eq!(
            a.data.pointer("/status/health/status"),
            Some(&json!("Healthy")),
            "{:?}",
            a.metadata.name
        );
    }

    // Remove both Widget Applications: `widgets` has the resources finalizer (its Widgets
    // are deleted), `widget-crds` has none (the CRD stays).
    std::fs::remove_file(repo.join("components/widgets.yaml")).unwrap();
    std::fs::remove_file(repo.join("components/widget-crds.yaml")).unwrap();
    let out = apply(args).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    stop.store(true, Ordering::SeqCst);
    controllers.await.unwrap();
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        !exists(&cm, &widgets_res, "widgets", "small").await,
        "{stdout}\n{stderr}"
    );
    let crd_res = res(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    );
    assert!(
        exists(&cm, &crd_res, "", "widgets.example.com").await,
        "{stdout}\n{stderr}"
    );
    assert!(apps.get_opt("widgets").await.unwrap().is_none());
    assert!(apps.get_opt("widget-crds").await.unwrap().is_none());
}
