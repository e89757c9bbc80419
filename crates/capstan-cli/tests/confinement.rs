//! A repository is read only beneath its root: symlinks leading out of it (to
//! `/proc/self/environ`, to a file or a chart elsewhere), symlink loops and the like fail
//! the build with exit code 2 and a message naming the link and its target, and nothing
//! from outside reaches stdout or stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOKEN: &str = "capstan-test-token-7f3a9c";
const OUTSIDE_SECRET: &str = "outside-secret-51d2e8";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of examples/fleet in `<tmp>/repo`, with `<tmp>/outside` beside it holding a
/// secret file and a chart.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
        let ok = Command::new("cp")
            .arg("-r")
            .arg(&fleet)
            .arg(dir.path().join("repo"))
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(
            outside.join("secret.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  key: {OUTSIDE_SECRET}\n"),
        )
        .unwrap();
        let ok = Command::new("cp")
            .arg("-r")
            .arg(fleet.join("charts/metrics-agent"))
            .arg(outside.join("chart"))
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::fs::write(
            outside.join("chart/templates/stolen.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  key: {OUTSIDE_SECRET}\n"),
        )
        .unwrap();
        Repo { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    fn link(&self, at: &str, target: impl AsRef<Path>) {
        let p = self.root().join(at);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir_all(&p);
        std::os::unix::fs::symlink(target, p).unwrap();
    }
    fn append(&self, file: &str, more: &str) {
        let p = self.root().join(file);
        let mut t = std::fs::read_to_string(&p).unwrap();
        t.push_str(more);
        std::fs::write(p, t).unwrap();
    }
    fn build(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .arg("build")
            .arg(self.root())
            .args(["--cluster", "staging"])
            .args(extra)
            .env("CAPSTAN_GIT_TOKEN", TOKEN)
            .output()
            .expect("run capstan")
    }
}

/// Exit code 2 (not a panic), the link and its target named, no secret anywhere.
fn assert_refused(out: &Output, link: &str, target: &str) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "stdout:\n{o}\nstderr:\n{e}");
    assert!(
        e.contains(link) && e.contains(target) && e.contains("outside the root"),
        "the error names neither {link} nor {target}:\n{e}"
    );
    for secret in [TOKEN, OUTSIDE_SECRET] {
        assert!(
            !o.contains(secret) && !e.contains(secret),
            "{secret} leaked"
        );
    }
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn build_refuses_a_generator_file_linked_to_proc_self_environ() {
    let r = Repo::new();
    r.link("apps/staging/environ", "/proc/self/environ");
    r.append(
        "apps/staging/kustomization.yaml",
        "configMapGenerator:\n  - name: leak\n    files:\n      - environ\n",
    );
    let out = r.build(&[]);
    assert_refused(&out, "/apps/staging/environ", "/proc/self/environ");
    // A failed build prints nothing on stdout...
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    // ...unless --keep-going: the units that rendered, and still exit code 2.
    let out = r.build(&["--keep-going"]);
    assert_refused(&out, "/apps/staging/environ", "/proc/self/environ");
    let o = text(&out.stdout);
    assert!(
        o.contains("# Unit: Kustomization/flux-system/infra-controllers"),
        "{o}"
    );
    assert!(
        !o.contains("# Unit: Kustomization/flux-system/apps\n"),
        "{o}"
    );
}

