//! `vars`: `$(NAME)` substitution in the varReference fields.

use capstan_yaml::Node;

use crate::accumulate::Acc;
use crate::error::{kerr, Result};
use crate::fieldspec::apply_path_leaf;
use crate::replacements::{lookup, split_field_path_loose};
use crate::resource::ResId;

/// A var's value as kustomize reads it (`GetFieldValue`): a scalar keeps its YAML type; a
/// map or list is not a primitive, so references to it stay as written.
#[derive(Debug, Clone, PartialEq)]
enum VarValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Complex,
}

impl VarValue {
    /// Go's `fmt.Sprintf("%v", v)`, for a reference inside a longer string.
    fn to_go_string(&self, name: &str) -> String {
        match self {
            VarValue::Str(s) => s.clone(),
            VarValue::Int(i) => i.to_string(),
            VarValue::Float(f) => go_float_v(*f),
            VarValue::Bool(b) => b.to_string(),
            VarValue::Complex => format!("$({name})"),
        }
    }
}

/// Go's `%v` of a float64 (strconv's shortest `g`: exponent form below 1e-4 and from 1e+06).
fn go_float_v(f: f64) -> String {
    capstan_gotemplate::fmt::format_float(f, 'g', -1)
}

/// kustomize's expansion of `$(NAME)` references (Kubernetes' `$(VAR)` syntax): `$$` is an
/// escaped `$`, an unknown or non-primitive var stays as written, an unterminated `$(` is
/// kept. A value that is exactly one reference takes the var's type.
fn expand(input: &str, vals: &[(String, VarValue)], used: &mut Vec<String>) -> VarValue {
    let b = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(j) => {
                        let name = &rest[1..1 + j];
                        let mapped = match vals.iter().find(|(n, _)| n == name) {
                            Some((_, v)) if *v != VarValue::Complex => {
                                used.push(name.to_string());
                                v.clone()
                            }
                            _ => VarValue::Str(format!("$({name})")),
                        };
                        if input.len() == name.len() + 3 {
                            return mapped;
                        }
                        out.push_str(&mapped.to_go_string(name));
                        j + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // `$` and the next byte are copied as they are (a multi-byte character
                    // is completed by the checkpoint copy below).
                    let ch = rest.chars().next().map(char::len_utf8).unwrap_or(1);
                    out.push('$');
                    out.push_str(&rest[..ch]);
                    ch
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    VarValue::Str(out)
}

/// kustomize's `updateNodeValue`: the scalar takes the expanded value and its type.
fn set_scalar(s: &mut capstan_yaml::Scalar, v: VarValue) {
    use capstan_yaml::{Scalar, Tag};
    *s = match v {
        VarValue::Int(i) => Scalar {
            tag: Tag::Int,
            ..Scalar::string(i.to_string())
        },
        VarValue::Bool(b) => Scalar {
            tag: Tag::Bool,
            ..Scalar::string(b.to_string())
        },
        // strconv.FormatFloat(v, 'f', -1, 64): no exponent.
        VarValue::Float(f) => Scalar {
            tag: Tag::Float,
            ..Scalar::string(if f.is_finite() {
                format!("{f}")
            } else {
                go_float_v(f)
            })
        },
        VarValue::Str(x) => Scalar::string(x),
        VarValue::Complex => return,
    };
}

fn is_string(n: &Node) -> bool {
    matches!(n, Node::Scalar(s) if s.tag == capstan_yaml::Tag::Str)
}

fn ns_eq(a: &str, b: &str) -> bool {
    let a = if a.is_empty() { "default" } else { a };
    let b = if b.is_empty() { "default" } else { b };
    a == b
}

/// Rename the keys of mapping `n` to the names in `canon` they equal ignoring ASCII case
/// (encoding/json, which sigs.k8s.io/yaml decodes through, matches fields so).
fn canonical_keys(n: &mut Node, canon: &[&str]) {
    if let Some(m) = n.as_mapping_mut() {
        for (k, _) in m.entries.iter_mut() {
            if let Some(c) = canon.iter().find(|c| c.eq_ignore_ascii_case(k)) {
                if k != c {
                    *k = c.to_string();
                }
            }
        }
    }
}

/// A `vars` entry with kustomize's field names (`objref`, `fieldref.fieldPath`, ...),
/// whatever their case in the file.
pub fn canonical_var(v: &Node) -> Node {
    let mut v = v.clone();
    canonical_keys(&mut v, &["name", "objref", "fieldref"]);
    if let Some(m) = v.as_mapping_mut() {
        if let Some(o) = m.get_mut("objref") {
            canonical_keys(
                o,
                &[
                    "kind",
                    "name",
                    "namespace",
                    "apiVersion",
                    "group",
                    "version",
                ],
            );
        }
        if let Some(f) = m.get_mut("fieldref") {
            canonical_keys(f, &["fieldPath"]);
        }
    }
    v
}

/// kustomize's `MergeVars`: bind a var to the one resource its objref names (by any of
/// its ids) at the level that declares it.
pub fn bind(acc: &mut Acc, v: &Node) -> Result<()> {
    let name = v.str_at(&["name"]).unwrap_or("").to_string();
    let kind = v.str_at(&["objref", "kind"]).unwrap_or("");
    let oname = v.str_at(&["objref", "name"]).unwrap_or("");
    let av = v.str_at(&["objref", "apiVersion"]).unwrap_or("");
    let ns = v.str_at(&["objref", "namespace"]).unwrap_or("");
    let (group, version) = crate::resource::split_api_version(av);
    let (group, version) = match (
        v.str_at(&["objref", "group"]),
        v.str_at(&["objref", "version"]),
    ) {
        (Some(g), _) if av.is_empty() => (
            g.to_string(),
            v.str_at(&["objref", "version"]).unwrap_or("").to_string(),
        ),
        (None, Some(ver)) if av.is_empty() => (String::new(), ver.to_string()),
        _ => (group, version),
    };
    let with_ns = !ns.is_empty() || crate::resource::is_cluster_scoped(kind);
    let matched: Vec<usize> = acc
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let (rg, rv) = crate::resource::split_api_version(r.api_version());
            (r.kind() == kind || r.orig_kind == kind)
                && rg == group
                && (version.is_empty() || rv.is_empty() || rv == version)
                && r.all_names()
                    .iter()
                    .any(|(n, rns)| n == oname && (!with_ns || ns_eq(rns, ns)))
        })
        .map(|(i, _)| i)
        .collect();
    if matched.len() > 1 {
        let id = ResId {
            group,
            version,
            kind: kind.into(),
            name: oname.into(),
            namespace: ns.into(),
        };
        return Err(kerr!(
            "found {} resId matches for var {{{name} {id} }} (unable to disambiguate)",
            matched.len()
        ));
    }
    if let Some(&i) = matched.first() {
        acc.resources[i].ref_vars.push(name);
    }
    Ok(())
}

