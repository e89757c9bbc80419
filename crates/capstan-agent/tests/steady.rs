//! The agent's steady state with its watch cache, on a real API server: an idle agent sends no
//! request per object while nothing changes; drift by another field manager, a deleted object
//! and a scaled Deployment are corrected by the unit's next run; a value the API server
//! normalises causes no re-apply. Request counts only, no timing assertions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_agent::{Agent, AgentConfig, ClusterSource, WorkerSettings};
use capstan_source::GitRepositorySpec;
use capstan_testbed::servers::{git, GitDaemon, Repo};
use capstan_testbed::{RecordedRequest, TestCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const OBJECTS: u64 = 10;

fn apps() -> Vec<(String, String)> {
    let mut files = vec![(
        "apps/ns.yaml".to_string(),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: steady\n".to_string(),
    )];
    for i in 0..5 {
        files.push((
            format!("apps/cm-{i}.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: steady\ndata:\n  value: \"v{i}\"\n"),
        ));
    }
    for i in 0..2 {
        // `cpu: "0.5"` is stored as `500m`; imagePullPolicy, strategy, ... are defaulted.
        files.push((
            format!("apps/web-{i}.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  namespace: steady\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web-{i}\n  template:\n    metadata:\n      labels:\n        app: web-{i}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.19\n        resources:\n          limits:\n            cpu: \"0.5\"\n"),
        ));
    }
    files.push((
        "apps/secret.yaml".into(),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: steady\nstringData:\n  password: hunter2\n".into(),
    ));
    files.push((
        "apps/svc.yaml".into(),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: steady\nspec:\n  selector:\n    app: web-0\n  ports:\n  - port: 80\n    targetPort: 8080\n".into(),
    ));
    files
}

/// Requests about the unit's objects (their namespace) or inventories: what an idle agent
/// must not send. Watches are long-running reads opened once.
fn per_object(r: &RecordedRequest) -> bool {
    let watch = r
        .path
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "watch=true"));
    !watch
        && (r.path.contains("/namespaces/steady")
            || r.path.contains("/namespaces/capstan-system/")
            || r.path.ends_with("/namespaces/steady"))
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs}s waiting for: {what}");
}

/// Waits for runs of the unit until one decided every object from the cache (all skipped,
/// no dry run, no write): counted in unit runs, not time.
async fn clean_run(worker: &capstan_agent::ClusterWorker) {
    for _ in 0..20 {
        let before = worker.apply_stats();
        eventually(60, "a run of the unit", || async {
            worker.apply_stats().skipped >= before.skipped + OBJECTS
        })
        .await;
        let after = worker.apply_stats();
        if after.dry_runs == before.dry_runs && after.applies == before.applies {
            return;
        }
    }
    panic!("no run decided every object from the cache");
}

