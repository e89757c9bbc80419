//! KRM functions in `generators`, `transformers` and `validators` (kustomize's fn
//! plugins, `api/internal/plugins/fnplugin` over kyaml's `runfn`).
//!
//! A plugin configuration is, as kustomize's plugin loader decides:
//!
//! * **builtin** when its `apiVersion` is `builtin` (group empty, version `builtin`):
//!   capstan's own generators/transformers run it;
//! * otherwise **external**, allowed only with `--enable-alpha-plugins` (kustomize:
//!   `external plugins disabled; unable to load external plugin 'KIND'`). An external
//!   configuration is a **KRM function** when it carries the annotation
//!   `config.kubernetes.io/function` (or the legacy `config.k8s.io/function`, or
//!   `metadata.configFn`, or the legacy `config.kubernetes.io/container` image). The
//!   function spec is read strictly (unknown fields are an error, as kyaml's
//!   `UnmarshalStrict`); container mounts must be relative paths under the
//!   kustomization directory (kustomize's loader check).
//!
//! **Exec functions** (`exec: {path, args, envs}`) run with `--enable-exec` through a
//! [`FunctionRunner`] (the engine itself does no I/O; the CLI supplies a process runner).
//! The protocol is kyaml's: a `config.kubernetes.io/v1` `ResourceList` with `items` and
//! `functionConfig` on stdin (the function config gets
//! `config.kubernetes.io/local-config: "true"`; items carry the reader annotations
//! `config.kubernetes.io/index`, `internal.config.kubernetes.io/index` and the ids
//! `config.k8s.io/id`, `internal.config.kubernetes.io/id`; a transformer's items also
//! `kustomize.config.k8s.io/id`); stdout is read back as a `ResourceList` / `List`
//! (unwrapped) or as a plain YAML stream. The working directory is the directory of the
//! kustomization whose field lists the configuration, and `exec.path` is resolved
//! against it as kustomize's `exec.Cmd` does (a bare name is looked up in `PATH`).
//! kustomize does not confine `exec.path` to the load root; neither does capstan.
//!
//! A generator's items are the function config alone; its output resources get
//! kustomize's `UpdateResourceOptions` (`kustomize.config.k8s.io/needs-hash`,
//! `kustomize.config.k8s.io/behavior`). A transformer's output replaces the resources
//! as kustomize's `UpdateResMapValues` does: outputs are matched to the current
//! resources by id (updated in place), new ids are appended, and resources missing from
//! the output are removed. A validator runs as a transformer that must not change
//! anything but the `validated-by` label.
//!
//! **Container functions** need a container runtime and are an error; so are starlark
//! functions (kustomize v5 dropped them). kustomize silently skips an exec function
//! without `--enable-exec`; capstan reports it instead of printing wrong output.

use std::path::Path;

use capstan_yaml::{Mapping, Node};

use crate::accumulate::{plugin_configs, Acc, Ctx};
use crate::error::{kerr, Result};
use crate::kustfile::Kustomization;
use crate::resource::{Behavior, Resource};

/// kyaml's function annotation and its legacy spelling, in the order kyaml reads them.
const FUNCTION_ANNOTATIONS: [&str; 2] = ["config.kubernetes.io/function", "config.k8s.io/function"];
/// kyaml's legacy container-image annotation.
const LEGACY_CONTAINER_ANNOTATION: &str = "config.kubernetes.io/container";
const LOCAL_CONFIG: &str = "config.kubernetes.io/local-config";
const KUSTOMIZE_ID: &str = "kustomize.config.k8s.io/id";
const NEEDS_HASH: &str = "kustomize.config.k8s.io/needs-hash";
const BEHAVIOR: &str = "kustomize.config.k8s.io/behavior";
const INDEX: &str = "internal.config.kubernetes.io/index";
const LEGACY_INDEX: &str = "config.kubernetes.io/index";
const ID: &str = "internal.config.kubernetes.io/id";
const LEGACY_ID: &str = "config.k8s.io/id";
/// Annotations the kyaml reader/writer and kustomize's build add, removed from a
/// function's output (kustomize drops them by the end of the build).
const TRANSIENT: [&str; 9] = [
    KUSTOMIZE_ID,
    INDEX,
    LEGACY_INDEX,
    ID,
    LEGACY_ID,
    "internal.config.kubernetes.io/path",
    "config.kubernetes.io/path",
    "internal.config.kubernetes.io/seqindent",
    "internal.config.kubernetes.io/annotations-migration-resource-id",
];
/// kustomize's `konfig.ValidatedByLabelKey`.
const VALIDATED_BY: &str = "validated-by";
/// How much of a failing function's stderr goes into the error.
const MAX_STDERR: usize = 4096;

/// One run of an exec function.
#[derive(Debug, Clone, Copy)]
pub struct ExecCall<'a> {
    /// `exec.path` as written in the function spec.
    pub path: &'a str,
    /// `exec.args`.
    pub args: &'a [String],
    /// `exec.envs` (`KEY=VALUE`, or `KEY` to pass the host's value).
    pub envs: &'a [String],
    /// The working directory, a path of the build's file system: the directory of the
    /// kustomization that lists the function. A relative `path` is resolved against it.
    pub dir: &'a Path,
    /// The `ResourceList` to write to the function's stdin.
    pub stdin: &'a [u8],
}

/// What an exec function did.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// It exited with status 0.
    pub success: bool,
    /// How it ended, as Go prints it (`exit status 1`, `signal: killed`).
    pub status: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs exec KRM functions: the only process I/O of a build, kept behind this trait so
