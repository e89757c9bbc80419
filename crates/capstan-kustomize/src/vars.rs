//! `vars`: `$(NAME)` substitution in the varReference fields.

use capstan_yaml::Node;

use crate::accumulate::Acc;
use crate::error::{kerr, Result};
use crate::fieldspec::apply_path;
use crate::replacements::{lookup, split_field_path_loose};
use crate::resource::ResId;

fn substitute(s: &str, vals: &[(String, String)], used: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                let name = &after[..j];
                match vals.iter().find(|(n, _)| n == name) {
                    Some((_, v)) => {
                        out.push_str(v);
                        used.push(name.to_string());
                    }
                    None => {
                        out.push_str(&rest[i..i + 2 + j + 1]);
                    }
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    // $$ escapes are left as they are.
    out
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
    let mut vals = Vec::new();
    let mut typed: Vec<(String, capstan_yaml::Scalar)> = Vec::new();
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
        let val = lookup(&res.node, &path).first().map(|n| match n {
            Node::Scalar(s) => ((*s).clone(), s.value.clone()),
            other => (
                capstan_yaml::Scalar::string(""),
                capstan_yaml::emit_document(other).trim_end().to_string(),
            ),
        });
        let Some(val) = val else {
            return Err(kerr!(
                "field specified in var '{name}' ({fp}) not found in corresponding resource"
            ));
        };
        typed.push((name.clone(), val.0));
        vals.push((name, val.1));
    }
    let fss = acc.config.var_reference.clone();
    let mut used = Vec::new();
    for r in acc.resources.iter_mut() {
        for fs in &fss {
            if !fs.matches(r) {
                continue;
            }
            apply_path(&mut r.node, &fs.path, false, &mut |n| {
                walk(n, &vals, &typed, &mut used);
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn walk(
    n: &mut Node,
    vals: &[(String, String)],
    typed: &[(String, capstan_yaml::Scalar)],
    used: &mut Vec<String>,
) {
    match n {
        Node::Scalar(s)
            if s.tag == capstan_yaml::Tag::Str
                && s.value.starts_with("$(")
                && s.value.ends_with(')')
                && typed
                    .iter()
                    .any(|(k, _)| s.value[2..s.value.len() - 1] == **k) =>
        {
            let name = s.value[2..s.value.len() - 1].to_string();
            let t = typed.iter().find(|(k, _)| *k == name).unwrap().1.clone();
            used.push(name);
            *n = Node::Scalar(t);
        }
        Node::Scalar(s) if s.tag == capstan_yaml::Tag::Str && s.value.contains("$(") => {
            let new = substitute(&s.value, vals, used);
            // A whole-value reference takes the referenced value as a string.
            *n = Node::string(new);
        }
        Node::Mapping(m) => m
            .entries
            .iter_mut()
            .for_each(|(_, v)| walk(v, vals, typed, used)),
        Node::Sequence(s) => s.iter_mut().for_each(|v| walk(v, vals, typed, used)),
        _ => {}
    }
}
