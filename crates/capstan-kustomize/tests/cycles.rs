//! Cycles between kustomizations, as kustomize's loader finds them (`errIfArgEqualOrHigher`):
//! a directory that is, or contains, one being built is refused, for resources and
//! components alike — an error, never a stack overflow.

use std::path::Path;

use capstan_kustomize::{build_to_string, BuildOptions};
use capstan_vfs::MemFs;

const COMPONENT: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n";

fn err(fs: &MemFs, root: &str) -> String {
    build_to_string(fs, Path::new(root), &BuildOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn components_including_each_other_are_a_cycle() {
    let fs = MemFs::new()
        .with("/app/kustomization.yaml", "components:\n- ../c1\n")
        .with(
            "/c1/kustomization.yaml",
            format!("{COMPONENT}components:\n- ../c2\n"),
        )
        .with(
            "/c2/kustomization.yaml",
            format!("{COMPONENT}components:\n- ../c1\n"),
        );
    let e = err(&fs, "/app");
    assert!(
        e.contains("cycle detected: candidate root '/c1' contains visited root '/c1'"),
        "{e}"
    );
}

#[test]
fn a_component_including_itself_is_a_cycle() {
    let fs = MemFs::new()
        .with("/app/kustomization.yaml", "components:\n- ../c\n")
        .with(
            "/c/kustomization.yaml",
            format!("{COMPONENT}components:\n- .\n"),
        );
    let e = err(&fs, "/app");
    assert!(e.contains("cycle detected"), "{e}");
}

#[test]
fn resources_in_a_ring_are_a_cycle() {
    let fs = MemFs::new()
        .with("/a/kustomization.yaml", "resources:\n- ../b\n")
        .with("/b/kustomization.yaml", "resources:\n- ../a\n");
    let e = err(&fs, "/a");
    assert!(
        e.contains("cycle detected: candidate root '/a' contains visited root '/a'"),
        "{e}"
    );
}

#[test]
fn a_resource_above_the_kustomization_is_a_cycle() {
    let fs = MemFs::new()
        .with("/top/kustomization.yaml", "resources:\n- sub\n")
        .with("/top/sub/kustomization.yaml", "resources:\n- ..\n");
    let e = err(&fs, "/top");
    assert!(
        e.contains("cycle detected: candidate root '/top' contains visited root '/top/sub'"),
        "{e}"
    );
}
