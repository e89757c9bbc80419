//! Hostile and edge-case charts, built in memory: every rule fails with a clear error
//! naming the chart or file and the limit, never a panic or a stack overflow, and fast.

use capstan_helm::{template, HelmError, TemplateOptions};
use capstan_vfs::MemFs;
use std::path::Path;

const CHART_YAML: &str = "apiVersion: v2\nname: hostile\nversion: 0.1.0\n";

fn chart(files: &[(&str, &str)]) -> MemFs {
    let mut fs = MemFs::new();
    fs.add("/c/Chart.yaml", CHART_YAML);
    for (name, body) in files {
        fs.add(format!("/c/{name}"), body);
    }
    fs
}

fn render(files: &[(&str, &str)]) -> Result<String, HelmError> {
    let fs = chart(files);
    template(&fs, Path::new("/c"), &TemplateOptions::default()).map(|r| r.output)
}

fn render_err(files: &[(&str, &str)]) -> String {
    match render(files) {
        Ok(out) => panic!("expected an error, rendered:\n{out}"),
        Err(e) => e.to_string(),
    }
}

// ---- .Files (Helm's `files`, a map[string][]byte) ----

#[test]
fn files_empty_glob_is_false_in_if() {
    let out = render(&[
        ("conf/a.txt", "A"),
        (
            "templates/cm.yaml",
            "{{- if .Files.Glob \"nothing/*\" }}\nempty: true\n{{- end }}\n{{- if .Files.Glob \"conf/*\" }}\nfull: true\n{{- end }}\n",
        ),
    ])
    .unwrap();
    assert!(!out.contains("empty: true"), "{out}");
    assert!(out.contains("full: true"), "{out}");
}

#[test]
fn files_as_config_and_as_secrets_of_an_empty_glob_print_empty_map() {
    let out = render(&[(
        "templates/cm.yaml",
        "a: {{ (.Files.Glob \"none/*\").AsConfig }}\nb: {{ (.Files.Glob \"none/*\").AsSecrets }}\n",
    )])
    .unwrap();
    assert!(out.contains("a: {}\nb: {}\n"), "{out}");
}

#[test]
fn files_as_config_as_secrets_lines_get() {
    let out = render(&[
        ("conf/a.txt", "x: 1\n"),
        ("conf/b.txt", "hello"),
        ("lines.txt", "one\ntwo\n"),
        ("empty.txt", ""),
        (
            "templates/cm.yaml",
            concat!(
                "cfg:\n{{ (.Files.Glob \"conf/*\").AsConfig | indent 2 }}\n",
                "sec:\n{{ (.Files.Glob \"conf/b.txt\").AsSecrets | indent 2 }}\n",
                "lines: {{ .Files.Lines \"lines.txt\" | toJson }}\n",
                "nolines: {{ .Files.Lines \"absent.txt\" | toJson }}\n",
                "emptylines: {{ .Files.Lines \"empty.txt\" | toJson }}\n",
                "get: {{ .Files.Get \"conf/b.txt\" }}\n",
                "missing: [{{ .Files.Get \"absent\" }}]\n",
            ),
        ),
    ])
    .unwrap();
    assert!(
        out.contains("cfg:\n  a.txt: |\n    x: 1\n  b.txt: hello\n"),
        "{out}"
    );
    assert!(out.contains("sec:\n  b.txt: aGVsbG8=\n"), "{out}");
    assert!(out.contains("lines: [\"one\",\"two\"]\n"), "{out}");
    assert!(out.contains("nolines: []\n"), "{out}");
    assert!(out.contains("emptylines: []\n"), "{out}");
    assert!(out.contains("get: hello\n"), "{out}");
    assert!(out.contains("missing: []\n"), "{out}");
}