pub fn resolve(acc: &mut Acc) -> Result<()> {
    if acc.vars.is_empty() {
        return Ok(());
    }
    let mut vals: Vec<(String, VarValue)> = Vec::new();
    for v in &acc.vars {
        let name = v.str_at(&["name"]).unwrap_or("").to_string();
        let Some(res) = acc.resources.iter().find(|r| r.ref_vars.contains(&name)) else {
            return Err(kerr!(
                "var '{name}' cannot be mapped to a field in the set of known resources"
            ));
        };
        let fp = v
            .str_at(&["fieldref", "fieldPath"])
            .unwrap_or("metadata.name");
        let path = split_field_path_loose(fp);
        let not_found =
            || kerr!("field specified in var '{name}' ({fp}) not found in corresponding resource");
        let val = match lookup(&res.node, &path).first() {
            None => return Err(not_found()),
            Some(Node::Scalar(s)) => match s.tag {
                capstan_yaml::Tag::Int => VarValue::Int(go_atoi(&s.value).ok_or_else(not_found)?),
                capstan_yaml::Tag::Float => {
                    VarValue::Float(go_parse_float(&s.value).ok_or_else(not_found)?)
                }
                capstan_yaml::Tag::Bool => {
                    VarValue::Bool(go_parse_bool(&s.value).ok_or_else(not_found)?)
                }
                _ => VarValue::Str(s.value.clone()),
            },
            Some(_) => VarValue::Complex,
        };
        vals.push((name, val));
    }
    let fss = acc.config.var_reference.clone();
    let mut used = Vec::new();
    for r in acc.resources.iter_mut() {
        for fs in &fss {
            if !fs.matches(r) {
                continue;
            }
            apply_path_leaf(&mut r.node, &fs.path, &mut |n| {
                set_var_field(n, &vals, &mut used)
            })?;
        }
    }
    Ok(())
}

/// kustomize's refvar filter on the node a varReference field spec reaches: a string scalar
/// is expanded; in a map, each string value (one level, keys must be strings); in a list,
/// every item, which must be a string.
fn set_var_field(n: &mut Node, vals: &[(String, VarValue)], used: &mut Vec<String>) -> Result<()> {
    match n {
        Node::Scalar(s) if s.tag == capstan_yaml::Tag::Str => {
            let v = expand(&s.value, vals, used);
            set_scalar(s, v);
        }
        Node::Scalar(_) => {}
        Node::Mapping(m) => {
            for (_, v) in m.entries.iter_mut() {
                if let Node::Scalar(s) = v {
                    if s.tag == capstan_yaml::Tag::Str {
                        let x = expand(&s.value, vals, used);
                        set_scalar(s, x);
                    }
                }
            }
        }
        Node::Sequence(items) => {
            for it in items.iter_mut() {
                if !is_string(it) {
                    return Err(kerr!("invalid value type expect a string"));
                }
                if let Node::Scalar(s) = it {
                    let x = expand(&s.value, vals, used);
                    set_scalar(s, x);
                }
            }
        }
    }
    Ok(())
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

/// Go's `strconv.ParseFloat` for the forms a YAML float takes (`.inf` is not one of Go's).
fn go_parse_float(s: &str) -> Option<f64> {
    if s.contains('_') {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
