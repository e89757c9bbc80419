//! ApplicationSets: generators and templates, as Argo CD's ApplicationSet controller
//! (`applicationset/generators`, `applicationset/utils`) produces Applications.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use capstan_vfs::FileSystem;
use serde_json::{json, Map, Value};

use crate::error::{ArgoError, ErrorKind};
use crate::template::{self, sanitize_name, Dialect};
use crate::{Cluster, Options, IN_CLUSTER_SERVER};

type Params = Map<String, Value>;

/// Generators that need live APIs, refused by name.
const LIVE_GENERATORS: &[&str] = &[
    "pullRequest",
    "scmProvider",
    "clusterDecisionResource",
    "plugin",
];
const KNOWN_GENERATORS: &[&str] = &["list", "clusters", "git", "matrix", "merge"];
const MAX_NESTING: usize = 8;

fn err(kind: ErrorKind, field: impl Into<String>, msg: impl Into<String>) -> ArgoError {
    ArgoError::new(kind, field, msg)
}

/// The Applications an ApplicationSet generates, in generator order.
pub fn expand(
    fs: &dyn FileSystem,
    appset: &Value,
    opts: &Options,
) -> Result<Vec<Value>, ArgoError> {
    let spec = appset.get("spec").cloned().unwrap_or(Value::Null);
    let dialect = Dialect::from_spec(&spec)
        .map_err(|e| err(ErrorKind::Template, "spec.goTemplateOptions", e))?;
    let base = spec.get("template").cloned().unwrap_or(json!({}));
    let gens = spec
        .get("generators")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if gens.is_empty() {
        return Err(err(
            ErrorKind::BadGenerator,
            "spec.generators",
            "the ApplicationSet has no generators",
        ));
    }
    let appset_ns = appset
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let preserve = appset
        .pointer("/spec/syncPolicy/preserveResourcesOnDeletion")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut apps = Vec::new();
    let mut names = HashSet::new();
    for (i, g) in gens.iter().enumerate() {
        let field = format!("spec.generators[{i}]");
        let (params, gen_template) = generate(fs, g, &field, &dialect, opts, None, 0)?;
        let tmpl = match gen_template {
            Some(t) => merge_template(&t, &base),
            None => base.clone(),
        };
        for p in params {
            let mut app = if p.is_empty() {
                tmpl.clone()
            } else {
                template::render_value(&tmpl, &p, &dialect)
                    .map_err(|e| err(ErrorKind::Template, "spec.template", e))?
            };
            if let Some(patch) = spec.get("templatePatch").and_then(Value::as_str) {
                if dialect.go_template {
                    let text = template::replace(patch, &p, &dialect)
                        .map_err(|e| err(ErrorKind::Template, "spec.templatePatch", e))?;
                    let docs = capstan_yaml::parse_documents_last_key_wins(&text, "templatePatch")
                        .map_err(|e| {
                            err(ErrorKind::Template, "spec.templatePatch", e.to_string())
                        })?;
                    if let Some(d) = docs.first() {
                        let patch = capstan_yaml::to_json(d);
                        if !patch.is_null() {
                            merge_patch(&mut app, &patch);
                        }
                    }
                }
            }
            let mut md = app
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let name = md
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                return Err(err(
                    ErrorKind::BadInput,
                    "spec.template.metadata.name",
                    "a generated Application has no name",
                ));
            }
            if !names.insert(name.clone()) {
                return Err(err(
                    ErrorKind::DuplicateName,
                    "spec.template.metadata.name",
                    format!("the ApplicationSet generates two Applications named {name:?}"),
                )
                .with_hint("make the name depend on a parameter that differs between the generated Applications"));
            }
            if !appset_ns.is_empty() {
                md.insert("namespace".into(), json!(appset_ns));
            }
            if !preserve
                && md
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(|f| f.is_empty())
            {
                md.insert(
                    "finalizers".into(),
                    json!(["resources-finalizer.argocd.argoproj.io"]),
                );
            }
            let mut out = Map::new();
            out.insert("apiVersion".into(), json!("argoproj.io/v1alpha1"));
            out.insert("kind".into(), json!("Application"));
            out.insert("metadata".into(), Value::Object(md));
            out.insert("spec".into(), app.get("spec").cloned().unwrap_or(json!({})));
            apps.push(Value::Object(out));
        }
    }
    Ok(apps)
}

