//! Parsing with saphyr-parser's event stream.
//!
//! On top of the events this module applies go-yaml v3's rules where saphyr differs or
//! leaves the choice to the application:
//!
//! * a mapping key written twice is an error (`mapping key "a" already defined at line
//!   N`), as go-yaml v3's decoder (and so kustomize) reports it; merge keys (`<<`) may
//!   still be overridden by the mapping's own keys;
//! * a block scalar that ends the input without a final line break does not gain one
//!   (libyaml/go-yaml: `a: |\n  x` at the end of a file is `"x"`, not `"x\n"`);
//! * alias expansion has a budget (nodes and bytes copied, over the whole stream) and
//!   nesting has a depth limit that counts expanded aliases, so billion-laughs documents
//!   and deeply nested collections fail with an error instead of exhausting memory or
//!   the stack.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle as PStyle, Span};

use crate::node::{Mapping, Node, Scalar, ScalarStyle, Tag};
use crate::resolve::resolve_plain;

/// What went wrong, for callers that act on the kind of error rather than its text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum YamlErrorKind {
    /// The text is not well-formed YAML (the scanner's or parser's message).
    Syntax,
    /// The input is larger than [`ParseLimits::max_bytes`].
    TooLarge,
    /// A mapping has the same key twice; `line`/`column` point at the second one.
    DuplicateKey {
        /// The key as written (its text).
        key: String,
        /// The 1-based line of the first occurrence.
        first_line: usize,
    },
    /// Expanding aliases would copy more than [`ParseLimits::max_alias_nodes`] nodes or
    /// [`ParseLimits::max_alias_bytes`] bytes.
    ExcessiveAliasing,
    /// Collections nest deeper than [`ParseLimits::max_depth`] (aliases included).
    TooDeep,
    /// An alias names an anchor that was not defined before it.
    UnknownAnchor(String),
    /// A merge key (`<<`) whose value is not a mapping or a sequence of mappings.
    InvalidMerge,
}

/// A parse error with its position (1-based line and column) and the name of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The name given to [`parse_documents`] (usually a file path).
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The kind of error.
    pub kind: YamlErrorKind,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.source_name.is_empty() {
            write!(f, "{}: ", self.source_name)?;
        }
        if self.line == 0 {
            write!(f, "yaml: {}", self.message)
        } else {
            write!(
                f,
                "yaml: line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for YamlError {}

/// What to do with a mapping key written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicateKeys {
    /// An error (go-yaml v3, kyaml: resources, patches, plugin configs, Helm's
    /// `index.yaml` read with `UnmarshalStrict`).
    #[default]
    Error,
    /// The last value wins, at the position of the first (go-yaml v2 / `sigs.k8s.io/yaml`
    /// without strictness: kustomization files, Helm values, `fromYaml`).
    LastWins,
}

/// Limits against hostile input, and the duplicate key policy.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Maximum input size in bytes.
    pub max_bytes: usize,
    /// Maximum number of nodes copied by expanding aliases, over the whole stream.
    pub max_alias_nodes: usize,
    /// Maximum number of bytes (scalar text and keys) copied by expanding aliases, over
    /// the whole stream.
    pub max_alias_bytes: usize,
    /// Maximum nesting depth of collections, counting the depth of expanded aliases.
    pub max_depth: usize,
    /// Duplicate mapping keys.
    pub duplicate_keys: DuplicateKeys,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bytes: 64 << 20,
            max_alias_nodes: 1_000_000,
            max_alias_bytes: 64 << 20,
            max_depth: 512,
            duplicate_keys: DuplicateKeys::Error,
        }
    }
}

impl ParseLimits {
    /// The default limits with duplicate keys allowed (last wins), as
    /// `sigs.k8s.io/yaml` reads kustomization files and Helm values.
    pub fn last_key_wins() -> Self {
        ParseLimits {
            duplicate_keys: DuplicateKeys::LastWins,
            ..ParseLimits::default()
        }
    }
}

/// Parse a multi-document stream with the default [`ParseLimits`] (duplicate keys are an
/// error). Empty documents (a document holding only a null, e.g. between two `---`) are
/// kept as null nodes; callers that want resources skip them.
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<Node>, YamlError> {
    parse_documents_with(text, source_name, &ParseLimits::default())
}

