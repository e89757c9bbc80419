//! `helmCharts` (kustomize's HelmChartInflationGenerator), rendered natively with
//! capstan-helm instead of a `helm` binary. Only charts on disk (`helmGlobals.chartHome`,
//! default `charts/`) are read; pulling from a repository (`repo:`) is not done here,
//! and an entry whose chart is not on disk fails with an error saying so.
//!
//! Namespaces follow kustomize 5.8.1: an entry's `namespace`, else the nearest
//! kustomization's (this one's or an including one's), is `.Release.Namespace`; the
//! namespace transformers leave the rendered resources alone.

use std::path::Path;

use capstan_yaml::Node;

use crate::accumulate::{resources_from_text, Ctx};
use crate::error::{kerr, Result};
use crate::kustfile::Kustomization;
use crate::resource::Resource;

/// Inflate every `helmCharts` entry of a kustomization, and those of the deprecated
/// `helmChartInflationGenerator` field (converted as kustomize's `SplitHelmParameters`
/// does, after the `helmCharts` ones).
pub(crate) fn inflate(ctx: &Ctx, k: &Kustomization) -> Result<Vec<Resource>> {
    let mut charts: Vec<(&str, Node)> = k
        .seq("helmCharts")
        .iter()
        .map(|c| ("helmCharts", c.clone()))
        .collect();
    let legacy = k.seq("helmChartInflationGenerator");
    let mut legacy_home = None;
    for old in legacy {
        check_known("helmChartInflationGenerator", old, HELM_CHART_ARGS_FIELDS)?;
        charts.push(("helmChartInflationGenerator", from_legacy(old)));
        // Last non-empty wins.
        if let Some(h) = old.str_at(&["chartHome"]).filter(|h| !h.is_empty()) {
            legacy_home = Some(h.to_string());
        }
    }
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    if !ctx.opts.enable_helm {
        return Err(kerr!(
            "unable to run helm chart inflation: must specify --enable-helm"
        ));
    }
    let chart_home = match k.get("helmGlobals") {
        Some(g) => g.str_at(&["chartHome"]).map(str::to_string),
        None => legacy_home,
    }
    .filter(|h| !h.is_empty())
    .unwrap_or_else(|| "charts".into());
    let mut out = Vec::new();
    // Without its own namespace, a chart is rendered into the kustomization's, or
    // the one a kustomization including this one sets.
    let default_ns = ctx.helm_namespace.clone();
    for (field, entry) in &charts {
        out.extend(inflate_one(
            ctx,
            &k.dir,
            &chart_home,
            field,
            entry,
            default_ns.as_deref(),
        )?);
    }
    Ok(out)
}

/// A `HelmChartInflationGenerator` builtin configuration (`generators:` entry): its
/// own `chartHome` and `namespace` only.
pub(crate) fn generate(ctx: &Ctx, dir: &Path, cfg: &Node) -> Result<Vec<Resource>> {
    if !ctx.opts.enable_helm {
        return Err(kerr!(
            "HelmChartInflationGenerator {}: must specify --enable-helm",
            cfg.str_at(&["metadata", "name"]).unwrap_or("")
        ));
    }
    let chart_home = cfg
        .str_at(&["chartHome"])
        .filter(|h| !h.is_empty())
        .unwrap_or("charts")
        .to_string();
    inflate_one(
        ctx,
        dir,
        &chart_home,
        "HelmChartInflationGenerator",
        cfg,
        None,
    )
}

/// kustomize's `makeHelmChartFromHca` (`releaseNamespace` is not carried over).
fn from_legacy(old: &Node) -> Node {
    let mut m = capstan_yaml::Mapping::new();
    for (from, to) in [
        ("chartName", "name"),
        ("chartVersion", "version"),
        ("chartRepoUrl", "repo"),
        ("values", "valuesFile"),
        ("valuesLocal", "valuesInline"),
        ("valuesMerge", "valuesMerge"),
        ("releaseName", "releaseName"),
    ] {
        if let Some(v) = old.get(from).filter(|v| !v.is_null()) {
            m.insert(to, v.clone());
        }
    }
    Node::Mapping(m)
}

