//! Native Helm chart rendering: byte for byte what `helm template` (Helm v4.2.3) prints.
//!
//! [`template`] loads a chart through a [`capstan_vfs::FileSystem`] (a directory, or a
//! `.tgz`; subcharts in `charts/` as directories or `.tgz`, `.helmignore` honoured), merges
//! user values (`-f`, `--set-json`, `--set`, `--set-string`, `--set-literal`), processes
//! dependencies (conditions, tags, aliases, import-values; [`deps`]), coalesces values
//! exactly like Helm's `CoalesceValues` ([`coalesce`]), validates them against every
//! `values.schema.json` ([`schema`]), checks `kubeVersion` ([`semver`], Masterminds
//! semantics), renders every template of the chart and its subcharts in one template set
//! with Helm's names and `.Values/.Release/.Chart/.Capabilities/.Template/.Files/.Subcharts`
//! ([`engine`], on `capstan-gotemplate` + `capstan-sprig`), splits the output into
//! documents, separates hooks and sorts both in Helm's install order ([`manifest`]), and
//! prints them with `# Source:` headers, hooks last ([`Rendered::output`]).
//!
//! [`render_release`] gives the same documents as parsed objects for the apply path.
//!
//! ```no_run
//! use capstan_helm::{template, TemplateOptions};
//! let fs = capstan_vfs::DiskFs::new("/charts").unwrap();
//! let opts = TemplateOptions { release_name: "web".into(), namespace: "prod".into(), ..Default::default() };
//! let rendered = template(&fs, std::path::Path::new("/mychart"), &opts).unwrap();
//! print!("{}", rendered.output);
//! for w in &rendered.warnings { eprintln!("{w}"); }
//! ```

pub mod chart;
pub mod coalesce;
pub mod deps;
pub mod engine;
pub mod error;
pub mod ignore;
pub mod manifest;
pub mod recursion;
pub mod schema;
pub mod semver;
pub mod strvals;
pub mod value;
pub mod yaml;

pub use chart::{
    load, load_archive, load_archive_with, load_dir, load_with, Chart, ChartFile, Dependency,
    LoadLimits, Metadata,
};
pub use error::HelmError;
pub use value::{Map, Val};

use capstan_vfs::FileSystem;
use engine::{Capabilities, ReleaseInfo};
use manifest::{Document, HookDoc};
use std::collections::BTreeMap;
use std::path::Path;

/// What `helm template` takes besides the chart.
#[derive(Debug, Clone)]
pub struct TemplateOptions {
    /// Release name (`RELEASE-NAME` by default, as `helm template` without a name).
    pub release_name: String,
    /// `-n`.
    pub namespace: String,
    /// Contents of `-f` files, in order.
    pub values_yaml: Vec<String>,
    /// `--set-json` expressions, in order.
    pub set_json: Vec<String>,
    /// `--set` expressions, in order.
    pub set: Vec<String>,
    /// `--set-string` expressions, in order.
    pub set_string: Vec<String>,
    /// `--set-file` entries resolved by the caller: `key=<file content>` (the content is
    /// taken verbatim), in order.
    pub set_file: Vec<String>,
    /// `--set-literal` expressions, in order.
    pub set_literal: Vec<String>,
    /// `--kube-version`.
    pub kube_version: Option<String>,
    /// `--api-versions` (added to the default list).
    pub api_versions: Vec<String>,
    /// `--include-crds`.
    pub include_crds: bool,
    /// `--skip-tests`.
    pub skip_tests: bool,
    /// `--no-hooks`.
    pub no_hooks: bool,
    /// `--skip-schema-validation`.
    pub skip_schema_validation: bool,
    /// `--is-upgrade`.
    pub is_upgrade: bool,
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions {
            release_name: "release-name".into(),
            namespace: "default".into(),
            values_yaml: Vec::new(),
            set_json: Vec::new(),
            set: Vec::new(),
            set_string: Vec::new(),
            set_file: Vec::new(),
            set_literal: Vec::new(),
            kube_version: None,
            api_versions: Vec::new(),
            include_crds: false,
            skip_tests: false,
            no_hooks: false,
            skip_schema_validation: false,
            is_upgrade: false,
        }
    }
}

