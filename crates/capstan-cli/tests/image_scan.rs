//! `capstan image scan` against Debian's `docker-registry` on loopback (basic auth),
//! with tags pushed in seed 004's build format (some only milliseconds apart), semver
//! tags, environment tags and a cosign `.sig` tag: the scan pages through the tag list,
//! applies `exclusionList`, and each policy kind elects the expected tag. Skips with a
//! message when the registry is not installed, unless CAPSTAN_REQUIRE_CLUSTER=1.

use std::process::Command;

use capstan_testbed::servers::{registry_available, start_registry};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

const TAGS: &[&str] = &[
    "1.0.0",
    "v1.2.3",
    "1.10.0",
    "2.0.0-rc.1",
    "user-roles",
    "production",
    "v1.2.2.2022-01-15t161730811Z.aaaaaaa",
    "v1.2.2.2022-01-15t161730814Z.3f2a9c1",
    "v1.2.2.2022-01-15t161730813Z.bbbbbbb",
    "v1.3.0.2022-01-17t000000000Z.ddddddd",
    "sha256-0123.sig",
];

fn push_all(port: u16, repo: &str, auth: &RegistryAuth) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        });
        for (i, tag) in TAGS.iter().enumerate() {
            let reference =
                Reference::with_tag(format!("127.0.0.1:{port}"), repo.into(), (*tag).into());
            // a distinct layer per tag, so digests differ
            let layer = ImageLayer::new(
                format!("layer {i}").into_bytes(),
                "application/vnd.oci.image.layer.v1.tar".into(),
                None,
            );
            let config = Config::new(
                b"{}".to_vec(),
                "application/vnd.oci.image.config.v1+json".into(),
                None,
            );
            client
                .push(&reference, &[layer], config, auth, None)
                .await
                .expect("push");
        }
    });
}

fn policy(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  imageRepositoryRef:\n    name: app\n{spec}"
    )
}

#[test]
fn image_scan_pages_excludes_and_elects_per_policy_kind() {
    if !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path(), Some(("flux", "reg-pass-77")));
    let auth = RegistryAuth::Basic("flux".into(), "reg-pass-77".into());
    push_all(reg.port, "team/app", &auth);

    let image = format!("127.0.0.1:{}/team/app", reg.port);
    let repo_file = tmp.path().join("repo.yaml");
    std::fs::write(
        &repo_file,
        format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  image: {image}\n  interval: 5m\n  insecure: true\n  secretRef:\n    name: regcred\n"),
    )
    .unwrap();
    let policies = [
        policy("semver", "  policy:\n    semver:\n      range: '>=1.0.0'\n  digestReflectionPolicy: IfNotPresent\n"),
        policy("alpha", "  policy:\n    alphabetical:\n      order: asc\n"),
        policy(
            "builds",
            "  filterTags:\n    pattern: '^v1\\.2\\.2\\.(?P<ts>\\d{4}-\\d{2}-\\d{2}t\\d{9}Z)\\.[0-9a-f]+$'\n    extract: '$ts'\n  policy:\n    alphabetical:\n      order: asc\n",
        ),
        policy(
            "numbers",
            "  filterTags:\n    pattern: '^v1\\.2\\.2\\.(?P<d>\\d{4})-(?P<m>\\d{2})-(?P<day>\\d{2})t(?P<t>\\d{9})Z\\.'\n    extract: '${d}${m}${day}${t}'\n  policy:\n    numerical:\n      order: asc\n",
        ),
    ]
    .concat();
    let pol_file = tmp.path().join("policies.yaml");
    std::fs::write(&pol_file, policies).unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            "{{\"auths\":{{\"127.0.0.1:{}\":{{\"username\":\"flux\",\"password\":\"reg-pass-77\"}}}}}}",
            reg.port
        ),
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["image", "scan", "--repository"])
        .arg(&repo_file)
        .arg("--policy")
        .arg(&pol_file)
        .arg("--docker-config")
        .arg(&cfg)
        .args(["--page-size", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("reg-pass-77"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = &v["imageRepository"]["status"];
    // every page read (11 tags in pages of 3), the .sig tag excluded
    assert_eq!(status["lastScanResult"]["tagCount"], 10, "{v:#}");
    assert_eq!(status["canonicalImageName"], image.as_str());
    assert_eq!(status["observedExclusionList"][0], "^.*\\.sig$");
    let latest = status["lastScanResult"]["latestTags"].as_array().unwrap();
    assert_eq!(latest.len(), 10);
    assert_eq!(latest[0], "v1.3.0.2022-01-17t000000000Z.ddddddd");
    let pick = |name: &str| {
        v["imagePolicies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == format!("apps/{name}"))
            .unwrap_or_else(|| panic!("policy {name} in {v:#}"))["status"]["latestRef"]
            .clone()
    };
    assert_eq!(pick("semver")["tag"], "1.10.0");
    assert_eq!(pick("semver")["name"], image.as_str());
    assert!(pick("semver")["digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:")));
    assert_eq!(pick("alpha")["tag"], "v1.3.0.2022-01-17t000000000Z.ddddddd");
    assert_eq!(pick("alpha").get("digest"), None);
    // 3 ms newer than the next build: elected alphabetically
    assert_eq!(
        pick("builds")["tag"],
        "v1.2.2.2022-01-15t161730814Z.3f2a9c1"
    );
    // the numerical policy sees 20220115161730813 and ...811 as one float64; it still
    // elects the newest here only because ...814 rounds up to a larger float64.
    assert_eq!(
        pick("numbers")["tag"],
        "v1.2.2.2022-01-15t161730814Z.3f2a9c1"
    );

    // wrong credentials: a clear error, no password in it
    std::fs::write(
        &cfg,
        format!(
            "{{\"auths\":{{\"127.0.0.1:{}\":{{\"username\":\"flux\",\"password\":\"wrong-secret\"}}}}}}",
            reg.port
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["image", "scan", "--repository"])
        .arg(&repo_file)
        .arg("--docker-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ImageRepository apps/app"), "{stderr}");
    assert!(!stderr.contains("wrong-secret"), "{stderr}");
}
