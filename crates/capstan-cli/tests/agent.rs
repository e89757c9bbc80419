//! `capstan agent` as a process: killed with SIGKILL in the middle of an apply, then
//! restarted on a newer revision, it converges and leaves no orphaned object.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capstan_testbed::servers::{free_port, git, GitDaemon, Repo};
use capstan_testbed::TestCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

const OBJECTS: usize = 300;

fn configmaps(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\n  namespace: killed\ndata:\n  i: \"{i}\"\n")
        })
        .collect()
}

fn agent(url: &str, cluster: &TestCluster, cache: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "agent",
            "--source",
            url,
            "--branch",
            "main",
            "--cluster",
            "k",
        ])
        .args(["--interval", "1s", "--poll", "1s", "--concurrency", "1"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("capstan agent starts")
}

async fn names(client: &kube::Client) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "killed");
    let mut v: Vec<String> = api
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .filter(|n| n.starts_with("cm-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn inventory(client: &kube::Client) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "capstan-system");
    let Ok(Some(cm)) = api
        .get_opt("inventory.kustomization.flux-system.flux-system")
        .await
    else {
        return Vec::new();
    };
    let entries = cm
        .data
        .unwrap_or_default()
        .get("entries")
        .cloned()
        .unwrap_or_default();
    let inventory = capstan_apply::inventory::Inventory::decode(&entries).unwrap_or_default();
    let mut v: Vec<String> = inventory
        .refs()
        .into_iter()
        .filter(|r| r.namespace == "killed" && r.name.starts_with("cm-"))
        .map(|r| r.name)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_apply_then_restart_converges_without_orphans() {
    let Some(cluster) = TestCluster::start("agent-kill") else {
        return;
    };
    let client = cluster.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "fleet");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo.write(
        "clusters/k/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: killed\n",
    );
    repo.write("clusters/k/cms.yaml", &configmaps(0..OBJECTS));
    repo.commit("all");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    let daemon = GitDaemon::start(&repo.srv);
    let url = daemon.url("fleet");
    let cache = tmp.path().join("cache");

    let mut first = agent(&url, &cluster, &cache);
    let start = Instant::now();
    let mut seen = 0;
    while start.elapsed() < Duration::from_secs(120) {
        seen = names(&client).await.len();
        if seen >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let after_kill = names(&client).await.len();
    assert!(seen >= 5, "the agent applied nothing in two minutes");
    eprintln!("killed with {after_kill} of {OBJECTS} ConfigMaps applied");

    // The repository moves on: the second half is gone from it.
    repo.write("clusters/k/cms.yaml", &configmaps(0..OBJECTS / 2));
    repo.commit("half");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);

    let mut second = agent(&url, &cluster, &cache);
    let expected: Vec<String> = (0..OBJECTS / 2).map(|i| format!("cm-{i:03}")).collect();
    let start = Instant::now();
    loop {
        let live = names(&client).await;
        if live == expected && inventory(&client).await == expected {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "not converged: {} live, {} in the inventory",
            live.len(),
            inventory(&client).await.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every live object of the unit is in the inventory, and the reverse.
    assert_eq!(names(&client).await, inventory(&client).await);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status();
    let status = second.wait().unwrap();
    assert!(
        status.success(),
        "agent did not exit cleanly on SIGTERM: {status}"
    );
}