/// The result of [`template`].
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Exactly what `helm template` prints on stdout.
    pub output: String,
    /// Non-hook documents, in install order.
    pub manifests: Vec<Document>,
    /// Hook documents, in install order.
    pub hooks: Vec<HookDoc>,
    /// CRD files (`crds/`) of the chart and its subcharts: (full name, content).
    pub crds: Vec<(String, String)>,
    /// Rendered NOTES.txt of the root chart.
    pub notes: String,
    /// Warnings Helm logs on stderr (coalescing, dependencies).
    pub warnings: Vec<String>,
}

/// Merges user values the way `helm template` does: `-f` files, then `--set-json`,
/// `--set`, `--set-string`, `--set-literal`.
pub fn user_values(opts: &TemplateOptions) -> Result<Map, HelmError> {
    let mut base = Map::new();
    for y in &opts.values_yaml {
        let m = yaml::parse_values(y)
            .map_err(|e| HelmError::Values(format!("failed to parse values: {e}")))?;
        base = strvals::merge_maps(base, m);
    }
    for s in &opts.set_json {
        strvals::parse_with(s, &mut base, strvals::Mode::Json)
            .map_err(|e| HelmError::Values(format!("failed parsing --set-json data {s}: {e}")))?;
    }
    for s in &opts.set {
        strvals::parse_into(s, &mut base, false)
            .map_err(|e| HelmError::Values(format!("failed parsing --set data: {e}")))?;
    }
    for s in &opts.set_string {
        strvals::parse_into(s, &mut base, true)
            .map_err(|e| HelmError::Values(format!("failed parsing --set-string data: {e}")))?;
    }
    for s in &opts.set_file {
        strvals::parse_with(s, &mut base, strvals::Mode::Literal)
            .map_err(|e| HelmError::Values(format!("failed parsing --set-file data: {e}")))?;
    }
    for s in &opts.set_literal {
        strvals::parse_with(s, &mut base, strvals::Mode::Literal)
            .map_err(|e| HelmError::Values(format!("failed parsing --set-literal data: {e}")))?;
    }
    Ok(base)
}

/// `String::from_utf8_lossy(b).into_owned()`, with the fast validation of valid UTF-8
/// (charts are UTF-8; the lossy scan costs milliseconds on megabytes of CRDs).
pub(crate) fn utf8_string(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Helm's release name rule (DNS-1123 subdomain, at most 53 characters).
pub fn validate_release_name(name: &str) -> Result<(), HelmError> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    const PAT: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    let re = RE.get_or_init(|| regex::Regex::new(PAT).unwrap());
    if name.is_empty() || name.len() > 53 || !re.is_match(name) {
        return Err(HelmError::Values(format!(
            "release name check failed: release name {name:?}: invalid release name, must match regex {PAT} and the length must not be longer than 53"
        )));
    }
    Ok(())
}

/// Loads the chart at `chart_path` and renders it as `helm template` does.
pub fn template(
    fs: &dyn FileSystem,
    chart_path: &Path,
    opts: &TemplateOptions,
) -> Result<Rendered, HelmError> {
    recursion::on_render_thread(&chart_path.display().to_string(), || {
        template_here(fs, chart_path, opts)
    })
}

fn template_here(
    fs: &dyn FileSystem,
    chart_path: &Path,
    opts: &TemplateOptions,
) -> Result<Rendered, HelmError> {
    validate_release_name(&opts.release_name)?;
    let chart = load(fs, chart_path)?;
    let vals = user_values(opts)?;
    let mut caps = Capabilities::default();
    if let Some(kv) = &opts.kube_version {
        caps = caps.with_kube_version(kv)?;
    }
    caps.api_versions.extend(opts.api_versions.iter().cloned());
    let release = ReleaseInfo {
        name: opts.release_name.clone(),
        namespace: opts.namespace.clone(),
        revision: 1,
        is_install: !opts.is_upgrade,
        is_upgrade: opts.is_upgrade,
    };
    render_chart(chart, &vals, &release, &caps, opts)
}

/// Renders a loaded chart with user values (the install action's client-only path).
pub fn render_chart(
    chart: Chart,
    vals: &Map,
    release: &ReleaseInfo,
    caps: &Capabilities,
    opts: &TemplateOptions,
) -> Result<Rendered, HelmError> {
    render_chart_with(chart, vals, release, caps, opts, None)
}

