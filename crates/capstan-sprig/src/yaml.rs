//! Helm's `toYaml`: sigs.k8s.io/yaml.Marshal, i.e. `encoding/json` then go-yaml v2's
//! emitter (keys in go-yaml's natural order, sequences not indented under mapping keys,
//! scalars quoted when they would resolve to another type, long plain and quoted strings
//! folded at 80 columns, multi-line strings as literal blocks). Written here because no
//! Rust YAML crate reproduces go-yaml's output byte for byte.

use capstan_gotemplate::fmt::format_float;
use capstan_gotemplate::Value;

const BEST_WIDTH: usize = 80;

/// A node after the JSON round trip.
enum Y {
    Null,
    Bool(bool),
    /// An integer or float already formatted as go-yaml prints it.
    Num(String),
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

// Dropping a deeply nested tree recurses: give each level the stack it needs.
impl Drop for Y {
    fn drop(&mut self) {
        match self {
            Y::Seq(v) if !v.is_empty() => {
                let v = std::mem::take(v);
                capstan_gotemplate::with_stack(move || drop(v));
            }
            Y::Map(m) if !m.is_empty() => {
                let m = std::mem::take(m);
                capstan_gotemplate::with_stack(move || drop(m));
            }
            _ => {}
        }
    }
}

/// toYaml goes through JSON, and encoding/json leaves NEL (U+0085) raw: go-yaml then reads
/// it as a line break inside a double-quoted scalar and folds it (with the blanks around
/// it) into a space, or into `\n`s for runs of breaks.
fn fold_nel(s: &str) -> String {
    if !s.contains('\u{85}') {
        return s.to_string();
    }
    let parts: Vec<&str> = s.split('\u{85}').collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < parts.len() {
        let mut p = parts[i];
        if i > 0 {
            p = p.trim_start_matches([' ', '\t']);
        }
        if i + 1 < parts.len() {
            p = p.trim_end_matches([' ', '\t']);
        }
        out.push_str(p);
        if i + 1 < parts.len() {
            // consecutive breaks: the first folds away, each further one is a newline
            let mut j = i + 1;
            while j + 1 < parts.len() && parts[j].trim_matches([' ', '\t']).is_empty() {
                j += 1;
            }
            let extra = j - i - 1;
            if extra == 0 {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(extra));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The YAML tree of a value (sigs.k8s.io/yaml marshals through encoding/json, so its
/// errors are JSON's: a cycle, or capstan's depth and size budgets).
fn to_y(v: &Value, g: &mut crate::conv::Guard, size: &mut usize) -> Result<Y, String> {
    *size += 2;
    crate::conv::Guard::size(*size)?;
    Ok(match v {
        Value::Nil => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Int(i) | Value::Int64(i) => Y::Num(i.to_string()),
        Value::Float(f) => Y::Num(yaml_float(*f)),
        Value::String(s) => {
            *size += s.len();
            Y::Str(fold_nel(s))
        }
        Value::List(l) => {
            g.enter(v)?;
            let items = l
                .iter()
                .map(|e| capstan_gotemplate::with_stack(|| to_y(e, g, size)))
                .collect::<Result<Vec<_>, _>>()?;
            g.leave(v);
            Y::Seq(items)
        }
        Value::Map(m) => {
            g.enter(v)?;
            let entries: Vec<(String, Value)> = m
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut out = Vec::with_capacity(entries.len());
            for (k, e) in &entries {
                *size += k.len();
                out.push((
                    fold_nel(k),
                    capstan_gotemplate::with_stack(|| to_y(e, g, size))?,
                ));
            }
            g.leave(v);
            out.sort_by(|a, b| key_cmp(&a.0, &b.0));
            Y::Map(out)
        }
        // sigs.k8s.io/yaml goes through encoding/json: a []byte is a base64 string
        Value::Object(o) if o.bytes().is_some() => {
            let s = crate::conv::base64_std(o.bytes().unwrap_or_default());
            to_y(&Value::from(s.as_str()), g, size)?
        }
        Value::Object(o) => {
            g.enter(v)?;
            let d = o.to_data();
            let y = capstan_gotemplate::with_stack(|| to_y(&d, g, size))?;
            g.leave(v);
            y
        }
    })
}

/// A float64 through encoding/json then go-yaml: integral values print as integers (when
/// go-yaml reads them back as int or uint), others with `strconv.FormatFloat(f, 'g', -1)`.
fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+.inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() < 9.2e18 {
            return format!("{}", f as i64);
        }
        if f > 0.0 && f < 1.8e19 {
            // through JSON: encoding/json prints the shortest digits ("…567000"), which
            // go-yaml reads back as a uint64
            let digits = format!("{f}");
            if digits.parse::<u64>().is_ok() {
                return digits;
            }
        }
    }
    format_float(f, 'g', -1)
}

/// go-yaml v2's key order (keyList.Less): letters after non-letters, digit runs compared
/// numerically.
pub fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let less = |a: &str, b: &str| -> bool {
        let ar: Vec<char> = a.chars().collect();
        let br: Vec<char> = b.chars().collect();
        let mut i = 0;
        while i < ar.len() && i < br.len() {
            if ar[i] == br[i] {
                i += 1;
                continue;
            }
            let al = ar[i].is_alphabetic();
            let bl = br[i].is_alphabetic();
            if al && bl {
                return ar[i] < br[i];
            }
            if al || bl {
                return bl;
            }
            let (mut an, mut bn) = (0i64, 0i64);
            if ar[i] == '0' || br[i] == '0' {
                let mut j = i as isize - 1;
                while j >= 0 && ar[j as usize].is_ascii_digit() {
                    if ar[j as usize] != '0' {
                        an = 1;
                        bn = 1;
                        break;
                    }
                    j -= 1;
                }
            }
            let mut ai = i;
            while ai < ar.len() && ar[ai].is_ascii_digit() {
                an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
                ai += 1;
            }
            let mut bi = i;
            while bi < br.len() && br[bi].is_ascii_digit() {
                bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
                bi += 1;
            }
            if an != bn {
                return an < bn;
            }
            if ai != bi {
                return ai < bi;
            }
            return ar[i] < br[i];
        }
        ar.len() < br.len()
    };
    if a == b {
        Ordering::Equal
    } else if less(a, b) {
        Ordering::Less
    } else if less(b, a) {
        Ordering::Greater
    } else {
        a.cmp(b)
    }
}

/// Helm's `toYaml`: the YAML text without its final newline; "" when the value cannot be
/// marshalled (Helm swallows the error: a map that contains itself...).
pub fn to_yaml(v: &Value) -> String {
    try_to_yaml(v).unwrap_or_default()
}

/// Helm's `mustToYaml`: [`to_yaml`] with its error.
pub fn try_to_yaml(v: &Value) -> Result<String, String> {
    emit(v, false)
}

/// Helm's `toYamlPretty` (go-yaml v3, indent 2: sequences indented under their key).
pub fn to_yaml_pretty(v: &Value) -> String {
    emit(v, true).unwrap_or_default()
}

fn emit(v: &Value, sequence_indent: bool) -> Result<String, String> {
    let y = to_y(v, &mut crate::conv::Guard::default(), &mut 0)?;
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        sequence_indent,
    };
    e.document(&y);
    drop(y);
    let s = e.out;
    crate::conv::Guard::size(s.len())?;
    Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
}

/// Would go-yaml v2 resolve this plain scalar to something other than a string?
pub fn resolves_non_string(s: &str) -> bool {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return true,
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "true" | "True"
        | "TRUE" | "false" | "False" | "FALSE" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return true
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return true,
        _ => {}
    }
    let c = s.as_bytes()[0];
    if !(c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.') {
        return false;
    }
    if is_yaml_timestamp(s) {
        return true;
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if parse_go_int(&plain) {
        return true;
    }
    if is_yaml_float(&plain) {
        return true;
    }
    // binary forms
    if let Some(r) = plain.strip_prefix("0b") {
        if !r.is_empty() && r.chars().all(|c| c == '0' || c == '1') {
            return true;
        }
    }
    if let Some(r) = plain.strip_prefix("-0b") {
        if !r.is_empty() && r.chars().all(|c| c == '0' || c == '1') {
            return true;
        }
    }
    is_base60_float(s)
}

/// go-yaml v2's timestamps: a valid date in its layouts (`2006-1-2`,
/// `2006-1-2T15:4:5.999999999Z07:00`, also with `t`, or a space and no zone). An invalid
/// date such as `2021-02-30` is a string.
fn is_yaml_timestamp(s: &str) -> bool {
    capstan_yaml::go_yaml_timestamp(s).is_some()
}

fn parse_go_int(s: &str) -> bool {
    // strconv.ParseInt(s, 0, 64) / ParseUint
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    !digits.is_empty() && u128::from_str_radix(digits, radix).is_ok_and(|v| v <= u64::MAX as u128)
}

fn is_yaml_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let s0 = i;
        while i < b.len() && b[i].is_ascii_digit() && i - s0 < 2 {
            i += 1;
        }
        let g = &s[s0..i];
        if g.is_empty() || (g.len() == 2 && g.as_bytes()[0] > b'5') {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Analysis {
    multiline: bool,
    block_plain: bool,
    single: bool,
    block: bool,
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || u == 0x85
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
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

#[allow(unused_assignments)]
fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let (mut flow_ind, mut block_ind) = (false, false);
    if value.starts_with("---") || value.starts_with("...") {
        let c = chars.get(3).copied();
        if is_blankz(c) {
            flow_ind = true;
            block_ind = true;
        }
    }
    let _ = flow_ind;
    let mut preceded_ws = true;
    let mut followed_ws = is_blankz(chars.get(1).copied());
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_ind = true;
                    block_ind = true;
                }
                '?' | ':' => {
                    flow_ind = true;
                    if followed_ws {
                        block_ind = true;
                    }
                }
                '-' if followed_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_ind = true,
                ':' => {
                    flow_ind = true;
                    if followed_ws {
                        block_ind = true;
                    }
                }
                '#' if preceded_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
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
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = is_blankz(Some(c));
        followed_ws = is_blankz(chars.get(i + 2).copied());
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks {
        a.block_plain = false;
    }
    if block_ind {
        a.block_plain = false;
    }
    let _ = a.multiline;
    a
}

struct Emitter {
    out: String,
    column: usize,
    sequence_indent: bool,
}

impl Emitter {
    fn write(&mut self, s: &str) {
        for c in s.chars() {
            self.out.push(c);
            if c == '\n' {
                self.column = 0;
            } else {
                self.column += 1;
            }
        }
    }
    fn newline_indent(&mut self, indent: usize) {
        self.column = 0;
        self.out.push('\n');
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.column = indent;
    }