/// the engine stays pure (the CLI runs real processes; tests use a fake).
pub trait FunctionRunner {
    /// Run the executable. `Err` when it could not be started (the message is shown after
    /// kustomize's `couldn't execute function: `).
    fn run(&self, call: &ExecCall<'_>) -> std::result::Result<ExecOutput, String>;
}

/// A parsed function spec (kyaml's `runtimeutil.FunctionSpec`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FnSpec {
    Exec {
        path: String,
        args: Vec<String>,
        envs: Vec<String>,
    },
    Container {
        image: String,
    },
    /// Neither `exec.path` nor `container.image`.
    Empty,
}

/// An external plugin configuration that is a KRM function.
#[derive(Debug, Clone)]
pub(crate) struct KrmFn {
    spec: FnSpec,
    /// kustomize's plugin name for messages: `api: V, kind: K, name: N`.
    name: String,
    /// Where the configuration was written (a file, or the kustomization for inline ones).
    source: String,
}

/// Where a `generators`/`transformers`/`validators` entry's configurations come from.
pub(crate) fn entry_source(k: &Kustomization, entry: &Node) -> String {
    match entry {
        Node::Scalar(s) if !s.value.contains('\n') => s.value.clone(),
        _ => k
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kustomization.yaml".into()),
    }
}

/// kustomize's `isBuiltinPlugin`: group empty and version `builtin`.
fn is_builtin(cfg: &Node) -> bool {
    cfg.str_at(&["apiVersion"]) == Some("builtin")
}

fn org_id(cfg: &Node) -> String {
    Resource::new(cfg.clone()).id().to_string()
}

/// Decide how a plugin configuration runs (kustomize's `loadAndConfigurePlugin`):
/// `None` for a builtin one, the function for a KRM function, an error otherwise.
pub(crate) fn load(ctx: &Ctx, cfg: &Node, source: &str) -> Result<Option<KrmFn>> {
    if is_builtin(cfg) {
        return Ok(None);
    }
    let kind = cfg.str_at(&["kind"]).unwrap_or("");
    if !ctx.opts.enable_alpha_plugins {
        return Err(kerr!(
            "external plugins disabled; unable to load external plugin '{kind}' (configured in {source}; KRM functions need --enable-alpha-plugins, exec functions also --enable-exec)"
        ));
    }
    let Some(spec) = function_spec(cfg)? else {
        return Err(kerr!(
            "plugin {} (configured in {source}) is neither a builtin (apiVersion: builtin) nor a KRM function (annotation config.kubernetes.io/function); capstan does not run legacy exec or Go plugins from the kustomize plugin home",
            org_id(cfg)
        ));
    };
    check_mounts(cfg)?;
    let name = format!(
        "api: {}, kind: {kind}, name: {}",
        cfg.str_at(&["apiVersion"]).unwrap_or(""),
        cfg.str_at(&["metadata", "name"]).unwrap_or("")
    );
    Ok(Some(KrmFn {
        spec,
        name,
        source: source.to_string(),
    }))
}

/// kyaml's `GetFunctionSpec`: the function annotation (or its legacy spelling), else
/// `metadata.configFn`, else the legacy container annotation.
pub(crate) fn function_spec(cfg: &Node) -> Result<Option<FnSpec>> {
    let annos = cfg.get_path(&["metadata", "annotations"]);
    for key in FUNCTION_ANNOTATIONS {
        let text = annos.and_then(|a| a.get(key)).and_then(Node::as_str);
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            let docs = capstan_yaml::parse_documents(text, key)
                .map_err(|e| kerr!("{key} unmarshal error: {e}"))?;
            let doc = docs.into_iter().next().unwrap_or_else(Node::null);
            return parse_spec(&doc, key).map(Some);
        }
    }
    if let Some(n) = cfg
        .get_path(&["metadata", "configFn"])
        .filter(|n| !n.is_null())
    {
        return parse_spec(n, "configFn").map(Some);
    }
    let legacy = annos
        .and_then(|a| a.get(LEGACY_CONTAINER_ANNOTATION))
        .and_then(Node::as_str);
    if let Some(image) = legacy.filter(|t| !t.is_empty()) {
        return Ok(Some(FnSpec::Container {
            image: image.to_string(),
        }));
    }
    Ok(None)
}

fn unknown_field(key: &str, field: &str) -> crate::error::KustomizeError {
    if field == "starlark" {
        return kerr!(
            "{key} unmarshal error: unknown field \"starlark\": starlark functions are not supported (kustomize v5 removed them; capstan runs only exec functions)"
        );
    }
    kerr!("{key} unmarshal error: unknown field \"{field}\"")
}

fn strings(n: Option<&Node>, key: &str, field: &str) -> Result<Vec<String>> {
    match n {
        None => Ok(vec![]),
        Some(n) if n.is_null() => Ok(vec![]),
        Some(Node::Sequence(s)) => s
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    kerr!("{key} unmarshal error: {field} must be a list of strings")
                })
            })
            .collect(),
        Some(_) => Err(kerr!(
            "{key} unmarshal error: {field} must be a list of strings"
        )),
    }
}

fn mapping<'a>(n: Option<&'a Node>, key: &str, field: &str) -> Result<Option<&'a Mapping>> {
    match n {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(Node::Mapping(m)) => Ok(Some(m)),
        Some(_) => Err(kerr!("{key} unmarshal error: {field} must be a mapping")),
    }
}