#[test]
fn files_get_bytes_is_a_go_byte_slice() {
    // Helm's `GetBytes` returns []byte: Go prints it as numbers, Sprig's string functions
    // and `printf "%s"` see its text, encoding/json writes base64 (checked against Helm
    // v4.2.3)
    let out = render(&[
        ("f.txt", "hi"),
        (
            "templates/cm.yaml",
            concat!(
                "raw: {{ .Files.GetBytes \"f.txt\" | quote }}\n",
                "print: {{ print (.Files.GetBytes \"f.txt\") | quote }}\n",
                "missing: {{ print (.Files.GetBytes \"nope\") | quote }}\n",
                "str: {{ .Files.GetBytes \"f.txt\" | toString | quote }}\n",
                "len: {{ len (.Files.GetBytes \"f.txt\") | quote }}\n",
                "json: {{ .Files.GetBytes \"f.txt\" | toJson | quote }}\n",
                "typ: {{ typeOf (.Files.GetBytes \"f.txt\") | quote }}\n",
                "kind: {{ kindOf (.Files.GetBytes \"f.txt\") | quote }}\n",
                "range: {{ range .Files.GetBytes \"f.txt\" }}{{ . }}-{{ end }}\n",
                "printf: {{ printf \"%s\" (.Files.GetBytes \"f.txt\") | quote }}\n",
                "hex: {{ printf \"%x\" (.Files.GetBytes \"f.txt\") | quote }}\n",
                "yaml: {{ .Files.GetBytes \"f.txt\" | toYaml | quote }}\n",
                "empty: {{ empty (.Files.GetBytes \"nope\") | quote }}\n",
                "direct: \"{{ .Files.GetBytes \"f.txt\" }}\"\n",
                "idx: {{ index (.Files.GetBytes \"f.txt\") 0 | quote }}\n",
                "eq: {{ eq (.Files.GetBytes \"f.txt\" | toString) \"hi\" | quote }}\n",
            ),
        ),
    ])
    .unwrap();
    for want in [
        "raw: \"hi\"\n",
        "print: \"[104 105]\"\n",
        "missing: \"[]\"\n",
        "str: \"hi\"\n",
        "len: \"2\"\n",
        "json: \"\\\"aGk=\\\"\"\n",
        "typ: \"[]uint8\"\n",
        "kind: \"slice\"\n",
        "range: 104-105-\n",
        "printf: \"hi\"\n",
        "hex: \"6869\"\n",
        "yaml: \"aGk=\"\n",
        "empty: \"true\"\n",
        "direct: \"[104 105]\"\n",
        "idx: \"104\"\n",
        "eq: \"true\"\n",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    // Sprig's `b64enc` takes a string: Go refuses the []byte
    let err = render_err(&[
        ("f.txt", "hi"),
        (
            "templates/cm.yaml",
            "x: {{ .Files.GetBytes \"f.txt\" | b64enc }}\n",
        ),
    ]);
    assert!(
        err.contains("wrong type for value; expected string; got []uint8"),
        "{err}"
    );
}

// ---- include / tpl recursion ----

#[test]
fn include_self_recursion_is_helms_nested_reference_error() {
    let err = render_err(&[(
        "templates/cm.yaml",
        "{{ define \"loop\" }}{{ include \"loop\" . }}{{ end }}{{ include \"loop\" . }}\n",
    )]);
    assert!(
        err.contains(
            "rendering template has a nested reference name: loop: unable to execute template"
        ),
        "{err}"
    );
    assert!(err.contains("hostile/templates/cm.yaml"), "{err}");
    // one trace, not a thousand nested ones
    assert!(err.len() < 2_000, "{} bytes: {err}", err.len());
}

#[test]
fn include_cycle_of_three_templates_is_helms_error() {
    let err = render_err(&[
        (
            "templates/_h.tpl",
            "{{ define \"a\" }}{{ include \"b\" . }}{{ end }}{{ define \"b\" }}{{ include \"c\" . }}{{ end }}{{ define \"c\" }}{{ if true }}{{ with . }}{{ include \"a\" . }}{{ end }}{{ end }}{{ end }}",
        ),
        ("templates/cm.yaml", "x: {{ include \"a\" . }}\n"),
    ]);
    assert!(
        err.contains(
            "rendering template has a nested reference name: a: unable to execute template"
        ),
        "{err}"
    );
}

#[test]
fn include_cycle_through_many_templates_hits_the_total_nesting_limit() {
    // 20 names in a cycle: Helm's per-name count alone would allow 20 × 1001 levels
    let mut h = String::new();
    for i in 0..20 {
        h.push_str(&format!(
            "{{{{ define \"t{i}\" }}}}{{{{ include \"t{}\" . }}}}{{{{ end }}}}",
            (i + 1) % 20
        ));
    }
    let err = render_err(&[
        ("templates/_h.tpl", &h),
        ("templates/cm.yaml", "x: {{ include \"t0\" . }}\n"),
    ]);
    assert!(
        err.contains(&format!(
            "would nest deeper than {} include/tpl calls",
            capstan_helm::recursion::MAX_NESTING
        )),
        "{err}"
    );
}

#[test]
fn tpl_self_recursion_hits_the_total_nesting_limit() {
    let err = render_err(&[
        ("values.yaml", "a: '{{ tpl .Values.a . }}'\n"),
        ("templates/cm.yaml", "x: {{ tpl .Values.a . }}\n"),
    ]);
    assert!(err.contains("tpl would nest deeper than"), "{err}");
    assert!(err.contains("hostile/templates/cm.yaml"), "{err}");
}

#[test]
fn tpl_and_include_mutual_recursion_is_bounded() {
    let err = render_err(&[
        ("values.yaml", "a: '{{ include \"x\" . }}'\n"),
        (
            "templates/cm.yaml",
            "{{ define \"x\" }}{{ tpl .Values.a . }}{{ end }}x: {{ include \"x\" . }}\n",
        ),
    ]);
    assert!(
        err.contains(
            "rendering template has a nested reference name: x: unable to execute template"
        ),
        "{err}"
    );
}

#[test]
fn deep_but_finite_include_nesting_renders() {
    // 900 levels of one name: under Helm's 1000
    let out = render(&[
        ("values.yaml", "levels: 900\n"),
        (
            "templates/_h.tpl",
            "{{ define \"down\" }}{{ if gt (int .) 0 }}{{ include \"down\" (sub (int .) 1) }}{{ else }}bottom{{ end }}{{ end }}",
        ),
        ("templates/cm.yaml", "x: {{ include \"down\" .Values.levels }}\n"),
    ])
    .unwrap();
    assert!(out.contains("x: bottom"), "{out}");
}

#[test]
fn recursion_limit_errors_on_a_small_stack_thread() {
    // the caller's thread (a 256 KiB one here) does not matter: templates run on the
    // engine's own thread
    let h = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            render_err(&[(
                "templates/cm.yaml",
                "{{ define \"loop\" }}{{ include \"loop\" . }}{{ end }}{{ include \"loop\" . }}\n",
            )])
        })
        .unwrap();
    let err = h.join().unwrap();
    assert!(err.contains("nested reference name: loop"), "{err}");
}

