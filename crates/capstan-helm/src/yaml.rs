//! YAML → [`Val`] the way Helm reads values (`sigs.k8s.io/yaml`: go-yaml v2's YAML 1.1
//! resolution, then JSON, so every number becomes a float64).

use crate::value::{Map, Val};
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use std::collections::HashMap;

/// A YAML error with Helm-like text.
#[derive(Debug, Clone)]
pub struct YamlError(pub String);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How numbers are kept.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// All numbers become float64 (values files, as through JSON).
    Json,
    /// Integers stay int64 (go-yaml straight into interface{}).
    Native,
    /// Every non-null scalar stays a string with its source text (decoding into Go
    /// string fields, as for Chart.yaml).
    Text,
}

/// Parses the first document of `src` (an empty document is `Null`).
pub fn parse(src: &str, numbers: Numbers) -> Result<Val, YamlError> {
    let mut docs = parse_all(src, numbers)?;
    if docs.is_empty() {
        Ok(Val::Null)
    } else {
        Ok(docs.swap_remove(0))
    }
}

/// Parses a values file: a map (empty/null document gives an empty map).
pub fn parse_values(src: &str) -> Result<Map, YamlError> {
    let v = parse(src, Numbers::Json)
        .map_err(|e| YamlError(format!("error converting YAML to JSON: {e}")))?;
    if let Some(bad) = non_json_float(&v) {
        return Err(YamlError(format!(
            "error converting YAML to JSON: json: unsupported value: {bad}"
        )));
    }
    match v {
        Val::Null => Ok(Map::new()),
        Val::Map(m) => Ok(m),
        other => Err(YamlError(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        ))),
    }
}

/// The first NaN/Inf in `v` (JSON cannot hold them), as Go prints it.
fn non_json_float(v: &Val) -> Option<String> {
    match v {
        Val::Float(f) if !f.is_finite() => Some(crate::value::format_float_g(*f)),
        Val::List(l) => l.iter().find_map(non_json_float),
        Val::Map(m) => m.values().find_map(non_json_float),
        _ => None,
    }
}

fn json_kind(v: &Val) -> &'static str {
    match v {
        Val::List(_) => "array",
        Val::Str(_) => "string",
        Val::Bool(_) => "bool",
        Val::Int(_) | Val::Float(_) => "number",
        _ => "value",
    }
}

/// Parses every document.
pub fn parse_all(src: &str, numbers: Numbers) -> Result<Vec<Val>, YamlError> {
    let mut b = Builder {
        numbers,
        anchors: HashMap::new(),
        parser: Parser::new_from_str(src),
        span: None,
        end: capstan_yaml::BlockScalarAtEnd::new(src),
        decode_count: 0,
        alias_count: 0,
        alias_bytes: 0,
        scalar_bytes: 0,
        depth: 0,
    };
    let mut docs = Vec::new();
    loop {
        match b.next()? {
            None => break,
            Some(Event::StreamStart) | Some(Event::DocumentEnd) => {}
            Some(Event::StreamEnd) => break,
            Some(Event::DocumentStart(_)) => {
                let ev = b
                    .next()?
                    .ok_or_else(|| YamlError("unexpected end".into()))?;
                match ev {
                    Event::DocumentEnd => docs.push(Val::Null),
                    ev => {
                        let v = b.node(ev)?;
                        docs.push(v);
                    }
                }
            }
            Some(_) => return Err(YamlError("yaml: unexpected event".into())),
        }
    }
    Ok(docs)
}

/// Words a parser error as go-yaml does: only the problem (no "while ..." context); the
/// line is the problem mark's (0-based for parser errors, 1-based for scanner errors,
/// omitted on the first line).
fn go_yaml_error(line: usize, info: &str) -> String {
    let (parser_error, problem) = match info.split_once(", ") {
        Some((ctx, p)) if ctx.starts_with("while parsing") => (true, p),
        Some((ctx, p)) if ctx.starts_with("while scanning") => (false, p),
        _ => (false, info),
    };
    let mut zero_based = line.saturating_sub(1);
    let problem = match problem {
        "expected ',' or ']'" => "did not find expected ',' or ']'",
        "simple key expect ':'" | "simple key expected" => "could not find expected ':'",
        "missing explicit document end marker before directive" => {
            "could not find expected directive name"
        }
        "misplaced bracket" => "did not find expected key",
        "found a tab" => {
            zero_based += 1;
            "found a tab character that violates indentation"
        }
        p if p.starts_with("unexpected character") => "found character that cannot start any token",
        p => p,
    };
    let go_line = if zero_based == 0 {
        0
    } else if parser_error {
        zero_based
    } else {
        zero_based + 1
    };
    if go_line == 0 {
        format!("yaml: {problem}")
    } else {
        format!("yaml: line {go_line}: {problem}")
    }
}

/// How deep collections may nest. go-yaml allows 10000 levels (`max_flow_level`,
/// `max_indents`; the parser here stops flow collections at 255 on its own); here 1000:
/// every level of a value recurses through coalescing, conversion and dropping, on
/// whatever thread the caller loads charts on (a 2 MiB one in tests and async runtimes),
/// and real values nest a few dozen levels.
pub const MAX_DEPTH: usize = 1_000;

