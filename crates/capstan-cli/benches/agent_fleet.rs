//! Agent benchmark in the shape of fluxcd/flux-benchmark: N Kustomization units (default
//! 1,000), each a small app (Deployment, Service, ConfigMap) with `wait: true`, reconciled
//! by `capstan agent` (a separate process) from a Git repository on loopback into a fresh
//! test-bed cluster, until every unit is Ready. No kubelet runs: the benchmark plays it and
//! marks each Deployment available as soon as it appears. Prints the total time and the
//! agent's peak RSS (VmHWM); then, with every unit Ready and nothing changing, the API requests
//! the idle agent sends over 60 s at the default intervals (from the API server's
//! `apiserver_request_total`, by verb and resource; the benchmark sends nothing meanwhile) and
//! its RSS. Asserts nothing about time.
//!
//!     cargo bench -p capstan-cli --bench agent_fleet            # 1,000 units
//!     cargo bench -p capstan-cli --bench agent_fleet -- 200     # another size
//!
//! For reference (fluxcd/flux-benchmark, Flux 2.6, 16-core runner): 1,000 Kustomizations in
//! 4m16s with 175 MiB.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use capstan_testbed::servers::{git, GitDaemon, Repo};
use capstan_testbed::TestCluster;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;

fn generate(repo: &Repo, units: usize) {
    let mut ks = String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n");
    for u in 0..units {
        ks.push_str(&format!(
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app-{u:04}\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./apps/app\n  prune: true\n  wait: true\n  timeout: 5m\n  targetNamespace: bench\n  namePrefix: app-{u:04}-\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
        ));
    }
    repo.write("clusters/bench/units.yaml", &ks);
    repo.write(
        "apps/app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n",
    );
    repo.write(
        "apps/app/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: podinfo\n  template:\n    metadata:\n      labels:\n        app: podinfo\n    spec:\n      containers:\n      - name: podinfo\n        image: ghcr.io/stefanprodan/podinfo:6.7.0\n        ports:\n        - containerPort: 9898\n          protocol: TCP\n        envFrom:\n        - configMapRef:\n            name: podinfo\n",
    );
    repo.write(
        "apps/app/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\nspec:\n  selector:\n    app: podinfo\n  ports:\n  - port: 9898\n    protocol: TCP\n",
    );
    repo.write(
        "apps/app/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo\ndata:\n  PODINFO_UI_MESSAGE: hello\n",
    );
}

/// Plays the kubelet + deployment controller: every Deployment becomes available.
async fn mark_available(client: kube::Client, stop: tokio_util::sync::CancellationToken) {
    let api: Api<Deployment> = Api::namespaced(client, "bench");
    let mut done = std::collections::HashSet::new();
    while !stop.is_cancelled() {
        if let Ok(list) = api.list(&ListParams::default()).await {
            for d in list.items {
                let name = d.metadata.name.clone().unwrap_or_default();
                let generation = d.metadata.generation.unwrap_or(1);
                if done.contains(&(name.clone(), generation)) {
                    continue;
                }
                let status = json!({"status": {
                "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
                ]}});
                if api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .is_ok()
                {
                    done.insert((name, generation));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready_count(client: &kube::Client) -> usize {
    let ar = ApiResource {
        group: "kustomize.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
        kind: "Kustomization".into(),
        plural: "kustomizations".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "flux-system", &ar);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|o| {
            o.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("app-"))
        })
        .filter(|o| {
            o.data["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

/// `apiserver_request_total` by (verb, resource, subresource), from the API server's metrics.
async fn request_totals(client: &kube::Client) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let Ok(text) = client.request_text(req).await else {
        return out;
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let mut key = format!("{} {}", label("verb"), label("resource"));
        let sub = label("subresource");
        if !sub.is_empty() {
            key.push('/');
            key.push_str(&sub);
        }
        if !label("dry_run").is_empty() {
            key.push_str(" (dry run)");
        }
        *out.entry(key).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    out
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let units: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let concurrency: usize = std::env::var("CAPSTAN_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let Some(cluster) = TestCluster::start("bench-agent") else {
        eprintln!("test bed not available; skipping");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "fleet");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    generate(&repo, units);
    repo.commit("bench");
    repo.run(&["push", "-q", "origin", "HEAD:main"]);
    let daemon = GitDaemon::start(&repo.srv);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(cluster.client());
    let stop = tokio_util::sync::CancellationToken::new();
    rt.spawn(mark_available(client.clone(), stop.clone()));

    let port = capstan_testbed::servers::free_port();
    let start = Instant::now();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "agent",
            "--source",
            &daemon.url("fleet"),
            "--branch",
            "main",
            "--cluster",
            "bench",
        ])
        .args(["--interval", "1h", "--poll", "2s"])
        .args(["--concurrency", &concurrency.to_string()])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("capstan agent starts");
    let pid = agent.id();
    let mut peak = 0;
    let mut last_print = Instant::now();
    let timeout = Duration::from_secs(900);
    let total = loop {
        let n = rt.block_on(ready_count(&client));
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        if n >= units {
            break start.elapsed();
        }
        if start.elapsed() > timeout {
            let _ = agent.kill();
            panic!("only {n} of {units} units Ready after {timeout:?}");
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {:>5.1} s: {n}/{units} Ready",
                start.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    // Idle: every unit Ready, nothing changes; the benchmark stops playing the kubelet and
    // sends nothing but two metrics reads.
    stop.cancel();
    let idle_secs = 60;
    let before = rt.block_on(request_totals(&client));
    std::thread::sleep(Duration::from_secs(idle_secs));
    let after = rt.block_on(request_totals(&client));
    let mut idle: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        // "GET " (no resource): the two metrics reads.
        .filter(|(k, d)| *d > 0.0 && k != "GET ")
        .collect();
    idle.sort_by(|a, b| b.1.total_cmp(&a.1));
    let idle_total: f64 = idle.iter().map(|(_, d)| d).sum();
    let idle_rss = rss_kib(pid).unwrap_or(0);
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    // SIGTERM: a clean shutdown.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let exit = agent.wait().ok();
    let objects = units * 3;
    println!(
        "agent_fleet: {units} Kustomizations ({objects} objects, wait: true, concurrency {concurrency}) all Ready in {:.1} s; agent peak RSS {:.1} MiB; exit after SIGTERM: {}",
        total.as_secs_f64(),
        peak as f64 / 1024.0,
        exit.map(|e| e.to_string()).unwrap_or_default()
    );
    println!(
        "  idle agent: {:.1} API requests/min over {idle_secs} s (RSS {:.1} MiB){}",
        idle_total * 60.0 / idle_secs as f64,
        idle_rss as f64 / 1024.0,
        if idle.is_empty() { "" } else { ":" }
    );
    for (k, d) in &idle {
        println!("    {d:>6.0}  {k}");
    }
    println!("  reference: Flux 2.6 on a 16-core runner (flux-benchmark): 1,000 in 256 s, 175 MiB");
}
