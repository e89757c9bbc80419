//! Day-two commands (`get`, `suspend`, `resume`, `reconcile`) run as the binary against
//! the test bed's API server, with minimal Flux CRDs installed by the test and the agent
//! simulated by a background task that answers reconcile requests.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_testbed::TestCluster;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
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

fn ks_res() -> ApiResource {
    res(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
    )
}

fn git_res() -> ApiResource {
    res(
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
        "gitrepositories",
    )
}

fn crd(group: &str, kind: &str, plural: &str, short: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                      "listKind": format!("{kind}List"), "shortNames": [short]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    })
}

async fn create(api: &Api<DynamicObject>, obj: Value) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("creating {:?}: {e}", obj.metadata.name),
    }
}

/// Kustomization and GitRepository CRDs (HelmRelease stays absent), and a fresh namespace.
async fn setup(client: &kube::Client, ns: &str) {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &res(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    create(
        &crds,
        crd(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "kustomizations",
            "ks",
        ),
    )
    .await;
    create(
        &crds,
        crd(
            "source.toolkit.fluxcd.io",
            "GitRepository",
            "gitrepositories",
            "gitrepo",
        ),
    )
    .await;
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &res("", "v1", "Namespace", "namespaces"));
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await;
    // wait until both CRDs are served
    for r in [ks_res(), git_res()] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &r);
        let mut tries = 0;
        while api.list(&Default::default()).await.is_err() {
            tries += 1;
            assert!(tries < 300, "CRD {} never served", r.plural);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn ready(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

async fn unit(client: &kube::Client, ns: &str, name: &str, suspend: bool, status: Option<Value>) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ks_res());
    create(
        &api,
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "10m", "path": format!("./{name}"), "prune": true, "suspend": suspend,
                     "sourceRef": {"kind": "GitRepository", "name": "fleet"}}
        }),
    )
    .await;
    if let Some(s) = status {
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": s })),
        )
        .await
        .unwrap();
    }
}

/// Run the binary (blocking, off the async threads).
async fn capstan(cluster: &TestCluster, args: &[&str]) -> Output {
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push("--kubeconfig".into());
    args.push(cluster.kubeconfig_path().display().to_string());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(&args)
            .env_remove("KUBECONFIG")
            .output()
            .expect("run capstan")
    })
    .await
    .unwrap()
}

