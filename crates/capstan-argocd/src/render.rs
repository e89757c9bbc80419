//! One Application's sources, rendered as Argo CD's repo server renders them, then the
//! controller's namespace handling.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_vfs::{FileSystem, OverlayFs};
use serde_json::{json, Map, Value};

use crate::error::{ArgoError, ErrorKind};
use crate::Options;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

/// A repository tree: the one being rendered, or another one.
enum Tree<'a> {
    Local(&'a dyn FileSystem),
    Remote(Arc<dyn FileSystem>),
}

impl Tree<'_> {
    fn fs(&self) -> &dyn FileSystem {
        match self {
            Tree::Local(f) => *f,
            Tree::Remote(f) => f.as_ref(),
        }
    }
}

/// The source type, as Argo CD detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Helm,
    Kustomize,
    Directory,
    Plugin,
}

/// Argo CD's build environment for one source.
pub fn build_env(app: &Value, source: &Value, opts: &Options) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let name = app
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = app
        .pointer("/spec/destination/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rev = opts.revision.as_str();
    env.insert("ARGOCD_APP_NAME".into(), name.to_string());
    env.insert("ARGOCD_APP_NAMESPACE".into(), ns.to_string());
    env.insert(
        "ARGOCD_APP_PROJECT_NAME".into(),
        s(&app["spec"], "project").to_string(),
    );
    env.insert("ARGOCD_APP_REVISION".into(), rev.to_string());
    env.insert(
        "ARGOCD_APP_REVISION_SHORT".into(),
        rev.chars().take(7).collect(),
    );
    env.insert(
        "ARGOCD_APP_REVISION_SHORT_8".into(),
        rev.chars().take(8).collect(),
    );
    env.insert(
        "ARGOCD_APP_SOURCE_PATH".into(),
        s(source, "path").to_string(),
    );
    env.insert(
        "ARGOCD_APP_SOURCE_REPO_URL".into(),
        s(source, "repoURL").to_string(),
    );
    env.insert(
        "ARGOCD_APP_SOURCE_TARGET_REVISION".into(),
        s(source, "targetRevision").to_string(),
    );
    let kv = opts
        .kube_version
        .clone()
        .unwrap_or_else(|| capstan_helm::engine::Capabilities::default().kube_version);
    env.insert(
        "KUBE_VERSION".into(),
        kv.trim_start_matches('v').to_string(),
    );
    let mut apis: Vec<String> = capstan_helm::engine::DEFAULT_API_VERSIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    apis.extend(opts.api_versions.iter().cloned());
    env.insert("KUBE_API_VERSIONS".into(), apis.join(","));
    env
}

/// Argo CD's `Envsubst`: `$VAR` and `${VAR}` from the build environment (unknown
/// variables are empty), `$$` is `$`.
pub fn envsubst(s: &str, env: &BTreeMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'{' {
                if let Some(end) = s[i + 2..].find('}') {
                    let name = &s[i + 2..i + 2 + end];
                    out.push_str(env.get(name).map(String::as_str).unwrap_or(""));
                    i += end + 3;
                    continue;
                }
            } else if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            } else if b[i + 1] == b'_' || b[i + 1].is_ascii_alphabetic() {
                let mut j = i + 1;
                while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
                    j += 1;
                }
                out.push_str(env.get(&s[i + 1..j]).map(String::as_str).unwrap_or(""));
                i = j;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Render an Application: every source in order, concatenated, then the namespace
