//! `replacements`: copy a field of one resource into fields of others.

use capstan_yaml::{Mapping, Node};

use crate::accumulate::Selector;
use crate::error::{kerr, Result};
use crate::resource::{ResId, Resource};

/// Split a kyaml field path as kyaml's `SmarterPathSplitter` does: `.` separates parts
/// (`\.` escapes one), a part starting with `[` that spans separators runs to the part
/// ending in `]`; such a bracketed run keeps its brackets when it is a list entry
/// matcher (`[name=a.b]`) and loses them when it is a map key (`[cert-manager.io/x]`).
pub fn split_field_path(p: &str) -> Vec<String> {
    // kyaml's PathSplitter: split on '.', re-joining parts whose predecessor ends in '\'.
    let mut parts: Vec<String> = Vec::new();
    for piece in p.split('.') {
        match parts.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(piece);
            }
            _ => parts.push(piece.to_string()),
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let elem = &parts[i];
        if elem.starts_with('[') && !elem.ends_with(']') {
            let mut run = vec![elem.clone()];
            while i < parts.len() - 1 {
                i += 1;
                run.push(parts[i].clone());
                if parts[i].ends_with(']') {
                    break;
                }
            }
            let joined = run.join(".");
            if joined.contains('=') {
                out.push(joined);
            } else {
                out.push(joined.trim_matches(|c| c == '[' || c == ']').to_string());
            }
        } else {
            out.push(elem.clone());
        }
        i += 1;
    }
    out.retain(|s| !s.is_empty());
    out
}

/// [`split_field_path`], also splitting `containers[0]` / `ports[name=x]` written
/// without a dot into two parts (as `vars` field references are written).
pub fn split_field_path_loose(p: &str) -> Vec<String> {
    let mut res = Vec::new();
    for s in split_field_path(p) {
        if !s.starts_with('[') {
            if let Some(i) = s.find('[') {
                if s.ends_with(']') {
                    res.push(s[..i].to_string());
                    let inner = &s[i..];
                    if let Ok(n) = inner[1..inner.len() - 1].parse::<usize>() {
                        res.push(n.to_string());
                    } else {
                        res.push(inner.to_string());
                    }
                    continue;
                }
            }
        }
        res.push(s);
    }
    res
}

fn seg_matches(item: &Node, seg: &str) -> bool {
    let inner = &seg[1..seg.len() - 1];
    match inner.split_once('=') {
        Some((k, v)) => {
            if k.is_empty() {
                item.as_str() == Some(v)
            } else {
                item.get(k).and_then(|x| x.as_str()) == Some(v)
            }
        }
        None => false,
    }
}

/// Nodes at a field path (wildcards and selectors may give several).
pub fn lookup<'a>(n: &'a Node, path: &[String]) -> Vec<&'a Node> {
    let Some((seg, rest)) = path.split_first() else {
        return vec![n];
    };
    match n {
        Node::Mapping(m) => {
            if seg == "*" {
                return m
                    .entries
                    .iter()
                    .flat_map(|(_, v)| lookup(v, rest))
                    .collect();
            }
            m.get(seg).map(|v| lookup(v, rest)).unwrap_or_default()
        }
        Node::Sequence(s) => {
            if seg == "*" {
                return s.iter().flat_map(|v| lookup(v, rest)).collect();
            }
            if seg.starts_with('[') && seg.ends_with(']') {
                return s
                    .iter()
                    .filter(|it| seg_matches(it, seg))
                    .flat_map(|v| lookup(v, rest))
                    .collect();
            }
            if let Ok(i) = seg.parse::<usize>() {
                return s.get(i).map(|v| lookup(v, rest)).unwrap_or_default();
            }
            vec![]
        }
        _ => vec![],
    }
}

