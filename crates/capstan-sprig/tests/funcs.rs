//! Sprig and Helm functions, against their documented Go behaviour.

use capstan_gotemplate::{TemplateSet, Value};
use serde_json::json;

fn r(src: &str, data: serde_json::Value) -> String {
    let mut set = TemplateSet::new(capstan_sprig::funcs(Default::default()));
    set.add("t", src).unwrap();
    set.execute("t", &Value::from_json(&data)).unwrap()
}

#[test]
fn to_yaml_like_helm() {
    let v = Value::from_json(&json!({
        "b": [1, "two", {"x": true, "y": null}],
        "a": {"s": "true", "e": "", "n": "123", "star": "*", "plain": "hello world",
              "multi": "line1\nline2\n", "multi2": "a\nb", "f": 1.5, "big": 1000000, "sp": " lead"},
        "empty": {}, "el": [],
        "k10": 1, "k9": 2
    }));
    let y = capstan_sprig::to_yaml(&v);
    let expected = "a:\n  big: 1000000\n  e: \"\"\n  f: 1.5\n  multi: |\n    line1\n    line2\n  multi2: |-\n    a\n    b\n  \"n\": \"123\"\n  plain: hello world\n  s: \"true\"\n  sp: ' lead'\n  star: '*'\nb:\n- 1\n- two\n- x: true\n  \"y\": null\nel: []\nempty: {}\nk9: 2\nk10: 1";
    assert_eq!(y, expected);
    assert_eq!(capstan_sprig::to_yaml(&Value::Nil), "null");
    assert_eq!(capstan_sprig::to_yaml(&Value::from("x")), "x");
    assert_eq!(
        capstan_sprig::to_yaml(&Value::Float(1234567.5)),
        "1.2345675e+06"
    );
}

#[test]
fn to_yaml_folds_long_strings() {
    let long = "word ".repeat(30).trim().to_string();
    let y = capstan_sprig::to_yaml(&Value::from_json(&json!({ "k": long })));
    assert!(y.contains("\n  word"), "{y}");
    assert!(y.lines().next().unwrap().len() > 80);
}