/// The fields of kyaml's `FunctionSpec`, read strictly.
fn parse_spec(doc: &Node, key: &str) -> Result<FnSpec> {
    let Some(top) = mapping(Some(doc), key, "the function spec")? else {
        return Ok(FnSpec::Empty);
    };
    for (f, _) in top.iter() {
        if !matches!(f, "deferFailure" | "container" | "exec") {
            return Err(unknown_field(key, f));
        }
    }
    if let Some(c) = mapping(top.get("container"), key, "container")? {
        for (f, _) in c.iter() {
            if !matches!(f, "image" | "network" | "mounts" | "envs") {
                return Err(unknown_field(key, &format!("container.{f}")));
            }
        }
        let image = c.get("image").and_then(Node::as_str).unwrap_or("");
        if !image.is_empty() {
            return Ok(FnSpec::Container {
                image: image.to_string(),
            });
        }
    }
    if let Some(e) = mapping(top.get("exec"), key, "exec")? {
        for (f, _) in e.iter() {
            if !matches!(f, "path" | "args" | "envs") {
                return Err(unknown_field(key, &format!("exec.{f}")));
            }
        }
        let path = e.get("path").and_then(Node::as_str).unwrap_or("");
        if !path.is_empty() {
            return Ok(FnSpec::Exec {
                path: path.to_string(),
                args: strings(e.get("args"), key, "exec.args")?,
                envs: strings(e.get("envs"), key, "exec.envs")?,
            });
        }
    }
    Ok(FnSpec::Empty)
}

/// kustomize's loader check: container mounts must be relative and stay under the
/// kustomization directory.
fn check_mounts(cfg: &Node) -> Result<()> {
    let annos = cfg.get_path(&["metadata", "annotations"]);
    let text = FUNCTION_ANNOTATIONS
        .iter()
        .find_map(|k| annos.and_then(|a| a.get(k)).and_then(Node::as_str))
        .filter(|t| !t.is_empty());
    let spec = match text {
        Some(t) => capstan_yaml::parse_documents(t, "function spec")?
            .into_iter()
            .next(),
        None => cfg.get_path(&["metadata", "configFn"]).cloned(),
    };
    let Some(Node::Sequence(mounts)) = spec
        .as_ref()
        .and_then(|s| s.get_path(&["container", "mounts"]))
    else {
        return Ok(());
    };
    for m in mounts {
        let src = m.str_at(&["src"]).unwrap_or("");
        if src.starts_with('/') {
            return Err(kerr!(
                "plugin {} with mount path '{src}' is not permitted; mount paths must be relative to the current kustomization directory",
                org_id(cfg)
            ));
        }
        if go_clean_relative(src).starts_with("../") {
            return Err(kerr!(
                "plugin {} with mount path '{src}' is not permitted; mount paths must be under the current kustomization directory",
                org_id(cfg)
            ));
        }
    }
    Ok(())
}

/// Go's `filepath.Clean` of a relative path.
fn go_clean_relative(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        ".".to_string()
    } else {
        out.join("/")
    }
}

fn annotations_mut(n: &mut Node) -> &mut Mapping {
    n.ensure_mapping_path(&["metadata", "annotations"])
}

/// The function config as kustomize passes it: marked local so a generator echoing its
/// input does not output it.
fn function_config(cfg: &Node) -> Node {
    let mut fc = cfg.clone();
    annotations_mut(&mut fc).insert(LOCAL_CONFIG, Node::string("true"));
    fc
}

/// kyaml's reader annotations (index) and the function filter's ids on input item `i`.
fn annotate_item(n: &mut Node, i: usize) {
    let a = annotations_mut(n);
    a.insert(LEGACY_INDEX, Node::string(i.to_string()));
    a.insert(INDEX, Node::string(i.to_string()));
    a.insert(LEGACY_ID, Node::string((i + 1).to_string()));
    a.insert(ID, Node::string((i + 1).to_string()));
}

/// The input `ResourceList`.
fn resource_list(items: Vec<Node>, fc: &Node) -> String {
    let mut m = Mapping::new();
    m.insert("apiVersion", Node::string("config.kubernetes.io/v1"));
    m.insert("kind", Node::string("ResourceList"));
    m.insert("items", Node::Sequence(items));
    m.insert("functionConfig", fc.clone());
    capstan_yaml::emit_document(&Node::Mapping(m))
}

impl KrmFn {
    fn describe(&self) -> String {
        let what = match &self.spec {
            FnSpec::Exec { path, .. } => format!("exec function '{path}'"),
            FnSpec::Container { image } => format!("container function '{image}'"),
            FnSpec::Empty => "function".to_string(),
        };
        format!("{what} ({}) configured in {}", self.name, self.source)
    }

    /// Run the function over `items`; the output items.
    fn invoke(&self, ctx: &Ctx, dir: &Path, items: Vec<Node>, fc: &Node) -> Result<Vec<Node>> {
        let (path, args, envs) = match &self.spec {
            FnSpec::Exec { path, args, envs } => (path, args, envs),
            FnSpec::Container { image } => {
                return Err(kerr!(
                    "container functions need a container runtime; capstan does not run containers: image '{image}' of {} configured in {}",
                    self.name,
                    self.source
                ))
            }
            FnSpec::Empty => {
                return Err(kerr!(
                    "the function spec of {} configured in {} has neither exec.path nor container.image",
                    self.name,
                    self.source
                ))
            }
        };
        if !ctx.opts.enable_exec {
            return Err(kerr!(
                "{} not run: exec functions need --enable-exec (with --enable-alpha-plugins); do not enable it for untrusted configurations",
                self.describe()
            ));
        }
        let Some(runner) = ctx.runner else {
            return Err(kerr!(
                "{} not run: this build has no process runner for exec functions",
                self.describe()
            ));
        };
        let input = resource_list(items, fc);
        let call = ExecCall {
            path,
            args,
            envs,
            dir,
            stdin: input.as_bytes(),
        };
        let out = runner
            .run(&call)
            .map_err(|e| kerr!("couldn't execute function: {e} ({})", self.describe()))?;
        if !out.success {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr.trim();
            let tail = if stderr.len() > MAX_STDERR {
                let mut cut = stderr.len() - MAX_STDERR;
                while !stderr.is_char_boundary(cut) {
                    cut += 1;
                }
                format!("...{}", &stderr[cut..])
            } else {
                stderr.to_string()
            };
            let detail = if tail.is_empty() {
                String::new()
            } else {
                format!("; stderr: {tail}")
            };
            return Err(kerr!(
                "couldn't execute function: {} ({}){detail}",
                out.status,
                self.describe()
            ));
        }
        let text = String::from_utf8(out.stdout)
            .map_err(|_| kerr!("the output of {} is not UTF-8", self.describe()))?;
        self.read_output(&text)
    }