fn set_at(
    n: &mut Node,
    path: &[String],
    create: bool,
    f: &mut dyn FnMut(&mut Node) -> Result<()>,
) -> Result<usize> {
    let Some((seg, rest)) = path.split_first() else {
        f(n)?;
        return Ok(1);
    };
    if n.is_null() && create {
        *n = Node::mapping();
    }
    match n {
        Node::Mapping(m) => {
            if seg == "*" {
                let mut c = 0;
                for (_, v) in m.entries.iter_mut() {
                    c += set_at(v, rest, create, f)?;
                }
                return Ok(c);
            }
            if seg.starts_with('[') {
                return Ok(0);
            }
            if !m.contains_key(seg) {
                if !create {
                    return Ok(0);
                }
                let child = if rest.first().is_some_and(|s| s.starts_with('[')) {
                    Node::Sequence(vec![])
                } else {
                    Node::null()
                };
                m.insert(seg.clone(), child);
            }
            set_at(m.get_mut(seg).unwrap(), rest, create, f)
        }
        Node::Sequence(s) => {
            let mut c = 0;
            if seg == "*" {
                for v in s.iter_mut() {
                    c += set_at(v, rest, create, f)?;
                }
                return Ok(c);
            }
            if seg.starts_with('[') && seg.ends_with(']') {
                for v in s.iter_mut() {
                    if seg_matches(v, seg) {
                        c += set_at(v, rest, create, f)?;
                    }
                }
                if c == 0 && create {
                    let inner = &seg[1..seg.len() - 1];
                    if let Some((k, val)) = inner.split_once('=') {
                        let mut m = Mapping::new();
                        m.insert(k, Node::string(val));
                        s.push(Node::Mapping(m));
                        let last = s.last_mut().unwrap();
                        c += set_at(last, rest, create, f)?;
                    }
                }
                return Ok(c);
            }
            if let Ok(i) = seg.parse::<usize>() {
                if let Some(v) = s.get_mut(i) {
                    return set_at(v, rest, create, f);
                }
            }
            Ok(0)
        }
        _ => Ok(0),
    }
}

fn opt_delim(o: Option<&Node>) -> (Option<String>, i64) {
    let d = o.and_then(|o| o.str_at(&["delimiter"])).map(str::to_string);
    let i = o
        .and_then(|o| o.str_at(&["index"]))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (d, i)
}

fn selector_matches(sel: &Node, r: &Resource) -> Result<bool> {
    Selector::from_node(sel).map(|mut s| {
        s.any_id = true;
        s.matches(r)
    })
}

/// The id a source selector names (kustomize's `SourceSelector.ResId`).
fn selector_id(src: &Node) -> ResId {
    let f = |k: &str| src.str_at(&[k]).unwrap_or("").to_string();
    ResId {
        group: f("group"),
        version: f("version"),
        kind: f("kind"),
        name: f("name"),
        namespace: f("namespace"),
    }
}

/// kustomize's `SourceSelector.String()`: the id, then `:fieldPath` and
/// `:delimiter(index), create=bool` when given.
fn source_selector_string(src: &Node) -> String {
    let mut out = selector_id(src).to_string();
    if let Some(fp) = src.str_at(&["fieldPath"]).filter(|f| !f.is_empty()) {
        out.push(':');
        out.push_str(fp);
    }
    let opts = src.get("options");
    let delim = opts.and_then(|o| o.str_at(&["delimiter"])).unwrap_or("");
    let create = opts.and_then(|o| o.str_at(&["create"])) == Some("true");
    if !delim.is_empty() || create {
        let idx = opts.and_then(|o| o.str_at(&["index"])).unwrap_or("0");
        out.push_str(&format!(":{delim}({idx}), create={create}"));
    }
    out
}

/// kyaml's `IsNilOrEmpty`: null, or an empty map or list.
fn is_nil_or_empty(n: &Node) -> bool {
    match n {
        Node::Mapping(m) => m.entries.is_empty(),
        Node::Sequence(s) => s.is_empty(),
        other => other.is_null(),
    }
}

