//! `capstan diff --base REV --target REV` on a generated fleet, against the naive
//! pipeline (`kubectl kustomize` of every unit's path at both revisions, then
//! `diff -r`), measured in the same run. Prints wall time and peak memory (max RSS of
//! the process tree) of each.
//!
//! The fleet: 50 clusters, each with two Flux Kustomizations (infrastructure and apps,
//! overlays of two shared bases): 100 units and 5,000 objects per revision. The two
//! revisions differ in one shared base (an image tag and a ConfigMap value of the
//! infrastructure base), so every cluster changes.
//!
//!     cargo bench -p capstan-cli --bench revdiff
//!
//! Mixed layouts: every BENCH_ARGO_EVERY-th cluster (default 2: every other one; 0:
//! none) is laid out for Argo CD instead: two Applications (infrastructure and apps,
//! the same overlays) deploying to a cluster registered by an Argo CD cluster Secret.
//!
//! BENCH_CLUSTERS, BENCH_OBJECTS (objects per cluster) override the size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn object(kind: usize, i: usize, base: &str, image_tag: &str, value: &str) -> String {
    match kind % 3 {
        0 => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {base}-app-{i}\n  namespace: {base}\n  labels:\n    app: {base}-app-{i}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {base}-app-{i}\n  template:\n    metadata:\n      labels:\n        app: {base}-app-{i}\n    spec:\n      containers:\n        - name: main\n          image: registry.example.com/{base}/app-{i}:{image_tag}\n          ports:\n            - containerPort: 8080\n          resources:\n            requests:\n              cpu: 100m\n              memory: 128Mi\n          env:\n            - name: MODE\n              value: production\n"
        ),
        1 => format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {base}-svc-{i}\n  namespace: {base}\nspec:\n  selector:\n    app: {base}-app-{i}\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
        ),
        _ => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {base}-config-{i}\n  namespace: {base}\ndata:\n  setting: \"{value}\"\n  level: info\n  endpoint: https://{base}-{i}.example.com\n"
        ),
    }
}

/// Write the fleet; `changed` is the target revision (one shared base differs).
fn fleet(root: &Path, clusters: usize, per_cluster: usize, changed: bool, argo_every: usize) {
    let infra_n = per_cluster * 3 / 5;
    let apps_n = per_cluster - infra_n;
    for (base, n) in [("infra", infra_n), ("apps", apps_n)] {
        let mut k = String::from("resources:\n");
        for i in 0..n {
            let (tag, value) = if changed && base == "infra" && i < 3 {
                ("v2", "new")
            } else {
                ("v1", "old")
            };
            write(
                root,
                &format!("{base}/base/obj-{i}.yaml"),
                &object(i, i, base, tag, value),
            );
            k.push_str(&format!("  - obj-{i}.yaml\n"));
        }
        write(root, &format!("{base}/base/kustomization.yaml"), &k);
    }
    for c in 0..clusters {
        for base in ["infra", "apps"] {
            write(
                root,
                &format!("{base}/clusters/c{c}/kustomization.yaml"),
                &format!("resources:\n  - ../../base\nlabels:\n  - pairs:\n      cluster: c{c}\n"),
            );
        }
        if argo_every > 0 && c % argo_every == argo_every - 1 {
            let mut apps = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: c{c}\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n  name: c{c}\n  server: https://c{c}.example.com\n");
            for base in ["infra", "apps"] {
                apps.push_str(&format!("---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {base}-c{c}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {BENCH_REPO}\n    targetRevision: HEAD\n    path: {base}/clusters/c{c}\n  destination:\n    name: c{c}\n  syncPolicy:\n    automated:\n      prune: true\n"));
            }
            write(root, &format!("argocd/c{c}.yaml"), &apps);
            continue;
        }
        write(root, &format!("clusters/c{c}/units.yaml"), &format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: infra\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./infra/clusters/c{c}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 10m\n  dependsOn:\n    - name: infra\n  path: ./apps/clusters/c{c}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
        ));
    }
}

