//! Argo CD repositories for the rendered diff: every Application (declared, generated
//! by an ApplicationSet, found in another Application's rendered output) rendered with
//! `capstan-argocd` and grouped by destination cluster; and [`FleetReader`], which reads
//! Flux cluster directories and Argo CD Applications of one repository together.
//!
//! A revision's Applications are rendered once, when the reader lists its clusters
//! (app of apps: a child's destination is known only once its parent rendered); the
//! clusters then take their share. Application renders are reused across revisions
//! through [`Reuse`] when their inputs are identical (every file they read), except
//! those with a source outside the repository (another Git repository, a Helm
//! repository chart), which could change without the repository changing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use capstan_argocd::{ArgoError, Declared, ErrorKind, Options, RepoRender};
use capstan_units::Renderer;
use capstan_vfs::FileSystem;
use serde_json::Value;

use crate::memo::Reuse;
use crate::model::{ClusterSnapshot, UnitSnapshot};
use crate::render::{ClusterTarget, FluxReader, Reader};

/// The unit kind of an Argo CD Application.
pub const APPLICATION: &str = "Application";

/// Where the cluster-less problems of a revision go (an ApplicationSet that generated
/// nothing because it failed).
pub const REPOSITORY_CLUSTER: &str = "(argocd)";

/// One revision's Applications, rendered.
struct Rendered {
    render: RepoRender,
    /// Argo CD clusters known at that revision (server -> name).
    names: BTreeMap<String, String>,
}

/// Argo CD repositories (see the module docs).
pub struct ArgoReader {
    pub opts: Options,
    /// `--path DIR`: only Applications and ApplicationSets declared beneath these
    /// directories are roots (app-of-apps children of them included); empty: all.
    pub roots_under: Vec<String>,
    /// Only Applications and ApplicationSets declared in files whose path (relative to
    /// the repository root) matches are roots; `None`: all.
    pub roots_matching: Option<regex::Regex>,
    /// `--cluster NAME`: only these destinations (by cluster name or server); empty: all.
    pub clusters: Vec<String>,
    /// Reuse of Application renders (the diff's memo); `None`: render everything.
    pub reuse: Option<Arc<dyn Reuse>>,
    /// Renders of the trees listed so far, by the tree's address (dropped by `finish`).
    rendered: Mutex<Vec<(usize, Arc<Rendered>)>>,
}

impl ArgoReader {
    pub fn new(opts: Options) -> Self {
        ArgoReader {
            opts,
            roots_under: Vec::new(),
            roots_matching: None,
            clusters: Vec::new(),
            reuse: None,
            rendered: Mutex::new(Vec::new()),
        }
    }

    /// Does the tree declare any Application or ApplicationSet?
    pub fn holds_apps(fs: &dyn FileSystem) -> bool {
        !capstan_argocd::discover(fs).0.is_empty()
    }

    fn addr(fs: &dyn FileSystem) -> usize {
        fs as *const dyn FileSystem as *const () as usize
    }

