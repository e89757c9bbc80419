//! Go's `fmt` package over [`Value`]s: `Sprintf`, `Sprint`, `Sprintln`, and the
//! `strconv` number formatting they rely on.

use crate::value::Value;

use crate::limits::{MAX_STRING_BYTES, MAX_VALUE_DEPTH};

/// Why printing stopped: a value nested deeper than [`MAX_VALUE_DEPTH`] (or cyclic: a map
/// that contains itself), or a result longer than [`MAX_STRING_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Nested (or cyclic) beyond [`MAX_VALUE_DEPTH`].
    Depth,
    /// Longer than [`MAX_STRING_BYTES`].
    Size,
}

impl Limit {
    /// The error message for this limit.
    pub fn message(self, what: &str) -> String {
        match self {
            Limit::Depth => format!(
                "{what}: value nested deeper than {MAX_VALUE_DEPTH} levels (or a map that contains itself)"
            ),
            Limit::Size => format!(
                "{what}: result exceeds the limit of {MAX_STRING_BYTES} bytes per string"
            ),
        }
    }
}

fn check(out: &str, depth: usize) -> Result<(), Limit> {
    if depth > MAX_VALUE_DEPTH {
        return Err(Limit::Depth);
    }
    if out.len() > MAX_STRING_BYTES {
        return Err(Limit::Size);
    }
    Ok(())
}

/// `fmt.Sprint(args...)`: spaces between operands when neither side is a string.
/// Past a [`Limit`] the output is cut (see [`try_sprint`]).
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let _ = sprint_into(&mut out, args);
    out
}

/// [`sprint`], failing past a [`Limit`].
pub fn try_sprint(args: &[Value]) -> Result<String, Limit> {
    let mut out = String::new();
    sprint_into(&mut out, args)?;
    Ok(out)
}

fn sprint_into(out: &mut String, args: &[Value]) -> Result<(), Limit> {
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        write_value_at(out, a, 0)?;
    }
    Ok(())
}

/// `fmt.Sprintln(args...)`: always spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    try_sprintln(args).unwrap_or_default()
}

/// [`sprintln`], failing past a [`Limit`].
pub fn try_sprintln(args: &[Value]) -> Result<String, Limit> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value_at(&mut out, a, 0)?;
    }
    out.push('\n');
    Ok(out)
}

/// Writes `%v` of a value (no flags). Past a [`Limit`] the output is cut (see
/// [`try_write_value`]).
pub fn write_value(out: &mut String, v: &Value) {
    let _ = write_value_at(out, v, 0);
}

/// [`write_value`], failing past a [`Limit`] (Go's `fmt` recurses forever on a map that
/// contains itself).
pub fn try_write_value(out: &mut String, v: &Value) -> Result<(), Limit> {
    write_value_at(out, v, 0)
}

fn write_value_at(out: &mut String, v: &Value, depth: usize) -> Result<(), Limit> {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float(*f, 'g', -1)),
        Value::String(s) => out.push_str(s),
        Value::List(l) => {
            check(out, depth + 1)?;
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                crate::limits::with_stack(|| write_value_at(out, e, depth + 1))?;
                check(out, depth)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            check(out, depth + 1)?;
            out.push_str("map[");
            for (i, (k, e)) in m.read().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                crate::limits::with_stack(|| write_value_at(out, e, depth + 1))?;
                check(out, depth)?;
            }
            out.push(']');
        }
        Value::Object(o) => out.push_str(&o.go_string()),
    }
    Ok(())
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

