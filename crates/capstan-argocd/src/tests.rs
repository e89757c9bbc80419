//! In-memory tests of the reader, written from Argo CD's documented behaviour.

use super::*;
use capstan_vfs::MemFs;
use serde_json::json;

const REPO: &str = "https://git.example.com/org/fleet.git";

fn opts() -> Options {
    Options {
        this_repo: vec![RepoPattern::Url("org/fleet".into())],
        ..Options::default()
    }
}

fn yaml(v: &Value) -> String {
    v.to_string()
}

fn app(name: &str, source: Value, ns: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": name, "namespace": "argocd"},
           "spec": {"project": "default", "destination": {"server": IN_CLUSTER_SERVER, "namespace": ns}, "source": source}})
}

fn appset(spec: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
           "metadata": {"name": "set", "namespace": "argocd"}, "spec": spec})
}

fn names(apps: &[Value]) -> Vec<String> {
    apps.iter()
        .map(|a| {
            a.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}

fn tmpl(name: &str, path: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"project": "default",
        "source": {"repoURL": REPO, "path": path}, "destination": {"server": "s", "namespace": "default"}}})
}

// ---- repoURL matching -------------------------------------------------------------

#[test]
fn this_repository_matches_on_path_boundaries() {
    let p = RepoPattern::Url("org/fleet".into());
    assert!(p.matches("https://git.example.com/org/fleet.git"));
    assert!(p.matches("git@git.example.com:Org/Fleet"));
    assert!(p.matches("https://git.example.com/org/fleet/"));
    assert!(!p.matches("https://git.example.com/myorg/fleet"));
    assert!(!p.matches("https://git.example.com/org/fleet2"));
    let r = RepoPattern::Regex(regex::Regex::new("fleet$").unwrap());
    assert!(r.matches("https://x/Org/FLEET.git/"));
}

// ---- list generator ---------------------------------------------------------------

#[test]
fn list_generator_fasttemplate_with_values() {
    let fs = MemFs::new();
    let set = appset(json!({
        "generators": [{"list": {"elements": [
            {"cluster": "a", "url": "https://a", "values": {"tier": "gold"}},
            {"cluster": "b", "url": "https://b", "values": {"tier": "silver"}}]}}],
        "template": {"metadata": {"name": "{{cluster}}-{{values.tier}}", "labels": {"unknown": "{{nope}}"}},
                     "spec": {"project": "default", "source": {"repoURL": REPO, "path": "apps/{{cluster}}"},
                              "destination": {"server": "{{url}}", "namespace": "x"}}}}));
    let apps = appset::expand(&fs, &set, &opts()).unwrap();
    assert_eq!(names(&apps), ["a-gold", "b-silver"]);
    assert_eq!(apps[0]["spec"]["destination"]["server"], "https://a");
    assert_eq!(apps[0]["spec"]["source"]["path"], "apps/a");
    // an unknown parameter stays as written (fasttemplate)
    assert_eq!(apps[0]["metadata"]["labels"]["unknown"], "{{nope}}");
    // generated Applications live in the ApplicationSet's namespace and get the finalizer
    assert_eq!(apps[0]["metadata"]["namespace"], "argocd");
    assert_eq!(
        apps[0]["metadata"]["finalizers"],
        json!(["resources-finalizer.argocd.argoproj.io"])
    );
}

#[test]
fn list_generator_fasttemplate_refuses_non_string_values() {
    let set = appset(
        json!({"generators": [{"list": {"elements": [{"n": 1}]}}], "template": tmpl("x", "p")}),
    );
    let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadGenerator);
    assert!(e.field.contains("elements[0].n"), "{e}");
}

#[test]
fn list_generator_elements_yaml_and_go_template() {
    let set = appset(json!({
        "goTemplate": true,
        "generators": [{"list": {"elements": [{"name": "a", "cfg": {"replicas": 2}}],
                                 "elementsYaml": "- name: b\n  cfg:\n    replicas: 3\n"}}],
        "template": {"metadata": {"name": "{{ .name }}-{{ .cfg.replicas }}"},
                     "spec": {"project": "default", "source": {"repoURL": REPO, "path": "{{ .name | upper }}"},
                              "destination": {"server": "s", "namespace": "x"}}}}));
    let apps = appset::expand(&MemFs::new(), &set, &opts()).unwrap();
    assert_eq!(names(&apps), ["a-2", "b-3"]);
    assert_eq!(apps[1]["spec"]["source"]["path"], "B");
}

