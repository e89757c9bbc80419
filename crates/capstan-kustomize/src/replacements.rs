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

/// One part of a replacement target path, as kyaml's `PathMatcher` reads it.
enum TargetSeg {
    /// A map key.
    Field(String),
    /// `3`: a list index (`len` appends when creating).
    Index(usize),
    /// `[name=regex]` (or `[=regex]` for a list of scalars): the elements whose field
    /// matches the regular expression anywhere (kyaml does not anchor it).
    Match {
        field: String,
        value: String,
        re: regex::Regex,
    },
    /// `*`: every element of a list.
    Every,
}

fn compile_target_path(fp: &str) -> Result<Vec<TargetSeg>> {
    split_field_path(fp)
        .into_iter()
        .map(|p| {
            if p == "*" {
                return Ok(TargetSeg::Every);
            }
            if !p.starts_with('-') && !p.starts_with('+') {
                if let Ok(i) = p.parse::<usize>() {
                    return Ok(TargetSeg::Index(i));
                }
            }
            if p.starts_with('[') && p.ends_with(']') && p.len() >= 2 {
                let inner = &p[1..p.len() - 1];
                let Some((field, value)) = inner.split_once('=') else {
                    return Err(kerr!(
                        "unable to find field \"{fp}\" in replacement target: list path element \
                         must contain fieldName=fieldValue for element to match"
                    ));
                };
                let re = regex::Regex::new(value).map_err(|e| {
                    kerr!(
                        "unable to find field \"{fp}\" in replacement target: invalid regular \
                         expression `{value}` in `{p}`: {e}"
                    )
                })?;
                return Ok(TargetSeg::Match {
                    field: field.to_string(),
                    value: value.to_string(),
                    re,
                });
            }
            Ok(TargetSeg::Field(p))
        })
        .collect()
}

/// A leaf created by `options.create`: an untagged, empty scalar (kyaml creates a node
/// of the source's kind with no tag and no value).
fn created_leaf(value: &Node) -> Node {
    match value {
        Node::Mapping(_) => Node::mapping(),
        Node::Sequence(_) => Node::Sequence(vec![]),
        Node::Scalar(_) => Node::Scalar(capstan_yaml::Scalar {
            value: String::new(),
            style: capstan_yaml::ScalarStyle::Any,
            tag: capstan_yaml::Tag::Custom(CREATED_TAG.into()),
        }),
    }
}

/// Marks a scalar created by `options.create` until its value is set (its tag is then
/// resolved from the text, as an untagged YAML scalar is).
const CREATED_TAG: &str = "!capstan-created";

/// The kind of a node to create for the path part after `next` (kyaml's
/// `getPathPartKind`): a list before an index or `[..]`, the source's kind at the end,
/// a map otherwise.
fn created_child(next: Option<&TargetSeg>, value: &Node) -> Node {
    match next {
        Some(TargetSeg::Index(_)) | Some(TargetSeg::Match { .. }) => Node::Sequence(vec![]),
        None => created_leaf(value),
        Some(_) => Node::mapping(),
    }
}

/// Why a target path could not be walked: the path does not fit the resource, or
/// setting the value failed.
enum WalkError {
    Path(String),
    Set(crate::error::KustomizeError),
}

fn wrong_kind(expected: &str, n: &Node) -> WalkError {
    let got = match n {
        Node::Mapping(_) => "MappingNode",
        Node::Sequence(_) => "SequenceNode",
        Node::Scalar(_) => "ScalarNode",
    };
    WalkError::Path(format!(
        "wrong node kind: expected {expected} but got {got}"
    ))
}

