//! The build pipeline: kustomize's KustTarget (accumulate resources, components,
//! generators, transformers; then hashes, name references and vars at the top).

use std::path::{Path, PathBuf};

use capstan_vfs::{join, normalize, FileSystem};
use capstan_yaml::Node;

use crate::error::{kerr, KustomizeError, Result};
use crate::fieldspec::TransformerConfig;
use crate::kustfile::{self, Kustomization};
use crate::resource::{join_rel, Behavior, Origin, Resource};
use crate::{
    generators, json6902, nameref, order, replacements, smp, transformers, vars, BuildOptions,
    LoadRestrictor, Reorder,
};

pub(crate) struct Ctx<'a> {
    pub fs: &'a dyn FileSystem,
    pub opts: &'a BuildOptions,
    /// Directories being built (cycle detection).
    pub stack: Vec<PathBuf>,
    /// With `buildMetadata` at the top: the path of the kustomization being built,
    /// relative to the top one (kustomize's `kt.origin`).
    pub origin: Option<String>,
    /// kustomize's global OpenAPI schema: unset, the builtin one (`None`) or a custom
    /// document; the first kustomization (top first) that sets it wins.
    pub openapi: Option<Option<std::rc::Rc<serde_json::Value>>>,
    /// The namespace `helmCharts` entries without their own are rendered into: the
    /// nearest kustomization's `namespace`, this one's or an including parent's
    /// (kustomize >= 5.8.1; only helmCharts see the inherited value).
    pub helm_namespace: Option<String>,
    /// Runs exec KRM functions (none: they are an error).
    pub runner: Option<&'a dyn crate::krm::FunctionRunner>,
}

impl Ctx<'_> {
    /// The origin of a file `rel` of the current kustomization.
    pub fn origin_of(&self, rel: &str) -> Option<Origin> {
        self.origin.as_ref().map(|o| Origin {
            path: join_rel(o, rel),
            ..Default::default()
        })
    }
    /// The origin of a builtin generator/transformer of kustomization `k`.
    pub fn builtin_origin(&self, k: &Kustomization, kind: &str) -> Option<Origin> {
        let file = k
            .file
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        self.origin
            .as_ref()
            .map(|o| Origin::builtin(join_rel(o, &file), kind))
    }
}

#[derive(Default)]
pub(crate) struct Acc {
    pub resources: Vec<Resource>,
    /// Shared until a `configurations` file or a child's extends it.
    pub config: std::rc::Rc<TransformerConfig>,
    pub vars: Vec<Node>,
}

/// The part of an id kustomize's duplicate check compares.
type IdKey = (String, String, String, String, String);

/// kustomize's `ResId.Equals` compares group, version and kind: one kind and name under
/// two apiVersions are two resources.
fn id_key(r: &Resource) -> IdKey {
    (
        r.api_version().to_string(),
        r.group(),
        r.kind().to_string(),
        r.name().to_string(),
        r.namespace().to_string(),
    )
}

impl Acc {
    /// [`Acc::append`] with an index of the ids already present (kept up to date).
    fn append_indexed(
        &mut self,
        index: &mut std::collections::HashSet<IdKey>,
        r: Resource,
    ) -> Result<()> {
        if !index.insert(id_key(&r)) {
            return Err(kerr!(
                "may not add resource with an already registered id: {}",
                r.id()
            ));
        }
        self.resources.push(r);
        Ok(())
    }

    fn new() -> Acc {
        Acc {
            resources: Vec::new(),
            config: Default::default(),
            vars: Vec::new(),
        }
    }
    pub fn append(&mut self, r: Resource) -> Result<()> {
        if self.resources.iter().any(|x| same_id(x, &r)) {
            return Err(kerr!(
                "may not add resource with an already registered id: {}",
                r.id()
            ));
        }
        self.resources.push(r);
        Ok(())
    }
}

/// kustomize's `ResId.Equals`: same kind, name and apiVersion, and the same effective
/// namespace (none and `default` are one).
fn same_id(a: &Resource, b: &Resource) -> bool {
    let eff = |ns: &str| if ns.is_empty() { "default" } else { ns }.to_string();
    a.name() == b.name()
        && a.kind() == b.kind()
        && a.api_version() == b.api_version()
        && eff(a.namespace()) == eff(b.namespace())
}

pub(crate) fn build_resources(
    fs: &dyn FileSystem,
    root: &Path,
    opts: &BuildOptions,
) -> Result<Vec<Resource>> {
    build_resources_with(fs, root, opts, None)
}

