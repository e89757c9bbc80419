//! Rendering benchmark (harness = false): the heaviest corpus chart
//! (bitnami-kube-prometheus) and a bitnami chart with the common library, load + render,
//! compared with Helm v4.2.3's Go SDK (the conformance oracle) timed in-process in its
//! Python driver. Needs `../shared/conformance/helm` next to the repository (skipped
//! otherwise); the oracle half is skipped when its venv is absent.
//!
//!     cargo bench -p capstan-helm --bench render [-- ITERATIONS]

use capstan_helm::{template, TemplateOptions};
use capstan_vfs::DiskFs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CHARTS: &[&str] = &["bitnami-kube-prometheus", "bitnami-nginx", "prometheus"];

const ORACLE: &str = r#"
import json, os, sys, time
os.environ.setdefault("HELM_CACHE_HOME", "/tmp/helmoracle/home/cache")
os.environ.setdefault("HELM_CONFIG_HOME", "/tmp/helmoracle/home/config")
os.environ.setdefault("HELM_DATA_HOME", "/tmp/helmoracle/home/data")
import helm_python as helm
from helm_python import _native
chart_dir, n = sys.argv[1], int(sys.argv[2])
opts = {"namespace": "default", "dry_run": "client", "replace": True, "kube_version": "v1.36.0"}
times = []
for i in range(n + 1):
    t = time.perf_counter()
    chart = helm.Chart.load(chart_dir)
    cfg = helm.Config(namespace="default", storage_driver="memory")
    _native.call_string("helm_install", cfg._raw(), _native.HANDLE(0), chart._raw(), None,
                        "release-name", None, json.dumps(opts))
    if i > 0:
        times.append(time.perf_counter() - t)
print(json.dumps(times))
"#;

fn corpus() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CAPSTAN_HELM_CORPUS") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/helm/charts");
    p.exists().then_some(p)
}

fn oracle_python() -> Option<PathBuf> {
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cache")))
        .ok()?;
    let py = cache.join("capstan-helm-oracle/bin/python");
    py.exists().then_some(py)
}

fn stats(ts: &[Duration]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = ts.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v[0], v[v.len() / 2], mean)
}

fn main() {
    let iters: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let Some(corpus) = corpus() else {
        println!("render bench: conformance corpus not found (set CAPSTAN_HELM_CORPUS); skipped");
        return;
    };
    let py = oracle_python();
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12} {:>8}",
        "chart", "min ms", "median ms", "mean ms", "oracle med", "speedup"
    );
    for name in CHARTS {
        let dir = corpus.join(name);
        if !dir.exists() {
            continue;
        }
        let fs = DiskFs::new(&dir).unwrap();
        let opts = TemplateOptions {
            kube_version: Some("v1.36.0".into()),
            ..TemplateOptions::default()
        };
        // warm-up
        let out = template(&fs, Path::new("/"), &opts).expect("render");
        let docs = out.manifests.len() + out.hooks.len();
        let mut ts = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            let r = template(&fs, Path::new("/"), &opts).expect("render");
            std::hint::black_box(&r);
            ts.push(t.elapsed());
        }
        let (min, med, mean) = stats(&ts);
        let (oracle, speedup) = match &py {
            Some(py) => {
                let o = Command::new(py)
                    .arg("-c")
                    .arg(ORACLE)
                    .arg(&dir)
                    .arg(iters.to_string())
                    .output();
                match o {
                    Ok(o) if o.status.success() => {
                        let v: Vec<f64> = serde_json::from_slice(&o.stdout).unwrap_or_default();
                        if v.is_empty() {
                            ("n/a".to_string(), "".to_string())
                        } else {
                            let ds: Vec<Duration> =
                                v.iter().map(|s| Duration::from_secs_f64(*s)).collect();
                            let (_, omed, _) = stats(&ds);
                            (format!("{omed:.2}"), format!("{:.1}x", omed / med))
                        }
                    }
                    _ => ("failed".to_string(), "".to_string()),
                }
            }
            None => ("absent".to_string(), "".to_string()),
        };
        println!("{:<28} {:>10.2} {:>10.2} {:>10.2} {:>12} {:>8}   ({docs} documents, {iters} iterations)", name, min, med, mean, oracle, speedup);
    }
}