/// Bytes of scalar text alias expansion may copy in one document. go-yaml shares the
/// strings an alias repeats; here every expansion is a copy, so besides go-yaml's node
/// ratio ([`allowed_alias_ratio`]) the copied bytes are bounded too.
pub const MAX_ALIAS_BYTES: usize = 64 * 1024 * 1024;

const EXCESSIVE_ALIASING: &str = "yaml: document contains excessive aliasing";

/// go-yaml's `allowedAliasRatio`: how much of a document's decoded nodes may come from
/// alias expansion (99% up to 400000 nodes, scaling down to 10% at 4000000).
pub fn allowed_alias_ratio(decode_count: usize) -> f64 {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    let d = decode_count as f64;
    if d <= LOW {
        0.99
    } else if d >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((d - LOW) / (HIGH - LOW))
    }
}

/// An anchored value, with what decoding it cost (what each alias to it costs again).
struct Anchor {
    value: Val,
    nodes: usize,
    bytes: usize,
}

struct Builder<'a> {
    numbers: Numbers,
    anchors: HashMap<usize, Anchor>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// The span of the last event.
    span: Option<saphyr_parser::Span>,
    end: capstan_yaml::BlockScalarAtEnd<'a>,
    /// Nodes decoded, counting every alias expansion in full (go-yaml's `decodeCount`).
    decode_count: usize,
    /// Nodes decoded inside alias expansions (go-yaml's `aliasCount`).
    alias_count: usize,
    /// Scalar bytes copied by alias expansions.
    alias_bytes: usize,
    /// Scalar bytes decoded, counting alias expansions.
    scalar_bytes: usize,
    /// Collections open.
    depth: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Option<Event<'a>>, YamlError> {
        match self.parser.next_event() {
            None => Ok(None),
            Some(Ok((ev, span))) => {
                self.span = Some(span);
                Ok(Some(ev))
            }
            Some(Err(e)) => Err(YamlError(go_yaml_error(e.marker().line(), e.info()))),
        }
    }

    /// Counts decoded nodes as go-yaml's decoder does and fails a document that is mostly
    /// alias expansion (a "billion laughs").
    fn count(&mut self, nodes: usize, aliased: bool) -> Result<(), YamlError> {
        self.decode_count += nodes;
        if aliased {
            self.alias_count += nodes;
        }
        if self.alias_count > 100
            && self.decode_count > 1000
            && self.alias_count as f64 / self.decode_count as f64
                > allowed_alias_ratio(self.decode_count)
        {
            return Err(YamlError(EXCESSIVE_ALIASING.into()));
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, value: &Val, nodes_before: usize, bytes_before: usize) {
        if anchor > 0 {
            self.anchors.insert(
                anchor,
                Anchor {
                    value: value.clone(),
                    nodes: self.decode_count - nodes_before,
                    bytes: self.scalar_bytes - bytes_before,
                },
            );
        }
    }

    fn node(&mut self, ev: Event<'a>) -> Result<Val, YamlError> {
        let (nodes_before, bytes_before) = (self.decode_count, self.scalar_bytes);
        self.count(1, false)?;
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.scalar_bytes += text.len();
                let v = if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    // libyaml: no invented final line break at the end of the input.
                    let mut text = text.into_owned();
                    if let Some(s) = self.span {
                        let m = |m: saphyr_parser::Marker| (m.line(), m.col(), m.index());
                        self.end.fix(&mut text, m(s.start), m(s.end));
                    }
                    resolve_scalar(&text, style, tag.as_deref(), self.numbers)
                } else {
                    resolve_scalar(&text, style, tag.as_deref(), self.numbers)
                };
                self.anchor(anchor, &v, nodes_before, bytes_before);
                Ok(v)
            }
            Event::Alias(id) => {
                let (nodes, bytes) = match self.anchors.get(&id) {
                    Some(a) => (a.nodes, a.bytes),
                    None => return Err(YamlError("yaml: unknown anchor referenced".into())),
                };
                self.count(nodes, true)?;
                self.alias_bytes += bytes;
                self.scalar_bytes += bytes;
                if self.alias_bytes > MAX_ALIAS_BYTES {
                    return Err(YamlError(EXCESSIVE_ALIASING.into()));
                }
                Ok(self.anchors[&id].value.clone())
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if self.depth >= MAX_DEPTH {
                    return Err(YamlError(format!(
                        "yaml: exceeded max depth of {MAX_DEPTH}"
                    )));
                }
                self.depth += 1;
                // deep documents recurse deep: grow the stack in segments rather than
                // overflow whatever thread parses
                let r = stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
                    self.collection(ev, nodes_before, bytes_before)
                });
                self.depth -= 1;
                r
            }
            _ => Err(YamlError("yaml: unexpected event".into())),
        }
    }

    fn collection(
        &mut self,
        ev: Event<'a>,
        nodes_before: usize,
        bytes_before: usize,
    ) -> Result<Val, YamlError> {
        match ev {
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let ev = self
                        .next()?
                        .ok_or_else(|| YamlError("unexpected end".into()))?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev)?);
                }
                let v = Val::List(items);
                self.anchor(anchor, &v, nodes_before, bytes_before);
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut m = Map::new();
                let mut merges: Vec<Val> = Vec::new();
                loop {
                    let ev = self
                        .next()?
                        .ok_or_else(|| YamlError("unexpected end".into()))?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge =
                        matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
                    let key = self.node(ev)?;
                    let vev = self
                        .next()?
                        .ok_or_else(|| YamlError("unexpected end".into()))?;
                    let val = self.node(vev)?;
                    if is_merge {
                        merges.push(val);
                        continue;
                    }
                    m.insert(key_string(&key), val);
                }
                // merge keys: explicit keys win, earlier merges win over later ones
                for mv in merges {
                    let list = match mv {
                        Val::List(l) => l,
                        other => vec![other],
                    };
                    for item in list {
                        if let Val::Map(src) = item {
                            for (k, v) in src {
                                m.entry(k).or_insert(v);
                            }
                        }
                    }
                }
                let v = Val::Map(m);
                self.anchor(anchor, &v, nodes_before, bytes_before);
                Ok(v)
            }
            _ => Err(YamlError("yaml: unexpected event".into())),
        }
    }
}