// ---- YAML: alias expansion and nesting (go-yaml's limits) ----

/// A billion laughs: 9 levels of 9 aliases each expand to 9^9 (387 million) scalars.
fn laughs(indent: &str) -> String {
    let mut y = format!("{indent}a0: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 9].join(", ");
        y.push_str(&format!("{indent}a{i}: &a{i} [{items}]\n"));
    }
    y
}

#[test]
fn values_yaml_billion_laughs_fails_fast() {
    let err = render_err(&[
        ("values.yaml", &laughs("")),
        ("templates/cm.yaml", "x: 1\n"),
    ]);
    assert!(err.contains("cannot load values.yaml"), "{err}");
    assert!(
        err.contains("yaml: document contains excessive aliasing"),
        "{err}"
    );
}

#[test]
fn user_values_billion_laughs_fails_fast() {
    let fs = chart(&[("templates/cm.yaml", "x: 1\n")]);
    let opts = TemplateOptions {
        values_yaml: vec![laughs("")],
        ..TemplateOptions::default()
    };
    let err = template(&fs, Path::new("/c"), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to parse values"), "{err}");
    assert!(
        err.contains("yaml: document contains excessive aliasing"),
        "{err}"
    );
}

#[test]
fn chart_yaml_and_requirements_billion_laughs_fail_fast() {
    let mut fs = MemFs::new();
    fs.add(
        "/c/Chart.yaml",
        format!(
            "apiVersion: v2\nname: hostile\nversion: 0.1.0\nannotations:\n{}",
            laughs("  ")
        ),
    );
    let err = template(&fs, Path::new("/c"), &TemplateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot load Chart.yaml"), "{err}");
    assert!(err.contains("excessive aliasing"), "{err}");

    let mut fs = MemFs::new();
    fs.add(
        "/c/Chart.yaml",
        "apiVersion: v1\nname: hostile\nversion: 0.1.0\n",
    );
    fs.add(
        "/c/requirements.yaml",
        format!("dependencies: []\nx:\n{}", laughs("  ")),
    );
    let err = template(&fs, Path::new("/c"), &TemplateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot load requirements.yaml"), "{err}");
    assert!(err.contains("excessive aliasing"), "{err}");
}

#[test]
fn aliases_of_a_large_string_are_bounded_by_bytes() {
    // few nodes, but each alias copies a 1 MiB string
    let big = "x".repeat(1 << 20);
    let mut y = format!("s: &s \"{big}\"\nl: [");
    y.push_str(&vec!["*s"; 100].join(", "));
    y.push_str("]\n");
    let err = render_err(&[("values.yaml", &y), ("templates/cm.yaml", "x: 1\n")]);
    assert!(err.contains("excessive aliasing"), "{err}");
}

#[test]
fn moderate_aliasing_is_accepted() {
    let out = render(&[
        (
            "values.yaml",
            "base: &base {a: 1, b: [x, y]}\none: *base\ntwo:\n  <<: *base\n  c: 3\n",
        ),
        (
            "templates/cm.yaml",
            "x: {{ .Values.two.c }}{{ .Values.one.a }}\n",
        ),
    ])
    .unwrap();
    assert!(out.contains("x: 31"), "{out}");
}

#[test]
fn values_nested_deeper_than_the_limit_fail() {
    // block nesting: capstan's limit (go-yaml's is 10000)
    let deep = format!("a:\n{}x\n", "- ".repeat(20_000));
    let err = render_err(&[("values.yaml", &deep), ("templates/cm.yaml", "x: 1\n")]);
    assert!(err.contains("cannot load values.yaml"), "{err}");
    assert!(err.contains("exceeded max depth of 1000"), "{err}");
    // flow nesting: the parser's own (lower) limit
    let deep = format!("a: {}\n", "[".repeat(20_000));
    let err = render_err(&[("values.yaml", &deep), ("templates/cm.yaml", "x: 1\n")]);
    assert!(err.contains("cannot load values.yaml"), "{err}");
    assert!(err.contains("recursion limit exceeded"), "{err}");
}

#[test]
fn values_nested_to_the_limit_render_from_a_small_stack_thread() {
    let h = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let deep = format!("a:\n{}x\n", "- ".repeat(998));
            render(&[
                ("values.yaml", &deep),
                ("templates/cm.yaml", "x: {{ len .Values.a }}\n"),
            ])
        })
        .unwrap();
    let out = h.join().unwrap().unwrap();
    assert!(out.contains("x: 1"), "{out}");
}

#[test]
fn values_nested_to_the_limit_load_and_drop_on_a_default_test_thread() {
    let deep = format!("a:\n{}x\n", "- ".repeat(998));
    let v = capstan_helm::yaml::parse_values(&deep).unwrap();
    drop(v);
}

// ---- renders run on the calling thread, growing its stack where they nest deep ----

/// Runs `f` on a thread with a 256 KiB stack (far less than any render needs).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deep_values_validate_against_a_recursive_schema_on_a_small_stack_thread() {
    // a schema that recurses with the instance: validation nests as deep as the values
    let schema = r##"{"$defs": {"any": {"anyOf": [
        {"type": "array", "items": {"$ref": "#/$defs/any"}},
        {"type": "object", "additionalProperties": {"$ref": "#/$defs/any"}},
        {"type": "string"}]}},
      "type": "object", "additionalProperties": {"$ref": "#/$defs/any"}}"##;
    let out = on_small_stack(move || {
        let deep = format!("a:\n{}x\n", "- ".repeat(998));
        render(&[
            ("values.yaml", &deep),
            ("values.schema.json", schema),
            ("templates/cm.yaml", "x: {{ len .Values.a }}\n"),
        ])
    })
    .unwrap();
    assert!(out.contains("x: 1"), "{out}");
    // and a violation 998 levels down is reported at its path
    let err = on_small_stack(move || {
        let deep = format!("a:\n{}7\n", "- ".repeat(998));
        render(&[
            ("values.yaml", &deep),
            ("values.schema.json", schema),
            ("templates/cm.yaml", "x: 1\n"),
        ])
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("values don't meet the specifications of the schema"),
        "{err}"
    );
}

