//! Apply-time image policies (`capstan.io/image-policy` on a Kustomization) against
//! Debian's `docker-registry` on loopback (basic auth from `CAPSTAN_REGISTRY_*`):
//! `capstan build` renders the Deployment with the tag the ImagePolicy elects, names it
//! on stderr, follows a newly pushed tag on the next build, and writes nothing to the
//! repository. A policy that cannot be resolved fails only its unit, naming the policy.
//! Skips with a message when the registry is not installed, unless
//! CAPSTAN_REQUIRE_CLUSTER=1.

use std::path::Path;
use std::process::{Command, Output};

use capstan_testbed::servers::{registry_available, start_registry};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn push(port: u16, repo: &str, tags: &[&str]) {
    let auth = RegistryAuth::Basic("flux".into(), "reg-pass-88".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        });
        for tag in tags {
            let reference =
                Reference::with_tag(format!("127.0.0.1:{port}"), repo.into(), (*tag).into());
            let layer = ImageLayer::new(
                format!("layer {tag}").into_bytes(),
                "application/vnd.oci.image.layer.v1.tar".into(),
                None,
            );
            let config = Config::new(
                b"{}".to_vec(),
                "application/vnd.oci.image.config.v1+json".into(),
                None,
            );
            client
                .push(&reference, &[layer], config, &auth, None)
                .await
                .expect("push");
        }
    });
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn build(repo: &Path, cache: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("build")
        .arg(repo)
        .args(["--cluster", "c", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .env("CAPSTAN_REGISTRY_USERNAME", "flux")
        .env("CAPSTAN_REGISTRY_PASSWORD", "reg-pass-88")
        .output()
        .unwrap()
}

fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn image_policy_annotation_renders_the_newest_tag_without_a_commit() {
    if !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("registry")).unwrap();
    let reg = start_registry(&tmp.path().join("registry"), Some(("flux", "reg-pass-88")));
    push(reg.port, "team/app", &["1.0.0", "1.2.0", "0.9.0", "latest"]);
    let image = format!("127.0.0.1:{}/team/app", reg.port);

    let repo = tmp.path().join("repo");
    write(
        &repo,
        "clusters/c/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\n  annotations:\n    capstan.io/image-policy: apps/app\nspec:\n  interval: 10m\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: broken\n  namespace: flux-system\n  annotations:\n    capstan.io/image-policy: apps/missing\nspec:\n  interval: 10m\n  path: ./other\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    write(
        &repo,
        "clusters/c/images.yaml",
        &format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  image: {image}\n  interval: 5m\n  insecure: true\n  secretRef:\n    name: regcred\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  imageRepositoryRef:\n    name: app\n  policy:\n    semver:\n      range: '>=1.0.0'\n"),
    );
    write(
        &repo,
        "apps/deploy.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  selector:\n    matchLabels: {{app: app}}\n  template:\n    metadata:\n      labels: {{app: app}}\n    spec:\n      containers:\n      - name: app\n        image: {image}:0.1.0\n"),
    );
    write(
        &repo,
        "other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: apps\ndata: {a: b}\n",
    );
    let before = snapshot(&repo);
    let cache = tmp.path().join("cache");

    // the policy resolves; the unknown one fails its unit only (exit 2, others printed)
    let out = build(&repo, &cache, &["--keep-going"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stdout.contains(&format!("image: {image}:1.2.0")),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains(":0.1.0"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "Kustomization/flux-system/apps: image ImagePolicy apps/app -> {image}:1.2.0"
        )) || stderr.contains(&format!("image ImagePolicy apps/app -> {image}:1.2.0")),
        "{stderr}"
    );
    assert!(
        stderr.contains("ImagePolicy apps/missing") && stderr.contains("broken"),
        "{stderr}"
    );
    assert!(!stderr.contains("reg-pass-88"), "{stderr}");
    assert!(
        !stdout.contains("name: other"),
        "nothing of the failed unit: {stdout}"
    );

    // a newer tag is followed on the next build; the repository is untouched
    push(reg.port, "team/app", &["1.3.0", "2.0.0-rc.1"]);
    let out = build(&repo, &cache, &["--keep-going"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stdout.contains(&format!("image: {image}:1.3.0")),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains(&format!("-> {image}:1.3.0")), "{stderr}");
    assert_eq!(before, snapshot(&repo), "the build wrote to the repository");

    // without credentials the registry refuses: the unit fails naming the policy
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("build")
        .arg(&repo)
        .args(["--cluster", "c", "--cache-dir"])
        .arg(&cache)
        .env_remove("CAPSTAN_REGISTRY_USERNAME")
        .env_remove("CAPSTAN_REGISTRY_PASSWORD")
        .env_remove("CAPSTAN_REGISTRY_TOKEN")
        .env_remove("CAPSTAN_REGISTRY_DOCKER_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ImagePolicy apps/app"), "{stderr}");
    assert!(out.stdout.is_empty());
}