// ---- Go template options, templatePatch, per-generator template --------------------

#[test]
fn go_template_missingkey_error_names_the_field() {
    let set = appset(json!({
        "goTemplate": true, "goTemplateOptions": ["missingkey=error"],
        "generators": [{"list": {"elements": [{"name": "a"}]}}],
        "template": {"metadata": {"name": "{{ .name }}-{{ .missing }}"}, "spec": {}}}));
    let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Template);
    assert_eq!(e.field, "spec.template");
    assert!(e.message.contains("map has no entry for key"), "{e}");
    // without the option: Go's <no value>
    let mut set2 = set.clone();
    set2["spec"]
        .as_object_mut()
        .unwrap()
        .remove("goTemplateOptions");
    let apps = appset::expand(&MemFs::new(), &set2, &opts()).unwrap();
    assert_eq!(names(&apps), ["a-<no value>"]);
}

#[test]
fn template_patch_is_rendered_and_merged() {
    let set = appset(json!({
        "goTemplate": true,
        "generators": [{"list": {"elements": [{"name": "a", "auto": true}, {"name": "b", "auto": false}]}}],
        "template": tmpl("{{ .name }}", "p"),
        "templatePatch": "{{- if .auto }}\nspec:\n  syncPolicy:\n    automated:\n      prune: true\n{{- end }}\n"}));
    let apps = appset::expand(&MemFs::new(), &set, &opts()).unwrap();
    assert_eq!(apps[0]["spec"]["syncPolicy"]["automated"]["prune"], true);
    assert!(apps[1]["spec"].get("syncPolicy").is_none());
    assert_eq!(apps[0]["spec"]["source"]["path"], "p");
}

#[test]
fn generator_template_overrides_the_appset_template() {
    let set = appset(json!({
        "generators": [
            {"list": {"elements": [{"n": "a"}], "template": {"metadata": {}, "spec": {"source": {"path": "override/{{n}}"}}}}},
            {"list": {"elements": [{"n": "b"}]}}],
        "template": tmpl("{{n}}", "base/{{n}}")}));
    let apps = appset::expand(&MemFs::new(), &set, &opts()).unwrap();
    assert_eq!(apps[0]["spec"]["source"]["path"], "override/a");
    assert_eq!(apps[0]["spec"]["source"]["repoURL"], REPO);
    assert_eq!(apps[1]["spec"]["source"]["path"], "base/b");
}

// ---- clusters generator -----------------------------------------------------------

fn cluster(name: &str, env: &str) -> Cluster {
    Cluster {
        name: name.into(),
        server: format!("https://{name}"),
        labels: [("env".to_string(), env.to_string())].into(),
        annotations: [("team".to_string(), "blue".to_string())].into(),
        ..Cluster::default()
    }
}

#[test]
fn clusters_generator_includes_in_cluster_without_selector() {
    let mut o = opts();
    o.clusters = vec![cluster("prod-1", "prod"), cluster("dev-1", "dev")];
    let set = appset(
        json!({"generators": [{"clusters": {"values": {"rev": "{{name}}-main"}}}],
        "template": {"metadata": {"name": "{{name}}-{{metadata.labels.env}}-{{values.rev}}"}, "spec": {}}}),
    );
    let apps = appset::expand(&MemFs::new(), &set, &o).unwrap();
    assert_eq!(
        names(&apps),
        [
            "in-cluster-{{metadata.labels.env}}-in-cluster-main",
            "prod-1-prod-prod-1-main",
            "dev-1-dev-dev-1-main"
        ]
    );
}

