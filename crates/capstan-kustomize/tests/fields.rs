//! Per-field tests over in-memory trees.

use std::path::Path;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};
use capstan_vfs::MemFs;

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.0\n        envFrom:\n        - configMapRef:\n            name: cfg\n";

fn run(fs: &MemFs, root: &str) -> Result<String, String> {
    let opts = BuildOptions {
        reorder: Reorder::None,
        ..Default::default()
    };
    build_to_string(fs, Path::new(root), &opts).map_err(|e| e.to_string())
}

#[test]
fn prefix_namespace_labels_images_and_generator_refs() {
    let fs = MemFs::new().with("/app/deploy.yaml", DEPLOY).with(
        "/app/kustomization.yaml",
        "resources:\n- deploy.yaml\nnamespace: prod\nnamePrefix: p-\ncommonLabels:\n  app: web\nimages:\n- name: nginx\n  newTag: \"2.0\"\nconfigMapGenerator:\n- name: cfg\n  literals:\n  - A=1\n",
    );
    let out = run(&fs, "/app").unwrap();
    assert!(out.contains("name: p-web\n  namespace: prod"), "{out}");
    assert!(out.contains("image: nginx:2.0"), "{out}");
    assert!(out.contains("matchLabels:\n      app: web"), "{out}");
    // the generated name (with hash) is propagated to the reference
    let cm_name = out
        .lines()
        .find(|l| l.contains("name: p-cfg-"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(out.matches(&cm_name).count(), 2, "{out}");
}

#[test]
fn hash_matches_kustomize() {
    // kustomize names this ConfigMap p-cm-877mt5hc89.
    let fs = MemFs::new()
        .with("/base/kustomization.yaml", "namePrefix: p-\nconfigMapGenerator:\n- name: cm\n  literals:\n  - fruit=apple\n")
        .with("/over/kustomization.yaml", "resources:\n- ../base\nconfigMapGenerator:\n- name: cm\n  behavior: merge\n  literals:\n  - veggie=broccoli\n");
    let out = run(&fs, "/over").unwrap();
    assert_eq!(out, "apiVersion: v1\ndata:\n  fruit: apple\n  veggie: broccoli\nkind: ConfigMap\nmetadata:\n  name: p-cm-877mt5hc89\n");
}

#[test]
fn strategic_merge_and_json_patches() {
    let fs = MemFs::new().with("/a/deploy.yaml", DEPLOY).with(
        "/a/kustomization.yaml",
        "resources:\n- deploy.yaml\npatches:\n- patch: |\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: web\n    spec:\n      template:\n        spec:\n          containers:\n          - name: app\n            image: nginx:9\n          - name: side\n            image: busybox\n- target:\n    kind: Deployment\n  patch: |\n    - op: add\n      path: /spec/replicas\n      value: 3\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("replicas: 3"), "{out}");
    assert!(out.contains("image: nginx:9"), "{out}");
    assert!(
        out.contains("- image: busybox\n        name: side"),
        "{out}"
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let fs = MemFs::new()
        .with("/a/d1.yaml", DEPLOY)
        .with("/a/d2.yaml", DEPLOY)
        .with(
            "/a/kustomization.yaml",
            "resources:\n- d1.yaml\n- d2.yaml\n",
        );
    let err = run(&fs, "/a").unwrap_err();
    assert!(
        err.contains("may not add resource with an already registered id"),
        "{err}"
    );
}

#[test]
fn files_outside_root_are_refused() {
    let fs = MemFs::new()
        .with("/x.yaml", DEPLOY)
        .with("/a/kustomization.yaml", "resources:\n- ../x.yaml\n");
    let err = run(&fs, "/a").unwrap_err();
    assert!(err.contains("is not in or below"), "{err}");
}

#[test]
fn components_and_legacy_order() {
    let fs = MemFs::new()
        .with("/a/deploy.yaml", DEPLOY)
        .with("/a/kustomization.yaml", "resources:\n- deploy.yaml\ncomponents:\n- ../comp\n")
        .with("/comp/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nconfigMapGenerator:\n- name: cfg\n  options:\n    disableNameSuffixHash: true\n  literals:\n  - A=1\n");
    let opts = BuildOptions {
        reorder: Reorder::Legacy,
        ..Default::default()
    };
    let out = build_to_string(&fs, Path::new("/a"), &opts).unwrap();
    assert!(
        out.starts_with("apiVersion: v1\ndata:\n  A: \"1\"\nkind: ConfigMap"),
        "{out}"
    );
}