/// A generator's `template` over the ApplicationSet's: the generator's fields win.
fn merge_template(gen: &Value, base: &Value) -> Value {
    match (gen, base) {
        (Value::Object(g), Value::Object(b)) => {
            let mut out = b.clone();
            for (k, v) in g {
                let empty = match v {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if empty {
                    continue;
                }
                let merged = match out.get(k) {
                    Some(bv) => merge_template(v, bv),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (g, _) => g.clone(),
    }
}

/// A merge patch (the strategic merge of Argo CD's types has no list merge keys for the
/// fields a templatePatch sets: maps merge, lists and scalars are replaced, null deletes).
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(tv) = t.get_mut(k) {
                    merge_patch(tv, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The one generator key of a generator object.
fn generator_kind(g: &Value, field: &str) -> Result<String, ArgoError> {
    let Some(m) = g.as_object() else {
        return Err(err(
            ErrorKind::BadGenerator,
            field,
            "a generator must be an object",
        ));
    };
    let kinds: Vec<&String> = m.keys().filter(|k| k.as_str() != "selector").collect();
    match kinds.as_slice() {
        [one] => {
            let k = one.as_str();
            if LIVE_GENERATORS.contains(&k) {
                Err(err(
                    ErrorKind::UnsupportedGenerator,
                    format!("{field}.{k}"),
                    format!("the {k} generator needs live APIs and is not supported offline"),
                ))
            } else if KNOWN_GENERATORS.contains(&k) {
                Ok(k.to_string())
            } else {
                Err(err(
                    ErrorKind::UnknownGenerator,
                    format!("{field}.{k}"),
                    format!("unknown generator {k:?}"),
                )
                .with_hint("Argo CD's generators: list, clusters, git, matrix, merge, scmProvider, pullRequest, clusterDecisionResource, plugin"))
            }
        }
        [] => Err(err(
            ErrorKind::BadGenerator,
            field,
            "the generator names no generator",
        )),
        many => Err(err(
            ErrorKind::BadGenerator,
            field,
            format!(
                "one generator per list item, found {}",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Params of one generator (and its `template`, if any). `outer`: the params of the
/// matrix's first generator, interpolated into this one.
fn generate(
    fs: &dyn FileSystem,
    g: &Value,
    field: &str,
    dialect: &Dialect,
    opts: &Options,
    outer: Option<&Params>,
    depth: usize,
) -> Result<(Vec<Params>, Option<Value>), ArgoError> {
    if depth > MAX_NESTING {
        return Err(err(
            ErrorKind::Budget,
            field,
            format!("generators nested deeper than {MAX_NESTING}"),
        ));
    }
    let kind = generator_kind(g, field)?;
    let mut g = g.clone();
    if let Some(p) = outer.filter(|p| !p.is_empty()) {
        g = template::render_value(&g, p, dialect)
            .map_err(|e| err(ErrorKind::Template, field, e))?;
    }
    let body = g.get(&kind).cloned().unwrap_or(json!({}));
    let f = format!("{field}.{kind}");
    let params = match kind.as_str() {
        "list" => list(&body, &f, dialect)?,
        "clusters" => clusters(&body, &f, dialect, opts)?,
        "git" => git(fs, &body, &f, dialect, opts)?,
        "matrix" => matrix(fs, &body, &f, dialect, opts, depth)?,
        "merge" => merge(fs, &body, &f, dialect, opts, depth)?,
        _ => unreachable!("checked by generator_kind"),
    };
    let params = match g.get("selector").filter(|s| !s.is_null()) {
        Some(sel) => {
            let mut kept = Vec::new();
            for p in params {
                let flat = flatten_params(&p);
                if selector_matches(sel, &flat)
                    .map_err(|e| err(ErrorKind::BadGenerator, format!("{field}.selector"), e))?
                {
                    kept.push(p);
                }
            }
            kept
        }
        None => params,
    };
    let tmpl = body
        .get("template")
        .filter(|t| t.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    Ok((params, tmpl))
}

fn list(body: &Value, field: &str, dialect: &Dialect) -> Result<Vec<Params>, ArgoError> {
    let mut out = Vec::new();
    for (i, el) in body
        .get("elements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(m) = el.as_object() else {
            return Err(err(
                ErrorKind::BadGenerator,
                format!("{field}.elements[{i}]"),
                "an element must be an object",
            ));
        };
        if dialect.go_template {
            out.push(m.clone());
            continue;
        }
        let mut p = Params::new();
        for (k, v) in m {
            if k == "values" {
                let Some(vals) = v.as_object() else {
                    return Err(err(
                        ErrorKind::BadGenerator,
                        format!("{field}.elements[{i}].values"),
                        "error parsing values map",
                    ));
                };
                for (vk, vv) in vals {
                    let Some(s) = vv.as_str() else {
                        return Err(err(ErrorKind::BadGenerator, format!("{field}.elements[{i}].values.{vk}"), "error parsing value as string (without goTemplate, element values are strings)"));
                    };
                    p.insert(format!("values.{vk}"), json!(s));
                }
            } else {
                let Some(s) = v.as_str() else {
                    return Err(err(ErrorKind::BadGenerator, format!("{field}.elements[{i}].{k}"), "error parsing value as string (without goTemplate, element values are strings)"));
                };
                p.insert(k.clone(), json!(s));
            }
        }
        out.push(p);
    }
    if let Some(y) = body
        .get("elementsYaml")
        .and_then(Value::as_str)
        .filter(|y| !y.trim().is_empty())
    {
        let docs = capstan_yaml::parse_documents_last_key_wins(y, "elementsYaml").map_err(|e| {
            err(
                ErrorKind::BadGenerator,
                format!("{field}.elementsYaml"),
                format!("error unmarshling decoded ElementsYaml {e}"),
            )
        })?;
        let v = docs
            .first()
            .map(capstan_yaml::to_json)
            .unwrap_or(Value::Null);
        match v {
            Value::Array(items) => {
                for it in items {
                    match it {
                        Value::Object(m) => out.push(m),
                        _ => return Err(err(
                            ErrorKind::BadGenerator,
                            format!("{field}.elementsYaml"),
                            "error unmarshling decoded ElementsYaml: an element is not an object",
                        )),
                    }
                }
            }
            Value::Null => {}
            _ => {
                return Err(err(
                    ErrorKind::BadGenerator,
                    format!("{field}.elementsYaml"),
                    "error unmarshling decoded ElementsYaml: not a list",
                ))
            }
        }
    }
    Ok(out)
}

/// Argo CD's `appendTemplatedValues`: `values` rendered with the params so far, as
/// `values.K` (fasttemplate) or `.values.K` (Go templates).
fn append_values(
    values: Option<&Value>,
    p: &mut Params,
    dialect: &Dialect,
    field: &str,
) -> Result<(), ArgoError> {
    let Some(vals) = values.and_then(Value::as_object) else {
        return Ok(());
    };
    let mut rendered = Map::new();
    for (k, v) in vals {
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let r = template::replace(&s, p, dialect)
            .map_err(|e| err(ErrorKind::Template, format!("{field}.values.{k}"), e))?;
        rendered.insert(k.clone(), json!(r));
    }
    if dialect.go_template {
        p.insert("values".into(), Value::Object(rendered));
    } else {
        for (k, v) in rendered {
            p.insert(format!("values.{k}"), v);
        }
    }
    Ok(())
}

/// The clusters Argo CD knows: `opts.clusters` (cluster Secrets) plus the implicit
/// `in-cluster` unless a Secret is for its server.
pub fn known_clusters(opts: &Options) -> Vec<(Cluster, bool)> {
    let mut out: Vec<(Cluster, bool)> = Vec::new();
    if !opts.clusters.iter().any(|c| c.server == IN_CLUSTER_SERVER) {
        out.push((
            Cluster {
                name: "in-cluster".into(),
                server: IN_CLUSTER_SERVER.into(),
                ..Cluster::default()
            },
            false,
        ));
    }
    out.extend(opts.clusters.iter().cloned().map(|c| (c, true)));
    out
}

fn clusters(
    body: &Value,
    field: &str,
    dialect: &Dialect,
    opts: &Options,
) -> Result<Vec<Params>, ArgoError> {
    let sel = body.get("selector").cloned().unwrap_or(json!({}));
    let has_selector = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
        || sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty());
    let mut out = Vec::new();
    for (c, is_secret) in known_clusters(opts) {
        if !is_secret && has_selector {
            // the local cluster has no Secret, hence no labels to match
            continue;
        }
        if has_selector
            && !selector_matches(&sel, &c.labels)
                .map_err(|e| err(ErrorKind::BadGenerator, format!("{field}.selector"), e))?
        {
            continue;
        }
        let mut p = Params::new();
        p.insert("name".into(), json!(c.name));
        p.insert("nameNormalized".into(), json!(sanitize_name(&c.name)));
        p.insert("server".into(), json!(c.server));
        p.insert("project".into(), json!(c.project));
        if dialect.go_template {
            let mut meta = Map::new();
            if !c.annotations.is_empty() {
                meta.insert("annotations".into(), json!(c.annotations));
            }
            if !c.labels.is_empty() {
                meta.insert("labels".into(), json!(c.labels));
            }
            p.insert("metadata".into(), Value::Object(meta));
        } else {
            for (k, v) in &c.annotations {
                p.insert(format!("metadata.annotations.{k}"), json!(v));
            }
            for (k, v) in &c.labels {
                p.insert(format!("metadata.labels.{k}"), json!(v));
            }
        }
        append_values(body.get("values"), &mut p, dialect, field)?;
        out.push(p);
    }
    Ok(out)
}

fn git(
    fs: &dyn FileSystem,
    body: &Value,
    field: &str,
    dialect: &Dialect,
    opts: &Options,
) -> Result<Vec<Params>, ArgoError> {
    let url = body.get("repoURL").and_then(Value::as_str).unwrap_or("");
    let remote_tree;
    let tree: &dyn FileSystem = if opts.is_this_repo(url) {
        fs
    } else if let Some(r) = &opts.remote {
        let rev = body
            .get("revision")
            .and_then(Value::as_str)
            .unwrap_or("HEAD");
        remote_tree = r
            .git(url, rev)
            .map_err(|e| err(ErrorKind::RemoteSource, format!("{field}.repoURL"), e))?;
        remote_tree.as_ref()
    } else {
        return Err(err(
            ErrorKind::RemoteSource,
            format!("{field}.repoURL"),
            format!("{url} is another repository and other repositories are not fetched offline"),
        )
        .with_hint(
            "if it is this repository, say so with --this-repo URL (or --this-repo-regex)",
        ));
    };
    let prefix = body
        .get("pathParamPrefix")
        .and_then(Value::as_str)
        .unwrap_or("");
    let dirs = body
        .get("directories")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty());
    let files = body
        .get("files")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty());
    let mut out = Vec::new();
    if let Some(dirs) = dirs {
        let all = all_dirs(tree);
        for d in all {
            let mut include = false;
            let mut exclude = false;
            for item in dirs {
                let pat = item.get("path").and_then(Value::as_str).unwrap_or("");
                // Go's path.Match errors are logged and the pattern skipped
                if crate::glob::path_match(pat, &d).unwrap_or(false) {
                    if item
                        .get("exclude")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                    {
                        exclude = true;
                    } else {
                        include = true;
                    }
                }
            }
            if !include || exclude {
                continue;
            }
            let mut p = Params::new();
            let base = d.rsplit('/').next().unwrap_or(&d).to_string();
            if dialect.go_template {
                let pp = json!({
                    "path": d,
                    "basename": base,
                    "basenameNormalized": sanitize_name(&base),
                    "segments": d.split('/').collect::<Vec<_>>(),
                });
                if prefix.is_empty() {
                    p.insert("path".into(), pp);
                } else {
                    p.insert(prefix.into(), json!({"path": pp}));
                }
            } else {
                let n = if prefix.is_empty() {
                    "path".to_string()
                } else {
                    format!("{prefix}.path")
                };
                p.insert(n.clone(), json!(d));
                p.insert(format!("{n}.basename"), json!(base));
                p.insert(
                    format!("{n}.basenameNormalized"),
                    json!(sanitize_name(&base)),
                );
                for (i, seg) in d.split('/').enumerate() {
                    if !seg.is_empty() {
                        p.insert(format!("{n}[{i}]"), json!(seg));
                    }
                }
            }
            append_values(body.get("values"), &mut p, dialect, field)?;
            out.push(p);
        }
        return Ok(out);
    }
    let Some(files) = files else {
        return Err(err(
            ErrorKind::BadGenerator,
            field,
            "the git generator needs directories or files",
        ));
    };
    let all = all_files(tree);
    let mut chosen: BTreeMap<String, ()> = BTreeMap::new();
    for item in files
        .iter()
        .filter(|i| !i.get("exclude").and_then(Value::as_bool).unwrap_or(false))
    {
        let pat = item.get("path").and_then(Value::as_str).unwrap_or("");
        for f in &all {
            if crate::glob::git_files_match(pat, f)
                .map_err(|e| err(ErrorKind::BadGenerator, format!("{field}.files"), e))?
            {
                chosen.insert(f.clone(), ());
            }
        }
    }
    for item in files
        .iter()
        .filter(|i| i.get("exclude").and_then(Value::as_bool).unwrap_or(false))
    {
        let pat = item.get("path").and_then(Value::as_str).unwrap_or("");
        chosen.retain(|f, _| !crate::glob::git_files_match(pat, f).unwrap_or(false));
    }
    for f in chosen.keys() {
        let text = tree.read_to_string(&Path::new("/").join(f)).map_err(|e| {
            err(
                ErrorKind::BadInput,
                format!("{field}.files"),
                format!("{f}: {e}"),
            )
        })?;
        let objects = parse_param_file(&text).map_err(|e| {
            err(
                ErrorKind::BadInput,
                format!("{field}.files"),
                format!("unable to process file '{f}': {e}"),
            )
        })?;
        let dir = f.rsplit_once('/').map_or(".", |(d, _)| d).to_string();
        let base = dir.rsplit('/').next().unwrap_or(&dir).to_string();
        let fname = f.rsplit('/').next().unwrap_or(f).to_string();
        for obj in objects {
            let mut p = Params::new();
            if dialect.go_template {
                p = obj.clone();
                let pp = json!({
                    "path": dir,
                    "basename": base,
                    "filename": fname,
                    "basenameNormalized": sanitize_name(&base),
                    "filenameNormalized": sanitize_name(&fname),
                    "segments": dir.split('/').collect::<Vec<_>>(),
                });
                if prefix.is_empty() {
                    p.insert("path".into(), pp);
                } else {
                    p.insert(prefix.into(), json!({"path": pp}));
                }
            } else {
                for (k, v) in flatten(&Value::Object(obj.clone())) {
                    p.insert(k, json!(v));
                }
                let n = if prefix.is_empty() {
                    "path".to_string()
                } else {
                    format!("{prefix}.path")
                };
                p.insert(n.clone(), json!(dir));
                p.insert(format!("{n}.basename"), json!(base));
                p.insert(format!("{n}.filename"), json!(fname));
                p.insert(
                    format!("{n}.basenameNormalized"),
                    json!(sanitize_name(&base)),
                );
                p.insert(
                    format!("{n}.filenameNormalized"),
                    json!(sanitize_name(&fname)),
                );
                for (i, seg) in dir.split('/').enumerate() {
                    if !seg.is_empty() {
                        p.insert(format!("{n}[{i}]"), json!(seg));
                    }
                }
            }
            append_values(body.get("values"), &mut p, dialect, field)?;
            out.push(p);
        }
    }
    Ok(out)
}

/// A git generator file: one object, or a list of objects (JSON or YAML).
fn parse_param_file(text: &str) -> Result<Vec<Params>, String> {
    let docs =
        capstan_yaml::parse_documents_last_key_wins(text, "file").map_err(|e| e.to_string())?;
    let v = docs
        .first()
        .map(capstan_yaml::to_json)
        .unwrap_or(Value::Null);
    match v {
        Value::Null => Ok(vec![Params::new()]),
        Value::Object(m) => Ok(vec![m]),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Object(m) => Ok(m),
                _ => Err("an element of the list is not an object".to_string()),
            })
            .collect(),
        _ => Err("the file holds neither an object nor a list of objects".into()),
    }
}

fn all_dirs(fs: &dyn FileSystem) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(d) = stack.pop() {
        let p = Path::new("/").join(&d);
        for n in fs.read_dir(&p).unwrap_or_default() {
            if n.starts_with('.') {
                continue;
            }
            let rel = if d.is_empty() {
                n.clone()
            } else {
                format!("{d}/{n}")
            };
            if fs.is_dir(&p.join(&n)) {
                out.push(rel.clone());
                stack.push(rel);
            }
        }
    }
    out.sort();
    out
}

fn all_files(fs: &dyn FileSystem) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(d) = stack.pop() {
        let p = Path::new("/").join(&d);
        for n in fs.read_dir(&p).unwrap_or_default() {
            if d.is_empty() && n == ".git" {
                continue;
            }
            let rel = if d.is_empty() {
                n.clone()
            } else {
                format!("{d}/{n}")
            };
            if fs.is_dir(&p.join(&n)) {
                stack.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// jeremywohl/flatten's DotStyle, leaves printed with Go's `%v`.
pub fn flatten(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        let key = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(&key(k), x, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(&key(&i.to_string()), x, out);
                }
            }
            other => {
                let s =
                    capstan_gotemplate::fmt::sprint(&[capstan_gotemplate::Value::from_json(other)]);
                out.insert(prefix.to_string(), s);
            }
        }
    }
    if let Value::Object(m) = v {
        for (k, x) in m {
            walk(k, x, &mut out);
        }
    }
    out
}

fn flatten_params(p: &Params) -> BTreeMap<String, String> {
    flatten(&Value::Object(p.clone()))
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions` with `In`, `NotIn`,
/// `Exists`, `DoesNotExist`) over `labels`.
pub fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            let want = v.as_str().unwrap_or("");
            if labels.get(k).map(String::as_str) != Some(want) {
                return Ok(false);
            }
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let have = labels.get(key);
        let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => have.is_some_and(|h| values.contains(&h.as_str())),
            "NotIn" => !have.is_some_and(|h| values.contains(&h.as_str())),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            op => return Err(format!("{op:?} is not a valid label selector operator")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn children(body: &Value, field: &str, what: &str) -> Result<Vec<Value>, ArgoError> {
    let gens = body
        .get("generators")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if gens.len() < 2 {
        return Err(err(
            ErrorKind::BadGenerator,
            format!("{field}.generators"),
            format!("the {what} generator needs at least two child generators"),
        ));
    }
    Ok(gens)
}

fn matrix(
    fs: &dyn FileSystem,
    body: &Value,
    field: &str,
    dialect: &Dialect,
    opts: &Options,
    depth: usize,
) -> Result<Vec<Params>, ArgoError> {
    let gens = children(body, field, "matrix")?;
    if gens.len() > 2 {
        return Err(err(
            ErrorKind::BadGenerator,
            format!("{field}.generators"),
            "the matrix generator takes exactly two child generators",
        ));
    }
    let (first, _) = generate(
        fs,
        &gens[0],
        &format!("{field}.generators[0]"),
        dialect,
        opts,
        None,
        depth + 1,
    )?;
    let mut out = Vec::new();
    for a in &first {
        let (second, _) = generate(
            fs,
            &gens[1],
            &format!("{field}.generators[1]"),
            dialect,
            opts,
            Some(a),
            depth + 1,
        )?;
        for b in second {
            if dialect.go_template {
                let mut tmp = Value::Object(b);
                deep_merge(&mut tmp, &Value::Object(a.clone()));
                out.push(tmp.as_object().cloned().unwrap_or_default());
            } else {
                let mut tmp = a.clone();
                for (k, v) in b {
                    if let Some(old) = tmp.get(&k) {
                        if *old != v {
                            return Err(err(
                                ErrorKind::BadGenerator,
                                field,
                                format!(
                                    "found duplicate key {k} with different value, a: {} ,b: {}",
                                    old.as_str().unwrap_or(""),
                                    v.as_str().unwrap_or("")
                                ),
                            ));
                        }
                    }
                    tmp.insert(k, v);
                }
                out.push(tmp);
            }
        }
    }
    Ok(out)
}

/// mergo's `Merge(dst, src, WithOverride)`: maps merge recursively, src wins.
fn deep_merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && v.is_object() => deep_merge(dv, v),
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

fn merge(
    fs: &dyn FileSystem,
    body: &Value,
    field: &str,
    dialect: &Dialect,
    opts: &Options,
    depth: usize,
) -> Result<Vec<Params>, ArgoError> {
    let gens = children(body, field, "merge")?;
    let keys: Vec<String> = body
        .get("mergeKeys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if keys.is_empty() {
        return Err(err(
            ErrorKind::BadGenerator,
            format!("{field}.mergeKeys"),
            "no merge keys were specified",
        ));
    }
    let mut sets = Vec::new();
    for (i, g) in gens.iter().enumerate() {
        let (p, _) = generate(
            fs,
            g,
            &format!("{field}.generators[{i}]"),
            dialect,
            opts,
            None,
            depth + 1,
        )?;
        sets.push(p);
    }
    let key_of = |p: &Params| -> String {
        let mut m = Map::new();
        for k in &keys {
            m.insert(k.clone(), p.get(k).cloned().unwrap_or(Value::Null));
        }
        Value::Object(m).to_string()
    };
    let by_key = |set: &[Params], i: usize| -> Result<Vec<(String, Params)>, ArgoError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in set {
            let k = key_of(p);
            if !seen.insert(k.clone()) {
                return Err(err(
                    ErrorKind::BadGenerator,
                    format!("{field}.generators[{i}]"),
                    format!("the parameters from a generator were not unique by the given mergeKeys, Merge requires all param sets to be unique. Duplicate key was {k}"),
                ));
            }
            out.push((k, p.clone()));
        }
        Ok(out)
    };
    let mut base = by_key(&sets[0], 0)?;
    for (i, set) in sets.iter().enumerate().skip(1) {
        let over = by_key(set, i)?;
        for (k, p) in base.iter_mut() {
            if let Some((_, o)) = over.iter().find(|(ok, _)| ok == k) {
                if dialect.go_template {
                    let mut v = Value::Object(p.clone());
                    deep_merge(&mut v, &Value::Object(o.clone()));
                    *p = v.as_object().cloned().unwrap_or_default();
                } else {
                    for (kk, vv) in o {
                        p.insert(kk.clone(), vv.clone());
                    }
                }
            }
        }
    }
    Ok(base.into_iter().map(|(_, p)| p).collect())
}
