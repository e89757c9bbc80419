//! End to end against real API servers (capstan-testbed): the bundled fleet repository
//! converges on the first apply, in dependency order, idempotently; prune and broken
//! units behave; two clusters get their own variables.

use std::path::{Path, PathBuf};

use capstan_apply::{Applier, ApplyOptions, UnitResult};
use capstan_engine::{
    execute, render_cluster, ApplyDriver, ExecuteOptions, Execution, KubeLookup, UnitStatus,
};
use capstan_graph::UnitId;
use capstan_testbed::TestCluster;
use capstan_units::LoadOptions;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

fn fleet_copy(tag: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
    let dst = std::env::temp_dir().join(format!("capstan-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(&src, &dst);
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

async fn apply(
    client: &kube::Client,
    repo: &Path,
    cluster: &str,
) -> Result<Execution<UnitResult>, String> {
    let fs = capstan_vfs::DiskFs::new(repo).unwrap();
    let render = render_cluster(
        &fs,
        &KubeLookup::new(client.clone()),
        &LoadOptions::new(format!("clusters/{cluster}")),
    );
    let applier = Applier::new(client.clone());
    execute(
        &ApplyDriver {
            applier: &applier,
            options: ApplyOptions::default(),
        },
        &render,
        &ExecuteOptions::default(),
    )
    .await
}

fn ks(name: &str) -> UnitId {
    UnitId::new("Kustomization", "flux-system", name)
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn first_write(writes: &[capstan_testbed::RecordedRequest], needle: &str) -> usize {
    writes
        .iter()
        .position(|w| w.path.contains(needle))
        .unwrap_or_else(|| panic!("no write to {needle} in {:#?}", writes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_on_first_apply_in_order_and_reapply_writes_nothing() {
    let Some(cluster) = TestCluster::start("e2e-order") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let repo = fleet_copy("order");

    let ex = apply(&client, &repo, "staging").await.unwrap();
    assert!(ex.all_ok(), "{:#?}", ex.status);
    // The custom resource, in another unit than its CRD, exists after the first apply.
    let cp = api(
        &client,
        "fleet.example.com",
        "v1",
        "CertificatePolicy",
        "certificatepolicies",
        "fleet-system",
    );
    let policy = cp.get("default").await.unwrap();
    assert_eq!(policy.data["spec"]["issuer"], "letsencrypt-staging");
    assert_eq!(policy.data["spec"]["dnsNames"][0], "*.staging.example.com");

    // Order of writes: CRD before its custom resources, infra-configs before apps (dependsOn).
    let writes = counter.writes();
    let crd = first_write(
        &writes,
        "customresourcedefinitions/certificatepolicies.fleet.example.com",
    );
    let cr = first_write(&writes, "/certificatepolicies/default");
    let app = first_write(&writes, "/namespaces/podinfo/deployments/podinfo");
    assert!(crd < cr && cr < app, "crd {crd} < cr {cr} < app {app}");
    // A Kustomization after the HelmRelease whose chart ships the CRD it uses.
    let helm_crd = first_write(
        &writes,
        "customresourcedefinitions/metricstargets.metrics.example.com",
    );
    let target = first_write(&writes, "/namespaces/podinfo/metricstargets/podinfo");
    assert!(
        helm_crd < target,
        "helm crd {helm_crd} < custom resource {target}"
    );
    let agent = api(&client, "", "v1", "ConfigMap", "configmaps", "monitoring")
        .get("metrics-agent")
        .await
        .unwrap();
    assert_eq!(
        agent.data["data"]["agent.yaml"],
        "cluster: staging\nscrape_interval: 15s\nlog_level: info\n"
    );

    // Variables keyed on the cluster reached the Deployment.
    let deploy = api(
        &client,
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "podinfo",
    )
    .get("podinfo")
    .await
    .unwrap();
    assert_eq!(deploy.data["spec"]["replicas"], 2);
    assert_eq!(
        deploy.data["spec"]["template"]["spec"]["containers"][0]["args"][1],
        "--ui-message=staging"
    );

    // A second apply of the unchanged repository sends no write request at all.
    counter.reset();
    let ex = apply(&client, &repo, "staging").await.unwrap();
    assert!(ex.all_ok(), "{:#?}", ex.status);
    let writes = counter.writes();
    assert!(writes.is_empty(), "re-apply wrote: {writes:#?}");
    let _ = std::fs::remove_dir_all(repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_spares_foreign_objects_and_broken_units_prune_nothing() {
    let Some(cluster) = TestCluster::start("e2e-prune") else {
        return;
    };
    let client = cluster.client().await;
    let repo = fleet_copy("prune");
    let ex = apply(&client, &repo, "staging").await.unwrap();
    assert!(ex.all_ok(), "{:#?}", ex.status);

    // Someone else's object in a namespace we manage.
    let cms = api(&client, "", "v1", "ConfigMap", "configmaps", "podinfo");
    let foreign: DynamicObject = serde_json::from_value(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"hand-made","namespace":"podinfo"},"data":{"a":"b"}})).unwrap();
    cms.create(
        &PostParams {
            field_manager: Some("kubectl".into()),
            ..Default::default()
        },
        &foreign,
    )
    .await
    .unwrap();

    // redis leaves the staging overlay: it is pruned, the rest stays.
    let k = repo.join("apps/staging/kustomization.yaml");
    std::fs::write(
        &k,
        std::fs::read_to_string(&k)
            .unwrap()
            .replace("  - ../base/redis\n", ""),
    )
    .unwrap();
    let ex = apply(&client, &repo, "staging").await.unwrap();
    assert!(ex.all_ok(), "{:#?}", ex.status);
    let deployments = api(
        &client,
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "podinfo",
    );
    assert!(
        deployments.get_opt("redis").await.unwrap().is_none(),
        "redis pruned"
    );
    assert!(deployments.get_opt("podinfo").await.unwrap().is_some());
    assert!(
        cms.get_opt("hand-made").await.unwrap().is_some(),
        "objects we do not own are never pruned"
    );

    // A broken file in infra-configs: that unit and apps (which depends on it) are blocked,
    // other units apply, and nothing is pruned on their account.
    std::fs::write(
        repo.join("infrastructure/configs/certificate-policy.yaml"),
        "apiVersion: v1\nkind: [broken\n",
    )
    .unwrap();
    std::fs::write(
        &k,
        std::fs::read_to_string(&k)
            .unwrap()
            .replace("  - ../base/podinfo\n", ""),
    )
    .unwrap();
    let ex = apply(&client, &repo, "staging").await.unwrap();
    assert!(!ex.all_ok());
    assert!(
        matches!(&ex.status[&ks("infra-configs")], UnitStatus::Blocked(m) if m.contains("failed to render")),
        "{:?}",
        ex.status[&ks("infra-configs")]
    );
    assert!(
        matches!(&ex.status[&ks("apps")], UnitStatus::Blocked(_)),
        "{:?}",
        ex.status[&ks("apps")]
    );
    assert!(matches!(
        &ex.status[&ks("infra-controllers")],
        UnitStatus::Done(_)
    ));
    let cp = api(
        &client,
        "fleet.example.com",
        "v1",
        "CertificatePolicy",
        "certificatepolicies",
        "fleet-system",
    );
    assert!(
        cp.get_opt("default").await.unwrap().is_some(),
        "the broken unit pruned nothing"
    );
    assert!(
        deployments.get_opt("podinfo").await.unwrap().is_some(),
        "the blocked unit pruned nothing"
    );
    let _ = std::fs::remove_dir_all(repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_errors_stop_everything_before_any_write() {
    let Some(cluster) = TestCluster::start("e2e-cycle") else {
        return;
    };
    let (client, counter) = cluster.counting_client().await;
    let repo = fleet_copy("cycle");
    let f = repo.join("clusters/staging/infrastructure.yaml");
    let text = std::fs::read_to_string(&f).unwrap().replacen(
        "  interval: 1h\n",
        "  interval: 1h\n  dependsOn:\n    - name: apps\n",
        1,
    );
    std::fs::write(&f, text).unwrap();
    let err = apply(&client, &repo, "staging").await.unwrap_err();
    assert!(
        err.contains("dependency cycle: Kustomization/flux-system/"),
        "{err}"
    );
    assert!(
        err.contains("-> Kustomization/flux-system/apps ->") || err.contains("apps -> "),
        "{err}"
    );
    assert!(counter.writes().is_empty(), "{:#?}", counter.writes());
    let _ = std::fs::remove_dir_all(repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_receive_their_own_variables() {
    let Some(staging) = TestCluster::start("e2e-staging") else {
        return;
    };
    let Some(production) = TestCluster::start("e2e-production") else {
        return;
    };
    let repo = fleet_copy("two");
    for (cluster, name, replicas, tag) in [
        (&staging, "staging", 2, "6.7.0"),
        (&production, "production", 3, "6.7.1"),
    ] {
        let client = cluster.client().await;
        let ex = apply(&client, &repo, name).await.unwrap();
        assert!(ex.all_ok(), "{name}: {:#?}", ex.status);
        let d = api(
            &client,
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "podinfo",
        )
        .get("podinfo")
        .await
        .unwrap();
        assert_eq!(d.data["spec"]["replicas"], replicas, "{name}");
        let c = &d.data["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"][1], format!("--ui-message={name}"));
        assert_eq!(c["image"], format!("ghcr.io/stefanprodan/podinfo:{tag}"));
        let vars = api(&client, "", "v1", "ConfigMap", "configmaps", "flux-system")
            .get("cluster-vars")
            .await
            .unwrap();
        assert_eq!(vars.data["data"]["cluster_name"], name);
    }
    let _ = std::fs::remove_dir_all(repo);
}
