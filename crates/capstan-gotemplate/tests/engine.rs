//! Engine behaviour, from Go's text/template documentation and exec_test.go semantics.

use capstan_gotemplate::fmt::{format_float, sprintf};
use capstan_gotemplate::{FuncMap, MissingKey, Options, TemplateSet, Value};
use serde_json::json;

fn render(src: &str, data: serde_json::Value) -> Result<String, String> {
    let mut set = TemplateSet::new(FuncMap::new());
    set.add("t", src).map_err(|e| e.to_string())?;
    set.execute("t", &Value::from_json_typed(&data))
        .map_err(|e| e.to_string())
}

fn ok(src: &str, data: serde_json::Value) -> String {
    render(src, data).unwrap()
}

#[test]
fn text_and_fields() {
    assert_eq!(ok("hello {{.a.b}}!", json!({"a": {"b": "x"}})), "hello x!");
    assert_eq!(ok("{{.missing}}", json!({})), "<no value>");
    assert_eq!(ok("{{ $x := 3 }}{{ $x }}", json!({})), "3");
    assert_eq!(ok("{{ $x := 3 }}{{ $x = 4 }}{{ $x }}", json!({})), "4");
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(ok("a  {{- 1 -}}  b", json!({})), "a1b");
    assert_eq!(ok("a \n{{- /* c */ -}}\n b", json!({})), "ab");
    assert_eq!(ok("a{{/* c */}}b", json!({})), "ab");
    assert_eq!(ok("{{-3}}", json!({})), "-3");
}

#[test]
fn control_flow() {
    let d = json!({"t": true, "f": false, "l": [1, 2, 3], "m": {"b": 2, "a": 1}});
    assert_eq!(ok("{{if .t}}y{{else}}n{{end}}", d.clone()), "y");
    assert_eq!(
        ok("{{if .f}}1{{else if .t}}2{{else}}3{{end}}", d.clone()),
        "2"
    );
    assert_eq!(ok("{{with .m.a}}{{.}}{{end}}", d.clone()), "1");
    assert_eq!(
        ok("{{with .nope}}x{{else with .m.b}}{{.}}{{end}}", d.clone()),
        "2"
    );
    assert_eq!(ok("{{range .l}}{{.}},{{end}}", d.clone()), "1,2,3,");
    assert_eq!(
        ok("{{range $i, $v := .l}}{{$i}}={{$v}} {{end}}", d.clone()),
        "0=1 1=2 2=3 "
    );
    assert_eq!(
        ok("{{range $k, $v := .m}}{{$k}}={{$v}} {{end}}", d.clone()),
        "a=1 b=2 "
    );
    assert_eq!(
        ok("{{range .nope}}x{{else}}empty{{end}}", d.clone()),
        "empty"
    );
    assert_eq!(ok("{{range 3}}{{.}}{{end}}", d.clone()), "012");
    assert_eq!(
        ok(
            "{{range .l}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}",
            d.clone()
        ),
        "1"
    );
    // variables declared in a block are scoped to it
    assert!(render("{{if true}}{{$x := 1}}{{end}}{{$x}}", json!({})).is_err());
}

