//! The agent end to end: a real Git server on loopback, real API servers from the test
//! bed, the agent in-process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_agent::{Agent, AgentConfig, ClusterSource, WorkerSettings};
use capstan_source::GitRepositorySpec;
use capstan_testbed::servers::{git, GitDaemon, Repo};
use capstan_testbed::TestCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn configmap(name: &str, ns: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  value: \"{value}\"\n"
    )
}

fn fleet_remove(repo: &Repo, path: &str) {
    std::fs::remove_file(repo.work.join(path)).unwrap();
}

fn push(repo: &Repo, msg: &str) -> String {
    let c = repo.commit(msg);
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    c
}

fn new_repo(tmp: &std::path::Path) -> Repo {
    let repo = Repo::new(tmp, "fleet");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo
}

fn source(url: &str, interval: &str) -> GitRepositorySpec {
    GitRepositorySpec::from_object(&json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {"url": url, "interval": interval, "ref": {"branch": "main"}}
    }))
    .unwrap()
}

/// An agent fetching every second, reconciling `clusters`.
fn polling(url: &str, tmp: &std::path::Path, clusters: &[(&str, &kube::Client)]) -> AgentConfig {
    let mut cfg = config(
        source(url, "1s"),
        Duration::from_secs(1),
        &tmp.join("cache"),
    );
    cfg.clusters = clusters
        .iter()
        .map(|(name, client)| ClusterSource {
            name: name.to_string(),
            client: (*client).clone(),
        })
        .collect();
    cfg
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        poll_interval: Duration::from_millis(500),
        retry_base: Duration::from_millis(500),
        ..Default::default()
    }
}

fn config(src: GitRepositorySpec, interval: Duration, cache: &std::path::Path) -> AgentConfig {
    AgentConfig {
        source: src,
        source_auth: None,
        source_interval: interval,
        cache_dir: cache.to_path_buf(),
        clusters: Vec::new(),
        management: None,
        discover_clusters: false,
        discover_namespace: None,
        discover_interval: Duration::from_millis(500),
        settings: settings(),
        listen: None,
        install_crds: true,
        leader_election: None,
    }
}

/// Polls `f` until it returns true, for at most `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {secs}s waiting for: {what}");
}

/// Wakes `cluster`'s worker and waits until `n` rounds have started and finished after
/// this call (round completions, not time).
async fn whole_rounds(agent: &Agent, cluster: &str, n: u64) {
    let worker = agent.worker(cluster).expect("the cluster's worker");
    let mut rounds = worker.rounds();
    // The round running now may have started before the caller's change: skip it.
    let target = *rounds.borrow_and_update() + n + 1;
    tokio::time::timeout(Duration::from_secs(60), async {
        while *rounds.borrow_and_update() < target {
            worker.wake.notify_one();
            rounds.changed().await.expect("the worker runs");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} rounds of {cluster} within 60 s"));
}

async fn value(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.data)
        .and_then(|d| d.get("value").cloned())
}

async fn has_value(client: &kube::Client, ns: &str, name: &str, v: &str) -> bool {
    value(client, ns, name).await.as_deref() == Some(v)
}

fn start(
    agent: &Arc<Agent>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), String>>,
) {
    // RUST_LOG=capstan_agent=debug shows what the agent does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let stop = CancellationToken::new();
    let task = tokio::spawn(agent.clone().run(stop.clone()));
    (stop, task)
}

fn ks_resource() -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: "kustomize.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
        kind: "Kustomization".into(),
        plural: "kustomizations".into(),
    }
}

