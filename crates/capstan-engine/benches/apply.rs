//! Apply benchmark: 1,000 and then 10,000 objects in 100 units into the test bed, against
//! `kubectl apply --server-side` of the same rendered YAML into a fresh cluster, in the
//! same run. Prints figures and the requests capstan sent (counted by the test bed's counting
//! client, and by the applier's own counters); asserts nothing about time.
//!
//!     cargo bench -p capstan-engine --bench apply            # both sizes
//!     cargo bench -p capstan-engine --bench apply -- 1000    # one size

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_apply::{Applier, ApplyOptions, ApplyStats};
use capstan_engine::{execute, render_cluster, to_yaml, ApplyDriver, ExecuteOptions, KubeLookup};
use capstan_testbed::{RequestCounter, TestCluster};
use capstan_units::LoadOptions;

const UNITS: usize = 100;

fn generate(root: &Path, objects: usize) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("clusters/bench")).unwrap();
    let per_unit = objects / UNITS;
    let mut ks = String::new();
    for u in 0..UNITS {
        ks.push_str(&format!(
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: u{u:03}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./units/u{u:03}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
        ));
        let dir = root.join(format!("units/u{u:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ns = format!("bench-u{u:03}");
        // One Namespace, then a mix of ConfigMaps, Services and Deployments.
        let mut y = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
        for i in 1..per_unit {
            y.push_str("---\n");
            match i % 3 {
                0 => y.push_str(&format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.25\n        ports:\n        - containerPort: 80\n          protocol: TCP\n"
                )),
                1 => y.push_str(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{i}\n  namespace: {ns}\ndata:\n  key: value-{i}\n  other: \"{u}\"\n")),
                _ => y.push_str(&format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\nspec:\n  selector:\n    app: app-{i}\n  ports:\n  - port: 80\n    protocol: TCP\n"
                )),
            }
        }
        std::fs::write(dir.join("objects.yaml"), y).unwrap();
    }
    std::fs::write(root.join("clusters/bench/units.yaml"), ks).unwrap();
    std::fs::write(
        root.join("clusters/bench/namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n",
    )
    .unwrap();
}

/// Requests of one capstan run.
struct Requests {
    total: usize,
    writes: usize,
    dry_runs: usize,
    stats: ApplyStats,
}

impl std::fmt::Display for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} writes of which {} inventory writes, {} dry runs, {} LISTs, {} GETs; {} objects skipped without a request)",
            self.total,
            self.writes,
            self.stats.inventory_writes,
            self.dry_runs,
            self.stats.lists,
            self.stats.gets,
            self.stats.skipped
        )
    }
}

async fn capstan_apply(
    client: &kube::Client,
    counter: &RequestCounter,
    repo: &Path,
) -> (Duration, usize, Requests) {
    counter.reset();
    let start = Instant::now();
    let fs = capstan_vfs::DiskFs::new(repo).unwrap();
    let render = render_cluster(
        &fs,
        &KubeLookup::new(client.clone()),
        &LoadOptions::new("clusters/bench"),
    );
    let applier = Applier::new(client.clone());
    let ex = execute(
        &ApplyDriver {
            applier: &applier,
            options: ApplyOptions::default(),
        },
        &render,
        &ExecuteOptions {
            concurrency: 8,
            ignore_dependencies: false,
        },
    )
    .await
    .expect("plan");
    assert!(
        ex.all_ok(),
        "apply failed: {:?}",
        ex.status.iter().find(|(_, s)| !s.is_ok())
    );
    let took = start.elapsed();
    let count = render.units.rendered().map(|r| r.objects.len()).sum();
    let requests = counter.requests();
    let counts = Requests {
        total: requests.len(),
        writes: requests.iter().filter(|r| r.is_write()).count(),
        dry_runs: requests.iter().filter(|r| r.is_dry_run()).count(),
        stats: applier.stats(),
    };
    (took, count, counts)
}

fn rendered_yaml(repo: &Path, out: &Path) {
    let fs = capstan_vfs::DiskFs::new(repo).unwrap();
    let render = render_cluster(
        &fs,
        &capstan_units::NoCluster,
        &LoadOptions::new("clusters/bench"),
    );
    let mut all: Vec<serde_json::Value> = render
        .units
        .rendered()
        .flat_map(|r| r.objects.clone())
        .collect();
    // Namespaces first, as kubectl applies in file order.
    all.sort_by_key(|o| o["kind"] != "Namespace");
    std::fs::write(out, to_yaml(&all)).unwrap();
}

fn kubectl_apply(kubeconfig: &Path, file: &Path) -> Option<Duration> {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .ok()?;
    let start = Instant::now();
    let out = Command::new("kubectl")
        .args([
            "apply",
            "--server-side",
            "--field-manager=kubectl-bench",
            "-f",
        ])
        .arg(file)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .expect("kubectl");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(took)
}

fn main() {
    let sizes: Vec<usize> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(n) => vec![n],
        None => vec![1_000, 10_000],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for size in sizes {
        let repo: PathBuf = std::env::temp_dir().join(format!("capstan-bench-apply-{size}"));
        generate(&repo, size);
        let Some(a) = TestCluster::start("bench-capstan") else {
            println!("apply bench: test bed not available, skipped");
            return;
        };
        let (first, count, first_requests, second, second_requests) = rt.block_on(async {
            let (client, counter) = a.counting_client().await;
            let (first, count, first_requests) = capstan_apply(&client, &counter, &repo).await;
            let (second, _, second_requests) = capstan_apply(&client, &counter, &repo).await;
            (first, count, first_requests, second, second_requests)
        });
        drop(a);
        let yaml = repo.join("rendered.yaml");
        rendered_yaml(&repo, &yaml);
        let b = TestCluster::start("bench-kubectl").expect("second cluster");
        let kubectl = kubectl_apply(b.kubeconfig_path(), &yaml);
        drop(b);
        println!("apply bench: {count} objects in {UNITS} units");
        println!(
            "  capstan apply (first):      {:>8.2} s",
            first.as_secs_f64()
        );
        println!(
            "  capstan apply (unchanged):  {:>8.2} s",
            second.as_secs_f64()
        );
        println!("  requests (first):     {first_requests}");
        println!("  requests (unchanged): {second_requests}");
        match kubectl {
            Some(k) => {
                println!("  kubectl apply --server-side: {:>7.2} s", k.as_secs_f64());
                println!(
                    "  ratio capstan/kubectl:      {:>8.2}",
                    first.as_secs_f64() / k.as_secs_f64()
                );
            }
            None => println!("  kubectl: not installed, skipped"),
        }
        let _ = std::fs::remove_dir_all(&repo);
    }
}