fn inflate_one(
    ctx: &Ctx,
    dir: &Path,
    chart_home: &str,
    field: &str,
    entry: &Node,
    default_ns: Option<&str>,
) -> Result<Vec<Resource>> {
    let s = |key: &str| {
        entry
            .str_at(&[key])
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    if field != "HelmChartInflationGenerator" {
        check_fields(field, entry)?;
    }
    let name = s("name").ok_or_else(|| kerr!("{field}: chart name cannot be empty"))?;
    if s("digest").is_some() && !s("repo").is_some_and(|r| r.starts_with("oci://")) {
        return Err(kerr!(
            "{field}: chart '{name}': digest is only supported for OCI repos (e.g. 'oci://my-registry.com/my-chart:latest')"
        ));
    }
    let home = capstan_vfs::join(dir, chart_home);
    // kustomize's absChartHome: a chart with both a version and a repo lives in
    // `{chartHome}/{name}-{version}/{name}`, any other in `{chartHome}/{name}`.
    let chart = match (s("version"), s("repo")) {
        (Some(v), Some(_)) => home.join(format!("{name}-{v}")).join(&name),
        _ => home.join(&name),
    };
    if !ctx.fs.is_dir(&chart) {
        return Err(match s("repo") {
            // kustomize's wording when there is nothing to pull from.
            None => kerr!(
                "{field}: chart '{name}': no repo specified for pull, no chart found at '{}'",
                chart.display()
            ),
            Some(repo) => pull_unsupported(
                field,
                &name,
                &repo,
                s("version").as_deref(),
                &chart,
                chart_home,
            ),
        });
    }
    let values_yaml = values_layers(ctx, dir, field, &name, &chart, entry)?;
    let release_name = release_name(field, &name, s("releaseName"), s("nameTemplate"))?;
    let mut opts = capstan_helm::TemplateOptions {
        release_name,
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
        .map_err(|e| kerr!("{field}: chart '{name}': {e}"))?;
    let mut out = resources_from_text(&rendered.output, &chart.to_string_lossy())?;
    for r in &mut out {
        r.helm_generated = true;
    }
    Ok(out)
}

/// The fields of kustomize's `HelmChart` (kustomize 5.8.1). kustomize decodes the
/// kustomization strictly, so any other field is an error.
const HELM_CHART_FIELDS: &[&str] = &[
    "name",
    "version",
    "digest",
    "repo",
    "releaseName",
    "namespace",
    "additionalValuesFiles",
    "valuesFile",
    "valuesInline",
    "valuesMerge",
    "includeCRDs",
    "skipHooks",
    "apiVersions",
    "kubeVersion",
    "nameTemplate",
    "skipTests",
    "debug",
    "devel",
];

/// The fields of the deprecated `HelmChartArgs` (`helmChartInflationGenerator`).
const HELM_CHART_ARGS_FIELDS: &[&str] = &[
    "chartName",
    "chartVersion",
    "chartRepoUrl",
    "chartHome",
    "chartRepoName",
    "helmBin",
    "helmHome",
    "values",
    "valuesLocal",
    "valuesMerge",
    "releaseName",
    "releaseNamespace",
    "extraArgs",
];

/// An unknown field of a `helmCharts` entry is an error (Go's decoder wording; field
/// names match case-insensitively, as encoding/json matches them).
fn check_fields(field: &str, entry: &Node) -> Result<()> {
    check_known(field, entry, HELM_CHART_FIELDS)
}

fn check_known(field: &str, entry: &Node, known: &[&str]) -> Result<()> {
    if let Node::Mapping(m) = entry {
        for (k, _) in &m.entries {
            if !known.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                return Err(kerr!(
                    "invalid Kustomization: {field}: json: unknown field \"{k}\""
                ));
            }
        }
    }
    Ok(())
}

/// The release name helm gets, as kustomize passes it (`helm template NAME` or
/// `--generate-name`, then `--name-template`) and helm's `NameAndChart` reads it: a
/// `releaseName` together with a `nameTemplate` is helm's error; a `nameTemplate` alone
/// is a Go template (with Sprig) executed with no data; neither gives `helm template`'s
/// default, `release-name`.
fn release_name(
    field: &str,
    chart: &str,
    release: Option<String>,
    name_template: Option<String>,
) -> Result<String> {
    match (release, name_template) {
        (Some(_), Some(_)) => Err(kerr!(
            "{field}: chart '{chart}': cannot set --name-template and also specify a name (releaseName and nameTemplate are exclusive)"
        )),
        (Some(r), None) => Ok(r),
        (None, None) => Ok("release-name".into()),
        (None, Some(t)) => {
            let mut set = capstan_gotemplate::TemplateSet::new_shared(capstan_sprig::shared_funcs());
            set.add("name-template", &t)
                .and_then(|_| set.execute("name-template", &capstan_gotemplate::Value::Nil))
                .map_err(|e| kerr!("{field}: chart '{chart}': nameTemplate: {e}"))
        }
    }
}

/// The values files given to helm, lowest precedence first (helm layers them over the
/// chart's `values.yaml`). As kustomize: `valuesInline` is first combined with
/// `valuesFile` (default: the chart's `values.yaml`) according to `valuesMerge`
/// (`override`, the default: inline wins; `merge`: the file wins; `replace`: the file
/// is dropped), then `additionalValuesFiles` come on top, in order.
fn values_layers(
    ctx: &Ctx,
    dir: &Path,
    field: &str,
    name: &str,
    chart: &Path,
    entry: &Node,
) -> Result<Vec<String>> {
    let read = |p: &Path| {
        ctx.fs
            .read_to_string(p)
            .map_err(|e| kerr!("{field}: chart '{name}': values file {}: {e}", p.display()))
    };
    let file = match entry.str_at(&["valuesFile"]).filter(|f| !f.is_empty()) {
        Some(f) => Some(read(&capstan_vfs::join(dir, f))?),
        None => None,
    };
    let inline = entry
        .get("valuesInline")
        .filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()));
    let merge = entry
        .str_at(&["valuesMerge"])
        .filter(|m| !m.is_empty())
        .unwrap_or("override");
    if !["merge", "override", "replace"].contains(&merge) {
        return Err(kerr!(
            "{field}: chart '{name}': valuesMerge must be one of [merge override replace], got '{merge}'"
        ));
    }
    let mut layers = Vec::new();
    match inline {
        None => layers.extend(file),
        Some(inline) => {
            let inline = capstan_yaml::emit_document(inline);
            match merge {
                "override" => {
                    layers.extend(file);
                    layers.push(inline);
                }
                "merge" => {
                    layers.push(inline);
                    // Without a valuesFile, the chart's own values.yaml wins.
                    let own = chart.join("values.yaml");
                    match file {
                        Some(f) => layers.push(f),
                        None if ctx.fs.is_file(&own) => layers.push(read(&own)?),
                        None => {}
                    }
                }
                _ => layers.push(inline),
            }
        }
    }
    for f in entry
        .get("additionalValuesFiles")
        .and_then(Node::as_sequence)
        .into_iter()
        .flatten()
    {
        if let Some(f) = f.as_str() {
            layers.push(read(&capstan_vfs::join(dir, f))?);
        }
    }
    Ok(layers)
}

