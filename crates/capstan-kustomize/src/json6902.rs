//! JSON patch (RFC 6902) over nodes.

use capstan_yaml::Node;

use crate::error::{kerr, Result};

/// Parse the operations of a JSON or YAML patch document.
pub fn parse_ops(text: &str, source: &str) -> Result<Vec<Node>> {
    // kustomize converts JSON patches with sigs.k8s.io/yaml (not strict): a repeated key
    // in an operation replaces the earlier value.
    let docs = capstan_yaml::parse_documents_last_key_wins(text, source)?;
    let mut ops = Vec::new();
    for d in docs {
        match d {
            Node::Sequence(s) => ops.extend(s),
            n if n.is_null() => {}
            _ => return Err(kerr!("{source}: a JSON patch must be a list of operations")),
        }
    }
    Ok(ops)
}

fn tokens(path: &str) -> Result<Vec<String>> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(kerr!("invalid JSON pointer '{path}'"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get_mut<'a>(n: &'a mut Node, toks: &[String]) -> Option<&'a mut Node> {
    let mut cur = n;
    for t in toks {
        cur = match cur {
            Node::Mapping(m) => m.get_mut(t)?,
            Node::Sequence(s) => {
                let i: usize = t.parse().ok()?;
                s.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn remove(n: &mut Node, toks: &[String], path: &str) -> Result<Node> {
    let (last, parent) = toks
        .split_last()
        .ok_or_else(|| kerr!("cannot remove the root"))?;
    let p = get_mut(n, parent)
        .ok_or_else(|| kerr!("unable to remove nonexistent key: {path}: missing value"))?;
    match p {
        Node::Mapping(m) => m
            .remove(last)
            .ok_or_else(|| kerr!("unable to remove nonexistent key: {last}: missing value")),
        Node::Sequence(s) => {
            let i: usize = last
                .parse()
                .map_err(|_| kerr!("invalid index '{last}' in {path}"))?;
            if i >= s.len() {
                return Err(kerr!("unable to remove nonexistent index {i} in {path}"));
            }
            Ok(s.remove(i))
        }
        _ => Err(kerr!("unable to remove {path}: parent is not a container")),
    }
}

fn add(n: &mut Node, toks: &[String], v: Node, path: &str, replace: bool) -> Result<()> {
    let Some((last, parent)) = toks.split_last() else {
        *n = v;
        return Ok(());
    };
    let p = get_mut(n, parent)
        .ok_or_else(|| kerr!("doc is missing path: \"{path}\": missing value"))?;
    match p {
        Node::Mapping(m) => {
            // evanphx/json-patch v5 as kustomize 5.5 uses it: `replace` of a key missing
            // from an object that exists sets it (partialDoc.get does not fail there).
            m.insert(last.clone(), v);
            Ok(())
        }
        Node::Sequence(s) => {
            if last == "-" {
                s.push(v);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| kerr!("invalid index '{last}' in {path}"))?;
            if replace {
                let slot = s.get_mut(i).ok_or_else(|| {
                    kerr!("replace operation does not apply: doc is missing key: {path}")
                })?;
                *slot = v;
            } else {
                if i > s.len() {
                    return Err(kerr!(
                        "add operation does not apply: index {i} out of bounds in {path}"
                    ));
                }
                s.insert(i, v);
            }
            Ok(())
        }
        _ => {
            if replace {
                return Err(kerr!(
                    "replace operation does not apply: doc is missing path: {path}"
                ));
            }
            Err(kerr!(
                "add operation does not apply: doc is missing path: {path}"
            ))
        }
    }
}

/// Apply operations in order.
pub fn apply(doc: &mut Node, ops: &[Node]) -> Result<()> {
    for op in ops {
        let kind = op
            .str_at(&["op"])
            .ok_or_else(|| kerr!("JSON patch operation without 'op'"))?;
        let path = op.str_at(&["path"]).unwrap_or("");
        let toks = tokens(path)?;
        let value = || op.get("value").cloned().unwrap_or_else(Node::null);
        match kind {
            "add" => add(doc, &toks, value(), path, false)?,
            "replace" => add(doc, &toks, value(), path, true)?,
            "remove" => {
                remove(doc, &toks, path)?;
            }
            "move" | "copy" => {
                let from = op.str_at(&["from"]).unwrap_or("");
                let ftoks = tokens(from)?;
                let v = if kind == "move" {
                    remove(doc, &ftoks, from)?
                } else {
                    get_mut(doc, &ftoks)
                        .cloned()
                        .ok_or_else(|| kerr!("copy from missing path {from}"))?
                };
                add(doc, &toks, v, path, false)?;
            }
            "test" => {
                let cur = get_mut(doc, &toks).cloned();
                let want = value();
                let eq =
                    cur.as_ref().map(capstan_yaml::to_json) == Some(capstan_yaml::to_json(&want));
                if !eq {
                    return Err(kerr!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(kerr!("unexpected kind of JSON patch operation: {other}")),
        }
    }
    Ok(())
}