/// Walk a target path as kyaml's `PathMatcher` (with `Create` when `create`), calling
/// `f` on every matched node. Returns how many nodes matched; a structural mismatch
/// (`*` or an index on a map, an index past the end) is an error, as in kustomize.
fn walk_target(
    n: &mut Node,
    path: &[TargetSeg],
    create: bool,
    value: &Node,
    f: &mut dyn FnMut(&mut Node) -> Result<()>,
) -> std::result::Result<usize, WalkError> {
    let Some((seg, rest)) = path.split_first() else {
        f(n).map_err(WalkError::Set)?;
        return Ok(1);
    };
    // kyaml appends what it creates under a null node to that node's content, which is
    // never printed: the path counts as found and nothing changes.
    if n.is_null() && create && !matches!(seg, TargetSeg::Every) {
        let mut scratch = match seg {
            TargetSeg::Field(_) => Node::mapping(),
            _ => Node::Sequence(vec![]),
        };
        return walk_target(&mut scratch, path, create, value, f);
    }
    match seg {
        TargetSeg::Field(name) => match n {
            Node::Mapping(m) => {
                if !m.contains_key(name) {
                    if !create {
                        return Ok(0);
                    }
                    m.insert(name.clone(), created_child(rest.first(), value));
                }
                walk_target(m.get_mut(name).unwrap(), rest, create, value, f)
            }
            _ => Ok(0),
        },
        TargetSeg::Every => match n {
            Node::Sequence(items) => {
                let mut c = 0;
                for v in items.iter_mut() {
                    c += walk_target(v, rest, create, value, f)?;
                }
                Ok(c)
            }
            Node::Scalar(s) if s.is_null() => Ok(0),
            other => Err(wrong_kind("SequenceNode", other)),
        },
        TargetSeg::Index(i) => match n {
            Node::Sequence(items) => {
                if *i == items.len() && create {
                    items.push(created_child(rest.first(), value));
                }
                if *i >= items.len() {
                    return Err(WalkError::Path(format!(
                        "index {i} specified but only {} elements found",
                        items.len()
                    )));
                }
                walk_target(&mut items[*i], rest, create, value, f)
            }
            Node::Scalar(s) if s.is_null() => Err(WalkError::Path(format!(
                "index {i} specified but only 0 elements found"
            ))),
            other => Err(wrong_kind("SequenceNode", other)),
        },
        TargetSeg::Match {
            field,
            value: want,
            re,
        } => {
            let items = match n {
                Node::Sequence(items) => items,
                Node::Scalar(s) if s.is_null() => return Ok(0),
                other => return Err(wrong_kind("SequenceNode", other)),
            };
            let matches = |item: &Node| -> bool {
                let text = if field.is_empty() {
                    item.as_str()
                } else {
                    item.get(field).and_then(|x| x.as_str())
                };
                text.is_some_and(|t| re.is_match(t.trim()))
            };
            let mut c = 0;
            let mut any = false;
            for v in items.iter_mut() {
                if matches(v) {
                    any = true;
                    c += walk_target(v, rest, create, value, f)?;
                }
            }
            if !any && create {
                let elem = if field.is_empty() {
                    Node::plain(want.clone())
                } else {
                    let mut m = Mapping::new();
                    m.insert(field.clone(), Node::plain(want.clone()));
                    Node::Mapping(m)
                };
                items.push(elem);
                let last = items.last_mut().unwrap();
                if matches(last) {
                    c += walk_target(last, rest, create, value, f)?;
                }
            }
            Ok(c)
        }
    }
}

