//! Conversions with spf13/cast and Sprig's semantics, and Go's `encoding/json` encoder.

use capstan_gotemplate::fmt::format_float;
use capstan_gotemplate::Value;

/// Sprig's `strval`: strings as is, others `fmt.Sprintf("%v")`.
/// Standard base64 with padding (Go's `base64.StdEncoding`).
pub(crate) fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        // Go's `case []byte: return string(v)`
        Value::Object(o) if o.bytes().is_some() => {
            String::from_utf8_lossy(o.bytes().unwrap_or_default()).into_owned()
        }
        v => v.to_go_string(),
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    // cast's trimZeroDecimal: "12.000" -> "12"
    if let Some(i) = s.find('.') {
        if s[i + 1..].chars().all(|c| c == '0') && i > 0 {
            return &s[..i];
        }
    }
    s
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn parse_int_base0(s: &str) -> Option<i64> {
    let s2: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match s2.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, s2.strip_prefix('+').unwrap_or(&s2).to_string()),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body.as_str())
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Go's `int64(f)` on amd64: out of range (and NaN) gives the minimum int64.
pub fn go_f64_to_i64(f: f64) -> i64 {
    if f.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// cast.ToInt64 (0 on failure).
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => go_f64_to_i64(*f),
        Value::Bool(b) => *b as i64,
        Value::String(s) => parse_int_base0(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// cast.ToFloat64 (0 on failure).
pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// A list-like value as a vector (lists; nil as empty), or an error naming the type.
pub fn to_list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.as_ref().clone()),
        Value::Nil => Ok(Vec::new()),
        v => Err(format!("Cannot find first on type {}", v.type_name())),
    }
}

/// Sprig's `strslice`.
pub fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().filter(|x| !x.is_nil()).map(strval).collect(),
        Value::Nil => Vec::new(),
        v => vec![strval(v)],
    }
}

/// Go's `encoding/json` starts looking for cycles this deep.
const START_DETECTING_CYCLES_AFTER: usize = 1000;

/// Bounds a recursive walk over a value (JSON, YAML): Go's cycle detection (`json:
/// unsupported value: encountered a cycle via map[string]interface {}`), plus capstan's
/// depth ([`capstan_gotemplate::limits::MAX_VALUE_DEPTH`]) and size
/// ([`capstan_gotemplate::limits::MAX_STRING_BYTES`]) budgets.
#[derive(Default)]
pub(crate) struct Guard {
    depth: usize,
    seen: std::collections::HashSet<usize>,
}

impl Guard {
    pub(crate) fn enter(&mut self, v: &Value) -> Result<(), String> {
        self.depth += 1;
        if self.depth > START_DETECTING_CYCLES_AFTER {
            if let Value::Map(m) = v {
                if !self.seen.insert(m.as_ptr() as usize) {
                    return Err(
                        "json: unsupported value: encountered a cycle via map[string]interface {}"
                            .into(),
                    );
                }
            }
        }
        if self.depth > capstan_gotemplate::limits::MAX_VALUE_DEPTH {
            return Err(format!(
                "json: unsupported value: nested deeper than {} levels",
                capstan_gotemplate::limits::MAX_VALUE_DEPTH
            ));
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self, v: &Value) {
        if self.depth > START_DETECTING_CYCLES_AFTER {
            if let Value::Map(m) = v {
                self.seen.remove(&(m.as_ptr() as usize));
            }
        }
        self.depth -= 1;
    }

    pub(crate) fn size(len: usize) -> Result<(), String> {
        if len > capstan_gotemplate::limits::MAX_STRING_BYTES {
            return Err(format!(
                "json: result exceeds the limit of {} bytes per string",
                capstan_gotemplate::limits::MAX_STRING_BYTES
            ));
        }
        Ok(())
    }
}

/// Go's `encoding/json.Marshal` (HTML-safe escaping, sorted keys, Go float format).
pub fn to_json(v: &Value, out: &mut String) -> Result<(), String> {
    to_json_guarded(v, out, &mut Guard::default())
}

fn to_json_guarded(v: &Value, out: &mut String, g: &mut Guard) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&json_float(*f)?),
        Value::String(s) => json_string(s, out),
        Value::List(l) => {
            g.enter(v)?;
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                capstan_gotemplate::with_stack(|| to_json_guarded(e, out, g))?;
                Guard::size(out.len())?;
            }
            out.push(']');
            g.leave(v);
        }
        Value::Map(m) => {
            g.enter(v)?;
            out.push('{');
            let entries: Vec<(String, Value)> = m
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (i, (k, e)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                capstan_gotemplate::with_stack(|| to_json_guarded(e, out, g))?;
                Guard::size(out.len())?;
            }
            out.push('}');
            g.leave(v);
        }
        // encoding/json writes a []byte as a base64 string
        Value::Object(o) if o.bytes().is_some() => {
            json_string(&base64_std(o.bytes().unwrap_or_default()), out)
        }
        Value::Object(o) => match o.json_fields() {
            // a struct: fields in declaration order
            Some(fields) => {
                g.enter(v)?;
                out.push('{');
                for (i, (k, e)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(k, out);
                    out.push(':');
                    capstan_gotemplate::with_stack(|| to_json_guarded(e, out, g))?;
                }
                out.push('}');
                g.leave(v);
            }
            None => {
                g.enter(v)?;
                let d = o.to_data();
                capstan_gotemplate::with_stack(|| to_json_guarded(&d, out, g))?;
                g.leave(v);
            }
        },
    }
    Ok(())
}