fn key_string(k: &Val) -> String {
    match k {
        Val::Str(s) => s.clone(),
        Val::Null => "null".into(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => crate::value::format_float_g(*f),
        other => other.go_fmt(),
    }
}

/// go-yaml v2's resolution of a scalar.
pub fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>, numbers: Numbers) -> Val {
    if let Some(tag) = tag {
        let t = if tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:" {
            tag.suffix.as_str()
        } else {
            ""
        };
        match t {
            "str" | "binary" | "timestamp" => return Val::Str(text.to_string()),
            "null" => return Val::Null,
            "bool" | "int" | "float" => {
                let v = resolve_plain(text, numbers);
                if !matches!(v, Val::Str(_)) {
                    return v;
                }
                return Val::Str(text.to_string());
            }
            "map" | "seq" => {}
            _ => {}
        }
        if style != ScalarStyle::Plain {
            return Val::Str(text.to_string());
        }
    }
    if style != ScalarStyle::Plain {
        return Val::Str(text.to_string());
    }
    if numbers == Numbers::Text {
        return match text {
            "" | "~" | "null" | "Null" | "NULL" => Val::Null,
            _ => Val::Str(text.to_string()),
        };
    }
    resolve_plain(text, numbers)
}

fn resolve_plain(text: &str, numbers: Numbers) -> Val {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Val::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Val::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Val::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Val::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Val::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Val::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Val::Str(text.to_string());
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(i) = parse_go_int(&plain) {
        return match numbers {
            Numbers::Native => Val::Int(i),
            _ => Val::Float(i as f64),
        };
    }
    if is_yaml_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return Val::Float(f);
        }
    }
    Val::Str(text.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, r)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, r)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, r)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).ok()
    }
}

fn is_yaml_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let start = i;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let d = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d {
            return false;
        }
    } else {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let d = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn values() {
        let m = parse_values("a: 1\nb: yes\nc: '1'\nd: 0755\ne: 1.5\nf: ~\ng: [1, x]\nh: &x {k: v}\ni:\n  <<: *x\n  j: 2\n").unwrap();
        assert_eq!(m["a"], Val::Float(1.0));
        assert_eq!(m["b"], Val::Bool(true));
        assert_eq!(m["c"], Val::Str("1".into()));
        assert_eq!(m["d"], Val::Float(493.0));
        assert_eq!(m["f"], Val::Null);
        assert_eq!(m["i"].as_map().unwrap()["k"], Val::Str("v".into()));
        assert!(parse_values("").unwrap().is_empty());
    }

    /// A values file ending in a block scalar without a final line break (go-yaml:
    /// no `\n` is added).
    #[test]
    fn block_scalar_at_end_of_values_file() {
        let m = parse_values("a: |\n  x\n  y").unwrap();
        assert_eq!(m["a"], Val::Str("x\ny".into()));
        let m = parse_values("a: |\n  x\n  y\n").unwrap();
        assert_eq!(m["a"], Val::Str("x\ny\n".into()));
    }

    /// Billion laughs in a values file fails fast.
    #[test]
    fn values_alias_bomb_is_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse_values(&s).unwrap_err();
        assert!(e.0.contains("excessive aliasing"), "{e}");
    }

    /// Deep nesting is an error, not a stack overflow (even on a small thread stack).
    #[test]
    fn values_deep_nesting_is_refused() {
        let h = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let mut text = String::new();
                for i in 0..5000 {
                    text.push_str(&" ".repeat(i));
                    text.push_str("k:\n");
                }
                let e = parse_values(&text).unwrap_err();
                assert!(e.0.contains("exceeded max depth"), "{e}");
                let mut ok = String::new();
                for i in 0..255 {
                    ok.push_str(&" ".repeat(i));
                    ok.push_str("k:\n");
                }
                parse_values(&ok).unwrap();
            })
            .unwrap();
        h.join().unwrap();
    }
}
