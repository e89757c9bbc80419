//! Argo CD repositories, read as Argo CD reads them, rendered by capstan's own engines.
//!
//! * [`discover`]: every `Application` and `ApplicationSet` (`argoproj.io`) declared in the
//!   YAML files of a tree (files split on `---` lines; documents that are not YAML, such as
//!   Helm templates, are skipped).
//! * [`appset::expand`]: an ApplicationSet's generators (`list`, `clusters`, `git`,
//!   `matrix`, `merge`) and template (fasttemplate or Go templates), producing
//!   Applications; generators that need live APIs are refused by name.
//! * [`render::render_app`]: an Application's sources (`source`, `sources[]` with `ref`),
//!   detected as Argo CD detects them (Helm, kustomize, directory), rendered with
//!   `capstan-helm` and `capstan-kustomize`, then the controller's namespace handling.
//! * [`render_repository`]: all of it, plus app of apps: Applications and ApplicationSets
//!   found in rendered output are read recursively, with cycle detection and a budget.
//!
//! Pure: everything is read from the [`FileSystem`] given (the repository) and, for other
//! repositories and Helm repositories, from the optional [`RemoteSources`]. One
//! Application's failure stays its own.

pub mod appset;
pub mod error;
pub mod glob;
pub mod render;
pub mod sync;
pub mod template;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use capstan_vfs::FileSystem;
use serde_json::Value;

pub use error::{ArgoError, ErrorKind};

/// Which `repoURL`s are the repository being rendered.
#[derive(Debug, Clone)]
pub enum RepoPattern {
    /// A URL whose path is this (`org/repo`, case-insensitive, `.git` optional, on a `/`
    /// or `:` boundary), or the same URL.
    Url(String),
    /// A regular expression searched in the lower-cased URL without `.git` and
    /// surrounding `/`.
    Regex(regex::Regex),
}

impl RepoPattern {
    pub fn matches(&self, url: &str) -> bool {
        let u = normalize_url(url);
        match self {
            RepoPattern::Url(p) => {
                let p = normalize_url(p);
                if p.is_empty() {
                    return false;
                }
                if u == p {
                    return true;
                }
                let p = p
                    .split_once("://")
                    .map(|(_, rest)| rest.split_once('/').map_or(rest, |(_, path)| path))
                    .unwrap_or(&p)
                    .to_string();
                u.ends_with(&p)
                    && matches!(u[..u.len() - p.len()].chars().last(), Some('/') | Some(':'))
            }
            RepoPattern::Regex(r) => r.is_match(&u),
        }
    }
}

fn normalize_url(s: &str) -> String {
    let s = s.trim().to_lowercase();
    let s = s.trim_matches('/');
    s.strip_suffix(".git").unwrap_or(s).to_string()
}

/// An Argo CD cluster (a cluster Secret, or the implicit `in-cluster`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub server: String,
    pub project: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The server of the cluster Argo CD runs in.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

impl Cluster {
    /// An Argo CD cluster Secret (`argocd.argoproj.io/secret-type: cluster`, `name`,
    /// `server`, `project` in `data` (base64) or `stringData`); `None` for other objects.
    pub fn from_secret(o: &Value) -> Option<Cluster> {
        if o.get("kind").and_then(Value::as_str) != Some("Secret") {
            return None;
        }
        let md = o.get("metadata")?;
        let labels = string_map(md.get("labels"));
        if labels.get(CLUSTER_SECRET_LABEL).map(String::as_str) != Some("cluster") {
            return None;
        }
        let field = |k: &str| -> String {
            if let Some(s) = o
                .pointer(&format!("/stringData/{k}"))
                .and_then(Value::as_str)
            {
                return s.to_string();
            }
            o.pointer(&format!("/data/{k}"))
                .and_then(Value::as_str)
                .and_then(decode_base64)
                .unwrap_or_default()
        };
        Some(Cluster {
            name: field("name"),
            server: field("server"),
            project: field("project"),
            labels,
            annotations: string_map(md.get("annotations")),
        })
    }
}

/// The label of Argo CD's cluster Secrets.
pub const CLUSTER_SECRET_LABEL: &str = "argocd.argoproj.io/secret-type";

