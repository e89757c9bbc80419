//! The YAML store: documents with comments (read from saphyr-parser's events and the gaps
//! between them), the `sops` metadata taken from the first document and removed from
//! every document; output through capstan-yaml's SOPS dialect.

use crate::tree::{go_format_float_g, Item, Value};
use crate::{ErrorKind, Parsed};
use capstan_yaml::{EmitOptions, Mapping, Node, Scalar, ScalarStyle, Tag};
use saphyr_parser::{Event, Parser, ScalarStyle as PStyle};

const MAX_DEPTH: usize = 256;

enum Frame {
    Map {
        items: Vec<Item>,
        key: Option<String>,
        col: Option<usize>,
    },
    Seq {
        items: Vec<Item>,
        col: Option<usize>,
    },
}

impl Frame {
    fn items(&mut self) -> &mut Vec<Item> {
        match self {
            Frame::Map { items, .. } | Frame::Seq { items, .. } => items,
        }
    }
    fn col(&mut self) -> &mut Option<usize> {
        match self {
            Frame::Map { col, .. } | Frame::Seq { col, .. } => col,
        }
    }
}

/// Comments (`#` preceded by a blank or a line start) in `chars[from..to]`: (column, text
/// after `#`).
fn gap_comments(chars: &[char], from: usize, to: usize, out: &mut Vec<(usize, String)>) {
    let to = to.min(chars.len());
    let mut i = from;
    while i < to {
        let c = chars[i];
        if c == '#' && (i == 0 || matches!(chars[i - 1], ' ' | '\t' | '\n' | '\r')) {
            let mut col = 0;
            let mut j = i;
            while j > 0 && chars[j - 1] != '\n' {
                j -= 1;
                col += 1;
            }
            let mut end = i + 1;
            while end < chars.len() && chars[end] != '\n' && chars[end] != '\r' {
                end += 1;
            }
            out.push((col, chars[i + 1..end].iter().collect()));
            i = end;
            continue;
        }
        i += 1;
    }
}

fn scalar_value(value: String, style: PStyle, tag: Option<String>) -> Value {
    let tag = tag.map(|t| Tag::parse(&t));
    let resolved = match (&tag, style) {
        (Some(t), _) => t.clone(),
        (None, PStyle::Plain) => capstan_yaml::resolve_plain(&value),
        (None, _) => Tag::Str,
    };
    match resolved {
        Tag::Null => Value::Null,
        Tag::Bool => Value::Bool(matches!(value.as_str(), "true" | "True" | "TRUE")),
        Tag::Int => parse_int(&value)
            .map(Value::Int)
            .unwrap_or(Value::Str(value)),
        Tag::Float => parse_float(&value)
            .map(Value::Float)
            .unwrap_or(Value::Str(value)),
        Tag::Custom(t) if t == "!!timestamp" => Value::Time(value),
        _ => Value::Str(value),
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let t = s.replace('_', "");
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    let v = if let Some(h) = t.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = t.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => s.replace('_', "").parse().ok(),
    }
}

/// Parse a YAML SOPS file.
pub(crate) fn parse(text: &str) -> Result<Parsed, ErrorKind> {
    let docs = parse_docs(text)?;
    let mut docs = docs;
    let meta = match docs.first_mut() {
        Some(d @ Value::Map(_)) => d.remove("sops").ok_or(ErrorKind::NoMetadata)?,
        _ => return Err(ErrorKind::NoMetadata),
    };
    for d in docs.iter_mut().skip(1) {
        d.remove("sops");
    }
    Ok(Parsed { docs, meta })
}