    fn document(&mut self, y: &Y) {
        match y {
            Y::Map(m) if !m.is_empty() => self.block_map(m, 0, false),
            Y::Seq(s) if !s.is_empty() => self.block_seq(s, 0, false),
            _ => {
                self.scalar(y, 0, false);
                self.end_line();
            }
        }
    }

    fn start_line(&mut self, indent: usize) {
        if self.column != 0 {
            self.out.push('\n');
        }
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.column = indent;
    }

    fn end_line(&mut self) {
        if self.column != 0 {
            self.out.push('\n');
            self.column = 0;
        }
    }

    /// A block mapping at column `indent`; with `first_inline` the first key follows on the
    /// current line (after `- `).
    fn block_map(&mut self, m: &[(String, Y)], indent: usize, first_inline: bool) {
        if self.out.len() > capstan_gotemplate::limits::MAX_STRING_BYTES {
            return; // emit reports the size error
        }
        capstan_gotemplate::with_stack(|| self.block_map_inner(m, indent, first_inline))
    }

    fn block_map_inner(&mut self, m: &[(String, Y)], indent: usize, first_inline: bool) {
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 || !first_inline {
                self.start_line(indent);
            }
            if k.len() > 128 {
                // go-yaml: keys over 128 bytes are not simple keys: `? key` / `: value`
                self.write("? ");
                self.key(k);
                self.start_line(indent);
                self.write(": ");
                match v {
                    Y::Map(mm) if !mm.is_empty() => self.block_map(mm, indent + 2, true),
                    Y::Seq(s) if !s.is_empty() => self.block_seq(s, indent + 2, true),
                    _ => self.scalar(v, indent + 2, false),
                }
                continue;
            }
            self.key(k);
            self.write(":");
            match v {
                Y::Map(mm) if !mm.is_empty() => {
                    self.start_line(indent + 2);
                    self.block_map(mm, indent + 2, true);
                }
                Y::Seq(s) if !s.is_empty() => {
                    let si = if self.sequence_indent {
                        indent + 2
                    } else {
                        indent
                    };
                    self.start_line(si);
                    self.block_seq(s, si, true);
                }
                _ => {
                    self.write(" ");
                    self.scalar(v, indent + 2, false);
                }
            }
        }
        self.end_line();
    }

