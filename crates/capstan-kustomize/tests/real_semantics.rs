//! In-memory cases for kustomize rules seen in real repositories (one rule per test).

use std::path::Path;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};
use capstan_vfs::MemFs;

fn run_with(fs: &MemFs, root: &str, reorder: Reorder) -> Result<String, String> {
    let opts = BuildOptions {
        reorder,
        ..Default::default()
    };
    build_to_string(fs, Path::new(root), &opts).map_err(|e| e.to_string())
}

fn run(fs: &MemFs, root: &str) -> Result<String, String> {
    run_with(fs, root, Reorder::None)
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n";

#[test]
fn component_as_build_root_is_built_like_a_kustomization() {
    let fs = MemFs::new().with("/c/cm.yaml", CM).with(
        "/c/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamePrefix: p-\nresources:\n- cm.yaml\n",
    );
    let out = run(&fs, "/c").unwrap();
    assert!(out.contains("name: p-cm"), "{out}");
}

#[test]
fn component_under_resources_is_an_error() {
    let fs = MemFs::new()
        .with("/c/cm.yaml", CM)
        .with(
            "/c/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- cm.yaml\n",
        )
        .with("/top/kustomization.yaml", "resources:\n- ../c\n");
    let err = run(&fs, "/top").unwrap_err();
    assert!(err.contains("expected kind != 'Component'"), "{err}");
}