/// kustomize's `setFieldValue`: a scalar target keeps its tag and takes the text of the
/// value (so `replicas: 1` stays a number and a string stays a string); other targets
/// become a copy of the value. A created scalar is untagged: its type is read from the
/// text (an empty value reads as null). A text the kept tag cannot hold is the error
/// kustomize gives when it reads the resource back.
fn set_field_value(target: &mut Node, value: &Node) -> Result<()> {
    use capstan_yaml::Tag;
    let Node::Scalar(t) = target else {
        *target = value.clone();
        return Ok(());
    };
    let text = match value {
        Node::Scalar(v) => v.value.clone(),
        _ => String::new(),
    };
    if t.tag == Tag::Custom(CREATED_TAG.into()) {
        *target = Node::plain(text);
        return Ok(());
    }
    let resolved = capstan_yaml::resolve_plain(&text);
    let ok = match &t.tag {
        Tag::Str | Tag::Custom(_) => true,
        Tag::Float => matches!(resolved, Tag::Float | Tag::Int),
        tag => *tag == resolved,
    };
    if !ok {
        return Err(kerr!(
            "yaml: cannot decode {} `{text}` as a {}",
            resolved.as_str(),
            t.tag.as_str()
        ));
    }
    t.value = text;
    Ok(())
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
    let (Some(src), Some(_)) = (rep.get("source"), rep.get("targets")) else {
        return Err(kerr!(
            "replacements must specify a source and at least one target"
        ));
    };
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
    let value = match (d.filter(|d| !d.is_empty()), value) {
        (None, v) => v,
        (Some(d), Node::Scalar(mut s)) => {
            let parts: Vec<&str> = s.value.split(d.as_str()).collect();
            if idx < 0 || idx as usize >= parts.len() {
                return Err(kerr!(
                    "options.index {idx} is out of bounds for value {}",
                    s.value
                ));
            }
            // The source keeps its tag; only its text is cut.
            s.value = parts[idx as usize].to_string();
            Node::Scalar(s)
        }
        (Some(_), _) => return Err(kerr!("delimiter option can only be used with scalar nodes")),
    };
    for t in rep
        .get("targets")
        .and_then(|t| t.as_sequence())
        .cloned()
        .unwrap_or_default()
    {
        let Some(sel) = t.get("select").filter(|s| !s.is_null()).cloned() else {
            return Err(kerr!("target must specify resources to select"));
        };
        let rejects = t
            .get("reject")
            .and_then(|r| r.as_sequence())
            .cloned()
            .unwrap_or_default();
        let (td, tidx) = opt_delim(t.get("options"));
        let td = td.filter(|d| !d.is_empty());
        let create = t.str_at(&["options", "create"]) == Some("true");
        let mut field_paths: Vec<String> = t
            .get("fieldPaths")
            .and_then(|f| f.as_sequence())
            .map(|s| {
                s.iter()
                    .map(|p| p.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        if field_paths.is_empty() {
            field_paths.push("metadata.name".to_string());
        }
        let compiled: Vec<(String, Vec<TargetSeg>)> = field_paths
            .into_iter()
            .map(|fp| compile_target_path(&fp).map(|c| (fp, c)))
            .collect::<Result<_>>()?;
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
            for (fp, path) in &compiled {
                // kustomize rebuilds `metadata.annotations` from its entries at the end of
                // every build, so what is created under a null one is kept (unlike any
                // other null map).
                if create
                    && matches!(path.as_slice(), [TargetSeg::Field(a), TargetSeg::Field(b), _, ..]
                        if a == "metadata" && b == "annotations")
                {
                    if let Some(Node::Mapping(meta)) = r.node.get_mut("metadata") {
                        if meta.get("annotations").is_some_and(Node::is_null) {
                            meta.insert("annotations", Node::mapping());
                        }
                    }
                }
                let what = if create {
                    "unable to find or create field"
                } else {
                    "unable to find field"
                };
                let n = walk_target(&mut r.node, path, create, &value, &mut |n| {
                    let v = match (&td, &*n, &value) {
                        (Some(_), Node::Mapping(_) | Node::Sequence(_), _) => {
                            return Err(kerr!(
                                "delimiter option can only be used with scalar nodes"
                            ))
                        }
                        (Some(d), Node::Scalar(old), _) => {
                            let text = match &value {
                                Node::Scalar(v) => v.value.clone(),
                                _ => String::new(),
                            };
                            let mut parts: Vec<String> =
                                old.value.split(d.as_str()).map(str::to_string).collect();
                            if tidx < 0 {
                                parts.insert(0, text);
                            } else if (tidx as usize) < parts.len() {
                                parts[tidx as usize] = text;
                            } else {
                                parts.push(text);
                            }
                            let mut v = value.clone();
                            if let Node::Scalar(s) = &mut v {
                                s.value = parts.join(d);
                            } else {
                                v = Node::string(parts.join(d));
                            }
                            v
                        }
                        _ => value.clone(),
                    };
                    set_field_value(n, &v)
                })
                .map_err(|e| match e {
                    WalkError::Path(e) => kerr!("{what} \"{fp}\" in replacement target: {e}"),
                    WalkError::Set(e) => e,
                })?;
                if n == 0 {
                    return Err(kerr!("{what} \"{fp}\" in replacement target {}", r.id()));
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