fn quote_with(s: &str, q: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x80 => out.push(c),
            c if ascii_only || !is_print(c) => {
                let u = c as u32;
                if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn is_print(c: char) -> bool {
    // Approximation of unicode.IsPrint: not a control, not a format char, not a
    // separator other than U+0020.
    !(c.is_control()
        || matches!(c as u32, 0x00ad | 0x2028 | 0x2029 | 0xfeff | 0x200b..=0x200f | 0x2060..=0x2064)
        || (c.is_whitespace() && c != ' '))
}

/// Go's `strconv.FormatFloat(f, fmt, prec, 64)` for `fmt` in `e E f g G`; `prec < 0`
/// means the shortest representation that round-trips.
pub fn format_float(f: f64, fmt: char, prec: i32) -> String {
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
    let neg = f.is_sign_negative();
    let a = f.abs();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    match fmt {
        'f' | 'F' => {
            if prec < 0 {
                s.push_str(&format!("{a}"));
            } else {
                // the exact value has at most 1074 fractional digits: Rust formats up to
                // 65535, so format exactly to 1100 and append the zeros Go prints
                let p = prec as usize;
                s.push_str(&format!("{:.*}", p.min(1100), a));
                if p > 1100 {
                    s.push_str(&"0".repeat(p - 1100));
                }
            }
        }
        'e' | 'E' => {
            let (digits, exp) = decimal_digits(
                a,
                if prec < 0 {
                    None
                } else {
                    Some(prec as usize + 1)
                },
            );
            let p = if prec < 0 {
                digits.len().max(1) - 1
            } else {
                prec as usize
            };
            s.push_str(&fmt_e(&digits, exp, p, fmt));
        }
        'g' | 'G' => {
            let shortest = prec < 0;
            let mut prec = prec;
            if prec == 0 {
                prec = 1;
            }
            let (digits, exp) =
                decimal_digits(a, if shortest { None } else { Some(prec as usize) });
            let nd = digits.len() as i32;
            let dp = exp + 1; // position of decimal point
            let mut eprec = if shortest { nd } else { prec };
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let x = dp - 1;
            let efmt = if fmt == 'g' { 'e' } else { 'E' };
            if x < -4 || x >= eprec {
                let p = if shortest { nd } else { prec.min(nd) };
                s.push_str(&fmt_e(&digits, exp, (p - 1).max(0) as usize, efmt));
            } else {
                let p = if shortest || prec > dp { nd } else { prec };
                let frac = (p - dp).max(0) as usize;
                s.push_str(&fmt_f_digits(&digits, dp, frac));
            }
        }
        _ => s.push_str(&format!("{a}")),
    }
    s
}

/// The sign, mantissa (with the implicit bit) and unbiased exponent of a finite float64,
/// as Go's `strconv.genericFtoa` takes them apart.
fn float_parts(f: f64) -> (bool, u64, i32) {
    let bits = f.to_bits();
    let neg = bits >> 63 != 0;
    let mut exp = ((bits >> 52) & 0x7ff) as i32;
    let mut mant = bits & ((1u64 << 52) - 1);
    if exp == 0 {
        exp += 1; // denormal
    } else {
        mant |= 1u64 << 52;
    }
    (neg, mant, exp - 1023)
}

/// Go's `strconv.FormatFloat(f, 'x'|'X', prec, 64)`: `-0x1.yyyyp±dd` (the shortest
/// hexadecimal fraction when `prec < 0`).
pub fn format_hex_float(f: f64, fmt: char, prec: i32) -> String {
    let (neg, mut mant, mut exp) = float_parts(f);
    if mant == 0 {
        exp = 0;
    }
    // the leading 1 (if any) at bit 60
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1u64 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex: &[u8] = if fmt == 'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push('0');
    s.push(fmt);
    s.push((b'0' + ((mant >> 60) & 1) as u8) as char);
    mant <<= 4;
    if prec < 0 && mant != 0 {
        s.push('.');
        while mant != 0 {
            s.push(hex[((mant >> 60) & 15) as usize] as char);
            mant <<= 4;
        }
    } else if prec > 0 {
        s.push('.');
        for _ in 0..prec {
            s.push(hex[((mant >> 60) & 15) as usize] as char);
            mant <<= 4;
        }
    }
    s.push(if fmt == 'X' { 'P' } else { 'p' });
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.unsigned_abs()));
    s
}