    /// kyaml's `ByteReader`: one `ResourceList`/`List` document is unwrapped, otherwise
    /// every document is an item.
    fn read_output(&self, text: &str) -> Result<Vec<Node>> {
        let src = format!("output of {}", self.describe());
        let docs: Vec<Node> = capstan_yaml::parse_documents(text, &src)?
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let docs = match docs.as_slice() {
            [one]
                if matches!(one.str_at(&["kind"]), Some("ResourceList" | "List"))
                    && one.get("items").is_some() =>
            {
                match one.get("items") {
                    Some(Node::Sequence(items)) => items.clone(),
                    Some(n) if n.is_null() => vec![],
                    _ => return Err(kerr!("{src}: items must be a list")),
                }
            }
            _ => docs,
        };
        let mut out = Vec::with_capacity(docs.len());
        for (i, d) in docs.into_iter().enumerate() {
            if !matches!(d, Node::Mapping(_)) {
                return Err(kerr!("{src}: item {i} is not a mapping"));
            }
            out.push(d);
        }
        Ok(out)
    }
}

fn annotation<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    n.get_path(&["metadata", "annotations"])?.get(key)?.as_str()
}

/// Remove the reader/build annotations (and an emptied annotations map).
fn strip_transient(n: &mut Node) {
    let Some(meta) = n.get_mut("metadata").and_then(Node::as_mapping_mut) else {
        return;
    };
    let Some(Node::Mapping(a)) = meta.get_mut("annotations") else {
        return;
    };
    let had = !a.is_empty();
    for k in TRANSIENT {
        a.remove(k);
    }
    if had && a.is_empty() {
        meta.remove("annotations");
    }
}

/// kyaml's reader annotations kustomize removes from every output resource.
const READER_ANNOTATIONS: [&str; 5] = [
    "internal.config.kubernetes.io/path",
    INDEX,
    "internal.config.kubernetes.io/seqindent",
    "config.kubernetes.io/path",
    LEGACY_INDEX,
];

/// Remove kyaml's reader annotations (an emptied annotations map goes too).
pub(crate) fn remove_reader_annotations(n: &mut Node) {
    let Some(meta) = n.get_mut("metadata").and_then(Node::as_mapping_mut) else {
        return;
    };
    let Some(Node::Mapping(a)) = meta.get_mut("annotations") else {
        return;
    };
    if !READER_ANNOTATIONS.iter().any(|k| a.contains_key(k)) {
        return;
    }
    for k in READER_ANNOTATIONS {
        a.remove(k);
    }
    if a.is_empty() {
        meta.remove("annotations");
    }
}

fn is_local(n: &Node) -> bool {
    annotation(n, LOCAL_CONFIG) == Some("true")
}

/// Run a generator function; its resources, with kustomize's generator options.
pub(crate) fn generate(
    ctx: &Ctx,
    k: &Kustomization,
    f: &KrmFn,
    cfg: &Node,
) -> Result<Vec<Resource>> {
    let fc = function_config(cfg);
    let mut item = fc.clone();
    annotate_item(&mut item, 0);
    let out = f.invoke(ctx, &k.dir, vec![item], &fc)?;
    let mut res = Vec::new();
    for mut n in out {
        strip_transient(&mut n);
        // kustomize's IgnoreLocal drops these (the echoed function config) at the end
        // of the kustomization.
        if is_local(&n) {
            continue;
        }
        // kustomize's UpdateResourceOptions.
        let needs_hash = match annotation(&n, NEEDS_HASH) {
            None => false,
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                kerr!(
                    "the annotation \"{NEEDS_HASH}\" contains an invalid value (\"{v}\") ({})",
                    f.describe()
                )
            })?,
        };
        let behavior = match annotation(&n, BEHAVIOR) {
            Some("merge") => Behavior::Merge,
            Some("replace") => Behavior::Replace,
            _ => Behavior::Create,
        };
        if let Some(a) = n
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Node::as_mapping_mut)
        {
            a.remove(NEEDS_HASH);
            a.remove(BEHAVIOR);
            if a.is_empty() {
                n.get_mut("metadata")
                    .and_then(Node::as_mapping_mut)
                    .map(|m| m.remove("annotations"));
            }
        }
        let mut r = Resource::new(n);
        r.generated = true;
        r.needs_hash = needs_hash;
        r.behavior = behavior;
        res.push(r);
    }
    Ok(res)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The part of an id kustomize's `ResId.Equals` compares (namespace `default` and
/// empty are the same).
fn id_key(n: &Node) -> (String, String, String, String) {
    let av = n.str_at(&["apiVersion"]).unwrap_or("");
    let ns = n.str_at(&["metadata", "namespace"]).unwrap_or("");
    (
        av.to_string(),
        n.str_at(&["kind"]).unwrap_or("").to_string(),
        n.str_at(&["metadata", "name"]).unwrap_or("").to_string(),
        if ns == "default" { "" } else { ns }.to_string(),
    )
}

