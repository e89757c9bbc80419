//! `--set` / `--set-string` parsing (Helm's pkg/strvals).

use crate::value::{Map, Val};

/// Helm's `strvals.MaxNestedNameLevel`: `a.b.c...` may nest this many names.
pub const MAX_NESTED_NAME_LEVEL: usize = 30;

/// Lists nested in lists (`a[0][0]...`), which Helm does not count: capstan bounds them as
/// deep as YAML values may nest ([`crate::yaml::MAX_DEPTH`]).
pub const MAX_NESTED_LIST_LEVEL: usize = crate::yaml::MAX_DEPTH;

/// Parses `a.b=c,d[0]=e` into `dest`. `as_string` keeps every value a string.
pub fn parse_into(s: &str, dest: &mut Map, as_string: bool) -> Result<(), String> {
    parse_with(s, dest, if as_string { Mode::Str } else { Mode::Typed })
}

/// How `--set`-style values are read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// `--set`: typed scalars, `{a,b}` lists.
    Typed,
    /// `--set-string`.
    Str,
    /// `--set-json`: each value is a JSON document.
    Json,
    /// `--set-literal`: the whole rest is the value, verbatim.
    Literal,
}

/// Parses `s` into `dest` in the given mode.
pub fn parse_with(s: &str, dest: &mut Map, mode: Mode) -> Result<(), String> {
    let chars: Vec<char> = s.chars().collect();
    let mut p = Parser {
        sc: &chars,
        pos: 0,
        st: mode == Mode::Str,
        mode,
        lists: 0,
    };
    while p.pos < p.sc.len() {
        p.key(dest, 0)?;
    }
    Ok(())
}

struct Parser<'a> {
    sc: &'a [char],
    pos: usize,
    st: bool,
    mode: Mode,
    /// Lists open (`[i][j]...`).
    lists: usize,
}

fn json_to_val(v: serde_json::Value) -> Val {
    match v {
        serde_json::Value::Null => Val::Null,
        serde_json::Value::Bool(b) => Val::Bool(b),
        serde_json::Value::Number(n) => Val::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Val::Str(s),
        serde_json::Value::Array(a) => Val::List(
            a.into_iter()
                .map(|e| capstan_gotemplate::with_stack(|| json_to_val(e)))
                .collect(),
        ),
        serde_json::Value::Object(o) => Val::Map(
            o.into_iter()
                .map(|(k, v)| (k, capstan_gotemplate::with_stack(|| json_to_val(v))))
                .collect(),
        ),
    }
}

fn typed_val(v: &str, st: bool) -> Val {
    if st {
        return Val::Str(v.to_string());
    }
    if v.eq_ignore_ascii_case("true") {
        return Val::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return Val::Bool(false);
    }
    if v.eq_ignore_ascii_case("null") {
        return Val::Null;
    }
    if v == "0" {
        return Val::Int(0);
    }
    if !v.is_empty() && !v.starts_with('0') {
        let body = v.strip_prefix(['+', '-']).unwrap_or(v);
        if !body.is_empty() && body.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(i) = v.parse::<i64>() {
                return Val::Int(i);
            }
        }
    }
    Val::Str(v.to_string())
}

impl<'a> Parser<'a> {
    /// Reads until one of `stops` (handling `\` escapes); returns (text, stop char or None at end).
    fn run_until(&mut self, stops: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        while self.pos < self.sc.len() {
            let c = self.sc[self.pos];
            self.pos += 1;
            if c == '\\' {
                if self.pos < self.sc.len() {
                    out.push(self.sc[self.pos]);
                    self.pos += 1;
                }
                continue;
            }
            if stops.contains(&c) {
                return (out, Some(c));
            }
            out.push(c);
        }
        (out, None)
    }