/// handling of Argo CD's controller.
pub fn render_app(
    fs: &dyn FileSystem,
    app: &Value,
    opts: &Options,
) -> Result<Vec<Value>, ArgoError> {
    let spec = app.get("spec").cloned().unwrap_or(Value::Null);
    let sources: Vec<(String, Value)> = match spec.get("sources").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("spec.sources[{i}]"), v.clone()))
            .collect(),
        _ => match spec.get("source") {
            Some(v) if v.is_object() => vec![("spec.source".to_string(), v.clone())],
            _ => {
                return Err(ArgoError::new(
                    ErrorKind::MissingSource,
                    "spec.source",
                    "the Application has no source",
                )
                .with_hint("set spec.source (repoURL, path or chart) or spec.sources"))
            }
        },
    };
    // `ref` sources of a multi-source Application: `$name/...` value files.
    let mut refs: HashMap<String, Value> = HashMap::new();
    for (_, src) in &sources {
        let r = s(src, "ref");
        if !r.is_empty() {
            refs.insert(format!("${r}"), src.clone());
        }
    }
    let mut objects = Vec::new();
    for (field, src) in &sources {
        if s(src, "repoURL").is_empty() {
            return Err(ArgoError::new(
                ErrorKind::MissingSource,
                format!("{field}.repoURL"),
                "the source has no repoURL",
            ));
        }
        if !s(src, "ref").is_empty() && s(src, "path").is_empty() && s(src, "chart").is_empty() {
            continue;
        }
        let mut objs = render_source(fs, app, src, &refs, opts).map_err(|e| {
            if e.field.is_empty() || !e.field.starts_with("spec.") {
                let f = if e.field.is_empty() {
                    field.clone()
                } else {
                    format!("{field}.{}", e.field)
                };
                ArgoError { field: f, ..e }
            } else {
                e
            }
        })?;
        objects.append(&mut objs);
    }
    let dest_ns = app
        .pointer("/spec/destination/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(apply_namespaces(objects, dest_ns, opts))
}

fn tree_for<'a>(
    fs: &'a dyn FileSystem,
    src: &Value,
    opts: &Options,
) -> Result<Tree<'a>, ArgoError> {
    let url = s(src, "repoURL");
    if opts.is_this_repo(url) {
        return Ok(Tree::Local(fs));
    }
    let rev = s(src, "targetRevision");
    match &opts.remote {
        Some(r) => r
            .git(url, if rev.is_empty() { "HEAD" } else { rev })
            .map(Tree::Remote)
            .map_err(|e| ArgoError::new(ErrorKind::RemoteSource, "repoURL", e)),
        None => Err(ArgoError::new(
            ErrorKind::RemoteSource,
            "repoURL",
            format!("{url} is another repository and sources from other repositories are not fetched offline"),
        )
        .with_hint("if it is this repository, say so with --this-repo URL (or --this-repo-regex)")),
    }
}

fn clean_path(p: &str) -> String {
    let p = p.trim();
    let p = p.trim_start_matches("./");
    if p == "." {
        String::new()
    } else {
        p.trim_matches('/').to_string()
    }
}

/// Argo CD's source type of `src` at `dir`: the explicit type (only one of `helm`,
/// `kustomize`, `directory`, `plugin`), a chart, else discovery in the directory
/// (`*Chart.yaml` -> Helm, a kustomization file -> kustomize; kustomize wins when both),
/// else a directory.
pub fn source_type(fs: &dyn FileSystem, src: &Value, dir: &Path) -> Result<SourceType, ArgoError> {
    let mut explicit = Vec::new();
    for (k, t) in [
        ("kustomize", SourceType::Kustomize),
        ("helm", SourceType::Helm),
        ("directory", SourceType::Directory),
        ("plugin", SourceType::Plugin),
    ] {
        if non_empty(src.get(k)) {
            explicit.push((k, t));
        }
    }
    if explicit.len() > 1 {
        let names: Vec<&str> = explicit.iter().map(|(k, _)| *k).collect();
        return Err(ArgoError::new(
            ErrorKind::MultipleSourceTypes,
            "",
            format!("multiple application sources defined: {}", names.join(",")),
        ));
    }
    if let Some((_, t)) = explicit.first() {
        return Ok(*t);
    }
    if !s(src, "chart").is_empty() {
        return Ok(SourceType::Helm);
    }
    let mut found = SourceType::Directory;
    if let Ok(names) = fs.read_dir(dir) {
        for n in names {
            if !fs.is_file(&dir.join(&n)) {
                continue;
            }
            if n.ends_with("Chart.yaml") {
                found = SourceType::Helm;
            }
            if is_kustomization(&n) {
                found = SourceType::Kustomize;
            }
        }
    }
    Ok(found)
}

fn is_kustomization(n: &str) -> bool {
    matches!(
        n,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    )
}

