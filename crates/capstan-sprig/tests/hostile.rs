//! Sprig and Helm functions on hostile or edge input: Go's result (checked against Sprig's,
//! Helm's and Go's source) or an error naming the limit, never a panic or a stack overflow.
//! Templates run on a thread with a small stack, as the agent's are.

use capstan_gotemplate::{TemplateSet, Value};
use serde_json::json;

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

fn render(src: &str, data: serde_json::Value) -> Result<String, String> {
    small_stack(|| {
        let mut set = TemplateSet::new(capstan_sprig::funcs(Default::default()));
        set.add("t", src).map_err(|e| e.to_string())?;
        set.execute("t", &Value::from_json(&data))
            .map_err(|e| e.to_string())
    })
}

fn ok(src: &str) -> String {
    render(src, json!({})).unwrap()
}

fn err(src: &str) -> String {
    render(src, json!({})).unwrap_err()
}

// ---- A: Go's conversion of nil to a map parameter ----

#[test]
fn nil_map_from_a_variable_or_pipeline_reads_as_empty() {
    // `lookup` is an empty map offline; `.data` on it is nil (missingkey=zero)
    let src = r#"{{ $d := (lookup "v1" "Secret" "ns" "n").data }}{{ hasKey $d "k" }} {{ get $d "k" | quote }} {{ keys $d }} {{ values $d }} {{ pick $d "k" }} {{ omit $d "k" }} {{ len (pluck "k" $d) }}"#;
    assert_eq!(ok(src), r#"false "" [] [] map[] map[] 0"#);
    // a parenthesised pipeline is dug out of its interface too
    assert_eq!(
        ok(r#"{{ hasKey ((lookup "v1" "Secret" "ns" "n").data) "k" }}"#),
        "false"
    );
    assert_eq!(ok(r#"{{ hasKey (.missing) "k" }}"#), "false");
    assert_eq!(ok(r#"{{ $m := .missing }}{{ unset $m "k" }}"#), "map[]");
    // mergo makes a nil destination a new map
    assert_eq!(
        ok(r#"{{ $m := .missing }}{{ merge $m (dict "a" 1) }}"#),
        "map[a:1]"
    );
}

#[test]
fn nil_map_read_from_a_field_is_gos_type_error() {
    // evalArg of a field keeps Go's nil interface{} value, which validateType refuses
    let e = err(r#"{{ hasKey (lookup "v1" "Secret" "ns" "n").data "k" }}"#);
    assert!(
        e.contains("wrong type for value; expected map[string]interface {}; got interface {}"),
        "{e}"
    );
    let e = err(r#"{{ keys .missing }}"#);
    assert!(e.contains("got interface {}"), "{e}");
    // assigning to a nil map panics in Go
    let e = err(r#"{{ $m := .missing }}{{ set $m "k" 1 }}"#);
    assert!(
        e.contains("error calling set: assignment to entry in nil map"),
        "{e}"
    );
}

#[test]
fn dig_on_nil_fails_as_gos_type_assertion() {
    let e = err(r#"{{ $m := .missing }}{{ dig "a" "def" $m }}"#);
    assert!(
        e.contains(
            "error calling dig: interface conversion: interface {} is nil, not map[string]interface {}"
        ),
        "{e}"
    );
    let e = err(r#"{{ dig "a" "b" "def" (dict "a" "str") }}"#);
    assert!(e.contains("interface {} is string, not map"), "{e}");
    let e = err(r#"{{ dig 1 "def" (dict) }}"#);
    assert!(e.contains("interface {} is int, not string"), "{e}");
    assert_eq!(
        ok(r#"{{ dig "a" "b" "def" (dict "a" (dict "b" 2)) }}"#),
        "2"
    );
    assert_eq!(
        ok(r#"{{ dig "a" "x" "def" (dict "a" (dict "b" 2)) }}"#),
        "def"
    );
}

#[test]
fn default_empty_coalesce_ternary_on_nil() {
    assert_eq!(ok(r#"{{ default "d" .missing }}"#), "d");
    assert_eq!(ok(r#"{{ $m := .missing }}{{ default "d" $m }}"#), "d");
    assert_eq!(
        ok(r#"{{ empty .missing }} {{ empty (dict) }}"#),
        "true true"
    );
    assert_eq!(ok(r#"{{ coalesce .missing "" "x" }}"#), "x");
    assert_eq!(ok(r#"{{ coalesce .missing }}"#), "<no value>");
    assert_eq!(ok(r#"{{ ternary "a" "b" true }}"#), "a");
    // func ternary(vt, vf interface{}, v bool): nil and non-bools are Go's argument errors
    let e = err(r#"{{ ternary "a" "b" .missing }}"#);
    assert!(
        e.contains("wrong type for value; expected bool; got interface {}"),
        "{e}"
    );
    let e = err(r#"{{ $m := .missing }}{{ ternary "a" "b" $m }}"#);
    assert!(e.contains("invalid value; expected bool"), "{e}");
    let e = err(r#"{{ ternary "a" "b" "true" }}"#);
    assert!(e.contains("expected bool"), "{e}");
}

// ---- B: panics removed ----

#[test]
fn trunc_cuts_bytes_and_drops_a_cut_character() {
    // "é" is 2 bytes: Go's s[:2] of "aéb" is "a\xc3", an invalid fragment
    assert_eq!(ok(r#"{{ trunc 2 "aéb" }}"#), "a");
    assert_eq!(ok(r#"{{ trunc 3 "aéb" }}"#), "aé");
    assert_eq!(ok(r#"{{ trunc -2 "aéb" }}"#), "b");
    assert_eq!(ok(r#"{{ trunc -3 "aéb" }}"#), "éb");
    let name = format!("{}é-suffix", "x".repeat(62));
    let out = ok(&format!(r#"{{{{ trunc 63 "{name}" }}}}"#));
    assert_eq!(out, "x".repeat(62));
    assert_eq!(ok(r#"{{ trunc 10 "short" }}"#), "short");
    assert_eq!(ok(r#"{{ trunc -10 "short" }}"#), "short");
}

#[test]
fn int64_math_wraps_and_divides_as_go() {
    let min = i64::MIN;
    let max = i64::MAX;
    assert_eq!(ok(&format!("{{{{ div {min} -1 }}}}")), min.to_string());
    assert_eq!(ok(&format!("{{{{ mod {min} -1 }}}}")), "0");
    assert_eq!(ok(&format!("{{{{ add {max} 1 }}}}")), min.to_string());
    assert_eq!(ok(&format!("{{{{ add1 {max} }}}}")), min.to_string());
    assert_eq!(ok(&format!("{{{{ sub {min} 1 }}}}")), max.to_string());
    assert_eq!(ok(&format!("{{{{ mul {max} 2 }}}}")), "-2");
    let e = err("{{ div 1 0 }}");
    assert!(
        e.contains("error calling div: runtime error: integer divide by zero"),
        "{e}"
    );
    let e = err("{{ mod 1 0 }}");
    assert!(e.contains("integer divide by zero"), "{e}");
}

#[test]
fn printf_width_and_precision_do_not_panic() {
    let s = ok(r#"{{ printf "%.65536f" 1.0 }}"#);
    assert_eq!(s.len(), 2 + 65536);
    let s = ok(r#"{{ printf "%65536s|" "x" }}"#);
    assert_eq!(s.len(), 65537);
    assert_eq!(
        ok(r#"{{ printf "%.99999999999d" 1 }}"#),
        "%!(NOVERB)%!(EXTRA int=1)"
    );
}

#[test]
fn string_builders_have_a_size_budget() {
    let e = err(r#"{{ repeat 100000000000 "abc" }}"#);
    assert!(e.contains("exceeds the limit of 67108864 bytes"), "{e}");
    let e = err(r#"{{ repeat -1 "abc" }}"#);
    assert!(e.contains("strings: negative Repeat count"), "{e}");
    assert_eq!(ok(r#"{{ repeat 3 "ab" }}"#), "ababab");
    let e = err(r#"{{ indent 100000000000 "a\nb" }}"#);
    assert!(e.contains("exceeds the limit"), "{e}");
    let e = err(r#"{{ nindent 100000000000 "a" }}"#);
    assert!(e.contains("exceeds the limit"), "{e}");
    let e = err(r#"{{ indent -1 "a" }}"#);
    assert!(e.contains("negative Repeat count"), "{e}");
    let e = err(r#"{{ randAlphaNum 100000000000 }}"#);
    assert!(e.contains("exceeds the limit"), "{e}");
    assert_eq!(ok(r#"{{ randAlphaNum -1 }}"#), "");
    assert_eq!(ok(r#"{{ randAlphaNum 5 | len }}"#), "5");
    let e = err(r#"{{ randBytes 100000000000 }}"#);
    assert!(e.contains("exceeds the limit"), "{e}");
}

#[test]
fn list_builders_have_a_length_budget() {
    let e = err(r#"{{ until 100000000000 }}"#);
    assert!(
        e.contains("until: 100000000000 elements exceed the limit"),
        "{e}"
    );
    let e = err(r#"{{ untilStep 0 100000000000 1 }}"#);
    assert!(e.contains("exceed the limit"), "{e}");
    let e = err(&format!("{{{{ untilStep {} {} 1 }}}}", i64::MIN, i64::MAX));
    assert!(e.contains("exceed the limit"), "{e}");
    let e = err(r#"{{ seq 100000000000 }}"#);
    assert!(e.contains("exceed the limit"), "{e}");
    assert_eq!(ok(r#"{{ until 3 }} {{ until -3 }}"#), "[0 1 2] [0 -1 -2]");
    assert_eq!(
        ok(r#"{{ untilStep 0 10 4 }} {{ untilStep 3 0 -2 }}"#),
        "[0 4 8] [3 1]"
    );
    assert_eq!(
        ok(r#"{{ seq 3 }}|{{ seq 2 -1 }}|{{ seq 0 2 5 }}"#),
        "1 2 3|2 1 0 -1|0 2 4"
    );
    // near the ends of int64, without overflow
    assert_eq!(
        ok(&format!(
            "{{{{ untilStep {} {} 1 }}}}",
            i64::MAX - 2,
            i64::MAX
        )),
        format!("[{} {}]", i64::MAX - 2, i64::MAX - 1)
    );
}

#[test]
fn pluck_without_arguments_is_gos_arity_error() {
    let e = err("{{ pluck }}");
    assert!(
        e.contains("wrong number of args for pluck: want at least 1 got 0"),
        "{e}"
    );
    assert_eq!(
        ok(r#"{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}"#),
        "[1 3]"
    );
}

#[test]
fn certificates_with_huge_day_counts_wrap_as_gos_duration() {
    // time.Hour * 24 * time.Duration(days) wraps around int64 nanoseconds in Go
    let out = ok(
        r#"{{ $k := genPrivateKey "ecdsa" }}{{ $ca := genCAWithKey "ca" 9223372036854775807 $k }}{{ $c := genSignedCertWithKey "x" nil nil 9223372036854775807 $ca $k }}{{ hasPrefix "-----BEGIN CERTIFICATE-----" $ca.Cert }} {{ hasPrefix "-----BEGIN CERTIFICATE-----" $c.Cert }} {{ (genSelfSignedCertWithKey "y" nil nil -9223372036854775808 $k).Cert | len | lt 100 }}"#,
    );
    assert_eq!(out, "true true true");
}

// ---- C: cycles and depth ----

#[test]
fn encoding_a_dict_that_contains_itself_is_gos_cycle_error() {
    let cyc = r#"{{ $d := dict }}{{ $_ := set $d "self" $d }}"#;
    // Helm's toJson, toYaml and Sprig's toPrettyJson swallow the error: ""
    assert_eq!(ok(&format!("{cyc}[{{{{ toJson $d }}}}]")), "[]");
    assert_eq!(ok(&format!("{cyc}[{{{{ toYaml $d }}}}]")), "[]");
    assert_eq!(ok(&format!("{cyc}[{{{{ toPrettyJson $d }}}}]")), "[]");
    assert_eq!(ok(&format!("{cyc}[{{{{ toRawJson $d }}}}]")), "[]");
    // the must variants report it
    for f in ["mustToJson", "mustToYaml", "mustToPrettyJson"] {
        let e = err(&format!("{cyc}{{{{ {f} $d }}}}"));
        assert!(
            e.contains("json: unsupported value: encountered a cycle via map[string]interface {}"),
            "{f}: {e}"
        );
    }
    // printing it is an error naming the limit (Go's fmt recurses until its stack dies)
    let e = err(&format!("{cyc}{{{{ $d }}}}"));
    assert!(e.contains("nested deeper than 10000 levels"), "{e}");
    let e = err(&format!("{cyc}{{{{ mustDeepCopy $d }}}}"));
    assert!(e.contains("nested deeper than 10000 levels"), "{e}");
    // two maps containing each other, merged
    let e = err(
        r#"{{ $a := dict }}{{ $b := dict }}{{ $_ := set $a "x" $a }}{{ $_ := set $b "x" $b }}{{ mustMerge $a $b }}"#,
    );
    assert!(e.contains("nested deeper than 10000 levels"), "{e}");
}

#[test]
fn deep_acyclic_values_encode_within_the_budget_and_drop_on_a_small_stack() {
    let build = r#"{{ $d := dict }}{{ range until 3000 }}{{ $d = dict "a" $d }}{{ end }}"#;
    let out = ok(&format!("{build}{{{{ toJson $d | len }}}}"));
    assert_eq!(out, (3000 * 6 + 2).to_string());
    let out = ok(&format!("{build}{{{{ toYaml $d | len | lt 0 }}}}"));
    assert_eq!(out, "true");
    // beyond the budget: toJson swallows (""), mustToJson names the limit
    let build = r#"{{ $d := dict }}{{ range until 10005 }}{{ $d = dict "a" $d }}{{ end }}"#;
    assert_eq!(ok(&format!("{build}[{{{{ toJson $d }}}}]")), "[]");
    let e = err(&format!("{build}{{{{ mustToJson $d }}}}"));
    assert!(e.contains("nested deeper than 10000 levels"), "{e}");
}

#[test]
fn exponential_sharing_hits_the_size_budget() {
    // each level holds the previous one twice: 2^40 leaves of 1 MB
    let src = r#"{{ $d := dict "x" (repeat 1000000 "x") }}{{ range until 40 }}{{ $d = dict "a" $d "b" $d }}{{ end }}"#;
    for f in ["mustToYaml", "print"] {
        let e = err(&format!("{src}{{{{ {f} $d }}}}"));
        assert!(
            e.contains("exceeds the limit of 67108864 bytes"),
            "{f}: {e}"
        );
    }
}