/// [`render_chart`] with a function map of the caller's (a live `lookup`).
pub fn render_chart_with(
    chart: Chart,
    vals: &Map,
    release: &ReleaseInfo,
    caps: &Capabilities,
    opts: &TemplateOptions,
    funcs: Option<std::sync::Arc<capstan_gotemplate::FuncMap>>,
) -> Result<Rendered, HelmError> {
    let what = format!("rendering chart {}", chart.name());
    recursion::on_render_thread(&what, move || {
        render_chart_here(chart, vals, release, caps, opts, funcs)
    })
}

fn render_chart_here(
    mut chart: Chart,
    vals: &Map,
    release: &ReleaseInfo,
    caps: &Capabilities,
    opts: &TemplateOptions,
    funcs: Option<std::sync::Arc<capstan_gotemplate::FuncMap>>,
) -> Result<Rendered, HelmError> {
    let mut warnings = Vec::new();
    // Helm's install action (what the SDK's `helm template` path runs) renders a library
    // chart as nothing: only its `_` partials are templates, and they print nothing. (The
    // helm CLI refuses it earlier with "library charts are not installable".)
    if chart.is_library() {
        warnings.push(format!(
            "warning: {} charts are not installable; nothing is rendered",
            chart.metadata.chart_type
        ));
    }
    if !chart.metadata.dependencies.is_empty() {
        deps::check_dependencies(&chart)?;
    }
    deps::process_dependencies(&mut chart, vals, &mut warnings)?;
    let values =
        coalesce::coalesce_values(&chart, vals, &mut warnings).map_err(HelmError::Values)?;
    if !opts.skip_schema_validation {
        if let Err(e) = schema::validate(&chart, &values) {
            return Err(HelmError::Schema(format!("values don't meet the specifications of the schema(s) in the following chart(s):\n{e}")));
        }
    }
    if !chart.metadata.kube_version.is_empty() {
        let kv = caps.normalized_kube_version();
        if !semver::is_compatible_range(&chart.metadata.kube_version, &kv) {
            return Err(HelmError::Chart(format!(
                "chart requires kubeVersion: {} which is incompatible with Kubernetes {}",
                chart.metadata.kube_version, kv
            )));
        }
    }
    let mut files = engine::render_with(&chart, &values, release, caps, funcs)?;
    let notes_path = format!("{}/templates/NOTES.txt", chart.name());
    let notes = files.get(&notes_path).cloned().unwrap_or_default();
    files.retain(|k, _| !k.ends_with("NOTES.txt"));
    let (hooks, manifests) = manifest::sort_manifests(&files)?;

    let mut manifest_buf = String::new();
    let mut crds = Vec::new();
    for (name, f) in chart.crd_objects(chart.name()) {
        crds.push((name, utf8_string(&f.data)));
    }
    if opts.include_crds {
        for (name, content) in &crds {
            manifest_buf.push_str(&format!("---\n# Source: {name}\n{content}\n"));
        }
    }
    for m in &manifests {
        manifest_buf.push_str(&format!("---\n# Source: {}\n{}\n", m.source, m.content));
    }
    let mut output = manifest_buf.trim().to_string();
    output.push('\n');
    if !opts.no_hooks {
        for h in &hooks {
            if opts.skip_tests && h.is_test() {
                continue;
            }
            output.push_str(&format!(
                "---\n# Source: {}\n{}\n",
                h.doc.source, h.doc.content
            ));
        }
    }
    Ok(Rendered {
        output,
        manifests,
        hooks,
        crds,
        notes,
        warnings,
    })
}

/// Render files of a chart without splitting (name → rendered text), for tooling.
pub fn render_files(
    chart: &Chart,
    values: &Map,
    release: &ReleaseInfo,
    caps: &Capabilities,
) -> Result<BTreeMap<String, String>, HelmError> {
    engine::render(chart, values, release, caps)
}

/// A hook's settings (from `helm.sh/hook*` annotations).
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Events, e.g. `["pre-install", "pre-upgrade"]` (lower-cased; `test-success` is `test`).
    pub phases: Vec<String>,
    /// `helm.sh/hook-weight` (0 when absent or not an integer).
    pub weight: i64,
    /// `helm.sh/hook-delete-policy` entries.
    pub delete_policies: Vec<String>,
}