pub(crate) fn build_resources_with(
    fs: &dyn FileSystem,
    root: &Path,
    opts: &BuildOptions,
    runner: Option<&dyn crate::krm::FunctionRunner>,
) -> Result<Vec<Resource>> {
    let root = normalize(root);
    if !fs.is_dir(&root) {
        return Err(kerr!(
            "must build at directory: not a valid directory: '{}'",
            root.display()
        ));
    }
    // kustomize builds a `kind: Component` given as the root like a Kustomization (only
    // one listed under `resources` is an error).
    let k = kustfile::load(fs, &root)?;
    let meta: Vec<String> = k.strings("buildMetadata").unwrap_or_default();
    let mut ctx = Ctx {
        fs,
        opts,
        stack: vec![root.clone()],
        origin: (!meta.is_empty()).then(String::new),
        openapi: None,
        helm_namespace: None,
        runner,
    };
    set_openapi(&mut ctx, &k)?;
    let mut acc = Acc::new();
    accumulate_target(&mut ctx, &k, &mut acc)?;
    generators::add_hashes(&mut acc.resources)?;
    nameref::fix(&mut acc.resources, &acc.config)?;
    vars::resolve(&mut acc)?;
    // kustomize's IgnoreLocal.
    acc.resources.retain(|r| {
        r.node.str_at(&[
            "metadata",
            "annotations",
            "config.kubernetes.io/local-config",
        ]) != Some("true")
    });
    let origin_annos = meta.iter().any(|m| m == "originAnnotations");
    let managed_by = opts.add_managed_by_label || meta.iter().any(|m| m == "managedByLabel");
    let transformer_annos = meta.iter().any(|m| m == "transformerAnnotations");
    // kustomize ends a build by rewriting every resource's annotations through kyaml's
    // SetAnnotations (removing its build/origin/transformer annotations): values become
    // strings, and an empty (or null) annotations field is removed unless both origin
    // and transformer annotations are kept.
    let keep_empty_annotations = meta.iter().any(|m| m == "originAnnotations")
        && meta.iter().any(|m| m == "transformerAnnotations");
    for r in acc.resources.iter_mut() {
        transformers::strip_internal(&mut r.node);
        rewrite_annotations(&mut r.node, keep_empty_annotations);
        if managed_by {
            r.node.ensure_mapping_path(&["metadata", "labels"]).insert(
                "app.kubernetes.io/managed-by",
                Node::string(crate::MANAGED_BY),
            );
        }
        if origin_annos {
            if let Some(o) = &r.origin {
                let v = capstan_yaml::emit_document(&o.to_node());
                r.node
                    .ensure_mapping_path(&["metadata", "annotations"])
                    .insert("config.kubernetes.io/origin", Node::string(v));
            }
        }
        if transformer_annos && !r.transformations.is_empty() {
            let seq = Node::Sequence(r.transformations.iter().map(Origin::to_node).collect());
            let v = capstan_yaml::emit_document(&seq);
            r.node
                .ensure_mapping_path(&["metadata", "annotations"])
                .insert(
                    "alpha.config.kubernetes.io/transformations",
                    Node::string(v),
                );
        }
    }
    let mut res = acc.resources;
    let sort = k.get("sortOptions");
    // `sortOptions` in the file wins over the command line's `--reorder` (kustomize:
    // "Using the kustomization file over the CLI flag").
    match (opts.reorder, sort) {
        (_, Some(so)) => {
            let o = so.str_at(&["order"]).unwrap_or("");
            match o {
                "legacy" => order::legacy_sort(&mut res, so.get("legacySortOptions")),
                "fifo" => {
                    if so.get("legacySortOptions").is_some_and(|n| !n.is_null()) {
                        return Err(kerr!("the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not 'legacy'"));
                    }
                }
                _ => {
                    return Err(kerr!(
                        "the field 'sortOptions.order' must be one of [fifo, legacy]"
                    ))
                }
            }
        }
        (Reorder::Legacy | Reorder::Unspecified, None) => order::legacy_sort(&mut res, None),
        (Reorder::None, None) => {}
    }
    Ok(res)
}

/// kyaml's `GetAnnotations` then `SetAnnotations`: every value becomes a string of its
/// text (a non-scalar value an empty string); a field that is no mapping, or an empty
/// one, is removed (unless `keep_empty` and it is an empty mapping).
fn rewrite_annotations(node: &mut Node, keep_empty: bool) {
    let Some(meta) = node.get_mut("metadata").and_then(Node::as_mapping_mut) else {
        return;
    };
    let Some(annos) = meta.get_mut("annotations") else {
        return;
    };
    match annos {
        Node::Mapping(m) if !m.entries.is_empty() => {
            for (_, v) in m.entries.iter_mut() {
                let text = match v {
                    Node::Scalar(s) => s.value.clone(),
                    _ => String::new(),
                };
                let is_string = matches!(v, Node::Scalar(s) if s.tag == capstan_yaml::Tag::Str);
                if !is_string {
                    *v = Node::string(text);
                }
            }
        }
        Node::Mapping(_) if keep_empty => {}
        _ => {
            meta.remove("annotations");
        }
    }
}