#[test]
fn clusters_generator_selector_match_labels_and_expressions() {
    let mut o = opts();
    o.clusters = vec![
        cluster("prod-1", "prod"),
        cluster("dev-1", "dev"),
        cluster("qa-1", "qa"),
    ];
    let set = appset(
        json!({"goTemplate": true, "generators": [{"clusters": {"selector": {
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "qa"]}]}}}],
        "template": {"metadata": {"name": "{{ .nameNormalized }}-{{ .metadata.annotations.team }}"}, "spec": {}}}),
    );
    let apps = appset::expand(&MemFs::new(), &set, &o).unwrap();
    assert_eq!(names(&apps), ["prod-1-blue", "qa-1-blue"]);
    let set = appset(
        json!({"generators": [{"clusters": {"selector": {"matchLabels": {"env": "dev"}}}}],
        "template": {"metadata": {"name": "{{name}}"}, "spec": {}}}),
    );
    assert_eq!(
        names(&appset::expand(&MemFs::new(), &set, &o).unwrap()),
        ["dev-1"]
    );
}

#[test]
fn cluster_secret_is_read_from_data_or_string_data() {
    let s = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "c", "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": "prod"}},
        "data": {"name": "cHJvZA==", "server": "aHR0cHM6Ly9wcm9k"}, "stringData": {"project": "p"}});
    let c = Cluster::from_secret(&s).unwrap();
    assert_eq!(
        (c.name.as_str(), c.server.as_str(), c.project.as_str()),
        ("prod", "https://prod", "p")
    );
    assert_eq!(c.labels["env"], "prod");
    // a Secret for the in-cluster server replaces the implicit in-cluster
    let mut o = opts();
    o.clusters = vec![Cluster {
        name: "local".into(),
        server: IN_CLUSTER_SERVER.into(),
        ..Cluster::default()
    }];
    let known = appset::known_clusters(&o);
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].0.name, "local");
}

// ---- git generator ----------------------------------------------------------------

fn git_tree() -> MemFs {
    MemFs::new()
        .with("/apps/guestbook/cm.yaml", cm("g"))
        .with("/apps/excluded/cm.yaml", cm("e"))
        .with("/apps/nested/deep/cm.yaml", cm("n"))
        .with("/.hidden/x.yaml", cm("h"))
        .with(
            "/clusters/prod/config.json",
            r#"{"cluster": {"name": "prod", "address": "https://prod"}, "replicas": 3}"#,
        )
        .with(
            "/clusters/dev/config.yaml",
            "- cluster:\n    name: dev-a\n- cluster:\n    name: dev-b\n",
        )
}

#[test]
fn git_directories_with_exclude() {
    let set = appset(
        json!({"generators": [{"git": {"repoURL": REPO, "revision": "HEAD", "directories": [
            {"path": "apps/*"}, {"path": "apps/excluded", "exclude": true}]}}],
        "template": {"metadata": {"name": "{{path.basename}}"},
                     "spec": {"source": {"repoURL": REPO, "path": "{{path}}"}, "info": "{{path[0]}}/{{path.basenameNormalized}}"}}}),
    );
    let apps = appset::expand(&git_tree(), &set, &opts()).unwrap();
    assert_eq!(names(&apps), ["guestbook", "nested"]);
    assert_eq!(apps[0]["spec"]["source"]["path"], "apps/guestbook");
    assert_eq!(apps[0]["spec"]["info"], "apps/guestbook");
}

#[test]
fn git_directories_go_template_segments() {
    let set = appset(
        json!({"goTemplate": true, "generators": [{"git": {"repoURL": REPO, "directories": [{"path": "apps/nested/*"}]}}],
        "template": {"metadata": {"name": "{{ index .path.segments 1 }}-{{ .path.basename }}"}, "spec": {"p": "{{ .path.path }}"}}}),
    );
    let apps = appset::expand(&git_tree(), &set, &opts()).unwrap();
    assert_eq!(names(&apps), ["nested-deep"]);
    assert_eq!(apps[0]["spec"]["p"], "apps/nested/deep");
}