/// Parse a multi-document stream where a duplicate mapping key replaces the earlier value
/// (go-yaml v2 without strictness), with the default budgets.
pub fn parse_documents_last_key_wins(
    text: &str,
    source_name: &str,
) -> Result<Vec<Node>, YamlError> {
    parse_documents_with(text, source_name, &ParseLimits::last_key_wins())
}

/// An anchored node and what copying it costs.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
    height: usize,
}

/// Nodes, bytes (scalar text and keys) and collection height of a tree.
fn measure(n: &Node) -> (usize, usize, usize) {
    match n {
        Node::Scalar(s) => (1, s.value.len(), 0),
        Node::Sequence(items) => {
            let (mut nodes, mut bytes, mut height) = (1, 0, 0);
            for i in items {
                let (a, b, h) = measure(i);
                nodes += a;
                bytes += b;
                height = height.max(h);
            }
            (nodes, bytes, height + 1)
        }
        Node::Mapping(m) => {
            let (mut nodes, mut bytes, mut height) = (1, 0, 0);
            for (k, v) in &m.entries {
                let (a, b, h) = measure(v);
                nodes += a + 1;
                bytes += b + k.len();
                height = height.max(h);
            }
            (nodes, bytes, height + 1)
        }
    }
}

struct MapFrame {
    map: Mapping,
    /// The 1-based line of each entry's key (parallel to `map.entries`).
    key_lines: Vec<usize>,
    /// The key read, waiting for its value: text, line, column, whether it is a merge key.
    key: Option<(String, usize, usize, bool)>,
    /// Where the next key starts (line, column), set when its first event arrives.
    key_start: (usize, usize),
    /// Values of merge keys (`<<`), in order, with the line of their key.
    merges: Vec<(Node, usize, usize)>,
    /// The line of the first merge key.
    merge_line: Option<usize>,
    anchor: usize,
}

enum Frame {
    Seq(Vec<Node>, usize),
    Map(MapFrame),
}

/// libyaml's (go-yaml's) chomping of a block scalar that ends the input without a line
/// break, for readers built on saphyr-parser's events (saphyr adds a final `\n` that the
/// input does not have). Build it from the text given to the parser.
pub struct BlockScalarAtEnd<'t>(InputEnd<'t>);

impl<'t> BlockScalarAtEnd<'t> {
    pub fn new(text: &'t str) -> Self {
        BlockScalarAtEnd(InputEnd::new(text))
    }
    /// Correct `value`, saphyr's text of a literal or folded scalar event, given its
    /// span: `start`/`end` as saphyr's markers (1-based line, 0-based column, index in
    /// characters).
    pub fn fix(
        &self,
        value: &mut String,
        start: (usize, usize, usize),
        end: (usize, usize, usize),
    ) {
        let mk = |(line, col, index): (usize, usize, usize)| Marker::new(index, line, col);
        self.0
            .fix_block_scalar(value, &Span::new(mk(start), mk(end)));
    }
}

/// Facts about the input's end that the block scalar fix needs.
struct InputEnd<'t> {
    /// The input ends with a line break (nothing to fix).
    ends_with_break: bool,
    /// Its length in characters.
    chars: usize,
    /// The last (unterminated) line.
    last_line: &'t str,
}

impl<'t> InputEnd<'t> {
    fn new(text: &'t str) -> Self {
        let ends_with_break = text.is_empty() || text.ends_with(['\n', '\r']);
        let last_line = match text.rfind(['\n', '\r']) {
            Some(i) => &text[i + 1..],
            None => text,
        };
        InputEnd {
            ends_with_break,
            chars: if ends_with_break {
                0
            } else {
                text.chars().count()
            },
            last_line,
        }
    }

