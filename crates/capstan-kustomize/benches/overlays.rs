//! `cargo bench -p capstan-kustomize --bench overlays`: N overlays over 10 bases (each
//! overlay: namespace, namePrefix, labels with selectors, a component, images, replicas,
//! a JSON 6902 patch with a kind target, an SMP, a configMapGenerator merge), built as one
//! kustomization including all overlays, at 20/50/200 overlays; also one overlay alone.
//! Times capstan and, when present, `kubectl kustomize` on the same tree.

use std::path::Path;
use std::time::Instant;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};
use capstan_vfs::MemFs;

fn tree(n: usize) -> MemFs {
    let mut fs = MemFs::new();
    for b in 0..10 {
        fs.add(format!("/bases/b{b}/deploy.yaml"), format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{b}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: app{b}\n  template:\n    metadata:\n      labels:\n        app: app{b}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.25\n        envFrom:\n        - configMapRef:\n            name: settings\n"));
        fs.add(format!("/bases/b{b}/svc.yaml"), format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: app{b}\nspec:\n  selector:\n    app: app{b}\n  ports:\n  - port: 80\n"));
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

fn time_kubectl(fs: &MemFs, root: &str) -> Option<f64> {
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
    let t = Instant::now();
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.join(root.trim_start_matches('/')))
        .output()
        .ok()?;
    let el = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    out.status.success().then_some(el)
}

fn main() {
    println!(
        "{:>10} {:>10} {:>12} {:>14}",
        "overlays", "resources", "capstan ms", "kubectl ms"
    );
    let one = tree(1);
    let (t, n) = time_capstan(&one, "/overlays/o0");
    let k = time_kubectl(&one, "/overlays/o0")
        .map(|k| format!("{:.1}", k * 1e3))
        .unwrap_or_else(|| "-".into());
    println!("{:>10} {:>10} {:>12.2} {:>14}", "1 (alone)", n, t * 1e3, k);
    for n_over in [20, 50, 200] {
        let fs = tree(n_over);
        let (t, n) = time_capstan(&fs, "/");
        let k = time_kubectl(&fs, "/")
            .map(|k| format!("{:.1}", k * 1e3))
            .unwrap_or_else(|| "-".into());
        println!("{:>10} {:>10} {:>12.2} {:>14}", n_over, n, t * 1e3, k);
    }
}