fn decode_base64(s: &str) -> Option<String> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        if c == b'=' || c.is_ascii_whitespace() {
            continue;
        }
        let v = T.iter().position(|&t| t == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Trees and charts that are not in the repository being rendered.
pub trait RemoteSources: Send + Sync {
    /// The tree of `repo_url` at `revision`.
    fn git(&self, repo_url: &str, revision: &str) -> Result<Arc<dyn FileSystem>, String>;
    /// The chart `chart` at `version` from the Helm (or OCI) repository `repo_url`.
    fn chart(
        &self,
        repo_url: &str,
        chart: &str,
        version: &str,
    ) -> Result<capstan_helm::Chart, String>;
}

/// How to render.
#[derive(Clone)]
pub struct Options {
    /// Which `repoURL`s are the repository being rendered (read from the tree given).
    pub this_repo: Vec<RepoPattern>,
    /// `ARGOCD_APP_REVISION` (the commit being rendered; empty when unknown).
    pub revision: String,
    /// kustomize's `--load-restrictor` (Argo CD's `kustomize.buildOptions`).
    pub kustomize_load_restrictor: capstan_kustomize::LoadRestrictor,
    /// kustomize's `--enable-helm`.
    pub kustomize_enable_helm: bool,
    /// Helm's `--kube-version` (`KUBE_VERSION`); `None`: Helm's default.
    pub kube_version: Option<String>,
    /// Extra API versions for Helm's Capabilities (`KUBE_API_VERSIONS`).
    pub api_versions: Vec<String>,
    /// Kinds (`group/Kind`, `Kind` for the core group) the destination cluster knows as
    /// namespaced, beyond Kubernetes' built-in kinds and Argo CD's own.
    pub extra_namespaced_kinds: Vec<String>,
    /// Kinds the destination cluster does not know: cluster-scoped (their namespace is
    /// removed), instead of Argo CD's default (namespaced).
    pub unknown_kinds_cluster_scoped: bool,
    /// Argo CD clusters (cluster Secrets) for the `clusters` generator; the implicit
    /// `in-cluster` is added unless one of them has its server.
    pub clusters: Vec<Cluster>,
    /// Read Applications and ApplicationSets found in rendered output (app of apps).
    pub app_of_apps: bool,
    /// At most this many Applications in all.
    pub max_apps: usize,
    /// At most this deep an app-of-apps nesting.
    pub max_depth: usize,
    /// Other repositories and Helm repositories.
    pub remote: Option<Arc<dyn RemoteSources>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            this_repo: Vec::new(),
            revision: String::new(),
            kustomize_load_restrictor: capstan_kustomize::LoadRestrictor::RootOnly,
            kustomize_enable_helm: false,
            kube_version: None,
            api_versions: Vec::new(),
            extra_namespaced_kinds: Vec::new(),
            unknown_kinds_cluster_scoped: false,
            clusters: Vec::new(),
            app_of_apps: true,
            max_apps: 10_000,
            max_depth: 32,
            remote: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("this_repo", &self.this_repo)
            .field("revision", &self.revision)
            .field("app_of_apps", &self.app_of_apps)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Is `url` the repository being rendered?
    pub fn is_this_repo(&self, url: &str) -> bool {
        self.this_repo.iter().any(|p| p.matches(url))
    }
}

/// Where an Application comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The declaring file, relative to the repository root (for children: the root
    /// ancestor's file).
    pub file: String,
    /// 1-based document index in `file`.
    pub document: usize,
    /// The ApplicationSet that generated it.
    pub appset: Option<String>,
    /// App of apps: the Application in whose rendered output it was found.
    pub parent: Option<String>,
}

impl Origin {
    /// `FILE`, or `parent: NAME` / `parent: NAME (appset: SET)` for app-of-apps children.
    pub fn source(&self) -> String {
        match (&self.parent, &self.appset) {
            (Some(p), Some(s)) => format!("parent: {p} (appset: {s})"),
            (Some(p), None) => format!("parent: {p}"),
            _ => self.file.clone(),
        }
    }
}

/// A declared Application or ApplicationSet.
#[derive(Debug, Clone)]
pub struct Declared {
    pub origin: Origin,
    pub object: Value,
}

impl Declared {
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    fn label(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }
}

/// Is this object an Argo CD Application or ApplicationSet?
pub fn is_argo_app(o: &Value) -> bool {
    let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
    api.starts_with("argoproj.io/")
        && matches!(kind, "Application" | "ApplicationSet")
        && o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
}

