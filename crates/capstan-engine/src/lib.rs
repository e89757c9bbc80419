//! One cluster, end to end: source tree -> units -> rendered objects -> plan -> apply.
//!
//! [`render_cluster`] is pure (given a file system and, optionally, a cluster lookup
//! for `substituteFrom`); the apply half lives in [`apply`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use capstan_graph::{Footprint, GraphError, GroupKind, Plan, UnitId, UnitNode};
use capstan_units::{ClusterLookup, ClusterUnits, HelmRequest, LoadOptions, Renderer, UnitOutcome};
use capstan_vfs::FileSystem;
use serde_json::Value;

/// Renders with capstan's own engines: kustomize with the options Flux uses (files
/// anywhere in the repository may be read; no plugins), and Helm charts.
pub struct NativeRenderer;

impl Renderer for NativeRenderer {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        let opts = capstan_kustomize::BuildOptions {
            reorder: capstan_kustomize::Reorder::Legacy,
            load_restrictor: capstan_kustomize::LoadRestrictor::None,
            ..Default::default()
        };
        let nodes = capstan_kustomize::build(fs, dir, &opts).map_err(|e| e.to_string())?;
        Ok(nodes.iter().map(capstan_yaml::to_json).collect())
    }

    fn helm(&self, fs: &dyn FileSystem, req: &HelmRequest) -> Result<Vec<Value>, String> {
        let Some(path) = &req.chart_path else {
            return Err(format!("charts from {:?} sources are fetched by the agent; local builds read charts from the repository (GitRepository sources)", req.chart));
        };
        let chart = capstan_helm::load(fs, path).map_err(|e| e.to_string())?;
        // JSON is YAML: Helm's own values parser gives the values Helm's types.
        let values = capstan_helm::yaml::parse_values(
            &serde_json::to_string(&req.values).unwrap_or_default(),
        )
        .map_err(|e| format!("values: {e}"))?;
        let caps = capstan_helm::engine::Capabilities::default();
        let manifests =
            capstan_helm::render_release(&chart, &values, &req.release_name, &req.namespace, &caps)
                .map_err(|e| e.to_string())?;
        Ok(manifests
            .into_iter()
            .filter(|m| m.hook.is_none())
            .filter(|m| req.include_crds || !m.source.contains("/crds/"))
            .map(|m| m.object)
            .collect())
    }
}

/// A cluster's units, rendered, with the dependency plan.
#[derive(Debug, Clone)]
pub struct ClusterRender {
    pub units: ClusterUnits,
    /// The plan, or why there is none (a cycle or a missing dependency stops everything).
    pub plan: Result<Plan, GraphError>,
    /// Units that cannot be applied, and why (failed to render, or depend on one that did).
    pub blocked: BTreeMap<UnitId, String>,
}

impl ClusterRender {
    /// Did anything go wrong before applying?
    pub fn has_errors(&self) -> bool {
        !self.units.errors.is_empty() || self.plan.is_err() || self.units.failed().next().is_some()
    }
}

/// Read, render and plan a cluster.
pub fn render_cluster(
    fs: &dyn FileSystem,
    lookup: &dyn ClusterLookup,
    opts: &LoadOptions,
) -> ClusterRender {
    let units = capstan_units::load(fs, &NativeRenderer, lookup, opts);
    let (plan, blocked) = plan_units(fs, &units);
    ClusterRender {
        units,
        plan,
        blocked,
    }
}

/// Build the dependency graph of rendered and failed units.
pub fn plan_units(
    fs: &dyn FileSystem,
    units: &ClusterUnits,
) -> (Result<Plan, GraphError>, BTreeMap<UnitId, String>) {
    // Kinds the repository declares cluster-scoped through CRDs.
    let mut cluster_scoped: BTreeSet<GroupKind> = BTreeSet::new();
    for r in units.rendered() {
        for o in &r.objects {
            if o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                && capstan_graph::crd_is_cluster_scoped(o)
            {
                if let Some(gk) = capstan_graph::crd_group_kind(o) {
                    cluster_scoped.insert(gk);
                }
            }
        }
    }
    let known: BTreeSet<&UnitId> = units.units.iter().map(UnitOutcome::id).collect();
    let any_failed = units.failed().next().is_some();
    let mut blocked: BTreeMap<UnitId, String> = BTreeMap::new();
    let mut nodes = Vec::new();
    for u in &units.units {
        let unit = u.unit();
        let mut depends_on = Vec::new();
        for d in &unit.spec.depends_on {
            if !known.contains(d) && any_failed {
                // Its declaring unit may be the one that failed: block, don't guess.
                blocked.insert(unit.id.clone(), format!("depends on {d}, which was not found (a unit failed to render, so not every unit is known)"));
                continue;
            }
            depends_on.push(d.clone());
        }
        let footprint = match u {
            UnitOutcome::Rendered(r) => {
                Footprint::of_objects(&r.objects, &|gk| cluster_scoped.contains(gk))
            }
            UnitOutcome::Failed { error, .. } => {
                blocked.insert(
                    unit.id.clone(),
                    format!("failed to render: {}", error.message),
                );
                Footprint::default()
            }
        };
        // Only worth a look at the files when the graph will complain about this unit.
        let origin = if depends_on.iter().any(|d| !known.contains(d)) {
            unit.declared_in
                .as_ref()
                .and_then(|dir| {
                    capstan_units::locate_recursive(fs, dir, &unit.id.kind, &unit.id.name)
                })
                .and_then(|l| l.file)
                .map(|f| f.display().to_string())
        } else {
            None
        };
        nodes.push(UnitNode {
            id: unit.id.clone(),
            depends_on,
            origin,
            footprint,
        });
    }
    let plan = capstan_graph::plan(&nodes);
    if let Ok(p) = &plan {
        let roots: Vec<UnitId> = blocked.keys().cloned().collect();
        for b in roots {
            for d in p.transitive_dependents(&b) {
                blocked
                    .entry(d)
                    .or_insert_with(|| format!("blocked: depends on {b}, which cannot be applied"));
            }
        }
    }
    (plan, blocked)
}

/// Render objects as YAML the way `kustomize build` prints them.
pub fn to_yaml(objects: &[Value]) -> String {
    let nodes: Vec<capstan_yaml::Node> = objects.iter().map(capstan_yaml::from_json).collect();
    capstan_kustomize::render(&nodes)
}

pub mod execute;
pub use execute::{execute, ExecuteOptions, Execution, UnitDriver, UnitStatus};

pub mod live;
pub use live::{apply_unit, ApplyDriver, DiffDriver, KubeLookup};