#[test]
fn deep_include_nesting_renders_on_a_small_stack_thread() {
    // 900 nested includes (under Helm's per-name limit), from a 256 KiB thread
    let out = on_small_stack(|| {
        render(&[(
            "templates/cm.yaml",
            r#"{{- define "down" -}}{{ if gt (int .) 0 }}{{ include "down" (sub (int .) 1) }}{{ else }}bottom{{ end }}{{- end -}}
x: {{ include "down" 900 }}
"#,
        )])
    })
    .unwrap();
    assert!(out.contains("x: bottom"), "{out}");
}

#[test]
fn set_names_nested_deeper_than_helms_limit_fail() {
    // Helm's strvals.MaxNestedNameLevel (30)
    let fs = chart(&[("templates/cm.yaml", "x: 1\n")]);
    let ok = format!("{}=1", vec!["n"; 31].join("."));
    let opts = TemplateOptions {
        set: vec![ok],
        ..Default::default()
    };
    template(&fs, Path::new("/c"), &opts).unwrap();
    let deep = format!("{}=1", vec!["n"; 32].join("."));
    let opts = TemplateOptions {
        set: vec![deep],
        ..Default::default()
    };
    let err = template(&fs, Path::new("/c"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "value name nested level is greater than maximum supported nested level of 30"
        ),
        "{err}"
    );
}

#[test]
fn set_lists_nested_without_bound_fail_at_the_value_depth_limit() {
    let fs = chart(&[("templates/cm.yaml", "x: 1\n")]);
    let deep = format!("a{}=1", "[0]".repeat(100_000));
    let opts = TemplateOptions {
        set: vec![deep],
        ..Default::default()
    };
    let err = on_small_stack(move || template(&fs, Path::new("/c"), &opts).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "list index nested level is greater than maximum supported nested level of 1000"
        ),
        "{err}"
    );
}

#[test]
fn set_lists_nested_to_the_limit_render_on_a_small_stack_thread() {
    let fs = chart(&[("templates/cm.yaml", "x: {{ len .Values.a }}\n")]);
    let deep = format!("a{}=1", "[0]".repeat(999));
    let opts = TemplateOptions {
        set: vec![deep],
        ..Default::default()
    };
    let out =
        on_small_stack(move || template(&fs, Path::new("/c"), &opts).map(|r| r.output)).unwrap();
    assert!(out.contains("x: 1"), "{out}");
}
