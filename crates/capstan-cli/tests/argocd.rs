//! `capstan build --apps` on examples/argocd-fleet and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn capstan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .expect("run capstan")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/argocd-fleet")
}

fn apps_json(out: &Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("JSON on stdout")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find<'a>(apps: &'a [Value], name: &str, source: &str) -> &'a Value {
    apps.iter()
        .find(|a| a["app"] == name && a["source"] == source)
        .unwrap_or_else(|| panic!("no {name} from {source}"))
}

#[test]
fn build_apps_lists_every_application_of_the_argocd_example() {
    let repo = example();
    let out = capstan(&[
        "build",
        repo.to_str().unwrap(),
        "--apps",
        "-o",
        "json",
        "--this-repo",
        "example/argocd-fleet",
        "--path",
        "bootstrap",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let apps = apps_json(&out);
    let mut listed: Vec<(String, String)> = apps
        .iter()
        .map(|a| {
            (
                a["app"].as_str().unwrap().to_string(),
                a["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let want = [
        (
            "monitoring-agent-production",
            "parent: root (appset: monitoring-agent)",
        ),
        (
            "monitoring-agent-staging",
            "parent: root (appset: monitoring-agent)",
        ),
        ("root", "bootstrap/root.yaml"),
        ("web-production", "parent: root (appset: web)"),
        ("web-staging", "parent: root (appset: web)"),
        ("widget-crds", "parent: root"),
        ("widgets", "parent: root"),
    ];
    assert_eq!(listed, want.map(|(a, b)| (a.to_string(), b.to_string())));

    // list generator: the replicas parameter reaches kustomize's replicas option
    let web = find(&apps, "web-production", "parent: root (appset: web)");
    assert_eq!(
        web["destination"]["server"],
        "https://production.example.com:6443"
    );
    let deploy = web["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(deploy["metadata"]["namespace"], "web");

    // clusters generator over the cluster Secrets of clusters/: per-cluster value file
    let mon = find(
        &apps,
        "monitoring-agent-production",
        "parent: root (appset: monitoring-agent)",
    );
    let cm = mon["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .unwrap();
    assert_eq!(cm["data"]["cluster"], "production");
    assert_eq!(cm["data"]["scrapeInterval"], "15s");
    assert_eq!(cm["data"]["logLevel"], "info");
    let mon = find(
        &apps,
        "monitoring-agent-staging",
        "parent: root (appset: monitoring-agent)",
    );
    let cm = mon["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .unwrap();
    assert_eq!(cm["data"]["scrapeInterval"], "60s");

    // the CRD in one Application, its custom resources in another
    let crds = find(&apps, "widget-crds", "parent: root");
    assert_eq!(crds["objects"][0]["kind"], "CustomResourceDefinition");
    let widgets = find(&apps, "widgets", "parent: root");
    assert_eq!(widgets["objects"].as_array().unwrap().len(), 2);
    assert_eq!(widgets["objects"][0]["metadata"]["namespace"], "widgets");
}

#[test]
fn build_apps_bad_input_names_file_document_and_field_and_others_render() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("apps")).unwrap();
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(
        root.join("d/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )
    .unwrap();
    std::fs::write(
        root.join("apps/good.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: good\nspec:\n  source:\n    repoURL: https://git.example.com/org/repo\n    path: d\n  destination:\n    namespace: x\n",
    )
    .unwrap();
    std::fs::write(
        root.join("apps/bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: bad\nspec:\n  destination:\n    namespace: x\n",
    )
    .unwrap();
    std::fs::write(
        root.join("apps/set.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: set\nspec:\n  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n  generators:\n  - list:\n      elements:\n      - a: x\n  template:\n    metadata:\n      name: '{{ .nope }}'\n    spec: {}\n",
    )
    .unwrap();
    let r = root.to_str().unwrap();
    // without --keep-going a failed build prints nothing
    let out = capstan(&[
        "build",
        r,
        "--apps",
        "-o",
        "json",
        "--this-repo",
        "org/repo",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = capstan(&[
        "build",
        r,
        "--apps",
        "-o",
        "json",
        "--this-repo",
        "org/repo",
        "--keep-going",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apps/bad.yaml (document 2): Application/bad: spec.source: the Application has no source"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apps/set.yaml (document 1): ApplicationSet/set: spec.template:"),
        "{stderr}"
    );
    assert!(stderr.contains("map has no entry for key"), "{stderr}");
    let apps = apps_json(&out);
    let good = find(&apps, "good", "apps/good.yaml");
    assert_eq!(good["objects"][0]["metadata"]["namespace"], "x");
    assert!(find(&apps, "bad", "apps/bad.yaml")["error"].is_string());
}

/// `capstan build --cluster NAME --argocd --path DIR`: every Application reachable from the
/// root is a unit, in the graph's order (the CRD's Application, wave -1, before the one of
/// its custom resources); `--app` names the root, and a name that is not declared fails
/// with a hint.
#[test]
fn build_argocd_cluster_orders_applications_as_units() {
    let repo = example();
    let out = capstan(&[
        "build",
        repo.to_str().unwrap(),
        "--cluster",
        "mgmt",
        "--argocd",
        "--path",
        "bootstrap",
        "--this-repo",
        "example/argocd-fleet",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let units: Vec<String> = apps_json(&out)
        .iter()
        .map(|u| u["unit"].as_str().unwrap().to_string())
        .collect();
    let pos = |u: &str| {
        units
            .iter()
            .position(|x| x == u)
            .unwrap_or_else(|| panic!("{u} not in {units:?}"))
    };
    assert_eq!(pos("Application/argocd/root"), 0, "{units:?}");
    assert!(pos("Application/argocd/widget-crds") < pos("Application/argocd/widgets"));
    for u in [
        "Application/argocd/web-staging",
        "Application/argocd/web-production",
        "Application/argocd/monitoring-agent-staging",
        "Application/argocd/monitoring-agent-production",
    ] {
        pos(u);
    }
    let out = capstan(&[
        "build",
        repo.to_str().unwrap(),
        "--cluster",
        "mgmt",
        "--argocd",
        "--app",
        "widget",
        "--this-repo",
        "example/argocd-fleet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Application or ApplicationSet named \"widget\"")
            && err.contains("did you mean"),
        "{err}"
    );
}
