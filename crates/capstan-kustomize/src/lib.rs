//! A native kustomize engine.
//!
//! [`build`] reads a kustomization tree through a [`capstan_vfs::FileSystem`] and returns
//! the resources kustomize would output; [`build_to_string`] also renders them byte for
//! byte as `kustomize build` prints them. No I/O happens outside the file system given.
//!
//! Covered: resources (files, directories, nested kustomizations), components, crds,
//! namespace, namePrefix/nameSuffix with name reference fix-ups (kustomize's builtin
//! nameReference table and `configurations`), labels/commonLabels, commonAnnotations,
//! images, replicas, patches (strategic merge in [`smp`], JSON 6902), patchesStrategicMerge,
//! patchesJson6902, configMapGenerator/secretGenerator (with kustomize's hash suffix),
//! generatorOptions, replacements, vars (bound per level, as kustomize's `MergeVars`),
//! sortOptions, buildMetadata (origin/transformer annotations, managed-by label), the
//! `openapi` field (custom schemas give strategic-merge keys; kinds without a schema get
//! their lists replaced, as kyaml does), builtin generator/transformer plugin configs
//! (including IAMPolicyGenerator), local-config resources dropped, and the legacy kind
//! order. Output maps are sorted in go-yaml v2's key order, as `sigs.k8s.io/yaml` does.
//!
//! With [`BuildOptions::enable_helm`], `helmCharts` (and the deprecated
//! `helmChartInflationGenerator` field, and `HelmChartInflationGenerator` configs under
//! `generators`) are rendered natively by capstan-helm from charts on disk; charts are
//! never pulled. Namespaces follow kustomize 5.8.1: an entry's `namespace`, else the
//! nearest kustomization's (its own or an including one's), becomes
//! `.Release.Namespace`, and namespace transformers leave chart output alone.
//!
//! KRM functions in `generators`, `transformers` and `validators` (configurations with
//! the `config.kubernetes.io/function` annotation) need
//! [`BuildOptions::enable_alpha_plugins`], as kustomize's external plugins do. Exec
//! functions also need [`BuildOptions::enable_exec`] and a [`FunctionRunner`]
//! ([`build_with_runner`]); they speak kustomize's `ResourceList` protocol. Container
//! (and starlark) functions are an error: capstan runs no containers.

mod accumulate;
mod crds;
mod error;
mod fieldspec;
mod generators;
mod helmcharts;
mod json6902;
mod krm;
mod kustfile;
mod nameref;
mod order;
mod replacements;
mod resource;
pub mod smp;
mod transformers;
mod vars;

use std::path::Path;

use capstan_vfs::FileSystem;
use capstan_yaml::Node;

pub use error::KustomizeError;
pub use krm::{ExecCall, ExecOutput, FunctionRunner};
pub use resource::{ResId, Resource};

/// The value of `app.kubernetes.io/managed-by` with `--enable-managedby-label` or
/// `buildMetadata: [managedByLabel]` (the kustomize release capstan follows).
pub const MANAGED_BY: &str = "kustomize-v5.8.1";

/// How to order the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reorder {
    /// Keep the load order (kustomize's `--reorder=none`), unless the kustomization's
    /// `sortOptions` asks otherwise.
    None,
    /// kustomize's legacy kind order (the default of `kustomize build` and of kubectl).
    #[default]
    Legacy,
    /// Not given on the command line: `sortOptions` of the kustomization decides, legacy
    /// otherwise.
    Unspecified,
}

/// Which files a kustomization may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadRestrictor {
    /// Files must be in or below the kustomization's directory (`LoadRestrictionsRootOnly`).
    #[default]
    RootOnly,
    /// Anything (`LoadRestrictionsNone`).
    None,
}

/// Options of a build (the flags of `kustomize build`).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub reorder: Reorder,
    pub load_restrictor: LoadRestrictor,
    pub enable_helm: bool,
    pub enable_alpha_plugins: bool,
    pub enable_exec: bool,
    /// Add `app.kubernetes.io/managed-by: kustomize-<version>`.
    pub add_managed_by_label: bool,
}

/// Build the kustomization at `root` (a directory). Returns the resources in output order.
pub fn build(
    fs: &dyn FileSystem,
    root: &Path,
    opts: &BuildOptions,
) -> Result<Vec<Node>, KustomizeError> {
    let res = accumulate::build_resources(fs, root, opts)?;
    Ok(res.into_iter().map(|r| r.node).collect())
}

/// [`build`] with a runner for exec KRM functions (`exec:` functions in `generators`,
/// `transformers` and `validators`, allowed by [`BuildOptions::enable_exec`]).
pub fn build_with_runner(
    fs: &dyn FileSystem,
    root: &Path,
    opts: &BuildOptions,
    runner: &dyn FunctionRunner,
) -> Result<Vec<Node>, KustomizeError> {
    let res = accumulate::build_resources_with(fs, root, opts, Some(runner))?;
    Ok(res.into_iter().map(|r| r.node).collect())
}

/// [`build_to_string`] with a runner for exec KRM functions.
pub fn build_to_string_with_runner(
    fs: &dyn FileSystem,
    root: &Path,
    opts: &BuildOptions,
    runner: &dyn FunctionRunner,
) -> Result<String, KustomizeError> {
    let nodes = build_with_runner(fs, root, opts, runner)?;
    Ok(render(&nodes))
}

/// Build and render as `kustomize build` prints: keys sorted, values normalised as
/// kustomize's JSON round trip does, documents separated by `---`.
pub fn build_to_string(
    fs: &dyn FileSystem,
    root: &Path,
    opts: &BuildOptions,
) -> Result<String, KustomizeError> {
    let nodes = build(fs, root, opts)?;
    Ok(render(&nodes))
}

/// Render resources as `kustomize build` prints them.
pub fn render(nodes: &[Node]) -> String {
    let out: Vec<Node> = nodes
        .iter()
        .map(|n| {
            let mut n = capstan_yaml::normalize_json_like(n);
            n.sort_keys_go_yaml_v2_recursive();
            n
        })
        .collect();
    capstan_yaml::emit_documents(&out)
}
