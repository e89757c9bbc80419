//! `cargo bench -p capstan-kustomize --bench overlays`: N overlays over 10 bases (each
//! base 19 Deployments and 19 Services plus a generated ConfigMap, so about 40 objects per
//! overlay and 8,000 at 200 overlays, as the issue sizes it; each overlay: namespace,
//! namePrefix, labels with selectors, a component, images, replicas, a JSON 6902 patch
//! with a kind target, an SMP, a configMapGenerator merge), built as one kustomization
//! including all overlays, at 20/50/200 overlays; also one overlay alone. Times capstan
//! and `kubectl kustomize` on the same tree (kubectl at 200 overlays takes minutes: set
//! CAPSTAN_BENCH_KUBECTL_ALL=1 to include it), and reports peak memory (capstan: this
//! process's VmHWM after the size; kubectl: `/usr/bin/time -f %M`).

use std::path::Path;
use std::time::Instant;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};
use capstan_vfs::MemFs;

/// Deployment/Service pairs per base.
const PAIRS: usize = 19;

fn tree(n: usize) -> MemFs {
    let mut fs = MemFs::new();
    for b in 0..10 {
        let mut deploys = String::new();
        let mut services = String::new();
        for i in 0..PAIRS {
            let name = if i == 0 {
                format!("app{b}")
            } else {
                format!("app{b}-w{i}")
            };
            deploys.push_str(&format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.25\n        envFrom:\n        - configMapRef:\n            name: settings\n"));
            services.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n  - port: 80\n"));
        }
        fs.add(format!("/bases/b{b}/deploy.yaml"), deploys);
        fs.add(format!("/bases/b{b}/svc.yaml"), services);
        fs.add(format!("/bases/b{b}/kustomization.yaml"), "resources:\n- deploy.yaml\n- svc.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - LOG=info\n");
    }
    fs.add("/components/monitoring/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations:\n  prometheus.io/scrape: \"true\"\n");
    let mut top = String::from("resources:\n");
    for o in 0..n {
        let b = o % 10;
        let d = format!("/overlays/o{o}");
        fs.add(format!("{d}/smp.yaml"), format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{b}\nspec:\n  template:\n    spec:\n      containers:\n      - name: main\n        resources:\n          limits:\n            memory: 128Mi\n"));
        fs.add(
            format!("{d}/kustomization.yaml"),
            format!("resources:\n- ../../bases/b{b}\ncomponents:\n- ../../components/monitoring\nnamespace: ns{o}\nnamePrefix: o{o}-\nlabels:\n- pairs:\n    overlay: o{o}\n  includeSelectors: true\nimages:\n- name: nginx\n  newTag: \"1.{o}\"\nreplicas:\n- name: app{b}\n  count: 3\npatches:\n- path: smp.yaml\n- target:\n    kind: Deployment\n  patch: |\n    - op: add\n      path: /spec/template/spec/containers/0/args\n      value: [\"--overlay=o{o}\"]\nconfigMapGenerator:\n- name: settings\n  behavior: merge\n  literals:\n  - OVERLAY=o{o}\n"),
        );
        top.push_str(&format!("- overlays/o{o}\n"));
    }
    fs.add("/kustomization.yaml", top);
    fs
}

fn time_capstan(fs: &MemFs, root: &str) -> (f64, usize) {
    let opts = BuildOptions {
        reorder: Reorder::None,
        ..Default::default()
    };
    let mut best = f64::MAX;
    let mut len = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let out = build_to_string(fs, Path::new(root), &opts).expect("build");
        best = best.min(t.elapsed().as_secs_f64());
        len = out.matches("\nkind: ").count() + usize::from(out.starts_with("kind: "));
    }
    (best, len)
}

/// Peak resident memory of this process so far, in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// kubectl's time and peak memory (MiB, when /usr/bin/time exists).
fn time_kubectl(fs: &MemFs, root: &str) -> Option<(f64, Option<f64>)> {
    std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = std::env::temp_dir().join(format!("capstan-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (p, c) in fs.files() {
        let host = dir.join(p.strip_prefix("/").unwrap());
        std::fs::create_dir_all(host.parent().unwrap()).ok()?;
        std::fs::write(host, c).ok()?;
    }
    let timed = Path::new("/usr/bin/time").exists();
    let mut cmd = if timed {
        let mut c = std::process::Command::new("/usr/bin/time");
        c.args(["-f", "%M", "kubectl"]);
        c
    } else {
        std::process::Command::new("kubectl")
    };
    let t = Instant::now();
    let out = cmd
        .arg("kustomize")
        .arg(dir.join(root.trim_start_matches('/')))
        .output()
        .ok()?;
    let el = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let mem = timed
        .then(|| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .and_then(|l| l.trim().parse::<f64>().ok())
        })
        .flatten()
        .map(|kib| kib / 1024.0);
    out.status.success().then_some((el, mem))
}

fn main() {
    let all = std::env::var("CAPSTAN_BENCH_KUBECTL_ALL").is_ok_and(|v| v == "1");
    println!(
        "{:>10} {:>10} {:>12} {:>16} {:>14} {:>18}",
        "overlays", "resources", "capstan ms", "capstan peak MiB", "kubectl ms", "kubectl peak MiB"
    );
    let row = |label: String, n: usize, t: f64, k: Option<(f64, Option<f64>)>| {
        let (km, kmem) = match k {
            Some((k, m)) => (
                format!("{:.1}", k * 1e3),
                m.map_or_else(|| "-".into(), |m| format!("{m:.0}")),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:>10} {:>10} {:>12.2} {:>16.0} {:>14} {:>18}",
            label,
            n,
            t * 1e3,
            peak_mib(),
            km,
            kmem
        );
    };
    let one = tree(1);
    let (t, n) = time_capstan(&one, "/overlays/o0");
    row("1 (alone)".into(), n, t, time_kubectl(&one, "/overlays/o0"));
    for n_over in [20, 50, 200] {
        let fs = tree(n_over);
        let (t, n) = time_capstan(&fs, "/");
        let k = if n_over < 200 || all {
            time_kubectl(&fs, "/")
        } else {
            None
        };
        row(n_over.to_string(), n, t, k);
    }
}