/// Go's `strconv.FormatFloat(f, 'b', -1, 64)`: `-ddddp±ddd` (mantissa times a power of two).
pub fn format_binary_float(f: f64) -> String {
    let (neg, mant, exp) = float_parts(f);
    let e = exp - 52;
    format!(
        "{}{mant}p{}{e}",
        if neg { "-" } else { "" },
        if e >= 0 { "+" } else { "" }
    )
}

/// Decimal digits (no trailing zeros) and exponent (value = 0.d1d2... * 10^(exp+1)),
/// rounded to `sig` significant digits when given, shortest otherwise.
fn decimal_digits(a: f64, sig: Option<usize>) -> (String, i32) {
    if a == 0.0 {
        return (String::from("0"), 0);
    }
    let e = match sig {
        None => format!("{a:e}"),
        // an f64 has at most 767 significant decimal digits: rounding to more changes
        // nothing (and Rust formats at most 65535)
        Some(n) => format!("{:.*e}", n.saturating_sub(1).min(800), a),
    };
    let (mant, exp) = e.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp)
}

fn fmt_e(digits: &str, exp: i32, prec: usize, e: char) -> String {
    let mut s = String::new();
    let d: Vec<char> = digits.chars().collect();
    s.push(d[0]);
    if prec > 0 {
        s.push('.');
        let have = d.len().saturating_sub(1).min(prec);
        s.extend(&d[1..1 + have]);
        s.push_str(&"0".repeat(prec - have));
    }
    let exp = if digits == "0" { 0 } else { exp };
    s.push(e);
    s.push(if exp < 0 { '-' } else { '+' });
    let ae = exp.abs();
    if ae < 10 {
        s.push('0');
    }
    s.push_str(&ae.to_string());
    s
}

