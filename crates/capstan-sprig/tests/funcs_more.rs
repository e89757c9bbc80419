//! Sprig functions found missing or different by comparing against Helm v4 (the Helm
//! oracle); each expectation is what Helm printed.

use capstan_gotemplate::{TemplateSet, Value};
use serde_json::json;

fn r(src: &str, data: serde_json::Value) -> Result<String, String> {
    let mut set = TemplateSet::new(capstan_sprig::funcs(Default::default()));
    set.add("t", src).map_err(|e| e.to_string())?;
    set.execute("t", &Value::from_json(&data))
        .map_err(|e| e.to_string())
}

#[test]
fn path_functions_are_go_path_and_filepath() {
    assert_eq!(
        r(r#"{{ base "/a/b.txt" }} {{ dir "/a/b.txt" }} {{ ext "x.tar.gz" }} {{ clean "/a/../b" }} {{ isAbs "a" }}"#, json!({})).unwrap(),
        "b.txt /a .gz /b false"
    );
    assert_eq!(
        r(r#"{{ base "" }}|{{ base "a/b/" }}|{{ base "///" }}|{{ dir "x" }}|{{ dir "" }}|{{ clean "a//./b/../../.." }}|{{ ext "a.b/c" }}"#, json!({})).unwrap(),
        ".|b|/|.|.|..|"
    );
    assert_eq!(
        r(r#"{{ osBase "/a/b" }} {{ osDir "/a/b" }} {{ osClean "a/./b" }} {{ osExt "f.y" }} {{ osIsAbs "/x" }}"#, json!({})).unwrap(),
        "b /a a/b .y true"
    );
    assert!(r(r#"{{ base 1 }}"#, json!({})).is_err());
}

#[test]
fn float_math_is_decimal_arithmetic() {
    // shopspring/decimal on the shortest decimal of each float64: 0.1 + 0.2 is 0.3.
    assert_eq!(
        r(r#"{{ addf .a .b }} {{ subf 1 .a .b }} {{ mulf .a 3 }} {{ divf 1 3 }} {{ divf 10 4 }} {{ add1f .a }} {{ divf 2 3 }}"#, json!({"a": 0.1, "b": 0.2})).unwrap(),
        "0.3 0.7 0.3 0.3333333333333333 2.5 1.1 0.6666666666666667"
    );
    let err = r("{{ divf 1 0 }}", json!({})).unwrap_err();
    assert!(err.contains("decimal division by 0"), "{err}");
}

#[test]
fn aliases_and_small_functions() {
    assert_eq!(
        r(r#"{{ hello }} {{ trimall "$" "$x$" }} {{ biggest 1 5 3 }} {{ b32dec "NBUQ====" }} {{ b32dec "!!" }}"#, json!({})).unwrap(),
        "Hello! x 5 hi illegal base32 data at input byte 0"
    );
    // Go's decoder: the first illegal byte, missing padding at the start of the quantum,
    // padding in a position no quantum ends at.
    assert_eq!(
        r(r#"{{ b32dec "NBUQ" }}|{{ b32dec "NBUQ===" }}|{{ b32dec "N=======" }}|{{ b32dec "NBUQ====\nMFRGG===" }}|{{ b32dec "NB=Q====" }}|{{ b32dec "NBUQ=====" }}"#, json!({})).unwrap(),
        "illegal base32 data at input byte 0|illegal base32 data at input byte 7|illegal base32 data at input byte 1|illegal base32 data at input byte 4|illegal base32 data at input byte 2|hi"
    );
    assert_eq!(
        r(r#"{{ mustToRawJson (dict "a" "<&>") }}"#, json!({})).unwrap(),
        r#"{"a":"<&>"}"#
    );
    let n: i64 = r("{{ randInt 3 5 }}", json!({})).unwrap().parse().unwrap();
    assert!((3..5).contains(&n));
    assert!(r("{{ randInt 5 5 }}", json!({})).is_err());
    assert_eq!(
        r(
            r#"{{ must_date_modify "1h" (toDate "2006-01-02" "2021-03-04") | date "15" }}"#,
            json!({})
        )
        .unwrap(),
        "01"
    );
}

#[test]
fn to_yaml_quotes_only_valid_timestamps_and_not_merge_key_text() {
    // go-yaml v2: `2021-02-30` is no date (plain), `2021-01-01` is (quoted); `<<` is plain.
    assert_eq!(
        r(
            r#"{{ toYaml (list "2021-02-30" "2021-01-01" "<<" "2021-01-01T10:00:00") }}"#,
            json!({})
        )
        .unwrap(),
        "- 2021-02-30\n- \"2021-01-01\"\n- <<\n- 2021-01-01T10:00:00"
    );
}
