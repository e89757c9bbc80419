//! Rendering revisions: which clusters a tree holds and what each renders, through a
//! [`Reader`] (Flux repositories: [`FluxReader`]; an Argo CD reader implements the
//! same trait), on parallel threads, sharing one [`Renderer`] (a
//! [`crate::memo::MemoRenderer`] reuses renders across clusters and revisions).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use capstan_units::{NoCluster, Renderer, UnitOutcome};
use capstan_vfs::FileSystem;

use crate::model::{ClusterSnapshot, RevisionSnapshot, UnitSnapshot};

/// A cluster of a repository: a name and where its state starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterTarget {
    pub name: String,
    /// `clusters/<name>` (Flux); for an Argo CD destination only, its server.
    pub path: String,
    /// Which layouts hold it ([`crate::argocd::FleetReader`]): a Flux cluster directory,
    /// Argo CD Applications whose destination it is, or both.
    pub flux: bool,
    pub argocd: bool,
}

/// Reads one repository layout. Flux: `clusters/<name>` directories
/// ([`FluxReader`]); Argo CD: one target per Application (generated ones included).
pub trait Reader: Send + Sync {
    /// The clusters a revision's tree holds; an error when it holds none this reader
    /// understands.
    fn clusters(&self, fs: &dyn FileSystem) -> Result<Vec<ClusterTarget>, String>;
    /// Everything one cluster renders (failures are recorded in the snapshot, never
    /// returned: one unit's failure is its own).
    fn render(
        &self,
        fs: &dyn FileSystem,
        cluster: &ClusterTarget,
        renderer: &dyn Renderer,
    ) -> ClusterSnapshot;
    /// Called once [`render_revisions`] is done with the trees (a reader that keeps
    /// per-tree state drops it here).
    fn finish(&self) {}
}

/// Flux repositories, rendered as `capstan build` renders them (offline: no cluster
/// lookups, charts from the repository tree).
#[derive(Debug, Clone, Default)]
pub struct FluxReader {
    /// `--cluster`/`--path` given: exactly these; otherwise every `clusters/*`.
    pub selected: Vec<ClusterTarget>,
}

impl Reader for FluxReader {
    fn clusters(&self, fs: &dyn FileSystem) -> Result<Vec<ClusterTarget>, String> {
        if !self.selected.is_empty() {
            return Ok(self.selected.clone());
        }
        let root = Path::new("/clusters");
        if !fs.is_dir(root) {
            return Err("the repository has no clusters/ directory (and no Argo CD Applications were read): name cluster directories with --path DIR".into());
        }
        let mut out = Vec::new();
        for name in fs.read_dir(root).map_err(|e| format!("clusters/: {e}"))? {
            if name.starts_with('.') || !fs.is_dir(&root.join(&name)) {
                continue;
            }
            out.push(ClusterTarget {
                path: format!("clusters/{name}"),
                name,
                flux: true,
                argocd: false,
            });
        }
        Ok(out)
    }

    fn render(
        &self,
        fs: &dyn FileSystem,
        cluster: &ClusterTarget,
        renderer: &dyn Renderer,
    ) -> ClusterSnapshot {
        let opts = capstan_units::LoadOptions::new(cluster.path.clone());
        let r = capstan_engine::render_cluster_with(fs, renderer, &NoCluster, &opts);
        let mut errors: Vec<String> = r.units.errors.iter().map(|e| e.to_string()).collect();
        if let Err(e) = &r.plan {
            errors.push(e.to_string());
        }
        let mut units = Vec::new();
        for u in &r.units.units {
            let unit = u.unit();
            let depends_on: Vec<(String, String)> = match &r.plan {
                Ok(p) => p
                    .dependencies(&unit.id)
                    .iter()
                    .map(|e| (e.on.to_string(), e.reason.to_string()))
                    .collect(),
                Err(_) => unit
                    .spec
                    .depends_on
                    .iter()
                    .map(|d| (d.to_string(), "dependsOn".to_string()))
                    .collect(),
            };
            let chart = unit.helm.as_ref().map(|h| match &h.chart {
                capstan_units::ChartSource::Template { chart, version, .. } => {
                    (chart.clone(), version.clone().unwrap_or_default())
                }
                capstan_units::ChartSource::Ref(s) => (
                    format!("{} {}/{}", s.kind, s.namespace, s.name),
                    String::new(),
                ),
            });
            let source = match &chart {
                Some((c, v)) if v.is_empty() => format!("chart {c}"),
                Some((c, v)) => format!("chart {c} {v}"),
                None => unit.spec.path.clone(),
            };
            let (objects, error) = match u {
                UnitOutcome::Rendered(r) => {
                    let mut o = r.objects.clone();
                    o.extend(r.hooks.iter().cloned());
                    (o, None)
                }
                UnitOutcome::Failed { error, .. } => (Vec::new(), Some(error.to_string())),
            };
            units.push(UnitSnapshot {
                id: unit.id.to_string(),
                kind: unit.id.kind.clone(),
                source,
                objects,
                error,
                depends_on,
                prune: unit.helm.is_some() || unit.spec.prune,
                chart,
                manifest: None,
            });
        }
        ClusterSnapshot {
            name: cluster.name.clone(),
            path: cluster.path.clone(),
            units,
            errors,
        }
    }
}

