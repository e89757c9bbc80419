//! Rules found by differential testing against `kubectl kustomize` (kustomize v5.5) on
//! inputs outside the corpora; each expectation is what kubectl printed. One rule per test.

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

fn pod_images(images: &[&str]) -> String {
    let mut s =
        String::from("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n");
    for i in images {
        s.push_str(&format!("  - image: {i}\n"));
    }
    s
}

fn images_out(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("- image: ").map(str::to_string))
        .collect()
}

#[test]
fn images_name_matches_tag_then_sha256_digest_only() {
    // image.IsImageMatched (v5.5): ^NAME(:tag)?(@sha256:digest)?$ ; Split takes the first
    // ':' after the first '/', so a registry port is part of the name.
    let fs = MemFs::new()
        .with(
            "/k/r.yaml",
            pod_images(&[
                "nginx:1.2@sha256:abc",
                "nginx@sha512:abc",
                "app@sha256:abc",
                "reg.io:5000/foo",
                "reg.io:5000/foo@sha256:x",
                "sha@sha256",
                "\"nginx:{{tag}}\"",
                "\"nginx:\"",
                "NGINX",
            ]),
        )
        .with(
            "/k/kustomization.yaml",
            "resources: [r.yaml]\nimages:\n- name: nginx\n  newTag: new\n- name: app\n  newName: x/app\n- name: reg.io:5000/foo\n  newTag: t\n- name: sha\n  newTag: t2\n",
        );
    let out = run(&fs, "/k").unwrap();
    assert_eq!(
        images_out(&out),
        [
            "nginx:new",
            "nginx@sha512:abc",
            "x/app@sha256:abc",
            "reg.io:5000/foo:t",
            "reg.io:5000/foo:t",
            "sha@sha256",
            "nginx:new",
            "nginx:new",
            "NGINX"
        ]
    );
}

#[test]
fn images_name_is_a_regular_expression() {
    // The name is spliced into the pattern unescaped: `ng.nx` matches nginx, and `*` (a
    // repeated `^` in Go's syntax) matches every image. Entries apply in order.
    let fs = MemFs::new()
        .with(
            "/k/r.yaml",
            pod_images(&["nginx:1.2", "redis@sha256:abc", "localhost:5000/app"]),
        )
        .with(
            "/k/kustomization.yaml",
            "resources: [r.yaml]\nimages:\n- name: ng.nx\n  newTag: regex\n- name: \"*\"\n  newTag: latest\n- name: \"localhost:5000/app\"\n  newName: other\n",
        );
    let out = run(&fs, "/k").unwrap();
    assert_eq!(
        images_out(&out),
        ["nginx:latest", "redis:latest", "other:latest"]
    );
}

#[test]
fn images_legacy_containers_walk_skips_custom_resource_definitions() {
    // kustomize's legacy image filter updates `containers`/`initContainers` lists anywhere in
    // any object except a CustomResourceDefinition.
    let fs = MemFs::new()
        .with(
            "/k/r.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: xs.example.com\nspec:\n  containers:\n  - image: nginx\n---\napiVersion: example.com/v1\nkind: Runner\nmetadata:\n  name: r\nspec:\n  containers:\n  - image: nginx\n",
        )
        .with(
            "/k/kustomization.yaml",
            "resources: [r.yaml]\nimages:\n- name: nginx\n  newTag: \"2\"\n",
        );
    let out = run(&fs, "/k").unwrap();
    assert_eq!(images_out(&out), ["nginx", "nginx:2"]);
}

#[test]
fn generator_hash_ignores_immutable() {
    // kustomize's hasher encodes kind, name, data and binaryData (ConfigMap) or type, data
    // and stringData (Secret): `immutable` does not change the name.
    let fs = MemFs::new().with(
        "/k/kustomization.yaml",
        "configMapGenerator:\n- name: s\n  literals: [a=b]\n  options:\n    immutable: true\nsecretGenerator:\n- name: s\n  literals: [a=b]\n  options:\n    immutable: true\n",
    );
    let out = run(&fs, "/k").unwrap();
    assert!(
        out.contains("immutable: true\nkind: ConfigMap\nmetadata:\n  name: s-4h2mbtbbt6\n"),
        "{out}"
    );
    assert!(out.contains("name: s-k695gkmbtk\n"), "{out}");
}

