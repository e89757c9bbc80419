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

#[test]
fn replacement_target_path_with_bracketed_annotation_key() {
    let fs = MemFs::new()
        .with("/a/cm.yaml", CM)
        .with(
            "/a/svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n    cert-manager.io/inject-ca-from: X\n",
        )
        .with(
            "/a/kustomization.yaml",
            "resources:\n- cm.yaml\n- svc.yaml\nreplacements:\n- source:\n    kind: ConfigMap\n    name: cm\n    fieldPath: data.a\n  targets:\n  - select:\n      kind: Service\n    fieldPaths:\n    - metadata.annotations.[cert-manager.io/inject-ca-from]\n",
        );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("cert-manager.io/inject-ca-from: b"), "{out}");
}

#[test]
fn replacement_source_not_found_names_the_selector() {
    let fs = MemFs::new().with("/a/cm.yaml", CM).with(
        "/a/kustomization.yaml",
        "resources:\n- cm.yaml\nreplacements:\n- source:\n    version: v1\n    kind: ConfigMap\n    name: other\n    fieldPath: data.a\n  targets:\n  - select:\n      kind: ConfigMap\n    fieldPaths:\n    - data.b\n",
    );
    let err = run(&fs, "/a").unwrap_err();
    assert!(
        err.contains("nothing selected by ConfigMap.v1.[noGrp]/other.[noNs]:data.a"),
        "{err}"
    );
}

#[test]
fn vars_fieldref_field_path_in_camel_case() {
    let fs = MemFs::new()
        .with(
            "/a/pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: i\n    args: [$(IMG)]\n",
        )
        .with(
            "/a/kustomization.yaml",
            "resources:\n- pod.yaml\nvars:\n- name: IMG\n  objRef:\n    apiVersion: v1\n    kind: Pod\n    name: p\n  fieldRef:\n    fieldPath: spec.containers[0].image\n",
        );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("- i\n"), "{out}");
}

const SA_CRB: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: crb\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cr\nsubjects:\n- kind: ServiceAccount\n  name: sa\n";

#[test]
fn binding_subject_gets_the_namespace_of_the_service_account_it_resolves_to() {
    let fs = MemFs::new()
        .with(
            "/a/sa.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n",
        )
        .with("/a/crb.yaml", SA_CRB)
        .with(
            "/a/kustomization.yaml",
            "namespace: ns1\nnamePrefix: p-\nresources:\n- sa.yaml\n- crb.yaml\n",
        );
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains("- kind: ServiceAccount\n  name: p-sa\n  namespace: ns1\n"),
        "{out}"
    );
}

#[test]
fn namespace_transformer_makes_unrenamed_service_account_a_referral() {
    // The ServiceAccount already has the namespace: kustomize still stores its id as a
    // previous one, so the subject resolves to it and takes its namespace.
    let fs = MemFs::new()
        .with(
            "/a/sa.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: ns1\n",
        )
        .with("/a/crb.yaml", SA_CRB)
        .with(
            "/a/kustomization.yaml",
            "namespace: ns1\nresources:\n- sa.yaml\n- crb.yaml\n",
        );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("  name: sa\n  namespace: ns1\n"), "{out}");
}

#[test]
fn subject_of_untransformed_service_account_is_left_alone() {
    let fs = MemFs::new()
        .with(
            "/a/sa.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: ns1\n",
        )
        .with("/a/crb.yaml", SA_CRB)
        .with(
            "/a/kustomization.yaml",
            "resources:\n- sa.yaml\n- crb.yaml\n",
        );
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.ends_with("- kind: ServiceAccount\n  name: sa\n"),
        "{out}"
    );
}

#[test]
fn empty_or_null_annotations_are_removed_at_the_end_of_a_build() {
    let fs = MemFs::new()
        .with(
            "/a/a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n  labels: {}\n",
        )
        .with("/a/kustomization.yaml", "resources:\n- a.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(!out.contains("annotations"), "{out}");
    assert!(out.contains("labels: {}"), "{out}");
}

#[test]
fn annotation_values_become_strings() {
    let fs = MemFs::new()
        .with(
            "/a/a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    num: 1\n    b: true\n    s: x\n",
        )
        .with("/a/kustomization.yaml", "resources:\n- a.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains("    b: \"true\"\n    num: \"1\"\n    s: x\n"),
        "{out}"
    );
}

#[test]
fn strategic_merge_patch_drops_null_fields_of_the_target_maps() {
    let fs = MemFs::new()
        .with(
            "/a/d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  creationTimestamp: null\nspec:\n  selector:\n    matchLabels:\n  template:\n    spec:\n      affinity:\n        nodeAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n",
        )
        .with(
            "/a/p.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 2\n",
        )
        .with("/a/kustomization.yaml", "resources:\n- d.yaml\npatches:\n- path: p.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("  selector: {}\n"), "{out}");
    assert!(out.contains("        nodeAffinity: {}\n"), "{out}");
    // An explicit null is kept.
    assert!(out.contains("  creationTimestamp: null\n"), "{out}");
}

#[test]
fn null_fields_of_unpatched_resources_are_kept() {
    let fs = MemFs::new()
        .with(
            "/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nbinaryData:\n",
        )
        .with("/a/kustomization.yaml", "resources:\n- cm.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("binaryData: null\n"), "{out}");
}

#[test]
fn secret_generator_without_sources_has_empty_data() {
    let fs = MemFs::new().with(
        "/a/kustomization.yaml",
        "secretGenerator:\n- name: s\n  options:\n    disableNameSuffixHash: true\nconfigMapGenerator:\n- name: c\n  options:\n    disableNameSuffixHash: true\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains("apiVersion: v1\ndata: {}\nkind: Secret\n"),
        "{out}"
    );
    assert!(out.contains("apiVersion: v1\nkind: ConfigMap\n"), "{out}");
}

#[test]
fn json6902_replace_of_a_missing_object_key_sets_it() {
    let fs = MemFs::new().with("/a/cm.yaml", CM).with(
        "/a/kustomization.yaml",
        "resources:\n- cm.yaml\npatches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: replace\n      path: /data/new\n      value: x\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("  new: x\n"), "{out}");
}

#[test]
fn json6902_replace_under_a_missing_parent_is_an_error() {
    let fs = MemFs::new().with("/a/cm.yaml", CM).with(
        "/a/kustomization.yaml",
        "resources:\n- cm.yaml\npatches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: replace\n      path: /nope/new\n      value: x\n",
    );
    let err = run(&fs, "/a").unwrap_err();
    assert!(err.contains("doc is missing path"), "{err}");
}

#[test]
fn one_kind_and_name_under_two_api_versions_are_two_resources() {
    let fs = MemFs::new()
        .with(
            "/a/r.yaml",
            "apiVersion: example.com/v1alpha1\nkind: Thing\nmetadata:\n  name: t\n---\napiVersion: example.com/v1beta1\nkind: Thing\nmetadata:\n  name: t\n",
        )
        .with("/a/kustomization.yaml", "resources:\n- r.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert_eq!(out.matches("kind: Thing").count(), 2, "{out}");
}