/// One revision to render.
pub struct Revision<'a> {
    pub label: String,
    pub fs: &'a dyn FileSystem,
}

/// Render every cluster of every revision on `threads` threads (each with
/// [`capstan_engine::RENDER_STACK_SIZE`] of stack). Clusters come from the reader at
/// each revision; a cluster present at one revision only is rendered there only.
/// Revisions are worked through in order, so a later revision reuses the renders of
/// an earlier one.
pub fn render_revisions(
    reader: &dyn Reader,
    revisions: &[Revision<'_>],
    renderer: &dyn Renderer,
    threads: usize,
) -> Result<Vec<RevisionSnapshot>, String> {
    let mut work: Vec<(usize, ClusterTarget)> = Vec::new();
    let mut listed: Vec<Result<Vec<ClusterTarget>, String>> = Vec::new();
    for r in revisions {
        listed.push(reader.clusters(r.fs));
    }
    if listed.iter().all(Result::is_err) {
        return Err(listed.into_iter().find_map(Result::err).unwrap_or_default());
    }
    for (i, l) in listed.iter().enumerate() {
        for c in l.as_ref().map(Vec::as_slice).unwrap_or(&[]) {
            work.push((i, c.clone()));
        }
    }
    let results: Mutex<Vec<Option<ClusterSnapshot>>> = Mutex::new(vec![None; work.len()]);
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, work.len().max(1));
    std::thread::scope(|s| -> Result<(), String> {
        let mut handles = Vec::new();
        for t in 0..threads {
            let (work, results, next) = (&work, &results, &next);
            let h = std::thread::Builder::new()
                .name(format!("capstan-diff-{t}"))
                .stack_size(capstan_engine::RENDER_STACK_SIZE)
                .spawn_scoped(s, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((rev, cluster)) = work.get(i) else {
                        break;
                    };
                    let fs = revisions[*rev].fs;
                    let snap = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        reader.render(fs, cluster, renderer)
                    }))
                    .unwrap_or_else(|_| ClusterSnapshot {
                        name: cluster.name.clone(),
                        path: cluster.path.clone(),
                        units: Vec::new(),
                        errors: vec!["rendering panicked (a bug in capstan; logged above)".into()],
                    });
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(snap);
                })
                .map_err(|e| format!("cannot start a render thread: {e}"))?;
            handles.push(h);
        }
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    })?;
    reader.finish();
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out: Vec<RevisionSnapshot> = revisions
        .iter()
        .map(|r| RevisionSnapshot {
            label: r.label.clone(),
            clusters: Vec::new(),
        })
        .collect();
    for ((rev, _), snap) in work.iter().zip(results) {
        if let Some(s) = snap {
            out[*rev].clusters.push(s);
        }
    }
    for (i, l) in listed.into_iter().enumerate() {
        if let Err(e) = l {
            out[i].clusters.push(ClusterSnapshot {
                name: "(repository)".into(),
                path: String::new(),
                units: Vec::new(),
                errors: vec![e],
            });
        }
    }
    Ok(out)
}
