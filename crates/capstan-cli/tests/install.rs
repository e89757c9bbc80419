//! `capstan install`, `capstan uninstall` and `capstan package crs`, run as the binary
//! against test-bed API servers (each test has its own: uninstall is cluster-wide).
//!
//! The test bed runs no controller-manager: no pods start, Deployments never become
//! available by themselves, and a deleted namespace stays Terminating until its content is
//! deleted and it is finalized, which the namespace controller does. The tests play that
//! controller (after checking that nothing left in the namespace holds a finalizer, so it
//! would finish), and set Deployment status through the status subresource.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use capstan_apply::{Applier, ApplyOptions, ApplyUnit, UnitRef};
use capstan_install::Resources;
use capstan_testbed::TestCluster;
use k8s_openapi::api::core::v1::Namespace;
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

    let mut args = install_args("localhost/capstan:0.1.0");
    args.extend([
        "--export",
        "--crs",
        "--cluster-selector",
        "capstan.io/agent=enabled",
    ]);
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
