//! Name references and ordering rules checked against kustomize v5.5.

use std::path::Path;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};
use capstan_vfs::MemFs;

fn build(fs: &MemFs, reorder: Reorder) -> Result<String, String> {
    let opts = BuildOptions {
        reorder,
        ..Default::default()
    };
    build_to_string(fs, Path::new("/k"), &opts).map_err(|e| e.to_string())
}

/// ValidatingAdmissionPolicyBinding `spec.policyName` follows its policy's new name.
#[test]
fn admission_policy_binding_policy_name_follows_the_prefix() {
    let fs = MemFs::new()
        .with("/k/kustomization.yaml", "namePrefix: p-\nresources:\n- r.yaml\n")
        .with(
            "/k/r.yaml",
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: pol\nspec: {}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: b\nspec:\n  policyName: pol\n",
        );
    let out = build(&fs, Reorder::Unspecified).unwrap();
    assert!(out.contains("  policyName: p-pol\n"), "{out}");
}

/// A ClusterRoleBinding subject naming a ServiceAccount that exists in two namespaces is
/// ambiguous: kustomize names both candidates.
#[test]
fn an_ambiguous_service_account_subject_is_an_error() {
    let fs = MemFs::new()
        .with("/k/kustomization.yaml", "namePrefix: p-\nresources:\n- r.yaml\n")
        .with(
            "/k/r.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: a\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: b\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: rb\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: r\nsubjects:\n- kind: ServiceAccount\n  name: sa\n",
        );
    let e = build(&fs, Reorder::Unspecified).unwrap_err();
    assert!(
        e.contains("found multiple possible referrals: ServiceAccount.v1.[noGrp]/p-sa.a, ServiceAccount.v1.[noGrp]/p-sa.b"),
        "{e}"
    );
}

/// `sortOptions` in the kustomization wins over `--reorder` on the command line.
#[test]
fn sort_options_win_over_the_reorder_flag() {
    let fs = MemFs::new()
        .with("/k/kustomization.yaml", "sortOptions:\n  order: fifo\nresources:\n- r.yaml\n")
        .with(
            "/k/r.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n",
        );
    for reorder in [Reorder::Legacy, Reorder::Unspecified, Reorder::None] {
        let out = build(&fs, reorder).unwrap();
        assert!(
            out.find("kind: Service").unwrap() < out.find("kind: Namespace").unwrap(),
            "{reorder:?}: {out}"
        );
    }
}

/// Generated ConfigMaps collide when their namespaces are the same once none is read as
/// `default` (kustomize's ResId.Equals); other namespaces do not collide.
#[test]
fn generator_collisions_compare_effective_namespaces() {
    let fs = MemFs::new().with(
        "/k/kustomization.yaml",
        "configMapGenerator:\n- name: c\n  literals: [a=b]\n- name: c\n  namespace: other\n  literals: [a=c]\n",
    );
    let out = build(&fs, Reorder::Unspecified).unwrap();
    assert_eq!(out.matches("kind: ConfigMap").count(), 2, "{out}");
    let fs = MemFs::new().with(
        "/k/kustomization.yaml",
        "configMapGenerator:\n- name: d\n  namespace: default\n  literals: [a=b]\n- name: d\n  literals: [a=d]\n",
    );
    let e = build(&fs, Reorder::Unspecified).unwrap_err();
    assert!(
        e.contains("exists; behavior must be merge or replace"),
        "{e}"
    );
}