fn render_source(
    fs: &dyn FileSystem,
    app: &Value,
    src: &Value,
    refs: &HashMap<String, Value>,
    opts: &Options,
) -> Result<Vec<Value>, ArgoError> {
    let env = build_env(app, src, opts);
    if non_empty(src.get("plugin")) {
        let name = src
            .pointer("/plugin/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ArgoError::new(
            ErrorKind::UnsupportedSource,
            "plugin",
            format!("config management plugins are not supported (plugin {name:?}): capstan renders Helm, kustomize and directories"),
        ));
    }
    let chart = s(src, "chart");
    if !chart.is_empty() {
        let Some(remote) = &opts.remote else {
            return Err(ArgoError::new(
                ErrorKind::RemoteSource,
                "chart",
                format!(
                    "chart {chart} {} from the Helm repository {} is not fetched offline",
                    s(src, "targetRevision"),
                    s(src, "repoURL")
                ),
            ));
        };
        let chart_obj = remote
            .chart(s(src, "repoURL"), chart, s(src, "targetRevision"))
            .map_err(|e| ArgoError::new(ErrorKind::RemoteSource, "chart", e))?;
        return render_helm(fs, None, app, src, refs, opts, &env, Some(chart_obj));
    }
    let tree = tree_for(fs, src, opts)?;
    let rel = clean_path(s(src, "path"));
    let dir = capstan_vfs::join_within(Path::new("/"), &rel);
    if !tree.fs().is_dir(&dir) {
        return Err(ArgoError::new(
            ErrorKind::PathNotFound,
            "path",
            format!("app path does not exist: {:?}", s(src, "path")),
        ));
    }
    match source_type(tree.fs(), src, &dir)? {
        SourceType::Helm => render_helm(fs, Some((&tree, &dir)), app, src, refs, opts, &env, None),
        SourceType::Kustomize => render_kustomize(tree.fs(), &dir, src, opts, &env),
        SourceType::Directory => render_directory(tree.fs(), &dir, src),
        SourceType::Plugin => unreachable!("refused above"),
    }
}

