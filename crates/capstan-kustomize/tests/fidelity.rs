//! In-memory cases for kustomize v5.5 rules on less-used features, each checked by hand
//! against `kubectl kustomize` (kustomize v5.5). One rule per test.

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

const SRC: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\ndata:\n  empty: \"\"\n  num: \"3\"\n  word: abc\n";

fn deployment(spec: &str) -> String {
    format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n{spec}")
}

fn replacement(field: &str, paths: &[&str], create: bool) -> String {
    let mut s = format!(
        "- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.{field}\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n"
    );
    for p in paths {
        s.push_str(&format!("    - {p}\n"));
    }
    if create {
        s.push_str("    options:\n      create: true\n");
    }
    s
}

fn replacements_fs(spec: &str, reps: &[String]) -> MemFs {
    MemFs::new()
        .with("/k/src.yaml", SRC)
        .with("/k/d.yaml", deployment(spec))
        .with(
            "/k/kustomization.yaml",
            format!(
                "resources:\n- src.yaml\n- d.yaml\nreplacements:\n{}",
                reps.concat()
            ),
        )
}

#[test]
fn replacement_create_of_empty_source_value_writes_null() {
    // kyaml creates an untagged scalar; an empty untagged scalar reads back as null.
    let fs = replacements_fs(
        "  template:\n    spec: {}\n",
        &[replacement(
            "empty",
            &["spec.template.metadata.annotations.e"],
            true,
        )],
    );
    let out = run(&fs, "/k").unwrap();
    assert!(
        out.contains("      annotations:\n        e: null\n"),
        "{out}"
    );
}

#[test]
fn replacement_create_reads_the_type_of_the_created_value_from_its_text() {
    let fs = replacements_fs(
        "  replicas: 1\n",
        &[replacement(
            "num",
            &["metadata.labels.num", "spec.new"],
            true,
        )],
    );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("    num: 3\n"), "{out}");
    assert!(out.contains("  new: 3\n"), "{out}");
}

#[test]
fn replacement_into_existing_scalar_keeps_the_target_type() {
    // replicas stays a number, a string arg stays a string.
    let fs = replacements_fs(
        "  replicas: 1\n  minReadySeconds: 5\n  args:\n  - a\n",
        &[replacement("num", &["spec.replicas", "spec.args.0"], false)],
    );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  replicas: 3\n"), "{out}");
    assert!(out.contains("  - \"3\"\n"), "{out}");
}

#[test]
fn replacement_of_a_number_by_a_word_is_an_error() {
    let fs = replacements_fs(
        "  replicas: 1\n",
        &[replacement("word", &["spec.replicas"], false)],
    );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("cannot decode !!str `abc` as a !!int"),
        "{err}"
    );
}

#[test]
fn replacement_of_a_scalar_by_a_map_writes_an_empty_string() {
    let fs = MemFs::new()
        .with(
            "/k/src.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\ndata:\n  m:\n    a: b\n",
        )
        .with("/k/d.yaml", deployment("  s: hello\n"))
        .with(
            "/k/kustomization.yaml",
            format!(
                "resources:\n- src.yaml\n- d.yaml\nreplacements:\n{}",
                replacement("m", &["spec.s"], false)
            ),
        );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  s: \"\"\n"), "{out}");
}

#[test]
fn replacement_list_matcher_in_target_path_is_an_unanchored_regex() {
    let fs = replacements_fs(
        "  containers:\n  - name: app\n    image: x\n  - name: app-sidecar\n    image: y\n  - name: other\n    image: z\n",
        &[replacement("word", &["spec.containers.[name=app].image"], false)],
    );
    let out = run(&fs, "/k").unwrap();
    assert_eq!(out.matches("image: abc").count(), 2, "{out}");
    assert!(out.contains("image: z"), "{out}");
}

#[test]
fn replacement_wildcard_target_on_a_map_is_an_error() {
    let fs = replacements_fs(
        "  m:\n    k: v\n",
        &[replacement("word", &["spec.*"], false)],
    );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("unable to find field \"spec.*\" in replacement target")
            && err.contains("expected SequenceNode but got MappingNode"),
        "{err}"
    );
}

