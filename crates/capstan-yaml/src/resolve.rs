//! Tag resolution of plain scalars, as go-yaml v3 does it.

use crate::node::Tag;

/// The tag go-yaml v3 gives a plain scalar (timestamps are reported as strings).
pub fn resolve_plain(s: &str) -> Tag {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Tag::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Tag::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Tag::Float,
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.' {
        let plain: String = s.chars().filter(|&c| c != '_').collect();
        if parse_go_int(&plain).is_some() {
            return Tag::Int;
        }
        if is_yaml_float(&plain) {
            return Tag::Float;
        }
    }
    Tag::Str
}

/// Whether a string written plain would be read back as something other than a string
/// by a YAML 1.1 or 1.2 reader (go-yaml's encoder quotes these): non-string resolution,
/// timestamps, base-60 floats and YAML 1.1 booleans (`yes`, `on`, `y`, ...).
pub fn resolve_plain_v1_1(s: &str) -> Tag {
    let t = resolve_plain(s);
    if t != Tag::Str {
        return t;
    }
    if is_old_bool(s) {
        return Tag::Bool;
    }
    if is_base60_float(s) {
        return Tag::Float;
    }
    if is_timestamp(s) {
        return Tag::Custom("!!timestamp".into());
    }
    Tag::Str
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
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
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return false;
        }
        if n == 2 && b[start] > b'5' {
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

/// Whether go-yaml reads the plain text as a timestamp (a valid date, or date and time, in
/// one of its layouts).
fn is_timestamp(s: &str) -> bool {
    go_yaml_timestamp(s).is_some()
}

/// go-yaml's `parseTimestamp` (v2 and v3 alike) (layouts `2006-1-2T15:4:5.999999999Z07:00`, the same with
/// `t`, `2006-1-2 15:4:5.999999999` in UTC, and `2006-1-2`), printed as Go's
/// `time.Time.MarshalJSON` does (`2006-01-02T15:04:05.999999999Z07:00`).
pub fn go_yaml_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // 1 or 2 digits (Go's getnum for `1`, `2`, `15`, `4`, `5`)
    let num = |i: &mut usize, max_digits: usize| -> Option<u32> {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - st < max_digits {
            *i += 1;
        }
        if *i == st {
            return None;
        }
        s[st..*i].parse().ok()
    };
    let lit =
        |i: &mut usize, c: u8| -> Option<()> { (*i < b.len() && b[*i] == c).then(|| *i += 1) };
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let mut i = 5;
    let month = num(&mut i, 2)?;
    lit(&mut i, b'-')?;
    let day = num(&mut i, 2)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if i == b.len() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let with_zone = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    i += 1;
    let hour = num(&mut i, 2)?;
    lit(&mut i, b':')?;
    let min = num(&mut i, 2)?;
    lit(&mut i, b':')?;
    let sec = num(&mut i, 2)?;
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut frac = String::new();
    if i < b.len() && b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // Go keeps nanoseconds: digits past the ninth are dropped.
        let digits = s[st..i.min(st + 9)].trim_end_matches('0');
        if !digits.is_empty() {
            frac = format!(".{digits}");
        }
    }
    let zone = if !with_zone {
        "Z".to_string()
    } else if i < b.len() && b[i] == b'Z' {
        i += 1;
        "Z".to_string()
    } else if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        let sign = b[i] as char;
        i += 1;
        let zh = &s.get(i..i + 2)?;
        i += 2;
        lit(&mut i, b':')?;
        let zm = &s.get(i..i + 2)?;
        i += 2;
        if !zh.bytes().chain(zm.bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        if *zh == "00" && *zm == "00" {
            "Z".to_string()
        } else {
            format!("{sign}{zh}:{zm}")
        }
    } else {
        return None;
    };
    if i != b.len() {
        return None;
    }
    Some(format!("{date}T{hour:02}:{min:02}:{sec:02}{frac}{zone}"))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
pub(crate) fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
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

/// Go's `strconv.ParseInt(s, 0, 64)` / `ParseUint` (underscores already removed).
pub(crate) fn parse_go_int(s: &str) -> Option<i128> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let (radix, digits) =
        if let Some(r) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            (16, r)
        } else if let Some(r) = rest.strip_prefix("0o").or_else(|| rest.strip_prefix("0O")) {
            (8, r)
        } else if let Some(r) = rest.strip_prefix("0b").or_else(|| rest.strip_prefix("0B")) {
            (2, r)
        } else if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = u64::from_str_radix(digits, radix).ok()? as i128;
    let v = if neg { -v } else { v };
    if v < i64::MIN as i128 {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn resolves() {
        assert_eq!(resolve_plain("012"), Tag::Int);
        assert_eq!(resolve_plain("1_000"), Tag::Int);
        assert_eq!(resolve_plain("1e3"), Tag::Float);
        assert_eq!(resolve_plain("yes"), Tag::Str);
        assert_eq!(resolve_plain_v1_1("yes"), Tag::Bool);
        assert_eq!(resolve_plain_v1_1("1:20"), Tag::Float);
        assert_ne!(resolve_plain_v1_1("2001-12-14"), Tag::Str);
        assert_eq!(resolve_plain("0b101"), Tag::Int);
        assert_eq!(resolve_plain("-"), Tag::Str);
        assert_eq!(resolve_plain("1.2.3"), Tag::Str);
    }
}