/// Argo CD escapes commas in `--set` values, unless the value is a `{...}` list.
fn clean_set_value(v: &str) -> String {
    if v.starts_with('{') && v.ends_with('}') {
        return v.to_string();
    }
    let mut out = String::new();
    let mut prev = '\0';
    for c in v.chars() {
        if c == ',' && prev != '\\' {
            out.push('\\');
        }
        out.push(c);
        prev = c;
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn render_helm(
    fs: &dyn FileSystem,
    local: Option<(&Tree<'_>, &Path)>,
    app: &Value,
    src: &Value,
    refs: &HashMap<String, Value>,
    opts: &Options,
    env: &BTreeMap<String, String>,
    fetched: Option<capstan_helm::Chart>,
) -> Result<Vec<Value>, ArgoError> {
    let helm = src.get("helm").cloned().unwrap_or(json!({}));
    let app_name = app
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let release = match s(&helm, "releaseName") {
        "" => app_name.to_string(),
        r => r.to_string(),
    };
    let dest_ns = app
        .pointer("/spec/destination/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut topts = capstan_helm::TemplateOptions {
        release_name: release,
        namespace: if dest_ns.is_empty() {
            "default".into()
        } else {
            dest_ns.into()
        },
        kube_version: opts.kube_version.clone(),
        api_versions: opts.api_versions.clone(),
        include_crds: !helm
            .get("skipCrds")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        skip_tests: helm
            .get("skipTests")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        skip_schema_validation: helm
            .get("skipSchemaValidation")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..Default::default()
    };
    let ignore_missing = helm
        .get("ignoreMissingValueFiles")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let read_in = |tree_fs: &dyn FileSystem,
                   p: &Path,
                   field: &str,
                   raw: &str|
     -> Result<Option<String>, ArgoError> {
        match tree_fs.read_to_string(p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && ignore_missing => Ok(None),
            Err(e) => Err(ArgoError::new(
                ErrorKind::BadInput,
                field.to_string(),
                format!("{raw}: {e}"),
            )),
        }
    };
    if let Some(files) = helm.get("valueFiles").and_then(Value::as_array) {
        for (i, f) in files.iter().enumerate() {
            let raw = f.as_str().unwrap_or("");
            let field = format!("helm.valueFiles[{i}]");
            let text = if let Some(r) = raw.split('/').next().and_then(|head| refs.get(head)) {
                // `$ref/path`: from the referenced source's repository root; env
                // substitution after the reference is resolved.
                let rest = envsubst(raw.split_once('/').map_or("", |(_, p)| p), env);
                let tree = tree_for(fs, r, opts).map_err(|e| ArgoError {
                    field: field.clone(),
                    ..e
                })?;
                let p = capstan_vfs::join_within(Path::new("/"), &rest);
                read_in(tree.fs(), &p, &field, raw)?
            } else if raw.contains("://") {
                return Err(ArgoError::new(
                    ErrorKind::RemoteSource,
                    field,
                    format!("{raw}: value files from URLs are not fetched offline"),
                ));
            } else {
                let Some((tree, dir)) = local else {
                    return Err(ArgoError::new(
                        ErrorKind::BadInput,
                        field,
                        format!("{raw}: a chart from a Helm repository takes value files from a `$ref` source only"),
                    ));
                };
                let sub = envsubst(raw, env);
                let p = if sub.starts_with('/') {
                    capstan_vfs::join_within(Path::new("/"), &sub)
                } else {
                    let j = capstan_vfs::join(dir, &sub);
                    // stays within the repository
                    capstan_vfs::join_within(Path::new("/"), &j.to_string_lossy())
                };
                read_in(tree.fs(), &p, &field, raw)?
            };
            if let Some(t) = text {
                topts.values_yaml.push(t);
            }
        }
    }
    // `values` (a string) and `valuesObject` (which wins): the last values file.
    if let Some(obj) = helm.get("valuesObject").filter(|v| v.is_object()) {
        topts.values_yaml.push(obj.to_string());
    } else if let Some(v) = helm.get("values") {
        match v {
            Value::String(t) if !t.trim().is_empty() => topts.values_yaml.push(t.clone()),
            Value::Object(_) => topts.values_yaml.push(v.to_string()),
            _ => {}
        }
    }
    if let Some(params) = helm.get("parameters").and_then(Value::as_array) {
        for p in params {
            let expr = format!(
                "{}={}",
                s(p, "name"),
                clean_set_value(&value_string(p.get("value")))
            );
            if p.get("forceString")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                topts.set_string.push(expr);
            } else {
                topts.set.push(expr);
            }
        }
    }
    if let Some(params) = helm.get("fileParameters").and_then(Value::as_array) {
        for (i, p) in params.iter().enumerate() {
            let field = format!("helm.fileParameters[{i}].path");
            let raw = s(p, "path");
            let Some((tree, dir)) = local else {
                return Err(ArgoError::new(
                    ErrorKind::BadInput,
                    field,
                    "file parameters need a chart in a git repository",
                ));
            };
            let sub = envsubst(raw, env);
            let path = if sub.starts_with('/') {
                capstan_vfs::join_within(Path::new("/"), &sub)
            } else {
                capstan_vfs::join_within(
                    Path::new("/"),
                    &capstan_vfs::join(dir, &sub).to_string_lossy(),
                )
            };
            let content = tree
                .fs()
                .read_to_string(&path)
                .map_err(|e| ArgoError::new(ErrorKind::BadInput, field, format!("{raw}: {e}")))?;
            topts.set_file.push(format!("{}={}", s(p, "name"), content));
        }
    }
    let rendered = match (fetched, local) {
        (Some(chart), _) => {
            let vals = capstan_helm::user_values(&topts)
                .map_err(|e| ArgoError::new(ErrorKind::Helm, "helm", e.to_string()))?;
            let mut caps = capstan_helm::engine::Capabilities::default();
            if let Some(kv) = &topts.kube_version {
                caps = caps
                    .with_kube_version(kv)
                    .map_err(|e| ArgoError::new(ErrorKind::Helm, "helm", e.to_string()))?;
            }
            caps.api_versions.extend(topts.api_versions.iter().cloned());
            let release = capstan_helm::engine::ReleaseInfo {
                name: topts.release_name.clone(),
                namespace: topts.namespace.clone(),
                revision: 1,
                is_install: true,
                is_upgrade: false,
            };
            capstan_helm::render_chart(chart, &vals, &release, &caps, &topts)
        }
        (None, Some((tree, dir))) => capstan_helm::template(tree.fs(), dir, &topts),
        (None, None) => unreachable!("a chart is either fetched or in a tree"),
    }
    .map_err(|e| ArgoError::new(ErrorKind::Helm, "helm", e.to_string()))?;
    parse_stream(&rendered.output, "helm template output")
}

fn value_string(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A YAML stream as objects (null documents dropped).
fn parse_stream(text: &str, what: &str) -> Result<Vec<Value>, ArgoError> {
    let docs = capstan_yaml::parse_documents_last_key_wins(text, what)
        .map_err(|e| ArgoError::new(ErrorKind::BadInput, "", e.to_string()))?;
    Ok(docs
        .iter()
        .map(capstan_yaml::to_json)
        .filter(|v| !v.is_null())
        .collect())
}

/// kustomize's `edit set image` argument: `name=newName:tag`, `name=newName@digest`,
/// `name:tag`, `name@digest`, `name=newName`.
fn parse_image(arg: &str) -> Map<String, Value> {
    let (name, rest, renamed) = match arg.split_once('=') {
        Some((n, r)) => (n.to_string(), r.to_string(), true),
        None => (String::new(), arg.to_string(), false),
    };
    let (base, digest) = match rest.split_once('@') {
        Some((b, d)) => (b.to_string(), Some(d.to_string())),
        None => (rest.clone(), None),
    };
    let slash = base.rfind('/').map_or(0, |i| i + 1);
    let (img, tag) = match base[slash..].rfind(':') {
        Some(i) => (
            base[..slash + i].to_string(),
            Some(base[slash + i + 1..].to_string()),
        ),
        None => (base.clone(), None),
    };
    let mut m = Map::new();
    if renamed {
        m.insert("name".into(), json!(name));
        m.insert("newName".into(), json!(img));
    } else {
        m.insert("name".into(), json!(img));
    }
    if let Some(t) = tag {
        m.insert("newTag".into(), json!(t));
    }
    if let Some(d) = digest {
        m.insert("digest".into(), json!(d));
    }
    m
}

/// The kustomization of `dir` with the source's `kustomize:` options applied the way Argo
/// CD applies them (`kustomize edit set|add ...`, `patches` appended).
fn edited_kustomization(
    fs: &dyn FileSystem,
    dir: &Path,
    k: &Value,
    env: &BTreeMap<String, String>,
) -> Result<Option<(PathBuf, String)>, ArgoError> {
    let keys = [
        "namePrefix",
        "nameSuffix",
        "images",
        "commonLabels",
        "commonAnnotations",
        "namespace",
        "patches",
        "components",
        "replicas",
    ];
    if !keys.iter().any(|key| non_empty(k.get(*key))) {
        return Ok(None);
    }
    let file = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| fs.is_file(p))
        .ok_or_else(|| {
            ArgoError::new(
                ErrorKind::Kustomize,
                "kustomize",
                format!(
                    "no kustomization file in {} to apply the kustomize options to",
                    dir.display()
                ),
            )
        })?;
    let text = fs.read_to_string(&file).map_err(|e| {
        ArgoError::new(
            ErrorKind::Kustomize,
            "kustomize",
            format!("{}: {e}", file.display()),
        )
    })?;
    let docs = capstan_yaml::parse_documents_last_key_wins(&text, &file.to_string_lossy())
        .map_err(|e| ArgoError::new(ErrorKind::Kustomize, "kustomize", e.to_string()))?;
    let mut kz = docs
        .first()
        .map(capstan_yaml::to_json)
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    for key in ["namePrefix", "nameSuffix", "namespace"] {
        if let Some(v) = k.get(key).and_then(Value::as_str).filter(|v| !v.is_empty()) {
            kz.insert(key.into(), json!(v));
        }
    }
    if let Some(images) = k.get("images").and_then(Value::as_array) {
        let mut list = kz
            .get("images")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for img in images {
            let arg = envsubst(img.as_str().unwrap_or(""), env);
            let new = parse_image(&arg);
            let name = new.get("name").cloned();
            match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
                Some(Value::Object(e)) => {
                    if new.contains_key("newTag") {
                        e.remove("digest");
                    }
                    if new.contains_key("digest") {
                        e.remove("newTag");
                    }
                    for (kk, vv) in new {
                        e.insert(kk, vv);
                    }
                }
                _ => list.push(Value::Object(new)),
            }
        }
        kz.insert("images".into(), Value::Array(list));
    }
    let force_labels = k
        .get("forceCommonLabels")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let force_ann = k
        .get("forceCommonAnnotations")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(labels) = k
        .get("commonLabels")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    {
        let without_selector = k
            .get("labelWithoutSelector")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if without_selector {
            let include_templates = k
                .get("labelIncludeTemplates")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut list = kz
                .get("labels")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut entry = json!({"pairs": labels, "includeSelectors": false});
            if include_templates {
                entry["includeTemplates"] = json!(true);
            }
            list.push(entry);
            kz.insert("labels".into(), Value::Array(list));
        } else {
            let mut m = kz
                .get("commonLabels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (key, v) in labels {
                if m.contains_key(key) && !force_labels {
                    return Err(ArgoError::new(
                        ErrorKind::Kustomize,
                        "kustomize.commonLabels",
                        format!("label {key} already in kustomization file"),
                    )
                    .with_hint("set kustomize.forceCommonLabels: true to override it"));
                }
                m.insert(key.clone(), json!(value_string(Some(v))));
            }
            kz.insert("commonLabels".into(), Value::Object(m));
        }
    }
    if let Some(ann) = k
        .get("commonAnnotations")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    {
        let subst = k
            .get("commonAnnotationsEnvsubst")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut m = kz
            .get("commonAnnotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, v) in ann {
            if m.contains_key(key) && !force_ann {
                return Err(ArgoError::new(
                    ErrorKind::Kustomize,
                    "kustomize.commonAnnotations",
                    format!("annotation {key} already in kustomization file"),
                )
                .with_hint("set kustomize.forceCommonAnnotations: true to override it"));
            }
            let mut val = value_string(Some(v));
            if subst {
                val = envsubst(&val, env);
            }
            m.insert(key.clone(), json!(val));
        }
        kz.insert("commonAnnotations".into(), Value::Object(m));
    }
    if let Some(reps) = k.get("replicas").and_then(Value::as_array) {
        let mut list = kz
            .get("replicas")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in reps {
            let count = match r.get("count") {
                Some(Value::String(c)) => c.parse::<i64>().map(Value::from).map_err(|_| {
                    ArgoError::new(
                        ErrorKind::Kustomize,
                        "kustomize.replicas",
                        format!("count {c:?} is not an integer"),
                    )
                })?,
                Some(v @ Value::Number(_)) => v.clone(),
                _ => json!(0),
            };
            let name = r.get("name").cloned().unwrap_or(Value::Null);
            match list.iter_mut().find(|e| e.get("name") == Some(&name)) {
                Some(e) => e["count"] = count,
                None => list.push(json!({"name": name, "count": count})),
            }
        }
        kz.insert("replicas".into(), Value::Array(list));
    }
    if let Some(comps) = k.get("components").and_then(Value::as_array) {
        let ignore_missing = k
            .get("ignoreMissingComponents")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut list = kz
            .get("components")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in comps {
            let c = c.as_str().unwrap_or("");
            if ignore_missing && !fs.exists(&capstan_vfs::join(dir, c)) {
                continue;
            }
            list.push(json!(c));
        }
        kz.insert("components".into(), Value::Array(list));
    }
    if let Some(patches) = k.get("patches").and_then(Value::as_array) {
        let mut list = kz
            .get("patches")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        list.extend(patches.iter().cloned());
        kz.insert("patches".into(), Value::Array(list));
    }
    Ok(Some((file, Value::Object(kz).to_string())))
}

fn render_kustomize(
    fs: &dyn FileSystem,
    dir: &Path,
    src: &Value,
    opts: &Options,
    env: &BTreeMap<String, String>,
) -> Result<Vec<Value>, ArgoError> {
    let k = src.get("kustomize").cloned().unwrap_or(json!({}));
    let bopts = capstan_kustomize::BuildOptions {
        load_restrictor: opts.kustomize_load_restrictor,
        enable_helm: opts.kustomize_enable_helm,
        ..Default::default()
    };
    let nodes = match edited_kustomization(fs, dir, &k, env)? {
        Some((file, text)) => {
            let mut over = OverlayFs::new(fs);
            over.put(&file, text.as_bytes());
            capstan_kustomize::build(&over, dir, &bopts)
        }
        None => capstan_kustomize::build(fs, dir, &bopts),
    }
    .map_err(|e| ArgoError::new(ErrorKind::Kustomize, "kustomize", e.to_string()))?;
    Ok(nodes.iter().map(capstan_yaml::to_json).collect())
}

fn render_directory(fs: &dyn FileSystem, dir: &Path, src: &Value) -> Result<Vec<Value>, ArgoError> {
    let d = src.get("directory").cloned().unwrap_or(json!({}));
    let recurse = d.get("recurse").and_then(Value::as_bool).unwrap_or(false);
    let include = s(&d, "include");
    let exclude = s(&d, "exclude");
    if non_empty(d.get("jsonnet"))
        && d.pointer("/jsonnet").is_some_and(|j| {
            j.as_object()
                .is_some_and(|m| m.values().any(non_empty_value))
        })
    {
        return Err(ArgoError::new(
            ErrorKind::UnsupportedSource,
            "directory.jsonnet",
            "jsonnet is not supported: capstan renders Helm, kustomize and directories of YAML/JSON",
        ));
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(cur) = stack.pop() {
        let names = fs.read_dir(&cur).map_err(|e| {
            ArgoError::new(
                ErrorKind::BadInput,
                "path",
                format!("{}: {e}", cur.display()),
            )
        })?;
        for n in names {
            let p = cur.join(&n);
            if fs.is_dir(&p) {
                if recurse && n != ".git" {
                    stack.push(p);
                }
                continue;
            }
            files.push(p);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = p
            .strip_prefix(dir)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        let ext = Path::new(&name)
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ext == "jsonnet" || ext == "libsonnet" {
            return Err(ArgoError::new(
                ErrorKind::UnsupportedSource,
                "path",
                format!("{rel}: jsonnet is not supported: capstan renders Helm, kustomize and directories of YAML/JSON"),
            ));
        }
        if !matches!(ext.as_str(), "yaml" | "yml" | "json") {
            continue;
        }
        let glob_err = |e: String| ArgoError::new(ErrorKind::BadInput, "directory", e);
        if !exclude.is_empty() && crate::glob::glob_match(exclude, &rel).map_err(glob_err)? {
            continue;
        }
        if !include.is_empty() && !crate::glob::glob_match(include, &rel).map_err(glob_err)? {
            continue;
        }
        let text = fs
            .read_to_string(&p)
            .map_err(|e| ArgoError::new(ErrorKind::BadInput, "path", format!("{rel}: {e}")))?;
        if ext == "json" {
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                ArgoError::new(
                    ErrorKind::BadInput,
                    "path",
                    format!("failed to unmarshal {rel:?}: {e}"),
                )
            })?;
            if !v.is_null() {
                out.push(v);
            }
        } else {
            let objs = parse_stream(&text, &rel).map_err(|e| {
                ArgoError::new(
                    ErrorKind::BadInput,
                    "path",
                    format!("failed to unmarshal {rel:?}: {}", e.message),
                )
            })?;
            for o in objs {
                if !o.is_object() {
                    return Err(ArgoError::new(
                        ErrorKind::BadInput,
                        "path",
                        format!("failed to unmarshal {rel:?}: a document is not an object"),
                    ));
                }
                out.push(o);
            }
        }
    }
    Ok(out)
}

fn non_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Built-in Kubernetes kinds and their scope (`true`: namespaced).
const BUILTIN_KINDS: &[(&str, &str, bool)] = &[
    ("", "Binding", true),
    ("", "ComponentStatus", false),
    ("", "ConfigMap", true),
    ("", "Endpoints", true),
    ("", "Event", true),
    ("", "LimitRange", true),
    ("", "Namespace", false),
    ("", "Node", false),
    ("", "PersistentVolume", false),
    ("", "PersistentVolumeClaim", true),
    ("", "Pod", true),
    ("", "PodTemplate", true),
    ("", "ReplicationController", true),
    ("", "ResourceQuota", true),
    ("", "Secret", true),
    ("", "Service", true),
    ("", "ServiceAccount", true),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
        false,
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition", false),
    ("apiregistration.k8s.io", "APIService", false),
    ("apps", "ControllerRevision", true),
    ("apps", "DaemonSet", true),
    ("apps", "Deployment", true),
    ("apps", "ReplicaSet", true),
    ("apps", "StatefulSet", true),
    ("authentication.k8s.io", "TokenReview", false),
    ("authorization.k8s.io", "LocalSubjectAccessReview", true),
    ("authorization.k8s.io", "SelfSubjectAccessReview", false),
    ("authorization.k8s.io", "SelfSubjectRulesReview", false),
    ("authorization.k8s.io", "SubjectAccessReview", false),
    ("autoscaling", "HorizontalPodAutoscaler", true),
    ("batch", "CronJob", true),
    ("batch", "Job", true),
    ("certificates.k8s.io", "CertificateSigningRequest", false),
    ("coordination.k8s.io", "Lease", true),
    ("discovery.k8s.io", "EndpointSlice", true),
    ("events.k8s.io", "Event", true),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema", false),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        false,
    ),
    ("networking.k8s.io", "Ingress", true),
    ("networking.k8s.io", "IngressClass", false),
    ("networking.k8s.io", "NetworkPolicy", true),
    ("node.k8s.io", "RuntimeClass", false),
    ("policy", "PodDisruptionBudget", true),
    ("rbac.authorization.k8s.io", "ClusterRole", false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", false),
    ("rbac.authorization.k8s.io", "Role", true),
    ("rbac.authorization.k8s.io", "RoleBinding", true),
    ("scheduling.k8s.io", "PriorityClass", false),
    ("storage.k8s.io", "CSIDriver", false),
    ("storage.k8s.io", "CSINode", false),
    ("storage.k8s.io", "CSIStorageCapacity", true),
    ("storage.k8s.io", "StorageClass", false),
    ("storage.k8s.io", "VolumeAttachment", false),
    ("argoproj.io", "Application", true),
    ("argoproj.io", "ApplicationSet", true),
    ("argoproj.io", "AppProject", true),
];

fn group_of(o: &Value) -> &str {
    let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    api.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Is `group`/`kind` namespaced? `None` when the cluster does not know it.
fn scope(
    group: &str,
    kind: &str,
    crds: &HashMap<(String, String), bool>,
    opts: &Options,
) -> Option<bool> {
    if let Some((_, _, n)) = BUILTIN_KINDS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
    {
        return Some(*n);
    }
    let gk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    };
    if opts
        .extra_namespaced_kinds
        .iter()
        .any(|e| *e == gk || e.trim_start_matches('/') == gk)
    {
        return Some(true);
    }
    crds.get(&(group.to_string(), kind.to_string())).copied()
}

/// Argo CD's controller: a namespaced object without a namespace gets the destination
/// namespace; a cluster-scoped one loses its namespace. Kinds the cluster does not know
/// are namespaced (Argo CD), or cluster-scoped with
/// [`Options::unknown_kinds_cluster_scoped`]. CustomResourceDefinitions in the same
/// render define their kinds' scope, unless unknown kinds are cluster-scoped (then the
/// cluster is taken not to have them yet).
pub fn apply_namespaces(mut objects: Vec<Value>, dest_ns: &str, opts: &Options) -> Vec<Value> {
    let mut crds: HashMap<(String, String), bool> = HashMap::new();
    if !opts.unknown_kinds_cluster_scoped {
        for o in &objects {
            if o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                let g = o
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let k = o
                    .pointer("/spec/names/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ns = o.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
                crds.insert((g.to_string(), k.to_string()), ns);
            }
        }
    }
    for o in objects.iter_mut() {
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let group = group_of(o).to_string();
        let namespaced =
            scope(&group, &kind, &crds, opts).unwrap_or(!opts.unknown_kinds_cluster_scoped);
        let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        if namespaced {
            let has = md
                .get("namespace")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has && !dest_ns.is_empty() {
                md.insert("namespace".into(), json!(dest_ns));
            }
        } else {
            md.remove("namespace");
        }
    }
    objects
}