#[test]
fn replacement_create_appends_at_index_equal_to_length() {
    let fs = replacements_fs(
        "  args:\n  - a\n",
        &[replacement("word", &["spec.args.1"], true)],
    );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  - a\n  - abc\n"), "{out}");
}

#[test]
fn replacement_index_past_the_end_is_an_error_even_with_create() {
    let fs = replacements_fs(
        "  args:\n  - a\n",
        &[replacement("word", &["spec.args.5"], true)],
    );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("unable to find or create field \"spec.args.5\" in replacement target")
            && err.contains("index 5 specified but only 1 elements found"),
        "{err}"
    );
}

#[test]
fn replacement_create_under_a_null_map_changes_nothing() {
    // kyaml appends the new field to the null node's content, which is never printed.
    let fs = replacements_fs("  m: null\n", &[replacement("word", &["spec.m.a.b"], true)]);
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  m: null\n"), "{out}");
}

#[test]
fn replacement_create_under_null_metadata_annotations_creates_the_annotation() {
    let fs = MemFs::new()
        .with("/k/src.yaml", SRC)
        .with(
            "/k/d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  annotations:\n",
        )
        .with(
            "/k/kustomization.yaml",
            format!(
                "resources:\n- src.yaml\n- d.yaml\nreplacements:\n{}",
                replacement("word", &["metadata.annotations.x"], true)
            ),
        );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  annotations:\n    x: abc\n"), "{out}");
}

#[test]
fn replacement_target_without_field_paths_sets_metadata_name() {
    let fs = MemFs::new()
        .with("/k/src.yaml", SRC)
        .with("/k/d.yaml", deployment("  replicas: 1\n"))
        .with(
            "/k/kustomization.yaml",
            "resources:\n- src.yaml\n- d.yaml\nreplacements:\n- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.word\n  targets:\n  - select:\n      kind: Deployment\n",
        );
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  name: abc\n"), "{out}");
}

#[test]
fn replacement_delimiter_on_a_map_target_is_an_error() {
    let fs = MemFs::new()
        .with("/k/src.yaml", SRC)
        .with("/k/d.yaml", deployment("  m:\n    k: v\n"))
        .with(
            "/k/kustomization.yaml",
            "resources:\n- src.yaml\n- d.yaml\nreplacements:\n- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.word\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.m\n    options:\n      delimiter: '-'\n",
        );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("delimiter option can only be used with scalar nodes"),
        "{err}"
    );
}

fn helm_repo(entry: &str) -> MemFs {
    MemFs::new()
        .with(
            "/app/kustomization.yaml",
            format!("helmCharts:\n- name: web\n{entry}"),
        )
        .with(
            "/app/charts/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        )
        .with("/app/charts/web/values.yaml", "")
        .with(
            "/app/charts/web/templates/svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n",
        )
}

fn run_helm(fs: &MemFs) -> Result<String, String> {
    let opts = BuildOptions {
        enable_helm: true,
        ..Default::default()
    };
    build_to_string(fs, Path::new("/app"), &opts).map_err(|e| e.to_string())
}

#[test]
fn helm_chart_name_template_names_the_release() {
    let fs = helm_repo("  nameTemplate: '{{ \"Web\" | lower }}-{{ add 1 2 }}'\n");
    let out = run_helm(&fs).unwrap();
    assert!(out.contains("name: web-3\n"), "{out}");
}

#[test]
fn helm_chart_name_template_with_release_name_is_an_error() {
    let fs = helm_repo("  releaseName: r\n  nameTemplate: x\n");
    let err = run_helm(&fs).unwrap_err();
    assert!(
        err.contains("cannot set --name-template and also specify a name"),
        "{err}"
    );
}

#[test]
fn helm_chart_without_release_name_is_release_name() {
    let out = run_helm(&helm_repo("")).unwrap();
    assert!(out.contains("name: release-name\n"), "{out}");
}

#[test]
fn helm_chart_unknown_field_is_an_error() {
    let err = run_helm(&helm_repo("  nameTemplat: x\n")).unwrap_err();
    assert!(err.contains("json: unknown field \"nameTemplat\""), "{err}");
}

#[test]
fn helm_chart_digest_needs_an_oci_repo() {
    let err = run_helm(&helm_repo("  digest: sha256:0123\n")).unwrap_err();
    assert!(
        err.contains("digest is only supported for OCI repos"),
        "{err}"
    );
}

#[test]
fn helm_chart_with_version_and_repo_lives_in_a_versioned_directory() {
    // {chartHome}/{name}-{version}/{name}; the unversioned copy is not used.
    let fs = helm_repo("  version: 0.1.0\n  repo: https://charts.example.com\n");
    let err = run_helm(&fs).unwrap_err();
    assert!(err.contains("/app/charts/web-0.1.0/web"), "{err}");
    let fs = helm_repo("  version: 0.1.0\n")
        .with(
            "/app/charts/web-0.1.0/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        )
        .with(
            "/app/charts/web-0.1.0/web/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: versioned\n",
        );
    // Without a repo, the version does not choose the directory.
    let out = run_helm(&fs).unwrap();
    assert!(out.contains("kind: Service"), "{out}");
}

const MY_KIND_OPENAPI: &str = r#"{
  "example.com/v1.MyKind": {"Schema": {"properties": {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {},
    "spec": {"$ref": "example.com/v1.MyKindSpec"}}}},
  "example.com/v1.MyKindSpec": {"Schema": {"properties": {
    "secretRef": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "Secret"},
    "cmRef": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "ConfigMap",
              "x-kubernetes-object-ref-name-key": "cmName"},
    "selectors": {"x-kubernetes-label-selector": ""},
    "annos": {"x-kubernetes-annotation": ""},
    "ident": {"x-kubernetes-identity": ""}}}}
}"#;

