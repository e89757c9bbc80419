//! The document tree SOPS works on: ordered mappings and sequences whose items may be
//! comments, and typed scalars.

/// A value of a SOPS document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An RFC 3339 timestamp, as text.
    Time(String),
    Map(Vec<Item>),
    Seq(Vec<Item>),
}

/// An item of a mapping or sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A comment: its text after the `#`.
    Comment(String),
    /// A mapping entry.
    Entry(String, Value),
    /// A sequence element.
    Elem(Value),
}

impl Value {
    /// The entry `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(items) => items.iter().find_map(|i| match i {
                Item::Entry(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Remove the entry `key` of a mapping, returning it.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Map(items) => {
                let i = items
                    .iter()
                    .position(|i| matches!(i, Item::Entry(k, _) if k == key))?;
                match items.remove(i) {
                    Item::Entry(_, v) => Some(v),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The text of a scalar (strings as they are, numbers and booleans as written).
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Str(s) | Value::Time(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(go_format_float_f(*f)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back, without
/// an exponent.
pub fn go_format_float_f(f: f64) -> String {
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
    // Rust's Display is the shortest round-trip representation without an exponent.
    let s = format!("{f}");
    if s == "-0" {
        return "-0".into();
    }
    s
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: shortest digits; exponent form when the
/// exponent is below -4 or at least 21 (the shortest form's precision limit).
pub fn go_format_float_g(f: f64) -> String {
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
    let e = format!("{f:e}"); // e.g. 1.234568e9, -5e-7
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go uses precision 6 for this decision when the precision is the shortest.
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        let sign = if exp < 0 { '-' } else { '+' };
        let a = exp.unsigned_abs();
        format!("{mant}e{sign}{a:02}")
    } else {
        go_format_float_f(f)
    }
}

/// Go `encoding/json`'s float formatting: `'f'` for 1e-6 <= |f| < 1e21, else `'e'` with a
/// two-digit-minimum exponent trimmed the way Go trims it (`1e-07`).
pub fn go_json_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.unsigned_abs())
    } else {
        go_format_float_f(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats() {
        assert_eq!(go_format_float_f(1234568000.0), "1234568000");
        assert_eq!(go_format_float_g(1234568000.0), "1.234568e+09");
        assert_eq!(go_format_float_g(0.5), "0.5");
        assert_eq!(go_format_float_g(100.0), "100");
        assert_eq!(go_format_float_g(0.00001), "1e-05");
        assert_eq!(go_json_float(1234568000.0), "1234568000");
        assert_eq!(go_json_float(1e-7), "1e-07");
    }
}