fn config(url: &str, tmp: &std::path::Path, client: &kube::Client) -> AgentConfig {
    AgentConfig {
        source: GitRepositorySpec::from_object(&json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": {"url": url, "interval": "1m", "ref": {"branch": "main"}}
        }))
        .unwrap(),
        source_auth: None,
        source_interval: Duration::from_secs(60),
        cache_dir: tmp.join("cache"),
        clusters: vec![ClusterSource {
            name: "c".into(),
            client: client.clone(),
        }],
        management: None,
        discover_clusters: false,
        discover_namespace: None,
        discover_interval: Duration::from_secs(60),
        settings: WorkerSettings {
            poll_interval: Duration::from_millis(500),
            retry_base: Duration::from_millis(500),
            default_interval: Duration::from_secs(60),
            ..Default::default()
        },
        listen: None,
        install_crds: true,
        leader_election: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_agent_sends_no_request_per_object_and_drift_is_corrected_by_the_next_run() {
    let Some(c) = TestCluster::start("agent-steady") else {
        return;
    };
    let (client, counter) = c.counting_client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "fleet");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo.write(
        "clusters/c/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 2s\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    for (path, text) in apps() {
        repo.write(&path, &text);
    }
    repo.commit("apps");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    let daemon = GitDaemon::start(&repo.srv);
    let agent: Arc<Agent> = Agent::new(config(&daemon.url("fleet"), tmp.path(), &client));
    let stop = CancellationToken::new();
    let task = tokio::spawn(agent.clone().run(stop.clone()));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "steady");
    eventually(60, "the unit applied", || async {
        cms.get_opt("cm-4").await.ok().flatten().is_some()
    })
    .await;
    let worker = agent.worker("c").expect("the cluster's worker");
    // Runs of `apps` decided from the cache: every object skipped, no dry run.
    let runs_from_cache = |n: u64| {
        let worker = worker.clone();
        async move {
            let start = worker.apply_stats();
            eventually(60, "runs of the unit decided from the cache", || {
                let worker = worker.clone();
                async move {
                    let now = worker.apply_stats();
                    now.skipped >= start.skipped + n * OBJECTS
                }
            })
            .await;
        }
    };
    // Warm up: the cache has seen the agent's own writes.
    clean_run(&worker).await;
    assert!(worker.cache().synced("", "ConfigMap"));
    let (cached, bytes) = worker.cache().size();
    assert!(cached >= OBJECTS as usize, "{cached} objects cached");
    assert!(bytes > 0);

    // Idle: two more runs of the unit, and no request about any of its objects or its
    // inventory (no LIST, no GET, no dry run, no write).
    counter.reset();
    let before = worker.apply_stats();
    runs_from_cache(2).await;
    let after = worker.apply_stats();
    let sent: Vec<RecordedRequest> = counter.requests().into_iter().filter(per_object).collect();
    assert!(sent.is_empty(), "idle requests per object: {sent:#?}");
    assert_eq!(after.dry_runs, before.dry_runs, "{after:?}");
    assert_eq!(after.applies, before.applies, "{after:?}");
    assert_eq!(after.lists, before.lists, "{after:?}");
    assert_eq!(after.gets, before.gets, "{after:?}");
    assert_eq!(after.inventory_writes, before.inventory_writes);
    // The drift metrics count the cache path.
    assert!(after.cached > before.cached);

    // Drift: another field manager takes a value capstan owns, an object is deleted, a
    // Deployment is scaled.
    counter.reset();
    cms.patch(
        "cm-1",
        &PatchParams::apply("intruder").force(),
        &Patch::Apply(json!({"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"cm-1","namespace":"steady"},"data":{"value":"theirs"}})),
    )
    .await
    .unwrap();
    cms.delete("cm-3", &Default::default()).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "steady");
    deployments
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec":{"replicas":4}})),
        )
        .await
        .unwrap();
    eventually(30, "the drift corrected", || async {
        let cm1 = cms.get("cm-1").await.ok().and_then(|c| c.data);
        let cm3 = cms.get_opt("cm-3").await.ok().flatten();
        let web = deployments.get("web-1").await.ok().and_then(|d| d.spec);
        cm1.is_some_and(|d| d["value"] == "v1")
            && cm3.is_some()
            && web.is_some_and(|s| s.replicas == Some(1))
    })
    .await;
    // Only the three drifted objects were written (the test's own three writes aside).
    let writes: Vec<String> = counter
        .writes()
        .into_iter()
        .filter(|r| r.path.contains("/namespaces/steady/") && r.method == "PATCH")
        .filter(|r| r.path.contains("fieldManager=capstan"))
        .map(|r| r.path.split('?').next().unwrap_or("").to_string())
        .collect();
    let mut written = writes.clone();
    written.sort();
    written.dedup();
    assert_eq!(
        written,
        [
            "/api/v1/namespaces/steady/configmaps/cm-1",
            "/api/v1/namespaces/steady/configmaps/cm-3",
            "/apis/apps/v1/namespaces/steady/deployments/web-1",
        ],
        "{writes:#?}"
    );

    // And the steady state is back: runs from the cache, no request per object.
    clean_run(&worker).await;
    counter.reset();
    let before = worker.apply_stats();
    runs_from_cache(2).await;
    let sent: Vec<RecordedRequest> = counter.requests().into_iter().filter(per_object).collect();
    assert!(
        sent.is_empty(),
        "idle requests per object after the drift: {sent:#?}"
    );
    let after = worker.apply_stats();
    assert_eq!(
        after.applies, before.applies,
        "no endless re-applies: {after:?}"
    );
    assert_eq!(after.dry_runs, before.dry_runs, "{after:?}");

    stop.cancel();
    let _ = task.await;
}