pub(crate) fn check_file(ctx: &Ctx, dir: &Path, path: &Path) -> Result<()> {
    if ctx.opts.load_restrictor == LoadRestrictor::RootOnly {
        let real = ctx
            .fs
            .real_path(path)
            .unwrap_or_else(|_| path.to_path_buf());
        let rdir = ctx.fs.real_path(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !real.starts_with(&rdir) {
            return Err(kerr!(
                "security; file '{}' is not in or below '{}'",
                path.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Read a file of the kustomization in `dir` (load restrictions applied).
pub(crate) fn read_file(ctx: &Ctx, dir: &Path, rel: &str) -> Result<(PathBuf, String)> {
    let path = join(dir, rel);
    check_file(ctx, dir, &path)?;
    if ctx.fs.is_dir(&path) {
        return Err(kerr!("'{}' must resolve to a file", path.display()));
    }
    let text = ctx
        .fs
        .read_to_string(&path)
        .map_err(|e| kerr!("{}: {e}", path.display()))?;
    Ok((path, text))
}

/// Resources from YAML text (lists flattened, empty documents skipped).
pub(crate) fn resources_from_text(text: &str, source: &str) -> Result<Vec<Resource>> {
    let docs = capstan_yaml::parse_documents(text, source)?;
    let mut out = Vec::new();
    for d in docs {
        push_doc(d, source, &mut out)?;
    }
    Ok(out)
}

fn push_doc(d: Node, source: &str, out: &mut Vec<Resource>) -> Result<()> {
    match d {
        Node::Scalar(s) if s.is_null() => Ok(()),
        Node::Mapping(ref m) if m.is_empty() => Ok(()),
        Node::Mapping(_) => {
            let kind = d.str_at(&["kind"]).unwrap_or("").to_string();
            if kind.ends_with("List") {
                if let Some(items) = d.get("items").and_then(|i| i.as_sequence()) {
                    for it in items.clone() {
                        push_doc(it, source, out)?;
                    }
                    return Ok(());
                }
            }
            if kind.is_empty() {
                return Err(kerr!(
                    "{source}: missing Resource metadata: kind is required"
                ));
            }
            // kyaml's GetValidatedMetadata: every object but a List needs a name.
            if !kind.ends_with("List") && d.str_at(&["metadata", "name"]).unwrap_or("").is_empty() {
                return Err(kerr!(
                    "{source}: missing metadata.name in object {}",
                    go_resource_meta(&d)
                ));
            }
            out.push(Resource::new(d));
            Ok(())
        }
        Node::Sequence(items) => {
            for it in items {
                push_doc(it, source, out)?;
            }
            Ok(())
        }
        Node::Scalar(_) => Err(kerr!("{source}: expected a YAML object, got a scalar")),
    }
}

/// kyaml's `ResourceMeta` as Go's `%v` prints it:
/// `{{apiVersion kind} {{name namespace} map[labels] map[annotations]}}`.
fn go_resource_meta(d: &Node) -> String {
    let s = |path: &[&str]| d.str_at(path).unwrap_or("").to_string();
    let map = |key: &str| {
        let mut pairs: Vec<String> = match d.get("metadata").and_then(|m| m.get(key)) {
            Some(Node::Mapping(m)) => m
                .entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or("")))
                .collect(),
            _ => Vec::new(),
        };
        pairs.sort();
        format!("map[{}]", pairs.join(" "))
    };
    format!(
        "{{{{{} {}}} {{{{{} {}}} {} {}}}}}",
        s(&["apiVersion"]),
        s(&["kind"]),
        s(&["metadata", "name"]),
        s(&["metadata", "namespace"]),
        map("labels"),
        map("annotations")
    )
}

fn accumulate_resources(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let entries = k.strings("resources")?;
    let mut index: std::collections::HashSet<IdKey> = if entries.is_empty() {
        Default::default()
    } else {
        acc.resources.iter().map(id_key).collect()
    };
    for entry in entries {
        let path = join(&k.dir, &entry);
        if ctx.fs.is_dir(&path) {
            let saved = ctx.origin.clone();
            ctx.origin = saved.as_ref().map(|o| join_rel(o, &entry));
            let sub = accumulate_directory(ctx, &path, false);
            ctx.origin = saved;
            let sub = sub.map_err(|e| {
                e.context(format!("accumulating resources from '{entry}'"))
                    .context("accumulating resources")
            })?;
            for r in sub.resources {
                acc.append_indexed(&mut index, r)
                    .map_err(|e| e.context("accumulating resources"))?;
            }
            merge_config(acc, &sub.config);
            for v in sub.vars {
                add_var(acc, v)?;
            }
        } else if ctx.fs.is_file(&path) {
            check_file(ctx, &k.dir, &path).map_err(|e| {
                KustomizeError::new(format!(
                    "accumulation err='accumulating resources from '{entry}': {}': must build at directory: '{}': file is not directory",
                    e.message,
                    path.display()
                ))
                .context("accumulating resources")
            })?;
            let text = ctx
                .fs
                .read_to_string(&path)
                .map_err(|e| kerr!("{}: {e}", path.display()))?;
            let rs = resources_from_text(&text, &path.display().to_string()).map_err(|e| {
                KustomizeError::new(format!("MalformedYAMLError: {}", e.message))
                    .context(format!("accumulating resources from '{entry}'"))
                    .context("accumulating resources")
            })?;
            for mut r in rs {
                r.origin = ctx.origin_of(&entry);
                acc.append_indexed(&mut index, r)
                    .map_err(|e| e.context("accumulating resources"))?;
            }
        } else if looks_remote(&entry) {
            let url = if entry.contains("://") {
                entry.clone()
            } else {
                format!("https://{entry}")
            };
            return Err(kerr!(
                "accumulating resources: accumulation err='accumulating resources from '{entry}': evalsymlink failure on '{p}' : lstat {p}: no such file or directory': failed to run '/usr/bin/git fetch --depth=1 {url} HEAD': remote resources are not supported (no network)",
                p = path.display()
            ));
        } else {
            return Err(kerr!(
                "accumulating resources: accumulation err='accumulating resources from '{entry}': evalsymlink failure on '{}' : lstat {}: no such file or directory': must build at directory: not a valid directory: evalsymlink failure on '{}' : lstat {}: no such file or directory",
                path.display(),
                path.display(),
                path.display(),
                path.display()
            ));
        }
    }
    Ok(())
}

/// kustomize's `openapi.SetSchema` for a kustomization's `openapi` field.
fn set_openapi(ctx: &mut Ctx, k: &Kustomization) -> Result<()> {
    let Some(o) = k.get("openapi") else {
        return Ok(());
    };
    let version = o.str_at(&["version"]).filter(|v| !v.is_empty());
    let path = o.str_at(&["path"]).filter(|v| !v.is_empty());
    let value = match (version, path) {
        (Some(_), Some(_)) => {
            return Err(kerr!(
                "builtin version and custom schema provided, cannot use both"
            ))
        }
        (Some(v), None) => {
            if v != "v1.21.2" && v != "v1212" {
                return Err(kerr!(
                    "the specified OpenAPI version is not built into the binary: {v}"
                ));
            }
            None
        }
        (None, Some(p)) if p.contains("://") => {
            // A remote schema can't be fetched (no network): infer merge keys as for
            // the builtin types.
            Some(std::rc::Rc::new(serde_json::Value::Null))
        }
        (None, Some(p)) => {
            let full = join(&k.dir, p);
            if !ctx.fs.is_file(&full) {
                // kustomize's loader says "'<path>' doesn't exist"; the path is shown
                // from the kustomization root (as kustomize's tests see it, root at
                // `/`), then where it was looked for.
                let shown = match full.strip_prefix(&k.dir) {
                    Ok(rel) => format!("/{}", rel.display()),
                    Err(_) => full.display().to_string(),
                };
                return Err(kerr!(
                    "{}: openapi.path: '{shown}' doesn't exist (relative to the kustomization root; looked for '{}')",
                    k.file.display(),
                    full.display()
                ));
            }
            let (path, text) = read_file(ctx, &k.dir, p)?;
            let doc = capstan_yaml::parse_documents(&text, &path.display().to_string())?
                .into_iter()
                .next()
                .unwrap_or_else(Node::null);
            Some(std::rc::Rc::new(capstan_yaml::to_json(&doc)))
        }
        (None, None) => return Ok(()),
    };
    if ctx.openapi.is_none() {
        ctx.openapi = Some(value);
    }
    Ok(())
}

/// Whether a missing resource entry would be tried as a remote (git) target by
/// kustomize: a URL, `git@…`, or a first path segment that looks like a host name.
fn looks_remote(entry: &str) -> bool {
    if entry.contains("://") || entry.starts_with("git@") || entry.starts_with("github.com/") {
        return true;
    }
    let first = entry.split('/').next().unwrap_or("");
    entry.contains('/')
        && !first.starts_with('.')
        && first.contains('.')
        && first
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// kustomize's `ResAccumulator.MergeConfig` (configurations shared until they differ).
fn merge_config(acc: &mut Acc, other: &std::rc::Rc<TransformerConfig>) {
    if std::rc::Rc::ptr_eq(&acc.config, other) || other.is_empty() {
        return;
    }
    if acc.config.is_empty() {
        acc.config = other.clone();
        return;
    }
    std::rc::Rc::make_mut(&mut acc.config).merge(other);
}

fn add_var(acc: &mut Acc, v: Node) -> Result<()> {
    let name = v.str_at(&["name"]).unwrap_or("").to_string();
    if acc
        .vars
        .iter()
        .any(|x| x.str_at(&["name"]) == Some(name.as_str()))
    {
        return Err(kerr!("var '{name}' already encountered"));
    }
    acc.vars.push(v);
    Ok(())
}

/// kustomize's loader (`errIfArgEqualOrHigher`): a directory that is, or contains, one being
/// built (the current one or any that includes it) is a cycle, for resources and components
/// alike.
fn check_cycle(ctx: &Ctx, dir: &Path) -> Result<()> {
    match ctx
        .stack
        .iter()
        .rev()
        .find(|visited| visited.starts_with(dir))
    {
        Some(visited) => Err(kerr!(
            "cycle detected: candidate root '{}' contains visited root '{}'",
            dir.display(),
            visited.display()
        )),
        None => Ok(()),
    }
}

fn accumulate_directory(ctx: &mut Ctx, dir: &Path, component: bool) -> Result<Acc> {
    check_cycle(ctx, dir)?;
    let k = kustfile::load(ctx.fs, dir)?;
    if !component && k.kind() == "Component" {
        return Err(kerr!(
            "expected kind != 'Component' for path '{}'",
            dir.display()
        ));
    }
    set_openapi(ctx, &k)?;
    ctx.stack.push(dir.to_path_buf());
    let mut acc = Acc::new();
    let r = accumulate_target(ctx, &k, &mut acc);
    ctx.stack.pop();
    r?;
    Ok(acc)
}

pub(crate) fn accumulate_target(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let inherited = ctx.helm_namespace.clone();
    if let Some(ns) = k.str("namespace").filter(|ns| !ns.is_empty()) {
        ctx.helm_namespace = Some(ns.to_string());
    }
    let r = accumulate_target_inner(ctx, k, acc);
    ctx.helm_namespace = inherited;
    r
}

fn accumulate_target_inner(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    accumulate_resources(ctx, k, acc)?;
    // kustomize's MakeTransformerConfig: the builtin tables, or only what the
    // `configurations` files say (the builtin ones then come from the children, if any).
    let confs = k.strings("configurations")?;
    let level = if confs.is_empty() {
        TransformerConfig::builtin_shared()
    } else {
        let mut c = TransformerConfig::default();
        for f in confs {
            let (path, text) = read_file(ctx, &k.dir, &f)?;
            for d in capstan_yaml::parse_documents(&text, &path.display().to_string())? {
                c.merge(&TransformerConfig::from_node(&d)?);
            }
        }
        // The files first, then the builtin tables (a builtin field spec a file
        // narrows to some kinds is left out).
        c.merge(&TransformerConfig::builtin_shared());
        std::rc::Rc::new(c)
    };
    merge_config(acc, &level);
    let crds = k.strings("crds")?;
    if !crds.is_empty() {
        let mut c = TransformerConfig::default();
        for f in &crds {
            let (_, text) = read_file(ctx, &k.dir, f)?;
            let one = crate::crds::config_from_crds(&text, f)
                .map_err(|e| e.context(format!("loading CRDs [{}]", crds.join(" "))))?;
            c.merge(&one);
        }
        merge_config(acc, &std::rc::Rc::new(c));
    }
    run_generators(ctx, k, acc)?;
    for c in k.strings("components")? {
        let dir = join(&k.dir, &c);
        if !ctx.fs.is_dir(&dir) {
            return Err(kerr!(
                "accumulating components: must build at directory: '{}'",
                dir.display()
            ));
        }
        check_cycle(ctx, &dir).map_err(|e| e.context("accumulating components"))?;
        let ck = kustfile::load(ctx.fs, &dir).map_err(|e| e.context("accumulating components"))?;
        if ck.kind() != "Component" {
            return Err(kerr!(
                "accumulating components: accumulateDirectory: \"expected kind 'Component' for path '{}' but got '{}'\"",
                dir.display(),
                ck.kind()
            ));
        }
        // kustomize's accumulateDirectory reads a component's `openapi` as a
        // kustomization's.
        set_openapi(ctx, &ck).map_err(|e| e.context("accumulating components"))?;
        ctx.stack.push(dir.clone());
        let saved = ctx.origin.clone();
        ctx.origin = saved.as_ref().map(|o| join_rel(o, &c));
        let r = accumulate_target(ctx, &ck, acc);
        ctx.origin = saved;
        ctx.stack.pop();
        r.map_err(|e| e.context("accumulating components"))?;
    }
    run_transformers(ctx, k, acc)?;
    crate::krm::run_validators(ctx, k, acc)?;
    let declared: Vec<Node> = k.seq("vars").iter().map(vars::canonical_var).collect();
    for v in &declared {
        vars::bind(acc, v)?;
    }
    for v in declared {
        add_var(acc, v)?;
    }
    Ok(())
}

fn run_generators(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let opts = k.get("generatorOptions").cloned();
    let mut generated = Vec::new();
    for g in k.seq("configMapGenerator") {
        let mut r = generators::config_map(ctx, &k.dir, g, opts.as_ref())?;
        r.origin = ctx.builtin_origin(k, "ConfigMapGenerator");
        generated.push(r);
    }
    for g in k.seq("secretGenerator") {
        let mut r = generators::secret(ctx, &k.dir, g, opts.as_ref())?;
        r.origin = ctx.builtin_origin(k, "SecretGenerator");
        generated.push(r);
    }
    for r in generated {
        merge_generated(acc, r)?;
    }
    for r in crate::helmcharts::inflate(ctx, k)? {
        acc.append(r)?;
    }
    for entry in k.seq("generators").to_vec() {
        let source = crate::krm::entry_source(k, &entry);
        for cfg in plugin_configs(ctx, k, &entry)? {
            let rs = match crate::krm::load(ctx, &cfg, &source)
                .map_err(|e| e.context("loading generator plugins: failed to load generator"))?
            {
                Some(f) => crate::krm::generate(ctx, k, &f, &cfg)?,
                None => generators::builtin_generator(ctx, &k.dir, &cfg)?,
            };
            let origin = plugin_origin(ctx, k, &entry, &cfg);
            for mut r in rs {
                if r.origin.is_none() {
                    r.origin = origin.clone();
                }
                merge_generated(acc, r)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn merge_generated(acc: &mut Acc, r: Resource) -> Result<()> {
    match r.behavior {
        // kustomize's appendReplaceOrMerge: a generated object whose id (the namespace
        // compared as kustomize does, none = `default`) is taken must say merge or replace.
        Behavior::Create => {
            if acc.resources.iter().any(|x| same_id(x, &r)) {
                return Err(kerr!(
                    "id {} exists; behavior must be merge or replace",
                    r.id()
                ));
            }
            acc.append(r)
        }
        Behavior::Merge | Behavior::Replace => {
            let mut id = r.id();
            id.namespace = r.namespace().to_string();
            let idx: Vec<usize> = acc
                .resources
                .iter()
                .enumerate()
                .filter(|(_, x)| x.matches_any_id(&id))
                .map(|(i, _)| i)
                .collect();
            if idx.len() != 1 {
                return Err(kerr!("id {} does not exist; cannot merge or replace", id));
            }
            let old = &mut acc.resources[idx[0]];
            generators::merge_into(old, r);
            Ok(())
        }
    }
}

/// The origin of a generator/transformer configured by a `generators`/`transformers`
/// entry: the file holding the configuration (the kustomization for inline ones) and
/// the configuration's id.
fn plugin_origin(ctx: &Ctx, k: &Kustomization, entry: &Node, cfg: &Node) -> Option<Origin> {
    let configured_in = match entry {
        Node::Scalar(s) if !s.value.contains('\n') => ctx.origin_of(&s.value)?.path,
        _ => ctx.builtin_origin(k, "")?.configured_in,
    };
    Some(Origin {
        path: String::new(),
        configured_in,
        by_api_version: cfg.str_at(&["apiVersion"]).unwrap_or("").into(),
        by_kind: cfg.str_at(&["kind"]).unwrap_or("").into(),
        by_name: cfg.str_at(&["metadata", "name"]).unwrap_or("").into(),
        by_namespace: cfg.str_at(&["metadata", "namespace"]).unwrap_or("").into(),
    })
}

/// Plugin configuration documents for a `generators`/`transformers` entry: a file path
/// (possibly a directory with a kustomization) or an inline document.
pub(crate) fn plugin_configs(ctx: &mut Ctx, k: &Kustomization, entry: &Node) -> Result<Vec<Node>> {
    match entry {
        Node::Scalar(s) if s.value.contains('\n') => Ok(capstan_yaml::parse_documents(
            &s.value,
            "inline plugin config",
        )?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()),
        Node::Scalar(s) => {
            let path = join(&k.dir, &s.value);
            if ctx.fs.is_dir(&path) {
                let sub = accumulate_directory(ctx, &path, false)?;
                return Ok(sub.resources.into_iter().map(|r| r.node).collect());
            }
            let (p, text) = read_file(ctx, &k.dir, &s.value)?;
            Ok(
                capstan_yaml::parse_documents(&text, &p.display().to_string())?
                    .into_iter()
                    .filter(|d| !d.is_null())
                    .collect(),
            )
        }
        Node::Mapping(_) => Ok(vec![entry.clone()]),
        _ => Ok(vec![]),
    }
}

pub(crate) fn accumulate_patches_only(
    ctx: &mut Ctx,
    k: &Kustomization,
    acc: &mut Acc,
) -> Result<()> {
    for p in k.seq("patchesStrategicMerge").to_vec() {
        let (text, src) = match &p {
            Node::Scalar(s) => {
                let path = join(&k.dir, &s.value);
                if ctx.fs.is_file(&path) || !s.value.contains('\n') && !s.value.contains(':') {
                    let (path, text) = read_file(ctx, &k.dir, &s.value)?;
                    (text, path.display().to_string())
                } else {
                    (s.value.clone(), "patchesStrategicMerge".to_string())
                }
            }
            other => (
                capstan_yaml::emit_document(other),
                "patchesStrategicMerge".to_string(),
            ),
        };
        let docs: Vec<Node> = capstan_yaml::parse_documents(&text, &src)?
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        if docs.is_empty() {
            return Err(kerr!("patch appears to be empty; {src}"));
        }
        for d in docs {
            let custom = ctx.openapi.clone().flatten();
            apply_smp_by_id(&mut acc.resources, &d, (false, false), custom.as_deref())?;
        }
    }
    for p in k.seq("patches").to_vec() {
        apply_patch_entry(ctx, k, acc, &p)?;
    }
    Ok(())
}

/// The builtin transformers a kustomization configures, in kustomize's order (for
/// `transformerAnnotations`).
fn builtin_transformer_kinds(k: &Kustomization) -> Vec<&'static str> {
    let mut v = Vec::new();
    let nonempty = |key: &str| match k.get(key) {
        Some(Node::Sequence(s)) => s.len(),
        Some(Node::Mapping(m)) => usize::from(!m.is_empty()),
        Some(Node::Scalar(s)) => usize::from(!s.value.is_empty()),
        None => 0,
    };
    if nonempty("patchesStrategicMerge") > 0 {
        v.push("PatchStrategicMergeTransformer");
    }
    v.extend(std::iter::repeat_n("PatchTransformer", nonempty("patches")));
    if nonempty("namespace") > 0 {
        v.push("NamespaceTransformer");
    }
    if nonempty("namePrefix") > 0 {
        v.push("PrefixTransformer");
    }
    if nonempty("nameSuffix") > 0 {
        v.push("SuffixTransformer");
    }
    // One per `labels` entry plus the commonLabels one (even if empty).
    let labels = nonempty("labels");
    if labels + nonempty("commonLabels") > 0 {
        v.extend(std::iter::repeat_n("LabelTransformer", labels + 1));
    }
    if nonempty("commonAnnotations") > 0 {
        v.push("AnnotationsTransformer");
    }
    v.extend(std::iter::repeat_n(
        "PatchJson6902Transformer",
        nonempty("patchesJson6902"),
    ));
    v.extend(std::iter::repeat_n(
        "ReplicaCountTransformer",
        nonempty("replicas"),
    ));
    v.extend(std::iter::repeat_n(
        "ImageTagTransformer",
        nonempty("images"),
    ));
    if nonempty("replacements") > 0 {
        v.push("ReplacementTransformer");
    }
    v
}

fn run_transformers(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    run_transformers_inner(ctx, k, acc)?;
    if ctx.origin.is_some() {
        let mut origins: Vec<Origin> = builtin_transformer_kinds(k)
            .into_iter()
            .filter_map(|kind| ctx.builtin_origin(k, kind))
            .collect();
        for entry in k.seq("transformers").to_vec() {
            let cfgs = plugin_configs(ctx, k, &entry)?;
            origins.extend(
                cfgs.iter()
                    .filter_map(|cfg| plugin_origin(ctx, k, &entry, cfg)),
            );
        }
        for r in acc.resources.iter_mut() {
            for o in &origins {
                if r.origin.is_none() {
                    r.origin = Some(o.clone());
                } else {
                    r.transformations.push(o.clone());
                }
            }
        }
    }
    Ok(())
}

fn run_transformers_inner(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    accumulate_patches_only(ctx, k, acc)?;
    transformers::namespace(k, acc)?;
    transformers::prefix_suffix(k, acc)?;
    transformers::labels(k, acc)?;
    transformers::annotations(k, acc)?;
    for p in k.seq("patchesJson6902").to_vec() {
        let target = p.get("target").cloned().unwrap_or_else(Node::mapping);
        let ops = if let Some(path) = p.str_at(&["path"]) {
            let (path, text) = read_file(ctx, &k.dir, path)?;
            json6902::parse_ops(&text, &path.display().to_string())?
        } else if let Some(pt) = p.str_at(&["patch"]) {
            json6902::parse_ops(pt, "patchesJson6902")?
        } else {
            return Err(kerr!("patchesJson6902 entry needs a path or a patch"));
        };
        let sel = Selector::from_node(&target)?;
        for r in acc.resources.iter_mut() {
            if sel.matches(r) {
                apply_json6902(r, &ops)?;
            }
        }
    }
    transformers::replicas(k, acc)?;
    transformers::images(k, acc)?;
    for r in k.seq("replacements").to_vec() {
        let cfgs = if let Some(path) = r.str_at(&["path"]) {
            let (path, text) = read_file(ctx, &k.dir, path)?;
            let mut v = Vec::new();
            // kustomize reads replacement files with sigs.k8s.io/yaml (not strict).
            for d in
                capstan_yaml::parse_documents_last_key_wins(&text, &path.display().to_string())?
            {
                match d {
                    Node::Sequence(s) => v.extend(s),
                    Node::Mapping(_) => v.push(d),
                    _ => {}
                }
            }
            v
        } else {
            vec![r.clone()]
        };
        for c in cfgs {
            replacements::apply(&mut acc.resources, &c)?;
        }
    }
    for entry in k.seq("transformers").to_vec() {
        let source = crate::krm::entry_source(k, &entry);
        for cfg in plugin_configs(ctx, k, &entry)? {
            match crate::krm::load(ctx, &cfg, &source)? {
                Some(f) => crate::krm::transform(ctx, k, acc, &f, &cfg)?,
                None => transformers::builtin_transformer(ctx, k, acc, &cfg)?,
            }
        }
    }
    Ok(())
}

pub(crate) fn apply_json6902(r: &mut Resource, ops: &[Node]) -> Result<()> {
    let (old_name, old_ns) = (r.name().to_string(), r.namespace().to_string());
    json6902::apply(&mut r.node, ops)
        .map_err(|e| e.context(format!("failed to apply json patch to {}", r.id())))?;
    r.note_name_change(&old_name, &old_ns);
    Ok(())
}

/// kyaml's merge walks every field of the target and writes each back with `SetField`,
/// which drops a field whose value is an empty null (`key:`); an explicit `null` or `~`
/// the patch does not touch is kept (merge2's VisitMap). Applied through nested maps;
/// lists are kept as they are.
fn clear_null_fields(n: &mut Node) {
    if let Node::Mapping(m) = n {
        m.entries
            .retain(|(_, v)| !matches!(v, Node::Scalar(s) if s.is_null() && s.value.is_empty()));
        for (_, v) in m.entries.iter_mut() {
            clear_null_fields(v);
        }
    }
}

/// kustomize's `Resource.ApplySmPatch` (as `resWrangler.ApplySmPatch` calls it): the
/// patch takes the target's apiVersion; afterwards kind and name are restored unless
/// the patch entry allows changing them, and the namespace always is.
fn apply_smp_to(
    r: &mut Resource,
    patch: &Node,
    allow: (bool, bool),
    custom: Option<&serde_json::Value>,
) -> Result<()> {
    let (old_kind, old_name, old_ns) = (
        r.kind().to_string(),
        r.name().to_string(),
        r.namespace().to_string(),
    );
    let mut patch = patch.clone();
    let av = r.api_version().to_string();
    if let Some(m) = patch.as_mapping_mut() {
        if !av.is_empty() {
            m.insert("apiVersion", Node::string(av));
        }
    }
    let (group, version) = crate::resource::split_api_version(r.api_version());
    let schema = custom
        .filter(|root| !root.is_null())
        .and_then(|root| smp::Schema::for_gvk(root, &group, &version, r.kind()))
        .unwrap_or(if custom.is_some_and(|c| c.is_null()) {
            smp::Schema::Inferred
        } else if crate::resource::builtin_group(&group) {
            smp::Schema::Builtin
        } else {
            smp::Schema::Unknown
        });
    smp::merge_with(&mut r.node, &patch, schema)?;
    clear_null_fields(&mut r.node);
    if r.node.is_null() {
        r.node = Node::null();
        return Ok(());
    }
    let (allow_name, allow_kind) = allow;
    if !allow_kind {
        if let Some(m) = r.node.as_mapping_mut() {
            m.insert("kind", Node::string(old_kind.clone()));
        }
    }
    if !allow_name {
        r.node
            .ensure_mapping_path(&["metadata"])
            .insert("name", Node::string(old_name.clone()));
    }
    let md = r.node.ensure_mapping_path(&["metadata"]);
    if old_ns.is_empty() {
        md.remove("namespace");
    } else {
        md.insert("namespace", Node::string(old_ns.clone()));
    }
    r.note_id_change(&old_kind, &old_name, &old_ns);
    Ok(())
}

fn apply_smp_by_id(
    resources: &mut Vec<Resource>,
    patch: &Node,
    allow: (bool, bool),
    custom: Option<&serde_json::Value>,
) -> Result<()> {
    let tmp = Resource::new(patch.clone());
    let id = tmp.id();
    let idx: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.matches_any_id(&id))
        .map(|(i, _)| i)
        .collect();
    if idx.len() != 1 {
        if idx.is_empty() {
            return Err(kerr!("no resource matches strategic merge patch \"{}\": no matches for Id {id}; failed to find unique target for patch {id}", id));
        }
        return Err(kerr!(
            "multiple matches for Id {id}; failed to find unique target for patch {id}"
        ));
    }
    if is_delete_patch(patch) {
        resources.remove(idx[0]);
        return Ok(());
    }
    apply_smp_to(&mut resources[idx[0]], patch, allow, custom)
}

fn is_delete_patch(p: &Node) -> bool {
    p.str_at(&["$patch"]) == Some("delete")
}

fn apply_patch_entry(ctx: &mut Ctx, k: &Kustomization, acc: &mut Acc, p: &Node) -> Result<()> {
    let (text, source) = if let Some(path) = p.str_at(&["path"]) {
        let (path, text) = read_file(ctx, &k.dir, path)?;
        (text, path.display().to_string())
    } else if let Some(pt) = p.str_at(&["patch"]) {
        (
            pt.to_string(),
            format!("{}: patches[].patch", k.file.display()),
        )
    } else {
        return Err(kerr!(
            "{}: patches entry must have a path or a patch",
            k.file.display()
        ));
    };
    // A JSON patch is read without strictness (sigs.k8s.io/yaml), a strategic merge patch
    // as a resource (go-yaml v3: a repeated key is an error).
    let docs: Vec<Node> = capstan_yaml::parse_documents_last_key_wins(&text, &source)?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    if docs.is_empty() {
        return Err(kerr!("patch appears to be empty"));
    }
    let is_json = matches!(docs.first(), Some(Node::Sequence(_)));
    if !is_json {
        capstan_yaml::parse_documents(&text, &source)?;
    }
    let opt = |k: &str| {
        p.get("options")
            .and_then(|o| o.get(k))
            .and_then(|v| v.as_str())
            == Some("true")
    };
    let allow = (opt("allowNameChange"), opt("allowKindChange"));
    let custom = ctx.openapi.clone().flatten();
    let target = p.get("target").filter(|t| !t.is_null());
    if is_json {
        let Some(target) = target else {
            return Err(kerr!(
                "unable to apply patch: must specify a target for patch"
            ));
        };
        let ops = json6902::parse_ops(&text, &source)?;
        let sel = Selector::from_node(target)?;
        for r in acc.resources.iter_mut() {
            if sel.matches(r) {
                apply_json6902(r, &ops)?;
            }
        }
        return Ok(());
    }
    match target {
        None => {
            for d in docs {
                let custom = ctx.openapi.clone().flatten();
                apply_smp_by_id(&mut acc.resources, &d, (false, false), custom.as_deref())?;
            }
        }
        Some(t) => {
            let sel = Selector::from_node(t)?;
            let mut i = 0;
            while i < acc.resources.len() {
                if sel.matches(&acc.resources[i]) {
                    if docs.iter().any(is_delete_patch) {
                        acc.resources.remove(i);
                        continue;
                    }
                    for d in &docs {
                        apply_smp_to(&mut acc.resources[i], d, allow, custom.as_deref())?;
                    }
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// A patch target / replacement selector.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<regex::Regex>,
    pub name: Option<regex::Regex>,
    pub namespace: Option<regex::Regex>,
    pub label_selector: Option<String>,
    pub annotation_selector: Option<String>,
    /// Match names the resource had at any point (replacements), not only the original
    /// and current ones (patch targets).
    pub any_id: bool,
}

fn anchored(p: &str) -> Result<regex::Regex> {
    regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| kerr!("invalid regex '{p}': {e}"))
}

impl Selector {
    pub fn from_node(n: &Node) -> Result<Selector> {
        let s = |k: &str| n.str_at(&[k]).filter(|v| !v.is_empty()).map(str::to_string);
        let (mut group, mut version) = (s("group"), s("version"));
        if let Some(av) = s("apiVersion") {
            let (g, v) = crate::resource::split_api_version(&av);
            group = Some(g);
            version = Some(v);
        }
        Ok(Selector {
            group,
            version,
            kind: s("kind").map(|k| anchored(&k)).transpose()?,
            name: s("name").map(|k| anchored(&k)).transpose()?,
            namespace: s("namespace").map(|k| anchored(&k)).transpose()?,
            label_selector: s("labelSelector"),
            annotation_selector: s("annotationSelector"),
            any_id: false,
        })
    }
    pub fn matches(&self, r: &Resource) -> bool {
        let (g, v) = crate::resource::split_api_version(r.api_version());
        if let Some(x) = &self.group {
            if *x != g {
                return false;
            }
        }
        if let Some(x) = &self.version {
            if *x != v {
                return false;
            }
        }
        if let Some(k) = &self.kind {
            if !k.is_match(r.kind()) && !k.is_match(&r.orig_kind) {
                return false;
            }
        }
        let orig = r.orig_id();
        if let Some(n) = &self.name {
            let any = self.any_id && r.prev.iter().any(|(p, _)| n.is_match(p));
            if !n.is_match(r.name()) && !n.is_match(&orig.name) && !any {
                return false;
            }
        }
        if let Some(ns) = &self.namespace {
            let eff = |s: &str| {
                if s.is_empty() {
                    "default".to_string()
                } else {
                    s.to_string()
                }
            };
            if !ns.is_match(&eff(r.namespace()))
                && !ns.is_match(&eff(&orig.namespace))
                && !ns.is_match(r.namespace())
            {
                return false;
            }
        }
        if let Some(ls) = &self.label_selector {
            if !match_label_selector(ls, r.labels()) {
                return false;
            }
        }
        if let Some(ls) = &self.annotation_selector {
            if !match_label_selector(ls, r.annotations()) {
                return false;
            }
        }
        true
    }
}

/// Kubernetes label selector syntax (`a=b,c!=d,e in (f,g),!h,i`).
pub(crate) fn match_label_selector(sel: &str, labels: Option<&capstan_yaml::Mapping>) -> bool {
    let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    // split on commas not inside parentheses
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => terms.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    terms.push(cur);
    for t in terms {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        let ok = if let Some((k, v)) = t.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = t.split_once("==") {
            get(k.trim()) == Some(v.trim())
        } else if let Some((k, v)) = t.split_once('=') {
            get(k.trim()) == Some(v.trim())
        } else if let Some(k) = t.strip_prefix('!') {
            get(k.trim()).is_none()
        } else if let Some((k, rest)) = t.split_once(" notin ") {
            let vals: Vec<&str> = rest
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            get(k.trim()).is_none_or(|v| !vals.contains(&v))
        } else if let Some((k, rest)) = t.split_once(" in ") {
            let vals: Vec<&str> = rest
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            get(k.trim()).is_some_and(|v| vals.contains(&v))
        } else {
            get(t).is_some()
        };
        if !ok {
            return false;
        }
    }
    true
}