    fn stored(&self, fs: &dyn FileSystem) -> Option<Arc<Rendered>> {
        let a = Self::addr(fs);
        self.rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(k, _)| *k == a)
            .map(|(_, r)| r.clone())
    }

    /// Render every Application of the tree (once per tree).
    fn rendered(&self, fs: &dyn FileSystem) -> Result<Arc<Rendered>, String> {
        if let Some(r) = self.stored(fs) {
            return Ok(r);
        }
        // Engines recurse deeply: render on a thread with the render stack.
        let r = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("capstan-diff-argocd".into())
                .stack_size(capstan_engine::RENDER_STACK_SIZE)
                .spawn_scoped(s, || self.render_tree(fs))
                .map_err(|e| format!("cannot start a render thread: {e}"))?
                .join()
                .map_err(|_| "the Argo CD reader panicked (a bug in capstan)".to_string())
        })?;
        let r = Arc::new(r);
        self.rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Self::addr(fs), r.clone()));
        Ok(r)
    }

    fn render_tree(&self, fs: &dyn FileSystem) -> Rendered {
        let (declared, tree_clusters) = capstan_argocd::discover(fs);
        let mut opts = self.opts.clone();
        for c in tree_clusters {
            if !opts
                .clusters
                .iter()
                .any(|k| k.name == c.name && k.server == c.server)
            {
                opts.clusters.push(c);
            }
        }
        let roots: Vec<Declared> = declared
            .into_iter()
            .filter(|d| {
                self.roots_under.is_empty()
                    || self.roots_under.iter().any(|dir| {
                        d.origin.file == *dir || d.origin.file.starts_with(&format!("{dir}/"))
                    })
            })
            .filter(|d| {
                self.roots_matching
                    .as_ref()
                    .is_none_or(|re| re.is_match(&d.origin.file))
            })
            .collect();
        let render = |fs: &dyn FileSystem, app: &Value, o: &Options| self.render_app(fs, app, o);
        let render = capstan_argocd::render_declared_with(fs, &roots, &opts, &render);
        let mut names = BTreeMap::new();
        names.insert(
            capstan_argocd::IN_CLUSTER_SERVER.to_string(),
            "in-cluster".to_string(),
        );
        for c in &opts.clusters {
            if !c.server.is_empty() && !c.name.is_empty() {
                names.insert(c.server.clone(), c.name.clone());
            }
        }
        Rendered { render, names }
    }

    /// One Application, reused from another revision when its inputs are identical.
    fn render_app(
        &self,
        fs: &dyn FileSystem,
        app: &Value,
        opts: &Options,
    ) -> Result<Vec<Value>, ArgoError> {
        let (Some(reuse), Some(key)) = (&self.reuse, reuse_key(app, opts)) else {
            return capstan_argocd::render::render_app(fs, app, opts);
        };
        let mut failure: Option<ArgoError> = None;
        let out = reuse.reuse(key, fs, &mut |fs| {
            capstan_argocd::render::render_app(fs, app, opts).map_err(|e| {
                let msg = e.to_string();
                failure = Some(e);
                msg
            })
        });
        out.map_err(|msg| failure.unwrap_or_else(|| ArgoError::new(ErrorKind::BadInput, "", msg)))
    }

    /// The cluster an Application deploys to: `destination.name`, else the name of the
    /// cluster whose server is `destination.server`, else the server.
    fn destination(app: &Value, names: &BTreeMap<String, String>) -> (String, String) {
        let d = |k: &str| {
            app.pointer(&format!("/spec/destination/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let (name, server) = (d("name"), d("server"));
        if !name.is_empty() {
            let server = names
                .iter()
                .find(|(_, n)| **n == name)
                .map(|(s, _)| s.clone())
                .unwrap_or_default();
            return (name, server);
        }
        if server.is_empty() {
            return ("(no destination)".into(), String::new());
        }
        let name = names
            .get(server.trim_end_matches('/'))
            .or_else(|| names.get(&server))
            .cloned()
            .unwrap_or_else(|| server.clone());
        (name, server)
    }

    fn selected(&self, name: &str, server: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == name || c == server)
    }
}

/// What an Application's render depends on besides the files it reads, or `None` when
/// it reads outside the repository (never reused).
fn reuse_key(app: &Value, opts: &Options) -> Option<String> {
    let spec = app.get("spec")?;
    let sources: Vec<&Value> = match spec.get("sources").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => vec![spec.get("source")?],
    };
    for s in &sources {
        let url = s.get("repoURL").and_then(Value::as_str).unwrap_or("");
        let chart = s.get("chart").and_then(Value::as_str).unwrap_or("");
        if !chart.is_empty() || !opts.is_this_repo(url) {
            return None;
        }
    }
    let text = app.to_string();
    // The revision is an input only through `$ARGOCD_APP_REVISION*` substitutions.
    let revision = if text.contains("ARGOCD_APP_REVISION") {
        opts.revision.as_str()
    } else {
        ""
    };
    Some(format!(
        "argocd-app:{text}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{}|{revision}",
        opts.this_repo,
        opts.kustomize_load_restrictor,
        opts.kustomize_enable_helm,
        opts.kube_version,
        opts.api_versions,
        opts.extra_namespaced_kinds,
        opts.unknown_kinds_cluster_scoped,
    ))
}

