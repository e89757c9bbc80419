//! Conversions between [`Node`] and `serde_json::Value` (ordered objects).

use serde_json::{Map, Number, Value};

use crate::node::{Mapping, Node, Scalar, ScalarStyle, Tag};
use crate::resolve::{is_yaml_float, parse_go_int};

/// Convert a node to JSON the way kyaml does: scalars by their tag (`!!int` to a number,
/// `!!bool`, `!!null`, everything else a string). Non-finite floats become strings.
pub fn to_json(node: &Node) -> Value {
    to_json_with(node, false)
}

/// [`to_json`]; with `timestamps`, a plain scalar that go-yaml v3 reads as a timestamp
/// (`2021-01-01`, `2001-12-14t21:59:43.10-05:00`) becomes Go's JSON of a `time.Time`
/// (RFC 3339 with nanoseconds), as kyaml's `MarshalJSON` gives it.
fn to_json_with(node: &Node, timestamps: bool) -> Value {
    match node {
        Node::Scalar(s) => {
            if timestamps && s.style == ScalarStyle::Plain && s.tag == Tag::Str {
                if let Some(t) = crate::resolve::go_yaml_timestamp(&s.value) {
                    return Value::String(t);
                }
            }
            scalar_to_json(s)
        }
        Node::Sequence(items) => {
            Value::Array(items.iter().map(|i| to_json_with(i, timestamps)).collect())
        }
        Node::Mapping(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, v) in &m.entries {
                out.insert(k.clone(), to_json_with(v, timestamps));
            }
            Value::Object(out)
        }
    }
}

fn scalar_to_json(s: &Scalar) -> Value {
    match s.tag {
        Tag::Null => Value::Null,
        Tag::Bool => match s.value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Value::Bool(true),
            "false" | "no" | "off" | "n" => Value::Bool(false),
            _ => Value::String(s.value.clone()),
        },
        Tag::Int => {
            let plain: String = s.value.chars().filter(|&c| c != '_').collect();
            match parse_go_int(&plain) {
                Some(v) if v >= 0 && v > i64::MAX as i128 => Value::Number(Number::from(v as u64)),
                Some(v) => Value::Number(Number::from(v as i64)),
                None => float_value(&plain).unwrap_or_else(|| Value::String(s.value.clone())),
            }
        }
        Tag::Float => float_value(&s.value).unwrap_or_else(|| Value::String(s.value.clone())),
        _ => Value::String(s.value.clone()),
    }
}

