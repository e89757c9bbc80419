//! The binary's exit code when its reader goes away: a failure (2) with its message
//! where it can still be written, never a panic (101).

use std::process::{Command, Stdio};

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

fn kustomization(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn kustomize_build_error_with_closed_stderr_exits_2() {
    let dir = kustomization(&[("kustomization.yaml", "resources:\n- missing.yaml\n")]);
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["kustomize", "build"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn kustomize_build_with_closed_stdout_exits_2_with_message() {
    let dir = kustomization(&[
        ("kustomization.yaml", "resources:\n- cm.yaml\n"),
        (
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        ),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["kustomize", "build"])
        .arg(dir.path())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    // Both closed: still 2.
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["kustomize", "build"])
        .arg(dir.path())
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn helm_template_with_closed_stdout_never_exits_101() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::create_dir(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["helm", "template", "r"])
        .arg(chart)
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(101));
}

/// Two resources in one file without `---`: an error naming the file, the line and the
/// key (go-yaml v3 / kustomize), not a resource with the other's fields.
#[test]
fn kustomize_build_duplicate_key_names_file_and_line() {
    let dir = kustomization(&[
        ("kustomization.yaml", "resources:\n- r.yaml\n"),
        (
            "r.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: foos.example.com\n",
        ),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["kustomize", "build"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("r.yaml"), "{err}");
    assert!(
        err.contains("line 5, column 1: mapping key \"apiVersion\" already defined at line 1"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
