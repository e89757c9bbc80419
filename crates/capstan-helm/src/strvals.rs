//! `--set` / `--set-string` parsing (Helm's pkg/strvals).

use crate::value::{Map, Val};

/// Parses `a.b=c,d[0]=e` into `dest`. `as_string` keeps every value a string.
pub fn parse_into(s: &str, dest: &mut Map, as_string: bool) -> Result<(), String> {
    let chars: Vec<char> = s.chars().collect();
    let mut p = Parser {
        sc: &chars,
        pos: 0,
        st: as_string,
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

    fn key(&mut self, data: &mut Map, depth: usize) -> Result<(), String> {
        if depth > 10_000 {
            return Err(
                "value name nested level is greater than maximum supported nested level of 10000"
                    .into(),
            );
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
                let list = self.list_item(list, i, depth)?;
                data.insert(k, Val::List(list));
                Ok(())
            }
            Some('=') => {
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
                let r = self.key(&mut inner, depth + 1);
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
                let (v, _) = self.run_until(&[',']);
                list[i] = typed_val(&v, self.st);
            }
            '.' => {
                let mut inner = match std::mem::replace(&mut list[i], Val::Null) {
                    Val::Map(m) => m,
                    _ => Map::new(),
                };
                let r = self.key(&mut inner, depth + 1);
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
                list[i] = Val::List(self.list_item(inner, j, depth)?);
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
                out.insert(k, Val::Map(merge_maps(bv, vm)));
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
    }
}