#[test]
fn git_files_flattened_params_and_lists() {
    let set = appset(
        json!({"generators": [{"git": {"repoURL": REPO, "files": [{"path": "clusters/**/config.*"}]}}],
        "template": {"metadata": {"name": "{{cluster.name}}"},
                     "spec": {"dir": "{{path}}", "base": "{{path.basename}}", "file": "{{path.filename}}", "r": "{{replicas}}"}}}),
    );
    let apps = appset::expand(&git_tree(), &set, &opts()).unwrap();
    // files in sorted path order; a list file gives one Application per element
    assert_eq!(names(&apps), ["dev-a", "dev-b", "prod"]);
    assert_eq!(apps[2]["spec"]["dir"], "clusters/prod");
    assert_eq!(apps[2]["spec"]["base"], "prod");
    assert_eq!(apps[2]["spec"]["file"], "config.json");
    assert_eq!(apps[2]["spec"]["r"], "3");
}

#[test]
fn git_generator_on_another_repository_is_refused_offline() {
    let set = appset(
        json!({"generators": [{"git": {"repoURL": "https://elsewhere/x", "directories": [{"path": "*"}]}}],
        "template": tmpl("{{path}}", "p")}),
    );
    let e = appset::expand(&git_tree(), &set, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RemoteSource);
    assert_eq!(e.field, "spec.generators[0].git.repoURL");
}

// ---- matrix and merge -------------------------------------------------------------

#[test]
fn matrix_combines_and_interpolates_the_second_generator() {
    let set = appset(json!({"generators": [{"matrix": {"generators": [
            {"git": {"repoURL": REPO, "directories": [{"path": "apps/guestbook"}, {"path": "apps/nested"}]}},
            {"list": {"elements": [{"env": "{{path.basename}}-prod"}, {"env": "dev"}]}}]}}],
        "template": {"metadata": {"name": "{{path.basename}}-{{env}}"}, "spec": {}}}));
    let apps = appset::expand(&git_tree(), &set, &opts()).unwrap();
    assert_eq!(
        names(&apps),
        [
            "guestbook-guestbook-prod",
            "guestbook-dev",
            "nested-nested-prod",
            "nested-dev"
        ]
    );
}

#[test]
fn matrix_needs_exactly_two_generators() {
    let set = appset(
        json!({"generators": [{"matrix": {"generators": [{"list": {"elements": []}}]}}], "template": {}}),
    );
    let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadGenerator);
}

#[test]
fn merge_overrides_base_params_by_merge_keys() {
    let mut o = opts();
    o.clusters = vec![cluster("prod-1", "prod"), cluster("dev-1", "dev")];
    let set = appset(
        json!({"generators": [{"merge": {"mergeKeys": ["server"], "generators": [
            {"clusters": {"values": {"kafka": "true"}}},
            {"list": {"elements": [{"server": "https://prod-1", "values.kafka": "false"}]}}]}}],
        "template": {"metadata": {"name": "{{name}}-{{values.kafka}}"}, "spec": {}}}),
    );
    let apps = appset::expand(&MemFs::new(), &set, &o).unwrap();
    assert_eq!(
        names(&apps),
        ["in-cluster-true", "prod-1-false", "dev-1-true"]
    );
}

#[test]
fn merge_refuses_duplicate_merge_keys() {
    let set = appset(
        json!({"generators": [{"merge": {"mergeKeys": ["k"], "generators": [
            {"list": {"elements": [{"k": "a"}, {"k": "a"}]}}, {"list": {"elements": []}}]}}], "template": {}}),
    );
    let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
    assert!(e.message.contains("not unique"), "{e}");
}

// ---- bad ApplicationSets ----------------------------------------------------------

#[test]
fn duplicate_generated_names_are_an_error() {
    let set = appset(
        json!({"generators": [{"list": {"elements": [{"n": "a"}, {"n": "b"}]}}], "template": tmpl("same", "p")}),
    );
    let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DuplicateName);
    assert_eq!(e.field, "spec.template.metadata.name");
}

#[test]
fn unknown_and_live_generators_are_refused_by_name() {
    let set = appset(json!({"generators": [{"bogus": {}}], "template": {}}));
    let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownGenerator);
    assert_eq!(e.field, "spec.generators[0].bogus");
    for g in [
        "pullRequest",
        "scmProvider",
        "clusterDecisionResource",
        "plugin",
    ] {
        let set = appset(json!({"generators": [{g: {}}], "template": {}}));
        let e = appset::expand(&MemFs::new(), &set, &opts()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedGenerator, "{g}");
        assert!(e.message.contains(g));
    }
}