fn float_value(s: &str) -> Option<Value> {
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if !is_yaml_float(&plain) {
        return None;
    }
    let f: f64 = plain.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// Format a float as Go's `encoding/json` followed by sigs.k8s.io/yaml's round trip (go-yaml
/// v2) would: JSON prints an integral value below 1e21 as digits, which read back as an
/// integer when they fit an int64 or uint64; any other float is read back as a float and
/// printed with `strconv.FormatFloat(f, 'g', -1, 64)` (`1e-05`, `1.5e+06`, `1e+21`).
fn format_float(f: f64) -> (String, Tag) {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        // 2^63 and 2^64, exact in an f64.
        const TWO_63: f64 = (1u64 << 63) as f64;
        if (-TWO_63..TWO_63).contains(&f) {
            return (format!("{}", f as i64), Tag::Int);
        }
        if (0.0..2.0 * TWO_63).contains(&f) {
            return (format!("{}", f as u64), Tag::Int);
        }
    }
    (go_format_g(f), Tag::Float)
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` for a finite float: the shortest digits, in
/// exponent form (at least two exponent digits) when the decimal exponent is below -4 or
/// at least 6.
fn go_format_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{f:e}");
    let (m, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.unsigned_abs());
    }
    format!("{f}")
}

/// Convert JSON to a node: strings become `!!str` scalars with no style preference (the
/// emitter quotes them as go-yaml would), numbers `!!int`/`!!float`, and so on.
pub fn from_json(value: &Value) -> Node {
    match value {
        Value::Null => Node::Scalar(Scalar {
            value: "null".into(),
            style: ScalarStyle::Any,
            tag: Tag::Null,
        }),
        Value::Bool(b) => Node::Scalar(Scalar {
            value: b.to_string(),
            style: ScalarStyle::Any,
            tag: Tag::Bool,
        }),
        Value::Number(n) => {
            let (value, tag) = if n.is_i64() || n.is_u64() {
                (n.to_string(), Tag::Int)
            } else {
                format_float(n.as_f64().unwrap_or(0.0))
            };
            Node::Scalar(Scalar {
                value,
                style: ScalarStyle::Any,
                tag,
            })
        }
        Value::String(s) => Node::string(s.clone()),
        Value::Array(a) => Node::Sequence(a.iter().map(from_json).collect()),
        Value::Object(o) => {
            let mut m = Mapping {
                entries: Vec::with_capacity(o.len()),
            };
            for (k, v) in o {
                m.entries.push((k.clone(), from_json(v)));
            }
            Node::Mapping(m)
        }
    }
}

/// Normalise a node as a JSON round trip would (what kustomize's output shows): numbers
/// canonical, styles dropped, `!!timestamp` and custom tags become strings. Keys are not
/// sorted.
pub fn normalize_json_like(node: &Node) -> Node {
    from_json(&to_json_with(node, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{emit_documents, parse_documents};

    #[test]
    fn floats_print_as_sigs_k8s_yaml_round_trip() {
        // JSON then go-yaml v2: integral floats become integers (int64, else uint64), other
        // floats strconv 'g' shortest.
        let d = parse_documents(
            "a: 0.00001\nb: 1.0\nc: 1234567.0\nd: 1e21\ne: 1.5e+3\nf: 123456789.123456789\ng: 100000000000000000000.0\nh: 0.0001\ni: 123456.5\nj: -0.0\nk: 12345678901234567890\nl: 1.5e7\n",
            "",
        )
        .unwrap();
        assert_eq!(
            emit_documents(&[normalize_json_like(&d[0])]),
            "a: 1e-05\nb: 1\nc: 1234567\nd: 1e+21\ne: 1500\nf: 1.2345678912345679e+08\ng: 1e+20\nh: 0.0001\ni: 123456.5\nj: 0\nk: 12345678901234567890\nl: 15000000\n"
        );
    }

    #[test]
    fn plain_timestamps_become_rfc3339_in_the_kyaml_json_round_trip() {
        // go-yaml v3 reads an unquoted date as a time.Time, which JSON prints in RFC 3339;
        // quoted dates and invalid dates stay strings.
        let d = parse_documents(
            "a: 2021-01-01\nb: \"2021-01-01\"\nc: 2001-12-14t21:59:43.10-05:00\nd: 2001-12-14 21:59:43.10\ne: 2021-02-30\nf: 2021-1-2T3:4:5Z\ng: 2021-01-01T00:00:00+00:00\nh: 2021-01-01x\ni: 2021-01-01T10:00:00.123456789012Z\nk: 2021-01-01T10:00:00\nm: 2021-01-01T10:00:00.500+01:00\n",
            "",
        )
        .unwrap();
        assert_eq!(
            emit_documents(&[normalize_json_like(&d[0])]),
            "a: \"2021-01-01T00:00:00Z\"\nb: \"2021-01-01\"\nc: \"2001-12-14T21:59:43.1-05:00\"\nd: \"2001-12-14T21:59:43.1Z\"\ne: 2021-02-30\nf: \"2021-01-02T03:04:05Z\"\ng: \"2021-01-01T00:00:00Z\"\nh: 2021-01-01x\ni: \"2021-01-01T10:00:00.123456789Z\"\nk: 2021-01-01T10:00:00\nm: \"2021-01-01T10:00:00.5+01:00\"\n"
        );
    }

    #[test]
    fn merge_key_text_is_plain_as_a_value_and_quoted_as_a_key() {
        // go-yaml prints a `<<` string plain; as a key it is quoted so it does not read back
        // as a merge key.
        let d = parse_documents("a: \"<<\"\n\"<<\": 1\n", "").unwrap();
        assert_eq!(
            emit_documents(&[normalize_json_like(&d[0])]),
            "a: <<\n\"<<\": 1\n"
        );
    }

    #[test]
    fn json_roundtrip_normalises() {
        let d = parse_documents(
            "a: 1.0\nb: 1e3\nc: 012\nd: yes\ne:\nf: 1.5\ng: [1, x]\n",
            "",
        )
        .unwrap();
        let j = to_json(&d[0]);
        assert_eq!(j["c"], serde_json::json!(10));
        let back = from_json(&j);
        assert_eq!(
            emit_documents(&[back]),
            "a: 1\nb: 1000\nc: 10\nd: \"yes\"\ne: null\nf: 1.5\ng:\n- 1\n- x\n"
        );
    }
}
