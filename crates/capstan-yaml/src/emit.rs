//! An emitter that writes what go-yaml v3's encoder writes with kyaml's settings: block
//! style, indent 2, sequences inside mappings not indented, best width 80, go-yaml's
//! scalar style selection and quoting.

use crate::node::{Mapping, Node, Scalar, ScalarStyle, Tag};
use crate::resolve::{resolve_plain, resolve_plain_v1_1};

const BEST_WIDTH: usize = 80;
const BEST_INDENT: usize = 2;

/// Write documents separated by `---\n` (no leading or trailing separator).
pub fn emit_documents(docs: &[Node]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let mut e = Emitter::plain(std::mem::take(&mut out));
        e.document(d);
        out = e.out;
    }
    out
}

/// Write one document (no `---`).
pub fn emit_document(doc: &Node) -> String {
    let mut e = Emitter::plain(String::new());
    e.document(doc);
    e.out
}

/// Comment lines before item `index` of the container at `path` (see
/// [`EmitOptions::comments`]).
pub type CommentSource<'a> = dyn Fn(&[usize], usize) -> Vec<String> + 'a;

/// The layout of [`emit_documents_with`]: kyaml's (the default: indent 2, sequences in
/// mappings not indented) or go-yaml v3's `Encoder` with `SetIndent(4)` as SOPS writes files
/// ([`EmitOptions::sops`]: indent 4, sequences indented under their key), with comments.
pub struct EmitOptions<'a> {
    /// Spaces per nesting level (2 or 4).
    pub indent: usize,
    /// Whether a sequence inside a mapping is indented under its key (go-yaml v3's encoder
    /// with an indent above 2) rather than written at the key's column (kyaml).
    pub indent_sequences: bool,
    /// Comment lines to write before item `index` of a container (`index` = the
    /// container's length: after its last item). The container is named by `path`: the
    /// document's index, then the position of each item on the way down. Each returned text
    /// is written as `#text` at the items' indent.
    pub comments: Option<&'a CommentSource<'a>>,
}

impl Default for EmitOptions<'_> {
    fn default() -> Self {
        EmitOptions {
            indent: BEST_INDENT,
            indent_sequences: false,
            comments: None,
        }
    }
}

impl<'a> EmitOptions<'a> {
    /// SOPS' dialect: go-yaml v3's encoder with `SetIndent(4)`.
    pub fn sops() -> EmitOptions<'a> {
        EmitOptions {
            indent: 4,
            indent_sequences: true,
            comments: None,
        }
    }
}

/// [`emit_documents`] with a layout ([`EmitOptions`]).
pub fn emit_documents_with(docs: &[Node], opts: &EmitOptions<'_>) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let mut e = Emitter {
            out: std::mem::take(&mut out),
            column: 0,
            indent: opts.indent.clamp(2, 9),
            indent_sequences: opts.indent_sequences,
            comments: opts.comments,
            path: vec![i],
        };
        e.document(d);
        out = e.out;
    }
    out
}

struct Emitter<'a> {
    out: String,
    column: usize,
    indent: usize,
    indent_sequences: bool,
    comments: Option<&'a CommentSource<'a>>,
    /// The position of the container being written (see [`EmitOptions::comments`]).
    path: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