    /// libyaml's chomping at the end of input: a block scalar whose last line has no
    /// line break keeps no final line break under clip or keep chomping (the break
    /// simply is not there); saphyr adds one. `value` is saphyr's text for a block
    /// scalar spanning `span`.
    fn fix_block_scalar(&self, value: &mut String, span: &Span) {
        if self.ends_with_break || span.end.index() < self.chars || !value.ends_with('\n') {
            return;
        }
        if value.bytes().all(|b| b == b'\n') {
            // No content line: saphyr's span starts at the indicator. Only the breaks of
            // empty lines are content (keep); an unterminated last line of spaces is not a
            // line.
            if value == "\n" && span.end.line() == span.start.line() + 1 {
                value.clear();
            }
            return;
        }
        // With content lines the span starts at the first content character, whose
        // column is the scalar's indentation; saphyr adds the break when the unterminated
        // last line reaches it.
        let indent = span.start.col().max(1);
        if self.last_line.chars().count() >= indent {
            value.pop();
        }
    }
}

/// Parse a multi-document stream with explicit limits.
pub fn parse_documents_with(
    text: &str,
    source_name: &str,
    limits: &ParseLimits,
) -> Result<Vec<Node>, YamlError> {
    let err = |line: usize, column: usize, kind: YamlErrorKind, message: String| YamlError {
        source_name: source_name.to_string(),
        line,
        column,
        message,
        kind,
    };
    if text.len() > limits.max_bytes {
        return Err(err(
            0,
            0,
            YamlErrorKind::TooLarge,
            format!(
                "input of {} bytes exceeds the limit of {} bytes",
                text.len(),
                limits.max_bytes
            ),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let end = InputEnd::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Anchored> = HashMap::new();
    let mut alias_nodes = limits.max_alias_nodes;
    let mut alias_bytes = limits.max_alias_bytes;
    let mut doc_root: Option<Node> = None;

    loop {
        let (ev, span) = match parser.next_event() {
            None => break,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(err(
                    m.line(),
                    m.col() + 1,
                    YamlErrorKind::Syntax,
                    e.info().to_string(),
                ));
            }
        };
        let (line, col) = (span.start.line(), span.start.col() + 1);
        if matches!(
            ev,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        ) {
            if let Some(Frame::Map(f)) = stack.last_mut() {
                if f.key.is_none() {
                    f.key_start = (line, col);
                }
            }
        }
        let too_deep = || {
            err(
                line,
                col,
                YamlErrorKind::TooDeep,
                format!(
                    "collections nest deeper than {} levels (max depth exceeded)",
                    limits.max_depth
                ),
            )
        };
        let complete: Option<(Node, usize, bool)> = match ev {
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
                let a = anchors.get(&id).ok_or_else(|| {
                    err(
                        line,
                        col,
                        YamlErrorKind::UnknownAnchor(id.to_string()),
                        "unknown anchor referenced".into(),
                    )
                })?;
                if stack.len() + a.height > limits.max_depth {
                    return Err(too_deep());
                }
                if a.nodes > alias_nodes || a.bytes > alias_bytes {
                    return Err(err(
                        line,
                        col,
                        YamlErrorKind::ExcessiveAliasing,
                        format!(
                            "document contains excessive aliasing (expanding aliases would copy more than {} nodes or {} bytes)",
                            limits.max_alias_nodes, limits.max_alias_bytes
                        ),
                    ));
                }
                alias_nodes -= a.nodes;
                alias_bytes -= a.bytes;
                Some((a.node.clone(), 0, false))
            }
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    PStyle::Plain => ScalarStyle::Plain,
                    PStyle::SingleQuoted => ScalarStyle::SingleQuoted,
                    PStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
                    PStyle::Literal => ScalarStyle::Literal,
                    PStyle::Folded => ScalarStyle::Folded,
                };
                let mut value = value.into_owned();
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    end.fix_block_scalar(&mut value, &span);
                }
                // go-yaml: only an untagged plain `<<` is a merge key.
                let is_merge = style == ScalarStyle::Plain && tag.is_none() && value == "<<";
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
                Some((Node::Scalar(Scalar { value, style, tag }), anchor, is_merge))
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= limits.max_depth {
                    return Err(too_deep());
                }
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= limits.max_depth {
                    return Err(too_deep());
                }
                stack.push(Frame::Map(MapFrame {
                    map: Mapping::new(),
                    key_lines: Vec::new(),
                    key: None,
                    key_start: (line, col),
                    merges: Vec::new(),
                    merge_line: None,
                    anchor,
                }));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Node::Sequence(items), anchor, false)),
                _ => unreachable!("unbalanced sequence events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(f)) => {
                    let mut m = f.map;
                    if !f.merges.is_empty() {
                        apply_merge_keys(&mut m, f.merges).map_err(|(l, c)| {
                            err(
                                l,
                                c,
                                YamlErrorKind::InvalidMerge,
                                "map merge requires map or sequence of maps as the value".into(),
                            )
                        })?;
                    }
                    Some((Node::Mapping(m), f.anchor, false))
                }
                _ => unreachable!("unbalanced mapping events"),
            },
        };
        let Some((node, anchor, is_merge)) = complete else {
            continue;
        };
        if anchor != 0 {
            let (nodes, bytes, height) = measure(&node);
            anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    nodes,
                    bytes,
                    height,
                },
            );
        }
        let depth = stack.len();
        match stack.last_mut() {
            None => doc_root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(f)) => match f.key.take() {
                None => {
                    let k = match &node {
                        Node::Scalar(s) => s.value.clone(),
                        other => crate::emit::emit_document(other).trim_end().to_string(),
                    };
                    let (kl, kc) = f.key_start;
                    f.key = Some((k, kl, kc, is_merge));
                }
                Some((k, kl, kc, true)) => {
                    if let Some(first) = f.merge_line {
                        if limits.duplicate_keys == DuplicateKeys::Error {
                            return Err(duplicate(&err, &k, kl, kc, first, depth));
                        }
                    }
                    f.merge_line.get_or_insert(kl);
                    f.merges.push((node, kl, kc));
                }
                Some((k, kl, kc, false)) => {
                    match f.map.entries.iter().position(|(k2, _)| *k2 == k) {
                        Some(i) => {
                            if limits.duplicate_keys == DuplicateKeys::Error {
                                return Err(duplicate(&err, &k, kl, kc, f.key_lines[i], depth));
                            }
                            f.map.entries[i].1 = node;
                        }
                        None => {
                            f.map.entries.push((k, node));
                            f.key_lines.push(kl);
                        }
                    }
                }
            },
        }
    }
    Ok(docs)
}

