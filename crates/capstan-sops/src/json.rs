//! The JSON store (and the binary store, a JSON file whose `data` holds the plaintext).

use crate::tree::{go_json_float, Item, Value};
use crate::{ErrorKind, Parsed};

fn from_json(v: serde_json::Value, depth: usize) -> Result<Value, ErrorKind> {
    if depth > 256 {
        return Err(ErrorKind::Format("nesting too deep".into()));
    }
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(a) => Value::Seq(
            a.into_iter()
                .map(|x| from_json(x, depth + 1).map(Item::Elem))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => Value::Map(
            o.into_iter()
                .map(|(k, x)| from_json(x, depth + 1).map(|x| Item::Entry(k, x)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Parse a JSON value into a tree.
pub(crate) fn parse_value(text: &str) -> Result<Value, ErrorKind> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ErrorKind::Format(format!("invalid JSON: {e}")))?;
    from_json(v, 0)
}

/// Parse a JSON SOPS file (`binary`: the binary store's wrapper).
pub(crate) fn parse(text: &str, binary: bool) -> Result<Parsed, ErrorKind> {
    let mut v = parse_value(text)?;
    if !matches!(v, Value::Map(_)) {
        return Err(if binary {
            ErrorKind::Format("a binary SOPS file is a JSON object".into())
        } else {
            ErrorKind::NoMetadata
        });
    }
    let meta = v.remove("sops").ok_or(ErrorKind::NoMetadata)?;
    if binary && !matches!(v.get("data"), Some(Value::Str(_))) {
        return Err(ErrorKind::Format(
            "a binary SOPS file has a string 'data' field".into(),
        ));
    }
    Ok(Parsed {
        docs: vec![v],
        meta,
    })
}

/// A JSON string with Go's `encoding/json` escaping.
pub(crate) fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(v: &Value, depth: usize, out: &mut String) {
    let pad = |out: &mut String, d: usize| {
        for _ in 0..d {
            out.push('\t');
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&go_json_float(*f)),
        Value::Str(s) | Value::Time(s) => go_string(s, out),
        Value::Map(items) => {
            let entries: Vec<(&String, &Value)> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Entry(k, v) => Some((k, v)),
                    _ => None,
                })
                .collect();
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for (i, (k, v)) in entries.iter().enumerate() {
                pad(out, depth + 1);
                go_string(k, out);
                out.push_str(": ");
                write(v, depth + 1, out);
                if i + 1 < entries.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, depth);
            out.push('}');
        }
        Value::Seq(items) => {
            let elems: Vec<&Value> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Elem(v) | Item::Entry(_, v) => Some(v),
                    _ => None,
                })
                .collect();
            if elems.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, v) in elems.iter().enumerate() {
                pad(out, depth + 1);
                write(v, depth + 1, out);
                if i + 1 < elems.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, depth);
            out.push(']');
        }
    }
}

/// Print a tree as `sops decrypt` prints JSON: tab-indented, Go's escaping, final newline.
pub(crate) fn emit(v: &Value) -> String {
    let mut out = String::new();
    write(v, 0, &mut out);
    out.push('\n');
    out
}
