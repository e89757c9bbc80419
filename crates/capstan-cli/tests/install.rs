//! `capstan install`, `capstan uninstall` and `capstan package crs`, run as the binary
//! against test-bed API servers (each test has its own: uninstall is cluster-wide).
//!
//! The test bed runs no controller-manager: no pods start, Deployments never become
//! available by themselves, and a deleted namespace stays Terminating until its content is
//! deleted and it is finalized, which the namespace controller does. The tests play that
//! controller (after checking that nothing left in the namespace holds a finalizer, so it
//! would finish), and set Deployment status through the status subresource.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use capstan_apply::{Applier, ApplyOptions, ApplyUnit, UnitRef};
use capstan_install::Resources;
use capstan_testbed::servers::{b64, free_port, git, GitDaemon, Repo};
use capstan_testbed::TestCluster;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn capstan(args: &[&str], kubeconfig: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("CAPSTAN_GIT_TOKEN")
        .env_remove("CAPSTAN_GIT_USERNAME")
        .env_remove("CAPSTAN_GIT_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running capstan")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> (String, String) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "capstan failed ({}):\nstdout:\n{o}\nstderr:\n{e}",
        out.status
    );
    (o, e)
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn exists(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> bool {
    api(client, group, version, kind, ns)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

/// Like [`exists`], for polling: a resource type not served yet (its CRD not applied yet)
/// counts as absent.
async fn appeared(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> bool {
    api(client, group, version, kind, ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .is_some()
}

const SOURCE: &str = "https://git.example.com/fleet.git";

fn install_args(image: &str) -> Vec<&str> {
    vec![
        "install",
        "--source",
        SOURCE,
        "--branch",
        "main",
        "--cluster",
        "mgmt",
        "--image",
        image,
    ]
}

/// The namespace controller's job, done by the test: every object left in the namespace
/// must be free of finalizers (else the namespace would be stuck Terminating); then they
/// are deleted and the namespace is finalized, and it must be gone.
async fn finish_namespace(client: &kube::Client, ns: &str) {
    let nss: Api<Namespace> = Api::all(client.clone());
    let Some(live) = nss.get_opt(ns).await.unwrap() else {
        return;
    };
    assert!(
        live.metadata.deletion_timestamp.is_some(),
        "Namespace/{ns} was not deleted"
    );
    let resources = Resources::discover(client).await.unwrap();
    let left = resources.list_all(client, Some(ns), None).await.unwrap();
    for o in &left {
        let f = o
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert!(
            f.is_empty(),
            "{} {} in terminating Namespace/{ns} holds finalizers {f:?}",
            o["kind"],
            o["metadata"]["name"]
        );
        let (group, version) = match o["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), o["apiVersion"].as_str().unwrap().to_string()),
        };
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let (ar, _) = resources
            .types(true)
            .find(|(ar, _)| ar.group == group && ar.kind == kind && ar.version == version)
            .cloned()
            .unwrap();
        let a: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let _ = a.delete(name, &Default::default()).await;
    }
    let mut spec = serde_json::to_value(nss.get(ns).await.unwrap()).unwrap();
    spec["spec"]["finalizers"] = json!([]);
    nss.replace_subresource("finalize", ns, &PostParams::default(), &spec)
        .await
        .unwrap();
    for _ in 0..100 {
        if nss.get_opt(ns).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Namespace/{ns} still exists after it was emptied and finalized");
}

/// Every object of every resource type carrying the label selector.
async fn labelled(client: &kube::Client, selector: &str) -> Vec<String> {
    let resources = Resources::discover(client).await.unwrap();
    resources
        .list_all(client, None, Some(selector))
        .await
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Objects applied as the agent applies a unit (capstan's apply, its labels and inventory).
async fn apply_unit(client: &kube::Client, name: &str, objects: Vec<Value>) {
    let unit = ApplyUnit::new(UnitRef::new("Kustomization", "flux-system", name), objects);
    Applier::new(client.clone())
        .apply(&unit, &ApplyOptions::default())
        .await
        .unwrap();
}

fn cm(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}})
}

fn applied_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            l.ends_with(" created")
                || l.ends_with(" configured")
                || l.ends_with(" pruned")
                || l.ends_with(" replaced")
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn install_upgrade_check_and_uninstall_leave_nothing_behind() {
    let Some(cluster) = TestCluster::start("install") else {
        return;
    };
    let kc = cluster.kubeconfig_path();
    let client = cluster.client().await;

    // Bad input first: nothing is written.
    let out = capstan(&install_args("Registry.Example.com/Capstan:1"), kc, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--image: invalid image reference"),
        "{}",
        text(&out.stderr)
    );
    let mut args = install_args("localhost/capstan:0.1.0");
    args.push("--source-secret-from-env");
    let out = capstan(&args, kc, &[("CAPSTAN_GIT_USERNAME", "git")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("CAPSTAN_GIT_PASSWORD is not set"),
        "{}",
        text(&out.stderr)
    );
    assert!(labelled(&client, "capstan.io/kind=install")
        .await
        .is_empty());
    let out = capstan(&["uninstall"], kc, &[]);
    let (stdout, _) = ok(&out);
    assert!(
        stdout.contains("capstan is not installed in this cluster"),
        "{stdout}"
    );
    let out = capstan(&["install", "--check"], kc, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("not installed"));

    // Install: every object accepted by the API server.
    let env = [("CAPSTAN_GIT_TOKEN", "read-only-token-123")];
    let (stdout, stderr) = ok(&capstan(&args, kc, &env));
    assert!(stdout.contains("installed capstan"), "{stdout}");
    assert!(!stdout.contains("read-only-token-123") && !stderr.contains("read-only-token-123"));
    for (g, v, k, ns, n) in [
        ("", "v1", "Namespace", None, "capstan-system"),
        (
            "",
            "v1",
            "ServiceAccount",
            Some("capstan-system"),
            "capstan-agent",
        ),
        (
            "",
            "v1",
            "Secret",
            Some("capstan-system"),
            "capstan-git-credentials",
        ),
        (
            "",
            "v1",
            "Service",
            Some("capstan-system"),
            "capstan-agent-metrics",
        ),
        (
            "apps",
            "v1",
            "Deployment",
            Some("capstan-system"),
            "capstan-agent",
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            None,
            "capstan-agent-capstan-system",
        ),
        (
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            None,
            "kustomizations.kustomize.toolkit.fluxcd.io",
        ),
    ] {
        assert!(exists(&client, g, v, k, ns, n).await, "{k} {n} missing");
    }

    // Re-run unchanged: nothing written. A new image: only the Deployment changes.
    let (stdout, stderr) = ok(&capstan(&args, kc, &env));
    assert!(
        stdout.contains("upgraded capstan") && stdout.contains("0 created, 0 changed"),
        "{stdout}"
    );
    assert!(applied_lines(&stderr).is_empty(), "{stderr}");
    let mut upgrade = install_args("localhost/capstan:0.2.0");
    upgrade.push("--source-secret-from-env");
    let (stdout, stderr) = ok(&capstan(&upgrade, kc, &env));
    assert_eq!(
        applied_lines(&stderr),
        ["Deployment/capstan-system/capstan-agent configured"],
        "{stderr}"
    );
    assert!(
        stdout.contains("+") && stdout.contains("localhost/capstan:0.2.0"),
        "the diff shows the new image:\n{stdout}"
    );
    assert!(stdout.contains("0 created, 1 changed"), "{stdout}");

    // --check: installed, its version, not healthy until the Deployment is available.
    let out = capstan(&["install", "--check"], kc, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("version 0.1.0") && stdout.contains("image localhost/capstan:0.2.0"),
        "{stdout}"
    );
    let deployments = api(&client, "apps", "v1", "Deployment", Some("capstan-system"));
    let d = deployments.get("capstan-agent").await.unwrap();
    let generation = d.metadata.generation.unwrap();
    deployments
        .patch_status(
            "capstan-agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                               {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
            }})),
        )
        .await
        .unwrap();
    let (stdout, _) = ok(&capstan(&["install", "--check"], kc, &[]));
    assert!(stdout.contains("agent: Current"), "{stdout}");

    // What the agent would have done: a unit applied with an inventory, and a unit object
    // (Kustomization) holding Flux's finalizer.
    apply_unit(
        &client,
        "apps",
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
            cm("web", "site"),
        ],
    )
    .await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let flux_ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "flux-system"}})).unwrap();
    nss.create(&PostParams::default(), &flux_ns).await.unwrap();
    let ks: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system", "finalizers": ["finalizers.fluxcd.io"]},
        "spec": {"interval": "1m", "path": "./apps", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
    }))
    .unwrap();
    api(
        &client,
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        Some("flux-system"),
    )
    .create(&PostParams::default(), &ks)
    .await
    .unwrap();

    // --dry-run changes nothing.
    let (stdout, _) = ok(&capstan(&["uninstall", "--dry-run"], kc, &[]));
    assert!(
        stdout.contains("would stop the agent: delete Deployment/capstan-system/capstan-agent"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "would remove finalizers finalizers.fluxcd.io from Kustomization/flux-system/apps"
        ),
        "{stdout}"
    );
    assert!(
        exists(
            &client,
            "apps",
            "v1",
            "Deployment",
            Some("capstan-system"),
            "capstan-agent"
        )
        .await
    );

    // Uninstall (workloads kept).
    let (stdout, stderr) = ok(&capstan(&["uninstall"], kc, &[]));
    assert!(!stdout.contains("error"), "{stdout}\n{stderr}");
    let crds = labelled(&client, "app.kubernetes.io/managed-by=capstan").await;
    assert!(
        !crds
            .iter()
            .any(|o| o.starts_with("CustomResourceDefinition")),
        "{crds:?}"
    );
    for _ in 0..100 {
        if !exists(
            &client,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            None,
            "kustomizations.kustomize.toolkit.fluxcd.io",
        )
        .await
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !exists(
            &client,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            None,
            "kustomizations.kustomize.toolkit.fluxcd.io"
        )
        .await,
        "the Kustomization CRD is gone (its object lost capstan's finalizer, so nothing hangs)"
    );
    finish_namespace(&client, "capstan-system").await;
    let left = labelled(&client, "capstan.io/kind=install").await;
    assert!(left.is_empty(), "objects of the install left: {left:?}");
    let left = labelled(&client, "app.kubernetes.io/managed-by=capstan").await;
    assert!(left.is_empty(), "objects managed by capstan left: {left:?}");
    let left = labelled(&client, "capstan.io/inventory").await;
    assert!(left.is_empty(), "inventories left: {left:?}");
    // Kept workloads are untouched.
    assert!(exists(&client, "", "v1", "ConfigMap", Some("web"), "site").await);
    assert!(nss
        .get("web")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());
    // No namespace is left terminating.
    for ns in nss.list(&ListParams::default()).await.unwrap() {
        assert!(
            ns.metadata.deletion_timestamp.is_none(),
            "{:?} terminating",
            ns.metadata.name
        );
    }
    let (stdout, _) = ok(&capstan(&["uninstall"], kc, &[]));
    assert!(stdout.contains("not installed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uninstall_prune_workloads_removes_exactly_the_inventoried_objects() {
    let Some(cluster) = TestCluster::start("uninstall-prune") else {
        return;
    };
    let kc = cluster.kubeconfig_path();
    let client = cluster.client().await;
    ok(&capstan(&install_args("localhost/capstan:0.1.0"), kc, &[]));
    apply_unit(
        &client,
        "infra",
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "infra"}}),
            cm("infra", "settings"),
        ],
    )
    .await;
    apply_unit(&client, "apps", vec![cm("default", "app-config"), json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "default"}})]).await;
    // A bystander capstan never applied, with a look-alike name.
    api(&client, "", "v1", "ConfigMap", Some("default"))
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm("default", "capstan-agent-config")).unwrap(),
        )
        .await
        .unwrap();

    let (stdout, _) = ok(&capstan(
        &["uninstall", "--prune-workloads", "--dry-run"],
        kc,
        &[],
    ));
    assert!(
        stdout.contains("would delete workload ConfigMap/default/app-config"),
        "{stdout}"
    );
    assert!(
        exists(
            &client,
            "",
            "v1",
            "ConfigMap",
            Some("default"),
            "app-config"
        )
        .await
    );

    let (stdout, _) = ok(&capstan(&["uninstall", "--prune-workloads"], kc, &[]));
    // Reverse dependency order: the namespace after what it holds.
    let pos = |s: &str| {
        stdout
            .find(s)
            .unwrap_or_else(|| panic!("{s} missing in:\n{stdout}"))
    };
    assert!(
        pos("ConfigMap/infra/settings") < pos("delete workload Namespace/infra"),
        "{stdout}"
    );
    assert!(
        !exists(
            &client,
            "",
            "v1",
            "ConfigMap",
            Some("default"),
            "app-config"
        )
        .await
    );
    assert!(!exists(&client, "", "v1", "ServiceAccount", Some("default"), "app").await);
    assert!(!exists(&client, "", "v1", "ConfigMap", Some("infra"), "settings").await);
    assert!(
        exists(
            &client,
            "",
            "v1",
            "ConfigMap",
            Some("default"),
            "capstan-agent-config"
        )
        .await,
        "not inventoried: kept"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    assert!(nss
        .get("default")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());
    finish_namespace(&client, "infra").await;
    finish_namespace(&client, "capstan-system").await;
    let left = labelled(&client, "capstan.io/kind").await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn install_leaves_fluxs_crds_to_running_flux_unless_adopted() {
    let Some(cluster) = TestCluster::start("install-flux") else {
        return;
    };
    let kc = cluster.kubeconfig_path();
    let client = cluster.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "flux-system"}})).unwrap(),
    )
    .await
    .unwrap();
    let flux_labels = json!({"app.kubernetes.io/part-of": "flux", "app.kubernetes.io/component": "kustomize-controller"});
    let mut crd = capstan_status::flux_crds().remove(0);
    crd["metadata"]["labels"] = flux_labels.clone();
    api(
        &client,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        None,
    )
    .create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kustomize-controller", "namespace": "flux-system", "labels": flux_labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kustomize-controller"}},
                 "template": {"metadata": {"labels": {"app": "kustomize-controller"}},
                              "spec": {"containers": [{"name": "manager", "image": "flux/kustomize-controller:v1"}]}}}
    });
    api(&client, "apps", "v1", "Deployment", Some("flux-system"))
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();

    let (_, stderr) = ok(&capstan(&install_args("localhost/capstan:0.1.0"), kc, &[]));
    assert!(
        stderr.contains(
            "warning: Flux controllers run in this cluster (flux-system/kustomize-controller)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("leaving Flux's CRDs to Flux (kustomizations.kustomize.toolkit.fluxcd.io)"),
        "{stderr}"
    );
    let crds = api(
        &client,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        None,
    );
    let ks = serde_json::to_value(
        crds.get("kustomizations.kustomize.toolkit.fluxcd.io")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        ks["metadata"]["labels"].get("capstan.io/kind").is_none(),
        "Flux's CRD untouched: {}",
        ks["metadata"]
    );
    let hr = serde_json::to_value(
        crds.get("helmreleases.helm.toolkit.fluxcd.io")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        hr["metadata"]["labels"]["capstan.io/kind"], "install",
        "absent CRDs are installed"
    );

    let mut adopt = install_args("localhost/capstan:0.1.0");
    adopt.push("--adopt-flux-crds");
    ok(&capstan(&adopt, kc, &[]));
    let ks = serde_json::to_value(
        crds.get("kustomizations.kustomize.toolkit.fluxcd.io")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ks["metadata"]["labels"]["capstan.io/kind"], "install");

    // Uninstall keeps the CRDs while Flux runs; Flux's Deployment is not capstan's.
    let (stdout, _) = ok(&capstan(&["uninstall"], kc, &[]));
    assert!(stdout.contains("kept: keep CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io (Flux controllers run"), "{stdout}");
    assert!(
        exists(
            &client,
            "apps",
            "v1",
            "Deployment",
            Some("flux-system"),
            "kustomize-controller"
        )
        .await
    );
    assert!(
        exists(
            &client,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            None,
            "kustomizations.kustomize.toolkit.fluxcd.io"
        )
        .await
    );
}

