//! Parsing with saphyr-parser's event stream.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle as PStyle, Span};

use crate::node::{Mapping, Node, Scalar, ScalarStyle, Tag};
use crate::resolve::resolve_plain;

/// A parse error with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The name given to [`parse_documents`] (usually a file path).
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source_name.is_empty() {
            write!(
                f,
                "yaml: line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            write!(
                f,
                "{}: yaml: line {}, column {}: {}",
                self.source_name, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for YamlError {}

/// Limits against hostile input.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Maximum input size in bytes.
    pub max_bytes: usize,
    /// Maximum number of nodes produced by expanding aliases, over the whole stream.
    pub max_alias_nodes: usize,
    /// Maximum nesting depth.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bytes: 64 << 20,
            max_alias_nodes: 1_000_000,
            max_depth: 512,
        }
    }
}

/// Parse a multi-document stream with the default [`ParseLimits`]. Empty documents (a
/// document holding only a null, e.g. between two `---`) are kept as null nodes; callers
/// that want resources skip them.
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<Node>, YamlError> {
    parse_documents_with(text, source_name, &ParseLimits::default())
}

enum Frame {
    Seq(Vec<Node>, usize),
    Map(Mapping, Option<String>, usize, bool),
}

/// Parse a multi-document stream with explicit limits.
pub fn parse_documents_with(
    text: &str,
    source_name: &str,
    limits: &ParseLimits,
) -> Result<Vec<Node>, YamlError> {
    let err = |line: usize, column: usize, message: String| YamlError {
        source_name: source_name.to_string(),
        line,
        column,
        message,
    };
    if text.len() > limits.max_bytes {
        return Err(err(
            0,
            0,
            format!(
                "input of {} bytes exceeds the limit of {} bytes",
                text.len(),
                limits.max_bytes
            ),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut alias_budget = limits.max_alias_nodes;
    let mut doc_root: Option<Node> = None;
    let mut last_span: Option<Span> = None;

    loop {
        let (ev, span) = match parser.next_event() {
            None => break,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(err(m.line(), m.col() + 1, e.info().to_string()));
            }
        };
        last_span = Some(span);
        let pos = |s: &Span| (s.start.line(), s.start.col() + 1);
        let complete: Option<(Node, usize)> = match ev {
            Event::StreamStart | Event::Nothing => None,
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                doc_root = None;
                None
            }
            Event::DocumentEnd => {
                docs.push(doc_root.take().unwrap_or_else(Node::null));
                None
            }
            Event::Alias(id) => {
                let n = anchors.get(&id).cloned().ok_or_else(|| {
                    let (l, c) = pos(&span);
                    err(l, c, "unknown anchor".into())
                })?;
                let size = n.size();
                if size > alias_budget {
                    let (l, c) = pos(&span);
                    return Err(err(l, c, "document contains excessive aliasing".into()));
                }
                alias_budget -= size;
                Some((n, 0))
            }
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    PStyle::Plain => ScalarStyle::Plain,
                    PStyle::SingleQuoted => ScalarStyle::SingleQuoted,
                    PStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
                    PStyle::Literal => ScalarStyle::Literal,
                    PStyle::Folded => ScalarStyle::Folded,
                };
                let tag = match tag {
                    Some(t) => {
                        let full = format!("{}{}", t.handle, t.suffix);
                        if full == "!" {
                            Tag::Str
                        } else {
                            Tag::parse(&full)
                        }
                    }
                    None if style == ScalarStyle::Plain => resolve_plain(&value),
                    None => Tag::Str,
                };
                Some((
                    Node::Scalar(Scalar {
                        value: value.into_owned(),
                        style,
                        tag,
                    }),
                    anchor,
                ))
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= limits.max_depth {
                    let (l, c) = pos(&span);
                    return Err(err(l, c, "exceeded max depth".into()));
                }
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= limits.max_depth {
                    let (l, c) = pos(&span);
                    return Err(err(l, c, "exceeded max depth".into()));
                }
                stack.push(Frame::Map(Mapping::new(), None, anchor, false));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Node::Sequence(items), anchor)),
                _ => unreachable!("unbalanced sequence events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(mut m, _, anchor, has_merge)) => {
                    if has_merge {
                        apply_merge_keys(&mut m);
                    }
                    Some((Node::Mapping(m), anchor))
                }
                _ => unreachable!("unbalanced mapping events"),
            },
        };
        if let Some((node, anchor)) = complete {
            if anchor != 0 {
                anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => doc_root = Some(node),
                Some(Frame::Seq(items, _)) => items.push(node),
                Some(Frame::Map(m, key, _, has_merge)) => match key.take() {
                    None => {
                        let k = match &node {
                            Node::Scalar(s) => s.value.clone(),
                            other => crate::emit::emit_document(other).trim_end().to_string(),
                        };
                        if k == "<<" {
                            *has_merge = true;
                        }
                        *key = Some(k);
                    }
                    Some(k) => {
                        if k == "<<" {
                            m.entries.push((k, node));
                        } else {
                            m.insert(k, node);
                        }
                    }
                },
            }
        }
    }
    let _ = last_span;
    Ok(docs)
}

/// Apply YAML merge keys (`<<: *base` or `<<: [*a, *b]`): keys already present win.
fn apply_merge_keys(m: &mut Mapping) {
    let mut merged: Vec<(String, Node)> = Vec::new();
    let mut own: Vec<(String, Node)> = Vec::new();
    for (k, v) in m.entries.drain(..) {
        if k == "<<" {
            let sources = match v {
                Node::Mapping(src) => vec![src],
                Node::Sequence(items) => items
                    .into_iter()
                    .filter_map(|n| {
                        if let Node::Mapping(s) = n {
                            Some(s)
                        } else {
                            None
                        }
                    })
                    .collect(),
                _ => vec![],
            };
            for src in sources {
                for (sk, sv) in src.entries {
                    if !merged.iter().any(|(k2, _)| *k2 == sk) {
                        merged.push((sk, sv));
                    }
                }
            }
        } else {
            own.push((k, v));
        }
    }
    let mut out = Mapping { entries: own };
    for (k, v) in merged {
        if !out.contains_key(&k) {
            out.entries.push((k, v));
        }
    }
    *m = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_styles_and_docs() {
        let docs = parse_documents("a: 1\nb: 'x'\nc: |\n  hi\n---\n- x\n- y\n", "t").unwrap();
        assert_eq!(docs.len(), 2);
        let a = docs[0].get("a").unwrap().as_scalar().unwrap();
        assert_eq!(a.tag, Tag::Int);
        let b = docs[0].get("b").unwrap().as_scalar().unwrap();
        assert_eq!(b.style, ScalarStyle::SingleQuoted);
        assert_eq!(docs[0].str_at(&["c"]), Some("hi\n"));
        assert_eq!(docs[1].as_sequence().unwrap().len(), 2);
    }

    #[test]
    fn error_has_position() {
        let e = parse_documents("a: b\n c: d\n", "f.yaml").unwrap_err();
        assert!(e.line >= 1, "{e}");
        assert!(e.to_string().starts_with("f.yaml: yaml: line"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            s.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let e = parse_documents(&s, "bomb").unwrap_err();
        assert!(e.message.contains("excessive aliasing"));
    }

    #[test]
    fn merge_keys() {
        let d = parse_documents("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "").unwrap();
        let m = d[0].get("m").unwrap().as_mapping().unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["y", "x"]);
        assert_eq!(m.get("y").unwrap().as_str(), Some("3"));
    }
}