/// The bench repository's URL (its `origin`): Applications' sources on it are read
/// from the revisions.
const BENCH_REPO: &str = "https://git.example.com/bench/fleet.git";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a command, returning wall time, peak RSS (KiB, the largest of the process and
/// its waited-for children) and the exit code.
// The child is reaped with `wait4` (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> (Duration, i64, i32) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    // Read stderr (the --stats line) before waiting, so a full pipe cannot block it.
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    for line in err.lines().filter(|l| l.starts_with("stats:")) {
        println!("    {line}");
    }
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (start.elapsed(), usage.ru_maxrss, code)
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let clusters = env_num("BENCH_CLUSTERS", 50);
    let per_cluster = env_num("BENCH_OBJECTS", 100);
    let argo_every = env_num("BENCH_ARGO_EVERY", 2);
    // CAPSTAN_BIN: measure another build (e.g. target/debug/capstan).
    let capstan = std::env::var_os("CAPSTAN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_capstan")));
    println!("binary: {}", capstan.display());
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("fleet");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["remote", "add", "origin", BENCH_REPO]);
    fleet(&repo, clusters, per_cluster, false, argo_every);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    fleet(&repo, clusters, per_cluster, true, argo_every);
    git(&repo, &["commit", "-q", "-am", "change one shared base"]);
    let argo = clusters.checked_div(argo_every).unwrap_or(0);
    println!(
        "fleet: {clusters} clusters ({} Flux, {argo} Argo CD), {} units, {} objects per revision; the revisions differ in one shared base",
        clusters - argo,
        clusters * 2,
        clusters * per_cluster
    );

    let cache = dir.path().join("cache");
    let run = |label: &str, extra: &[&str], fresh_cache: bool, base: &str| {
        if fresh_cache {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let mut cmd = Command::new(&capstan);
        cmd.args([
            "diff", "--base", base, "--target", "HEAD", "-o", "json", "--stats",
        ])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args(extra)
        .current_dir(&repo);
        let (t, rss, code) = measure(&mut cmd);
        println!(
            "capstan diff {label:<44} {:>8.3} s   peak {:>7.1} MiB   exit {code}",
            t.as_secs_f64(),
            mib(rss)
        );
        t
    };
    // Warm-up of the page cache (not reported).
    run("(warm-up)", &["--no-cache"], true, "HEAD~1");
    let full_cold = run("full, cold", &[], true, "HEAD~1");
    let full_warm = run("full, warm (same revisions cached)", &[], false, "HEAD~1");
    let changed_cold = run("--changed-only, cold", &["--changed-only"], true, "HEAD~1");
    let changed_warm = run("--changed-only, warm", &["--changed-only"], false, "HEAD~1");
    // A cache warmed by the base only (an earlier run on the target branch): only the
    // units the change reaches render.
    let _ = std::fs::remove_dir_all(&cache);
    {
        let mut cmd = Command::new(&capstan);
        cmd.args([
            "diff", "--base", "HEAD~1", "--target", "HEAD~1", "-o", "json",
        ])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .current_dir(&repo);
        measure(&mut cmd);
    }
    let base_warm = run(
        "--changed-only, cache warmed by the base only",
        &["--changed-only"],
        false,
        "HEAD~1",
    );
    let one = run(
        "--changed-only, one cluster, cold",
        &["--changed-only", "--cluster", "c0"],
        true,
        "HEAD~1",
    );

    // The naive pipeline: kubectl kustomize of every unit's path at both revisions, then
    // diff -r.
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    if !kubectl.is_ok_and(|o| o.status.success()) {
        println!("naive pipeline: skipped (kubectl is not installed)");
        return;
    }
    let mut sides = Vec::new();
    for (rev, name) in [("HEAD~1", "a"), ("HEAD", "b")] {
        let tree = dir.path().join(format!("tree-{name}"));
        std::fs::create_dir_all(&tree).unwrap();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "git -C {} archive {rev} | tar -x -C {}",
                repo.display(),
                tree.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        sides.push((tree, dir.path().join(format!("out-{name}"))));
    }
    let mut script = String::from("set -e\n");
    for (tree, out) in &sides {
        for c in 0..clusters {
            for base in ["infra", "apps"] {
                let o = out.join(format!("c{c}"));
                script.push_str(&format!(
                    "mkdir -p {o}; kubectl kustomize {t}/{base}/clusters/c{c} > {o}/{base}.yaml\n",
                    o = o.display(),
                    t = tree.display()
                ));
            }
        }
    }
    script.push_str(&format!(
        "diff -r {} {} > /dev/null || true\n",
        sides[0].1.display(),
        sides[1].1.display()
    ));
    let (naive, rss, code) = measure(Command::new("sh").arg("-c").arg(&script));
    println!(
        "naive: kubectl kustomize x {} + diff -r     {:>8.3} s   peak {:>7.1} MiB   exit {code}",
        clusters * 2 * 2,
        naive.as_secs_f64(),
        mib(rss)
    );
    for (label, t) in [
        ("full, cold", full_cold),
        ("full, warm", full_warm),
        ("--changed-only, cold", changed_cold),
        ("--changed-only, warm", changed_warm),
        ("--changed-only, cache warmed by the base", base_warm),
        ("one cluster, cold", one),
    ] {
        println!(
            "speed-up over naive, {label:<42} {:>6.1}x",
            naive.as_secs_f64() / t.as_secs_f64()
        );
    }
}
