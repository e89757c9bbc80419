//! Hostile templates: every limit is an error naming it (or Go's own result), never a panic,
//! a stack overflow, or unbounded time or memory. Templates run on a thread with a small
//! stack, as the agent's are, to show that no caller needs a big stack.

use capstan_gotemplate::fmt::{sprintf, try_sprintf};
use capstan_gotemplate::limits::{MAX_NESTING_DEPTH, MAX_PAREN_DEPTH};
use capstan_gotemplate::{FuncMap, Map, MapRef, Options, TemplateSet, Value, MAX_EXEC_DEPTH};

/// Runs `f` on a thread with a 256 KiB stack (a stack overflow would abort the test
/// binary; a panic fails the test).
fn small_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

fn render_with(src: &str, data: &Value, options: Options) -> Result<String, String> {
    let mut set = TemplateSet::new(FuncMap::new()).with_options(options);
    set.add("t", src).map_err(|e| e.to_string())?;
    set.execute("t", data).map_err(|e| e.to_string())
}

fn render(src: &str) -> Result<String, String> {
    render_with(src, &Value::Nil, Options::default())
}

#[test]
fn infinite_template_recursion_is_gos_max_exec_depth_error() {
    let r = small_stack(|| {
        render(r#"{{ define "loop" }}{{ template "loop" . }}{{ end }}{{ template "loop" . }}"#)
    });
    let e = r.unwrap_err();
    assert!(
        e.contains(&format!(
            "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
        )),
        "{e}"
    );
    assert!(
        e.contains(r#"executing "loop" at <{{template "loop" .}}>"#),
        "{e}"
    );
}

#[test]
fn template_depth_is_configurable() {
    let options = Options {
        max_exec_depth: 10,
        ..Options::default()
    };
    let src = r#"{{ define "d" }}{{ if lt . 20 }}{{ . }}{{ template "d" (add1 .) }}{{ end }}{{ end }}{{ template "d" 0 }}"#;
    let mut funcs = FuncMap::new();
    funcs.add("add1", |_, a| match a.first() {
        Some(Value::Int(i)) => Ok(Value::Int(i + 1)),
        _ => Err("int".into()),
    });
    let mut set = TemplateSet::new(funcs).with_options(options);
    set.add("t", src).unwrap();
    let e = set.execute("t", &Value::Nil).unwrap_err().to_string();
    assert!(e.contains("exceeded maximum template depth (10)"), "{e}");
}

#[test]
fn nested_parentheses_beyond_gos_max_stack_depth_are_a_parse_error() {
    let n = MAX_PAREN_DEPTH + 1;
    let src = format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    let e = small_stack(|| render(&src)).unwrap_err();
    assert_eq!(e, "template: t:1: max expression depth exceeded");
    // Go's limit itself parses and runs
    let n = MAX_PAREN_DEPTH;
    let src = format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    assert_eq!(small_stack(|| render(&src)).unwrap(), "1");
}

#[test]
fn nested_controls_beyond_the_nesting_budget_are_a_parse_error() {
    let n = MAX_NESTING_DEPTH + 1;
    let src = format!("{}x{}", "{{ if 1 }}".repeat(n), "{{ end }}".repeat(n));
    let e = small_stack(|| render(&src)).unwrap_err();
    assert!(e.contains("max nesting depth exceeded"), "{e}");
    assert!(e.contains(&MAX_NESTING_DEPTH.to_string()), "{e}");
    // an else-if chain nests too
    let src = format!(
        "{{{{ if 0 }}}}{}{{{{ end }}}}",
        "{{ else if 0 }}".repeat(MAX_NESTING_DEPTH + 1)
    );
    let e = small_stack(|| render(&src)).unwrap_err();
    assert!(e.contains("max nesting depth exceeded"), "{e}");
}

#[test]
fn deep_but_allowed_nesting_runs_on_a_small_stack() {
    let n = 3000;
    let src = format!(
        "{}x{}",
        "{{ range $i := list 1 }}{{ with . }}".repeat(n / 2),
        "{{ end }}{{ end }}".repeat(n / 2)
    );
    let mut funcs = FuncMap::new();
    funcs.add("list", |_, a| Ok(Value::list(a.to_vec())));
    let out = small_stack(|| {
        let mut set = TemplateSet::new(funcs);
        set.add("t", &src).map_err(|e| e.to_string())?;
        set.execute("t", &Value::Nil).map_err(|e| e.to_string())
    });
    assert_eq!(out.unwrap(), "x");
    let src = format!(
        "{{{{ if 0 }}}}{}{{{{ else }}}}y{{{{ end }}}}",
        "{{ else if 0 }}".repeat(n)
    );
    assert_eq!(small_stack(|| render(&src)).unwrap(), "y");
}

#[test]
fn printf_huge_precision_is_gos_noverb_not_minutes() {
    // Go's fmt.parsenum gives up on numbers past 10^6 and consumes the rest of the format
    assert_eq!(
        render(r#"{{ printf "%.99999999999d" 1 }}"#).unwrap(),
        "%!(NOVERB)%!(EXTRA int=1)"
    );
    assert_eq!(
        render(r#"{{ printf "%99999999999d|" 1 }}"#).unwrap(),
        "%!(NOVERB)%!(EXTRA int=1)"
    );
    // `*` beyond 10^6 is a bad width/precision
    assert_eq!(
        render(r#"{{ printf "%*d" 2000000 1 }}"#).unwrap(),
        "%!(BADWIDTH)1"
    );
    assert_eq!(
        render(r#"{{ printf "%.*d" 2000000 1 }}"#).unwrap(),
        "%!(BADPREC)1"
    );
}

#[test]
fn printf_width_and_precision_past_65535_format_as_go() {
    let s = render(r#"{{ printf "%.70000f" 1.5 }}"#).unwrap();
    assert_eq!(s.len(), 2 + 70000);
    assert!(s.starts_with("1.5000") && s.ends_with('0'));
    let s = render(r#"{{ printf "%.70000e" 1.5 }}"#).unwrap();
    assert!(
        s.starts_with("1.50000") && s.ends_with("0e+00"),
        "{}",
        &s[s.len() - 10..]
    );
    assert_eq!(s.len(), 2 + 70000 + 4);
    let s = render(r#"{{ printf "%70000d" 7 }}"#).unwrap();
    assert_eq!(s.len(), 70000);
    assert!(s.ends_with(" 7"));
    let s = render(r#"{{ printf "%.1000000d" 7 }}"#).unwrap();
    assert_eq!(s.len(), 1_000_000);
    assert!(s.ends_with("07"));
    assert_eq!(
        render(r#"{{ printf "%.3g" 1234567.0 }}"#).unwrap(),
        "1.23e+06"
    );
    assert_eq!(
        render(r#"{{ printf "%.70000g" 0.5 }}"#).unwrap(),
        "0.5",
        "%g prints the exact digits only"
    );
}

#[test]
fn printf_total_size_is_bounded() {
    let format = "%9999999d".repeat(8);
    let args: Vec<Value> = (0..8).map(Value::Int).collect();
    let e = try_sprintf(&format, &args).unwrap_err();
    assert!(e.message("printf").contains("exceeds the limit"));
    // the unchecked form stops at the limit instead of growing without bound
    assert!(sprintf(&format, &args).len() < 80 << 20);
}

fn cyclic_map() -> Value {
    let m = MapRef::new(Map::new());
    m.insert("self", Value::Map(m.clone()));
    Value::Map(m)
}

#[test]
fn printing_a_map_that_contains_itself_is_an_error() {
    let d = cyclic_map();
    let e = small_stack(|| render_with("{{ . }}", &d, Options::default())).unwrap_err();
    assert!(e.contains("nested deeper than 10000 levels"), "{e}");
    let e =
        small_stack(|| render_with(r#"{{ printf "%v" . }}"#, &d, Options::default())).unwrap_err();
    assert!(e.contains("error calling printf"), "{e}");
    let e = small_stack(|| render_with("{{ print . }}", &d, Options::default())).unwrap_err();
    assert!(e.contains("nested deeper"), "{e}");
    assert!(small_stack(|| d.try_deep_copy()).is_err());
    assert!(!small_stack(|| d.deep_equal(&cyclic_map())));
}

#[test]
fn output_size_is_bounded() {
    let options = Options {
        max_output_bytes: 1000,
        ..Options::default()
    };
    let e = render_with(
        "{{ range 100000 }}0123456789{{ end }}",
        &Value::Nil,
        options,
    )
    .unwrap_err();
    assert!(e.contains("output exceeds the limit of 1000 bytes"), "{e}");
}
