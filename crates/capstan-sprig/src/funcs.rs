//! The functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use capstan_gotemplate::fmt::quote as go_quote;
use capstan_gotemplate::{Ctx, FuncMap, Map, MapRef, Value};
use sha2::Digest as _;

use crate::conv::{strslice, strval, to_f64, to_i64};
use crate::HelmOptions;

fn arg(a: &[Value], i: usize) -> &Value {
    static NIL: Value = Value::Nil;
    a.get(i).unwrap_or(&NIL)
}

fn need(name: &str, a: &[Value], n: usize) -> Result<(), String> {
    if a.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

fn sv(s: impl Into<String>) -> Value {
    Value::from(s.into())
}

fn str_arg(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Err(format!("invalid value; expected string (in {name})")),
        v => Err(format!(
            "wrong type for value; expected string; got {}",
            v.type_name()
        )),
    }
}

fn int_arg(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) | Value::Int64(i) => Ok(*i),
        Value::Float(f) => Ok(*f as i64),
        v => Err(format!(
            "wrong type for value; expected int; got {}",
            v.type_name()
        )),
    }
}

/// Argument `i` for a Go `int` parameter: numbers pass (leniently), anything else is
/// Go's argument type error (reported at the argument).
fn int_at(a: &[Value], i: usize) -> Result<i64, String> {
    match &a[i] {
        Value::Int(n) | Value::Int64(n) => Ok(*n),
        Value::Float(f) => Ok(*f as i64),
        _ => Err(capstan_gotemplate::arg_type_error(i, "int")),
    }
}

/// Argument `i` for a Go `string` parameter.
fn str_at(a: &[Value], i: usize) -> Result<String, String> {
    match &a[i] {
        Value::String(s) => Ok(s.to_string()),
        _ => Err(capstan_gotemplate::arg_type_error(i, "string")),
    }
}

fn list_arg(name: &str, v: &Value) -> Result<Arc<Vec<Value>>, String> {
    match v {
        Value::List(l) => Ok(l.clone()),
        Value::Nil => Ok(Arc::new(Vec::new())),
        v => Err(format!("Cannot {name} on type {}", v.type_name())),
    }
}

/// Argument `i` for a Go `map[string]interface{}` parameter: a map; `None` for Go's nil map
/// (nil from a variable or a parenthesised pipeline, which reads as empty); nil read from a
/// field, or another type, is Go's argument type error (see [`Ctx::nil_is_interface`]).
fn map_param(ctx: &Ctx<'_>, a: &[Value], i: usize) -> Result<Option<MapRef>, String> {
    match a.get(i) {
        Some(Value::Map(m)) => Ok(Some(m.clone())),
        Some(Value::Nil) if !ctx.nil_is_interface(i) => Ok(None),
        _ => Err(capstan_gotemplate::arg_type_error(
            i,
            "map[string]interface {}",
        )),
    }
}

fn map_arg(v: &Value) -> Result<capstan_gotemplate::MapRef, String> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        v => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            v.type_name()
        )),
    }
}

fn empty(v: &Value) -> bool {
    !v.is_true()
}

/// Sprig's `indent`: `pad + strings.Replace(v, "\n", "\n"+pad, -1)` with `pad =
/// strings.Repeat(" ", spaces)` (which panics on a negative count).
fn indent(n: i64, s: &str) -> Result<String, String> {
    if n < 0 {
        return Err("strings: negative Repeat count".into());
    }
    let lines = s.bytes().filter(|&b| b == b'\n').count() as u128 + 1;
    capstan_gotemplate::limits::check_string_len("indent", n as u128 * lines + s.len() as u128)?;
    let pad = " ".repeat(n as usize);
    let mut out = String::with_capacity(s.len() + pad.len() * 4);
    out.push_str(&pad);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    Ok(out)
}

/// Sprig's `trunc` slices the string by bytes (`s[:c]`, or `s[len(s)+c:]` for a negative
/// count). Cutting a multi-byte character leaves Go an invalid UTF-8 fragment (which
/// Helm's YAML parser then rejects); capstan's strings stay valid UTF-8, so the fragment
/// of the cut character is dropped: the result is Go's bytes less the 1 to 3 bytes of the
/// incomplete character.
fn trunc(c: i64, s: &str) -> String {
    let l = s.len() as i64;
    if c < 0 && l.saturating_add(c) > 0 {
        let mut i = (l + c) as usize;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        s[i..].to_string()
    } else if c >= 0 && l > c {
        let mut i = c as usize;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s[..i].to_string()
    } else {
        s.to_string()
    }
}

fn title(s: &str) -> String {
    // strings.Title: uppercase letters that follow a separator
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn untitle(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_sep = c.is_whitespace();
    }
    out
}

fn rand_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// goutils' random strings: a negative count is an error Sprig swallows ("").
fn rand_string(n: i64, alphabet: &[u8]) -> Result<String, String> {
    capstan_gotemplate::limits::check_string_len("random string", n.max(0) as u128)?;
    Ok((0..n.max(0))
        .map(|_| alphabet[(rand_u64() % alphabet.len() as u64) as usize] as char)
        .collect())
}

fn uuidv4() -> String {
    let a = rand_u64();
    let b = rand_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(s: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in s {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A compiled pattern, cached per thread (charts call `regexFind`/`regexMatch` with the
/// same few patterns over and over; compiling is most of a call's cost).
fn regex(pat: &str) -> Result<regex::Regex, String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
    }
    if let Some(r) = CACHE.with(|c| c.borrow().get(pat).cloned()) {
        return Ok(r);
    }
    let r = regex::Regex::new(pat).map_err(|e| format!("error parsing regexp: {e}"))?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(pat.to_string(), r.clone());
    });
    Ok(r)
}

/// Go's regexp ReplaceAllString `$1`/`${name}` expansion, translated to the regex crate's
/// syntax (which is the same except that Go's `$1x` means group `1x`).
fn go_replacement(s: &str) -> String {
    s.to_string()
}

fn merge_into(
    dst: &capstan_gotemplate::MapRef,
    src: &capstan_gotemplate::MapRef,
    overwrite: bool,
    depth: usize,
) -> Result<(), String> {
    if dst.ptr_eq(src) {
        return Ok(());
    }
    if depth > capstan_gotemplate::limits::MAX_VALUE_DEPTH {
        return Err(format!(
            "maps nested deeper than {} levels (or maps that contain themselves)",
            capstan_gotemplate::limits::MAX_VALUE_DEPTH
        ));
    }
    let src_entries: Vec<(String, Value)> = src
        .read()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, sv) in src_entries {
        let dv = dst.get(&k);
        match (dv, &sv) {
            (Some(Value::Map(dm)), Value::Map(sm)) => {
                capstan_gotemplate::with_stack(|| merge_into(&dm, sm, overwrite, depth + 1))?
            }
            (Some(d), _) => {
                // mergo: overwrite only with non-empty src values; without overwrite only
                // fill empty destination values
                if overwrite {
                    if !empty(&sv) {
                        dst.insert(k, sv);
                    }
                } else if empty(&d) && !matches!(d, Value::Map(_)) {
                    dst.insert(k, sv);
                }
            }
            (None, _) => dst.insert(k, sv),
        }
    }
    Ok(())
}

/// Sprig's `dig`: type assertions that fail panic in Go, which the template reports as
/// the call's error (`interface conversion: interface {} is nil, not
/// map[string]interface {}`).
fn dig(keys: &[Value], default: &Value, m: &Value) -> Result<Value, String> {
    fn as_map(v: &Value) -> Result<MapRef, String> {
        match v {
            Value::Map(m) => Ok(m.clone()),
            v => Err(format!(
                "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                if v.is_nil() {
                    "nil".to_string()
                } else {
                    v.type_name()
                }
            )),
        }
    }
    let mut names = Vec::with_capacity(keys.len());
    for k in keys {
        match k {
            Value::String(s) => names.push(s.clone()),
            v => {
                return Err(format!(
                    "interface conversion: interface {{}} is {}, not string",
                    if v.is_nil() {
                        "nil".to_string()
                    } else {
                        v.type_name()
                    }
                ))
            }
        }
    }
    let mut cur = as_map(m)?;
    for (i, k) in names.iter().enumerate() {
        let Some(step) = cur.get(k) else {
            return Ok(default.clone());
        };
        if i + 1 == names.len() {
            return Ok(step);
        }
        cur = as_map(&step)?;
    }
    Ok(default.clone())
}