fn crds_fs(kustomization: &str) -> MemFs {
    MemFs::new()
        .with("/k/mycrd.json", MY_KIND_OPENAPI)
        .with(
            "/k/res.yaml",
            "apiVersion: example.com/v1\nkind: MyKind\nmetadata:\n  name: mk\nspec:\n  secretRef:\n    name: sec\n  cmRef:\n    cmName: cm\n  selectors:\n    a: b\n  annos:\n    x: y\n  ident: idv\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: sec\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
        )
        .with("/k/kustomization.yaml", kustomization)
}

#[test]
fn crds_field_object_ref_extensions_are_name_references() {
    let fs = crds_fs("namePrefix: p-\ncrds:\n- mycrd.json\nresources:\n- res.yaml\n");
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  secretRef:\n    name: p-sec\n"), "{out}");
    assert!(out.contains("  cmRef:\n    cmName: p-cm\n"), "{out}");
    // x-kubernetes-identity takes the prefix.
    assert!(out.contains("  ident: p-idv\n"), "{out}");
}

#[test]
fn crds_field_label_selector_and_annotation_extensions() {
    let fs = crds_fs(
        "commonLabels:\n  app: z\ncommonAnnotations:\n  note: hello\ncrds:\n- mycrd.json\nresources:\n- res.yaml\n",
    );
    let out = run(&fs, "/k").unwrap();
    assert!(
        out.contains("  selectors:\n    a: b\n    app: z\n"),
        "{out}"
    );
    assert!(
        out.contains("  annos:\n    note: hello\n    x: \"y\"\n"),
        "{out}"
    );
}

#[test]
fn crds_field_without_the_file_changes_nothing() {
    let fs = crds_fs("namePrefix: p-\nresources:\n- res.yaml\n");
    let out = run(&fs, "/k").unwrap();
    assert!(out.contains("  secretRef:\n    name: sec\n"), "{out}");
}

#[test]
fn crds_field_naming_a_custom_resource_definition_object_is_an_error() {
    let fs = crds_fs("crds:\n- res.yaml\nresources:\n- res.yaml\n");
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains(
            "loading CRDs [res.yaml]: unable to parse open API definition from 'res.yaml'"
        ),
        "{err}"
    );
}