/// Go's JSON float: `%f`-like unless tiny or huge, exponents without leading zeros.
pub fn json_float(f: f64) -> Result<String, String> {
    if f.is_nan() || f.is_infinite() {
        return Err(format!(
            "json: unsupported value: {}",
            format_float(f, 'g', -1)
        ));
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format_float(f, 'e', -1);
        // e-07 -> e-7
        if let Some(i) = s.find("e-0") {
            return Ok(format!("{}e-{}", &s[..i], &s[i + 3..]));
        }
        if let Some(i) = s.find("e+0") {
            return Ok(format!("{}e+{}", &s[..i], &s[i + 3..]));
        }
        return Ok(s);
    }
    Ok(format_float(f, 'f', -1))
}

/// A JSON string with Go's escaping.
pub fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `json.MarshalIndent(v, "", "  ")`.
pub fn to_json_pretty(v: &Value, out: &mut String, depth: usize) -> Result<(), String> {
    to_json_pretty_guarded(v, out, depth, &mut Guard::default())
}

fn to_json_pretty_guarded(
    v: &Value,
    out: &mut String,
    depth: usize,
    g: &mut Guard,
) -> Result<(), String> {
    let ind = |out: &mut String, d: usize| {
        out.push('\n');
        for _ in 0..d {
            out.push_str("  ");
        }
    };
    match v {
        Value::List(l) if !l.is_empty() => {
            g.enter(v)?;
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ind(out, depth + 1);
                capstan_gotemplate::with_stack(|| to_json_pretty_guarded(e, out, depth + 1, g))?;
                Guard::size(out.len())?;
            }
            ind(out, depth);
            out.push(']');
            g.leave(v);
        }
        Value::Map(m) if !m.is_empty() => {
            g.enter(v)?;
            out.push('{');
            let entries: Vec<(String, Value)> = m
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (i, (k, e)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ind(out, depth + 1);
                json_string(k, out);
                out.push_str(": ");
                capstan_gotemplate::with_stack(|| to_json_pretty_guarded(e, out, depth + 1, g))?;
                Guard::size(out.len())?;
            }
            ind(out, depth);
            out.push('}');
            g.leave(v);
        }
        Value::Object(o) if o.bytes().is_some() => {
            json_string(&base64_std(o.bytes().unwrap_or_default()), out)
        }
        Value::Object(o) => match o.json_fields() {
            Some(fields) if fields.is_empty() => out.push_str("{}"),
            Some(fields) => {
                g.enter(v)?;
                out.push('{');
                for (i, (k, e)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ind(out, depth + 1);
                    json_string(k, out);
                    out.push_str(": ");
                    capstan_gotemplate::with_stack(|| {
                        to_json_pretty_guarded(e, out, depth + 1, g)
                    })?;
                }
                ind(out, depth);
                out.push('}');
                g.leave(v);
            }
            None => {
                g.enter(v)?;
                let d = o.to_data();
                capstan_gotemplate::with_stack(|| to_json_pretty_guarded(&d, out, depth, g))?;
                g.leave(v);
            }
        },
        v => to_json_guarded(v, out, g)?,
    }
    Ok(())
}