/// Every `*.yaml`/`*.yml` file beneath `root` (hidden directories skipped), sorted.
pub fn yaml_files(fs: &dyn FileSystem, root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(names) = fs.read_dir(&dir) else {
            continue;
        };
        for n in names {
            let p = dir.join(&n);
            if fs.is_dir(&p) {
                if !n.starts_with('.') {
                    stack.push(p);
                }
            } else if n.ends_with(".yaml") || n.ends_with(".yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Split a YAML stream on lines that are exactly `---` and parse each document on its
/// own (a document that does not parse is `None`).
pub fn split_documents(text: &str) -> Vec<Option<Value>> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, docs: &mut Vec<Option<Value>>| {
        let parsed = capstan_yaml::parse_documents_last_key_wins(cur, "doc")
            .ok()
            .and_then(|d| {
                d.into_iter()
                    .find(|n| !matches!(capstan_yaml::to_json(n), Value::Null))
            })
            .map(|n| capstan_yaml::to_json(&n));
        docs.push(parsed);
        cur.clear();
    };
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "---" {
            flush(&mut cur, &mut docs);
        } else {
            cur.push_str(line);
        }
    }
    flush(&mut cur, &mut docs);
    docs
}

/// Every Application and ApplicationSet declared in the tree, and the Argo CD cluster
/// Secrets in it.
pub fn discover(fs: &dyn FileSystem) -> (Vec<Declared>, Vec<Cluster>) {
    let mut out = Vec::new();
    let mut clusters = Vec::new();
    for path in yaml_files(fs, Path::new("/")) {
        let Ok(text) = fs.read_to_string(&path) else {
            continue;
        };
        if !text.contains("argoproj.io") && !text.contains(CLUSTER_SECRET_LABEL) {
            continue;
        }
        let rel = path.to_string_lossy().trim_start_matches('/').to_string();
        for (i, doc) in split_documents(&text).into_iter().enumerate() {
            let Some(doc) = doc else { continue };
            if is_argo_app(&doc) {
                out.push(Declared {
                    origin: Origin {
                        file: rel.clone(),
                        document: i + 1,
                        ..Origin::default()
                    },
                    object: doc,
                });
            } else if let Some(c) = Cluster::from_secret(&doc) {
                clusters.push(c);
            }
        }
    }
    (out, clusters)
}

/// One Application: as declared or generated, and what it renders (or why not).
#[derive(Debug, Clone)]
pub struct AppRecord {
    pub origin: Origin,
    /// The Application (generated ones as their ApplicationSet generated them).
    pub application: Value,
    pub objects: Result<Vec<Value>, ArgoError>,
}

impl AppRecord {
    pub fn name(&self) -> &str {
        self.application
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Everything a repository declares, rendered.
#[derive(Debug, Clone, Default)]
pub struct RepoRender {
    pub apps: Vec<AppRecord>,
    /// ApplicationSets that generated nothing because they failed (each names its file).
    pub errors: Vec<ArgoError>,
}

struct Pending {
    app: Value,
    origin: Origin,
    /// (name, spec) of the ancestors, outermost first.
    ancestors: Vec<(String, String)>,
}

fn identity(app: &Value) -> (String, String) {
    let name = app
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let spec = app.get("spec").map(|s| s.to_string()).unwrap_or_default();
    (name, spec)
}

/// Discover, expand and render every Application of the tree (see the crate docs).
/// Cluster Secrets found in the tree join `opts.clusters`.
pub fn render_repository(fs: &dyn FileSystem, opts: &Options) -> RepoRender {
    let (declared, tree_clusters) = discover(fs);
    let mut opts = opts.clone();
    for c in tree_clusters {
        if !opts
            .clusters
            .iter()
            .any(|k| k.name == c.name && k.server == c.server)
        {
            opts.clusters.push(c);
        }
    }
    render_declared(fs, &declared, &opts)
}

/// [`render_repository`] of already discovered documents.
pub fn render_declared(fs: &dyn FileSystem, declared: &[Declared], opts: &Options) -> RepoRender {
    render_declared_with(fs, declared, opts, &render::render_app)
}

/// Renders one Application (as [`render::render_app`] does); see [`render_declared_with`].
pub type AppRenderer<'a> =
    dyn Fn(&dyn FileSystem, &Value, &Options) -> Result<Vec<Value>, ArgoError> + Sync + 'a;

/// [`render_declared`] with the Application renderer given: `capstan diff` passes one
/// that reuses the renders of another revision whose inputs are identical. It must
/// render what [`render::render_app`] renders.
pub fn render_declared_with(
    fs: &dyn FileSystem,
    declared: &[Declared],
    opts: &Options,
    render_app: &AppRenderer<'_>,
) -> RepoRender {
    let mut out = RepoRender::default();
    let mut queue: std::collections::VecDeque<Pending> = Default::default();
    for d in declared {
        match d.kind() {
            "Application" => queue.push_back(Pending {
                app: d.object.clone(),
                origin: d.origin.clone(),
                ancestors: Vec::new(),
            }),
            _ => match appset::expand(fs, &d.object, opts) {
                Ok(apps) => {
                    for app in apps {
                        queue.push_back(Pending {
                            app,
                            origin: Origin {
                                appset: Some(d.name().to_string()),
                                ..d.origin.clone()
                            },
                            ancestors: Vec::new(),
                        });
                    }
                }
                Err(e) => out
                    .errors
                    .push(e.at(&d.origin.file, d.origin.document, &d.label())),
            },
        }
    }
    let mut seen_children: HashSet<(String, String)> = HashSet::new();
    let mut count = queue.len();
    while let Some(p) = queue.pop_front() {
        let name = p
            .app
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let label = format!("Application/{name}");
        let objects = render_app(fs, &p.app, opts)
            .map_err(|e| e.at(&p.origin.source(), p.origin.document, &label));
        if opts.app_of_apps {
            if let Ok(objs) = &objects {
                let mut ancestors = p.ancestors.clone();
                ancestors.push(identity(&p.app));
                for o in objs.iter().filter(|o| is_argo_app(o)) {
                    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
                    let oname = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let (children, appset) = if kind == "ApplicationSet" {
                        match appset::expand(fs, o, opts) {
                            Ok(c) => (c, Some(oname.to_string())),
                            Err(e) => {
                                out.errors.push(e.at(
                                    &format!("parent: {name}"),
                                    0,
                                    &format!("ApplicationSet/{oname}"),
                                ));
                                continue;
                            }
                        }
                    } else {
                        (vec![o.clone()], None)
                    };
                    for child in children {
                        let id = identity(&child);
                        let origin = Origin {
                            file: p.origin.file.clone(),
                            document: 0,
                            appset: appset.clone(),
                            parent: Some(name.clone()),
                        };
                        if let Some(at) = ancestors.iter().position(|a| *a == id) {
                            let mut cycle: Vec<&str> =
                                ancestors[at..].iter().map(|a| a.0.as_str()).collect();
                            cycle.push(&id.0);
                            let e = ArgoError::new(
                                ErrorKind::Cycle,
                                "spec",
                                format!("app of apps cycle: {}", cycle.join(" -> ")),
                            )
                            .with_hint(
                                "an Application renders itself (directly or through its children)",
                            );
                            out.apps.push(AppRecord {
                                application: child.clone(),
                                objects: Err(e.at(
                                    &origin.source(),
                                    0,
                                    &format!("Application/{}", id.0),
                                )),
                                origin,
                            });
                            continue;
                        }
                        if !seen_children.insert(id.clone()) {
                            continue;
                        }
                        count += 1;
                        let budget = if ancestors.len() > opts.max_depth {
                            Some(format!(
                                "app of apps nested deeper than {} levels",
                                opts.max_depth
                            ))
                        } else if count > opts.max_apps {
                            Some(format!("more than {} Applications", opts.max_apps))
                        } else {
                            None
                        };
                        if let Some(msg) = budget {
                            let e = ArgoError::new(ErrorKind::Budget, "", msg);
                            out.apps.push(AppRecord {
                                application: child.clone(),
                                objects: Err(e.at(
                                    &origin.source(),
                                    0,
                                    &format!("Application/{}", id.0),
                                )),
                                origin,
                            });
                            continue;
                        }
                        queue.push_back(Pending {
                            app: child,
                            origin,
                            ancestors: ancestors.clone(),
                        });
                    }
                }
            }
        }
        out.apps.push(AppRecord {
            origin: p.origin,
            application: p.app,
            objects,
        });
    }
    out
}

#[cfg(test)]
mod tests;