/// A stand-in for the agent: answers every reconcile request in `ns` (Kustomizations and
/// GitRepositories) with the Ready condition configured for the object's name
/// (default Ready=True), recording lastHandledReconcileAt and observedGeneration.
struct FakeAgent {
    answers: Arc<Mutex<BTreeMap<String, (String, String)>>>,
    handled: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fake_agent(client: kube::Client, ns: &str) -> FakeAgent {
    let answers: Arc<Mutex<BTreeMap<String, (String, String)>>> = Default::default();
    let handled: Arc<Mutex<Vec<String>>> = Default::default();
    let (a, h) = (answers.clone(), handled.clone());
    let ns = ns.to_string();
    let task = tokio::spawn(async move {
        loop {
            for r in [ks_res(), git_res()] {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &r);
                let Ok(list) = api.list(&Default::default()).await else {
                    continue;
                };
                for o in list.items {
                    let v = serde_json::to_value(&o).unwrap();
                    let requested = v
                        .pointer("/metadata/annotations/reconcile.fluxcd.io~1requestedAt")
                        .and_then(Value::as_str);
                    let done = v
                        .pointer("/status/lastHandledReconcileAt")
                        .and_then(Value::as_str);
                    let Some(requested) = requested else { continue };
                    if Some(requested) == done {
                        continue;
                    }
                    let name = o.metadata.name.clone().unwrap();
                    let (status, message) =
                        a.lock().unwrap().get(&name).cloned().unwrap_or((
                            "True".into(),
                            "Applied revision: main@sha1:c0ffee".into(),
                        ));
                    let reason = if status == "True" {
                        "ReconciliationSucceeded"
                    } else {
                        "DependencyNotReady"
                    };
                    let patch = json!({"status": {
                        "lastHandledReconcileAt": requested,
                        "observedGeneration": o.metadata.generation,
                        "lastAppliedRevision": "main@sha1:c0ffee",
                        "conditions": [ready(&status, reason, &message)],
                    }});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                    h.lock().unwrap().push(format!("{}/{name}", r.kind));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    FakeAgent {
        answers,
        handled,
        task,
    }
}

async fn get_ks(client: &kube::Client, ns: &str, name: &str) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ks_res());
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_units_table_json_and_missing_crd() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let ns = "ops-get";
    setup(&client, ns).await;
    unit(
        &client,
        ns,
        "infra",
        false,
        Some(json!({"lastAppliedRevision": "main@sha1:1111",
                    "conditions": [ready("True", "ReconciliationSucceeded", "Applied revision: main@sha1:1111")]})),
    )
    .await;
    unit(
        &client,
        ns,
        "apps",
        true,
        Some(json!({"lastAppliedRevision": "main@sha1:0000",
                    "conditions": [ready("False", "DependencyNotReady", "dependency 'ops-get/infra' is not ready")]})),
    )
    .await;
    unit(&client, ns, "fresh", false, None).await;

    let out = capstan(cluster, &["get", "ks", "-n", ns]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 4, "{t}");
    assert!(lines[0].starts_with("NAMESPACE"), "{t}");
    for col in ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"] {
        assert!(lines[0].contains(col), "{t}");
    }
    // sorted by name: apps, fresh, infra
    let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    let apps = cols(lines[1]);
    assert_eq!(
        &apps[..5],
        ["ops-get", "apps", "main@sha1:0000", "true", "False"]
    );
    assert!(
        lines[1].ends_with("dependency 'ops-get/infra' is not ready"),
        "{t}"
    );
    assert!(
        lines[2].contains("fresh") && lines[2].contains("Unknown"),
        "{t}"
    );
    assert_eq!(
        &cols(lines[3])[..5],
        ["ops-get", "infra", "main@sha1:1111", "false", "True"]
    );

    // -o json
    let out = capstan(cluster, &["get", "units", "-n", ns, "-o", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["kind"], "Kustomization");
    assert_eq!(rows[0]["name"], "apps");
    assert_eq!(rows[0]["suspended"], true);
    assert_eq!(rows[0]["ready"], "False");
    assert_eq!(rows[0]["reason"], "DependencyNotReady");

    // get units qualifies names with the kind (HelmRelease's CRD is absent: skipped)
    let out = capstan(cluster, &["get", "units", "-n", ns]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Kustomization/apps"));

    // -A and yaml
    let out = capstan(cluster, &["get", "ks", "-A", "-o", "yaml"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("name: infra"),
        "{}",
        text(&out.stdout)
    );

    // one object by name; a missing one is an error
    let out = capstan(cluster, &["get", "ks", "infra", "-n", ns]).await;
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let out = capstan(cluster, &["get", "ks", "nope", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no Kustomizations named nope in the ops-get namespace"));

    // the HelmRelease CRD is not installed
    let out = capstan(cluster, &["get", "hr", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no HelmRelease CRD on this cluster")
            && err.contains("capstan agent or Flux installed"),
        "{err}"
    );
    let out = capstan(cluster, &["reconcile", "hr", "x", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no HelmRelease CRD on this cluster"));

    // sources: artifact revision
    let git: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &git_res());
    create(
        &git,
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
               "metadata": {"name": "fleet", "namespace": ns},
               "spec": {"url": "https://example.com/fleet", "interval": "1m"}}),
    )
    .await;
    git.patch_status(
        "fleet",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"artifact": {"revision": "main@sha1:abcd"},
            "conditions": [ready("True", "Succeeded", "stored artifact for revision 'main@sha1:abcd'")]}})),
    )
    .await
    .unwrap();
    let out = capstan(cluster, &["get", "sources", "-n", ns]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("GitRepository/fleet") && t.contains("main@sha1:abcd"),
        "{t}"
    );
    // Flux's `get sources git NAME`: one kind, unqualified names
    let out = capstan(cluster, &["get", "sources", "git", "fleet", "-n", ns]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.lines().nth(1).unwrap().contains(" fleet "), "{t}");
    let out = capstan(cluster, &["get", "sources", "helm", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no HelmRepository CRD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_reconcile() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let ns = "ops-reconcile";
    setup(&client, ns).await;
    unit(&client, ns, "apps", false, None).await;
    unit(&client, ns, "blocked", false, None).await;
    let agent = fake_agent(client.clone(), ns);

    // suspend: spec.suspend true
    let out = capstan(cluster, &["suspend", "ks", "apps", "-n", ns]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("suspended"));
    assert_eq!(
        get_ks(&client, ns, "apps").await["spec"]["suspend"],
        json!(true)
    );

    // reconcile refuses a suspended unit
    let out = capstan(cluster, &["reconcile", "ks", "apps", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is suspended"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("capstan resume ks apps"));

    // resume: spec.suspend false, a reconcile request, waits for the agent
    let out = capstan(
        cluster,
        &["resume", "ks", "apps", "-n", ns, "--timeout", "60s"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("reconciled: Applied revision: main@sha1:c0ffee"),
        "{}",
        text(&out.stdout)
    );
    let v = get_ks(&client, ns, "apps").await;
    assert_eq!(v["spec"]["suspend"], json!(false));
    let requested = v["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        requested.ends_with('Z') && requested.contains('T'),
        "{requested}"
    );
    assert_eq!(v["status"]["lastHandledReconcileAt"], json!(requested));

    // reconcile with --with-source: the GitRepository first, then the unit
    let git: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &git_res());
    create(
        &git,
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
               "metadata": {"name": "fleet", "namespace": ns},
               "spec": {"url": "https://example.com/fleet", "interval": "1m"}}),
    )
    .await;
    agent.handled.lock().unwrap().clear();
    let out = capstan(
        cluster,
        &[
            "reconcile",
            "ks",
            "apps",
            "-n",
            ns,
            "--with-source",
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let handled = agent.handled.lock().unwrap().clone();
    assert_eq!(
        handled,
        ["GitRepository/fleet", "Kustomization/apps"],
        "{}",
        text(&out.stderr)
    );
    let v = get_ks(&client, ns, "apps").await;
    assert_ne!(
        v["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
        json!(requested)
    );

    // Ready=False: exit 2 with the condition's message
    agent.answers.lock().unwrap().insert(
        "blocked".into(),
        (
            "False".into(),
            "dependency 'ops-reconcile/infra' is not ready".into(),
        ),
    );
    let out = capstan(
        cluster,
        &[
            "reconcile",
            "kustomization",
            "blocked",
            "-n",
            ns,
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("DependencyNotReady: dependency 'ops-reconcile/infra' is not ready"),
        "{}",
        text(&out.stdout)
    );

    // --wait=false only annotates; source git syntax
    drop(agent);
    let out = capstan(
        cluster,
        &[
            "reconcile",
            "source",
            "git",
            "fleet",
            "-n",
            ns,
            "--wait=false",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let g = serde_json::to_value(git.get("fleet").await.unwrap()).unwrap();
    assert!(g
        .pointer("/metadata/annotations/reconcile.fluxcd.io~1requestedAt")
        .is_some());

    // no agent: --wait times out with a hint
    let out = capstan(
        cluster,
        &["reconcile", "ks", "apps", "-n", ns, "--timeout", "1s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );

    // an unknown object
    let out = capstan(cluster, &["suspend", "ks", "ghost", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Kustomization ops-reconcile/ghost not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_changes() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let ns = "ops-watch";
    setup(&client, ns).await;
    unit(&client, ns, "apps", false, None).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["get", "ks", "-n", ns, "-w", "-o", "json", "--kubeconfig"])
        .arg(cluster.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let rx = Arc::new(Mutex::new(rx));
    let next = |rx: Arc<Mutex<std::sync::mpsc::Receiver<String>>>| {
        tokio::task::spawn_blocking(move || -> Value {
            let line = rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60))
                .expect("a watch line");
            serde_json::from_str(&line).unwrap()
        })
    };
    let first = next(rx.clone()).await.unwrap();
    assert_eq!(first["name"], "apps");
    assert_eq!(first["ready"], "Unknown");

    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ks_res());
    api.patch_status(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"lastAppliedRevision": "main@sha1:beef",
            "conditions": [ready("True", "ReconciliationSucceeded", "Applied revision: main@sha1:beef")]}})),
    )
    .await
    .unwrap();
    let changed = next(rx.clone()).await.unwrap();
    assert_eq!(changed["ready"], "True");
    assert_eq!(changed["revision"], "main@sha1:beef");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_clusters_lists_kubeconfig_secrets() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let ns = "ops-clusters";
    setup(&client, ns).await;
    let secrets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &res("", "v1", "Secret", "secrets"));
    let b64 = capstan_testbed::servers::b64(b"apiVersion: v1\nkind: Config\n");
    for s in [
        json!({"metadata": {"name": "edge-1", "labels": {"capstan.io/cluster": "edge-1"}},
               "data": {"kubeconfig": b64}}),
        json!({"metadata": {"name": "prod-kubeconfig", "labels": {"cluster.x-k8s.io/cluster-name": "prod"}},
               "type": "cluster.x-k8s.io/secret", "data": {"value": b64}}),
        json!({"metadata": {"name": "prod-ca", "labels": {"cluster.x-k8s.io/cluster-name": "prod"}},
               "type": "cluster.x-k8s.io/secret", "data": {"tls.crt": b64}}),
        json!({"metadata": {"name": "gke-conn", "labels": {"capstan.io/cluster": "gke-1"}},
               "type": "connection.crossplane.io/v1alpha1", "data": {"kubeconfig": b64}}),
        json!({"metadata": {"name": "unrelated"}, "data": {"x": b64}}),
        json!({"metadata": {"name": "broken", "labels": {"capstan.io/cluster": "broken"}},
               "data": {"notes": b64}}),
    ] {
        let mut s = s;
        s["apiVersion"] = json!("v1");
        s["kind"] = json!("Secret");
        s["metadata"]["namespace"] = json!(ns);
        create(&secrets, s).await;
    }
    let out = capstan(cluster, &["get", "clusters", "-n", ns]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        vec![
            vec!["NAME", "SOURCE", "SECRET"],
            vec!["edge-1", "label", "ops-clusters/edge-1"],
            vec!["gke-1", "crossplane", "ops-clusters/gke-conn"],
            vec!["prod", "cluster-api", "ops-clusters/prod-kubeconfig"],
        ],
        "{t}"
    );
    assert!(!t.contains(&b64));
    // an unusable cluster Secret is a warning naming it, not a row
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: Secret ops-clusters/broken has no kubeconfig"),
        "{err}"
    );
    assert!(!err.contains(&b64));
    let out = capstan(cluster, &["get", "clusters", "-o", "json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "prod" && r["source"] == "cluster-api"));
}