fn docs(yaml: &str) -> Vec<Value> {
    capstan_yaml::parse_documents(yaml, "stdout")
        .unwrap()
        .iter()
        .map(capstan_yaml::to_json)
        .filter(|v| !v.is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn crs_output_is_accepted_and_its_contents_install_the_agent_on_another_cluster() {
    let Some(mgmt) = TestCluster::start("crs-mgmt") else {
        return;
    };
    let Some(workload) = TestCluster::start("crs-workload") else {
        return;
    };
    let client = mgmt.client().await;
    let crd_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clusterresourceset-crd.yaml"),
    )
    .unwrap();
    let crd = docs(&crd_text).remove(0);
    let mut unit = ApplyUnit::new(UnitRef::new("Kustomization", "test", "capi"), vec![crd]);
    unit.prune = false;
    Applier::new(client.clone())
        .apply(&unit, &ApplyOptions::default())
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let (_repo, _daemon, url) = served_repo(
        tmp.path(),
        &[("clusters/workload/site.yaml", site("born", "with an agent"))],
    );
    let args = [
        "install",
        "--source",
        &url,
        "--branch",
        "main",
        "--cluster",
        "workload",
        "--interval",
        "1s",
        "--image",
        "localhost/capstan:0.1.0",
        "--export",
        "--crs",
        "--cluster-selector",
        "capstan.io/agent=enabled",
    ];
    let (stdout, _) = ok(&capstan(&args, mgmt.kubeconfig_path(), &[]));
    let objects = docs(&stdout);
    let crs = objects
        .iter()
        .find(|o| o["kind"] == "ClusterResourceSet")
        .unwrap();
    assert_eq!(crs["spec"]["strategy"], "Reconcile");
    let secrets: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Secret").collect();
    assert!(!secrets.is_empty());
    let mut contents = Vec::new();
    for s in &secrets {
        assert_eq!(s["type"], "addons.cluster.x-k8s.io/resource-set");
        assert!(serde_json::to_vec(s).unwrap().len() < 1 << 20);
        contents.extend(capstan_install::crs::unpack(s).unwrap());
    }
    // Accepted by the API server (the CRD's schema validates the ClusterResourceSet).
    let mut unit = ApplyUnit::new(
        UnitRef::new("Kustomization", "test", "crs"),
        objects.clone(),
    );
    unit.prune = false;
    Applier::new(client.clone())
        .apply(&unit, &ApplyOptions::default())
        .await
        .unwrap();
    let live = api(
        &client,
        "addons.cluster.x-k8s.io",
        "v1beta1",
        "ClusterResourceSet",
        Some("default"),
    )
    .get("capstan-agent")
    .await
    .unwrap();
    assert_eq!(
        live.data["spec"]["resources"].as_array().unwrap().len(),
        secrets.len()
    );

    // What the ClusterResourceSet controller applies, applied to the workload cluster.
    let wclient = workload.client().await;
    let unit = ApplyUnit::new(
        UnitRef::new("ClusterResourceSet", "default", "capstan-agent"),
        contents,
    );
    Applier::new(wclient.clone())
        .apply(&unit, &ApplyOptions::default())
        .await
        .unwrap();
    assert!(
        exists(
            &wclient,
            "apps",
            "v1",
            "Deployment",
            Some("capstan-system"),
            "capstan-agent"
        )
        .await
    );
    assert!(
        exists(
            &wclient,
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            None,
            "capstan-agent-capstan-system"
        )
        .await
    );
    assert!(
        exists(
            &wclient,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            None,
            "kustomizations.kustomize.toolkit.fluxcd.io"
        )
        .await
    );
    // A working agent: run as the Deployment's ServiceAccount, it reconciles the repository.
    let mut agent = InClusterAgent::start(&workload, "capstan-system", tmp.path()).await;
    agent
        .wait_for(
            "the workload cluster's repository state reconciled",
            || async {
                configmap_data(&wclient, "born", "site").await
                    == Some(json!({"message": "with an agent"}))
            },
        )
        .await;
    agent.stop();
    // `install --check` on an install without an inventory (the ClusterResourceSet's
    // objects carry none of `capstan install`'s): found by the Deployment's labels.
    let out = capstan(&["install", "--check"], workload.kubeconfig_path(), &[]);
    let check = text(&out.stdout);
    assert!(
        check.contains("namespace capstan-system: version")
            && check.contains("image localhost/capstan:0.1.0")
            && check.contains("no install inventory")
            && check.contains("Deployment/capstan-system/capstan-agent: present")
            && check.contains("ClusterRoleBinding/capstan-agent-capstan-system: present"),
        "{check}"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "the Deployment is not available on the test bed: {check}"
    );

    // `package crs`: a kustomize directory and a manifest larger than one Secret holds.
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("cni");
    std::fs::create_dir(&k).unwrap();
    std::fs::write(
        k.join("kustomization.yaml"),
        "namespace: kube-system\nresources:\n- ds.yaml\n",
    )
    .unwrap();
    std::fs::write(
        k.join("ds.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cni-config\ndata:\n  a: b\n",
    )
    .unwrap();
    let mut big = String::new();
    for i in 0..4 {
        big.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-{i}\n  namespace: default\ndata:\n  blob: {}\n", "x".repeat(400 * 1024)));
    }
    std::fs::write(dir.path().join("big.yaml"), big).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "package",
            "crs",
            "cni",
            k.to_str().unwrap(),
            dir.path().join("big.yaml").to_str().unwrap(),
            "--cluster-selector",
            "cni=calico",
        ])
        .output()
        .unwrap();
    let (stdout, _) = ok(&out);
    let objects = docs(&stdout);
    let secrets: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Secret").collect();
    assert!(
        secrets.len() >= 2,
        "1.6 MiB split over several Secrets: {}",
        secrets.len()
    );
    let mut names = Vec::new();
    for s in &secrets {
        assert!(serde_json::to_vec(s).unwrap().len() < 1 << 20);
        names.extend(
            capstan_install::crs::unpack(s)
                .unwrap()
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string()),
        );
    }
    names.sort();
    assert_eq!(names, ["big-0", "big-1", "big-2", "big-3", "cni-config"]);
    let mut unit = ApplyUnit::new(UnitRef::new("Kustomization", "test", "cni"), objects);
    unit.prune = false;
    Applier::new(client.clone())
        .apply(&unit, &ApplyOptions::default())
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// The agent as a pod would run it: `capstan agent` with the args of the installed
// Deployment, the ServiceAccount's token and the in-cluster environment
// (KUBERNETES_SERVICE_HOST/PORT; token, ca.crt and namespace in the directory
// $CAPSTAN_SERVICEACCOUNT_DIR names), and no kubeconfig at all (empty environment, HOME
// without ~/.kube): whatever it does, it does with the rights `capstan install` gave it.

