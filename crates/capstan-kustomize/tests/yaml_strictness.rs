//! Which kustomize inputs refuse duplicate mapping keys (read with go-yaml v3, as kyaml
//! reads resources and strategic merge patches) and which let the last one win (read with
//! sigs.k8s.io/yaml: the kustomization file, JSON patches, replacement files), and
//! block scalars at the end of a file.

use std::path::Path;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};
use capstan_vfs::MemFs;

fn run(fs: &MemFs, root: &str) -> Result<String, String> {
    let opts = BuildOptions {
        reorder: Reorder::None,
        ..Default::default()
    };
    build_to_string(fs, Path::new(root), &opts).map_err(|e| e.to_string())
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n";

#[test]
fn resource_with_duplicate_key_is_an_error_naming_the_file() {
    let fs = MemFs::new()
        .with("/k/kustomization.yaml", "resources:\n- two.yaml\n")
        .with(
            "/k/two.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n",
        );
    let e = run(&fs, "/k").unwrap_err();
    assert!(e.contains("two.yaml"), "{e}");
    assert!(
        e.contains("line 5, column 1: mapping key \"apiVersion\" already defined at line 1"),
        "{e}"
    );
}

#[test]
fn kustomization_file_duplicate_key_last_wins() {
    let fs = MemFs::new().with("/k/cm.yaml", CM).with(
        "/k/kustomization.yaml",
        "resources:\n- cm.yaml\nnamePrefix: a-\nnamePrefix: b-\n",
    );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("name: b-x"), "{out}");
}

#[test]
fn strategic_merge_patch_duplicate_key_is_an_error_naming_the_patch() {
    let fs = MemFs::new()
        .with("/k/cm.yaml", CM)
        .with(
            "/k/kustomization.yaml",
            "resources:\n- cm.yaml\npatches:\n- path: p.yaml\n",
        )
        .with(
            "/k/p.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"2\"\n  a: \"3\"\n",
        );
    let e = run(&fs, "/k").unwrap_err();
    assert!(e.contains("p.yaml"), "{e}");
    assert!(
        e.contains("mapping key \"a\" already defined at line 6"),
        "{e}"
    );
}

#[test]
fn json_patch_duplicate_key_last_wins() {
    let fs = MemFs::new()
        .with("/k/cm.yaml", CM)
        .with(
            "/k/kustomization.yaml",
            "resources:\n- cm.yaml\npatches:\n- path: p.yaml\n  target:\n    kind: ConfigMap\n",
        )
        .with(
            "/k/p.yaml",
            "- op: replace\n  path: /data/a\n  value: \"2\"\n  value: \"3\"\n",
        );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("a: \"3\""), "{out}");
}

/// A literal block scalar ending the file without a line break keeps no final break,
/// and is written back with `|-` as go-yaml does.
#[test]
fn block_scalar_at_end_of_resource_file() {
    let fs = MemFs::new()
        .with("/k/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with(
            "/k/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: |\n    hello\n    world",
        );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  a: |-\n    hello\n    world\n"), "{out}");
}
