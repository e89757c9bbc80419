//! Go's `strconv.ParseFloat(s, 64)`: the number semantics of Flux's `numerical` policy.
//!
//! Accepted: an optional sign; decimal mantissas (`12`, `1.5`, `.5`, `5.`) with an
//! optional `e`/`E` exponent; hexadecimal mantissas (`0x1.8p3`) which need a `p`
//! exponent; `_` between digits (or after a base prefix) as in Go literals; `inf`,
//! `infinity` (any case, signed) and `nan` (any case, unsigned). Anything else, and
//! a finite literal that rounds to infinity (Go's `ErrRange`), is an error. The
//! result is the nearest float64: integers above 2^53 lose precision.

/// Why a string is not a Go float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatError {
    Syntax,
    Range,
}

fn prefix_len_ignore_case(s: &str, word: &str) -> usize {
    s.bytes()
        .zip(word.bytes())
        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
        .count()
}

fn special(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (sign, rest, signed) = match b.first()? {
        b'+' => (1.0, &s[1..], true),
        b'-' => (-1.0, &s[1..], true),
        _ => (1.0, s, false),
    };
    let n = prefix_len_ignore_case(rest, "infinity");
    if (n == 3 && rest.len() == 3) || (n == 8 && rest.len() == 8) {
        return Some(sign * f64::INFINITY);
    }
    if !signed && rest.len() == 3 && prefix_len_ignore_case(rest, "nan") == 3 {
        return Some(f64::NAN);
    }
    None
}

/// Go's `underscoreOK`: `_` only between digits, or between a base prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let mut b = s.as_bytes();
    if let Some(b'+' | b'-') = b.first() {
        b = &b[1..];
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1] | 0x20 == b'x';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseFloat(s, 64)`.
pub fn parse_go_float(s: &str) -> Result<f64, FloatError> {
    if s.is_empty() {
        return Err(FloatError::Syntax);
    }
    if let Some(v) = special(s) {
        return Ok(v);
    }
    if s.contains('_') && !underscore_ok(s) {
        return Err(FloatError::Syntax);
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes()[0] {
        b'+' => (false, &clean[1..]),
        b'-' => (true, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let b = body.as_bytes();
    let v = if b.len() >= 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' {
        parse_hex(&body[2..])?
    } else {
        parse_decimal(body)?
    };
    Ok(if neg { -v } else { v })
}

fn parse_decimal(body: &str) -> Result<f64, FloatError> {
    // Validate Go's grammar before handing the text to Rust's (correctly rounded) parser:
    // digits [. digits] [e [sign] digits], at least one mantissa digit.
    let b = body.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return Err(FloatError::Syntax);
    }
    if i < b.len() && (b[i] | 0x20) == b'e' {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(FloatError::Syntax);
        }
    }
    if i != b.len() {
        return Err(FloatError::Syntax);
    }
    let v: f64 = body.parse().map_err(|_| FloatError::Syntax)?;
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

fn parse_hex(body: &str) -> Result<f64, FloatError> {
    // hexdigits [. hexdigits] p [sign] decimal digits
    let b = body.as_bytes();
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut sticky = false;
    let mut seen_dot = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' && !seen_dot {
            seen_dot = true;
            i += 1;
            continue;
        }
        let Some(d) = (c as char).to_digit(16) else {
            break;
        };
        digits += 1;
        if mant >> 60 == 0 {
            mant = mant * 16 + u64::from(d);
            if seen_dot {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_dot {
                exp += 4;
            }
        }
        i += 1;
    }
    if digits == 0 || i >= b.len() || (b[i] | 0x20) != b'p' {
        return Err(FloatError::Syntax);
    }
    i += 1;
    let mut eneg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        eneg = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut e: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        e = (e * 10 + i64::from(b[i] - b'0')).min(100_000);
        i += 1;
    }
    if i == start || i != b.len() {
        return Err(FloatError::Syntax);
    }
    exp += if eneg { -e } else { e };
    if mant == 0 {
        return Ok(0.0);
    }
    // Keep the sticky bit in the lowest bit so the single rounding below sees it.
    if sticky {
        mant |= 1;
    }
    let v = (mant as f64) * 2f64.powi(exp.clamp(-2000, 2000) as i32);
    // powi with very negative exponents may flush early; do it in two steps.
    let v = if v == 0.0 && exp < -1074 {
        (mant as f64) * 2f64.powi((exp / 2) as i32) * 2f64.powi((exp - exp / 2) as i32)
    } else {
        v
    };
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerical_policy_number_syntax_is_go_parse_float() {
        assert_eq!(parse_go_float("12"), Ok(12.0));
        assert_eq!(parse_go_float("-1.5"), Ok(-1.5));
        assert_eq!(parse_go_float("+.5"), Ok(0.5));
        assert_eq!(parse_go_float("5."), Ok(5.0));
        assert_eq!(parse_go_float("1e3"), Ok(1000.0));
        assert_eq!(parse_go_float("1E-2"), Ok(0.01));
        assert_eq!(parse_go_float("1_000"), Ok(1000.0));
        assert_eq!(parse_go_float("0x1p-2"), Ok(0.25));
        assert_eq!(parse_go_float("0X1.8P1"), Ok(3.0));
        assert_eq!(parse_go_float("0x_1p4"), Ok(16.0));
        assert_eq!(parse_go_float("Inf"), Ok(f64::INFINITY));
        assert_eq!(parse_go_float("-infinity"), Ok(f64::NEG_INFINITY));
        assert!(parse_go_float("NaN").unwrap().is_nan());
        for bad in [
            "", ".", "e3", "1e", "1_", "_1", "1__0", "0x1", "0x", "1.2.3", "v1", "+nan", "infx",
            "1,5", " 1", "1 ", "0x1p", "--1",
        ] {
            assert_eq!(parse_go_float(bad), Err(FloatError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_go_float("1e400"), Err(FloatError::Range));
        assert_eq!(parse_go_float("0x1p2000"), Err(FloatError::Range));
        assert_eq!(parse_go_float("1e-400"), Ok(0.0));
    }

    #[test]
    fn numerical_policy_loses_precision_above_2_pow_53() {
        // 17-digit millisecond timestamps: adjacent values collapse to one float64.
        let a = parse_go_float("20220115161730811").unwrap();
        let b = parse_go_float("20220115161730813").unwrap();
        assert_eq!(a, b);
        let c = parse_go_float("9007199254740993").unwrap(); // 2^53 + 1
        assert_eq!(c, 9007199254740992.0);
    }
}
