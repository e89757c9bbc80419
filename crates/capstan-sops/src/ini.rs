//! The INI store (go-ini): sections of `key = value`, `;`/`#` comments attached to the
//! following section or key; metadata in a `[sops]` section, flattened; output as go-ini's
//! pretty format (`=` aligned per section, a blank line between sections, an empty
//! `DEFAULT` section omitted).

use crate::meta::unflatten;
use crate::tree::{Item, Value};
use crate::{ErrorKind, Parsed};

fn unquote(v: &str) -> String {
    for q in ["\"", "`", "'"] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    // go-ini cuts an inline comment off an unquoted value.
    let cut = v.find(['#', ';']).unwrap_or(v.len());
    v[..cut].trim_end().to_string()
}

/// Parse INI text into (section, items) in order.
fn parse_sections(text: &str) -> Result<Vec<(String, Vec<Item>)>, ErrorKind> {
    let mut sections: Vec<(String, Vec<Item>)> = vec![("DEFAULT".into(), Vec::new())];
    let mut pending: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let line = lines[i].strip_suffix('\r').unwrap_or(lines[i]).trim();
        i += 1;
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending.push(line[1..].trim_start().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .split_once(']')
                .map(|(a, _)| a.trim().to_string())
                .ok_or_else(|| ErrorKind::Format(format!("line {n}: unclosed section header")))?;
            let mut items = Vec::new();
            items.extend(pending.drain(..).map(Item::Comment));
            match sections.iter_mut().find(|(s, _)| *s == name) {
                Some((_, existing)) => existing.extend(items),
                None => sections.push((name, items)),
            }
            continue;
        }
        let Some(pos) = line.find(['=', ':']) else {
            return Err(ErrorKind::Format(format!(
                "line {n}: neither a section, a comment nor key = value"
            )));
        };
        let key = line[..pos].trim().to_string();
        let raw = line[pos + 1..].trim();
        let value = if let Some(rest) = raw.strip_prefix("\"\"\"") {
            // A multi-line value up to the closing `"""`.
            let mut v = String::new();
            let mut cur = rest.to_string();
            loop {
                if let Some(end) = cur.find("\"\"\"") {
                    v.push_str(&cur[..end]);
                    break;
                }
                v.push_str(&cur);
                if i >= lines.len() {
                    return Err(ErrorKind::Format(format!(
                        "line {n}: unclosed \"\"\" value"
                    )));
                }
                v.push('\n');
                cur = lines[i].strip_suffix('\r').unwrap_or(lines[i]).to_string();
                i += 1;
            }
            v
        } else {
            unquote(raw)
        };
        let items = &mut sections.last_mut().expect("DEFAULT").1;
        items.extend(pending.drain(..).map(Item::Comment));
        items.push(Item::Entry(key, Value::Str(value)));
    }
    Ok(sections)
}

pub(crate) fn parse(text: &str) -> Result<Parsed, ErrorKind> {
    let mut data = Vec::new();
    let mut meta = None;
    for (name, items) in parse_sections(text)? {
        if name == "sops" {
            let pairs: Vec<(String, String)> = items
                .into_iter()
                .filter_map(|i| match i {
                    Item::Entry(k, Value::Str(v)) => Some((k, v.replace("\\n", "\n"))),
                    _ => None,
                })
                .collect();
            meta = Some(unflatten(&pairs));
            continue;
        }
        if name == "DEFAULT" && items.is_empty() {
            continue;
        }
        data.push(Item::Entry(name, Value::Map(items)));
    }
    Ok(Parsed {
        docs: vec![Value::Map(data)],
        meta: meta.ok_or(ErrorKind::NoMetadata)?,
    })
}

fn comment_line(c: &str, out: &mut String) {
    if !(c.starts_with(';') || c.starts_with('#')) {
        out.push_str("; ");
    }
    out.push_str(c);
    out.push('\n');
}

fn format_value(v: &str) -> String {
    if v.contains('\n') || v.contains('`') {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains('#') || v.contains(';') {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

pub(crate) fn emit(v: &Value) -> String {
    let mut out = String::new();
    let Value::Map(sections) = v else {
        return out;
    };
    let mut first = true;
    for s in sections {
        let Item::Entry(name, Value::Map(items)) = s else {
            continue;
        };
        if name == "DEFAULT" && items.is_empty() {
            continue;
        }
        if !first {
            out.push('\n');
        }
        first = false;
        // Comments before the first key belong to the section header.
        let lead = items
            .iter()
            .take_while(|i| matches!(i, Item::Comment(_)))
            .count();
        for i in &items[..lead] {
            if let Item::Comment(c) = i {
                comment_line(c, &mut out);
            }
        }
        out.push('[');
        out.push_str(name);
        out.push_str("]\n");
        let width = items
            .iter()
            .filter_map(|i| match i {
                Item::Entry(k, _) => Some(k.chars().count()),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        for i in &items[lead..] {
            match i {
                Item::Comment(c) => comment_line(c, &mut out),
                Item::Entry(k, v) => {
                    out.push_str(k);
                    for _ in k.chars().count()..width {
                        out.push(' ');
                    }
                    out.push_str(" = ");
                    out.push_str(&format_value(&v.scalar_text().unwrap_or_default()));
                    out.push('\n');
                }
                Item::Elem(_) => {}
            }
        }
    }
    out
}