impl Reader for ArgoReader {
    fn clusters(&self, fs: &dyn FileSystem) -> Result<Vec<ClusterTarget>, String> {
        let r = self.rendered(fs)?;
        let mut out: Vec<ClusterTarget> = Vec::new();
        for a in &r.render.apps {
            let (name, server) = Self::destination(&a.application, &r.names);
            if !self.selected(&name, &server) || out.iter().any(|c| c.name == name) {
                continue;
            }
            out.push(ClusterTarget {
                name,
                path: server,
                flux: false,
                argocd: true,
            });
        }
        if !r.render.errors.is_empty() && self.clusters.is_empty() {
            out.push(ClusterTarget {
                name: REPOSITORY_CLUSTER.into(),
                path: String::new(),
                flux: false,
                argocd: true,
            });
        }
        if out.is_empty() {
            return Err(if self.clusters.is_empty() {
                "the repository declares no Argo CD Application or ApplicationSet".into()
            } else {
                format!(
                    "no Argo CD Application deploys to {}",
                    self.clusters.join(", ")
                )
            });
        }
        out.sort();
        Ok(out)
    }

    fn render(
        &self,
        fs: &dyn FileSystem,
        cluster: &ClusterTarget,
        _renderer: &dyn Renderer,
    ) -> ClusterSnapshot {
        let mut snap = ClusterSnapshot {
            name: cluster.name.clone(),
            path: cluster.path.clone(),
            ..Default::default()
        };
        let r = match self.rendered(fs) {
            Ok(r) => r,
            Err(e) => {
                snap.errors.push(e);
                return snap;
            }
        };
        if cluster.name == REPOSITORY_CLUSTER {
            snap.errors = r.render.errors.iter().map(|e| e.to_string()).collect();
        }
        // An Application declared in a file that an app-of-apps parent renders too is
        // one unit (the declared one, waiting for the parent).
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for a in &r.render.apps {
            if Self::destination(&a.application, &r.names).0 != cluster.name {
                continue;
            }
            let unit = unit_of(a);
            let identity = (
                unit.id.clone(),
                a.application
                    .get("spec")
                    .map(Value::to_string)
                    .unwrap_or_default(),
            );
            if let Some(&i) = seen.get(&identity) {
                if a.objects.is_ok() == snap.units[i].error.is_none() {
                    for e in unit.depends_on {
                        if !snap.units[i].depends_on.contains(&e) {
                            snap.units[i].depends_on.push(e);
                        }
                    }
                    continue;
                }
            }
            seen.insert(identity, snap.units.len());
            snap.units.push(unit);
        }
        // Two Applications with one namespace/name (generated by two ApplicationSets,
        // declared in two files): told apart by where they come from.
        let mut count: HashMap<String, usize> = HashMap::new();
        for u in &snap.units {
            *count.entry(u.id.clone()).or_default() += 1;
        }
        for u in &mut snap.units {
            if count[&u.id] > 1 {
                u.id = format!("{} ({})", u.id, u.source);
            }
        }
        snap
    }