    fn block_seq(&mut self, s: &[Y], indent: usize, first_inline: bool) {
        if self.out.len() > capstan_gotemplate::limits::MAX_STRING_BYTES {
            return; // emit reports the size error
        }
        capstan_gotemplate::with_stack(|| self.block_seq_inner(s, indent, first_inline))
    }

    fn block_seq_inner(&mut self, s: &[Y], indent: usize, first_inline: bool) {
        for (i, v) in s.iter().enumerate() {
            if i > 0 || !first_inline {
                self.start_line(indent);
            }
            self.write("- ");
            match v {
                Y::Map(mm) if !mm.is_empty() => self.block_map(mm, indent + 2, true),
                Y::Seq(ss) if !ss.is_empty() => self.block_seq(ss, indent + 2, true),
                _ => self.scalar(v, indent + 2, false),
            }
        }
        self.end_line();
    }

    fn key(&mut self, k: &str) {
        let y = Y::Str(k.to_string());
        self.scalar(&y, 0, true);
    }

    fn scalar(&mut self, y: &Y, indent: usize, simple_key: bool) {
        match y {
            Y::Null => self.write("null"),
            Y::Bool(b) => self.write(if *b { "true" } else { "false" }),
            Y::Num(n) => self.write(n),
            Y::Map(_) => self.write("{}"),
            Y::Seq(_) => self.write("[]"),
            Y::Str(s) => {
                let can_plain = !resolves_non_string(s);
                let mut style = if s.contains('\n') {
                    Style::Literal
                } else if can_plain {
                    Style::Plain
                } else {
                    Style::Double
                };
                let a = analyze(s);
                if style == Style::Plain && (!a.block_plain || (s.is_empty() && simple_key)) {
                    style = Style::Single;
                }
                if style == Style::Single && !a.single {
                    style = Style::Double;
                }
                if style == Style::Literal && (!a.block || simple_key) {
                    style = Style::Double;
                }
                match style {
                    Style::Plain => self.write_plain(s, indent, !simple_key),
                    Style::Single => self.write_single(s, indent, !simple_key),
                    Style::Double => self.write_double(s, indent, !simple_key),
                    Style::Literal => self.write_literal(s, indent),
                }
            }
        }
    }