/// A token of the ServiceAccount from the TokenRequest API (as the kubelet mounts it).
async fn service_account_token(client: &kube::Client, ns: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .unwrap();
    sas.create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .expect("TokenRequest status")
        .token
}

/// The API server's port and CA file of a test-bed cluster (from its kubeconfig).
fn server_of(cluster: &TestCluster) -> (String, PathBuf) {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap();
    let c = kc.clusters[0].cluster.clone().unwrap();
    let server = c.server.unwrap();
    let port = server.rsplit(':').next().unwrap().trim_end_matches('/');
    (
        port.to_string(),
        PathBuf::from(c.certificate_authority.unwrap()),
    )
}

struct InClusterAgent {
    child: Child,
    log: PathBuf,
}

impl InClusterAgent {
    /// Starts `capstan agent` with the container args of the installed Deployment
    /// (`--listen` and `--cache-dir` moved to a free port and `dir`, `--poll 1s` added)
    /// as the Deployment's ServiceAccount.
    async fn start(cluster: &TestCluster, ns: &str, dir: &Path) -> InClusterAgent {
        let client = cluster.client().await;
        let d = api(&client, "apps", "v1", "Deployment", Some(ns))
            .get(capstan_install::AGENT_NAME)
            .await
            .unwrap();
        let d = serde_json::to_value(&d).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let sa = pod["serviceAccountName"].as_str().unwrap();
        let mut args: Vec<String> = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let sa_dir = dir.join("serviceaccount");
        std::fs::create_dir_all(&sa_dir).unwrap();
        let cache = dir.join("cache");
        for i in 0..args.len().saturating_sub(1) {
            match args[i].as_str() {
                "--listen" => args[i + 1] = format!("127.0.0.1:{}", free_port()),
                "--cache-dir" => args[i + 1] = cache.to_string_lossy().into_owned(),
                _ => {}
            }
        }
        args.extend(["--poll".into(), "1s".into()]);
        let token = service_account_token(&client, ns, sa).await;
        let (port, ca) = server_of(cluster);
        std::fs::write(sa_dir.join("token"), token).unwrap();
        std::fs::copy(ca, sa_dir.join("ca.crt")).unwrap();
        std::fs::write(sa_dir.join("namespace"), ns).unwrap();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let log = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .arg("agent")
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", &port)
            .env("CAPSTAN_SERVICEACCOUNT_DIR", &sa_dir)
            .env("POD_NAME", "capstan-agent-test")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("capstan agent starts");
        InClusterAgent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `done` until it holds (the agent's log in the panic message otherwise).
    async fn wait_for<F, Fut>(&mut self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !done().await {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the agent exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "{what}: not within 3 minutes; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "agent exit {status}:\n{}", self.log());
    }
}

impl Drop for InClusterAgent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A repository served by `git daemon`, its `main` branch holding `files`.
fn served_repo(tmp: &Path, files: &[(&str, String)]) -> (Repo, GitDaemon, String) {
    let repo = Repo::new(tmp, "fleet");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    for (path, content) in files {
        repo.write(path, content);
    }
    repo.commit("fleet");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    let daemon = GitDaemon::start(&repo.srv);
    let url = daemon.url("fleet");
    (repo, daemon, url)
}

fn site(ns: &str, message: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\n  namespace: {ns}\ndata:\n  message: {message}\n"
    )
}

async fn configmap_data(client: &kube::Client, ns: &str, name: &str) -> Option<Value> {
    api(client, "", "v1", "ConfigMap", Some(ns))
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .map(|c| c.data["data"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_agent_reconciles_as_its_service_account_and_upgrade_touches_only_the_deployment()
{
    let Some(cluster) = TestCluster::start("install-incluster") else {
        return;
    };
    let kc = cluster.kubeconfig_path();
    let client = cluster.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _daemon, url) = served_repo(
        tmp.path(),
        &[("clusters/mgmt/site.yaml", site("web", "hello"))],
    );
    let install = |image: &'static str| {
        vec![
            "install".to_string(),
            "--source".into(),
            url.clone(),
            "--branch".into(),
            "main".into(),
            "--cluster".into(),
            "mgmt".into(),
            "--interval".into(),
            "1s".into(),
            "--image".into(),
            image.into(),
        ]
    };
    let args = install("localhost/capstan:0.1.0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&capstan(&args, kc, &[]));

    let mut agent = InClusterAgent::start(&cluster, "capstan-system", tmp.path()).await;
    agent
        .wait_for("the repository reconciled", || async {
            configmap_data(&client, "web", "site").await == Some(json!({"message": "hello"}))
        })
        .await;
    // Leader election with the ServiceAccount: the Lease in the install namespace.
    assert!(
        exists(
            &client,
            "coordination.k8s.io",
            "v1",
            "Lease",
            Some("capstan-system"),
            "capstan-agent"
        )
        .await,
        "the agent's Lease"
    );
    // A new revision is followed too.
    repo.write("clusters/mgmt/site.yaml", &site("web", "again"));
    repo.commit("again");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    agent
        .wait_for("the new revision reconciled", || async {
            configmap_data(&client, "web", "site").await == Some(json!({"message": "again"}))
        })
        .await;
    assert!(
        !agent.log().contains("forbidden"),
        "the installed RBAC suffices:\n{}",
        agent.log()
    );
    agent.stop();

    // After the agent ran (it installs the toolkit CRDs and writes status itself), an
    // upgrade with a new image changes only the Deployment, per capstan's apply report.
    let args = install("localhost/capstan:0.2.0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (stdout, stderr) = ok(&capstan(&args, kc, &[]));
    assert_eq!(
        applied_lines(&stderr),
        ["Deployment/capstan-system/capstan-agent configured"],
        "{stderr}"
    );
    assert!(stdout.contains("0 created, 1 changed"), "{stdout}");

    // Uninstall keeping the CRDs: they stay, nothing else of capstan's does (every resource
    // type listed), the applied workload stays, no namespace is left terminating.
    let (stdout, stderr) = ok(&capstan(&["uninstall", "--keep-crds"], kc, &[]));
    assert!(!stdout.contains("error"), "{stdout}\n{stderr}");
    finish_namespace(&client, "capstan-system").await;
    // Kept with the CRDs: the custom resources of the toolkit kinds (unit objects).
    let kept: Vec<String> = capstan_status::flux_crds()
        .iter()
        .map(|c| c["spec"]["names"]["kind"].as_str().unwrap().to_string())
        .chain(["CustomResourceDefinition".to_string()])
        .collect();
    let left: Vec<String> = labelled(&client, "app.kubernetes.io/managed-by=capstan")
        .await
        .into_iter()
        .filter(|o| !kept.iter().any(|k| o.starts_with(&format!("{k} "))))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let left = labelled(&client, "capstan.io/inventory").await;
    assert!(left.is_empty(), "inventories left: {left:?}");
    assert!(
        exists(
            &client,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            None,
            "kustomizations.kustomize.toolkit.fluxcd.io"
        )
        .await,
        "--keep-crds"
    );
    assert!(configmap_data(&client, "web", "site").await.is_some());
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in nss.list(&ListParams::default()).await.unwrap() {
        assert!(
            ns.metadata.deletion_timestamp.is_none(),
            "{:?} terminating",
            ns.metadata.name
        );
    }
}

/// The bootstrap chain: an init cluster gets `capstan install`; its repository state
/// declares the management cluster (a Cluster API `Cluster` and its `<name>-kubeconfig`
/// Secret, pointing at a second test-bed cluster); the init cluster's agent registers it and
/// applies `clusters/mgmt` there; that state carries a ClusterResourceSet (from `capstan
/// install --export --crs`) that gives every workload cluster the agent at birth.
#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_chain_init_cluster_registers_and_reconciles_the_management_cluster() {
    let Some(init) = TestCluster::start("chain-init") else {
        return;
    };
    let Some(mgmt) = TestCluster::start("chain-mgmt") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (port, _) = server_of(&mgmt);
    let kubeconfig = mgmt.self_contained_kubeconfig();
    // The repository URL is known once the daemon runs: serve first, then commit the state.
    let (repo, _daemon, url) = served_repo(tmp.path(), &[("README.md", "fleet\n".into())]);

    // The workload clusters' agent, packaged for Cluster API.
    let (crs, _) = ok(&capstan(
        &[
            "install",
            "--source",
            &url,
            "--branch",
            "main",
            "--discover-clusters",
            "--image",
            "localhost/capstan:0.1.0",
            "--export",
            "--crs",
            "--cluster-selector",
            "capstan.io/agent=enabled",
            "--crs-namespace",
            "fleet",
        ],
        init.kubeconfig_path(),
        &[],
    ));
    let capi_cluster = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fleet\n---\n\
apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata:\n  name: mgmt\n  namespace: fleet\n\
spec:\n  controlPlaneEndpoint:\n    host: 127.0.0.1\n    port: {port}\n---\n\
apiVersion: v1\nkind: Secret\nmetadata:\n  name: mgmt-kubeconfig\n  namespace: fleet\n  labels:\n    cluster.x-k8s.io/cluster-name: mgmt\n\
type: cluster.x-k8s.io/secret\ndata:\n  value: {}\n",
        b64(kubeconfig.as_bytes())
    );
    repo.write(
        "clusters/init/cluster-api.yaml",
        &std::fs::read_to_string(data.join("cluster-crd.yaml")).unwrap(),
    );
    repo.write("clusters/init/mgmt.yaml", &capi_cluster);
    repo.write(
        "clusters/mgmt/cluster-api.yaml",
        &std::fs::read_to_string(data.join("clusterresourceset-crd.yaml")).unwrap(),
    );
    repo.write(
        "clusters/mgmt/fleet.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fleet\n",
    );
    repo.write("clusters/mgmt/workload-agent.yaml", &crs);
    repo.write("clusters/mgmt/site.yaml", &site("mgmt-site", "managed"));
    repo.commit("init declares mgmt; mgmt carries the workload clusters' agent");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);

    let init_client = init.client().await;
    let mgmt_client = mgmt.client().await;
    ok(&capstan(
        &[
            "install",
            "--source",
            &url,
            "--branch",
            "main",
            "--cluster",
            "init",
            "--discover-clusters",
            "--interval",
            "1s",
            "--image",
            "localhost/capstan:0.1.0",
        ],
        init.kubeconfig_path(),
        &[],
    ));
    let mut agent = InClusterAgent::start(&init, "capstan-system", tmp.path()).await;
    agent
        .wait_for("the Cluster object on the init cluster", || async {
            appeared(
                &init_client,
                "cluster.x-k8s.io",
                "v1beta1",
                "Cluster",
                Some("fleet"),
                "mgmt",
            )
            .await
        })
        .await;
    agent
        .wait_for(
            "clusters/mgmt applied to the management cluster",
            || async {
                configmap_data(&mgmt_client, "mgmt-site", "site").await
                    == Some(json!({"message": "managed"}))
            },
        )
        .await;
    agent
        .wait_for(
            "the ClusterResourceSet on the management cluster",
            || async {
                appeared(
                    &mgmt_client,
                    "addons.cluster.x-k8s.io",
                    "v1beta1",
                    "ClusterResourceSet",
                    Some("fleet"),
                    "capstan-agent",
                )
                .await
            },
        )
        .await;
    // What the init cluster holds stays there (clusters/mgmt went to mgmt only).
    assert!(configmap_data(&init_client, "mgmt-site", "site")
        .await
        .is_none());
    let live = api(
        &mgmt_client,
        "addons.cluster.x-k8s.io",
        "v1beta1",
        "ClusterResourceSet",
        Some("fleet"),
    )
    .get("capstan-agent")
    .await
    .unwrap();
    assert_eq!(live.data["spec"]["strategy"], "Reconcile");
    assert_eq!(
        live.data["spec"]["clusterSelector"]["matchLabels"]["capstan.io/agent"],
        "enabled"
    );
    for r in live.data["spec"]["resources"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let kind = r["kind"].as_str().unwrap();
        assert!(
            exists(&mgmt_client, "", "v1", kind, Some("fleet"), name).await,
            "{kind}/{name} of the ClusterResourceSet"
        );
    }
    agent.stop();
}

/// `clusters/staging/blue` and `clusters/staging/green`: two clusters of the staging
/// environment sharing everything but their cluster variables.
#[test]
fn fleet_blue_and_green_differ_only_in_their_cluster_variables() {
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
    let build = |cluster: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(["build", fleet.to_str().unwrap(), "--cluster", cluster])
            .output()
            .unwrap();
        ok(&out).0
    };
    let blue = build("staging/blue");
    let green = build("staging/green");
    for unit in ["flux-system", "infra-controllers", "infra-configs", "apps"] {
        let header = format!("# Unit: Kustomization/flux-system/{unit}\n");
        assert!(blue.contains(&header) && green.contains(&header), "{unit}");
    }
    assert!(blue.contains("--ui-message=staging-blue"), "{blue}");
    assert!(blue.contains("*.blue.staging.example.com"), "{blue}");
    assert!(green.contains("--ui-message=staging-green"), "{green}");
    assert!(!blue.contains("green") && !green.contains("blue"));
    assert_eq!(
        blue.replace("blue", "green"),
        green,
        "blue and green share everything but their variables"
    );
    // The staging cluster itself does not take its blue/ and green/ sub-directories in.
    let staging = build("staging");
    assert!(staging.contains("--ui-message=staging"), "{staging}");
    assert!(
        !staging.contains("staging-blue") && !staging.contains("staging-green"),
        "{staging}"
    );
}
