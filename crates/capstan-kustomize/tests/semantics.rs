//! Small in-memory cases for kustomize semantics fixed one by one.

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

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod\nspec:\n  containers:\n  - name: c\n    image: i\n    env:\n    - name: SELF\n      value: $(SELF)\n";

#[test]
fn kustomization_fields_are_case_insensitive() {
    let fs = MemFs::new().with("/a/pod.yaml", POD).with(
        "/a/kustomization.yaml",
        "nameprefix: p-\nresources:\n- pod.yaml\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("name: p-pod"), "{out}");
}

#[test]
fn vars_bind_per_level() {
    // The same base twice under different prefixes: the var is declared twice.
    let base = "resources:\n- pod.yaml\nvars:\n- name: SELF\n  objref:\n    apiVersion: v1\n    kind: Pod\n    name: pod\n";
    let fs = MemFs::new()
        .with("/base/pod.yaml", POD)
        .with("/base/kustomization.yaml", base)
        .with(
            "/o1/kustomization.yaml",
            "namePrefix: a-\nresources:\n- ../base\n",
        )
        .with(
            "/o2/kustomization.yaml",
            "namePrefix: b-\nresources:\n- ../base\n",
        )
        .with("/top/kustomization.yaml", "resources:\n- ../o1\n- ../o2\n");
    let err = run(&fs, "/top").unwrap_err();
    assert!(err.contains("var 'SELF' already encountered"), "{err}");
    // One level: the var follows the prefix.
    let out = run(&fs, "/o1").unwrap();
    assert!(out.contains("value: a-pod"), "{out}");
}

#[test]
fn vars_in_template_annotations_of_deployments() {
    let fs = MemFs::new()
        .with("/a/d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n")
        .with("/a/kustomization.yaml", "resources:\n- d.yaml\ncommonAnnotations:\n  who: $(NAME)\nvars:\n- name: NAME\n  objref:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: d\n");
    let out = run(&fs, "/a").unwrap();
    assert_eq!(out.matches("who: d").count(), 2, "{out}");
}

#[test]
fn patch_list_items_come_first() {
    let fs = MemFs::new()
        .with("/a/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod\nspec:\n  containers:\n  - name: c\n    env:\n    - name: A\n      value: a\n")
        .with("/a/p.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod\nspec:\n  containers:\n  - name: c\n    env:\n    - name: B\n      value: b\n")
        .with("/a/kustomization.yaml", "resources:\n- pod.yaml\npatches:\n- path: p.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains("- name: B\n      value: b\n    - name: A\n"),
        "{out}"
    );
}

#[test]
fn build_metadata_origin_and_transformer_annotations() {
    let fs = MemFs::new()
        .with("/base/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n")
        .with("/base/kustomization.yaml", "namePrefix: b-\nresources:\n- svc.yaml\n")
        .with("/top/kustomization.yaml", "resources:\n- ../base\nconfigMapGenerator:\n- name: cm\n  literals:\n  - a=b\nbuildMetadata: [originAnnotations, transformerAnnotations]\n");
    let out = run(&fs, "/top").unwrap();
    assert!(
        out.contains("config.kubernetes.io/origin: |\n      path: ../base/svc.yaml\n"),
        "{out}"
    );
    assert!(out.contains("alpha.config.kubernetes.io/transformations: |\n      - configuredIn: ../base/kustomization.yaml\n        configuredBy:\n          apiVersion: builtin\n          kind: PrefixTransformer\n"), "{out}");
    assert!(out.contains("config.kubernetes.io/origin: |\n      configuredIn: kustomization.yaml\n      configuredBy:\n        apiVersion: builtin\n        kind: ConfigMapGenerator\n"), "{out}");
    // Without buildMetadata nothing is added.
    let fs = fs.with("/top/kustomization.yaml", "resources:\n- ../base\n");
    assert!(!run(&fs, "/top").unwrap().contains("annotations"));
}

#[test]
fn generator_config_name_wins_over_metadata() {
    let fs = MemFs::new()
        .with("/a/g.yaml", "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: ignored\nname: bob\nliterals:\n- a=b\n")
        .with("/a/kustomization.yaml", "generators:\n- g.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("name: bob-"), "{out}");
}

#[test]
fn targeted_patch_keeps_gvkn_unless_allowed() {
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\n";
    let fs = MemFs::new().with("/a/r.yaml", dep).with(
        "/a/kustomization.yaml",
        "resources:\n- r.yaml\npatches:\n- target:\n    name: x\n  patch: |-\n    kind: StatefulSet\n    metadata:\n      name: other\n      annotations:\n        k: v\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains(
            "apiVersion: v1\nkind: Service\nmetadata:\n  annotations:\n    k: v\n  name: x\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("kind: Deployment\nmetadata:\n  annotations:\n    k: v\n  name: x\n"),
        "{out}"
    );
    let fs = fs.with(
        "/a/kustomization.yaml",
        "resources:\n- r.yaml\npatches:\n- target:\n    kind: Deployment\n  options:\n    allowNameChange: true\n    allowKindChange: true\n  patch: |-\n    kind: StatefulSet\n    metadata:\n      name: other\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains("kind: StatefulSet\nmetadata:\n  name: other\n"),
        "{out}"
    );
}

#[test]
fn labels_fields_from_configurations_and_claim_templates() {
    let fs = MemFs::new()
        .with("/a/cr.yaml", "apiVersion: x.io/v1\nkind: Thing\nmetadata:\n  name: t\n")
        .with("/a/sts.yaml", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  volumeClaimTemplates:\n  - metadata:\n      name: d\n")
        .with("/a/cfg.yaml", "labels:\n- path: spec/sel/labels\n  create: true\n  kind: Thing\n")
        .with("/a/kustomization.yaml", "configurations:\n- cfg.yaml\nresources:\n- cr.yaml\n- sts.yaml\nlabels:\n- pairs:\n    a: b\n  includeVolumeClaimTemplates: true\n");
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains("spec:\n  sel:\n    labels:\n      a: b\n"),
        "{out}"
    );
    assert!(
        out.contains("  - metadata:\n      labels:\n        a: b\n      name: d\n"),
        "{out}"
    );
}

#[test]
fn empty_configmap_hash_and_refs_across_prefix_and_suffix_levels() {
    let fs = MemFs::new()
        .with("/common/svc/d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        envFrom:\n        - configMapRef:\n            name: cm\n")
        .with("/common/svc/kustomization.yaml", "nameSuffix: -api\nresources:\n- d.yaml\n")
        .with("/common/kustomization.yaml", "resources:\n- svc\nconfigMapGenerator:\n- name: cm\n")
        .with("/a/kustomization.yaml", "namePrefix: a-\nresources:\n- ../common\n")
        .with("/b/kustomization.yaml", "namePrefix: b-\nresources:\n- ../common\n")
        .with("/kustomization.yaml", "resources:\n- a\n- b\n");
    let out = run(&fs, "/").unwrap();
    // kustomize hashes a ConfigMap without data as `"data":""`.
    assert!(out.contains("            name: a-cm-6ct58987ht\n"), "{out}");
    assert!(out.contains("            name: b-cm-6ct58987ht\n"), "{out}");
}

const CR: &str = "apiVersion: example.com/v1\nkind: Thing\nmetadata:\n  name: t\nspec:\n  items:\n  - name: a\n    x: 1\n";
const CR_PATCH: &str = "patches:\n- patch: |-\n    apiVersion: example.com/v1\n    kind: Thing\n    metadata:\n      name: t\n    spec:\n      items:\n      - name: a\n        z: 2\n";

#[test]
fn lists_of_unknown_kinds_are_replaced_unless_a_schema_gives_a_merge_key() {
    let fs = MemFs::new().with("/a/cr.yaml", CR).with(
        "/a/kustomization.yaml",
        format!("resources:\n- cr.yaml\n{CR_PATCH}"),
    );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("  items:\n  - name: a\n    z: 2\n"), "{out}");
    let schema = r##"{"definitions": {"thing": {"x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Thing"}],
      "properties": {"spec": {"properties": {"items": {"type": "array", "items": {"type": "object"},
        "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}}}}}}}"##;
    let fs = fs.with("/a/schema.json", schema).with(
        "/a/kustomization.yaml",
        format!("resources:\n- cr.yaml\nopenapi:\n  path: schema.json\n{CR_PATCH}"),
    );
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("  - name: a\n    x: 1\n    z: 2\n"), "{out}");
    let fs = fs.with(
        "/a/kustomization.yaml",
        "resources:\n- cr.yaml\nopenapi:\n  path: schema.json\n  version: v1.21.2\n",
    );
    let err = run(&fs, "/a").unwrap_err();
    assert!(err.contains("cannot use both"), "{err}");
}

#[test]
fn replacement_targets_match_intermediate_names_and_custom_namespace_kinds() {
    let deps = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: t\nspec:\n  replicas: 1\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: s\nspec:\n  replicas: 5\n";
    let fs = MemFs::new()
        .with("/base/d.yaml", deps)
        .with("/base/kustomization.yaml", "namePrefix: p1-\nresources:\n- d.yaml\n")
        .with("/kustomization.yaml", "namePrefix: p2-\nresources:\n- base\nreplacements:\n- source:\n    name: s\n    fieldPath: spec.replicas\n  targets:\n  - select:\n      name: p1-t\n    fieldPaths:\n    - spec.replicas\n");
    let out = run(&fs, "/").unwrap();
    assert!(
        out.contains("name: p2-p1-t\nspec:\n  replicas: 5\n"),
        "{out}"
    );
    let fs = MemFs::new()
        .with(
            "/a/ns.yaml",
            "apiVersion: x.example.com/v1\nkind: Namespace\nmetadata:\n  name: n\n",
        )
        .with(
            "/a/kustomization.yaml",
            "namespace: prod\nresources:\n- ns.yaml\n",
        );
    assert!(run(&fs, "/a").unwrap().contains("namespace: prod"));
}

#[test]
fn namespace_transformer_renames_core_namespaces_and_fixes_references() {
    let fs = MemFs::new()
        .with("/a/r.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: old\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  ns: old\n")
        .with("/a/cfg.yaml", "nameReference:\n- kind: Namespace\n  fieldSpecs:\n  - path: data/ns\n    kind: ConfigMap\n")
        .with("/a/kustomization.yaml", "namespace: new\nconfigurations:\n- cfg.yaml\nresources:\n- r.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.starts_with("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: new\n"),
        "{out}"
    );
    assert!(out.contains("  ns: new\n"), "{out}");
}

#[test]
fn components_see_the_parents_generated_resources() {
    let fs = MemFs::new()
        .with("/c/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnameSuffix: -s\n")
        .with("/a/kustomization.yaml", "components:\n- ../c\nconfigMapGenerator:\n- name: g\n  options:\n    disableNameSuffixHash: true\n");
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("name: g-s\n"), "{out}");
}

#[test]
fn blank_subject_namespace_is_an_error() {
    let fs = MemFs::new()
        .with("/a/r.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\nsubjects:\n- kind: ServiceAccount\n  name: sa\n  namespace:\nroleRef:\n  kind: Role\n  name: r\n  apiGroup: rbac.authorization.k8s.io\n")
        .with("/a/kustomization.yaml", "resources:\n- r.yaml\n");
    let err = run(&fs, "/a").unwrap_err();
    assert!(err.contains("namespace is blank"), "{err}");
}

#[test]
fn mapping_references_prefer_renamed_resources_by_original_namespace() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: base\n";
    let hook = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: hook\nwebhooks:\n- name: v\n  clientConfig:\n    service:\n      name: svc\n      namespace: base\n";
    let fs = MemFs::new()
        .with("/base/svc.yaml", svc)
        .with("/base/hook.yaml", hook)
        .with("/base/kustomization.yaml", "resources:\n- svc.yaml\n- hook.yaml\n")
        .with("/over/del.yaml", "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: hook\n$patch: delete\n")
        .with("/over/kustomization.yaml", "namespace: other\nresources:\n- ../base\npatchesStrategicMerge:\n- del.yaml\n")
        .with("/top/kustomization.yaml", "resources:\n- ../base\n- ../over\n");
    let out = run(&fs, "/top").unwrap();
    assert!(
        out.contains("      name: svc\n      namespace: other\n"),
        "{out}"
    );
}

#[test]
fn resource_error_wording() {
    let fs = MemFs::new()
        .with(
            "/base/r.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n",
        )
        .with("/root/kustomization.yaml", "resources:\n- ../base/r.yaml\n");
    let err = run(&fs, "/root").unwrap_err();
    assert!(err.contains("is not in or below '/root'': must build at directory: '/base/r.yaml': file is not directory"), "{err}");
    let fs = fs.with(
        "/root/kustomization.yaml",
        "resources:\n- pkg@v1.2.example/configs/base\n",
    );
    let err = run(&fs, "/root").unwrap_err();
    assert!(
        err.contains("': failed to run '/usr/bin/git fetch --depth=1 "),
        "{err}"
    );
}

#[test]
fn iam_policy_generator() {
    let fs = MemFs::new().with(
        "/a/kustomization.yaml",
        "generators:\n- |-\n  apiVersion: builtin\n  kind: IAMPolicyGenerator\n  metadata:\n    name: g\n  cloud: gke\n  kubernetesService:\n    name: ksa\n  serviceAccount:\n    name: gsa\n    projectId: p\n",
    );
    let out = run(&fs, "/a").unwrap();
    assert_eq!(out, "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  annotations:\n    iam.gke.io/gcp-service-account: gsa@p.iam.gserviceaccount.com\n  name: ksa\n");
}

#[test]
fn configurations_narrow_builtin_field_specs_and_local_configs_are_dropped() {
    let fs = MemFs::new()
        .with("/a/r.yaml", "apiVersion: local/v1\nkind: Host\nmetadata:\n  name: h\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  host: h\n")
        .with("/a/cfg.yaml", "namePrefix:\n- path: metadata/name\n  kind: Host\nnameReference:\n- kind: Host\n  fieldSpecs:\n  - path: data/host\n    kind: ConfigMap\n")
        .with("/a/kustomization.yaml", "namePrefix: p-\nconfigurations:\n- cfg.yaml\nresources:\n- r.yaml\n");
    let out = run(&fs, "/a").unwrap();
    assert_eq!(
        out,
        "apiVersion: v1\ndata:\n  host: p-h\nkind: ConfigMap\nmetadata:\n  name: cm\n"
    );
}

#[test]
fn output_keys_in_go_yaml_v2_order() {
    let fs = MemFs::new()
        .with("/a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\ndata:\n  A_FIRST: foo\n")
        .with("/a/kustomization.yaml", "resources:\n- cm.yaml\nconfigMapGenerator:\n- name: p\n  behavior: merge\n  literals:\n  - ANOTHER=bar\n");
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.starts_with("apiVersion: v1\ndata:\n  A_FIRST: foo\n  ANOTHER: bar\n"),
        "{out}"
    );
}

#[test]
fn managed_by_label() {
    let fs = MemFs::new()
        .with(
            "/a/s.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n",
        )
        .with(
            "/a/kustomization.yaml",
            "resources:\n- s.yaml\nbuildMetadata: [managedByLabel]\n",
        );
    let out = run(&fs, "/a").unwrap();
    assert!(
        out.contains(&format!(
            "labels:\n    app.kubernetes.io/managed-by: {}\n",
            capstan_kustomize::MANAGED_BY
        )),
        "{out}"
    );
}

#[test]
fn transformer_annotations_include_transformers_field() {
    let fs = MemFs::new()
        .with("/a/s.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n")
        .with("/a/t.yaml", "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata:\n  name: ps\nprefix: x-\nfieldSpecs:\n- path: metadata/name\n")
        .with("/a/kustomization.yaml", "resources:\n- s.yaml\ntransformers:\n- t.yaml\nbuildMetadata: [transformerAnnotations]\n");
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("      - configuredIn: t.yaml\n        configuredBy:\n          apiVersion: builtin\n          kind: PrefixSuffixTransformer\n          name: ps\n"), "{out}");
    assert!(out.contains("name: x-s\n"), "{out}");
}

#[test]
fn common_labels_run_after_label_entries() {
    let fs = MemFs::new()
        .with("/a/s.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n")
        .with("/a/kustomization.yaml", "resources:\n- s.yaml\nlabels:\n- pairs:\n    k: from-labels\ncommonLabels:\n  k: from-common\n");
    let out = run(&fs, "/a").unwrap();
    assert!(out.contains("k: from-common"), "{out}");
}

#[test]
fn missing_openapi_schema_names_field_and_paths() {
    let fs = MemFs::new().with(
        "/app/overlay/kustomization.yaml",
        "openapi:\n  path: schemas/crd.json\n",
    );
    let err = run(&fs, "/app/overlay").unwrap_err();
    assert!(err.contains("openapi.path"), "{err}");
    assert!(err.contains("/app/overlay/kustomization.yaml"), "{err}");
    // kustomize's phrase, the path from the kustomization root, and the full path.
    assert!(err.contains("'/schemas/crd.json' doesn't exist"), "{err}");
    assert!(err.contains("'/app/overlay/schemas/crd.json'"), "{err}");
}