/// kustomize's id annotation value: the YAML of the current `ResId` (sigs.k8s.io/yaml,
/// keys sorted, empty fields omitted).
fn kustomize_id(r: &Resource) -> String {
    let id = r.id();
    let mut m = Mapping::new();
    for (k, v) in [
        ("group", &id.group),
        ("kind", &id.kind),
        ("name", &id.name),
        ("namespace", &r.namespace().to_string()),
        ("version", &id.version),
    ] {
        if !v.is_empty() {
            m.insert(k, Node::string(v.clone()));
        }
    }
    capstan_yaml::emit_document(&Node::Mapping(m))
}

/// Run a transformer function over the accumulated resources.
pub(crate) fn transform(
    ctx: &Ctx,
    k: &Kustomization,
    acc: &mut Acc,
    f: &KrmFn,
    cfg: &Node,
) -> Result<()> {
    let fc = function_config(cfg);
    let items: Vec<Node> = acc
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut n = r.node.clone();
            annotations_mut(&mut n).insert(KUSTOMIZE_ID, Node::string(kustomize_id(r)));
            annotate_item(&mut n, i);
            n
        })
        .collect();
    let out = f.invoke(ctx, &k.dir, items, &fc)?;
    update_resources(f, &mut acc.resources, out)
}

/// kustomize's `UpdateResMapValues`.
fn update_resources(f: &KrmFn, resources: &mut Vec<Resource>, out: Vec<Node>) -> Result<()> {
    let inputs = resources.clone();
    let mut seen = std::collections::HashSet::new();
    for mut n in out {
        // The function filter's id says which input an output came from (kept only to
        // carry kustomize's bookkeeping over to a renamed resource).
        let from = annotation(&n, ID)
            .or_else(|| annotation(&n, LEGACY_ID))
            .and_then(|v| v.parse::<usize>().ok())
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| inputs.get(i));
        let from = from.cloned();
        strip_transient(&mut n);
        let key = id_key(&n);
        if !seen.insert(key.clone()) {
            let r = Resource::new(n);
            return Err(kerr!(
                "plugin {} generated duplicate resource: {} ({})",
                f.name,
                r.id(),
                f.describe()
            ));
        }
        if let Some(old) = resources.iter_mut().find(|r| id_key(&r.node) == key) {
            old.node = n;
        } else if let Some(mut r) = from {
            r.node = n;
            resources.push(r);
        } else {
            resources.push(Resource::new(n));
        }
    }
    resources.retain(|r| seen.contains(&id_key(&r.node)));
    Ok(())
}

fn without_validated_by(n: &Node) -> Node {
    let mut n = n.clone();
    if let Some(l) = n
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Node::as_mapping_mut)
    {
        l.remove(VALIDATED_BY);
        if l.is_empty() {
            n.get_mut("metadata")
                .and_then(Node::as_mapping_mut)
                .map(|m| m.remove("labels"));
        }
    }
    n
}

