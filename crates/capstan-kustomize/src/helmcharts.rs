//! `helmCharts` (kustomize's HelmChartInflationGenerator), rendered natively with
//! capstan-helm instead of a `helm` binary. Only charts on disk (`helmGlobals.chartHome`,
//! default `charts/`) are read; pulling from a repository is not done here.

use std::path::Path;

use capstan_yaml::Node;

use crate::accumulate::{resources_from_text, Ctx};
use crate::error::{kerr, Result};
use crate::kustfile::Kustomization;
use crate::resource::Resource;

/// Inflate every `helmCharts` entry of a kustomization.
pub(crate) fn inflate(ctx: &Ctx, k: &Kustomization) -> Result<Vec<Resource>> {
    let charts = k.seq("helmCharts");
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    if !ctx.opts.enable_helm {
        return Err(kerr!(
            "unable to run helm chart inflation: must specify --enable-helm"
        ));
    }
    let chart_home = k
        .get("helmGlobals")
        .and_then(|g| g.str_at(&["chartHome"]))
        .unwrap_or("charts")
        .to_string();
    let mut out = Vec::new();
    // Without its own namespace, a chart is rendered into the kustomization's.
    let default_ns = k.node.str_at(&["namespace"]).map(str::to_string);
    for entry in charts {
        out.extend(inflate_one(
            ctx,
            &k.dir,
            &chart_home,
            entry,
            default_ns.as_deref(),
        )?);
    }
    Ok(out)
}

fn inflate_one(
    ctx: &Ctx,
    dir: &Path,
    chart_home: &str,
    entry: &Node,
    default_ns: Option<&str>,
) -> Result<Vec<Resource>> {
    let s = |key: &str| entry.str_at(&[key]).map(str::to_string);
    let name = s("name").ok_or_else(|| kerr!("helmCharts: an entry has no name"))?;
    let home = capstan_vfs::join(dir, chart_home);
    let mut chart = home.join(&name);
    if let Some(v) = s("version") {
        let versioned = home.join(format!("{name}-{v}")).join(&name);
        if ctx.fs.is_dir(&versioned) {
            chart = versioned;
        }
    }
    if !ctx.fs.is_dir(&chart) {
        return Err(kerr!(
            "helm chart {name}: {} not found (charts are not pulled from repositories)",
            chart.display()
        ));
    }
    let mut values_yaml = Vec::new();
    if let Some(f) = s("valuesFile") {
        let p = capstan_vfs::join(dir, &f);
        values_yaml.push(
            ctx.fs
                .read_to_string(&p)
                .map_err(|e| kerr!("{}: {e}", p.display()))?,
        );
    }
    for f in entry
        .get("additionalValuesFiles")
        .and_then(Node::as_sequence)
        .into_iter()
        .flatten()
    {
        if let Some(f) = f.as_str() {
            let p = capstan_vfs::join(dir, f);
            values_yaml.push(
                ctx.fs
                    .read_to_string(&p)
                    .map_err(|e| kerr!("{}: {e}", p.display()))?,
            );
        }
    }
    if let Some(inline) = entry.get("valuesInline") {
        values_yaml.push(capstan_yaml::emit_document(inline));
    }
    let mut opts = capstan_helm::TemplateOptions {
        release_name: s("releaseName").unwrap_or_else(|| "release-name".into()),
        namespace: s("namespace")
            .or_else(|| default_ns.map(str::to_string))
            .unwrap_or_else(|| "default".into()),
        values_yaml,
        kube_version: s("kubeVersion"),
        include_crds: entry.get("includeCRDs").and_then(Node::as_str) == Some("true"),
        skip_tests: entry.get("skipTests").and_then(Node::as_str) == Some("true"),
        no_hooks: entry.get("skipHooks").and_then(Node::as_str) == Some("true"),
        ..Default::default()
    };
    for v in entry
        .get("apiVersions")
        .and_then(Node::as_sequence)
        .into_iter()
        .flatten()
    {
        if let Some(v) = v.as_str() {
            opts.api_versions.push(v.to_string());
        }
    }
    let rendered = capstan_helm::template(ctx.fs, &chart, &opts)
        .map_err(|e| kerr!("helm chart {name}: {e}"))?;
    resources_from_text(&rendered.output, &chart.to_string_lossy())
}