#[test]
fn generator_selector_filters_params() {
    let set = appset(
        json!({"generators": [{"list": {"elements": [{"env": "a"}, {"env": "b"}]},
                                             "selector": {"matchLabels": {"env": "b"}}}],
        "template": tmpl("{{env}}", "p")}),
    );
    assert_eq!(
        names(&appset::expand(&MemFs::new(), &set, &opts()).unwrap()),
        ["b"]
    );
}

// ---- sources ----------------------------------------------------------------------

#[test]
fn directory_source_recurse_include_exclude() {
    let fs = MemFs::new()
        .with("/d/a.yaml", cm("a"))
        .with("/d/b.yml", format!("{}---\n{}", cm("b1"), cm("b2")))
        .with(
            "/d/c.json",
            r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}"#,
        )
        .with("/d/notes.txt", "x")
        .with("/d/sub/s.yaml", cm("s"));
    let names_of = |src: Value| -> Vec<String> {
        render::render_app(&fs, &app("x", src, "ns"), &opts())
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names_of(json!({"repoURL": REPO, "path": "d"})),
        ["a", "b1", "b2", "c"]
    );
    assert_eq!(
        names_of(json!({"repoURL": REPO, "path": "d", "directory": {"recurse": true}})),
        ["a", "b1", "b2", "c", "s"]
    );
    assert_eq!(
        names_of(
            json!({"repoURL": REPO, "path": "d", "directory": {"recurse": true, "include": "{a.yaml,sub/*}"}})
        ),
        ["a", "s"]
    );
    assert_eq!(
        names_of(
            json!({"repoURL": REPO, "path": "d", "directory": {"recurse": true, "exclude": "*.y*ml"}})
        ),
        ["c"]
    );
}