fn lineage_fs(a_extra: &str) -> MemFs {
    MemFs::new()
        .with(
            "/base/res.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: role\nsubjects:\n- kind: ServiceAccount\n  name: sa\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      volumes:\n      - name: v\n        configMap:\n          name: cfg\n",
        )
        .with("/base/kustomization.yaml", "resources:\n- res.yaml\n")
        .with(
            "/a/kustomization.yaml",
            format!("namespace: ns-a\n{a_extra}resources:\n- ../base\n"),
        )
        .with(
            "/b/kustomization.yaml",
            "namespace: ns-b\nresources:\n- ../base\n",
        )
        .with(
            "/top/kustomization.yaml",
            "namePrefix: t-\nresources:\n- ../a\n- ../b\n",
        )
}

#[test]
fn nameref_base_included_twice_in_two_namespaces_resolves_within_its_namespace() {
    // kustomize's SubsetThatCouldBeReferencedByResource: each RoleBinding sees the
    // ServiceAccount of its own namespace only.
    let out = run(&lineage_fs(""), "/top").unwrap();
    for ns in ["ns-a", "ns-b"] {
        assert!(
            out.contains(&format!(
                "  namespace: {ns}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: role\nsubjects:\n- kind: ServiceAccount\n  name: t-sa\n  namespace: {ns}\n"
            )),
            "{out}"
        );
    }
}

#[test]
fn nameref_base_included_twice_with_a_suffix_in_one_copy() {
    let out = run(&lineage_fs("nameSuffix: -a\n"), "/top").unwrap();
    assert!(out.contains("  name: t-sa-a\n  namespace: ns-a\n"), "{out}");
    assert!(out.contains("          name: t-cfg-a\n"), "{out}");
    assert!(out.contains("          name: t-cfg\n"), "{out}");
}

#[test]
fn nameref_role_binding_sees_the_namespace_its_subject_names() {
    let fs = MemFs::new()
        .with(
            "/k/r.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: ns-y\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\n  namespace: ns-x\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: role\nsubjects:\n- kind: ServiceAccount\n  name: sa\n  namespace: ns-y\n",
        )
        .with("/k/kustomization.yaml", "namePrefix: p-\nresources:\n- r.yaml\n");
    let out = run(&fs, "/k").unwrap();
    assert!(
        out.contains("- kind: ServiceAccount\n  name: p-sa\n  namespace: ns-y\n"),
        "{out}"
    );
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n";

#[test]
fn component_api_version_must_be_v1alpha1() {
    let fs = MemFs::new()
        .with("/top/cm.yaml", CM)
        .with(
            "/c/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Component\nnamePrefix: c-\n",
        )
        .with(
            "/top/kustomization.yaml",
            "resources:\n- cm.yaml\ncomponents:\n- ../c\n",
        );
    let err = run(&fs, "/top").unwrap_err();
    assert!(
        err.contains("Failed to read kustomization file under /c:\napiVersion for Component should be kustomize.config.k8s.io/v1alpha1"),
        "{err}"
    );
    // As the build root too.
    let err = run(&fs, "/c").unwrap_err();
    assert!(err.contains("apiVersion for Component should be"), "{err}");
}

#[test]
fn component_without_api_version_is_accepted() {
    let fs = MemFs::new()
        .with("/top/cm.yaml", CM)
        .with("/c/kustomization.yaml", "kind: Component\nnamePrefix: c-\n")
        .with(
            "/top/kustomization.yaml",
            "resources:\n- cm.yaml\ncomponents:\n- ../c\n",
        );
    let out = run(&fs, "/top").unwrap();
    assert!(out.contains("name: c-cm"), "{out}");
}

#[test]
fn kustomization_api_version_and_kind_are_checked() {
    let fs = MemFs::new().with("/k/cm.yaml", CM).with(
        "/k/kustomization.yaml",
        "apiVersion: foo/v1\nkind: Foo\nresources:\n- cm.yaml\n",
    );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("kind should be Kustomization or Component\napiVersion for Foo should be kustomize.config.k8s.io/v1beta1"),
        "{err}"
    );
    let fs = MemFs::new().with("/k/cm.yaml", CM).with(
        "/k/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Kustomization\nresources:\n- cm.yaml\n",
    );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("apiVersion for Kustomization should be kustomize.config.k8s.io/v1beta1"),
        "{err}"
    );
}