async fn ks_status(client: &kube::Client, ns: &str, name: &str) -> serde_json::Value {
    let ar = ks_resource();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    match api.get_opt(name).await {
        Ok(Some(o)) => o.data.get("status").cloned().unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

fn ready(status: &serde_json::Value) -> Option<(String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_reaches_two_clusters_by_webhook_and_by_interval() {
    let (Some(a), Some(b)) = (TestCluster::start("agent-a"), TestCluster::start("agent-b")) else {
        return;
    };
    let (ca, cb) = (a.client().await, b.client().await);
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path());
    repo.write("clusters/a/app.yaml", &configmap("hello", "default", "one"));
    repo.write("clusters/b/app.yaml", &configmap("hello", "default", "one"));
    let c1 = push(&repo, "one");
    let daemon = GitDaemon::start(&repo.srv);

    // An agent that fetches only when told (interval of an hour), with a webhook.
    let mut cfg = config(
        source(&daemon.url("fleet"), "1h"),
        Duration::from_secs(3600),
        &tmp.path().join("cache"),
    );
    cfg.clusters = vec![
        ClusterSource {
            name: "a".into(),
            client: ca.clone(),
        },
        ClusterSource {
            name: "b".into(),
            client: cb.clone(),
        },
    ];
    cfg.management = Some(ca.clone());
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    eventually(60, "first revision on both clusters", || async {
        has_value(&ca, "default", "hello", "one").await
            && has_value(&cb, "default", "hello", "one").await
    })
    .await;
    // Status where Flux users look for it.
    eventually(20, "Ready status on the root unit", || async {
        let st = ks_status(&ca, "flux-system", "flux-system").await;
        ready(&st).is_some_and(|(s, _)| s == "True")
            && st["lastAppliedRevision"] == format!("main@sha1:{c1}")
    })
    .await;

    // Probes and metrics.
    let base = format!("http://{}", agent.http_addr().unwrap());
    let http = reqwest::Client::new();
    for probe in ["/healthz", "/readyz"] {
        let r = http.get(format!("{base}{probe}")).send().await.unwrap();
        assert!(r.status().is_success(), "{probe}: {}", r.status());
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "capstan_reconcile_duration_seconds",
        "gotk_reconcile_condition",
        "capstan_clusters",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from /metrics:\n{metrics}"
        );
    }

    // A Receiver for the root source, with its token in a Secret.
    let secrets: Api<Secret> = Api::namespaced(ca.clone(), "flux-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "webhook-token", "namespace": "flux-system"},
                "stringData": {"token": "s3cret-token"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let receiver = json!({
        "apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver",
        "metadata": {"name": "git-push", "namespace": "flux-system"},
        "spec": {"type": "generic", "secretRef": {"name": "webhook-token"},
                 "resources": [{"kind": "GitRepository", "name": "flux-system"}]}
    });
    let ar = kube::discovery::ApiResource {
        group: "notification.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "notification.toolkit.fluxcd.io/v1".into(),
        kind: "Receiver".into(),
        plural: "receivers".into(),
    };
    let receivers: Api<kube::api::DynamicObject> =
        Api::namespaced_with(ca.clone(), "flux-system", &ar);
    receivers
        .create(
            &PostParams::default(),
            &serde_json::from_value(receiver.clone()).unwrap(),
        )
        .await
        .unwrap();
    let path = capstan_receiver::ReceiverSpec::from_object(&receiver, b"s3cret-token")
        .unwrap()
        .webhook_path();

    repo.write("clusters/a/app.yaml", &configmap("hello", "default", "two"));
    repo.write("clusters/b/app.yaml", &configmap("hello", "default", "two"));
    push(&repo, "two");
    let url = format!("{base}{path}");
    // The agent reads Receivers every half second; retry until it knows this one.
    eventually(20, "webhook accepted", || {
        let http = http.clone();
        let url = url.clone();
        async move {
            matches!(http.post(&url).body("{}").send().await, Ok(r) if r.status().is_success())
        }
    })
    .await;
    eventually(
        30,
        "pushed revision on both clusters after the webhook",
        || async {
            has_value(&ca, "default", "hello", "two").await
                && has_value(&cb, "default", "hello", "two").await
        },
    )
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    // An agent on a short interval: the next push arrives without being asked.
    let mut cfg = config(
        source(&daemon.url("fleet"), "1s"),
        Duration::from_secs(1),
        &tmp.path().join("cache"),
    );
    cfg.clusters = vec![
        ClusterSource {
            name: "a".into(),
            client: ca.clone(),
        },
        ClusterSource {
            name: "b".into(),
            client: cb.clone(),
        },
    ];
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    repo.write(
        "clusters/a/app.yaml",
        &configmap("hello", "default", "three"),
    );
    repo.write(
        "clusters/b/app.yaml",
        &configmap("hello", "default", "three"),
    );
    push(&repo, "three");
    eventually(
        60,
        "third revision on both clusters by interval",
        || async {
            has_value(&ca, "default", "hello", "three").await
                && has_value(&cb, "default", "hello", "three").await
        },
    )
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspend_stops_changes_and_resume_applies_them() {
    let Some(c) = TestCluster::start("agent-suspend") else {
        return;
    };
    let client = c.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path());
    repo.write(
        "clusters/c/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    repo.write(
        "clusters/c/keep.yaml",
        &configmap("keep", "default", "kept"),
    );
    repo.write("apps/cm.yaml", &configmap("app", "default", "one"));
    push(&repo, "one");
    let daemon = GitDaemon::start(&repo.srv);
    let cfg = polling(&daemon.url("fleet"), tmp.path(), &[("c", &client)]);
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    eventually(60, "first revision", || {
        has_value(&client, "default", "app", "one")
    })
    .await;
    eventually(20, "apps Ready", || async {
        ready(&ks_status(&client, "flux-system", "apps").await).is_some_and(|(s, _)| s == "True")
    })
    .await;

    // `capstan suspend ks apps` does this.
    let ar = ks_resource();
    let ks: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "flux-system", &ar);
    let suspend = |on: bool| json!({"spec": {"suspend": on}});
    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(suspend(true)),
    )
    .await
    .unwrap();
    // Let the agent see the suspension before the push: a whole round after the patch.
    whole_rounds(&agent, "c", 1).await;
    repo.write("apps/cm.yaml", &configmap("app", "default", "two"));
    let c2 = push(&repo, "two");
    // The root unit moves on to the new revision; the suspended unit does not.
    eventually(30, "root unit at the new revision", || async {
        ks_status(&client, "flux-system", "flux-system").await["lastAppliedRevision"]
            == format!("main@sha1:{c2}")
    })
    .await;
    // A whole round at the new revision has passed the suspended unit by.
    whole_rounds(&agent, "c", 1).await;
    assert_eq!(
        value(&client, "default", "app").await.as_deref(),
        Some("one"),
        "suspended unit changed"
    );
    // The root unit's apply did not undo the suspension (it does not own spec.suspend).
    let live = ks.get("apps").await.unwrap();
    assert_eq!(live.data["spec"]["suspend"], true);

    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(suspend(false)),
    )
    .await
    .unwrap();
    eventually(30, "resumed unit applies the new revision", || {
        has_value(&client, "default", "app", "two")
    })
    .await;

    // `capstan reconcile ks apps` sets this annotation; the agent answers in the status.
    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-23T12:00:00.000000000Z"}}})),
    )
    .await
    .unwrap();
    eventually(30, "the reconcile request handled", || async {
        ks_status(&client, "flux-system", "apps").await["lastHandledReconcileAt"]
            == "2026-11-23T12:00:00.000000000Z"
    })
    .await;

    // A revision that fails to render: Ready=False with the cause, the last good state kept.
    repo.write("apps/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata: [unclosed\n");
    push(&repo, "broken");
    eventually(30, "the unit reports the broken revision", || async {
        let st = ks_status(&client, "flux-system", "apps").await;
        ready(&st).is_some_and(|(s, m)| s == "False" && m.contains("cm.yaml"))
    })
    .await;
    assert!(
        has_value(&client, "default", "app", "two").await,
        "last good state lost"
    );
    repo.write("apps/cm.yaml", &configmap("app", "default", "fixed"));
    push(&repo, "fixed");
    eventually(30, "converged once the repository is fixed", || {
        has_value(&client, "default", "app", "fixed")
    })
    .await;

    // The unit leaves the repository: its object is pruned, and so are its objects.
    fleet_remove(&repo, "clusters/c/apps.yaml");
    push(&repo, "three");
    eventually(30, "the removed unit's objects are deleted", || async {
        value(&client, "default", "app").await.is_none()
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_secrets_register_clusters_and_kubeconfig_units_apply_remotely() {
    let (Some(mgmt), Some(d)) = (
        TestCluster::start("agent-mgmt"),
        TestCluster::start("agent-d"),
    ) else {
        return;
    };
    let (cm, cd) = (mgmt.client().await, d.client().await);
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path());
    repo.write("clusters/d/app.yaml", &configmap("hello", "default", "d"));
    // The management cluster's own state drives one unit on D through spec.kubeConfig.
    repo.write(
        "clusters/mgmt/remote.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: remote-app\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./remote\n  prune: true\n  kubeConfig:\n    secretRef:\n      name: d-kubeconfig-flux\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    repo.write(
        "remote/cm.yaml",
        &configmap("remote", "default", "via-kubeconfig"),
    );
    push(&repo, "one");
    // Secrets carry self-contained kubeconfigs (files they name are refused): inline the CA.
    let kubeconfig = d.self_contained_kubeconfig();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cm.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "flux-system"}})).unwrap(),
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(cm.clone(), "flux-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "d-kubeconfig-flux", "namespace": "flux-system"},
                "stringData": {"value": kubeconfig}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let daemon = GitDaemon::start(&repo.srv);
    let mut cfg = polling(&daemon.url("fleet"), tmp.path(), &[("mgmt", &cm)]);
    cfg.management = Some(cm.clone());
    cfg.discover_clusters = true;
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    eventually(
        60,
        "the remote unit applied to D, with its status on the management cluster",
        || async {
            has_value(&cd, "default", "remote", "via-kubeconfig").await
                && ready(&ks_status(&cm, "flux-system", "remote-app").await)
                    .is_some_and(|(s, _)| s == "True")
        },
    )
    .await;
    assert_eq!(agent.clusters(), vec!["mgmt".to_string()]);

    // Cluster API writes `<cluster>-kubeconfig` Secrets like this one.
    let secrets: Api<Secret> = Api::namespaced(cm.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "cluster.x-k8s.io/secret",
                "metadata": {"name": "d-kubeconfig", "namespace": "default",
                             "labels": {"cluster.x-k8s.io/cluster-name": "d"}},
                "stringData": {"value": kubeconfig}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(60, "the new cluster gets its state", || {
        has_value(&cd, "default", "hello", "d")
    })
    .await;
    assert_eq!(agent.clusters(), vec!["d".to_string(), "mgmt".to_string()]);

    secrets
        .delete("d-kubeconfig", &Default::default())
        .await
        .unwrap();
    eventually(20, "the cluster is no longer reconciled", || async {
        agent.clusters() == vec!["mgmt".to_string()]
    })
    .await;
    // Nothing was deleted on its behalf.
    assert!(has_value(&cd, "default", "hello", "d").await);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_server_restart_is_survived() {
    let Some(e) = TestCluster::start("agent-restart") else {
        return;
    };
    let client = e.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path());
    repo.write("clusters/e/app.yaml", &configmap("hello", "default", "one"));
    push(&repo, "one");
    let daemon = GitDaemon::start(&repo.srv);
    let mut cfg = polling(&daemon.url("fleet"), tmp.path(), &[("e", &client)]);
    // Units without an interval are re-applied every 2 s: drift is corrected quickly.
    cfg.settings.default_interval = Duration::from_secs(2);
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    eventually(60, "first revision", || {
        has_value(&client, "default", "hello", "one")
    })
    .await;

    repo.write("clusters/e/app.yaml", &configmap("hello", "default", "two"));
    repo.write("clusters/e/more.yaml", &configmap("more", "default", "two"));
    push(&repo, "two");
    // The API server goes away while the agent works, and comes back.
    let e = Arc::new(e);
    let e2 = e.clone();
    tokio::task::spawn_blocking(move || e2.restart_apiserver())
        .await
        .unwrap();
    eventually(60, "converged after the restart", || async {
        has_value(&client, "default", "hello", "two").await
            && has_value(&client, "default", "more", "two").await
    })
    .await;
    // Drift: someone edits an applied object; the next interval puts it back.
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": "tampered"}})),
        )
        .await
        .unwrap();
    eventually(30, "drift corrected", || {
        has_value(&client, "default", "hello", "two")
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn units_of_another_git_repository_follow_that_repository() {
    let Some(c) = TestCluster::start("agent-sources") else {
        return;
    };
    let client = c.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = new_repo(tmp.path());
    // The apps live in a repository of their own, declared by the fleet repository.
    let apps_tmp = tmp.path().join("apps");
    std::fs::create_dir_all(&apps_tmp).unwrap();
    let apps = Repo::new(&apps_tmp, "apps");
    git(&apps.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    apps.write("deploy/cm.yaml", &configmap("from-apps", "default", "one"));
    let a1 = push(&apps, "one");
    let apps_daemon = GitDaemon::start(&apps.srv);
    fleet.write(
        "clusters/s/apps.yaml",
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1s\n  url: {}\n  ref:\n    branch: main\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: apps\n",
            apps_daemon.url("apps")
        ),
    );
    // The same path in the fleet repository must not be used for the apps unit.
    fleet.write(
        "deploy/cm.yaml",
        &configmap("from-apps", "default", "wrong-repository"),
    );
    push(&fleet, "one");
    let daemon = GitDaemon::start(&fleet.srv);
    let cfg = polling(&daemon.url("fleet"), tmp.path(), &[("s", &client)]);
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    eventually(60, "the apps repository's object", || {
        has_value(&client, "default", "from-apps", "one")
    })
    .await;
    eventually(
        20,
        "the apps unit at the apps repository's revision",
        || async {
            ks_status(&client, "flux-system", "apps").await["lastAppliedRevision"]
                == format!("main@sha1:{a1}")
        },
    )
    .await;
    // The source's own status, as source-controller writes it.
    eventually(20, "the apps GitRepository's artifact status", || async {
        let ar = kube::discovery::ApiResource {
            group: "source.toolkit.fluxcd.io".into(),
            version: "v1".into(),
            api_version: "source.toolkit.fluxcd.io/v1".into(),
            kind: "GitRepository".into(),
            plural: "gitrepositories".into(),
        };
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(client.clone(), "flux-system", &ar);
        let Ok(Some(o)) = api.get_opt("apps").await else {
            return false;
        };
        let st = o.data.get("status").cloned().unwrap_or_default();
        st["artifact"]["revision"] == format!("main@sha1:{a1}")
            && ready(&st).is_some_and(|(s, _)| s == "True")
    })
    .await;
    // A push to the apps repository alone reaches the cluster.
    apps.write("deploy/cm.yaml", &configmap("from-apps", "default", "two"));
    push(&apps, "two");
    eventually(60, "the apps repository's new revision", || {
        has_value(&client, "default", "from-apps", "two")
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_toolkit_crds_units_still_apply() {
    let Some(c) = TestCluster::start("agent-nocrds") else {
        return;
    };
    let client = c.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path());
    repo.write(
        "clusters/n/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    repo.write("apps/cm.yaml", &configmap("app", "default", "one"));
    push(&repo, "one");
    let daemon = GitDaemon::start(&repo.srv);
    let mut cfg = polling(&daemon.url("fleet"), tmp.path(), &[("n", &client)]);
    cfg.install_crds = false;
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    eventually(60, "the child unit's object", || {
        has_value(&client, "default", "app", "one")
    })
    .await;
    // No CRD was installed, so no status object either.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    assert!(crds
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
    stop.cancel();
    task.await.unwrap().unwrap();
}

fn hr_resource() -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: "helm.toolkit.fluxcd.io".into(),
        version: "v2".into(),
        api_version: "helm.toolkit.fluxcd.io/v2".into(),
        kind: "HelmRelease".into(),
        plural: "helmreleases".into(),
    }
}

/// The Ready condition's status, reason and message of a unit object.
async fn unit_ready(
    client: &kube::Client,
    ar: &kube::discovery::ApiResource,
    name: &str,
) -> Option<(String, String, String)> {
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "flux-system", ar);
    let o = api.get_opt(name).await.ok()??;
    let st = o.data.get("status")?;
    st["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("status"), s("reason"), s("message"))
        })
}

fn helm_release(name: &str, chart: &str, extra: &str) -> String {
    format!(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 1m\n  chart:\n    spec:\n      chart: ./charts/{chart}\n      sourceRef:\n        kind: GitRepository\n        name: flux-system\n{extra}"
    )
}

fn chart(repo: &Repo, name: &str, template: &str) {
    repo.write(
        &format!("charts/{name}/Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n"),
    );
    repo.write(&format!("charts/{name}/templates/cm.yaml"), template);
}

/// Hostile HelmReleases (a template that fails, an `include` without end, a `template`
/// calling itself, 20,000 nested `if`s, a billion-laughs values.yaml) fail on their own, whatever their failure is (an error, a caught panic, an invalid object), and
/// `trunc` cutting a multi-byte character renders without a panic: the healthy units are applied and reconciled, later changes to them too, a
/// unit that breaks keeps its objects, and units waiting on a broken one (or on one that
/// does not exist) say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_helm_release_fails_alone_and_healthy_units_keep_reconciling() {
    let Some(c) = TestCluster::start("agent-hostile") else {
        return;
    };
    let client = c.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path());
    let ks = |name: &str, path: &str, extra: &str| {
        format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{extra}")
    };
    repo.write("clusters/h/infra.yaml", &ks("infra", "./infra", ""));
    repo.write(
        "clusters/h/apps.yaml",
        &ks("apps", "./apps", "  dependsOn:\n  - name: infra\n"),
    );
    repo.write("infra/cm.yaml", &configmap("infra", "default", "one"));
    repo.write("apps/cm.yaml", &configmap("app", "default", "one"));
    // A dependency that does not exist: only this unit waits (as in Flux).
    repo.write(
        "clusters/h/typo.yaml",
        &ks(
            "typo",
            "./typo",
            "  dependsOn:\n  - name: infra\n  - name: infro\n",
        ),
    );
    repo.write("typo/cm.yaml", &configmap("typo", "default", "one"));
    // Healthy at first; its template fails from the second revision on.
    let good_template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: breaks-later\ndata:\n  value: \"one\"\n";
    chart(&repo, "breaks-later", good_template);
    repo.write(
        "clusters/h/breaks-later.yaml",
        &helm_release("breaks-later", "breaks-later", ""),
    );
    // Waits for the one that breaks.
    chart(
        &repo,
        "waits",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: waits\ndata:\n  value: {{ .Values.value | quote }}\n",
    );
    repo.write(
        "clusters/h/waits.yaml",
        &helm_release(
            "waits",
            "waits",
            "  dependsOn:\n  - name: breaks-later\n  values:\n    value: one\n",
        ),
    );
    // An `include` that recurses without end: Helm's nesting budget fails it.
    chart(
        &repo,
        "recurse",
        "{{- define \"loop\" -}}{{ include \"loop\" . }}{{- end -}}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: recurse\ndata:\n  value: {{ include \"loop\" . | quote }}\n",
    );
    repo.write(
        "clusters/h/recurse.yaml",
        &helm_release("recurse", "recurse", ""),
    );
    // More hostile charts, each failing (or rendering) on its own: a billion-laughs
    // values.yaml, thousands of nested `if`s, a `template` that calls itself, and `toJson`
    // of a dict that contains itself (Sprig's toJson swallows the cycle: renders "").
    let mut laughs = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        laughs.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    chart(
        &repo,
        "laughs",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: laughs\n",
    );
    repo.write("charts/laughs/values.yaml", &laughs);
    let nested = format!(
        "{}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\n{}",
        "{{ if true }}".repeat(20_000),
        "{{ end }}".repeat(20_000)
    );
    chart(&repo, "nested", &nested);
    chart(
        &repo,
        "selfcall",
        "{{ define \"t\" }}{{ template \"t\" . }}{{ end }}{{ template \"t\" . }}\n",
    );
    chart(
        &repo,
        "jsoncycle",
        "{{ $d := dict }}{{ $_ := set $d \"self\" $d }}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: jsoncycle\ndata:\n  v: {{ toJson $d | quote }}\n",
    );
    for name in ["laughs", "nested", "selfcall", "jsoncycle"] {
        repo.write(
            &format!("clusters/h/{name}.yaml"),
            &helm_release(name, name, ""),
        );
    }
    // `trunc 63` cutting the 64th byte, inside a two-byte character: renders (the partial
    // character dropped, see capstan-sprig's trunc) and never panics.
    chart(
        &repo,
        "trunc",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name | trunc 63 }}\n",
    );
    repo.write(
        "clusters/h/trunc.yaml",
        &helm_release(
            "trunc",
            "trunc",
            &format!("  values:\n    name: \"{}éé\"\n", "a".repeat(62)),
        ),
    );
    push(&repo, "one");
    let daemon = GitDaemon::start(&repo.srv);
    let mut cfg = polling(&daemon.url("fleet"), tmp.path(), &[("h", &client)]);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    let agent = Agent::new(cfg);
    let (stop, task) = start(&agent);
    let hr = hr_resource();
    let ksr = ks_resource();

    for (cm, ns) in [
        ("infra", "default"),
        ("app", "default"),
        ("breaks-later", "flux-system"),
        ("waits", "flux-system"),
    ] {
        eventually(300, &format!("{cm} applied"), || {
            has_value(&client, ns, cm, "one")
        })
        .await;
    }
    for (ar, name) in [
        (&ksr, "infra"),
        (&ksr, "apps"),
        (&hr, "breaks-later"),
        (&hr, "waits"),
        (&hr, "trunc"),
        (&hr, "jsoncycle"),
    ] {
        eventually(60, &format!("{name} Ready"), || async {
            unit_ready(&client, ar, name)
                .await
                .is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    }
    for name in ["recurse", "laughs", "nested", "selfcall"] {
        eventually(60, &format!("{name} reports why it fails"), || async {
            unit_ready(&client, &hr, name)
                .await
                .is_some_and(|(s, reason, m)| s == "False" && !reason.is_empty() && !m.is_empty())
        })
        .await;
    }
    eventually(60, "the unit with a missing dependency says so", || async {
        unit_ready(&client, &ksr, "typo")
            .await
            .is_some_and(|(s, reason, m)| {
                s == "False" && reason == "DependencyNotReady" && m.contains("infro")
            })
    })
    .await;
    assert!(value(&client, "default", "typo").await.is_none());
    let (_, reason, message) = unit_ready(&client, &hr, "recurse").await.unwrap();
    assert!(message.contains("nested reference name: loop"), "{message}");
    if message.contains("panicked") {
        // Caught, reported where Flux users look, and counted.
        assert_eq!(reason, "BuildFailed", "{message}");
        assert!(
            message.contains("HelmRelease flux-system/recurse"),
            "{message}"
        );
        let addr = agent.http_addr().expect("listening");
        let metrics = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("capstan_unit_panics_total{kind=\"HelmRelease\",name=\"recurse\",namespace=\"flux-system\",cluster=\"h\"}"),
            "{metrics}"
        );
    }

    // A new revision: the healthy units change, one HelmRelease breaks.
    repo.write("apps/cm.yaml", &configmap("app", "default", "two"));
    repo.write("infra/cm.yaml", &configmap("infra", "default", "two"));
    chart(
        &repo,
        "breaks-later",
        "{{ fail \"the values are wrong\" }}\n",
    );
    push(&repo, "two");
    for cm in ["infra", "app"] {
        eventually(300, &format!("{cm} at the second revision"), || {
            has_value(&client, "default", cm, "two")
        })
        .await;
    }
    eventually(60, "the broken unit says why", || async {
        unit_ready(&client, &hr, "breaks-later")
            .await
            .is_some_and(|(s, reason, m)| {
                s == "False" && reason == "BuildFailed" && m.contains("the values are wrong")
            })
    })
    .await;
    eventually(60, "its dependent waits for it", || async {
        unit_ready(&client, &hr, "waits")
            .await
            .is_some_and(|(s, reason, m)| {
                s == "False" && reason == "DependencyNotReady" && m.contains("breaks-later")
            })
    })
    .await;
    // A unit that failed to render keeps its objects.
    assert!(has_value(&client, "flux-system", "breaks-later", "one").await);
    assert!(has_value(&client, "flux-system", "waits", "one").await);
    for name in ["infra", "apps"] {
        assert!(unit_ready(&client, &ksr, name)
            .await
            .is_some_and(|(s, _, _)| s == "True"));
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}