#[test]
fn define_template_block() {
    let mut set = TemplateSet::new(FuncMap::new());
    set.add(
        "a",
        r#"{{define "x"}}X{{.}}{{end}}{{template "x" 1}}{{block "b" 2}}B{{.}}{{end}}"#,
    )
    .unwrap();
    assert_eq!(set.execute("a", &Value::Nil).unwrap(), "X1B2");
    // redefinition replaces, empty does not
    set.add("c", r#"{{define "x"}}Y{{end}}{{define "b"}} {{end}}"#)
        .unwrap();
    assert_eq!(set.execute("a", &Value::Nil).unwrap(), "YB2");
    assert!(set.names().contains(&"x".to_string()));
}

#[test]
fn and_or_not_comparisons() {
    assert_eq!(ok("{{and 1 0 2}}", json!({})), "0");
    assert_eq!(ok("{{and 1 2}}", json!({})), "2");
    assert_eq!(ok("{{or 0 \"\" 3}}", json!({})), "3");
    assert_eq!(ok("{{or 0 \"\"}}", json!({})), "");
    // short circuit: the failing call is never made
    assert_eq!(ok("{{or 1 (index .x 5)}}", json!({})), "1");
    assert_eq!(ok("{{not 0}}", json!({})), "true");
    assert_eq!(ok("{{eq 1 2 3 1}}", json!({})), "true");
    assert_eq!(ok("{{eq .s \"a\"}}", json!({"s": "a"})), "true");
    assert_eq!(ok("{{eq .missing \"a\"}}", json!({})), "false");
    assert_eq!(
        ok(
            "{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}} {{ne 1 2}}",
            json!({})
        ),
        "true true false true true"
    );
    let e = render("{{eq 1 1.5}}", json!({})).unwrap_err();
    assert!(e.contains("incompatible types for comparison"), "{e}");
    let e = render("{{lt true false}}", json!({})).unwrap_err();
    assert!(e.contains("invalid type for comparison"), "{e}");
}

#[test]
fn builtins() {
    assert_eq!(ok("{{index .l 1}}", json!({"l": [1, 2]})), "2");
    assert_eq!(ok("{{index .m \"k\"}}", json!({"m": {"k": "v"}})), "v");
    assert_eq!(
        ok("{{len .l}} {{len \"abc\"}}", json!({"l": [1, 2]})),
        "2 3"
    );
    assert_eq!(ok("{{slice \"abcd\" 1 3}}", json!({})), "bc");
    assert_eq!(ok("{{print 1 2 \"a\" 3}}", json!({})), "1 2a3");
    assert_eq!(ok("{{println 1 \"a\"}}", json!({})), "1 a\n");
    assert_eq!(
        ok("{{html \"<a&'\\\"\"}}", json!({})),
        "&lt;a&amp;&#39;&#34;"
    );
    assert_eq!(ok("{{urlquery \"a b&c\"}}", json!({})), "a+b%26c");
    assert_eq!(ok("{{js \"a'b\"}}", json!({})), "a\\'b");
    assert_eq!(
        ok(
            "{{ 'a' }} {{ 0x10 }} {{ 1e3 }} {{ 1.5 }} {{ `raw\\n` }}",
            json!({})
        ),
        "97 16 1000 1.5 raw\\n"
    );
    assert_eq!(ok("{{ \"x\" | printf \"%s-%s\" \"y\" }}", json!({})), "y-x");
    assert_eq!(ok("{{ (index .l 0).a }}", json!({"l": [{"a": 5}]})), "5");
}

#[test]
fn printing_values() {
    let d = Value::from_json(
        &json!({"f": 1000000, "g": 1.5, "i": 123456, "m": {"b": [1, "x"], "a": null}}),
    );
    let mut set = TemplateSet::new(FuncMap::new());
    set.add("t", "{{.f}} {{.g}} {{.i}} {{.m}}").unwrap();
    assert_eq!(
        set.execute("t", &d).unwrap(),
        "1e+06 1.5 123456 map[a:<nil> b:[1 x]]"
    );
}

#[test]
fn missing_key_modes() {
    let d = Value::from_json(&json!({"a": {}}));
    let mut set = TemplateSet::new(FuncMap::new());
    set.add("t", "{{.a.b.c}}").unwrap();
    let e = set.execute("t", &d).unwrap_err().to_string();
    assert_eq!(
        e,
        "template: t:1:4: executing \"t\" at <.a.b.c>: nil pointer evaluating interface {}.c"
    );
    let mut set = TemplateSet::new(FuncMap::new()).with_options(Options {
        missing_key: MissingKey::Error,
        ..Default::default()
    });
    set.add("t", "{{.a.b}}").unwrap();
    let e = set.execute("t", &d).unwrap_err().to_string();
    assert!(e.contains("map has no entry for key \"b\""), "{e}");
}

#[test]
fn errors_look_like_go() {
    let e = render("a\n{{ nope }}", json!({})).unwrap_err();
    assert_eq!(e, "template: t:2: function \"nope\" not defined");
    let e = render("{{ index .l 5 }}", json!({"l": []})).unwrap_err();
    assert_eq!(e, "template: t:1:3: executing \"t\" at <index .l 5>: error calling index: index out of range: 5");
    let e = render("{{template \"zz\"}}", json!({})).unwrap_err();
    assert!(e.contains("template \"zz\" not defined"), "{e}");
    assert!(render("{{end}}", json!({})).is_err());
    assert!(render("{{if}}{{end}}", json!({})).is_err());
    assert!(render("{{ .a", json!({})).is_err());
}

#[test]
fn include_and_tpl() {
    let mut set = TemplateSet::new(FuncMap::new());
    set.add("h", r#"{{define "n"}}name-{{.}}{{end}}"#).unwrap();
    set.add("t", r#"{{include "n" "x" | printf "[%s]"}} {{tpl "{{ .a }}{{ include \"n\" 1 }}" .}} {{tpl "{{.nope}}" .}}|"#)
        .unwrap();
    let d = Value::from_json(&json!({"a": "A"}));
    assert_eq!(set.execute("t", &d).unwrap(), "[name-x] Aname-1 |");
    let e = set.execute("h", &d);
    assert!(e.is_ok());
    let mut set2 = TemplateSet::new(FuncMap::new());
    set2.add("t", r#"{{include "missing" .}}"#).unwrap();
    let e = set2.execute("t", &d).unwrap_err().to_string();
    assert!(
        e.contains("no template \"missing\" associated with template \"gotpl\""),
        "{e}"
    );
}

#[test]
fn sprintf_verbs() {
    let v = |j: serde_json::Value| Value::from_json_typed(&j);
    assert_eq!(
        sprintf(
            "%s|%v|%d|%q",
            &[
                v(json!("a")),
                v(json!([1, 2])),
                v(json!(42)),
                v(json!("x\"y"))
            ]
        ),
        "a|[1 2]|42|\"x\\\"y\""
    );
    assert_eq!(
        sprintf(
            "%5d|%-5d|%05d|%x|%X|%o|%b|%c",
            &[
                v(json!(42)),
                v(json!(42)),
                v(json!(-42)),
                v(json!(255)),
                v(json!(255)),
                v(json!(8)),
                v(json!(5)),
                v(json!(65))
            ]
        ),
        "   42|42   |-0042|ff|FF|10|101|A"
    );
    assert_eq!(
        sprintf(
            "%.2f|%8.3f|%e|%g|%v",
            &[
                Value::Float(3.25159),
                Value::Float(2.5),
                Value::Float(1234.5678),
                Value::Float(0.000012),
                Value::Float(1e21)
            ]
        ),
        "3.25|   2.500|1.234568e+03|1.2e-05|1e+21"
    );
    assert_eq!(
        sprintf("%t|%v|%s", &[Value::Bool(true), Value::Nil, Value::Nil]),
        "true|<nil>|%!s(<nil>)"
    );
    assert_eq!(sprintf("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
    assert_eq!(sprintf("%d", &[Value::from("x")]), "%!d(string=x)");
    assert_eq!(sprintf("x", &[Value::Int(1)]), "x%!(EXTRA int=1)");
    assert_eq!(
        sprintf("%%|%6.2s|%-4s|", &[Value::from("abc"), Value::from("a")]),
        "%|    ab|a   |"
    );
    assert_eq!(
        sprintf(
            "%T %T %T",
            &[Value::Float(1.0), Value::Int64(1), Value::from("")]
        ),
        "float64 int64 string"
    );
}

#[test]
fn float_formatting() {
    assert_eq!(format_float(1000000.0, 'g', -1), "1e+06");
    assert_eq!(format_float(123456.0, 'g', -1), "123456");
    assert_eq!(format_float(0.0001, 'g', -1), "0.0001");
    assert_eq!(format_float(0.00001, 'g', -1), "1e-05");
    assert_eq!(format_float(1.5, 'g', -1), "1.5");
    assert_eq!(format_float(-2.0, 'g', -1), "-2");
    assert_eq!(format_float(100.0, 'g', 2), "1e+02");
    assert_eq!(format_float(1.0, 'e', -1), "1e+00");
    assert_eq!(format_float(0.1, 'f', -1), "0.1");
}

#[test]
fn objects_fields_and_methods() {
    use capstan_gotemplate::StructObject;
    let caps = StructObject::new("*chartutil.Capabilities")
        .with_field(
            "APIVersions",
            StructObject::new("chartutil.VersionSet")
                .with_method("Has", |a| {
                    Ok(Value::Bool(
                        a.first().and_then(|v| v.as_str()) == Some("v1"),
                    ))
                })
                .into_value(),
        )
        .into_value();
    let mut m = capstan_gotemplate::Map::new();
    m.insert("Capabilities".into(), caps);
    let d = Value::map(m);
    let mut set = TemplateSet::new(FuncMap::new());
    set.add(
        "t",
        r#"{{ .Capabilities.APIVersions.Has "v1" }} {{ .Capabilities.APIVersions.Has "x" }}"#,
    )
    .unwrap();
    assert_eq!(set.execute("t", &d).unwrap(), "true false");
    set.add("u", "{{ .Capabilities.Nope }}").unwrap();
    let e = set.execute("u", &d).unwrap_err().to_string();
    assert!(
        e.contains("can't evaluate field Nope in type *chartutil.Capabilities"),
        "{e}"
    );
}

#[test]
fn maps_are_references() {
    let mut f = FuncMap::new();
    f.add("set", |_, a| {
        a[0].as_map()
            .unwrap()
            .insert(a[1].as_str().unwrap(), a[2].clone());
        Ok(a[0].clone())
    });
    let mut set = TemplateSet::new(f);
    set.add("t", r#"{{ $_ := set .m "k" 1 }}{{ .m.k }}"#)
        .unwrap();
    let d = Value::from_json_typed(&json!({"m": {}}));
    assert_eq!(set.execute("t", &d).unwrap(), "1");
}

#[test]
fn range_and_len_over_map_and_slice_objects() {
    use capstan_gotemplate::{Map, StructObject};
    let mut m = Map::new();
    m.insert("b".into(), Value::str("2"));
    m.insert("a".into(), Value::str("1"));
    let files = StructObject::new("engine.files")
        .with_kind("map")
        .with_data(Value::map(m))
        .into_value();
    let apis = StructObject::new("common.VersionSet")
        .with_kind("slice")
        .with_data(Value::list(vec![Value::str("v1"), Value::str("apps/v1")]))
        .into_value();
    let ptr = StructObject::new("*x.T")
        .with_field("A", Value::str("a"))
        .with_data(Value::list(vec![Value::str("v1")]))
        .into_value();
    let mut root = Map::new();
    root.insert("F".into(), files);
    root.insert("A".into(), apis);
    root.insert("P".into(), ptr);
    let root = Value::map(root);
    let mut set = TemplateSet::new(FuncMap::new());
    set.add(
        "t",
        "{{ range $k, $v := .F }}{{ $k }}={{ $v }} {{ end }}{{ len .F }}|\
         {{ $a := .A }}{{ range $i, $v := $a }}{{ $i }}:{{ $v }} {{ end }}{{ len $a }}",
    )
    .unwrap();
    assert_eq!(
        set.execute("t", &root).unwrap(),
        "a=1 b=2 2|0:v1 1:apps/v1 2"
    );
    set.add("p", "{{ range .P }}x{{ end }}").unwrap();
    let e = set.execute("p", &root).unwrap_err().to_string();
    assert!(e.ends_with("range can't iterate over &{a}"), "{e}");
    set.add("l", "{{ len .P }}").unwrap();
    let e = set.execute("l", &root).unwrap_err().to_string();
    assert!(e.ends_with("len of type *x.T"), "{e}");
}

#[test]
fn error_texts_as_go_prints_them() {
    // unclosed action: reported at the end of the file, naming where the action started
    let e = render("a: 1\nb: {{ .x\n\n  | quote \n", json!({})).unwrap_err();
    assert_eq!(e, "template: t:5: unclosed action started at t:2");
    let e = render("a: {{ 1 }} {{ .x", json!({})).unwrap_err();
    assert_eq!(e, "template: t:1: unclosed action");
    let e = render("{{ \"x\n  }}\n", json!({})).unwrap_err();
    assert_eq!(e, "template: t:1: unterminated quoted string");
    // a template node is positioned at its name
    let e = render("a: 1\nb: x {{ template \"nope\" }}\n", json!({})).unwrap_err();
    assert_eq!(
        e,
        "template: t:2:17: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined"
    );
    // wrong argument count: at the function's identifier, without `error calling`
    let e = render(
        "{{ define \"x\" }}y{{ end }}b:  {{ include \"x\" }}",
        json!({}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "template: t:1:33: executing \"t\" at <include>: wrong number of args for include: want 2 got 1"
    );
    let e = render("{{ \"a\" | len 1 }}", json!({})).unwrap_err();
    assert_eq!(
        e,
        "template: t:1:9: executing \"t\" at <len>: wrong number of args for len: want 1 got 2"
    );
}