#[test]
fn namespaces_as_argo_cd_sets_them() {
    let fs = MemFs::new().with(
        "/d/all.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: keep\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: c\n  namespace: drop\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    let a = app("x", json!({"repoURL": REPO, "path": "d"}), "dest");
    let objs = render::render_app(&fs, &a, &opts()).unwrap();
    assert_eq!(objs[0]["metadata"]["namespace"], "dest");
    assert_eq!(objs[1]["metadata"]["namespace"], "keep");
    assert!(objs[2]["metadata"].get("namespace").is_none());
    // unknown kinds: namespaced for Argo CD ...
    assert_eq!(objs[3]["metadata"]["namespace"], "dest");
    // ... cluster-scoped when the cluster is taken not to know them
    let mut o = opts();
    o.unknown_kinds_cluster_scoped = true;
    let objs = render::render_app(&fs, &a, &o).unwrap();
    assert!(objs[3]["metadata"].get("namespace").is_none());
    o.extra_namespaced_kinds = vec!["example.com/Widget".into()];
    let objs = render::render_app(&fs, &a, &o).unwrap();
    assert_eq!(objs[3]["metadata"]["namespace"], "dest");
}

#[test]
fn missing_source_plugin_and_other_repositories_fail_alone() {
    let fs = MemFs::new().with("/d/a.yaml", cm("a"));
    let mut a = app("x", json!({}), "ns");
    a["spec"].as_object_mut().unwrap().remove("source");
    let e = render::render_app(&fs, &a, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingSource);
    assert_eq!(e.field, "spec.source");
    let p = app(
        "p",
        json!({"repoURL": REPO, "path": "d", "plugin": {"name": "cmp"}}),
        "ns",
    );
    let e = render::render_app(&fs, &p, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedSource);
    assert_eq!(e.field, "spec.source.plugin");
    let r = app(
        "r",
        json!({"repoURL": "https://elsewhere/x", "path": "d"}),
        "ns",
    );
    assert_eq!(
        render::render_app(&fs, &r, &opts()).unwrap_err().kind,
        ErrorKind::RemoteSource
    );
    let c = app(
        "c",
        json!({"repoURL": "https://charts.example.com", "chart": "nginx", "targetRevision": "1.0.0"}),
        "ns",
    );
    assert_eq!(
        render::render_app(&fs, &c, &opts()).unwrap_err().kind,
        ErrorKind::RemoteSource
    );
    let m = app(
        "m",
        json!({"repoURL": REPO, "path": "d", "helm": {"releaseName": "x"}, "kustomize": {"namePrefix": "p-"}}),
        "ns",
    );
    assert_eq!(
        render::render_app(&fs, &m, &opts()).unwrap_err().kind,
        ErrorKind::MultipleSourceTypes
    );
    let j = app(
        "j",
        json!({"repoURL": REPO, "path": "d", "directory": {"jsonnet": {"tlas": [{"name": "a", "value": "b"}]}}}),
        "ns",
    );
    assert_eq!(
        render::render_app(&fs, &j, &opts()).unwrap_err().kind,
        ErrorKind::UnsupportedSource
    );
    let n = app("n", json!({"repoURL": REPO, "path": "nope"}), "ns");
    assert_eq!(
        render::render_app(&fs, &n, &opts()).unwrap_err().kind,
        ErrorKind::PathNotFound
    );
}

fn chart_tree() -> MemFs {
    MemFs::new()
        .with("/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
        .with("/charts/web/values.yaml", "color: red\nsize: s\nshape: round\nweight: 1\n")
        .with(
            "/charts/web/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n  namespace: {{ .Release.Namespace }}\ndata:\n  color: {{ .Values.color }}\n  size: {{ .Values.size }}\n  shape: {{ .Values.shape | quote }}\n  weight: {{ .Values.weight | quote }}\n  file: {{ .Values.file | default \"\" | quote }}\n",
        )
        .with("/charts/web/crds/crd.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n")
        .with("/charts/web/blue.yaml", "color: blue\nsize: m\n")
        .with("/charts/web/big.yaml", "size: l\n")
        .with("/values/shared.yaml", "shape: square\n")
        .with("/charts/web/f.txt", "from-file")
}

#[test]
fn helm_source_value_files_in_order_values_parameters() {
    let fs = chart_tree();
    let a = app(
        "web-app",
        json!({"repoURL": REPO, "path": "charts/web", "helm": {
            "valueFiles": ["blue.yaml", "missing.yaml", "big.yaml", "/values/shared.yaml"],
            "ignoreMissingValueFiles": true,
            "values": "weight: 2\n",
            "parameters": [{"name": "color", "value": "green"}],
            "fileParameters": [{"name": "file", "path": "f.txt"}]}}),
        "web",
    );
    let objs = render::render_app(&fs, &a, &opts()).unwrap();
    // CRDs included (skipCrds false); release name = app name; namespace = destination
    assert_eq!(objs[0]["kind"], "CustomResourceDefinition");
    let cm = &objs[1];
    assert_eq!(cm["metadata"]["name"], "web-app");
    assert_eq!(cm["metadata"]["namespace"], "web");
    assert_eq!(cm["data"]["color"], "green");
    assert_eq!(cm["data"]["size"], "l");
    assert_eq!(cm["data"]["shape"], "square");
    assert_eq!(cm["data"]["weight"], "2");
    assert_eq!(cm["data"]["file"], "from-file");
}

#[test]
fn helm_source_release_name_values_object_skip_crds_and_missing_value_file() {
    let fs = chart_tree();
    let a = app(
        "x",
        json!({"repoURL": REPO, "path": "charts/web", "helm": {"releaseName": "rel", "skipCrds": true,
            "values": "size: xs\n", "valuesObject": {"size": "xl"}}}),
        "",
    );
    let objs = render::render_app(&fs, &a, &opts()).unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["metadata"]["name"], "rel");
    assert_eq!(objs[0]["metadata"]["namespace"], "default");
    assert_eq!(objs[0]["data"]["size"], "xl");
    let bad = app(
        "y",
        json!({"repoURL": REPO, "path": "charts/web", "helm": {"valueFiles": ["missing.yaml"]}}),
        "",
    );
    let e = render::render_app(&fs, &bad, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadInput);
    assert_eq!(e.field, "spec.source.helm.valueFiles[0]");
}

#[test]
fn multi_source_ref_value_files() {
    let fs = chart_tree();
    let mut a = app("ms", json!(null), "ns");
    a["spec"].as_object_mut().unwrap().remove("source");
    a["spec"]["sources"] = json!([
        {"repoURL": REPO, "path": "charts/web", "helm": {"valueFiles": ["$values/values/shared.yaml"]}},
        {"repoURL": REPO, "ref": "values"}]);
    let objs = render::render_app(&fs, &a, &opts()).unwrap();
    assert_eq!(objs[1]["data"]["shape"], "square");
}

#[test]
fn kustomize_source_options() {
    let fs = MemFs::new()
        .with("/k/kustomization.yaml", "resources:\n- deploy.yaml\ncommonLabels:\n  team: a\n")
        .with("/k/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n")
        .with("/k/comp/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations:\n  comp: \"yes\"\n");
    let a = app(
        "kz",
        json!({"repoURL": REPO, "path": "k", "kustomize": {
            "namePrefix": "p-", "nameSuffix": "-s", "namespace": "kns",
            "images": ["nginx=registry/nginx:${ARGOCD_APP_NAME}"],
            "commonLabels": {"team": "b"}, "forceCommonLabels": true,
            "commonAnnotations": {"note": "hi"},
            "replicas": [{"name": "web", "count": 3}],
            "components": ["comp", "missing"], "ignoreMissingComponents": true,
            "patches": [{"target": {"kind": "Deployment"}, "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    patched: \"true\"\n"}]}}),
        "dest",
    );
    let objs = render::render_app(&fs, &a, &opts()).unwrap();
    let d = &objs[0];
    assert_eq!(d["metadata"]["name"], "p-web-s");
    assert_eq!(d["metadata"]["namespace"], "kns");
    assert_eq!(d["metadata"]["labels"]["team"], "b");
    assert_eq!(d["metadata"]["labels"]["patched"], "true");
    assert_eq!(d["metadata"]["annotations"]["note"], "hi");
    assert_eq!(d["metadata"]["annotations"]["comp"], "yes");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry/nginx:kz"
    );
    // without forceCommonLabels an existing label is an error, as `kustomize edit add label`
    let mut b = a.clone();
    b["spec"]["source"]["kustomize"]
        .as_object_mut()
        .unwrap()
        .remove("forceCommonLabels");
    let e = render::render_app(&fs, &b, &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Kustomize);
}