    fn write_plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.newline_indent(indent);
                } else {
                    self.write(" ");
                }
                spaces = true;
            } else {
                self.out.push(c);
                self.column += 1;
                spaces = false;
            }
            i += 1;
        }
    }

    fn write_single(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        self.write("'");
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for i in 0..chars.len() {
            let c = chars[i];
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.newline_indent(indent);
                } else {
                    self.write(" ");
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.out.push('\n');
                }
                // go-yaml's write_break copies breaks other than '\n' as they are
                self.out.push(c);
                self.column = 0;
                breaks = true;
            } else {
                if breaks {
                    for _ in 0..indent {
                        self.out.push(' ');
                    }
                    self.column = indent;
                }
                if c == '\'' {
                    self.write("''");
                } else {
                    self.out.push(c);
                    self.column += 1;
                }
                spaces = false;
                breaks = false;
            }
        }
        self.write("'");
    }

    fn write_double(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        self.write("\"");
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        // go-yaml escapes every character after a leading byte order mark
        let bom = chars.first() == Some(&'\u{feff}');
        for i in 0..chars.len() {
            let c = chars[i];
            if bom && i > 0 && (c as u32) <= 0xFF && !matches!(c, '"' | '\\') {
                self.write(&format!("\\x{:02X}", c as u32));
                spaces = false;
                continue;
            }
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                let esc = match c {
                    '\0' => "\\0".to_string(),
                    '\x07' => "\\a".into(),
                    '\x08' => "\\b".into(),
                    '\t' => "\\t".into(),
                    '\n' => "\\n".into(),
                    '\x0b' => "\\v".into(),
                    '\x0c' => "\\f".into(),
                    '\r' => "\\r".into(),
                    '\x1b' => "\\e".into(),
                    '"' => "\\\"".into(),
                    '\\' => "\\\\".into(),
                    '\u{85}' => "\\N".into(),
                    '\u{a0}' => "\\_".into(),
                    '\u{2028}' => "\\L".into(),
                    '\u{2029}' => "\\P".into(),
                    c if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
                    c if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
                    c => format!("\\U{:08X}", c as u32),
                };
                self.write(&esc);
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                {
                    self.newline_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.write("\\");
                    }
                } else {
                    self.write(" ");
                }
                spaces = true;
            } else {
                self.out.push(c);
                self.column += 1;
                spaces = false;
            }
        }
        self.write("\"");
    }

    fn write_literal(&mut self, s: &str, indent: usize) {
        self.write("|");
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.write("2");
        }
        let last = *chars.last().unwrap();
        if !is_break(last) {
            self.write("-");
        } else if chars.len() == 1 || is_break(chars[chars.len() - 2]) {
            self.write("+");
        }
        self.out.push('\n');
        self.column = 0;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.out.push('\n');
                self.column = 0;
                breaks = true;
            } else {
                if breaks {
                    for _ in 0..indent {
                        self.out.push(' ');
                    }
                    self.column = indent;
                }
                self.out.push(c);
                self.column += 1;
                breaks = false;
            }
        }
        self.end_line();
    }
}