/// Parse YAML documents into trees with comments.
pub(crate) fn parse_docs(text: &str) -> Result<Vec<Value>, ErrorKind> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let fixer = capstan_yaml::BlockScalarAtEnd::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut pending: Vec<(usize, String)> = Vec::new();
    let mut root: Option<Value> = None;
    let mut last_end = 0usize;
    let fmt = |line: usize, col: usize, m: &str| {
        ErrorKind::Format(format!("line {line} column {col}: {m}"))
    };
    loop {
        let (ev, span) = match parser.next_event() {
            None => break,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(fmt(m.line(), m.col() + 1, e.info()));
            }
        };
        let start = span.start.index();
        if start > last_end {
            gap_comments(&chars, last_end, start, &mut pending);
        }
        last_end = last_end.max(span.end.index());
        let col = span.start.col();
        let is_node_start = matches!(
            ev,
            Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Alias(_)
        );
        if is_node_start {
            // A key of a mapping or an element of a sequence: the comments above it.
            let flush = match stack.last() {
                Some(Frame::Map { key: None, .. }) | Some(Frame::Seq { .. }) => true,
                Some(Frame::Map { key: Some(_), .. }) => {
                    matches!(ev, Event::Scalar(..))
                }
                None => false,
            };
            if flush {
                let top = stack.last_mut().expect("checked");
                if top.col().is_none() {
                    *top.col() = Some(col);
                }
                for (_, c) in pending.drain(..) {
                    top.items().push(Item::Comment(c));
                }
            }
        }
        let complete: Option<Value> = match ev {
            Event::StreamStart | Event::Nothing | Event::DocumentStart(_) => None,
            Event::StreamEnd => break,
            Event::DocumentEnd => {
                if let Some(mut r) = root.take() {
                    if let Value::Map(items) | Value::Seq(items) = &mut r {
                        for (_, c) in pending.drain(..) {
                            items.push(Item::Comment(c));
                        }
                    }
                    docs.push(r);
                }
                pending.clear();
                None
            }
            Event::Alias(_) => {
                return Err(fmt(
                    span.start.line(),
                    col + 1,
                    "aliases are not supported in SOPS files",
                ))
            }
            Event::Scalar(value, style, _, tag) => {
                let value = if matches!(style, PStyle::Literal | PStyle::Folded) {
                    let mut v = value.into_owned();
                    let m = |x: &saphyr_parser::Marker| (x.line(), x.col(), x.index());
                    fixer.fix(&mut v, m(&span.start), m(&span.end));
                    v
                } else {
                    value.into_owned()
                };
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let tag = tag.map(|t| {
                    if t.starts_with("tag:yaml.org,2002:") || t.starts_with("!!") {
                        t
                    } else {
                        t.replace("tag:yaml.org,2002:", "!!")
                    }
                });
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    *key = Some(value);
                    None
                } else {
                    Some(scalar_value(value, style, tag))
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(fmt(span.start.line(), col + 1, "nesting too deep"));
                }
                if let Some(Frame::Map { key: None, .. }) = stack.last() {
                    return Err(fmt(
                        span.start.line(),
                        col + 1,
                        "complex mapping keys are not supported",
                    ));
                }
                stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        items: Vec::new(),
                        key: None,
                        col: None,
                    }
                } else {
                    Frame::Seq {
                        items: Vec::new(),
                        col: None,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let mut f = stack.pop().expect("balanced events");
                let c = *f.col();
                if let Some(c) = c {
                    let keep: Vec<(usize, String)> =
                        pending.iter().filter(|(pc, _)| *pc < c).cloned().collect();
                    for (pc, t) in pending.drain(..) {
                        if pc >= c {
                            f.items().push(Item::Comment(t));
                        }
                    }
                    pending = keep;
                }
                Some(match f {
                    Frame::Map { items, .. } => Value::Map(items),
                    Frame::Seq { items, .. } => Value::Seq(items),
                })
            }
        };
        if let Some(v) = complete {
            match stack.last_mut() {
                None => root = Some(v),
                Some(Frame::Map { items, key, .. }) => {
                    let k = key.take().unwrap_or_default();
                    items.push(Item::Entry(k, v));
                }
                Some(Frame::Seq { items, .. }) => items.push(Item::Elem(v)),
            }
        }
    }
    Ok(docs)
}

/// Convert a tree to a capstan-yaml node, collecting each container's comments by path.
fn to_node(
    v: &Value,
    path: &mut Vec<usize>,
    comments: &mut Vec<(Vec<usize>, usize, String)>,
) -> Node {
    match v {
        Value::Null => Node::null(),
        Value::Str(s) => Node::Scalar(Scalar {
            value: s.clone(),
            style: ScalarStyle::Any,
            tag: Tag::Str,
        }),
        Value::Time(s) => Node::Scalar(Scalar {
            value: s.clone(),
            style: ScalarStyle::Plain,
            tag: Tag::Custom("!!timestamp".into()),
        }),
        Value::Int(i) => Node::Scalar(Scalar {
            value: i.to_string(),
            style: ScalarStyle::Plain,
            tag: Tag::Int,
        }),
        Value::Float(f) => {
            let text = if f.is_nan() {
                ".nan".to_string()
            } else if f.is_infinite() {
                if *f > 0.0 { ".inf" } else { "-.inf" }.to_string()
            } else {
                go_format_float_g(*f)
            };
            Node::Scalar(Scalar {
                value: text,
                style: ScalarStyle::Plain,
                tag: Tag::Float,
            })
        }
        Value::Bool(b) => Node::Scalar(Scalar {
            value: b.to_string(),
            style: ScalarStyle::Plain,
            tag: Tag::Bool,
        }),
        Value::Map(items) => {
            let mut m = Mapping::new();
            for item in items {
                match item {
                    Item::Comment(c) => comments.push((path.clone(), m.entries.len(), c.clone())),
                    Item::Entry(k, child) => {
                        path.push(m.entries.len());
                        let n = to_node(child, path, comments);
                        path.pop();
                        m.entries.push((k.clone(), n));
                    }
                    Item::Elem(child) => {
                        path.push(m.entries.len());
                        let n = to_node(child, path, comments);
                        path.pop();
                        m.entries.push((String::new(), n));
                    }
                }
            }
            Node::Mapping(m)
        }
        Value::Seq(items) => {
            let mut s = Vec::new();
            for item in items {
                match item {
                    Item::Comment(c) => comments.push((path.clone(), s.len(), c.clone())),
                    Item::Elem(child) | Item::Entry(_, child) => {
                        path.push(s.len());
                        let n = to_node(child, path, comments);
                        path.pop();
                        s.push(n);
                    }
                }
            }
            Node::Sequence(s)
        }
    }
}

/// Print documents as `sops decrypt` does (go-yaml v3, indent 4, comments kept).
pub(crate) fn emit(docs: &[Value]) -> String {
    let mut nodes = Vec::new();
    let mut comments = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let mut path = vec![i];
        nodes.push(to_node(d, &mut path, &mut comments));
    }
    let mut by_place: std::collections::HashMap<(Vec<usize>, usize), Vec<String>> =
        std::collections::HashMap::new();
    for (p, i, c) in comments {
        by_place.entry((p, i)).or_default().push(c);
    }
    let lookup = |path: &[usize], index: usize| -> Vec<String> {
        by_place
            .get(&(path.to_vec(), index))
            .cloned()
            .unwrap_or_default()
    };
    let mut opts = EmitOptions::sops();
    opts.comments = Some(&lookup);
    capstan_yaml::emit_documents_with(&nodes, &opts)
}
