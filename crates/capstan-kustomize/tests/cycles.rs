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

/// kustomize's strict decoding of the kustomization file and kyaml's metadata checks.
mod validation {
    use super::*;

    fn err_of(kustomization: &str) -> String {
        let fs = MemFs::new()
            .with("/k/kustomization.yaml", kustomization)
            .with(
                "/k/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n",
            );
        err(&fs, "/k")
    }

    #[test]
    fn an_unknown_field_is_an_error() {
        let e = err_of("resourcez:\n- cm.yaml\n");
        assert!(
            e.contains("invalid Kustomization: json: unknown field \"resourcez\""),
            "{e}"
        );
    }

    #[test]
    fn field_names_match_case_insensitively() {
        let fs = MemFs::new()
            .with("/k/kustomization.yaml", "Resources:\n- cm.yaml\n")
            .with(
                "/k/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
            );
        build_to_string(&fs, Path::new("/k"), &BuildOptions::default()).unwrap();
    }

    #[test]
    fn string_lists_hold_strings() {
        let e = err_of("resources:\n- {a: b}\n");
        assert!(
            e.contains("json: cannot unmarshal object into Go struct field Kustomization.resources of type string"),
            "{e}"
        );
        let e = err_of("components: x\n");
        assert!(
            e.contains("Kustomization.components of type []string"),
            "{e}"
        );
        let e = err_of("patchesStrategicMerge:\n- 1\n");
        assert!(
            e.contains("cannot unmarshal number into Go struct field Kustomization.patchesStrategicMerge of type types.PatchStrategicMerge"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_kustomization_is_an_error() {
        for text in ["", "\n  \n", "# only a comment\n"] {
            let e = err_of(text);
            assert!(e.contains("kustomization.yaml is empty"), "{text:?}: {e}");
        }
    }

    #[test]
    fn an_object_without_a_name_is_an_error() {
        let e = err_of("resources:\n- cm.yaml\n");
        assert!(
            e.contains("missing metadata.name in object {{v1 ConfigMap} {{ } map[] map[]}}"),
            "{e}"
        );
    }
}
