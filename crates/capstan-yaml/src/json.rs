//! Conversions between [`Node`] and `serde_json::Value` (ordered objects).

use serde_json::{Map, Number, Value};

use crate::node::{Mapping, Node, Scalar, ScalarStyle, Tag};
use crate::resolve::{is_yaml_float, parse_go_int};

/// Convert a node to JSON the way kyaml does: scalars by their tag (`!!int` to a number,
/// `!!bool`, `!!null`, everything else a string). Non-finite floats become strings.
pub fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(s) => scalar_to_json(s),
        Node::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Node::Mapping(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, v) in &m.entries {
                out.insert(k.clone(), to_json(v));
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

/// Format a float as Go's `encoding/json` followed by a YAML round trip would: integral
/// values print as integers.
fn format_float(f: f64) -> (String, Tag) {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() < 9.2e18 {
            return (format!("{}", f as i64), Tag::Int);
        }
        return (format!("{f:.0}"), Tag::Int);
    }
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        // Go: exponent form with at least two exponent digits dropped ("1e-07" -> "1e-07").
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap();
        let (sign, digits) = if let Some(d) = e.strip_prefix('-') {
            ("-", d)
        } else {
            ("+", e)
        };
        let digits = if digits.len() < 2 {
            format!("0{digits}")
        } else {
            digits.to_string()
        };
        return (format!("{m}e{sign}{digits}"), Tag::Float);
    }
    (format!("{f}"), Tag::Float)
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
    from_json(&to_json(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{emit_documents, parse_documents};

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