    fn finish(&self) {
        self.rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn unit_of(a: &capstan_argocd::AppRecord) -> UnitSnapshot {
    let app = &a.application;
    let ns = app
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("argocd");
    let spec = app.get("spec").cloned().unwrap_or(Value::Null);
    let sources: Vec<Value> = match spec.get("sources").and_then(Value::as_array) {
        Some(l) if !l.is_empty() => l.clone(),
        _ => spec.get("source").cloned().into_iter().collect(),
    };
    let chart = sources.iter().find_map(|s| {
        let c = s.get("chart").and_then(Value::as_str).unwrap_or("");
        (!c.is_empty()).then(|| {
            (
                c.to_string(),
                s.get("targetRevision")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
    });
    let mut depends_on = Vec::new();
    if let Some(p) = &a.origin.parent {
        depends_on.push((
            format!("{APPLICATION}/{ns}/{p}"),
            "app of apps (the parent creates it)".to_string(),
        ));
    }
    if let Some(d) = app
        .pointer("/metadata/annotations/capstan.io~1depends-on")
        .and_then(Value::as_str)
    {
        for on in d.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            depends_on.push((on.to_string(), "capstan.io/depends-on".to_string()));
        }
    }
    let (objects, error) = match &a.objects {
        Ok(o) => (o.clone(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    UnitSnapshot {
        id: format!("{APPLICATION}/{ns}/{}", a.name()),
        kind: APPLICATION.into(),
        source: a.origin.source(),
        objects,
        error,
        depends_on,
        prune: spec
            .pointer("/syncPolicy/automated/prune")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        chart,
        manifest: Some(app.clone()),
    }
}

/// Which layouts [`FleetReader`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Flux cluster directories and Argo CD Applications, whichever the tree holds.
    #[default]
    Auto,
    Flux,
    ArgoCd,
}

/// A repository with Flux cluster directories, Argo CD Applications or both: a
/// cluster named in both (`clusters/prod` and Applications deploying to `prod`) is one
/// cluster with the units of both.
pub struct FleetReader {
    pub layout: Layout,
    pub flux: FluxReader,
    pub argo: ArgoReader,
}

/// Does `clusters/<name>` hold Flux objects (a YAML file beneath it naming a Flux API)?
fn is_flux_dir(fs: &dyn FileSystem, dir: &Path) -> bool {
    capstan_argocd::yaml_files(fs, dir).iter().any(|p| {
        fs.read_to_string(p)
            .is_ok_and(|t| t.contains("toolkit.fluxcd.io"))
    })
}

impl Reader for FleetReader {
    fn clusters(&self, fs: &dyn FileSystem) -> Result<Vec<ClusterTarget>, String> {
        let want_argo = self.layout == Layout::ArgoCd
            || (self.layout == Layout::Auto && ArgoReader::holds_apps(fs));
        let argo = if want_argo {
            Some(self.argo.clusters(fs))
        } else {
            None
        };
        let flux = if self.layout == Layout::ArgoCd {
            None
        } else {
            Some(self.flux.clusters(fs).map(|list| {
                if !matches!(argo, Some(Ok(_))) {
                    return list;
                }
                // Argo CD layouts keep per-cluster configuration in clusters/ too: with
                // Applications in the tree, a cluster directory is Flux's when it holds
                // Flux objects.
                list.into_iter()
                    .filter(|c| is_flux_dir(fs, &capstan_vfs::join_within(Path::new("/"), &c.path)))
                    .collect()
            }))
        };
        let mut out: Vec<ClusterTarget> = Vec::new();
        let mut errors = Vec::new();
        for r in [flux, argo].into_iter().flatten() {
            match r {
                Ok(list) => {
                    for c in list {
                        match out.iter_mut().find(|o| o.name == c.name) {
                            Some(o) => {
                                o.flux |= c.flux;
                                o.argocd |= c.argocd;
                                if o.path.is_empty() || c.flux {
                                    o.path = c.path;
                                }
                            }
                            None => out.push(c),
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if out.is_empty() {
            return Err(if errors.is_empty() {
                "the repository has no Flux cluster directories (clusters/*) and no Argo CD Applications".into()
            } else {
                errors.join("; ")
            });
        }
        out.sort();
        Ok(out)
    }

    fn render(
        &self,
        fs: &dyn FileSystem,
        cluster: &ClusterTarget,
        renderer: &dyn Renderer,
    ) -> ClusterSnapshot {
        let mut snap = if cluster.flux {
            self.flux.render(fs, cluster, renderer)
        } else {
            ClusterSnapshot {
                name: cluster.name.clone(),
                path: cluster.path.clone(),
                ..Default::default()
            }
        };
        if cluster.argocd {
            let a = self.argo.render(fs, cluster, renderer);
            snap.units.extend(a.units);
            snap.errors.extend(a.errors);
        }
        snap
    }

    fn finish(&self) {
        self.argo.finish();
    }
}

#[cfg(test)]
mod tests;