fn fmt_f_digits(digits: &str, dp: i32, frac: usize) -> String {
    let d: Vec<char> = digits.chars().collect();
    let mut s = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            s.push(*d.get(i).unwrap_or(&'0'));
        }
    } else {
        s.push('0');
    }
    if frac > 0 {
        s.push('.');
        for i in 0..frac as i32 {
            let idx = dp + i;
            let c = if idx < 0 {
                '0'
            } else {
                *d.get(idx as usize).unwrap_or(&'0')
            };
            s.push(c);
        }
    }
    s
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf`. Past a [`Limit`] the output is cut (see [`try_sprintf`]).
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let _ = sprintf_into(&mut out, format, args);
    out
}

/// Go's `fmt.Sprintf`, failing past a [`Limit`] (widths and precisions are at most about
/// 10^7, as Go's `fmt` parses them, but many of them could still add up).
pub fn try_sprintf(format: &str, args: &[Value]) -> Result<String, Limit> {
    let mut out = String::new();
    sprintf_into(&mut out, format, args)?;
    Ok(out)
}

/// Go's `fmt.tooLarge`: widths and precisions beyond 10^6 (checked before each digit).
fn too_large(x: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&x)
}

/// Go's `fmt.parsenum`: the number at `i` of `b`, `None` without digits; a crazy long
/// number consumes the rest of the format (`i` becomes the end) and is absent.
fn parsenum(b: &[u8], i: &mut usize) -> Option<usize> {
    let mut num: i64 = 0;
    let mut isnum = false;
    while *i < b.len() && b[*i].is_ascii_digit() {
        if too_large(num) {
            *i = b.len();
            return None;
        }
        num = num * 10 + (b[*i] - b'0') as i64;
        isnum = true;
        *i += 1;
    }
    isnum.then_some(num as usize)
}

/// Go's `fmt.intFromArg`: an integer argument for `*` (absent when missing, not an
/// integer, or too large); the argument is consumed when present.
fn int_from_arg(args: &[Value], argi: &mut usize) -> Option<i64> {
    let a = args.get(*argi)?;
    *argi += 1;
    match a {
        Value::Int(n) | Value::Int64(n) if !too_large(*n) => Some(*n),
        _ => None,
    }
}

/// Go's `fmt.parseArgNumber`: `[n]` at the start of `b` gives the zero-based index, the
/// bytes consumed and whether it was well formed.
fn parse_arg_number(b: &[u8]) -> (usize, usize, bool) {
    if b.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..b.len() {
        if b[i] == b']' {
            let mut j = 1;
            let n = parsenum(&b[..i], &mut j);
            return match n {
                Some(n) if j == i && n >= 1 => (n - 1, i + 1, true),
                // `[0]` parses as index -1: well formed, out of range.
                Some(0) if j == i => (usize::MAX, i + 1, true),
                _ => (0, i + 1, false),
            };
        }
    }
    (0, 1, false)
}

/// The state of one `fmt.Sprintf` over its arguments (Go's `pp` fields it needs).
struct ArgState {
    argi: usize,
    good: bool,
    reordered: bool,
}

impl ArgState {
    /// Go's `pp.argNumber`: an explicit `[n]` index at `i`, if any.
    fn arg_number(&mut self, b: &[u8], i: &mut usize, nargs: usize) -> bool {
        if *i >= b.len() || b[*i] != b'[' {
            return false;
        }
        self.reordered = true;
        let (index, wid, ok) = parse_arg_number(&b[*i..]);
        *i += wid;
        if ok && index < nargs {
            self.argi = index;
            return true;
        }
        self.good = false;
        ok
    }
}

fn sprintf_into(out: &mut String, format: &str, args: &[Value]) -> Result<(), Limit> {
    let b = format.as_bytes();
    let end = b.len();
    let mut st = ArgState {
        argi: 0,
        good: true,
        reordered: false,
    };
    let mut i = 0;
    while i < end {
        st.good = true;
        let lasti = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > lasti {
            out.push_str(&format[lasti..i]);
        }
        if i >= end {
            break;
        }
        i += 1; // the '%'
        let mut sp = Spec::default();
        // flags
        while i < end {
            match b[i] {
                b'-' => {
                    sp.minus = true;
                    sp.zero = false;
                }
                b'+' => sp.plus = true,
                b'#' => sp.sharp = true,
                b' ' => sp.space = true,
                b'0' => sp.zero = !sp.minus,
                _ => break,
            }
            i += 1;
        }
        // an explicit argument index
        let mut after_index = st.arg_number(b, &mut i, args.len());
        // width
        if i < end && b[i] == b'*' {
            i += 1;
            match int_from_arg(args, &mut st.argi) {
                Some(n) => {
                    if n < 0 {
                        sp.minus = true;
                        sp.zero = false;
                    }
                    sp.width = Some(n.unsigned_abs() as usize);
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            sp.width = parsenum(b, &mut i);
            if after_index && sp.width.is_some() {
                // "%[3]2d"
                st.good = false;
            }
        }
        // precision
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                // "%[3].2d"
                st.good = false;
            }
            after_index = st.arg_number(b, &mut i, args.len());
            if i < end && b[i] == b'*' {
                i += 1;
                match int_from_arg(args, &mut st.argi) {
                    Some(n) if n >= 0 => sp.prec = Some(n as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                sp.prec = Some(parsenum(b, &mut i).unwrap_or(0));
            }
        }
        if !after_index {
            st.arg_number(b, &mut i, args.len());
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let Some(verb) = format[i..].chars().next() else {
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        if !st.good {
            out.push_str(&format!("%!{verb}(BADINDEX)"));
            continue;
        }
        let Some(arg) = args.get(st.argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        st.argi += 1;
        format_arg(out, verb, sp, arg, 0)?;
        check(out, 0)?;
    }
    // Go skips the check when arguments were accessed out of order.
    if !st.reordered && st.argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[st.argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&a.type_name());
            out.push('=');
            write_value_at(out, a, 0)?;
        }
        out.push(')');
    }
    check(out, 0)
}

fn pad(out: &mut String, s: &str, sp: Spec) {
    let n = s.chars().count();
    let w = sp.width.unwrap_or(0);
    if n >= w {
        out.push_str(s);
        return;
    }
    let fill = w - n;
    if sp.minus {
        out.push_str(s);
        out.push_str(&" ".repeat(fill));
    } else if sp.zero {
        // zero padding goes after the sign
        let (sign, rest) = match s.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), &s[1..]),
            _ => (None, s),
        };
        if let Some(c) = sign {
            out.push(c);
        }
        out.push_str(&"0".repeat(fill));
        out.push_str(rest);
    } else {
        out.push_str(&" ".repeat(fill));
        out.push_str(s);
    }
}

fn bad_verb(out: &mut String, verb: char, sp: Spec, v: &Value) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        Value::Nil => out.push_str("<nil>"),
        _ => {
            out.push_str(&v.type_name());
            out.push('=');
            // Go prints the value with %v and the verb's flags (width, '-', '0')
            let _ = format_arg(out, 'v', sp, v, 0);
        }
    }
    out.push(')');
}

fn fmt_int(out: &mut String, verb: char, sp: Spec, i: i64) {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => u.to_string(),
        'x' => format!("{u:x}"),
        'X' => format!("{u:X}"),
        'o' | 'O' => format!("{u:o}"),
        'b' => format!("{u:b}"),
        'c' => {
            pad(
                out,
                &char::from_u32(i as u32).unwrap_or('\u{fffd}').to_string(),
                sp,
            );
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{fffd}');
            pad(out, &quote_with(&c.to_string(), '\'', sp.plus), sp);
            return;
        }
        'U' => {
            pad(out, &format!("U+{u:04X}"), sp);
            return;
        }
        _ => unreachable!(),
    };
    if let Some(p) = sp.prec {
        if p == 0 && u == 0 {
            digits.clear();
        }
        if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    let mut prefix = String::new();
    if sp.sharp {
        match verb {
            'x' => prefix.push_str("0x"),
            'X' => prefix.push_str("0X"),
            'o' if !digits.starts_with('0') => prefix.push('0'),
            'b' => prefix.push_str("0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        prefix.push_str("0o");
    }
    let sign = if neg {
        "-"
    } else if sp.plus {
        "+"
    } else if sp.space {
        " "
    } else {
        ""
    };
    let mut sp2 = sp;
    if sp.prec.is_some() {
        sp2.zero = false;
    }
    if let (true, Some(w)) = (sp2.zero, sp2.width) {
        let body_len = sign.len() + prefix.len() + digits.len();
        let mut s = String::from(sign);
        s.push_str(&prefix);
        if body_len < w {
            s.push_str(&"0".repeat(w - body_len));
        }
        s.push_str(&digits);
        out.push_str(&s);
    } else {
        pad(out, &format!("{sign}{prefix}{digits}"), sp2);
    }
}

fn fmt_float(out: &mut String, verb: char, sp: Spec, f: f64) {
    let prec = sp.prec.map(|p| p as i32);
    let mut s = match verb {
        'v' => format_float(f, 'g', prec.unwrap_or(-1)),
        'g' | 'G' => format_float(f, verb, prec.unwrap_or(-1)),
        'e' | 'E' => format_float(f, verb, prec.unwrap_or(6)),
        'f' | 'F' => format_float(f, 'f', prec.unwrap_or(6)),
        'x' | 'X' if f.is_finite() => format_hex_float(f, verb, prec.unwrap_or(-1)),
        'b' if f.is_finite() => format_binary_float(f),
        _ => format_float(f, 'g', -1),
    };
    if sp.plus && !s.starts_with('-') && !s.starts_with('+') {
        s.insert(0, '+');
    } else if sp.space && !s.starts_with('-') && !s.starts_with('+') {
        s.insert(0, ' ');
    } else if !sp.plus && s == "+Inf" {
        s = "+Inf".into();
    }
    if f.is_infinite() || f.is_nan() {
        let mut sp2 = sp;
        sp2.zero = false;
        pad(out, &s, sp2);
    } else {
        pad(out, &s, sp);
    }
}

fn fmt_str(out: &mut String, verb: char, sp: Spec, s: &str) {
    let s: std::borrow::Cow<str> = match sp.prec {
        Some(p) if verb != 'x' && verb != 'X' => s.chars().take(p).collect::<String>().into(),
        _ => s.into(),
    };
    match verb {
        'v' | 's' => pad(out, &s, sp),
        'q' => {
            if sp.sharp && !s.contains('`') && !s.chars().any(|c| c.is_control() && c != '\t') {
                pad(out, &format!("`{s}`"), sp)
            } else {
                pad(out, &quote_with(&s, '"', sp.plus), sp)
            }
        }
        'x' | 'X' => {
            let mut h = String::new();
            let bytes = s.as_bytes();
            let bytes = match sp.prec {
                Some(p) => &bytes[..p.min(bytes.len())],
                None => bytes,
            };
            for (i, b) in bytes.iter().enumerate() {
                if sp.space && i > 0 {
                    h.push(' ');
                }
                if sp.sharp && (sp.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, &h, sp)
        }
        _ => unreachable!(),
    }
}