#[derive(Default)]
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    let v = c as u32;
    v == 0x0A
        || (0x20..=0x7E).contains(&v)
        || (0xA0..=0xD7FF).contains(&v)
        || ((0xE000..=0xFFFD).contains(&v) && v != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

#[allow(unused_assignments, clippy::collapsible_match)]
fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let mut block_indicators = false;
    let mut flow_indicators = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let _ = flow_indicators;
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = is_blankz(chars.get(1).copied());
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) =
        (false, false, false, false);
    let n = chars.len();
    for (i, &c) in chars.iter().enumerate() {
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                '?' | ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '-' => {
                    if followed_by_whitespace {
                        flow_indicators = true;
                        block_indicators = true;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '#' => {
                    if preceded_by_whitespace {
                        flow_indicators = true;
                        block_indicators = true;
                    }
                }
                _ => {}
            }
        }
        // Line and paragraph separators and NEL are line breaks to a YAML reader: in
        // plain, single-quoted or block style they would come back as `\n` or a folded
        // space (go-yaml writes them raw and loses them); only escapes keep them.
        if !is_printable(c) || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_break = true;
            previous_space = false;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(Some(c));
        followed_by_whitespace = is_blankz(chars.get(i + 2).copied());
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.block_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// The style go-yaml's encoder asks for, before the emitter's checks.
fn requested_style(s: &Scalar) -> Style {
    match s.style {
        ScalarStyle::SingleQuoted => return Style::Single,
        ScalarStyle::DoubleQuoted => return Style::Double,
        ScalarStyle::Literal => return Style::Literal,
        ScalarStyle::Folded => return Style::Folded,
        _ => {}
    }
    if s.value.contains('\n') {
        return Style::Literal;
    }
    if s.tag == Tag::Str {
        let rtag = if s.style == ScalarStyle::Plain {
            resolve_plain(&s.value)
        } else {
            resolve_plain_v1_1(&s.value)
        };
        if rtag != Tag::Str {
            return Style::Double;
        }
    }
    Style::Plain
}

fn select_style(s: &Scalar, simple_key: bool) -> Style {
    let a = analyze(&s.value);
    let mut style = requested_style(s);
    // go-yaml's encoders print a `<<` string plain (their resolvers look `<<` up only with
    // a hint it lacks); as a key, a plain `<<` would read back as a merge key, so a `<<`
    // string key is quoted.
    if simple_key && s.value == "<<" && s.style != ScalarStyle::Plain && s.tag == Tag::Str {
        style = Style::Double;
    }
    if style == Style::Plain {
        if !a.block_plain_allowed || (s.value.is_empty() && simple_key) {
            style = Style::Single;
        }
        if a.multiline && simple_key {
            style = Style::Double;
        }
    }
    if style == Style::Single && !a.single_quoted_allowed {
        style = Style::Double;
    }
    if (style == Style::Literal || style == Style::Folded) && (!a.block_allowed || simple_key) {
        style = Style::Double;
    }
    style
}

impl Emitter<'_> {
    fn plain(out: String) -> Self {
        Emitter {
            out,
            column: 0,
            indent: BEST_INDENT,
            indent_sequences: false,
            comments: None,
            path: vec![0],
        }
    }
    /// Comment lines before item `index` of the current container, at `indent`.
    fn comment_lines(&mut self, index: usize, indent: usize) {
        let Some(f) = self.comments else { return };
        for c in f(&self.path, index) {
            self.indent_to(indent);
            self.put('#');
            self.put_str(&c);
            self.newline();
        }
    }
    fn put(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }
    fn put_str(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }
    fn newline(&mut self) {
        self.put('\n');
    }
    fn indent_to(&mut self, indent: usize) {
        while self.column < indent {
            self.put(' ');
        }
    }
    fn document(&mut self, d: &Node) {
        match d {
            Node::Mapping(m) if !m.is_empty() => self.mapping(m, 0, self.indent, false),
            Node::Sequence(s) if !s.is_empty() => self.sequence(s, 0, false),
            Node::Mapping(_) => self.put_str("{}\n"),
            Node::Sequence(_) => self.put_str("[]\n"),
            Node::Scalar(s) => {
                // libyaml indents a root scalar's continuation lines by the best indent
                // (a root block scalar's `|2` hint must match its content).
                self.scalar(s, self.indent, false);
                self.newline();
            }
        }
    }

    fn key(&mut self, k: &str, indent: usize) {
        let s = Scalar {
            value: k.to_string(),
            style: ScalarStyle::Any,
            tag: Tag::Str,
        };
        if k.contains('\n') || k.chars().count() > 128 {
            // A complex key.
            self.put_str("? ");
            self.scalar_with(&s, indent + self.indent, false, select_style(&s, false));
            self.newline();
            self.indent_to(indent);
            self.put(':');
            return;
        }
        self.scalar_with(&s, indent, true, select_style(&s, true));
        self.put(':');
    }

    /// Entries of a non-empty block mapping with keys at `indent` and values' content at
    /// `child`; if `inline`, the first entry continues the current line (after `- `).
    fn mapping(&mut self, m: &Mapping, indent: usize, child: usize, inline: bool) {
        for (i, (k, v)) in m.entries.iter().enumerate() {
            if self.comments.is_some() {
                self.comment_lines(i, indent);
            }
            if i > 0 || !inline || self.column == 0 {
                self.indent_to(indent);
            }
            self.key(k, indent);
            self.path.push(i);
            match v {
                Node::Scalar(s) => {
                    let style = select_style(s, false);
                    if !(style == Style::Plain
                        && s.value.is_empty()
                        && !matches!(s.tag, Tag::Custom(_)))
                    {
                        self.put(' ');
                    }
                    self.scalar_with(s, child, false, style);
                    self.newline();
                }
                Node::Mapping(c) if c.is_empty() => self.put_str(" {}\n"),
                Node::Sequence(c) if c.is_empty() => self.put_str(" []\n"),
                Node::Mapping(c) => {
                    self.newline();
                    self.mapping(c, child, child + self.indent, false);
                }
                Node::Sequence(c) => {
                    self.newline();
                    let at = if self.indent_sequences { child } else { indent };
                    self.sequence(c, at, false);
                }
            }
            self.path.pop();
        }
        if self.comments.is_some() {
            self.comment_lines(m.entries.len(), indent);
        }
    }

    fn sequence(&mut self, items: &[Node], indent: usize, inline: bool) {
        for (i, v) in items.iter().enumerate() {
            if self.comments.is_some() {
                self.comment_lines(i, indent);
            }
            if i > 0 || !inline || self.column == 0 {
                self.indent_to(indent);
            }
            self.put('-');
            self.path.push(i);
            match v {
                Node::Scalar(s) => {
                    let style = select_style(s, false);
                    if !(style == Style::Plain
                        && s.value.is_empty()
                        && !matches!(s.tag, Tag::Custom(_)))
                    {
                        self.put(' ');
                    }
                    self.scalar_with(s, indent + self.indent, false, style);
                    self.newline();
                }
                Node::Mapping(c) if c.is_empty() => self.put_str(" {}\n"),
                Node::Sequence(c) if c.is_empty() => self.put_str(" []\n"),
                Node::Mapping(c) => {
                    self.put(' ');
                    // go-yaml v3 writes the keys of a mapping in a sequence after `- `,
                    // their values' content one indent past the dash.
                    let child = if self.indent_sequences {
                        indent + self.indent
                    } else {
                        indent + 2 + self.indent
                    };
                    self.mapping(c, indent + 2, child, true);
                }
                Node::Sequence(c) => {
                    self.put(' ');
                    self.sequence(c, indent + 2, true);
                }
            }
            self.path.pop();
        }
        if self.comments.is_some() {
            self.comment_lines(items.len(), indent);
        }
    }

    fn scalar(&mut self, s: &Scalar, indent: usize, simple_key: bool) {
        let style = select_style(s, simple_key);
        self.scalar_with(s, indent, simple_key, style);
    }

    fn scalar_with(&mut self, s: &Scalar, indent: usize, simple_key: bool, style: Style) {
        if let Tag::Custom(t) = &s.tag {
            if t != "!!timestamp" {
                self.put_str(t);
                if s.value.is_empty() && style == Style::Plain {
                    return;
                }
                self.put(' ');
            }
        }
        let v = &s.value;
        match style {
            Style::Plain => self.write_plain(v, indent, !simple_key),
            Style::Single => self.write_single(v, indent, !simple_key),
            Style::Double => self.write_double(v, indent, !simple_key),
            Style::Literal => self.write_literal(v, indent),
            Style::Folded => self.write_folded(v, indent),
        }
    }

    fn write_plain(&mut self, v: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = v.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.newline();
                    self.indent_to(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
    }

    fn write_single(&mut self, v: &str, indent: usize, allow_breaks: bool) {
        self.put('\'');
        let chars: Vec<char> = v.chars().collect();
        let n = chars.len();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != n - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.newline();
                    self.indent_to(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.newline();
                }
                self.newline();
                breaks = true;
            } else {
                if breaks {
                    self.indent_to(indent);
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                spaces = false;
                breaks = false;
            }
        }
        if breaks {
            self.indent_to(indent);
        }
        self.put('\'');
    }

    fn write_double(&mut self, v: &str, indent: usize, allow_breaks: bool) {
        self.put('"');
        let chars: Vec<char> = v.chars().collect();
        let n = chars.len();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\x07' => self.put('a'),
                    '\x08' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\x0b' => self.put('v'),
                    '\x0c' => self.put('f'),
                    '\r' => self.put('r'),
                    '\x1b' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    _ => {
                        let v = c as u32;
                        if v <= 0xFF {
                            self.put_str(&format!("x{v:02X}"));
                        } else if v <= 0xFFFF {
                            self.put_str(&format!("u{v:04X}"));
                        } else {
                            self.put_str(&format!("U{v:08X}"));
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i != n - 1 {
                    self.newline();
                    self.indent_to(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.put('"');
    }

    fn block_hints(&mut self, v: &str) {
        let first = v.chars().next();
        if let Some(c) = first {
            if c == ' ' || is_break(c) {
                self.put_str(&self.indent.to_string());
            }
        }
        let mut rev = v.chars().rev();
        match rev.next() {
            None => self.put('-'),
            Some(last) if !is_break(last) => self.put('-'),
            Some(_) => match rev.next() {
                None => self.put('+'),
                Some(p) if is_break(p) => self.put('+'),
                _ => {}
            },
        }
    }

    fn write_literal(&mut self, v: &str, indent: usize) {
        self.put('|');
        self.block_hints(v);
        self.newline();
        let mut breaks = true;
        for c in v.chars() {
            if is_break(c) {
                self.newline();
                breaks = true;
            } else {
                if breaks {
                    self.indent_to(indent);
                }
                self.put(c);
                breaks = false;
            }
        }
        // The caller ends the line; a trailing break has already been written.
        if breaks && self.column == 0 {
            self.out.pop();
            self.column = 1; // not at line start; the caller's newline restores it
        }
    }

    fn write_folded(&mut self, v: &str, indent: usize) {
        self.put('>');
        self.block_hints(v);
        self.newline();
        let chars: Vec<char> = v.chars().collect();
        let mut breaks = true;
        let mut leading_spaces = true;
        for (i, &c) in chars.iter().enumerate() {
            if is_break(c) {
                if !breaks && !leading_spaces && c == '\n' {
                    let mut k = 0;
                    while chars.get(i + k).is_some_and(|&c| is_break(c)) {
                        k += 1;
                    }
                    if !is_blankz(chars.get(i + k).copied()) {
                        self.newline();
                    }
                }
                self.newline();
                breaks = true;
            } else {
                if breaks {
                    self.indent_to(indent);
                    leading_spaces = c == ' ' || c == '\t';
                }
                if !breaks && c == ' ' && chars.get(i + 1) != Some(&' ') && self.column > BEST_WIDTH
                {
                    self.newline();
                    self.indent_to(indent);
                } else {
                    self.put(c);
                }
                breaks = false;
            }
        }
        if breaks && self.column == 0 {
            self.out.pop();
            self.column = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_documents;

    fn roundtrip(s: &str) -> String {
        emit_documents(&parse_documents(s, "").unwrap())
    }

    #[test]
    fn basic_block_style() {
        let s = "a: 1\nb:\n  c: x\nd:\n- a\n- b: 1\n  c: 2\n- - x\ne: {}\nf: []\n";
        assert_eq!(roundtrip(s), s);
    }

    #[test]
    fn quoting() {
        let cases = [
            ("true", "\"true\""),
            ("", "\"\""),
            ("a: b", "'a: b'"),
            ("#x", "'#x'"),
            ("yes", "\"yes\""),
            ("012", "\"012\""),
            ("- a", "'- a'"),
            ("tab\there", "\"tab\\there\""),
            ("a,b", "a,b"),
            ("x\n\n", "|+\n  x\n"),
            ("multi\nline", "|-\n  multi\n  line"),
        ];
        for (v, want) in cases {
            let mut m = Mapping::new();
            m.insert("k", Node::string(v));
            let got = emit_document(&Node::Mapping(m));
            assert_eq!(got, format!("k: {want}\n"), "value {v:?}");
        }
    }

    #[test]
    fn folds_long_plain() {
        let v = format!("{} {} {}", "a".repeat(36), "b".repeat(51), "c".repeat(38));
        let mut m = Mapping::new();
        m.insert("long", Node::string(v));
        let mut outer = Mapping::new();
        outer.insert("x", Node::Mapping(m));
        let got = emit_document(&Node::Mapping(outer));
        assert_eq!(
            got,
            format!(
                "x:\n  long: {} {}\n    {}\n",
                "a".repeat(36),
                "b".repeat(51),
                "c".repeat(38)
            )
        );
    }

    #[test]
    fn sops_dialect_indents_4_with_indented_sequences_and_comments() {
        let docs = parse_documents(
            "a: 1\nb:\n  c: x\n  k: |\n    l1\n    l2\nd:\n- a\n- e: 1\n  f: |\n    z\n",
            "",
        )
        .unwrap();
        let comments = |path: &[usize], index: usize| -> Vec<String> {
            match (path, index) {
                ([0], 0) => vec![" head".into()],
                ([0, 1], 2) => vec![" end of b".into()],
                _ => vec![],
            }
        };
        let mut opts = EmitOptions::sops();
        opts.comments = Some(&comments);
        assert_eq!(
            emit_documents_with(&docs, &opts),
            "# head\na: 1\nb:\n    c: x\n    k: |\n        l1\n        l2\n    # end of b\nd:\n    - a\n    - e: 1\n      f: |\n        z\n"
        );
        // The default options are kyaml's layout.
        assert_eq!(
            emit_documents_with(&docs, &EmitOptions::default()),
            emit_documents(&docs)
        );
    }

    #[test]
    fn documents_separated() {
        assert_eq!(roundtrip("a: 1\n---\nb: 2\n"), "a: 1\n---\nb: 2\n");
    }
}