/// The error for an entry whose chart is not on disk but names a `repo` to pull from.
fn pull_unsupported(
    field: &str,
    name: &str,
    repo: &str,
    version: Option<&str>,
    chart: &Path,
    chart_home: &str,
) -> crate::error::KustomizeError {
    let repo = redact_userinfo(repo);
    let repo_field = if field == "helmChartInflationGenerator" {
        "chartRepoUrl"
    } else {
        "repo"
    };
    let version_flag = version
        .map(|v| format!(" --version {v}"))
        .unwrap_or_default();
    let pull = if repo.starts_with("oci://") {
        format!(
            "helm pull --untar --untardir {chart_home} {}/{name}{version_flag}",
            repo.trim_end_matches('/')
        )
    } else {
        format!("helm pull --untar --untardir {chart_home} --repo {repo} {name}{version_flag}")
    };
    kerr!(
        "{field}: chart '{name}'{}: no chart found at '{}', and pulling it from its '{repo_field}' field ({repo}) is not supported: capstan renders charts offline only; vendor the chart under helmGlobals.chartHome ('{chart_home}') first, e.g. `{pull}`",
        version.map(|v| format!(" version {v}")).unwrap_or_default(),
        chart.display(),
    )
}

/// `scheme://user:password@host/...` without its credentials.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_userinfo;

    #[test]
    fn credentials_never_reach_the_error() {
        assert_eq!(
            redact_userinfo("https://me:s3cret@charts.example.com/stable"),
            "https://***@charts.example.com/stable"
        );
        assert_eq!(
            redact_userinfo("https://charts.example.com/a@b"),
            "https://charts.example.com/a@b"
        );
        assert_eq!(redact_userinfo("oci://ghcr.io/org"), "oci://ghcr.io/org");
    }
}
