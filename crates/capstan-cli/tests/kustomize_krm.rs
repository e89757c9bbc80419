//! `capstan kustomize build` running exec KRM functions as real processes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn build(dir: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["kustomize", "build", "--reorder=none"])
        .args(flags)
        .arg(dir)
        .output()
        .expect("run capstan")
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn script(dir: &Path, name: &str, text: &str) {
    write(dir, name, text);
    let p = dir.join(name);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const GEN_CFG: &str = "kind: executable\nmetadata:\n  name: demo\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./gen.sh\nspec:\n  size: small\n";

/// A generator that reads its ResourceList from stdin (the function config's
/// `spec.size` and the working directory end up in the output).
const GEN_SH: &str = "#!/bin/sh\nsize=$(grep -m1 ' size: ' | sed 's/.*size: //')\ncat <<EOF\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: generated\ndata:\n  size: $size\n  dir: $(basename \"$PWD\")\nEOF\n";

#[test]
fn exec_generator_runs_in_the_kustomization_dir_with_a_resource_list() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write(&base, "kustomization.yaml", "generators:\n- gener.yaml\n");
    write(&base, "gener.yaml", GEN_CFG);
    script(&base, "gen.sh", GEN_SH);
    write(
        tmp.path(),
        "prod/kustomization.yaml",
        "resources:\n- ../base\nnamePrefix: p-\n",
    );
    let out = build(
        &tmp.path().join("prod"),
        &["--enable-alpha-plugins", "--enable-exec"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "apiVersion: v1\ndata:\n  dir: base\n  size: small\nkind: ConfigMap\nmetadata:\n  name: p-generated\n"
    );
}

#[test]
fn exec_transformer_replaces_the_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "kustomization.yaml",
        "resources:\n- secret.yaml\ntransformers:\n- t.yaml\n",
    );
    write(
        d,
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dummy\ntype: Opaque\n",
    );
    write(d, "t.yaml", "apiVersion: example.com/v1\nkind: MyPlugin\nmetadata:\n  name: t\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./bin/t.sh\n");
    // Echo the ResourceList back with every `dummy` renamed.
    script(
        d,
        "bin/t.sh",
        "#!/bin/sh\nsed 's/name: dummy$/name: renamed/'\n",
    );
    let out = build(d, &["--enable-alpha-plugins", "--enable-exec"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: renamed\ntype: Opaque\n"
    );
}

#[test]
fn failing_exec_function_reports_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "kustomization.yaml", "generators:\n- gener.yaml\n");
    write(d, "gener.yaml", GEN_CFG);
    script(d, "gen.sh", "#!/bin/sh\necho 'no size given' >&2\nexit 4\n");
    let out = build(d, &["--enable-alpha-plugins", "--enable-exec"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("couldn't execute function: exit status 4"),
        "{err}"
    );
    assert!(err.contains("no size given"), "{err}");
}

#[test]
fn exec_function_without_enable_exec_is_an_error_and_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "kustomization.yaml", "generators:\n- gener.yaml\n");
    write(d, "gener.yaml", GEN_CFG);
    script(d, "gen.sh", "#!/bin/sh\ntouch ran\n");
    let out = build(d, &["--enable-alpha-plugins"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--enable-exec"),
        "{}",
        text(&out.stderr)
    );
    let out = build(d, &["--enable-exec"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("external plugins disabled; unable to load external plugin 'executable'"),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.join("ran").exists());
}

#[test]
fn missing_executable_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "kustomization.yaml", "generators:\n- gener.yaml\n");
    write(d, "gener.yaml", GEN_CFG);
    let out = build(d, &["--enable-alpha-plugins", "--enable-exec"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("couldn't execute function: fork/exec ./gen.sh"),
        "{err}"
    );
}