fn round(x: f64, places: i64, round_on: f64) -> f64 {
    let pow = 10f64.powi(places as i32);
    let digit = pow * x;
    let (int_part, frac) = (digit.trunc(), digit.fract());
    let r = if x >= 0.0 {
        if frac >= round_on {
            digit.ceil()
        } else {
            int_part
        }
    } else if frac.abs() >= round_on {
        digit.floor()
    } else {
        int_part
    };
    r / pow
}

/// A Go `time.Time` stand-in: unix seconds + nanos, UTC.
/// encoding/json's wording where it is known (`unexpected end of JSON input`).
fn go_json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        e.to_string()
    }
}

/// BurntSushi/toml's encoder (Helm's `toToml`): plain keys first, then tables and arrays
/// of tables (sorted), sub-levels indented by two spaces, a blank line before top-level
/// tables and before each `[[array]]` element.
fn to_toml(v: &Value) -> String {
    fn is_table_array(v: &Value) -> bool {
        matches!(v, Value::List(l) if !l.is_empty() && l.iter().all(|e| matches!(e, Value::Map(_))))
    }
    fn key_str(k: &str) -> String {
        if !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            k.to_string()
        } else {
            toml_quote(k)
        }
    }
    fn toml_quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\u{:04X}", c as u32))
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => toml_quote(s),
            Value::Float(f) => {
                if f.is_nan() {
                    "nan".into()
                } else if f.is_infinite() {
                    if *f > 0.0 { "inf" } else { "-inf" }.into()
                } else {
                    let s = capstan_gotemplate::fmt::format_float(*f, 'f', -1);
                    if s.contains('.') {
                        s
                    } else {
                        format!("{s}.0")
                    }
                }
            }
            Value::List(l) => format!(
                "[{}]",
                l.iter()
                    .filter(|e| !e.is_nil())
                    .map(scalar)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Map(m) => {
                let m = m.snapshot();
                let parts: Vec<String> = m
                    .iter()
                    .filter(|(_, e)| !e.is_nil())
                    .map(|(k, e)| format!("{} = {}", key_str(k), scalar(e)))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            v => v.to_go_string(),
        }
    }
    struct Enc {
        out: String,
    }
    impl Enc {
        fn newline(&mut self) {
            if !self.out.is_empty() {
                self.out.push('\n');
            }
        }
        fn map(&mut self, path: &[String], m: &Map) {
            let ind = "  ".repeat(path.len().saturating_sub(1));
            let ind_in = "  ".repeat(path.len());
            let _ = &ind;
            for (k, e) in m {
                if e.is_nil() || matches!(e, Value::Map(_)) || is_table_array(e) {
                    continue;
                }
                self.out
                    .push_str(&format!("{ind_in}{} = {}", key_str(k), scalar(e)));
                self.out.push('\n');
            }
            for (k, e) in m {
                let mut p = path.to_vec();
                p.push(key_str(k));
                let ind_k = "  ".repeat(p.len() - 1);
                match e {
                    Value::Map(mm) => {
                        if p.len() == 1 {
                            self.newline();
                        }
                        self.out.push_str(&format!("{ind_k}[{}]\n", p.join(".")));
                        self.map(&p, &mm.snapshot());
                    }
                    Value::List(l) if is_table_array(e) => {
                        for el in l.iter() {
                            if let Value::Map(mm) = el {
                                self.newline();
                                self.out.push_str(&format!("{ind_k}[[{}]]\n", p.join(".")));
                                self.map(&p, &mm.snapshot());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut enc = Enc { out: String::new() };
    if let Value::Map(m) = v {
        enc.map(&[], &m.snapshot());
    }
    enc.out
}

pub(crate) fn all(opts: HelmOptions) -> FuncMap {
    let mut m = FuncMap::new();

    // ---- Helm ----
    m.add("toYaml", |_, a| Ok(sv(crate::yaml::to_yaml(arg(a, 0)))));
    m.add("mustToYaml", |_, a| {
        crate::yaml::try_to_yaml(arg(a, 0)).map(sv)
    });
    m.add("toYamlPretty", |_, a| {
        Ok(sv(crate::yaml::to_yaml_pretty(arg(a, 0))))
    });
    m.add("fromYaml", |_, a| {
        let s = strval(arg(a, 0));
        Ok(match crate::from_yaml(&s) {
            Ok(Value::Map(m)) => Value::Map(m),
            Ok(Value::Nil) => Value::empty_map(),
            Ok(_) => {
                let mut e = Map::new();
                e.insert(
                    "Error".into(),
                    sv("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"),
                );
                Value::map(e)
            }
            Err(err) => {
                let mut e = Map::new();
                e.insert("Error".into(), sv(err));
                Value::map(e)
            }
        })
    });
    m.add("fromYamlArray", |_, a| {
        let s = strval(arg(a, 0));
        Ok(match crate::from_yaml(&s) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(Value::Nil) => Value::list(vec![]),
            Ok(_) => Value::list(vec![sv("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go value of type []interface {}")]),
            Err(e) => Value::list(vec![sv(e)]),
        })
    });
    m.add("toJson", |_, a| {
        Ok(sv(crate::to_json(arg(a, 0)).unwrap_or_default()))
    });
    m.add("mustToJson", |_, a| crate::to_json(arg(a, 0)).map(sv));
    m.add("toPrettyJson", |_, a| {
        // Sprig: output, _ := json.MarshalIndent(v, "", "  "): "" on error
        let mut s = String::new();
        if crate::conv::to_json_pretty(arg(a, 0), &mut s, 0).is_err() {
            s.clear();
        }
        Ok(sv(s))
    });
    m.add("mustToPrettyJson", |_, a| {
        let mut s = String::new();
        crate::conv::to_json_pretty(arg(a, 0), &mut s, 0)?;
        Ok(sv(s))
    });
    m.add("toRawJson", |_, a| {
        let s = crate::to_json(arg(a, 0)).unwrap_or_default();
        Ok(sv(s
            .replace("\\u003c", "<")
            .replace("\\u003e", ">")
            .replace("\\u0026", "&")))
    });
    m.add("fromJson", |_, a| {
        let s = strval(arg(a, 0));
        Ok(match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(j @ serde_json::Value::Object(_)) => Value::from_json(&j),
            Ok(_) => {
                let mut e = Map::new();
                e.insert(
                    "Error".into(),
                    sv("json: cannot unmarshal into Go value of type map[string]interface {}"),
                );
                Value::map(e)
            }
            Err(err) => {
                let mut e = Map::new();
                e.insert("Error".into(), sv(go_json_error(&err)));
                Value::map(e)
            }
        })
    });
    m.add("fromJsonArray", |_, a| {
        let s = strval(arg(a, 0));
        Ok(match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(j @ serde_json::Value::Array(_)) => Value::from_json(&j),
            Ok(_) => Value::list(vec![sv(
                "json: cannot unmarshal object into Go value of type []interface {}",
            )]),
            Err(err) => Value::list(vec![sv(go_json_error(&err))]),
        })
    });
    m.add("mustFromJson", |_, a| {
        let s = strval(arg(a, 0));
        serde_json::from_str::<serde_json::Value>(&s)
            .map(|j| Value::from_json(&j))
            .map_err(|e| go_json_error(&e))
    });
    m.add("toToml", |_, a| Ok(sv(to_toml(arg(a, 0)))));
    m.add("required", |_, a| {
        need("required", a, 2)?;
        let v = &a[1];
        match v {
            Value::Nil => Err(strval(&a[0])),
            Value::String(s) if s.is_empty() => Err(strval(&a[0])),
            v => Ok(v.clone()),
        }
    });
    let lookup = opts.lookup.clone();
    m.add("lookup", move |_, a| {
        need("lookup", a, 4)?;
        let s: Vec<String> = a.iter().map(strval).collect();
        match &lookup {
            Some(f) => f(&s[0], &s[1], &s[2], &s[3]),
            None => Ok(Value::empty_map()),
        }
    });

    // ---- flow ----
    m.add("fail", |_, a| Err(strval(arg(a, 0))));
    m.add("default", |_, a| {
        if a.len() < 2 || empty(&a[1]) {
            Ok(arg(a, 0).clone())
        } else {
            Ok(a[1].clone())
        }
    });
    m.add("empty", |_, a| Ok(Value::Bool(empty(arg(a, 0)))));
    m.add("coalesce", |_, a| {
        Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil))
    });
    m.add("all", |_, a| Ok(Value::Bool(a.iter().all(|v| !empty(v)))));
    m.add("any", |_, a| Ok(Value::Bool(a.iter().any(|v| !empty(v)))));
    m.add("ternary", |_, a| {
        need("ternary", a, 3)?;
        // func ternary(vt, vf interface{}, v bool)
        let Value::Bool(v) = a[2] else {
            return Err(capstan_gotemplate::arg_type_error(2, "bool"));
        };
        Ok(if v { a[0].clone() } else { a[1].clone() })
    });
    m.add("deepEqual", |_, a| {
        Ok(Value::Bool(arg(a, 0).deep_equal(arg(a, 1))))
    });

    // ---- strings ----
    m.add("quote", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(|v| go_quote(&strval(v)))
            .collect();
        Ok(sv(parts.join(" ")))
    });
    m.add("squote", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        Ok(sv(parts.join(" ")))
    });
    m.add("cat", |_, a| {
        let parts: Vec<String> = a.iter().filter(|v| !v.is_nil()).map(strval).collect();
        Ok(sv(parts.join(" ")))
    });
    m.add("indent", |_, a| {
        need("indent", a, 2)?;
        Ok(sv(indent(int_arg(&a[0])?, &str_arg("indent", &a[1])?)?))
    });
    m.add("nindent", |_, a| {
        need("nindent", a, 2)?;
        Ok(sv(format!(
            "\n{}",
            indent(int_arg(&a[0])?, &str_arg("nindent", &a[1])?)?
        )))
    });
    m.add("trim", |_, a| Ok(sv(strval(arg(a, 0)).trim())));
    m.add("trimAll", |_, a| {
        let cut: Vec<char> = strval(arg(a, 0)).chars().collect();
        Ok(sv(strval(arg(a, 1)).trim_matches(cut.as_slice())))
    });
    m.add("trimPrefix", |_, a| {
        let p = strval(arg(a, 0));
        let s = strval(arg(a, 1));
        Ok(sv(s.strip_prefix(p.as_str()).unwrap_or(&s)))
    });
    m.add("trimSuffix", |_, a| {
        let p = strval(arg(a, 0));
        let s = strval(arg(a, 1));
        Ok(sv(s.strip_suffix(p.as_str()).unwrap_or(&s)))
    });
    m.add("upper", |_, a| Ok(sv(strval(arg(a, 0)).to_uppercase())));
    m.add("lower", |_, a| Ok(sv(strval(arg(a, 0)).to_lowercase())));
    m.add("title", |_, a| Ok(sv(title(&strval(arg(a, 0))))));
    m.add("untitle", |_, a| Ok(sv(untitle(&strval(arg(a, 0))))));
    m.add("repeat", |_, a| {
        // func(count int, str string) string { return strings.Repeat(str, count) }
        need("repeat", a, 2)?;
        let count = int_at(a, 0)?;
        let s = str_at(a, 1)?;
        if count < 0 {
            return Err("strings: negative Repeat count".into());
        }
        capstan_gotemplate::limits::check_string_len("repeat", s.len() as u128 * count as u128)?;
        Ok(sv(s.repeat(count as usize)))
    });
    m.add("substr", |_, a| {
        need("substr", a, 3)?;
        let (start, end) = (int_arg(&a[0])?, int_arg(&a[1])?);
        let s = str_arg("substr", &a[2])?;
        let b = s.as_bytes();
        let len = b.len() as i64;
        // Sprig slices like Go: out-of-order bounds panic (an error in the template)
        let r = if start < 0 {
            if end > len {
                return Err(format!(
                    "runtime error: slice bounds out of range [:{end}] with length {len}"
                ));
            }
            &b[..end.max(0) as usize]
        } else if end < 0 || end > len {
            if start > len {
                return Err(format!(
                    "runtime error: slice bounds out of range [{start}:{len}]"
                ));
            }
            &b[start as usize..]
        } else {
            if start > end {
                return Err(format!(
                    "runtime error: slice bounds out of range [{start}:{end}]"
                ));
            }
            &b[start as usize..end as usize]
        };
        Ok(sv(String::from_utf8_lossy(r)))
    });
    m.add("nospace", |_, a| {
        Ok(sv(strval(arg(a, 0))
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()))
    });
    m.add("trunc", |_, a| {
        need("trunc", a, 2)?;
        Ok(sv(trunc(int_at(a, 0)?, &str_at(a, 1)?)))
    });
    m.add("abbrev", |_, a| {
        let w = to_i64(arg(a, 0));
        let s = strval(arg(a, 1));
        if w < 4 || (s.chars().count() as i64) <= w {
            return Ok(sv(s));
        }
        let t: String = s.chars().take((w - 3) as usize).collect();
        Ok(sv(format!("{t}...")))
    });
    m.add("abbrevboth", |_, a| {
        // goutils.AbbreviateFull(str, left, right)
        let left = to_i64(arg(a, 0));
        let right = to_i64(arg(a, 1));
        let s: Vec<char> = strval(arg(a, 2)).chars().collect();
        Ok(sv(abbreviate_full(&s, left, right)))
    });
    m.add("initials", |_, a| {
        Ok(sv(strval(arg(a, 0))
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>()))
    });
    m.add("contains", |_, a| {
        Ok(Value::Bool(
            strval(arg(a, 1)).contains(strval(arg(a, 0)).as_str()),
        ))
    });
    m.add("hasPrefix", |_, a| {
        Ok(Value::Bool(
            strval(arg(a, 1)).starts_with(strval(arg(a, 0)).as_str()),
        ))
    });
    m.add("hasSuffix", |_, a| {
        Ok(Value::Bool(
            strval(arg(a, 1)).ends_with(strval(arg(a, 0)).as_str()),
        ))
    });
    m.add("replace", |_, a| {
        need("replace", a, 3)?;
        let (old, new, s) = (strval(&a[0]), strval(&a[1]), strval(&a[2]));
        if old.is_empty() {
            // Go's strings.Replace with empty old inserts between runes
            let mut out = new.clone();
            for c in s.chars() {
                out.push(c);
                out.push_str(&new);
            }
            return Ok(sv(out));
        }
        Ok(sv(s.replace(&old, &new)))
    });
    m.add("plural", |_, a| {
        Ok(if to_i64(arg(a, 2)) == 1 {
            arg(a, 0).clone()
        } else {
            arg(a, 1).clone()
        })
    });
    m.add("snakecase", |_, a| {
        let c: Vec<char> = strval(arg(a, 0)).chars().collect();
        Ok(sv(camel_to_lower(&c, '_')))
    });
    m.add("kebabcase", |_, a| {
        let c: Vec<char> = strval(arg(a, 0)).chars().collect();
        Ok(sv(camel_to_lower(&c, '-')))
    });
    m.add("camelcase", |_, a| {
        Ok(sv(to_camel_case(&strval(arg(a, 0)))))
    });
    m.add("swapcase", |_, a| {
        Ok(sv(strval(arg(a, 0))
            .chars()
            .map(|c| {
                if c.is_uppercase() {
                    c.to_lowercase().collect::<String>()
                } else {
                    c.to_uppercase().collect::<String>()
                }
            })
            .collect::<String>()))
    });
    m.add("shuffle", |_, a| {
        let mut c: Vec<char> = strval(arg(a, 0)).chars().collect();
        for i in (1..c.len()).rev() {
            let j = (rand_u64() % (i as u64 + 1)) as usize;
            c.swap(i, j);
        }
        Ok(sv(c.into_iter().collect::<String>()))
    });
    m.add("wrap", |_, a| {
        Ok(sv(wrap(&strval(arg(a, 1)), to_i64(arg(a, 0)), "\n")))
    });
    m.add("wrapWith", |_, a| {
        Ok(sv(wrap(
            &strval(arg(a, 2)),
            to_i64(arg(a, 0)),
            &strval(arg(a, 1)),
        )))
    });
    m.add("split", |_, a| {
        let sep = strval(arg(a, 0));
        let s = strval(arg(a, 1));
        let mut out = Map::new();
        for (i, p) in go_split(&s, &sep, -1).into_iter().enumerate() {
            out.insert(format!("_{i}"), sv(p));
        }
        Ok(Value::map(out))
    });
    m.add("splitn", |_, a| {
        let sep = strval(arg(a, 0));
        let n = to_i64(arg(a, 1));
        let s = strval(arg(a, 2));
        let mut out = Map::new();
        for (i, p) in go_split(&s, &sep, n).into_iter().enumerate() {
            out.insert(format!("_{i}"), sv(p));
        }
        Ok(Value::map(out))
    });
    m.add("splitList", |_, a| {
        let sep = strval(arg(a, 0));
        let s = strval(arg(a, 1));
        Ok(Value::list(
            go_split(&s, &sep, -1).into_iter().map(sv).collect(),
        ))
    });
    m.add("join", |_, a| {
        let sep = strval(arg(a, 0));
        Ok(sv(strslice(arg(a, 1)).join(&sep)))
    });
    m.add("sortAlpha", |_, a| {
        let mut v = strslice(arg(a, 0));
        v.sort();
        Ok(Value::list(v.into_iter().map(sv).collect()))
    });
    m.add("toStrings", |_, a| {
        Ok(Value::list(
            strslice(arg(a, 0)).into_iter().map(sv).collect(),
        ))
    });
    m.add("toString", |_, a| Ok(sv(strval(arg(a, 0)))));
    m.add("b64enc", |_, a| {
        // `base64encode(v string)`: Go refuses a []byte argument (`.Files.GetBytes`)
        if let Some(Value::Object(o)) = a.first() {
            if o.bytes().is_some() {
                return Err(capstan_gotemplate::arg_type_error(0, "string"));
            }
        }
        Ok(sv(
            base64::engine::general_purpose::STANDARD.encode(strval(arg(a, 0)))
        ))
    });
    m.add("b64dec", |_, a| {
        Ok(sv(
            match base64::engine::general_purpose::STANDARD.decode(strval(arg(a, 0))) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => crate::crypto::go_b64_error(&strval(arg(a, 0)), &e),
            },
        ))
    });
    m.add("b32enc", |_, a| {
        Ok(sv(b32enc(strval(arg(a, 0)).as_bytes())))
    });
    m.add("sha256sum", |_, a| {
        Ok(sv(hex(&sha2::Sha256::digest(strval(arg(a, 0)).as_bytes()))))
    });
    m.add("sha512sum", |_, a| {
        Ok(sv(hex(&sha2::Sha512::digest(strval(arg(a, 0)).as_bytes()))))
    });
    m.add("sha1sum", |_, a| {
        Ok(sv(hex(&sha1::Sha1::digest(strval(arg(a, 0)).as_bytes()))))
    });
    m.add("adler32sum", |_, a| {
        Ok(sv(adler32(strval(arg(a, 0)).as_bytes()).to_string()))
    });
    m.add("randAlphaNum", |_, a| {
        Ok(sv(rand_string(
            to_i64(arg(a, 0)),
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        )?))
    });
    m.add("randAlpha", |_, a| {
        Ok(sv(rand_string(
            to_i64(arg(a, 0)),
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        )?))
    });
    m.add("randNumeric", |_, a| {
        Ok(sv(rand_string(to_i64(arg(a, 0)), b"0123456789")?))
    });
    m.add("randAscii", |_, a| {
        let alphabet: Vec<u8> = (32u8..127).collect();
        Ok(sv(rand_string(to_i64(arg(a, 0)), &alphabet)?))
    });
    m.add("randBytes", |_, a| {
        let n = to_i64(arg(a, 0));
        if n < 0 {
            return Err("runtime error: makeslice: len out of range".into());
        }
        capstan_gotemplate::limits::check_string_len("randBytes", n as u128 * 4 / 3)?;
        let b: Vec<u8> = (0..n).map(|_| rand_u64() as u8).collect();
        Ok(sv(base64::engine::general_purpose::STANDARD.encode(b)))
    });
    m.add("uuidv4", |_, _| Ok(sv(uuidv4())));

    // ---- regex ----
    for must in [false, true] {
        let p = |n: &str| {
            if must {
                format!("must{}{}", n[..1].to_uppercase(), &n[1..])
            } else {
                n.to_string()
            }
        };
        m.add(p("regexMatch"), move |_, a| {
            match regex(&strval(arg(a, 0))) {
                Ok(r) => Ok(Value::Bool(r.is_match(&strval(arg(a, 1))))),
                Err(e) if must => Err(e),
                Err(_) => Ok(Value::Bool(false)),
            }
        });
        m.add(p("regexFind"), move |_, a| {
            match regex(&strval(arg(a, 0))) {
                Ok(r) => Ok(sv(r
                    .find(&strval(arg(a, 1)))
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default())),
                Err(e) if must => Err(e),
                Err(_) => Ok(sv("")),
            }
        });
        m.add(p("regexFindAll"), move |_, a| {
            match regex(&strval(arg(a, 0))) {
                Ok(r) => {
                    let s = strval(arg(a, 1));
                    let n = to_i64(arg(a, 2));
                    let it = r.find_iter(&s).map(|m| sv(m.as_str()));
                    Ok(Value::list(if n < 0 {
                        it.collect()
                    } else {
                        it.take(n as usize).collect()
                    }))
                }
                Err(e) if must => Err(e),
                Err(_) => Ok(Value::list(vec![])),
            }
        });
        m.add(p("regexReplaceAll"), move |_, a| {
            match regex(&strval(arg(a, 0))) {
                Ok(r) => Ok(sv(r
                    .replace_all(
                        &strval(arg(a, 1)),
                        go_replacement(&strval(arg(a, 2))).as_str(),
                    )
                    .into_owned())),
                Err(e) if must => Err(e),
                Err(_) => Ok(sv("")),
            }
        });
        m.add(p("regexReplaceAllLiteral"), move |_, a| {
            match regex(&strval(arg(a, 0))) {
                Ok(r) => Ok(sv(r
                    .replace_all(&strval(arg(a, 1)), regex::NoExpand(&strval(arg(a, 2))))
                    .into_owned())),
                Err(e) if must => Err(e),
                Err(_) => Ok(sv("")),
            }
        });
        m.add(p("regexSplit"), move |_, a| {
            match regex(&strval(arg(a, 0))) {
                Ok(r) => {
                    let s = strval(arg(a, 1));
                    let n = to_i64(arg(a, 2));
                    let parts: Vec<Value> = if n < 0 {
                        r.split(&s).map(sv).collect()
                    } else if n == 0 {
                        vec![]
                    } else {
                        r.splitn(&s, n as usize).map(sv).collect()
                    };
                    Ok(Value::list(parts))
                }
                Err(e) if must => Err(e),
                Err(_) => Ok(Value::list(vec![])),
            }
        });
    }
    m.add("regexQuoteMeta", |_, a| {
        Ok(sv(regex::escape(&strval(arg(a, 0)))))
    });

    // ---- conversion ----
    m.add("int", |_, a| Ok(Value::Int(to_i64(arg(a, 0)))));
    m.add("int64", |_, a| Ok(Value::Int64(to_i64(arg(a, 0)))));
    m.add("float64", |_, a| Ok(Value::Float(to_f64(arg(a, 0)))));
    m.add("atoi", |_, a| {
        Ok(Value::Int(strval(arg(a, 0)).parse::<i64>().unwrap_or(0)))
    });
    m.add("toDecimal", |_, a| {
        Ok(Value::Int64(
            i64::from_str_radix(&strval(arg(a, 0)), 8).unwrap_or(0),
        ))
    });

    // ---- math ----
    // int64 arithmetic wraps around as Go's does; dividing the minimum int64 by -1 gives
    // the minimum (remainder 0), as the Go spec defines
    m.add("add", |_, a| {
        Ok(Value::Int64(
            a.iter().map(to_i64).fold(0i64, |x, y| x.wrapping_add(y)),
        ))
    });
    m.add("add1", |_, a| {
        need("add1", a, 1)?;
        Ok(Value::Int64(to_i64(&a[0]).wrapping_add(1)))
    });
    m.add("sub", |_, a| {
        need("sub", a, 2)?;
        Ok(Value::Int64(to_i64(&a[0]).wrapping_sub(to_i64(&a[1]))))
    });
    m.add("mul", |_, a| {
        if a.is_empty() {
            return Err("wrong number of args for mul: want at least 1 got 0".into());
        }
        Ok(Value::Int64(
            a[1..]
                .iter()
                .map(to_i64)
                .fold(to_i64(&a[0]), |x, y| x.wrapping_mul(y)),
        ))
    });
    m.add("div", |_, a| {
        need("div", a, 2)?;
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(Value::Int64(to_i64(&a[0]).wrapping_div(d)))
    });
    m.add("mod", |_, a| {
        need("mod", a, 2)?;
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(Value::Int64(to_i64(&a[0]).wrapping_rem(d)))
    });
    m.add("max", |_, a| {
        Ok(Value::Int64(a.iter().map(to_i64).max().unwrap_or(0)))
    });
    m.add("min", |_, a| {
        Ok(Value::Int64(a.iter().map(to_i64).min().unwrap_or(0)))
    });
    // Sprig's float arithmetic goes through shopspring/decimal: each operand is the
    // shortest decimal of its float64 (0.1 is exactly 0.1), the operation is exact (a
    // quotient is rounded half away from zero to 16 places), then back to float64.
    m.add("addf", |_, a| {
        decimal_op(&Value::Float(0.0), a, DecOp::Add).map(Value::Float)
    });
    m.add("add1f", |_, a| {
        decimal_op(arg(a, 0), &[Value::Int(1)], DecOp::Add).map(Value::Float)
    });
    m.add("subf", |_, a| {
        decimal_op(arg(a, 0), a.get(1..).unwrap_or(&[]), DecOp::Sub).map(Value::Float)
    });
    m.add("mulf", |_, a| {
        decimal_op(arg(a, 0), a.get(1..).unwrap_or(&[]), DecOp::Mul).map(Value::Float)
    });
    m.add("divf", |_, a| {
        decimal_op(arg(a, 0), a.get(1..).unwrap_or(&[]), DecOp::Div).map(Value::Float)
    });
    m.add("maxf", |_, a| {
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max),
        ))
    });
    m.add("minf", |_, a| {
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::INFINITY, f64::min),
        ))
    });
    m.add("floor", |_, a| Ok(Value::Float(to_f64(arg(a, 0)).floor())));
    m.add("ceil", |_, a| Ok(Value::Float(to_f64(arg(a, 0)).ceil())));
    m.add("round", |_, a| {
        let on = if a.len() > 2 { to_f64(&a[2]) } else { 0.5 };
        Ok(Value::Float(round(
            to_f64(arg(a, 0)),
            to_i64(arg(a, 1)),
            on,
        )))
    });
    m.add("until", |_, a| {
        let n = to_i64(arg(a, 0));
        let step = if n < 0 { -1 } else { 1 };
        Ok(Value::list(untilstep("until", 0, n as i128, step)?))
    });
    m.add("untilStep", |_, a| {
        need("untilStep", a, 3)?;
        Ok(Value::list(untilstep(
            "untilStep",
            to_i64(&a[0]),
            to_i64(&a[1]) as i128,
            to_i64(&a[2]),
        )?))
    });
    m.add("seq", |_, a| {
        let p: Vec<i64> = a.iter().map(to_i64).collect();
        let (start, step, end) = match p.len() {
            0 => return Ok(sv("")),
            1 => (1, if p[0] >= 1 { 1 } else { -1 }, p[0]),
            2 => (p[0], if p[1] >= p[0] { 1 } else { -1 }, p[1]),
            _ => (p[0], p[1], p[2]),
        };
        if step == 0 {
            return Ok(sv(""));
        }
        // untilStep(start, end+increment, step)
        let stop = end as i128 + if end < start { -1 } else { 1 };
        let out: Vec<String> = untilstep("seq", start, stop, step)?
            .iter()
            .map(|v| v.to_go_string())
            .collect();
        Ok(sv(out.join(" ")))
    });

    // ---- lists ----
    m.add("list", |_, a| Ok(Value::list(a.to_vec())));
    m.add("tuple", |_, a| Ok(Value::list(a.to_vec())));
    for name in ["append", "push", "mustAppend", "mustPush"] {
        m.add(name, |_, a| {
            let mut l = list_arg("append", arg(a, 0))?.as_ref().clone();
            l.push(arg(a, 1).clone());
            Ok(Value::list(l))
        });
    }
    for name in ["prepend", "mustPrepend"] {
        m.add(name, |_, a| {
            let mut l = list_arg("prepend", arg(a, 0))?.as_ref().clone();
            l.insert(0, arg(a, 1).clone());
            Ok(Value::list(l))
        });
    }
    for name in ["first", "mustFirst"] {
        m.add(name, |_, a| {
            Ok(list_arg("find first", arg(a, 0))?
                .first()
                .cloned()
                .unwrap_or_default())
        });
    }
    for name in ["last", "mustLast"] {
        m.add(name, |_, a| {
            Ok(list_arg("find last", arg(a, 0))?
                .last()
                .cloned()
                .unwrap_or_default())
        });
    }
    for name in ["rest", "mustRest"] {
        m.add(name, |_, a| {
            let l = list_arg("find rest", arg(a, 0))?;
            Ok(if l.is_empty() {
                Value::Nil
            } else {
                Value::list(l[1..].to_vec())
            })
        });
    }
    for name in ["initial", "mustInitial"] {
        m.add(name, |_, a| {
            let l = list_arg("find initial", arg(a, 0))?;
            Ok(if l.is_empty() {
                Value::Nil
            } else {
                Value::list(l[..l.len() - 1].to_vec())
            })
        });
    }
    for name in ["uniq", "mustUniq"] {
        m.add(name, |_, a| {
            let l = list_arg("uniq", arg(a, 0))?;
            let mut out: Vec<Value> = Vec::new();
            for v in l.iter() {
                if !out.iter().any(|x| x.deep_equal(v)) {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        });
    }
    for name in ["without", "mustWithout"] {
        m.add(name, |_, a| {
            let l = list_arg("without", arg(a, 0))?;
            Ok(Value::list(
                l.iter()
                    .filter(|v| !a[1..].iter().any(|x| x.deep_equal(v)))
                    .cloned()
                    .collect(),
            ))
        });
    }
    for name in ["has", "mustHas"] {
        m.add(name, |_, a| {
            let l = list_arg("has", arg(a, 1))?;
            Ok(Value::Bool(l.iter().any(|x| x.deep_equal(arg(a, 0)))))
        });
    }
    for name in ["compact", "mustCompact"] {
        m.add(name, |_, a| {
            let l = list_arg("compact", arg(a, 0))?;
            Ok(Value::list(
                l.iter().filter(|v| !empty(v)).cloned().collect(),
            ))
        });
    }
    for name in ["reverse", "mustReverse"] {
        m.add(name, |_, a| {
            let l = list_arg("reverse", arg(a, 0))?;
            Ok(Value::list(l.iter().rev().cloned().collect()))
        });
    }
    m.add("concat", |_, a| {
        let mut out = Vec::new();
        for l in a {
            out.extend(list_arg("concat", l)?.iter().cloned());
        }
        Ok(Value::list(out))
    });
    for name in ["slice", "mustSlice"] {
        m.add(name, |_, a| {
            let l = list_arg("slice", arg(a, 0))?;
            let len = l.len() as i64;
            let start = if a.len() > 1 { to_i64(&a[1]) } else { 0 };
            let end = if a.len() > 2 { to_i64(&a[2]) } else { len };
            if start < 0 || end > len || start > end {
                return Err(format!("slice bounds out of range [{start}:{end}]"));
            }
            Ok(Value::list(l[start as usize..end as usize].to_vec()))
        });
    }
    for name in ["chunk", "mustChunk"] {
        m.add(name, |_, a| {
            let size = to_i64(arg(a, 0)).max(1) as usize;
            let l = list_arg("chunk", arg(a, 1))?;
            Ok(Value::list(
                l.chunks(size).map(|c| Value::list(c.to_vec())).collect(),
            ))
        });
    }

    // ---- dicts ----
    m.add("dict", |_, a| {
        let mut out = Map::new();
        let mut i = 0;
        while i < a.len() {
            let k = strval(&a[i]);
            let v = a.get(i + 1).cloned().unwrap_or_default();
            out.insert(k, v);
            i += 2;
        }
        Ok(Value::map(out))
    });
    m.add("get", |ctx, a| {
        need("get", a, 2)?;
        let d = map_param(ctx, a, 0)?;
        let k = str_at(a, 1)?;
        Ok(d.and_then(|d| d.get(&k)).unwrap_or_else(|| sv("")))
    });
    m.add("set", |ctx, a| {
        need("set", a, 3)?;
        let k = str_at(a, 1)?;
        match map_param(ctx, a, 0)? {
            Some(d) => {
                d.insert(k, a[2].clone());
                Ok(a[0].clone())
            }
            None => Err("assignment to entry in nil map".into()),
        }
    });
    m.add("unset", |ctx, a| {
        need("unset", a, 2)?;
        let k = str_at(a, 1)?;
        match map_param(ctx, a, 0)? {
            Some(d) => {
                d.write().remove(&k);
                Ok(a[0].clone())
            }
            // deleting from a nil map does nothing; the nil map prints as map[]
            None => Ok(Value::empty_map()),
        }
    });
    m.add("hasKey", |ctx, a| {
        need("hasKey", a, 2)?;
        let d = map_param(ctx, a, 0)?;
        let k = str_at(a, 1)?;
        Ok(Value::Bool(d.is_some_and(|d| d.read().contains_key(&k))))
    });
    m.add("pluck", |ctx, a| {
        if a.is_empty() {
            return Err("wrong number of args for pluck: want at least 1 got 0".into());
        }
        let name = str_at(a, 0)?;
        let mut out = Vec::new();
        for i in 1..a.len() {
            if let Some(v) = map_param(ctx, a, i)?.and_then(|d| d.get(&name)) {
                out.push(v);
            }
        }
        Ok(Value::list(out))
    });
    m.add("keys", |ctx, a| {
        let mut out = Vec::new();
        for i in 0..a.len() {
            if let Some(d) = map_param(ctx, a, i)? {
                out.extend(d.read().keys().map(|k| sv(k.clone())));
            }
        }
        Ok(Value::list(out))
    });
    m.add("values", |ctx, a| {
        need("values", a, 1)?;
        let r: Vec<Value> = match map_param(ctx, a, 0)? {
            Some(d) => d.read().values().cloned().collect(),
            None => Vec::new(),
        };
        Ok(Value::list(r))
    });
    m.add("pick", |ctx, a| {
        if a.is_empty() {
            return Err("wrong number of args for pick: want at least 1 got 0".into());
        }
        let d = map_param(ctx, a, 0)?;
        let keys = (1..a.len())
            .map(|i| str_at(a, i))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(d) = d else {
            return Ok(Value::empty_map());
        };
        let src = d.read();
        let out: Map = keys
            .into_iter()
            .filter_map(|k| src.get(&k).map(|v| (k, v.clone())))
            .collect();
        Ok(Value::map(out))
    });
    m.add("omit", |ctx, a| {
        if a.is_empty() {
            return Err("wrong number of args for omit: want at least 1 got 0".into());
        }
        let d = map_param(ctx, a, 0)?;
        let keys = (1..a.len())
            .map(|i| str_at(a, i))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(d) = d else {
            return Ok(Value::empty_map());
        };
        let out: Map = d
            .read()
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Value::map(out))
    });
    for (name, ow, must) in [
        ("merge", false, false),
        ("mustMerge", false, true),
        ("mergeOverwrite", true, false),
        ("mustMergeOverwrite", true, true),
    ] {
        m.add(name, move |ctx, a| {
            if a.is_empty() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            // mergo makes a nil destination a new map
            let (dst, out) = match map_param(ctx, a, 0)? {
                Some(d) => (d, a[0].clone()),
                None => {
                    let d = MapRef::default();
                    (d.clone(), Value::Map(d))
                }
            };
            for i in 1..a.len() {
                if let Some(sm) = map_param(ctx, a, i)? {
                    if let Err(e) = merge_into(&dst, &sm, ow, 0) {
                        // Sprig swallows merge errors inside a template
                        return if must { Err(e) } else { Ok(sv("")) };
                    }
                }
            }
            Ok(out)
        });
    }
    for name in ["deepCopy", "mustDeepCopy"] {
        m.add(name, |_, a| Ok(arg(a, 0).deep_copy()));
    }
    m.add("dig", |_, a| {
        if a.len() < 3 {
            return Err("dig needs at least three arguments".into());
        }
        let n = a.len();
        dig(&a[..n - 2], &a[n - 2], &a[n - 1])
    });

    // ---- types ----
    m.add("typeOf", |_, a| Ok(sv(arg(a, 0).type_name())));
    m.add("typeIs", |_, a| {
        Ok(Value::Bool(strval(arg(a, 0)) == arg(a, 1).type_name()))
    });
    m.add("typeIsLike", |_, a| {
        let t = strval(arg(a, 0));
        let n = arg(a, 1).type_name();
        Ok(Value::Bool(t == n || format!("*{n}") == t))
    });
    m.add("kindOf", |_, a| Ok(sv(arg(a, 0).kind_name())));
    m.add("kindIs", |_, a| {
        Ok(Value::Bool(strval(arg(a, 0)) == arg(a, 1).kind_name()))
    });

    // ---- semver ----
    m.add("semverCompare", |_, a| {
        need("semverCompare", a, 2)?;
        crate::semver::semver_compare(&strval(&a[0]), &strval(&a[1])).map(Value::Bool)
    });
    m.add("semver", |_, a| {
        let v = crate::semver::Version::parse(&strval(arg(a, 0))).map_err(|e| e.to_string())?;
        let canon = v.to_string();
        let obj = capstan_gotemplate::StructObject::new("*semver.Version")
            .with_field("Major", Value::Int64(v.major as i64))
            .with_field("Minor", Value::Int64(v.minor as i64))
            .with_field("Patch", Value::Int64(v.patch as i64))
            .with_field("Prerelease", sv(v.pre.clone()))
            .with_field("Metadata", sv(v.metadata.clone()))
            .with_field("Original", sv(v.original.clone()))
            .with_stringer(canon.clone());
        // methods taking another *semver.Version
        let mut obj = obj;
        for name in ["Compare", "LessThan", "GreaterThan", "Equal"] {
            let me = v.clone();
            obj = obj.with_method(name, move |args| {
                let other = match args.first() {
                    Some(Value::Object(o)) if o.type_name() == "*semver.Version" => o
                        .field("Original")
                        .map(|s| strval(&s))
                        .ok_or("bad version")?,
                    Some(o) => {
                        return Err(format!(
                            "wrong type for value; expected *semver.Version; got {}",
                            o.type_name()
                        ))
                    }
                    None => return Err(format!("wrong number of args for {name}: want 1 got 0")),
                };
                let o = crate::semver::Version::parse(&other).map_err(|e| e.to_string())?;
                let c = me.cmp(&o);
                Ok(match name {
                    "Compare" => Value::Int(c as i64),
                    "LessThan" => Value::Bool(c.is_lt()),
                    "GreaterThan" => Value::Bool(c.is_gt()),
                    _ => Value::Bool(c.is_eq()),
                })
            });
        }
        Ok(obj.with_data(sv(canon)).into_value())
    });

    // ---- dates ----
    crate::dates::register(&mut m);

    // ---- misc ----
    m.add("getHostByName", |_, _| Ok(sv("")));
    m.add("urlParse", |_, a| {
        let s = strval(arg(a, 0));
        let u = crate::url::parse(&s).map_err(|e| format!("unable to parse url: {e}"))?;
        let mut out = Map::new();
        for (k, v) in [
            ("scheme", u.scheme.clone()),
            ("host", u.host.clone()),
            ("hostname", u.hostname()),
            ("path", u.path),
            ("query", u.raw_query),
            ("opaque", u.opaque),
            ("fragment", u.fragment),
            ("userinfo", u.userinfo.unwrap_or_default()),
        ] {
            out.insert(k.into(), sv(v));
        }
        Ok(Value::map(out))
    });
    m.add("urlJoin", |_, a| {
        let m = map_arg(arg(a, 0))?;
        let get = |k: &str| m.get(k).map(|v| strval(&v)).unwrap_or_default();
        let user = get("userinfo");
        let u = crate::url::Url {
            scheme: get("scheme"),
            host: get("host"),
            path: get("path"),
            raw_query: get("query"),
            opaque: get("opaque"),
            fragment: get("fragment"),
            userinfo: (!user.is_empty()).then_some(user),
        };
        Ok(sv(u.to_string()))
    });

    more_funcs(&mut m);
    crate_crypto(&mut m);
    m
}