#[test]
fn source_type_detection() {
    let fs = MemFs::new()
        .with("/h/Chart.yaml", "x")
        .with("/both/Chart.yaml", "x")
        .with("/both/kustomization.yaml", "x")
        .with("/k/Kustomization", "x")
        .with("/d/a.yaml", "x");
    let t = |dir: &str, src: Value| render::source_type(&fs, &src, Path::new(dir)).unwrap();
    assert_eq!(t("/h", json!({})), render::SourceType::Helm);
    assert_eq!(t("/both", json!({})), render::SourceType::Kustomize);
    assert_eq!(t("/k", json!({})), render::SourceType::Kustomize);
    assert_eq!(t("/d", json!({})), render::SourceType::Directory);
    assert_eq!(
        t("/d", json!({"helm": {"releaseName": "x"}})),
        render::SourceType::Helm
    );
}

#[test]
fn envsubst_as_argo_cd() {
    let env: std::collections::BTreeMap<String, String> =
        [("A".to_string(), "1".to_string())].into();
    assert_eq!(render::envsubst("x-$A-${A}-$B-$$", &env), "x-1-1--$");
}

// ---- the repository: discovery, app of apps, cycles, failures stay alone ----------

fn repo() -> MemFs {
    let root = app("root", json!({"repoURL": REPO, "path": "apps"}), "argocd");
    let child = app(
        "child",
        json!({"repoURL": REPO, "path": "child"}),
        "default",
    );
    let set = appset(
        json!({"generators": [{"list": {"elements": [{"n": "g1"}, {"n": "g2"}]}}],
        "template": {"metadata": {"name": "{{n}}"}, "spec": {"project": "default",
            "source": {"repoURL": REPO, "path": "child"}, "destination": {"server": IN_CLUSTER_SERVER, "namespace": "{{n}}"}}}}),
    );
    let mut broken = app("broken", json!({}), "x");
    broken["spec"].as_object_mut().unwrap().remove("source");
    MemFs::new()
        .with("/root.yaml", yaml(&root))
        .with("/apps/child.yaml", yaml(&child))
        .with("/apps/set.yaml", yaml(&set))
        .with("/child/cm.yaml", cm("c"))
        .with(
            "/broken.yaml",
            format!("{}\n---\n{}", cm("not-an-app"), yaml(&broken)),
        )
        .with(
            "/charts/templates/x.yaml",
            "{{ if .Values.x }}\nkind: Application\n{{ end }}\n",
        )
}