#[test]
fn component_openapi_schema_gives_merge_keys() {
    let schema = r##"{"definitions": {"thing": {"x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Thing"}],
      "properties": {"spec": {"properties": {"items": {"type": "array", "items": {"type": "object"},
        "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}}}}}}}"##;
    let fs = MemFs::new()
        .with("/c/schema.json", schema)
        .with(
            "/c/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nopenapi:\n  path: schema.json\n",
        )
        .with(
            "/top/cr.yaml",
            "apiVersion: example.com/v1\nkind: Thing\nmetadata:\n  name: t\nspec:\n  items:\n  - name: a\n    x: 1\n",
        )
        .with(
            "/top/kustomization.yaml",
            "resources:\n- cr.yaml\ncomponents:\n- ../c\npatches:\n- patch: |-\n    apiVersion: example.com/v1\n    kind: Thing\n    metadata:\n      name: t\n    spec:\n      items:\n      - name: a\n        z: 2\n",
        );
    let out = run(&fs, "/top").unwrap();
    assert!(out.contains("  - name: a\n    x: 1\n    z: 2\n"), "{out}");
}

fn kustomization_error(body: &str) -> String {
    let fs = MemFs::new().with("/k/cm.yaml", CM).with(
        "/k/kustomization.yaml",
        format!("resources:\n- cm.yaml\n{body}"),
    );
    run(&fs, "/k").unwrap_err()
}

#[test]
fn kustomization_string_map_values_are_read_as_yaml_1_1() {
    // sigs.k8s.io/yaml reads `y`/`yes`/`on` as booleans and `1` as a number.
    let err = kustomization_error("commonAnnotations:\n  a: yes\n");
    assert!(
        err.contains("json: cannot unmarshal bool into Go struct field Kustomization.commonAnnotations of type string"),
        "{err}"
    );
    let err = kustomization_error("labels:\n- pairs:\n    x: y\n");
    assert!(
        err.contains(
            "cannot unmarshal bool into Go struct field Label.labels.pairs of type string"
        ),
        "{err}"
    );
    let err = kustomization_error("commonLabels:\n  version: 1\n");
    assert!(err.contains("cannot unmarshal number into Go struct field Kustomization.commonLabels of type string"), "{err}");
    // Quoted, they are strings.
    let fs = MemFs::new().with("/k/cm.yaml", CM).with(
        "/k/kustomization.yaml",
        "resources:\n- cm.yaml\ncommonLabels:\n  version: \"1\"\n  on: \"yes\"\n",
    );
    assert!(run(&fs, "/k").is_ok());
}

#[test]
fn kustomization_image_new_tag_must_be_a_string() {
    let err = kustomization_error("images:\n- name: nginx\n  newTag: 1.21\n");
    assert!(
        err.contains(
            "cannot unmarshal number into Go struct field Image.images.newTag of type string"
        ),
        "{err}"
    );
}

#[test]
fn kustomization_replica_count_must_be_an_integer() {
    let err = kustomization_error("replicas:\n- name: x\n  count: '3'\n");
    assert!(
        err.contains(
            "cannot unmarshal string into Go struct field Replica.replicas.count of type int64"
        ),
        "{err}"
    );
}

#[test]
fn kustomization_nested_unknown_field_is_an_error() {
    let err = kustomization_error("images:\n- name: x\n  tag: a\n");
    assert!(err.contains("json: unknown field \"tag\""), "{err}");
    let err = kustomization_error("configMapGenerator:\n- name: x\n  literal:\n  - a=b\n");
    assert!(err.contains("json: unknown field \"literal\""), "{err}");
}

#[test]
fn kustomization_generator_fields_are_typed() {
    let err = kustomization_error("configMapGenerator:\n- name: x\n  literals:\n  - 1\n");
    assert!(
        err.contains("cannot unmarshal number into Go struct field ConfigMapArgs.configMapGenerator.literals of type string"),
        "{err}"
    );
    let err = kustomization_error(
        "configMapGenerator:\n- name: x\n  literals:\n  - a=b\n  options:\n    annotations:\n      a: 1\n",
    );
    assert!(
        err.contains("GeneratorOptions.configMapGenerator.options.annotations of type string"),
        "{err}"
    );
}