/// A rendered object for the apply path.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `chart/templates/x.yaml` (or `chart/crds/x.yaml` for CRDs).
    pub source: String,
    /// Set for hook documents.
    pub hook: Option<Hook>,
    /// The object.
    pub object: serde_json::Value,
}

fn doc_object(source: &str, content: &str) -> Result<Vec<serde_json::Value>, HelmError> {
    let docs = yaml::parse_all(content, yaml::Numbers::Native)
        .map_err(|e| HelmError::Manifest(format!("YAML parse error on {source}: {e}")))?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| d.to_json())
        .collect())
}

/// Renders a release for the apply path: CRDs from `crds/` first, then the manifests in
/// install order, then the hooks in install order, each parsed into a JSON object.
/// `values` are the user values (chart defaults are coalesced in).
pub fn render_release(
    chart: &Chart,
    values: &Map,
    release_name: &str,
    namespace: &str,
    capabilities: &Capabilities,
) -> Result<Vec<Manifest>, HelmError> {
    render_release_with(
        chart,
        values,
        &ReleaseOptions {
            name: release_name.into(),
            namespace: namespace.into(),
            capabilities: capabilities.clone(),
            lookup: None,
            is_upgrade: false,
        },
    )
}

/// Lookup hook type for [`ReleaseOptions::lookup`]: `(apiVersion, kind, namespace, name)` to
/// the object as a template value (an empty map when absent; a map with `items` when `name`
/// is empty).
pub use capstan_sprig::LookupFn;

/// How [`render_release_with`] renders: the release, the cluster's capabilities and
/// (against a live cluster) the `lookup` hook.
#[derive(Clone)]
pub struct ReleaseOptions {
    pub name: String,
    pub namespace: String,
    pub capabilities: Capabilities,
    /// `None`: `lookup` returns empty maps (what `helm template` does).
    pub lookup: Option<LookupFn>,
    /// `.Release.IsUpgrade` (else `.Release.IsInstall`).
    pub is_upgrade: bool,
}

impl std::fmt::Debug for ReleaseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseOptions")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("capabilities", &self.capabilities)
            .field("lookup", &self.lookup.as_ref().map(|_| "<live>"))
            .field("is_upgrade", &self.is_upgrade)
            .finish()
    }
}

/// [`render_release`] with a live `lookup`, the cluster's capabilities and install/upgrade.
pub fn render_release_with(
    chart: &Chart,
    values: &Map,
    ro: &ReleaseOptions,
) -> Result<Vec<Manifest>, HelmError> {
    let what = format!("rendering chart {}", chart.name());
    recursion::on_render_thread(&what, || render_release_here(chart, values, ro))
}

fn render_release_here(
    chart: &Chart,
    values: &Map,
    ro: &ReleaseOptions,
) -> Result<Vec<Manifest>, HelmError> {
    let release = ReleaseInfo {
        name: ro.name.clone(),
        namespace: ro.namespace.clone(),
        revision: 1,
        is_install: !ro.is_upgrade,
        is_upgrade: ro.is_upgrade,
    };
    let opts = TemplateOptions {
        release_name: ro.name.clone(),
        namespace: ro.namespace.clone(),
        is_upgrade: ro.is_upgrade,
        ..TemplateOptions::default()
    };
    let funcs = ro.lookup.clone().map(engine::funcs_with_lookup);
    let r = render_chart_with(
        chart.clone(),
        values,
        &release,
        &ro.capabilities,
        &opts,
        funcs,
    )?;
    let mut out = Vec::new();
    for (name, content) in &r.crds {
        for object in doc_object(name, content)? {
            out.push(Manifest {
                source: name.clone(),
                hook: None,
                object,
            });
        }
    }
    for m in &r.manifests {
        for object in doc_object(&m.source, &m.content)? {
            out.push(Manifest {
                source: m.source.clone(),
                hook: None,
                object,
            });
        }
    }
    for h in &r.hooks {
        let hook = Hook {
            phases: h.events.clone(),
            weight: h.weight,
            delete_policies: h.delete_policies.clone(),
        };
        for object in doc_object(&h.doc.source, &h.doc.content)? {
            out.push(Manifest {
                source: h.doc.source.clone(),
                hook: Some(hook.clone()),
                object,
            });
        }
    }
    Ok(out)
}