fn format_arg(
    out: &mut String,
    verb: char,
    mut sp: Spec,
    v: &Value,
    depth: usize,
) -> Result<(), Limit> {
    if verb == 'T' {
        pad(out, &v.type_name(), sp);
        return Ok(());
    }
    if verb == 'v' {
        // `%+v` sets plusV (field names) and clears the sign flag
        sp.plus = false;
        if sp.sharp {
            // `%#v`: Go syntax; strings are quoted
            if let Value::String(s) = v {
                pad(out, &quote(s), sp);
                return Ok(());
            }
        }
    }
    match v {
        Value::Nil => match verb {
            'v' => pad(out, "<nil>", sp),
            _ => bad_verb(out, verb, sp, v),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, sp),
            _ => bad_verb(out, verb, sp, v),
        },
        Value::Int(i) | Value::Int64(i) => match verb {
            'v' | 'd' | 'x' | 'X' | 'o' | 'O' | 'b' | 'c' | 'q' | 'U' => fmt_int(out, verb, sp, *i),
            'e' | 'E' | 'f' | 'F' | 'g' | 'G' => bad_verb(out, verb, sp, v),
            _ => bad_verb(out, verb, sp, v),
        },
        Value::Float(f) => match verb {
            'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' | 'x' | 'X' | 'b' => {
                fmt_float(out, verb, sp, *f)
            }
            _ => bad_verb(out, verb, sp, v),
        },
        Value::String(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(out, verb, sp, s),
            _ => bad_verb(out, verb, sp, v),
        },
        Value::List(l) => {
            if sp.sharp && verb == 'v' {
                let mut s = String::new();
                write_value_at(&mut s, v, depth)?;
                pad(out, &s, sp);
                return Ok(());
            }
            check(out, depth + 1)?;
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                crate::limits::with_stack(|| format_arg(out, verb, sp, e, depth + 1))?;
                check(out, depth)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            check(out, depth + 1)?;
            out.push_str("map[");
            for (i, (k, e)) in m.read().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, verb, sp, &Value::from(k.as_str()), depth + 1)?;
                out.push(':');
                crate::limits::with_stack(|| format_arg(out, verb, sp, e, depth + 1))?;
                check(out, depth)?;
            }
            out.push(']');
        }
        Value::Object(o) if o.bytes().is_some() => {
            let b = o.bytes().unwrap_or_default();
            match verb {
                'v' => pad(out, &o.go_string(), sp),
                's' => pad(out, &String::from_utf8_lossy(b), sp),
                'q' => pad(out, &quote(&String::from_utf8_lossy(b)), sp),
                'x' | 'X' => {
                    let mut h = String::with_capacity(b.len() * 2);
                    for c in b {
                        if verb == 'x' {
                            h.push_str(&format!("{c:02x}"));
                        } else {
                            h.push_str(&format!("{c:02X}"));
                        }
                    }
                    pad(out, &h, sp)
                }
                _ => bad_verb(out, verb, sp, v),
            }
        }
        Value::Object(o) => match verb {
            'v' | 's' => pad(out, &o.go_string(), sp),
            'q' => pad(out, &quote(&o.go_string()), sp),
            _ => bad_verb(out, verb, sp, v),
        },
    }
    Ok(())
}
