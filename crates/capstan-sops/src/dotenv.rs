//! The dotenv store: `KEY=value` lines (`\n` in values written as the two characters),
//! `#` comments; metadata as `sops_*` keys, flattened.

use crate::meta::unflatten;
use crate::tree::{Item, Value};
use crate::{ErrorKind, Parsed};

/// Parse dotenv lines into a mapping (comments kept).
pub(crate) fn parse_items(text: &str) -> Result<Vec<Item>, ErrorKind> {
    let mut items = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            items.push(Item::Comment(c.to_string()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ErrorKind::Format(format!(
                "line {}: invalid dotenv input line (no '=')",
                n + 1
            )));
        };
        items.push(Item::Entry(
            k.to_string(),
            Value::Str(v.replace("\\n", "\n")),
        ));
    }
    Ok(items)
}

pub(crate) fn parse(text: &str) -> Result<Parsed, ErrorKind> {
    let mut data = Vec::new();
    let mut meta = Vec::new();
    for item in parse_items(text)? {
        match item {
            Item::Entry(k, Value::Str(v)) if k.starts_with("sops_") => {
                meta.push((k["sops_".len()..].to_string(), v));
            }
            other => data.push(other),
        }
    }
    if meta.is_empty() {
        return Err(ErrorKind::NoMetadata);
    }
    Ok(Parsed {
        docs: vec![Value::Map(data)],
        meta: unflatten(&meta),
    })
}

pub(crate) fn emit(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Map(items) = v {
        for i in items {
            match i {
                Item::Comment(c) => {
                    out.push('#');
                    out.push_str(c);
                    out.push('\n');
                }
                Item::Entry(k, v) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(&v.scalar_text().unwrap_or_default().replace('\n', "\\n"));
                    out.push('\n');
                }
                Item::Elem(_) => {}
            }
        }
    }
    out
}