fn vars_fs(widget_spec: &str) -> MemFs {
    MemFs::new()
        .with(
            "/k/r.yaml",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\n  labels:\n    a: b\n  finalizers: [x, y]\n  annotations:\n    f: !!float 1.50\n    b: !!bool True\n    q: \"007\"\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n{widget_spec}"
            ),
        )
        .with(
            "/k/kustomization.yaml",
            "resources: [r.yaml]\nvars:\n- name: LABELS\n  objref: {kind: ConfigMap, name: src, apiVersion: v1}\n  fieldref: {fieldpath: metadata.labels}\n- name: LIST\n  objref: {kind: ConfigMap, name: src, apiVersion: v1}\n  fieldref: {fieldpath: metadata.finalizers}\n- name: FLOAT\n  objref: {kind: ConfigMap, name: src, apiVersion: v1}\n  fieldref: {fieldpath: metadata.annotations.f}\n- name: BOOL\n  objref: {kind: ConfigMap, name: src, apiVersion: v1}\n  fieldref: {fieldpath: metadata.annotations.b}\n- name: QSTR\n  objref: {kind: ConfigMap, name: src, apiVersion: v1}\n  fieldref: {fieldpath: metadata.annotations.q}\nconfigurations: [conf.yaml]\n",
        )
        .with(
            "/k/conf.yaml",
            "varReference:\n- path: spec/m\n  kind: Widget\n- path: spec/s\n  kind: Widget\n- path: spec/deep\n  kind: Widget\n",
        )
}

fn widget(out: &str) -> &str {
    &out[out.find("kind: Widget").unwrap()..]
}

#[test]
fn vars_dollar_dollar_is_an_escaped_dollar() {
    // `$$(X)` prints `$(X)` (not expanded); `$$$(X)` is `$` + the value; a lone `$` and an
    // unterminated `$(` stay.
    let fs = vars_fs("  m:\n    k7: 'single $$(QSTR) $$$(QSTR) $ $(QSTR'\n");
    let out = run(&fs, "/k").unwrap();
    assert!(
        widget(&out).contains("    k7: single $(QSTR) $007 $ $(QSTR\n"),
        "{out}"
    );
}

#[test]
fn vars_map_or_list_values_are_not_substituted() {
    // A var whose field is a map or a list is not a primitive: `$(LABELS)` stays as written.
    let fs = vars_fs("  m:\n    k1: $(LABELS)\n    k2: x-$(LABELS)-$(LIST)\n");
    let out = run(&fs, "/k").unwrap();
    assert!(
        widget(&out).contains("    k1: $(LABELS)\n    k2: x-$(LABELS)-$(LIST)\n"),
        "{out}"
    );
}

#[test]
fn vars_whole_value_keeps_the_var_type_and_inline_uses_go_formatting() {
    // A float var is printed with strconv 'f' (1.50 -> 1.5) and typed; a bool var from
    // `True` becomes `true`; inside a string Go's %v is used.
    let fs = vars_fs(
        "  m:\n    k3: $(FLOAT)\n    k4: f=$(FLOAT) b=$(BOOL)\n    k5: $(BOOL)\n    k6: $(QSTR)\n",
    );
    let out = run(&fs, "/k").unwrap();
    assert!(
        widget(&out).contains("    k3: 1.5\n    k4: f=1.5 b=true\n    k5: true\n    k6: \"007\"\n"),
        "{out}"
    );
}

#[test]
fn vars_reach_one_level_of_a_map_and_every_list_item() {
    // The refvar filter expands the values of a map target (not nested maps or lists inside
    // it) and every item of a list target.
    let fs = vars_fs("  m:\n    k9: [a, $(QSTR)]\n  s: [\"$(QSTR)\", \"$(FLOAT)\"]\n  deep:\n    inner:\n      x: $(QSTR)\n");
    let out = run(&fs, "/k").unwrap();
    let w = widget(&out);
    assert!(w.contains("    inner:\n      x: $(QSTR)\n"), "{out}");
    assert!(w.contains("    k9:\n    - a\n    - $(QSTR)\n"), "{out}");
    assert!(w.contains("  s:\n  - \"007\"\n  - 1.5\n"), "{out}");
}

#[test]
fn vars_list_target_with_a_non_string_item_is_an_error() {
    let fs = vars_fs("  s: [\"$(QSTR)\", 5]\n");
    let err = run(&fs, "/k").unwrap_err();
    assert!(err.contains("expect a string"), "{err}");
}

#[test]
fn replicas_for_a_name_no_replicas_field_spec_selects_is_an_error() {
    // kustomize's ReplicaCountTransformer errors when no resource of a replicas kind
    // (Deployment, ReplicationController, ReplicaSet, StatefulSet, or configured ones)
    // has the name.
    let fs = MemFs::new()
        .with(
            "/k/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
        )
        .with(
            "/k/kustomization.yaml",
            "resources: [cm.yaml]\nreplicas:\n- name: cm\n  count: 2\n",
        );
    let err = run(&fs, "/k").unwrap_err();
    assert!(
        err.contains("resource with name cm does not match"),
        "{err}"
    );
}