#[test]
fn repository_render_with_app_of_apps() {
    let r = render_repository(&repo(), &opts());
    let list: Vec<(String, String)> = r
        .apps
        .iter()
        .map(|a| (a.name().to_string(), a.origin.source()))
        .collect();
    assert_eq!(
        list,
        [
            ("child", "apps/child.yaml"),
            ("g1", "apps/set.yaml"),
            ("g2", "apps/set.yaml"),
            ("broken", "broken.yaml"),
            ("root", "root.yaml"),
            ("child", "parent: root"),
            ("g1", "parent: root (appset: set)"),
            ("g2", "parent: root (appset: set)"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let broken = r.apps.iter().find(|a| a.name() == "broken").unwrap();
    let e = broken.objects.as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingSource);
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "broken.yaml (document 2): Application/broken: spec.source: the Application has no source"
    );
    // the others rendered
    let g1 = r.apps.iter().find(|a| a.name() == "g1").unwrap();
    assert_eq!(
        g1.objects.as_ref().unwrap()[0]["metadata"]["namespace"],
        "g1"
    );
    // the root keeps the Application objects it renders (with their namespace)
    let root = r.apps.iter().find(|a| a.name() == "root").unwrap();
    assert_eq!(root.objects.as_ref().unwrap().len(), 2);
    let mut o = opts();
    o.app_of_apps = false;
    assert_eq!(render_repository(&repo(), &o).apps.len(), 5);
}

#[test]
fn app_of_apps_cycle_is_named() {
    let a = app("a", json!({"repoURL": REPO, "path": "b"}), "argocd");
    let b = app("b", json!({"repoURL": REPO, "path": "a"}), "argocd");
    let fs = MemFs::new()
        .with("/a/a.yaml", yaml(&a))
        .with("/b/b.yaml", yaml(&b));
    let r = render_repository(&fs, &opts());
    let cycles: Vec<String> = r
        .apps
        .iter()
        .filter_map(|x| x.objects.as_ref().err())
        .filter(|e| e.kind == ErrorKind::Cycle)
        .map(|e| e.message.clone())
        .collect();
    assert!(
        cycles.iter().any(|m| m.contains("a -> b -> a")),
        "{cycles:?}"
    );
}

#[test]
fn app_of_apps_budget() {
    // each level renders a child with a longer path: no cycle, but unbounded
    let mut fs = MemFs::new();
    for i in 0..5 {
        let child = app(
            &format!("l{}", i + 1),
            json!({"repoURL": REPO, "path": format!("l{}", i + 1)}),
            "argocd",
        );
        fs.add(format!("/l{i}/app.yaml"), yaml(&child));
    }
    let mut o = opts();
    o.max_depth = 0;
    let r = render_repository(&fs, &o);
    assert!(r.apps.iter().any(|a| a
        .objects
        .as_ref()
        .is_err_and(|e| e.kind == ErrorKind::Budget)));
}

#[test]
fn failing_appset_is_reported_with_its_file() {
    let set = appset(json!({"generators": [{"pullRequest": {}}], "template": {}}));
    let fs = MemFs::new()
        .with("/sets/pr.yaml", yaml(&set))
        .with(
            "/a.yaml",
            yaml(&app("ok", json!({"repoURL": REPO, "path": "d"}), "x")),
        )
        .with("/d/c.yaml", cm("c"));
    let r = render_repository(&fs, &opts());
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].file, "sets/pr.yaml");
    assert_eq!(r.errors[0].object, "ApplicationSet/set");
    assert!(r.apps[0].objects.is_ok());
}
