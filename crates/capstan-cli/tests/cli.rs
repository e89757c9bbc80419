//! The `capstan` binary as users run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capstan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .expect("run capstan")
}

fn fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet")
}

fn fleet_copy(tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("capstan-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    let status = Command::new("cp")
        .arg("-r")
        .arg(fleet())
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success());
    dst
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn build_renders_every_unit_with_cluster_variables() {
    let out = capstan(&["build", fleet().to_str().unwrap(), "--cluster", "staging"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let y = text(&out.stdout);
    for unit in ["flux-system", "infra-controllers", "infra-configs", "apps"] {
        assert!(
            y.contains(&format!("# Unit: Kustomization/flux-system/{unit}\n")),
            "{unit} missing"
        );
    }
    // The HelmRelease renders natively, with valuesFrom and values.
    assert!(y.contains("# Unit: HelmRelease/flux-system/metrics-agent\n"));
    assert!(y.contains("    cluster: staging\n    scrape_interval: 15s\n"));
    assert!(
        y.find("# Unit: HelmRelease/flux-system/metrics-agent")
            .unwrap()
            < y.find("# Unit: Kustomization/flux-system/apps").unwrap()
    );
    assert!(y.contains("issuer: letsencrypt-staging"));
    assert!(y.contains("- --ui-message=staging"));
    assert!(!y.contains("${"), "unsubstituted variable left:\n{y}");
    // The CRD's unit comes before the unit holding its custom resource.
    assert!(
        y.find("kind: CustomResourceDefinition").unwrap()
            < y.find("kind: CertificatePolicy\n").unwrap()
    );
}

#[test]
fn build_one_unit_as_json() {
    let out = capstan(&[
        "build",
        fleet().to_str().unwrap(),
        "-c",
        "production",
        "--unit",
        "apps",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let objects = v[0]["objects"].as_array().unwrap();
    let deploy = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "podinfo")
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/stefanprodan/podinfo:6.7.1"
    );
    assert!(
        deploy["spec"]["template"]["spec"]["topologySpreadConstraints"].is_array(),
        "component applied"
    );
}

#[test]
fn bad_input_is_a_clear_error_with_file_and_hint() {
    let repo = fleet_copy("bad");
    let f = repo.join("clusters/staging/apps.yaml");
    std::fs::write(
        &f,
        std::fs::read_to_string(&f)
            .unwrap()
            .replace("  dependsOn:", "  dependOn:"),
    )
    .unwrap();
    let out = capstan(&["build", repo.to_str().unwrap(), "--cluster", "staging"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("spec.dependOn: unknown field"), "{err}");
    assert!(err.contains("/clusters/staging/apps.yaml"), "{err}");
    assert!(err.contains("did you mean `spec.dependsOn`?"), "{err}");

    let out = capstan(&["build", repo.to_str().unwrap(), "--cluster", "stagin"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean `clusters/staging`?"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(repo);
}

#[test]
fn yaml_syntax_error_names_the_file() {
    let repo = fleet_copy("yaml");
    std::fs::write(
        repo.join("infrastructure/configs/certificate-policy.yaml"),
        "apiVersion: v1\nkind: [oops\n",
    )
    .unwrap();
    let out = capstan(&["build", repo.to_str().unwrap(), "--cluster", "staging"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("infra-configs"), "{err}");
    assert!(err.contains("certificate-policy.yaml"), "{err}");
    // A failed cluster prints nothing, unless --keep-going: then the other units render.
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let out = capstan(&[
        "build",
        repo.to_str().unwrap(),
        "--cluster",
        "staging",
        "--keep-going",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("# Unit: Kustomization/flux-system/infra-controllers"));
    let _ = std::fs::remove_dir_all(repo);
}

#[test]
fn kustomize_build_matches_kubectl_on_the_fleet_overlays() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("skipping: kubectl not installed");
        return;
    }
    for dir in [
        "apps/staging",
        "apps/production",
        "infrastructure/controllers",
    ] {
        let path = fleet().join(dir);
        let ours = capstan(&["kustomize", "build", path.to_str().unwrap()]);
        assert!(ours.status.success(), "{}", text(&ours.stderr));
        let theirs = Command::new("kubectl")
            .arg("kustomize")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{dir}");
    }
}

#[test]
fn diff_and_apply_against_a_real_cluster() {
    let Some(cluster) = capstan_testbed::TestCluster::start("cli") else {
        return;
    };
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let repo = fleet().to_str().unwrap().to_string();
    let out = capstan(&["apply", &repo, "--cluster", "local", "--kubeconfig", &kc]);
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Kustomization/flux-system/apps"));
    let out = capstan(&["diff", &repo, "--cluster", "local", "--kubeconfig", &kc]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "no drift after apply:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Drift: the staging plan differs (replicas, variables): exit 1 and a diff.
    let out = capstan(&["diff", &repo, "--cluster", "staging", "--kubeconfig", &kc]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("+  replicas: 2"),
        "{}",
        text(&out.stdout)
    );
    // A wrong context is an error, not a crash.
    let out = capstan(&[
        "diff",
        &repo,
        "--cluster",
        "local",
        "--kubeconfig",
        &kc,
        "--context",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