/// Apply one replacement.
pub fn apply(resources: &mut [Resource], rep: &Node) -> Result<()> {
    let src = rep
        .get("source")
        .ok_or_else(|| kerr!("replacement has no source"))?;
    let srcs: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| selector_matches(src, r).unwrap_or(false))
        .map(|(i, _)| i)
        .collect();
    if srcs.len() > 1 {
        return Err(kerr!(
            "multiple matches for selector {}",
            source_selector_string(src)
        ));
    }
    let Some(&si) = srcs.first() else {
        return Err(kerr!("nothing selected by {}", source_selector_string(src)));
    };
    let fp = src
        .str_at(&["fieldPath"])
        .filter(|f| !f.is_empty())
        .unwrap_or("metadata.name");
    let found = lookup(&resources[si].node, &split_field_path(fp));
    let Some(value) = found
        .first()
        .filter(|n| !is_nil_or_empty(n))
        .map(|n| (*n).clone())
    else {
        return Err(kerr!(
            "fieldPath `{fp}` is missing for replacement source {}",
            selector_id(src)
        ));
    };
    let (d, idx) = opt_delim(src.get("options"));
    let value = match (d, &value) {
        (Some(d), Node::Scalar(s)) => {
            let parts: Vec<&str> = s.value.split(d.as_str()).collect();
            if idx < 0 || idx as usize >= parts.len() {
                return Err(kerr!(
                    "options.index {idx} is out of bounds for value {}",
                    s.value
                ));
            }
            Node::string(parts[idx as usize])
        }
        _ => value,
    };
    for t in rep
        .get("targets")
        .and_then(|t| t.as_sequence())
        .cloned()
        .unwrap_or_default()
    {
        let sel = t.get("select").cloned().unwrap_or_else(Node::mapping);
        let rejects = t
            .get("reject")
            .and_then(|r| r.as_sequence())
            .cloned()
            .unwrap_or_default();
        let (td, tidx) = opt_delim(t.get("options"));
        let create = t.str_at(&["options", "create"]) == Some("true");
        for r in resources.iter_mut() {
            if !selector_matches(&sel, r)? {
                continue;
            }
            let mut rejected = false;
            for rj in &rejects {
                if selector_matches(rj, r)? {
                    rejected = true;
                }
            }
            if rejected {
                continue;
            }
            let (old_name, old_ns) = (r.name().to_string(), r.namespace().to_string());
            for fp in t
                .get("fieldPaths")
                .and_then(|f| f.as_sequence())
                .cloned()
                .unwrap_or_default()
            {
                let fp = fp.as_str().unwrap_or("").to_string();
                let path = split_field_path(&fp);
                let n = set_at(&mut r.node, &path, create, &mut |n| {
                    match (&td, &*n, &value) {
                        (Some(d), Node::Scalar(old), Node::Scalar(v)) => {
                            let mut parts: Vec<String> =
                                old.value.split(d.as_str()).map(str::to_string).collect();
                            if tidx >= 0 && (tidx as usize) < parts.len() {
                                parts[tidx as usize] = v.value.clone();
                            } else if tidx < 0 {
                                parts.insert(0, v.value.clone());
                            } else {
                                parts.push(v.value.clone());
                            }
                            *n = Node::string(parts.join(d));
                        }
                        _ => *n = value.clone(),
                    }
                    Ok(())
                })?;
                if n == 0 && !create {
                    return Err(kerr!(
                        "unable to find field \"{fp}\" in replacement target {}",
                        r.id()
                    ));
                }
            }
            r.note_name_change(&old_name, &old_ns);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarter_path_splitter_strips_brackets_of_map_keys_with_dots() {
        assert_eq!(
            split_field_path("metadata.annotations.[cert-manager.io/inject-ca-from]"),
            ["metadata", "annotations", "cert-manager.io/inject-ca-from"]
        );
    }

    #[test]
    fn smarter_path_splitter_keeps_list_matchers_with_dots() {
        assert_eq!(
            split_field_path("spec.containers.[name=com.foo.app].image"),
            ["spec", "containers", "[name=com.foo.app]", "image"]
        );
    }

    #[test]
    fn path_splitter_honours_escaped_dots() {
        assert_eq!(split_field_path(r"data.a\.b"), ["data", "a.b"]);
    }

    #[test]
    fn source_selector_string_as_kustomize_prints_it() {
        let src = capstan_yaml::parse_documents(
            "group: ''\nversion: v1\nkind: ConfigMap\nname: cm\nfieldPath: data.x\n",
            "t",
        )
        .unwrap()
        .remove(0);
        assert_eq!(
            source_selector_string(&src),
            "ConfigMap.v1.[noGrp]/cm.[noNs]:data.x"
        );
    }
}
