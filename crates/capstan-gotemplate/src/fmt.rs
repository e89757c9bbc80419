//! Go's `fmt` package over [`Value`]s: `Sprintf`, `Sprint`, `Sprintln`, and the
//! `strconv` number formatting they rely on.

use crate::value::Value;

/// `fmt.Sprint(args...)`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        write_value(&mut out, a);
    }
    out
}

/// `fmt.Sprintln(args...)`: always spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, a);
    }
    out.push('\n');
    out
}

/// Writes `%v` of a value (no flags).
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float(*f, 'g', -1)),
        Value::String(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, e);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.read().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_value(out, e);
            }
            out.push(']');
        }
        Value::Object(o) => out.push_str(&o.go_string()),
    }
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
                s.push_str(&format!("{:.*}", prec as usize, a));
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

/// Decimal digits (no trailing zeros) and exponent (value = 0.d1d2... * 10^(exp+1)),
/// rounded to `sig` significant digits when given, shortest otherwise.
fn decimal_digits(a: f64, sig: Option<usize>) -> (String, i32) {
    if a == 0.0 {
        return (String::from("0"), 0);
    }
    let e = match sig {
        None => format!("{a:e}"),
        Some(n) => format!("{:.*e}", n.saturating_sub(1), a),
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
        for i in 1..=prec {
            s.push(*d.get(i).unwrap_or(&'0'));
        }
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

/// Go's `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut sp = Spec::default();
        // flags
        while let Some(&f) = chars.peek() {
            match f {
                '-' => sp.minus = true,
                '+' => sp.plus = true,
                '#' => sp.sharp = true,
                ' ' => sp.space = true,
                '0' => sp.zero = true,
                _ => break,
            }
            chars.next();
        }
        // width
        if chars.peek() == Some(&'*') {
            chars.next();
            if let Some(Value::Int(n) | Value::Int64(n)) = args.get(argi) {
                if *n < 0 {
                    sp.minus = true;
                }
                sp.width = Some(n.unsigned_abs() as usize);
            } else {
                out.push_str("%!(BADWIDTH)");
            }
            argi += 1;
        } else {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if !w.is_empty() {
                sp.width = w.parse().ok();
            }
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            if chars.peek() == Some(&'*') {
                chars.next();
                if let Some(Value::Int(n) | Value::Int64(n)) = args.get(argi) {
                    sp.prec = Some((*n).max(0) as usize);
                } else {
                    out.push_str("%!(BADPREC)");
                }
                argi += 1;
            } else {
                let mut w = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_digit() {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                sp.prec = Some(w.parse().unwrap_or(0));
            }
        }
        if sp.minus {
            sp.zero = false;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        format_arg(&mut out, verb, sp, arg);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&a.type_name());
            out.push('=');
            write_value(&mut out, a);
        }
        out.push(')');
    }
    out
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
        out.extend(std::iter::repeat_n(' ', fill));
    } else if sp.zero {
        // zero padding goes after the sign
        let (sign, rest) = match s.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), &s[1..]),
            _ => (None, s),
        };
        if let Some(c) = sign {
            out.push(c);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
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
            format_arg(out, 'v', sp, v);
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
        while digits.len() < p {
            digits.insert(0, '0');
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
            s.extend(std::iter::repeat_n('0', w - body_len));
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
        _ => unreachable!(),
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

fn format_arg(out: &mut String, verb: char, mut sp: Spec, v: &Value) {
    if verb == 'T' {
        pad(out, &v.type_name(), sp);
        return;
    }
    if verb == 'v' {
        // `%+v` sets plusV (field names) and clears the sign flag
        sp.plus = false;
        if sp.sharp {
            // `%#v`: Go syntax; strings are quoted
            if let Value::String(s) = v {
                pad(out, &quote(s), sp);
                return;
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
            'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(out, verb, sp, *f),
            _ => bad_verb(out, verb, sp, v),
        },
        Value::String(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(out, verb, sp, s),
            _ => bad_verb(out, verb, sp, v),
        },
        Value::List(l) => {
            if sp.sharp && verb == 'v' {
                pad(out, &v.to_go_string(), sp);
                return;
            }
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, verb, sp, e);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.read().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, verb, sp, &Value::from(k.as_str()));
                out.push(':');
                format_arg(out, verb, sp, e);
            }
            out.push(']');
        }
        Value::Object(o) => match verb {
            'v' | 's' => pad(out, &o.go_string(), sp),
            'q' => pad(out, &quote(&o.go_string()), sp),
            _ => bad_verb(out, verb, sp, v),
        },
    }
}
