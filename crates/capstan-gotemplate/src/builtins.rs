//! Go's builtin template functions, plus Helm's `include` and `tpl`.

use crate::value::Value;
use crate::{Ctx, FuncMap};

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    String,
    Invalid,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::String,
        _ => Kind::Invalid,
    }
}

const BAD_CMP: &str = "incompatible types for comparison";
const BAD_CMP_TYPE: &str = "invalid type for comparison";

/// Go's `eq arg1 arg2...`.
pub fn eq(args: &[Value]) -> Result<bool, String> {
    if args.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    let a = &args[0];
    let k1 = basic_kind(a);
    for b in &args[1..] {
        let k2 = basic_kind(b);
        let truth = if k1 != k2 {
            if !a.is_nil() && !b.is_nil() {
                // Go 1.22+ names the types
                return Err(format!(
                    "{BAD_CMP}: {} and {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::String(x), Value::String(y)) => x == y,
                (Value::Nil, Value::Nil) => true,
                (Value::Nil, _) | (_, Value::Nil) => false,
                (Value::List(_), _) | (_, Value::List(_)) => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        a.to_go_string(),
                        a.type_name(),
                        b.type_name(),
                        b.to_go_string()
                    ))
                }
                (Value::Map(_), _) | (_, Value::Map(_)) => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        a.to_go_string(),
                        a.type_name(),
                        b.type_name(),
                        b.to_go_string()
                    ))
                }
                (Value::Object(x), Value::Object(y)) => std::sync::Arc::ptr_eq(x, y),
                _ => false,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt a b`.
pub fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let k1 = basic_kind(a);
    if k1 == Kind::Invalid {
        return Err(BAD_CMP_TYPE.into());
    }
    let k2 = basic_kind(b);
    if k2 == Kind::Invalid {
        return Err(BAD_CMP_TYPE.into());
    }
    if k1 != k2 {
        return Err(BAD_CMP.into());
    }
    Ok(match (a, b) {
        (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::String(x), Value::String(y)) => x < y,
        _ => return Err(BAD_CMP_TYPE.into()),
    })
}

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn index_arg(v: &Value, cap: usize) -> Result<usize, String> {
    match v {
        Value::Int(i) | Value::Int64(i) => {
            if *i < 0 || *i as usize > cap {
                Err(format!("index out of range: {i}"))
            } else {
                Ok(*i as usize)
            }
        }
        Value::Nil => Err("cannot index slice/array with nil".into()),
        v => Err(format!(
            "cannot index slice/array with type {}",
            v.type_name()
        )),
    }
}

/// Go's `index item indices...`.
pub fn index(args: &[Value]) -> Result<Value, String> {
    let Some(item) = args.first() else {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    };
    let mut item = item.clone();
    for ix in &args[1..] {
        item = match &item {
            Value::List(l) => {
                let i = index_arg(ix, l.len())?;
                if i >= l.len() {
                    return Err(format!("index out of range: {i}"));
                }
                l[i].clone()
            }
            Value::String(s) => {
                let i = index_arg(ix, s.len())?;
                if i >= s.len() {
                    return Err(format!("index out of range: {i}"));
                }
                Value::Int(s.as_bytes()[i] as i64)
            }
            Value::Map(m) => match ix {
                Value::String(k) => m.get(k).unwrap_or(Value::Nil),
                Value::Nil => Value::Nil,
                v => {
                    return Err(format!(
                        "value has type {}; should be string",
                        v.type_name()
                    ))
                }
            },
            Value::Nil => return Err("index of untyped nil".into()),
            // a named slice or map type (Helm's `[]byte`, `.Files`): its elements
            v @ Value::Object(_) => match v.object_collection() {
                Some(c) => index(&[c, ix.clone()])?,
                None => return Err(format!("can't index item of type {}", v.type_name())),
            },
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> Result<Value, String> {
    let Some(item) = args.first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    if args.len() > 4 {
        return Err(format!("too many slice indexes: {}", args.len() - 1));
    }
    let len = match item {
        Value::List(l) => l.len(),
        Value::String(s) => s.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut idx = [0usize, len, len];
    for (i, a) in args[1..].iter().enumerate() {
        idx[i] = index_arg(a, len)?;
    }
    if matches!(item, Value::String(_)) && args.len() == 4 {
        return Err("cannot 3-index slice a string".into());
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    Ok(match item {
        Value::List(l) => Value::list(l[idx[0]..idx[1]].to_vec()),
        Value::String(s) => Value::from(s.get(idx[0]..idx[1]).unwrap_or("").to_string()),
        _ => unreachable!(),
    })
}

fn eval_args_string(args: &[Value]) -> Result<String, String> {
    if let [Value::String(s)] = args {
        return Ok(s.to_string());
    }
    crate::fmt::try_sprint(args).map_err(|l| l.message("print"))
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\0' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

pub(crate) fn builtins() -> FuncMap {
    let mut m = FuncMap::new();
    // and/or are evaluated lazily by the executor; these entries only declare them.
    m.add("and", |_, a| Ok(a.last().cloned().unwrap_or_default()));
    m.add("or", |_, a| Ok(a.last().cloned().unwrap_or_default()));
    m.add("not", |_, a| {
        want("not", a, 1)?;
        Ok(Value::Bool(!a[0].is_true()))
    });
    m.add("eq", |_, a| eq(a).map(Value::Bool));
    m.add("ne", |_, a| {
        want("ne", a, 2)?;
        eq(a).map(|b| Value::Bool(!b))
    });
    m.add("lt", |_, a| {
        want("lt", a, 2)?;
        lt(&a[0], &a[1]).map(Value::Bool)
    });
    m.add("le", |_, a| {
        want("le", a, 2)?;
        let l = lt(&a[0], &a[1])?;
        Ok(Value::Bool(l || eq(a)?))
    });
    m.add("gt", |_, a| {
        want("gt", a, 2)?;
        let l = lt(&a[0], &a[1])?;
        Ok(Value::Bool(!l && !eq(a)?))
    });
    m.add("ge", |_, a| {
        want("ge", a, 2)?;
        Ok(Value::Bool(!lt(&a[0], &a[1])?))
    });
    m.add("len", |_, a| {
        want("len", a, 1)?;
        Ok(Value::Int(match &a[0] {
            Value::String(s) => s.len() as i64,
            Value::List(l) => l.len() as i64,
            Value::Map(m) => m.len() as i64,
            Value::Nil => return Err("len of nil pointer".into()),
            v @ Value::Object(_) => match v.object_collection() {
                Some(Value::List(l)) => l.len() as i64,
                Some(Value::Map(m)) => m.len() as i64,
                _ => return Err(format!("len of type {}", v.type_name())),
            },
            v => return Err(format!("len of type {}", v.type_name())),
        }))
    });
    m.add("index", |_, a| index(a));
    m.add("slice", |_, a| slice(a));
    m.add("print", |_, a| {
        crate::fmt::try_sprint(a)
            .map(Value::from)
            .map_err(|l| l.message("print"))
    });
    m.add("println", |_, a| {
        crate::fmt::try_sprintln(a)
            .map(Value::from)
            .map_err(|l| l.message("println"))
    });
    m.add("printf", |_, a| {
        let Some(f) = a.first() else {
            return Err("wrong number of args for printf: want at least 1 got 0".into());
        };
        let Value::String(f) = f else {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                f.type_name()
            ));
        };
        crate::fmt::try_sprintf(f, &a[1..])
            .map(Value::from)
            .map_err(|l| l.message("printf"))
    });
    m.add("html", |_, a| {
        Ok(Value::from(html_escape(&eval_args_string(a)?)))
    });
    m.add("js", |_, a| {
        Ok(Value::from(js_escape(&eval_args_string(a)?)))
    });
    m.add("urlquery", |_, a| {
        Ok(Value::from(query_escape(&eval_args_string(a)?)))
    });
    m.add("call", |_, a| {
        Err(format!(
            "non-function {} of type {}",
            a.first().map(|v| v.to_go_string()).unwrap_or_default(),
            a.first().map(|v| v.type_name()).unwrap_or_default()
        ))
    });
    m.add("include", |ctx: &mut Ctx<'_>, a: &[Value]| {
        want("include", a, 2)?;
        let Value::String(name) = &a[0] else {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                a[0].type_name()
            ));
        };
        ctx.include(name, &a[1])
            .map(Value::from)
            .map_err(|e| e.to_string())
    });
    m.add("tpl", |ctx: &mut Ctx<'_>, a: &[Value]| {
        want("tpl", a, 2)?;
        let Value::String(src) = &a[0] else {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                a[0].type_name()
            ));
        };
        ctx.tpl(src, &a[1])
            .map(Value::from)
            .map_err(|e| e.to_string())
    });
    m
}