/// kustomize's `runValidators`: each `validators` configuration runs as a transformer
/// that may only add the `validated-by` label.
pub(crate) fn run_validators(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for entry in k.seq("validators").to_vec() {
        let source = entry_source(k, &entry);
        for cfg in plugin_configs(ctx, k, &entry)? {
            let before: Vec<Node> = acc.resources.iter().map(|r| r.node.clone()).collect();
            match load(ctx, &cfg, &source)? {
                None => crate::transformers::builtin_transformer(ctx, k, acc, &cfg)?,
                Some(f) => transform(ctx, k, acc, &f, &cfg)?,
            }
            let mut after: Vec<Node> = acc
                .resources
                .iter()
                .map(|r| without_validated_by(&r.node))
                .collect();
            let mut before = before;
            let key = |n: &Node| capstan_yaml::emit_document(n);
            before.sort_by_key(key);
            after.sort_by_key(key);
            if before != after {
                return Err(kerr!(
                    "validator shouldn't modify the resource map: {} configured in {source} changed the resources",
                    org_id(&cfg)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build_to_string, build_to_string_with_runner, BuildOptions, Reorder};
    use capstan_vfs::MemFs;
    use std::cell::RefCell;
    use std::path::PathBuf;

    /// What the fake runner saw.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        args: Vec<String>,
        dir: PathBuf,
        stdin: String,
    }

    /// An in-memory exec function: answers every call with `reply(stdin)`.
    struct Fake<F: Fn(&str) -> ExecOutput> {
        reply: F,
        calls: RefCell<Vec<Seen>>,
    }

    impl<F: Fn(&str) -> ExecOutput> FunctionRunner for Fake<F> {
        fn run(&self, call: &ExecCall<'_>) -> std::result::Result<ExecOutput, String> {
            let stdin = String::from_utf8(call.stdin.to_vec()).unwrap();
            self.calls.borrow_mut().push(Seen {
                path: call.path.into(),
                args: call.args.to_vec(),
                dir: call.dir.to_path_buf(),
                stdin: stdin.clone(),
            });
            Ok((self.reply)(&stdin))
        }
    }

    fn fake<F: Fn(&str) -> ExecOutput>(reply: F) -> Fake<F> {
        Fake {
            reply,
            calls: RefCell::new(vec![]),
        }
    }

    fn ok(stdout: &str) -> ExecOutput {
        ExecOutput {
            success: true,
            status: "exit status 0".into(),
            stdout: stdout.as_bytes().to_vec(),
            stderr: vec![],
        }
    }

    fn opts(alpha: bool, exec: bool) -> BuildOptions {
        BuildOptions {
            reorder: Reorder::None,
            enable_alpha_plugins: alpha,
            enable_exec: exec,
            ..Default::default()
        }
    }

    const SECRET: &str =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dummy\ntype: Opaque\nstringData:\n  foo: bar\n";
    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nginx\n";

    fn exec_cfg(kind: &str, path: &str) -> String {
        format!(
            "apiVersion: example.com/v1\nkind: {kind}\nmetadata:\n  name: demo\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: {path}\nspec:\n  size: small\n"
        )
    }

    fn tree(field: &str, cfg: &str) -> MemFs {
        MemFs::new()
            .with("/app/secret.yaml", SECRET)
            .with("/app/fn.yaml", cfg)
            .with(
                "/app/kustomization.yaml",
                format!("resources:\n- secret.yaml\n{field}:\n- fn.yaml\n"),
            )
    }

    fn spec_of(cfg: &str) -> Result<Option<FnSpec>> {
        function_spec(&capstan_yaml::parse_documents(cfg, "t").unwrap()[0])
    }

    #[test]
    fn function_spec_annotation_exec_with_args_and_envs() {
        let cfg = "kind: K\nmetadata:\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./fn\n        args: [a, b]\n        envs: [X=1]\n";
        assert_eq!(
            spec_of(cfg).unwrap(),
            Some(FnSpec::Exec {
                path: "./fn".into(),
                args: vec!["a".into(), "b".into()],
                envs: vec!["X=1".into()]
            })
        );
    }

    #[test]
    fn function_spec_legacy_annotation_config_fn_and_container_annotation() {
        let legacy = "kind: K\nmetadata:\n  annotations:\n    config.k8s.io/function: |\n      container:\n        image: gcr.io/x/y:v1\n";
        assert_eq!(
            spec_of(legacy).unwrap(),
            Some(FnSpec::Container {
                image: "gcr.io/x/y:v1".into()
            })
        );
        let config_fn = "kind: K\nmetadata:\n  configFn:\n    exec:\n      path: ./g\n";
        assert!(
            matches!(spec_of(config_fn).unwrap(), Some(FnSpec::Exec { path, .. }) if path == "./g")
        );
        let image =
            "kind: K\nmetadata:\n  annotations:\n    config.kubernetes.io/container: img:1\n";
        assert_eq!(
            spec_of(image).unwrap(),
            Some(FnSpec::Container {
                image: "img:1".into()
            })
        );
        assert_eq!(spec_of("kind: K\nmetadata:\n  name: x\n").unwrap(), None);
    }

    #[test]
    fn function_spec_is_strict_and_starlark_is_named() {
        let typo = "kind: K\nmetadata:\n  annotations:\n    config.kubernetes.io/function: |\n      execs:\n        path: ./fn\n";
        let e = spec_of(typo).unwrap_err().to_string();
        assert!(
            e.contains("config.kubernetes.io/function unmarshal error: unknown field \"execs\""),
            "{e}"
        );
        let star = "kind: K\nmetadata:\n  annotations:\n    config.kubernetes.io/function: |\n      starlark:\n        path: x.star\n";
        let e = spec_of(star).unwrap_err().to_string();
        assert!(e.contains("starlark functions are not supported"), "{e}");
    }

    #[test]
    fn external_plugin_needs_enable_alpha_plugins() {
        let fs = tree("generators", &exec_cfg("MyGen", "./gen.sh"));
        let e = build_to_string(&fs, Path::new("/app"), &opts(false, false)).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("loading generator plugins: failed to load generator: external plugins disabled; unable to load external plugin 'MyGen'"),
            "{e}"
        );
        assert!(!e.contains("builtin MyGen"), "{e}");
    }

    #[test]
    fn exec_function_needs_enable_exec() {
        let fs = tree("generators", &exec_cfg("MyGen", "./gen.sh"));
        let r = fake(|_| ok(DEPLOY));
        let e = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, false), &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exec function './gen.sh'"), "{e}");
        assert!(e.contains("--enable-exec"), "{e}");
        assert!(e.contains("configured in fn.yaml"), "{e}");
        assert!(r.calls.borrow().is_empty());
    }

    #[test]
    fn exec_function_without_runner_is_an_error() {
        let fs = tree("generators", &exec_cfg("MyGen", "./gen.sh"));
        let e = build_to_string(&fs, Path::new("/app"), &opts(true, true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no process runner"), "{e}");
    }

    #[test]
    fn container_function_is_an_error_naming_image_and_file() {
        let cfg = "apiVersion: example.com/v1\nkind: Svc\nmetadata:\n  name: demo\n  annotations:\n    config.kubernetes.io/function: |\n      container:\n        image: gcr.io/example/fn:v1\n";
        for field in ["generators", "transformers", "validators"] {
            let fs = tree(field, cfg);
            let r = fake(|_| ok(""));
            let e = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(
                    "container functions need a container runtime; capstan does not run containers"
                ),
                "{field}: {e}"
            );
            assert!(
                e.contains("gcr.io/example/fn:v1") && e.contains("fn.yaml"),
                "{e}"
            );
            assert!(!e.contains("builtin"), "{e}");
        }
    }

    #[test]
    fn container_mounts_must_stay_under_the_kustomization() {
        for (src, phrase) in [
            (
                "/tmp/dir",
                "mount paths must be relative to the current kustomization directory",
            ),
            (
                "../up",
                "mount paths must be under the current kustomization directory",
            ),
        ] {
            let cfg = format!("apiVersion: v1alpha1\nkind: RenderHelmChart\nmetadata:\n  name: demo\n  annotations:\n    config.kubernetes.io/function: |\n      container:\n        image: img\n        mounts:\n        - type: bind\n          src: {src}\n          dst: /charts\n");
            let fs = tree("generators", &cfg);
            let e = build_to_string(&fs, Path::new("/app"), &opts(true, false))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("plugin RenderHelmChart.v1alpha1.[noGrp]/demo.[noNs] with mount path '{src}' is not permitted; {phrase}")),
                "{e}"
            );
        }
    }

    #[test]
    fn build_removes_kyaml_reader_annotations_from_every_resource() {
        let fs = MemFs::new()
            .with("/app/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    config.kubernetes.io/path: x.yaml\n    config.kubernetes.io/index: '0'\n    internal.config.kubernetes.io/path: x.yaml\n    internal.config.kubernetes.io/index: '0'\n    internal.config.kubernetes.io/seqindent: compact\n    keep: me\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    config.kubernetes.io/path: y.yaml\n")
            .with("/app/kustomization.yaml", "resources:\n- a.yaml\n");
        let out = build_to_string(&fs, Path::new("/app"), &opts(false, false)).unwrap();
        assert_eq!(
            out,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    keep: me\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
        );
    }

    #[test]
    fn go_clean_keeps_leading_parent_components() {
        assert_eq!(go_clean_relative("a/../../b"), "../b");
        assert_eq!(go_clean_relative("./a/./b/"), "a/b");
        assert_eq!(go_clean_relative(".."), "..");
        assert_eq!(go_clean_relative("a/.."), ".");
    }

    #[test]
    fn builtin_api_version_wins_over_a_function_annotation() {
        let cfg = "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./never\nlabels:\n  a: b\nfieldSpecs:\n- path: metadata/labels\n  create: true\n";
        let fs = tree("transformers", cfg);
        let r = fake(|_| ok(""));
        let out =
            build_to_string_with_runner(&fs, Path::new("/app"), &opts(false, false), &r).unwrap();
        assert!(out.contains("labels:\n    a: b"), "{out}");
        assert!(r.calls.borrow().is_empty());
    }

    #[test]
    fn generator_gets_a_resource_list_in_the_kustomization_dir() {
        let fs = tree("generators", &exec_cfg("MyGen", "./gen.sh"));
        let r = fake(|_| ok(DEPLOY));
        let out =
            build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r).unwrap();
        assert_eq!(
            out,
            format!("{}---\n{DEPLOY}", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dummy\nstringData:\n  foo: bar\ntype: Opaque\n")
        );
        let calls = r.calls.borrow();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].path, "./gen.sh");
        assert_eq!(calls[0].dir, PathBuf::from("/app"));
        let rl = &capstan_yaml::parse_documents(&calls[0].stdin, "rl").unwrap()[0];
        assert_eq!(rl.str_at(&["apiVersion"]), Some("config.kubernetes.io/v1"));
        assert_eq!(rl.str_at(&["kind"]), Some("ResourceList"));
        let fc = rl.get("functionConfig").unwrap();
        assert_eq!(fc.str_at(&["spec", "size"]), Some("small"));
        assert_eq!(annotation(fc, LOCAL_CONFIG), Some("true"));
        let items = rl.get("items").unwrap().as_sequence().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].str_at(&["kind"]), Some("MyGen"));
        for (k, v) in [
            (LEGACY_INDEX, "0"),
            (INDEX, "0"),
            (LEGACY_ID, "1"),
            (ID, "1"),
            (LOCAL_CONFIG, "true"),
        ] {
            assert_eq!(annotation(&items[0], k), Some(v), "{k}");
        }
    }

    #[test]
    fn generator_output_resource_list_is_unwrapped_and_local_config_dropped() {
        let fs = tree("generators", &exec_cfg("MyGen", "./gen.sh"));
        // A framework-style generator: echoes its items (the function config, local) and
        // appends a ConfigMap asking for a hash suffix.
        let r = fake(|stdin| {
            let rl = capstan_yaml::parse_documents(stdin, "in")
                .unwrap()
                .remove(0);
            let mut items = rl.get("items").unwrap().as_sequence().unwrap().clone();
            items.push(
                capstan_yaml::parse_documents(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gen\n  annotations:\n    kustomize.config.k8s.io/needs-hash: \"true\"\n    config.kubernetes.io/path: configmap_gen.yaml\ndata:\n  a: b\n",
                    "cm",
                )
                .unwrap()
                .remove(0),
            );
            let mut m = Mapping::new();
            m.insert("apiVersion", Node::string("config.kubernetes.io/v1"));
            m.insert("kind", Node::string("ResourceList"));
            m.insert("items", Node::Sequence(items));
            ok(&capstan_yaml::emit_document(&Node::Mapping(m)))
        });
        let out =
            build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r).unwrap();
        assert!(!out.contains("MyGen"), "{out}");
        assert!(!out.contains("annotations"), "{out}");
        assert!(
            out.contains("kind: ConfigMap\nmetadata:\n  name: gen-"),
            "hash suffix: {out}"
        );
    }

    #[test]
    fn generator_bad_needs_hash_is_an_error() {
        let fs = tree("generators", &exec_cfg("MyGen", "./gen.sh"));
        let r = fake(|_| {
            ok("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: g\n  annotations:\n    kustomize.config.k8s.io/needs-hash: maybe\n")
        });
        let e = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains an invalid value (\"maybe\")"), "{e}");
    }

    #[test]
    fn generator_behavior_merge_merges_into_an_existing_resource() {
        let fs = MemFs::new()
            .with("/app/fn.yaml", exec_cfg("MyGen", "./gen.sh"))
            .with(
                "/app/kustomization.yaml",
                "configMapGenerator:\n- name: cm\n  literals: [a=1]\n  options:\n    disableNameSuffixHash: true\ngenerators:\n- fn.yaml\n",
            );
        let r = fake(|_| {
            ok("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  annotations:\n    kustomize.config.k8s.io/behavior: merge\ndata:\n  b: \"2\"\n")
        });
        let out =
            build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r).unwrap();
        assert!(out.contains("data:\n  a: \"1\"\n  b: \"2\""), "{out}");
        assert_eq!(out.matches("kind: ConfigMap").count(), 1, "{out}");
    }

    #[test]
    fn failing_function_reports_status_and_stderr() {
        let fs = tree("transformers", &exec_cfg("MyT", "./t.sh"));
        let r = fake(|_| ExecOutput {
            success: false,
            status: "exit status 3".into(),
            stdout: vec![],
            stderr: b"bad config: size\n".to_vec(),
        });
        let e = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("couldn't execute function: exit status 3"),
            "{e}"
        );
        assert!(e.contains("stderr: bad config: size"), "{e}");
        assert!(e.contains("fn.yaml"), "{e}");
    }

    #[test]
    fn transformer_items_carry_kustomize_ids_and_output_replaces_resources() {
        let fs = tree("transformers", &exec_cfg("MyT", "./t.sh"));
        // Renames the Secret (a new id: appended, the old one removed), as kustomize's
        // UpdateResMapValues does.
        let r = fake(|_| {
            ok("apiVersion: v1\nkind: Secret\nmetadata:\n  name: dummyTransformed\nstringData:\n  foo: bar\ntype: Opaque\n")
        });
        let out =
            build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r).unwrap();
        assert_eq!(out, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dummyTransformed\nstringData:\n  foo: bar\ntype: Opaque\n");
        let calls = r.calls.borrow();
        let rl = &capstan_yaml::parse_documents(&calls[0].stdin, "rl").unwrap()[0];
        let item = &rl.get("items").unwrap().as_sequence().unwrap()[0];
        assert_eq!(
            annotation(item, KUSTOMIZE_ID),
            Some("kind: Secret\nname: dummy\nversion: v1\n")
        );
        assert_eq!(annotation(item, INDEX), Some("0"));
        assert_eq!(rl.str_at(&["functionConfig", "kind"]), Some("MyT"));
    }

    #[test]
    fn transformer_updates_in_place_keeping_order_and_drops_missing() {
        let fs = MemFs::new()
            .with("/app/r.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
            .with("/app/fn.yaml", exec_cfg("MyT", "./t.sh"))
            .with("/app/kustomization.yaml", "resources:\n- r.yaml\ntransformers:\n- fn.yaml\n");
        // Echo the items in reverse, without `b`, with a label and the reader annotations.
        let r = fake(|stdin| {
            let rl = capstan_yaml::parse_documents(stdin, "in")
                .unwrap()
                .remove(0);
            let mut items: Vec<Node> = rl
                .get("items")
                .unwrap()
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|n| n.str_at(&["metadata", "name"]) != Some("b"))
                .cloned()
                .collect();
            items.reverse();
            for n in items.iter_mut() {
                n.ensure_mapping_path(&["metadata", "labels"])
                    .insert("seen", Node::string("yes"));
            }
            ok(&capstan_yaml::emit_documents(&items))
        });
        let out =
            build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r).unwrap();
        assert_eq!(
            out,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    seen: \"yes\"\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    seen: \"yes\"\n  name: c\n"
        );
    }

    #[test]
    fn transformer_duplicate_output_is_an_error() {
        let fs = tree("transformers", &exec_cfg("MyT", "./t.sh"));
        let r = fake(|_| ok(&format!("{SECRET}---\n{SECRET}")));
        let e = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "plugin api: example.com/v1, kind: MyT, name: demo generated duplicate resource"
            ),
            "{e}"
        );
    }

    #[test]
    fn exec_args_are_passed() {
        let cfg = "apiVersion: example.com/v1\nkind: MyT\nmetadata:\n  name: demo\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: fn-on-path\n        args: [--mode, strict]\n";
        let fs = tree("transformers", cfg);
        let r = fake(|_| ok(SECRET));
        build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &r).unwrap();
        let calls = r.calls.borrow();
        assert_eq!(calls[0].path, "fn-on-path");
        assert_eq!(calls[0].args, vec!["--mode".to_string(), "strict".into()]);
    }

    #[test]
    fn validator_may_only_add_the_validated_by_label() {
        let fs = tree("validators", &exec_cfg("MyV", "./v.sh"));
        let labelled = fake(|stdin| {
            let rl = capstan_yaml::parse_documents(stdin, "in")
                .unwrap()
                .remove(0);
            let mut items = rl.get("items").unwrap().as_sequence().unwrap().clone();
            for n in items.iter_mut() {
                n.ensure_mapping_path(&["metadata", "labels"])
                    .insert(VALIDATED_BY, Node::string("v"));
            }
            ok(&capstan_yaml::emit_documents(&items))
        });
        let out = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &labelled)
            .unwrap();
        assert!(
            out.contains("labels:\n    validated-by: v\n  name: dummy"),
            "{out}"
        );
        let changing =
            fake(|_| ok("apiVersion: v1\nkind: Secret\nmetadata:\n  name: dummy\ntype: Opaque\n"));
        let e = build_to_string_with_runner(&fs, Path::new("/app"), &opts(true, true), &changing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("validator shouldn't modify the resource map"),
            "{e}"
        );
    }

    #[test]
    fn generator_in_an_overlay_base_runs_in_the_base_dir_with_origin() {
        let fs = MemFs::new()
            .with("/r/base/gener.yaml", "kind: executable\nmetadata:\n  name: demo\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./gen.sh\n")
            .with("/r/base/kustomization.yaml", "generators:\n- gener.yaml\n")
            .with("/r/prod/kustomization.yaml", "resources:\n- ../base\nbuildMetadata: [originAnnotations]\n");
        let r = fake(|_| ok(DEPLOY));
        let out =
            build_to_string_with_runner(&fs, Path::new("/r/prod"), &opts(true, true), &r).unwrap();
        assert_eq!(r.calls.borrow()[0].dir, PathBuf::from("/r/base"));
        assert!(
            out.contains("config.kubernetes.io/origin: |\n      configuredIn: ../base/gener.yaml\n      configuredBy:\n        kind: executable\n        name: demo\n"),
            "{out}"
        );
    }
}