/// The duplicate key error, worded as go-yaml v3's decoder words it, with a hint when a
/// document's top-level `apiVersion`/`kind` repeats (two resources without `---`).
fn duplicate(
    err: &impl Fn(usize, usize, YamlErrorKind, String) -> YamlError,
    key: &str,
    line: usize,
    column: usize,
    first_line: usize,
    depth: usize,
) -> YamlError {
    let mut message = format!("mapping key {key:?} already defined at line {first_line}");
    if depth == 1 && matches!(key, "apiVersion" | "kind") {
        message.push_str(&format!(
            " (is a `---` document separator missing before line {line}?)"
        ));
    }
    err(
        line,
        column,
        YamlErrorKind::DuplicateKey {
            key: key.to_string(),
            first_line,
        },
        message,
    )
}

/// Apply YAML merge keys (`<<: *base` or `<<: [*a, *b]`): the mapping's own keys win, then
/// earlier merged mappings over later ones; merged keys follow the mapping's own. An
/// error (the merge key's line and column) if a merge value is not a mapping or a
/// sequence of mappings.
fn apply_merge_keys(
    m: &mut Mapping,
    merges: Vec<(Node, usize, usize)>,
) -> Result<(), (usize, usize)> {
    for (v, line, col) in merges {
        let sources = match v {
            Node::Mapping(src) => vec![src],
            Node::Sequence(items) => items
                .into_iter()
                .map(|n| match n {
                    Node::Mapping(s) => Ok(s),
                    _ => Err((line, col)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err((line, col)),
        };
        for src in sources {
            for (sk, sv) in src.entries {
                if !m.contains_key(&sk) {
                    m.entries.push((sk, sv));
                }
            }
        }
    }
    Ok(())
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
        assert_eq!(e.kind, YamlErrorKind::Syntax);
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
        assert_eq!(e.kind, YamlErrorKind::ExcessiveAliasing);
        assert!(e.message.contains("excessive aliasing"));
        assert!(e.to_string().starts_with("bomb: yaml: line "), "{e}");
    }

    #[test]
    fn merge_keys() {
        let d = parse_documents("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "").unwrap();
        let m = d[0].get("m").unwrap().as_mapping().unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["y", "x"]);
        assert_eq!(m.get("y").unwrap().as_str(), Some("3"));
    }

    fn a(text: &str) -> String {
        let d = parse_documents(text, "t.yaml").unwrap();
        d[0].str_at(&["a"]).unwrap().to_string()
    }

    /// Two resources without `---` between them: go-yaml v3 (kustomize) refuses the
    /// repeated `apiVersion` instead of keeping the second resource's fields.
    #[test]
    fn duplicate_key_is_an_error_naming_file_line_and_key() {
        let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n";
        let e = parse_documents(text, "crds.yaml").unwrap_err();
        assert_eq!(
            e.kind,
            YamlErrorKind::DuplicateKey {
                key: "apiVersion".into(),
                first_line: 1
            }
        );
        assert_eq!((e.line, e.column), (5, 1));
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                "crds.yaml: yaml: line 5, column 1: mapping key \"apiVersion\" already defined at line 1"
            ),
            "{shown}"
        );
        assert!(shown.contains("`---`"), "{shown}");
    }

    #[test]
    fn duplicate_key_nested_quoted_and_flow() {
        let e = parse_documents("data:\n  a: 1\n  b: 2\n  'a': 3\n", "f").unwrap_err();
        assert_eq!((e.line, e.column), (4, 3));
        assert!(e
            .message
            .ends_with("mapping key \"a\" already defined at line 2"));
        assert!(!e.message.contains("---"));
        let e = parse_documents("x: {\"a\": 1, a: 2}\n", "f").unwrap_err();
        assert!(
            matches!(e.kind, YamlErrorKind::DuplicateKey { ref key, first_line: 1 } if key == "a")
        );
        // The same key in different mappings, or in different documents, is fine.
        parse_documents("a: {k: 1}\nb: {k: 2}\n---\na: 1\n", "f").unwrap();
    }

    #[test]
    fn duplicate_key_last_wins_when_asked() {
        let d = parse_documents_last_key_wins("a: 1\nb: 2\na: 3\n", "f").unwrap();
        let m = d[0].as_mapping().unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(m.get("a").unwrap().as_str(), Some("3"));
    }

    #[test]
    fn merge_key_may_be_overridden_but_not_repeated() {
        let d = parse_documents(
            "b: &b {x: 1}\nc: &c {y: 2}\nm:\n  <<: [*b, *c]\n  x: 3\n",
            "f",
        )
        .unwrap();
        let m = d[0].get("m").unwrap().as_mapping().unwrap();
        assert_eq!(m.get("x").unwrap().as_str(), Some("3"));
        assert_eq!(m.get("y").unwrap().as_str(), Some("2"));
        let e = parse_documents("b: &b {x: 1}\nm:\n  <<: *b\n  <<: *b\n", "f").unwrap_err();
        assert!(
            matches!(e.kind, YamlErrorKind::DuplicateKey { ref key, first_line: 3 } if key == "<<"),
            "{e}"
        );
    }

    #[test]
    fn merge_key_needs_mappings() {
        let e = parse_documents("m:\n  <<: 1\n  a: 2\n", "f").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::InvalidMerge);
        assert_eq!(e.line, 2);
        let e = parse_documents("b: &b {x: 1}\nm:\n  <<: [*b, 2]\n", "f").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::InvalidMerge);
        // A quoted `<<` is an ordinary key (go-yaml gives it the !!str tag).
        let d = parse_documents("m:\n  '<<': 1\n", "f").unwrap();
        assert_eq!(d[0].str_at(&["m", "<<"]), Some("1"));
    }

    /// libyaml/go-yaml chomping when a block scalar ends the input without a line break.
    #[test]
    fn block_scalar_at_end_of_input_without_final_break() {
        let cases = [
            // clip: no final break in the input, none in the value
            ("a: |\n  hello\n  world", "hello\nworld"),
            ("a: |\n  hello\n  world\n", "hello\nworld\n"),
            ("a: >\n  x\n  y", "x y"),
            ("a: |2\n   x\n  y", " x\ny"),
            ("a: |\n\n  x", "\nx"),
            // keep: only the breaks that are there
            ("a: |+\n  hello\n  world", "hello\nworld"),
            ("a: |+\n  x\n\n  ", "x\n\n"),
            ("a: |+\n  x\n  ", "x\n"),
            ("a: |+\n  x\n ", "x\n"),
            ("a: >+\n  x\n\n  y\n\n  ", "x\ny\n\n"),
            ("a: |+\n  ", ""),
            ("a: |+\n\n  ", "\n"),
            // strip
            ("a: |-\n  hello", "hello"),
            ("a: |-\n  hello\n\n", "hello"),
            // trailing whitespace-only lines
            ("a: |\n  x\n  ", "x\n"),
            ("a: |\n  x\n ", "x\n"),
            ("a: |\n  x\n    ", "x\n  "),
            ("a: |\n  x\n\n\n", "x\n"),
            ("a: |+\n  x\n\n\n", "x\n\n\n"),
            // not at the end: unchanged
            ("a: |\n  x\nb: 1", "x\n"),
            ("a: |\n  x\n---\na: 2", "x\n"),
            // multi-byte text before the end
            ("a: |\n  héllo\n  wörld", "héllo\nwörld"),
        ];
        for (text, want) in cases {
            assert_eq!(a(text), want, "{text:?}");
        }
        let d = parse_documents("|\nabc", "t").unwrap();
        assert_eq!(d[0].as_str(), Some("abc"));
        let d = parse_documents("- |\n  x\n- |\n  y", "t").unwrap();
        assert_eq!(d[0].as_sequence().unwrap()[0].as_str(), Some("x\n"));
        assert_eq!(d[0].as_sequence().unwrap()[1].as_str(), Some("y"));
    }

    /// Billion laughs with long strings: the byte budget stops it even though the node
    /// count stays small.
    #[test]
    fn alias_byte_budget() {
        let big = "x".repeat(1 << 20);
        let mut s = format!("a0: &a0 \"{big}\"\n");
        for i in 1..5 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse_documents(&s, "values.yaml").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::ExcessiveAliasing);
        // Moderate reuse is fine.
        let ok = format!("a: &a \"{big}\"\nb: [*a, *a, *a]\n");
        parse_documents(&ok, "values.yaml").unwrap();
    }

    #[test]
    fn alias_budget_is_configurable() {
        let limits = ParseLimits {
            max_alias_nodes: 5,
            ..ParseLimits::default()
        };
        let e = parse_documents_with("a: &a [1, 2, 3]\nb: *a\nc: *a\n", "f", &limits).unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::ExcessiveAliasing);
        assert_eq!(e.line, 3);
    }

    #[test]
    fn deep_flow_nesting_is_an_error_not_a_crash() {
        // saphyr's scanner stops at 255 flow levels, before the depth limit.
        let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_documents(&text, "deep.yaml").unwrap_err();
        assert!(e.message.contains("recursion limit"), "{e}");
        let text = format!("{}1{}", "{a: ".repeat(50_000), "}".repeat(50_000));
        assert!(parse_documents(&text, "deep.yaml").is_err());
        let limits = ParseLimits {
            max_depth: 100,
            ..ParseLimits::default()
        };
        let text = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let e = parse_documents_with(&text, "deep.yaml", &limits).unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::TooDeep);
    }

    #[test]
    fn deep_block_nesting_is_an_error_not_a_crash() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&" ".repeat(i));
            text.push_str("- ");
            text.push('\n');
        }
        let mut text2 = String::new();
        for i in 0..2000 {
            text2.push_str(&" ".repeat(i));
            text2.push_str("k:\n");
        }
        for t in [text, text2] {
            assert_eq!(
                parse_documents(&t, "deep.yaml").unwrap_err().kind,
                YamlErrorKind::TooDeep
            );
        }
        // Within the limit.
        let ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        parse_documents(&ok, "f").unwrap();
    }

    /// Aliases of nested anchors cannot build a tree deeper than the limit.
    #[test]
    fn alias_expansion_counts_towards_depth() {
        let mut s = String::from("a0: &a0 1\n");
        for i in 1..40 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} {}*a{p}{}\n",
                "[".repeat(20),
                "]".repeat(20)
            ));
        }
        let e = parse_documents(&s, "f").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::TooDeep);
    }
}