#[test]
fn json() {
    assert_eq!(
        r(r#"{{ toJson . }}"#, json!({"b": [1.5, "<&>"], "a": 1})),
        r#"{"a":1,"b":[1.5,"\u003c\u0026\u003e"]}"#
    );
    assert_eq!(r(r#"{{ (fromJson "{\"a\": 2}").a }}"#, json!({})), "2");
    assert_eq!(r(r#"{{ (fromYaml "a: [1, b]").a }}"#, json!({})), "[1 b]");
    assert_eq!(
        r(r#"{{ toPrettyJson . }}"#, json!({"a": [1]})),
        "{\n  \"a\": [\n    1\n  ]\n}"
    );
}

#[test]
fn strings() {
    assert_eq!(
        r(
            r#"{{ "a" | quote }} {{ squote "b" }} {{ quote 1 nil }}"#,
            json!({})
        ),
        r#""a" 'b' "1""#
    );
    assert_eq!(
        r(
            r#"{{ "x\ny" | indent 2 }}|{{ "x" | nindent 2 }}"#,
            json!({})
        ),
        "  x\n  y|\n  x"
    );
    assert_eq!(
        r(
            r#"{{ trunc 3 "abcdef" }} {{ trunc -2 "abcdef" }} {{ trimSuffix "-" "a-" }} {{ trimPrefix "a" "ab" }} {{ trimAll "$" "$x$" }}"#,
            json!({})
        ),
        "abc ef a b x"
    );
    assert_eq!(
        r(
            r#"{{ upper "a" }}{{ lower "B" }} {{ title "hello world" }} {{ untitle "Hello World" }}"#,
            json!({})
        ),
        "Ab Hello World hello world"
    );
    assert_eq!(
        r(
            r#"{{ replace "a" "b" "aXa" }} {{ contains "b" "abc" }} {{ hasPrefix "a" "abc" }} {{ hasSuffix "c" "abc" }}"#,
            json!({})
        ),
        "bXb true true true"
    );
    assert_eq!(
        r(
            r#"{{ splitList "," "a,b" }} {{ join "-" (list "a" 1) }} {{ (split "." "a.b")._1 }}"#,
            json!({})
        ),
        "[a b] a-1 b"
    );
    assert_eq!(
        r(
            r#"{{ regexMatch "^a+$" "aaa" }} {{ regexFind "[0-9]+" "ab12cd" }} {{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }} {{ regexSplit "z+" "pizza" -1 }}"#,
            json!({})
        ),
        "true 12 -W-xxW- [pi a]"
    );
    assert_eq!(
        r(
            r#"{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ sha256sum "a" | trunc 8 }} {{ sha1sum "a" | trunc 8 }} {{ adler32sum "a" }}"#,
            json!({})
        ),
        "aGVsbG8= hello ca978112 86f7e437 6422626"
    );
    assert_eq!(
        r(
            r#"{{ toString 1.5 }} {{ printf "%v" (toStrings (list 1 "a")) }} {{ cat "a" nil 1 }}"#,
            json!({})
        ),
        "1.5 [1 a] a 1"
    );
    assert_eq!(
        r(
            r#"{{ randAlphaNum 10 | len }} {{ uuidv4 | len }}"#,
            json!({})
        ),
        "10 36"
    );
}

#[test]
fn defaults_and_flow() {
    assert_eq!(
        r(
            r#"{{ default "d" .x }} {{ default "d" "v" }} {{ empty 0 }} {{ empty (list) }} {{ coalesce "" nil "c" }} {{ ternary "y" "n" true }}"#,
            json!({})
        ),
        "d v true true c y"
    );
    let mut set = TemplateSet::new(capstan_sprig::funcs(Default::default()));
    set.add("t", r#"{{ required "x is required" .x }}"#)
        .unwrap();
    let e = set
        .execute("t", &Value::from_json(&json!({})))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "template: t:1:3: executing \"t\" at <required \"x is required\" .x>: error calling required: x is required");
    set.add("f", r#"{{ fail "boom" }}"#).unwrap();
    let e = set.execute("f", &Value::Nil).unwrap_err().to_string();
    assert!(e.ends_with("error calling fail: boom"), "{e}");
}

#[test]
fn math_and_conversion() {
    assert_eq!(
        r(
            r#"{{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 3 }} {{ min 4 2 }} {{ add1 1 }}"#,
            json!({})
        ),
        "6 3 6 3 1 5 2 2"
    );
    assert_eq!(
        r(
            r#"{{ int "12" }} {{ int 3.9 }} {{ int64 "0x10" }} {{ float64 "1.5" }} {{ atoi "7" }} {{ floor 1.5 }} {{ ceil 1.2 }} {{ round 1.2345 2 }}"#,
            json!({})
        ),
        "12 3 16 1.5 7 1 2 1.23"
    );
    assert_eq!(
        r(
            r#"{{ typeOf .x }} {{ typeOf (int .x) }} {{ kindOf .m }} {{ kindIs "slice" .l }} {{ typeIs "string" "a" }} {{ kindOf .nope }}"#,
            json!({"x": 3, "m": {}, "l": []})
        ),
        "float64 int map true true invalid"
    );
    assert_eq!(
        r(
            r#"{{ until 3 }} {{ untilStep 0 10 4 }} {{ seq 3 }} {{ mulf 1.5 2 }} {{ addf 1.5 1 }}"#,
            json!({})
        ),
        "[0 1 2] [0 4 8] 1 2 3 3 2.5"
    );
}

#[test]
fn lists_and_dicts() {
    assert_eq!(
        r(
            r#"{{ list 1 2 | append (list 0) | len }} {{ append (list 1) 2 }} {{ prepend (list 1) 0 }} {{ first (list 1 2) }} {{ last (list 1 2) }} {{ rest (list 1 2 3) }} {{ initial (list 1 2 3) }}"#,
            json!({})
        ),
        "2 [1 2] [0 1] 1 2 [2 3] [1 2]"
    );
    assert_eq!(
        r(
            r#"{{ uniq (list 1 1 2) }} {{ without (list 1 2 3) 2 }} {{ has 2 (list 1 2) }} {{ compact (list "" "a" 0) }} {{ concat (list 1) (list 2) }} {{ reverse (list 1 2) }} {{ sortAlpha (list "b" "a") }}"#,
            json!({})
        ),
        "[1 2] [1 3] true [a] [1 2] [2 1] [a b]"
    );
    assert_eq!(
        r(
            r#"{{ $d := dict "a" 1 "b" 2 }}{{ hasKey $d "a" }} {{ get $d "b" }} {{ $_ := set $d "c" 3 }}{{ $d.c }} {{ $_ := unset $d "a" }}{{ keys $d | sortAlpha }} {{ pick $d "b" }} {{ omit $d "b" }}"#,
            json!({})
        ),
        "true 2 3 [b c] map[b:2] map[c:3]"
    );
    assert_eq!(
        r(
            r#"{{ $a := dict "x" (dict "y" 1) "k" "" }}{{ $b := dict "x" (dict "z" 2 "y" 5) "k" "v" }}{{ merge $a $b }} {{ mergeOverwrite (dict "a" 1) (dict "a" 2) }}"#,
            json!({})
        ),
        "map[k:v x:map[y:1 z:2]] map[a:2]"
    );
    assert_eq!(
        r(
            r#"{{ dig "a" "b" "def" .m }} {{ dig "a" "x" "def" .m }}"#,
            json!({"m": {"a": {"b": "v"}}})
        ),
        "v def"
    );
    assert_eq!(
        r(
            r#"{{ $c := deepCopy .m }}{{ $_ := set $c "n" 1 }}{{ hasKey .m "n" }}"#,
            json!({"m": {}})
        ),
        "false"
    );
}

#[test]
fn semver() {
    let c = |con: &str, v: &str| capstan_sprig::semver::semver_compare(con, v).unwrap();
    assert!(c(">=1.21-0", "v1.36.0"));
    assert!(!c("<1.19-0", "v1.36.0"));
    assert!(c("^1.2.3", "1.9.0"));
    assert!(!c("^1.2.3", "2.0.0"));
    assert!(c("~1.2.3", "1.2.9"));
    assert!(!c("~1.2.3", "1.3.0"));
    assert!(c("1.2.x", "1.2.7"));
    assert!(c(">= 1.2, < 2.0", "1.5.0"));
    assert!(c("<1.0 || >=2.0", "2.1.0"));
    assert!(!c(">=1.20.0", "1.21.0-beta.1"));
    assert!(c(">=1.20.0-0", "1.21.0-beta.1"));
    assert!(c("1.2 - 1.4", "1.4.9"));
    assert_eq!(
        r(
            r#"{{ (semver "v1.2.3-rc.1").Minor }} {{ semverCompare ">=1.16-0" "v1.36.0" }}"#,
            json!({})
        ),
        "2 true"
    );
}

#[test]
fn lookup_defaults_to_empty_map() {
    assert_eq!(
        r(
            r#"{{ lookup "v1" "Secret" "ns" "n" }} {{ empty (lookup "v1" "Secret" "ns" "n") }}"#,
            json!({})
        ),
        "map[] true"
    );
}

#[test]
fn date_functions_check_argument_types_like_go() {
    let mut set = TemplateSet::new_shared(capstan_sprig::shared_funcs());
    set.add("t", r#"{{ unixEpoch "2020" }}"#).unwrap();
    let e = set.execute("t", &Value::Nil).unwrap_err().to_string();
    assert!(
        e.ends_with("at <\"2020\">: can't handle \"2020\" for arg of type time.Time"),
        "{e}"
    );
    set.add("u", r#"{{ $x := 5 }}{{ dateModify "1h" $x }}"#)
        .unwrap();
    let e = set.execute("u", &Value::Nil).unwrap_err().to_string();
    assert!(
        e.ends_with("at <$x>: wrong type for value; expected time.Time; got int"),
        "{e}"
    );
    assert_eq!(
        r(
            r#"{{ toDate "2006-01-02" "2024-02-29" | date "Monday 2 Jan 2006" }}"#,
            json!({})
        ),
        "Thursday 29 Feb 2024"
    );
}