#[test]
fn build_refuses_a_resource_linked_to_a_file_outside_the_root() {
    let r = Repo::new();
    let target = r.outside().join("secret.yaml");
    r.link("apps/base/redis/stolen.yaml", &target);
    r.append("apps/base/redis/kustomization.yaml", "  - stolen.yaml\n");
    let text_k =
        std::fs::read_to_string(r.root().join("apps/base/redis/kustomization.yaml")).unwrap();
    assert!(text_k.contains("resources:\n"), "fixture changed: {text_k}");
    let out = r.build(&[]);
    assert_refused(
        &out,
        "/apps/base/redis/stolen.yaml",
        target.to_str().unwrap(),
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn build_refuses_a_relative_link_climbing_out_of_the_root() {
    let r = Repo::new();
    r.link(
        "apps/base/redis/stolen.yaml",
        "../../../../outside/secret.yaml",
    );
    r.append("apps/base/redis/kustomization.yaml", "  - stolen.yaml\n");
    let out = r.build(&[]);
    assert_refused(
        &out,
        "/apps/base/redis/stolen.yaml",
        "../../../../outside/secret.yaml",
    );
}

#[test]
fn build_refuses_a_chart_directory_linked_outside_the_root() {
    let r = Repo::new();
    let target = r.outside().join("chart");
    r.link("charts/metrics-agent", &target);
    let out = r.build(&[]);
    assert_refused(&out, "/charts/metrics-agent", target.to_str().unwrap());
    assert!(
        text(&out.stderr).contains("spec.chart.spec.chart"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn build_refuses_a_chart_template_linked_outside_the_root() {
    let r = Repo::new();
    let target = r.outside().join("chart/templates/stolen.yaml");
    r.link("charts/metrics-agent/templates/stolen.yaml", &target);
    let out = r.build(&[]);
    assert_refused(
        &out,
        "/charts/metrics-agent/templates/stolen.yaml",
        target.to_str().unwrap(),
    );
}

#[test]
fn build_refuses_a_unit_path_linked_outside_the_root() {
    let r = Repo::new();
    let ok = Command::new("cp")
        .arg("-r")
        .arg(r.root().join("apps"))
        .arg(r.outside().join("apps"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let target = r.outside().join("apps/staging");
    r.link("apps/staging", &target);
    let out = r.build(&[]);
    assert_refused(&out, "/apps/staging", target.to_str().unwrap());
    assert!(
        text(&out.stderr).contains("spec.path"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn build_reports_a_symlink_loop_as_a_loop() {
    let r = Repo::new();
    r.link("apps/base/redis/a.yaml", "b.yaml");
    r.link("apps/base/redis/b.yaml", "a.yaml");
    r.append("apps/base/redis/kustomization.yaml", "  - a.yaml\n");
    let out = r.build(&[]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("symlink loop") && e.contains("/apps/base/redis/a.yaml"),
        "{e}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn links_inside_the_root_still_work() {
    let r = Repo::new();
    std::fs::rename(
        r.root().join("apps/base/redis/redis.yaml"),
        r.root().join("apps/redis-real.yaml"),
    )
    .unwrap();
    r.link("apps/base/redis/redis.yaml", "../../redis-real.yaml");
    let out = r.build(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("name: redis"));
}

/// A Secret whose live copy carries its old values in kubectl's last-applied annotation
/// (and a copy in another annotation): `capstan diff` shows which keys change, never a
/// value, old or new.
#[test]
fn diff_masks_secret_values_in_data_and_annotations() {
    let Some(cluster) = capstan_testbed::TestCluster::start("vfsmask") else {
        return;
    };
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let secret = |pw: &str| {
        // base64 of the password, as the API server stores it.
        let last_applied = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{{\"name\":\"creds\",\"namespace\":\"default\"}},\"stringData\":{{\"password\":\"{pw}\"}}}}"
        );
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: default\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{last_applied}'\n    example.com/note: 'rotated to {pw}'\nstringData:\n  password: {pw}\n  user: admin-user\n"
        )
    };
    let write = |pw: &str| {
        std::fs::create_dir_all(dir.path().join("clusters/t")).unwrap();
        std::fs::write(dir.path().join("clusters/t/secret.yaml"), secret(pw)).unwrap();
    };
    let run = |cmd: &str| {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args([cmd, dir.path().to_str().unwrap(), "--cluster", "t"])
            .args(["--kubeconfig", &kc])
            .output()
            .unwrap()
    };
    write("old-password-1a2b");
    let out = run("apply");
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    write("new-password-3c4d");
    let out = run("diff");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{o}\n{e}");
    assert!(o.contains("Secret"), "{o}");
    assert!(
        o.contains("*** (before)") && o.contains("*** (after)"),
        "{o}"
    );
    // Masked alike on both sides, the annotations are no drift of their own.
    for leak in [
        "old-password",
        "new-password",
        "b2xkLXBhc3N3b3Jk", // base64("old-password")
        "bmV3LXBhc3N3b3Jk", // base64("new-password")
        "admin-user",
        "YWRtaW4tdXNlcg",
    ] {
        assert!(
            !o.contains(leak) && !e.contains(leak),
            "{leak} leaked:\n{o}\n{e}"
        );
    }
}
