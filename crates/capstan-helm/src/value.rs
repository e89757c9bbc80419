//! Values as Helm sees them after `sigs.k8s.io/yaml` (YAML → JSON → Go): maps with
//! string keys, lists, strings, bools, float64 numbers (int64 from `--set`) and nil.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A map of values (Go's `map[string]interface{}`), iterated in key order.
pub type Map = BTreeMap<String, Val>;

/// A dynamic value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    /// An int64 (only from `--set` style parsing; YAML values become floats as in Helm).
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Val>),
    Map(Map),
}

impl Val {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
    pub fn is_table(&self) -> bool {
        matches!(self, Val::Map(_))
    }
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Val::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Val::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `fmt` `%v` of the value.
    pub fn go_fmt(&self) -> String {
        let mut s = String::new();
        self.go_fmt_into(&mut s);
        s
    }

    fn go_fmt_into(&self, out: &mut String) {
        match self {
            Val::Null => out.push_str("<nil>"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => out.push_str(&format_float_g(*f)),
            Val::Str(s) => out.push_str(s),
            Val::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    capstan_gotemplate::with_stack(|| v.go_fmt_into(out));
                }
                out.push(']');
            }
            Val::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    capstan_gotemplate::with_stack(|| v.go_fmt_into(out));
                }
                out.push(']');
            }
        }
    }

    /// Converts to JSON (for schema validation and the apply path).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Int(i) => serde_json::Value::from(*i),
            Val::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    serde_json::Value::from(*f as i64)
                } else {
                    serde_json::Number::from_f64(*f)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null)
                }
            }
            Val::Str(s) => serde_json::Value::String(s.clone()),
            Val::List(l) => serde_json::Value::Array(
                l.iter()
                    .map(|e| capstan_gotemplate::with_stack(|| e.to_json()))
                    .collect(),
            ),
            Val::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), capstan_gotemplate::with_stack(|| v.to_json())))
                    .collect(),
            ),
        }
    }

    /// Walks a dotted path of tables (`Values.Table` in Helm): every component must be a map.
    pub fn table(&self, path: &str) -> Option<&Map> {
        let mut cur = self.as_map()?;
        if path.is_empty() {
            return Some(cur);
        }
        for part in path.split('.') {
            cur = cur.get(part)?.as_map()?;
        }
        Some(cur)
    }
}

/// Helm's `Values.Table` on a map.
pub fn table<'a>(m: &'a Map, path: &str) -> Option<&'a Map> {
    let mut cur = m;
    for part in path.split('.') {
        cur = cur.get(part)?.as_map()?;
    }
    Some(cur)
}

/// Helm's `Values.PathValue`: the non-table value at a dotted path.
pub fn path_value<'a>(m: &'a Map, path: &str) -> Option<&'a Val> {
    if path.is_empty() {
        return None;
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() == 1 {
        return m.get(parts[0]).filter(|v| !v.is_table());
    }
    let (key, head) = parts.split_last()?;
    let t = table(m, &head.join("."))?;
    t.get(*key).filter(|v| !v.is_table())
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` as `%v` prints float64.
pub fn format_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // shortest repr digits and exponent
    let s = format!("{:e}", f); // e.g. 1.5e6, -1e-7
    let (mant, exp) = s.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    // %v uses 'g' with shortest precision: exponent form when exp < -4 || exp >= 6
    if !(-4..6).contains(&exp) {
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
        out
    } else {
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let e = exp as usize;
            if digits.len() <= e + 1 {
                out.push_str(&digits);
                for _ in 0..(e + 1 - digits.len()) {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..e + 1]);
                out.push('.');
                out.push_str(&digits[e + 1..]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn floats() {
        assert_eq!(format_float_g(1.0), "1");
        assert_eq!(format_float_g(8080.0), "8080");
        assert_eq!(format_float_g(1_000_000.0), "1e+06");
        assert_eq!(format_float_g(0.5), "0.5");
        assert_eq!(format_float_g(123456.0), "123456");
        assert_eq!(format_float_g(1.5e-7), "1.5e-07");
    }
}