/// A reconcile request, a suspend and a spec change reach the worker through the watch of the
/// unit objects: with a poll interval of an hour nothing else would wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unit_object_events_wake_the_worker_without_polling() {
    let Some(c) = TestCluster::start("agent-events") else {
        return;
    };
    let client = c.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "fleet");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo.write(
        "clusters/c/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    repo.write(
        "apps/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata:\n  value: one\n",
    );
    repo.commit("apps");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    let daemon = GitDaemon::start(&repo.srv);
    let mut cfg = config(&daemon.url("fleet"), tmp.path(), &client);
    cfg.settings.poll_interval = Duration::from_secs(3600);
    cfg.settings.default_interval = Duration::from_secs(3600);
    let agent: Arc<Agent> = Agent::new(cfg);
    let stop = CancellationToken::new();
    let task = tokio::spawn(agent.clone().run(stop.clone()));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    eventually(60, "the unit applied", || async {
        cms.get_opt("app").await.ok().flatten().is_some()
    })
    .await;
    let ar = kube::discovery::ApiResource {
        group: "kustomize.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
        kind: "Kustomization".into(),
        plural: "kustomizations".into(),
    };
    let ks: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "flux-system", &ar);
    let handled = || async {
        ks.get("apps").await.ok().and_then(|o| {
            o.data["status"]["lastHandledReconcileAt"]
                .as_str()
                .map(str::to_string)
        })
    };
    // Someone changes the ConfigMap; `capstan reconcile ks apps` asks for a run.
    cms.patch(
        "app",
        &PatchParams::apply("intruder").force(),
        &Patch::Apply(json!({"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"app","namespace":"default"},"data":{"value":"theirs"}})),
    )
    .await
    .unwrap();
    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata":{"annotations":{
            "reconcile.fluxcd.io/requestedAt":"2026-12-07T17:00:00Z"}}})),
    )
    .await
    .unwrap();
    eventually(
        60,
        "the requested run handled and the drift corrected",
        || async {
            handled().await.as_deref() == Some("2026-12-07T17:00:00Z")
                && cms
                    .get("app")
                    .await
                    .ok()
                    .and_then(|c| c.data)
                    .is_some_and(|d| d["value"] == "one")
        },
    )
    .await;

    // Suspended, then a request: not run (the request stays unhandled).
    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec":{"suspend":true}})),
    )
    .await
    .unwrap();
    let worker = agent.worker("c").unwrap();
    eventually(30, "the worker saw the suspension", || async {
        worker
            .cache()
            .observed()
            .and_then(|o| {
                o.iter()
                    .find(|(id, _)| id.name == "apps")
                    .map(|(_, s)| s.suspended)
            })
            .unwrap_or(false)
    })
    .await;
    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata":{"annotations":{
            "reconcile.fluxcd.io/requestedAt":"2026-12-07T17:01:00Z"}}})),
    )
    .await
    .unwrap();
    // The request reached the cache (and woke the worker), which skipped the unit.
    eventually(30, "the request seen", || async {
        worker
            .cache()
            .observed()
            .and_then(|o| {
                o.iter()
                    .find(|(id, _)| id.name == "apps")
                    .and_then(|(_, s)| s.requested_at.clone())
            })
            .as_deref()
            == Some("2026-12-07T17:01:00Z")
    })
    .await;
    let mut rounds = worker.rounds();
    let seen = *rounds.borrow_and_update();
    worker.wake.notify_one();
    rounds.changed().await.unwrap();
    assert!(*rounds.borrow() > seen);
    assert_eq!(
        handled().await.as_deref(),
        Some("2026-12-07T17:00:00Z"),
        "a suspended unit does not run"
    );

    // Resumed (a spec change: a new generation) runs it and handles the pending request.
    ks.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec":{"suspend":false}})),
    )
    .await
    .unwrap();
    eventually(60, "the resumed unit handled the request", || async {
        handled().await.as_deref() == Some("2026-12-07T17:01:00Z")
    })
    .await;

    stop.cancel();
    let _ = task.await;
}