    /// Reads a value in Json/Literal mode (the caller handles the other modes).
    fn special_value(&mut self) -> Result<Val, String> {
        let rest: String = self.sc[self.pos..].iter().collect();
        if self.mode == Mode::Literal {
            self.pos = self.sc.len();
            return Ok(Val::Str(rest));
        }
        let mut de = serde_json::Deserializer::from_str(&rest).into_iter::<serde_json::Value>();
        let v = match de.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(format!("failed to parse json value: {e}")),
            None => return Err("failed to parse json value: unexpected end of JSON input".into()),
        };
        let used = rest[..de.byte_offset()].chars().count();
        self.pos += used;
        while self.pos < self.sc.len() && self.sc[self.pos].is_whitespace() {
            self.pos += 1;
        }
        if self.pos < self.sc.len() && self.sc[self.pos] == ',' {
            self.pos += 1;
        }
        Ok(json_to_val(v))
    }

    fn key(&mut self, data: &mut Map, depth: usize) -> Result<(), String> {
        if depth > MAX_NESTED_NAME_LEVEL {
            return Err(format!(
                "value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
            ));
        }
        let (k, stop) = self.run_until(&['=', '[', ',', '.']);
        match stop {
            None => {
                if k.is_empty() {
                    return Ok(());
                }
                Err(format!("key {k:?} has no value"))
            }
            Some('[') => {
                let (idx_s, _) = self.run_until(&[']']);
                let i: usize = idx_s
                    .trim()
                    .parse()
                    .map_err(|_| format!("failed to parse index: {idx_s}"))?;
                let list = match data.remove(&k) {
                    Some(Val::List(l)) => l,
                    _ => Vec::new(),
                };
                let list = capstan_gotemplate::with_stack(|| self.list_item(list, i, depth))?;
                data.insert(k, Val::List(list));
                Ok(())
            }
            Some('=') => {
                if matches!(self.mode, Mode::Json | Mode::Literal) {
                    let v = self.special_value()?;
                    data.insert(k, v);
                    return Ok(());
                }
                if self.pos < self.sc.len() && self.sc[self.pos] == '{' {
                    self.pos += 1;
                    let mut items = Vec::new();
                    loop {
                        let (v, stop) = self.run_until(&[',', '}']);
                        items.push(typed_val(&v, self.st));
                        match stop {
                            Some(',') => continue,
                            _ => break,
                        }
                    }
                    // consume a trailing ','
                    if self.pos < self.sc.len() && self.sc[self.pos] == ',' {
                        self.pos += 1;
                    }
                    data.insert(k, Val::List(items));
                    return Ok(());
                }
                let (v, _) = self.run_until(&[',']);
                data.insert(k, typed_val(&v, self.st));
                Ok(())
            }
            Some(',') => Err(format!("key {k:?} has no value (cannot end with ,)")),
            Some('.') => {
                let mut inner = match data.remove(&k) {
                    Some(Val::Map(m)) => m,
                    _ => Map::new(),
                };
                let r = capstan_gotemplate::with_stack(|| self.key(&mut inner, depth + 1));
                data.insert(k, Val::Map(inner));
                r
            }
            Some(_) => unreachable!(),
        }
    }

    fn list_item(
        &mut self,
        mut list: Vec<Val>,
        i: usize,
        depth: usize,
    ) -> Result<Vec<Val>, String> {
        if i > 65536 {
            return Err(format!(
                "index of {i} is greater than maximum supported index of 65536"
            ));
        }
        while list.len() <= i {
            list.push(Val::Null);
        }
        if self.pos >= self.sc.len() {
            return Err("unexpected end after index".into());
        }
        let c = self.sc[self.pos];
        self.pos += 1;
        match c {
            '=' => {
                if matches!(self.mode, Mode::Json | Mode::Literal) {
                    list[i] = self.special_value()?;
                } else {
                    let (v, _) = self.run_until(&[',']);
                    list[i] = typed_val(&v, self.st);
                }
            }
            '.' => {
                let mut inner = match std::mem::replace(&mut list[i], Val::Null) {
                    Val::Map(m) => m,
                    _ => Map::new(),
                };
                let r = capstan_gotemplate::with_stack(|| self.key(&mut inner, depth + 1));
                list[i] = Val::Map(inner);
                r?;
            }
            '[' => {
                let (idx_s, _) = self.run_until(&[']']);
                let j: usize = idx_s
                    .trim()
                    .parse()
                    .map_err(|_| format!("failed to parse index: {idx_s}"))?;
                let inner = match std::mem::replace(&mut list[i], Val::Null) {
                    Val::List(l) => l,
                    _ => Vec::new(),
                };
                if self.lists >= MAX_NESTED_LIST_LEVEL {
                    return Err(format!(
                        "list index nested level is greater than maximum supported nested level of {MAX_NESTED_LIST_LEVEL}"
                    ));
                }
                self.lists += 1;
                let r = capstan_gotemplate::with_stack(|| self.list_item(inner, j, depth));
                self.lists -= 1;
                list[i] = Val::List(r?);
            }
            other => return Err(format!("parse error: unexpected token {other:?}")),
        }
        Ok(list)
    }
}

/// Helm's `mergeMaps` for `-f` files: later files win, maps merge.
pub fn merge_maps(a: Map, b: Map) -> Map {
    let mut out = a;
    for (k, v) in b {
        if let Val::Map(vm) = v {
            if let Some(Val::Map(bv)) = out.remove(&k) {
                out.insert(
                    k,
                    Val::Map(capstan_gotemplate::with_stack(|| merge_maps(bv, vm))),
                );
                continue;
            }
            out.insert(k, Val::Map(vm));
            continue;
        }
        out.insert(k, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn set() {
        let mut m = Map::new();
        parse_into("a.b=1,c=true,d={x,y},e[1].f=z,g=0123,h=null", &mut m, false).unwrap();
        assert_eq!(m["a"].as_map().unwrap()["b"], Val::Int(1));
        assert_eq!(m["c"], Val::Bool(true));
        assert_eq!(
            m["d"],
            Val::List(vec![Val::Str("x".into()), Val::Str("y".into())])
        );
        assert_eq!(m["g"], Val::Str("0123".into()));
        assert_eq!(m["h"], Val::Null);
        let mut m = Map::new();
        parse_into("a=1", &mut m, true).unwrap();
        assert_eq!(m["a"], Val::Str("1".into()));
        let mut m = Map::new();
        parse_with(r#"a.b={"x":[1,2]},c="s""#, &mut m, Mode::Json).unwrap();
        assert_eq!(m["c"], Val::Str("s".into()));
        assert_eq!(
            m["a"].as_map().unwrap()["b"].as_map().unwrap()["x"],
            Val::List(vec![Val::Float(1.0), Val::Float(2.0)])
        );
        let mut m = Map::new();
        parse_with("a=x,y=z", &mut m, Mode::Literal).unwrap();
        assert_eq!(m["a"], Val::Str("x,y=z".into()));
    }
}