#[derive(Clone, Copy, PartialEq)]
enum Wt {
    Invalid,
    Number,
    Upper,
    Alpha,
    Connector,
    Punct,
    Other,
}

fn is_conn(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// Go's unicode.IsPunct for ASCII (symbols such as `$+<=>^|~` are not punctuation).
fn is_go_punct(c: char) -> bool {
    matches!(
        c,
        '!' | '"'
            | '#'
            | '%'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | ','
            | '-'
            | '.'
            | '/'
            | ':'
            | ';'
            | '?'
            | '@'
            | '['
            | '\\'
            | ']'
            | '_'
            | '{'
            | '}'
    )
}

/// xstrings' nextWord: the type and length of the word starting `s`.
fn next_word(s: &[char]) -> (Wt, usize) {
    let n = s.len();
    if n == 0 {
        return (Wt::Invalid, 0);
    }
    let r = s[0];
    let mut off = 1;
    let run = |off: &mut usize, f: &dyn Fn(char) -> bool| {
        while *off < n && f(s[*off]) {
            *off += 1;
        }
    };
    if is_conn(r) {
        run(&mut off, &is_conn);
        return (Wt::Connector, off);
    }
    if is_go_punct(r) {
        run(&mut off, &is_go_punct);
        return (Wt::Punct, off);
    }
    if r.is_uppercase() {
        if n == 1 {
            return (Wt::Upper, 1);
        }
        let r2 = s[1];
        if r2.is_uppercase() {
            off = 2;
            run(&mut off, &|c: char| c.is_uppercase());
            // "HTTPServer": the last capital starts the next word
            if off < n && s[off].is_alphabetic() {
                off -= 1;
            }
        } else if r2.is_alphabetic() {
            off = 2;
            run(&mut off, &|c: char| c.is_alphabetic() && !c.is_uppercase());
        }
        return (Wt::Upper, off);
    }
    if r.is_alphabetic() {
        run(&mut off, &|c: char| c.is_alphabetic() && !c.is_uppercase());
        return (Wt::Alpha, off);
    }
    if r.is_numeric() {
        run(&mut off, &|c: char| c.is_numeric());
        return (Wt::Number, off);
    }
    run(&mut off, &|c: char| {
        !(is_conn(c) || c.is_alphabetic() || c.is_numeric() || is_go_punct(c))
    });
    (Wt::Other, off)
}

fn to_lower_word(out: &mut String, wt: Wt, w: &[char], conn: char) {
    if wt != Wt::Upper && wt != Wt::Connector {
        out.extend(w.iter());
        return;
    }
    for &c in w {
        if is_conn(c) {
            out.push(conn);
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// xstrings' camelCaseToLowerCase (Sprig's `snakecase`/`kebabcase`).
fn camel_to_lower(s: &[char], conn: char) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    if s.is_empty() {
        return out;
    }
    let next = |rem: &[char]| -> (Wt, usize) { next_word(rem) };
    let (mut wt, l) = next(s);
    let mut word: &[char] = &s[..l];
    let mut rem: &[char] = &s[l..];
    macro_rules! advance {
        () => {{
            let (t, l) = next(rem);
            wt = t;
            word = &rem[..l];
            rem = &rem[l..];
        }};
    }
    while !rem.is_empty() {
        if wt != Wt::Connector {
            to_lower_word(&mut out, wt, word, conn);
        }
        let prev = wt;
        let last = word;
        advance!();
        match prev {
            Wt::Number => {
                while wt == Wt::Alpha || wt == Wt::Number {
                    to_lower_word(&mut out, wt, word, conn);
                    advance!();
                }
                if wt != Wt::Invalid && wt != Wt::Punct && wt != Wt::Connector {
                    out.push(conn);
                }
            }
            Wt::Connector => to_lower_word(&mut out, prev, last, conn),
            Wt::Punct => {}
            _ => {
                if wt != Wt::Number {
                    if wt != Wt::Connector && wt != Wt::Punct {
                        out.push(conn);
                    }
                    continue;
                }
                if rem.is_empty() {
                    continue;
                }
                let last = word;
                advance!();
                if wt != Wt::Alpha {
                    // "Bld4Floor" => "bld4_floor"
                    to_lower_word(&mut out, Wt::Number, last, conn);
                    if wt != Wt::Connector && wt != Wt::Punct {
                        out.push(conn);
                    }
                    continue;
                }
                // "HTTP2xx" => "http_2xx"
                out.push(conn);
                to_lower_word(&mut out, Wt::Number, last, conn);
                while wt == Wt::Alpha || wt == Wt::Number {
                    to_lower_word(&mut out, wt, word, conn);
                    advance!();
                }
                if wt != Wt::Invalid && wt != Wt::Connector && wt != Wt::Punct {
                    out.push(conn);
                }
            }
        }
    }
    to_lower_word(&mut out, wt, word, conn);
    out
}

/// xstrings.ToCamelCase: connectors (`-`, `_`, spaces) are dropped and the next rune
/// upper-cased; leading connectors and runs of them are kept (one less).
fn to_camel_case(s: &str) -> String {
    let conn = |c: char| c == '-' || c == '_' || c.is_whitespace();
    let mut chars = s.chars();
    let mut out = String::with_capacity(s.len());
    let mut r0 = None;
    for c in chars.by_ref() {
        if !conn(c) {
            r0 = Some(c.to_uppercase().next().unwrap_or(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        return out;
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if conn(r0) && conn(r1) {
            out.push(r1);
            continue;
        }
        if conn(r1) {
            r0 = r0.to_uppercase().next().unwrap_or(r0);
        } else {
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

/// goutils.AbbreviateFull (over runes).
fn abbreviate_full(s: &[char], offset: i64, max_width: i64) -> String {
    let text: String = s.iter().collect();
    let n = s.len() as i64;
    if s.is_empty() || (offset >= 0 && max_width < 4) || (offset > 0 && max_width < 7) {
        return text;
    }
    if n <= max_width {
        return text;
    }
    let mut offset = offset.min(n);
    if n - offset < max_width - 3 {
        offset = n - (max_width - 3);
    }
    let abbrev = "...";
    if offset <= 4 {
        let t: String = s[..(max_width - 3).max(0) as usize].iter().collect();
        return t + abbrev;
    }
    if max_width < 7 {
        return text;
    }
    if offset + max_width - 3 < n {
        let rest: Vec<char> = s[offset as usize..].to_vec();
        let inner = abbreviate_full(&rest, 0, max_width - 3);
        return format!("{abbrev}{inner}");
    }
    let t: String = s[(n - (max_width - 3)) as usize..].iter().collect();
    format!("{abbrev}{t}")
}

/// Sprig's `untilStep` (`for i := start; i < stop; i += step`, or `>` downwards), as a
/// list of at most [`capstan_gotemplate::limits::MAX_LIST_LEN`] ints.
fn untilstep(what: &str, start: i64, stop: i128, step: i64) -> Result<Vec<Value>, String> {
    let (start, step) = (start as i128, step as i128);
    let n: i128 = if stop < start {
        if step >= 0 {
            0
        } else {
            (start - stop + (-step) - 1) / -step
        }
    } else if step <= 0 {
        0
    } else {
        (stop - start + step - 1) / step
    };
    capstan_gotemplate::limits::check_list_len(what, n as u128)?;
    Ok((0..n)
        .map(|k| start + k * step)
        .take_while(|i| *i >= i64::MIN as i128 && *i <= i64::MAX as i128)
        .map(|i| Value::Int(i as i64))
        .collect())
}

/// Go's strings.SplitN (n < 0: all).
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return vec![];
    }
    if sep.is_empty() {
        let mut v: Vec<String> = s.chars().map(|c| c.to_string()).collect();
        if n > 0 && v.len() > n as usize {
            let rest: String = v[n as usize - 1..].concat();
            v.truncate(n as usize - 1);
            v.push(rest);
        }
        return v;
    }
    if n < 0 {
        s.split(sep).map(String::from).collect()
    } else {
        s.splitn(n as usize, sep).map(String::from).collect()
    }
}

fn wrap(s: &str, width: i64, nl: &str) -> String {
    // goutils.WrapCustom (wrapLongWords=false)
    let width = width.max(1) as usize;
    let mut out = Vec::new();
    for line in s.split('\n') {
        let mut cur = String::new();
        for w in line.split(' ') {
            if cur.is_empty() {
                cur.push_str(w);
            } else if cur.len() + 1 + w.len() > width {
                out.push(std::mem::take(&mut cur));
                cur.push_str(w);
            } else {
                cur.push(' ');
                cur.push_str(w);
            }
        }
        out.push(cur);
    }
    out.join(nl)
}

fn b32enc(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in b.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(A[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn crate_crypto(m: &mut FuncMap) {
    crate::crypto::register(m);
}

#[allow(dead_code)]
fn _assert_ctx(_: &Ctx<'_>) {}

#[allow(dead_code)]
type _Unused = BTreeMap<String, String>;

pub(crate) fn rand_byte() -> u8 {
    rand_u64() as u8
}

#[derive(Clone, Copy, PartialEq)]
enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal `coef * 10^exp` (shopspring/decimal's representation, with a bounded
/// coefficient: operations that would overflow fall back to float64 arithmetic).
#[derive(Clone, Copy)]
struct Dec {
    coef: i128,
    exp: i32,
}

impl Dec {
    /// `decimal.NewFromFloat`: the shortest decimal that reads back as `f`.
    fn from_f64(f: f64) -> Result<Dec, String> {
        if !f.is_finite() {
            return Err(format!(
                "Cannot create a Decimal from {}",
                capstan_gotemplate::fmt::format_float(f, 'g', -1)
            ));
        }
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let frac = mant.split_once('.').map(|(_, f)| f.len()).unwrap_or(0) as i32;
        let coef: i128 = mant.replace('.', "").parse().unwrap_or(0);
        Ok(Dec {
            coef,
            exp: exp - frac,
        })
    }
    /// `Decimal.Float64`: the float64 nearest to the exact value.
    fn to_f64(self) -> f64 {
        format!("{}e{}", self.coef, self.exp).parse().unwrap_or(0.0)
    }
    fn scaled(self, exp: i32) -> Option<i128> {
        let k = u32::try_from(self.exp - exp).ok()?;
        self.coef.checked_mul(10i128.checked_pow(k)?)
    }
    fn apply(self, op: DecOp, o: Dec) -> Option<Dec> {
        match op {
            DecOp::Add | DecOp::Sub => {
                let exp = self.exp.min(o.exp);
                let (x, y) = (self.scaled(exp)?, o.scaled(exp)?);
                let coef = if op == DecOp::Add {
                    x.checked_add(y)?
                } else {
                    x.checked_sub(y)?
                };
                Some(Dec { coef, exp })
            }
            DecOp::Mul => Some(Dec {
                coef: self.coef.checked_mul(o.coef)?,
                exp: self.exp.checked_add(o.exp)?,
            }),
            DecOp::Div => {
                // DivRound(o, 16): the quotient truncated to 16 places, then rounded half
                // away from zero on the remainder.
                const PREC: i32 = 16;
                let k = self.exp - o.exp + PREC;
                let (n, d) = if k >= 0 {
                    (
                        self.coef.checked_mul(10i128.checked_pow(k as u32)?)?,
                        o.coef,
                    )
                } else {
                    (
                        self.coef,
                        o.coef.checked_mul(10i128.checked_pow((-k) as u32)?)?,
                    )
                };
                let (mut q, r) = (n / d, n % d);
                if r.unsigned_abs().checked_mul(2)? >= d.unsigned_abs() {
                    q += if (n < 0) != (d < 0) { -1 } else { 1 };
                }
                Some(Dec {
                    coef: q,
                    exp: -PREC,
                })
            }
        }
    }
}

/// Sprig's `execDecimalOp`.
fn decimal_op(first: &Value, rest: &[Value], op: DecOp) -> Result<f64, String> {
    let mut acc = Dec::from_f64(to_f64(first))?;
    let mut approx = to_f64(first);
    let mut exact = true;
    for v in rest {
        let x = to_f64(v);
        let d = Dec::from_f64(x)?;
        if op == DecOp::Div && x == 0.0 {
            return Err("decimal division by 0".into());
        }
        if exact {
            match acc.apply(op, d) {
                Some(n) => acc = n,
                None => {
                    exact = false;
                    approx = acc.to_f64();
                }
            }
        }
        if !exact {
            approx = match op {
                DecOp::Add => approx + x,
                DecOp::Sub => approx - x,
                DecOp::Mul => approx * x,
                DecOp::Div => approx / x,
            };
        }
    }
    Ok(if exact { acc.to_f64() } else { approx })
}

/// Go's `path.Clean`: the shortest equivalent slash-separated path, lexically.
fn go_path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Go's `path.Base`.
fn go_path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Go's `path.Dir`: everything but the last element, cleaned.
fn go_path_dir(p: &str) -> String {
    let i = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    go_path_clean(&p[..i])
}

/// Go's `path.Ext`: the suffix from the last `.` of the last element.
fn go_path_ext(p: &str) -> String {
    for (i, c) in p.char_indices().rev() {
        match c {
            '/' => break,
            '.' => return p[i..].to_string(),
            _ => {}
        }
    }
    String::new()
}

/// Go's `base32.StdEncoding.DecodeString` (newlines ignored), with its error text.
fn b32dec(s: &str) -> Result<Vec<u8>, String> {
    let src: Vec<u8> = s.bytes().filter(|&c| c != b'\r' && c != b'\n').collect();
    let olen = src.len();
    let bad = |i: usize| format!("illegal base32 data at input byte {i}");
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    };
    let mut out = Vec::new();
    let mut pos = 0; // bytes of `src` consumed
    let mut end = false;
    while pos < olen && !end {
        let mut dbuf = [0u8; 8];
        let mut dlen = 8;
        let mut j = 0;
        while j < 8 {
            if pos == olen {
                // the end, with padding missing
                return Err(bad(olen - j));
            }
            let c = src[pos];
            pos += 1;
            let rest = olen - pos;
            if c == b'=' && j >= 2 && rest < 8 {
                if rest + j < 7 {
                    return Err(bad(olen));
                }
                for k in 0..7 - j {
                    if rest > k && src[pos + k] != b'=' {
                        return Err(bad(pos + k - 1));
                    }
                }
                dlen = j;
                end = true;
                if matches!(dlen, 1 | 3 | 6) {
                    return Err(bad(pos - 1));
                }
                break;
            }
            match value(c) {
                Some(v) => dbuf[j] = v,
                None => return Err(bad(pos - 1)),
            }
            j += 1;
        }
        let n = dbuf.iter().fold(0u64, |n, &v| n << 5 | v as u64);
        let nbytes = match dlen {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => 0,
        };
        for k in 0..nbytes {
            out.push((n >> (32 - 8 * k)) as u8);
        }
    }
    Ok(out)
}

/// Sprig functions and aliases beyond the common set: paths, `b32dec`, `randInt`,
/// deprecated spellings (`trimall`, `biggest`, `must_date_modify`), `hello`, and Helm's
/// `mustToToml`/`fromToml`.
fn more_funcs(m: &mut FuncMap) {
    m.add("hello", |_, _| Ok(sv("Hello!")));
    for (go, os) in [
        ("base", "osBase"),
        ("dir", "osDir"),
        ("clean", "osClean"),
        ("ext", "osExt"),
    ] {
        let f: fn(&str) -> String = match go {
            "base" => go_path_base,
            "dir" => go_path_dir,
            "clean" => go_path_clean,
            _ => go_path_ext,
        };
        for name in [go, os] {
            m.add(name, move |_, a| {
                need(name, a, 1)?;
                Ok(sv(f(&str_at(a, 0)?)))
            });
        }
    }
    for name in ["isAbs", "osIsAbs"] {
        m.add(name, move |_, a| {
            need(name, a, 1)?;
            Ok(Value::Bool(str_at(a, 0)?.starts_with('/')))
        });
    }
    m.add("b32dec", |_, a| {
        let s = strval(arg(a, 0));
        Ok(sv(match b32dec(&s) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e,
        }))
    });
    m.add("randInt", |_, a| {
        need("randInt", a, 2)?;
        let (lo, hi) = (int_at(a, 0)?, int_at(a, 1)?);
        let span = hi.checked_sub(lo).filter(|s| *s > 0);
        let Some(span) = span else {
            return Err("invalid argument to Intn".into());
        };
        Ok(Value::Int((rand_u64() % span as u64) as i64 + lo))
    });
    m.add("trimall", |_, a| {
        let cut: Vec<char> = strval(arg(a, 0)).chars().collect();
        Ok(sv(strval(arg(a, 1)).trim_matches(cut.as_slice())))
    });
    m.add("biggest", |_, a| {
        Ok(Value::Int64(a.iter().map(to_i64).max().unwrap_or(0)))
    });
    m.add("mustToRawJson", |_, a| {
        let s = crate::to_json(arg(a, 0))?;
        Ok(sv(s
            .replace("\\u003c", "<")
            .replace("\\u003e", ">")
            .replace("\\u0026", "&")))
    });
    m.add("mustToToml", |_, a| Ok(sv(to_toml(arg(a, 0)))));
}
