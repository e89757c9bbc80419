//! `capstan build --apps`: every Argo CD Application of a repository (those declared in
//! files, those its ApplicationSets generate, those found in rendered output: app of
//! apps), with its source, destination and rendered objects.

use std::path::PathBuf;

use capstan_argocd::{Options, RepoPattern};
use clap::Args;
use serde_json::{json, Value};

use crate::EXIT_FAILURE;

#[derive(Args, Default)]
pub struct AppsArgs {
    /// Read the repository as Argo CD does: list every Application (generated ones
    /// included, and those found in rendered output: app of apps) with its source,
    /// destination and rendered objects. With `--path DIR`, only the Applications and
    /// ApplicationSets declared beneath DIR are roots.
    #[arg(long)]
    pub apps: bool,
    /// A repoURL that is this repository (a URL, or its path `org/repo`: matched
    /// case-insensitively, `.git` optional); such sources are read from the tree being
    /// built, whatever their targetRevision. Repeatable.
    #[arg(long = "this-repo", value_name = "URL")]
    pub this_repo: Vec<String>,
    /// A regular expression matching repoURLs of this repository (searched in the
    /// lower-cased URL without `.git` and surrounding `/`). Repeatable.
    #[arg(long = "this-repo-regex", value_name = "RE")]
    pub this_repo_regex: Vec<String>,
    /// kustomize build options as Argo CD's `kustomize.buildOptions` takes them
    /// (`--load-restrictor LoadRestrictionsNone`, `--enable-helm`).
    #[arg(
        long = "kustomize-build-options",
        value_name = "OPTS",
        allow_hyphen_values = true
    )]
    pub kustomize_build_options: Option<String>,
    /// Extra API versions for Helm's Capabilities (`group/version` or
    /// `group/version/Kind`). Repeatable, or comma-separated.
    #[arg(long = "api-versions", value_name = "V", value_delimiter = ',')]
    pub api_versions: Vec<String>,
    /// Helm's `--kube-version` (also `KUBE_VERSION`).
    #[arg(long = "kube-version", value_name = "V")]
    pub kube_version: Option<String>,
    /// A kind (`group/Kind`, `Kind` for the core group) the destination cluster knows as
    /// namespaced. Repeatable.
    #[arg(long = "namespaced-kind", value_name = "GROUP/KIND")]
    pub namespaced_kinds: Vec<String>,
    /// Treat kinds the cluster does not know as cluster-scoped (their namespace is
    /// removed) instead of namespaced.
    #[arg(long = "unknown-kinds-cluster-scoped")]
    pub unknown_kinds_cluster_scoped: bool,
    /// A YAML file of Argo CD cluster Secrets for the clusters generator (cluster
    /// Secrets in the repository are read too).
    #[arg(long = "clusters", value_name = "FILE")]
    pub clusters: Option<PathBuf>,
    /// Do not read Applications found in rendered output (app of apps).
    #[arg(long = "no-app-of-apps")]
    pub no_app_of_apps: bool,
    /// Fetch sources on other Git repositories and charts from Helm repositories into
    /// the cache (`--cache-dir`); without it they fail their Application (offline).
    #[arg(long = "fetch-remote")]
    pub fetch_remote: bool,
    /// The revision being rendered (`ARGOCD_APP_REVISION`).
    #[arg(long = "revision", value_name = "REV")]
    pub revision: Option<String>,
}

/// The cluster's root is Argo CD Applications: `build`, `diff` and `apply --cluster NAME
/// --argocd` order them in one graph (with `--flux-path`, beside Flux units).
#[derive(Args, Default, Clone)]
pub struct ArgoClusterArgs {
    /// The cluster's root is Argo CD Applications: those declared beneath --path (default
    /// clusters/<NAME>), or the one named by --app; app of apps followed. Each Application
    /// is a unit (sync waves, hooks, capstan.io/depends-on, sync options).
    #[arg(long = "argocd")]
    pub argocd: bool,
    /// The root Application (or ApplicationSet), by name, anywhere in the repository.
    #[arg(long = "app", value_name = "NAME", requires = "argocd")]
    pub app: Option<String>,
    /// Flux units of this cluster directory join the same graph (Applications may name
    /// them in capstan.io/depends-on).
    #[arg(long = "flux-path", value_name = "DIR", requires = "argocd")]
    pub flux_path: Option<String>,
}

impl ArgoClusterArgs {
    /// The engine's Argo CD root for the cluster directory `cluster_path` (`--path`, or
    /// clusters/NAME).
    pub fn root(
        &self,
        cluster_path: &str,
        options: Options,
    ) -> Option<capstan_engine::argo::ArgoRoot> {
        self.argocd.then(|| capstan_engine::argo::ArgoRoot {
            path: self.app.is_none().then(|| cluster_path.to_string()),
            app: self.app.clone(),
            options,
            flux_path: self.flux_path.clone(),
        })
    }
}

/// Options for a cluster whose root is Argo CD Applications (`diff`, `apply`): this
/// repository's URLs.
pub fn live_options(this_repo: &[String]) -> Options {
    let mut o = Options::default();
    for u in this_repo {
        o.this_repo.push(RepoPattern::Url(u.clone()));
    }
    o
}

pub(crate) fn options(a: &AppsArgs) -> Result<Options, String> {
    let mut o = Options::default();
    for u in &a.this_repo {
        o.this_repo.push(RepoPattern::Url(u.clone()));
    }
    for r in &a.this_repo_regex {
        let re = regex::Regex::new(r).map_err(|e| format!("--this-repo-regex {r:?}: {e}"))?;
        o.this_repo.push(RepoPattern::Regex(re));
    }
    if let Some(b) = &a.kustomize_build_options {
        let mut it = b.split_whitespace();
        while let Some(flag) = it.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            match name {
                "--load-restrictor" | "--load_restrictor" => {
                    let v = inline.or_else(|| it.next().map(String::from)).unwrap_or_default();
                    o.kustomize_load_restrictor = match v.as_str() {
                        "LoadRestrictionsNone" => capstan_kustomize::LoadRestrictor::None,
                        "LoadRestrictionsRootOnly" => capstan_kustomize::LoadRestrictor::RootOnly,
                        other => return Err(format!("--kustomize-build-options: unknown load restrictor {other:?}")),
                    };
                }
                "--enable-helm" => o.kustomize_enable_helm = inline.as_deref() != Some("false"),
                other => {
                    return Err(format!(
                        "--kustomize-build-options: {other} is not supported (--load-restrictor, --enable-helm)"
                    ))
                }
            }
        }
    }
    o.api_versions = a
        .api_versions
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    o.kube_version = a.kube_version.clone();
    o.extra_namespaced_kinds = a.namespaced_kinds.clone();
    o.unknown_kinds_cluster_scoped = a.unknown_kinds_cluster_scoped;
    o.app_of_apps = !a.no_app_of_apps;
    o.revision = a.revision.clone().unwrap_or_default();
    if let Some(f) = &a.clusters {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("--clusters {}: {e}", f.display()))?;
        for (i, doc) in capstan_argocd::split_documents(&text)
            .into_iter()
            .enumerate()
        {
            let Some(doc) = doc else { continue };
            match capstan_argocd::Cluster::from_secret(&doc) {
                Some(c) => o.clusters.push(c),
                None => {
                    return Err(format!(
                        "--clusters {} (document {}): not an Argo CD cluster Secret (a Secret labelled argocd.argoproj.io/secret-type: cluster)",
                        f.display(),
                        i + 1
                    ))
                }
            }
        }
    }
    Ok(o)
}

/// Other repositories and Helm repositories, fetched into capstan's source cache.
struct Fetcher {
    cache: capstan_source::SourceCache,
    rt: tokio::runtime::Runtime,
}

fn object(kind: &str, url: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["url"] = json!(url);
    json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": kind,
           "metadata": {"name": "argocd", "namespace": "argocd"}, "spec": spec})
}

impl capstan_argocd::RemoteSources for Fetcher {
    fn git(
        &self,
        repo_url: &str,
        revision: &str,
    ) -> Result<std::sync::Arc<dyn capstan_vfs::FileSystem>, String> {
        // Argo CD's targetRevision: HEAD, a commit, a branch or a tag.
        let rev = revision.trim();
        let mut refs = Vec::new();
        if rev.is_empty() || rev == "HEAD" {
            refs.push(json!({}));
        } else {
            if (7..=40).contains(&rev.len()) && rev.chars().all(|c| c.is_ascii_hexdigit()) {
                refs.push(json!({"commit": rev}));
            }
            refs.push(json!({"branch": rev}));
            refs.push(json!({"tag": rev}));
        }
        let mut last = String::new();
        for r in refs {
            let obj = object("GitRepository", repo_url, json!({"ref": r}));
            let spec =
                capstan_source::GitRepositorySpec::from_object(&obj).map_err(|e| e.to_string())?;
            match self.rt.block_on(self.cache.fetch_git(&spec, None)) {
                Ok(a) => {
                    let fs = capstan_vfs::DiskFs::new(&a.path).map_err(|e| e.to_string())?;
                    return Ok(std::sync::Arc::new(fs));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    fn chart(
        &self,
        repo_url: &str,
        chart: &str,
        version: &str,
    ) -> Result<capstan_helm::Chart, String> {
        if let Some(registry) = oci_registry(repo_url) {
            return self.oci_chart(registry, chart, version);
        }
        let obj = object("HelmRepository", repo_url, json!({}));
        let spec =
            capstan_source::HelmRepositorySpec::from_object(&obj).map_err(|e| e.to_string())?;
        let a = self
            .rt
            .block_on(self.cache.fetch_helm_chart(&spec, chart, version, None))
            .map_err(|e| e.to_string())?;
        capstan_engine::load_local_chart(&a.path)
    }
}

/// A Helm chart source on an OCI registry: `oci://host/path`, or (Argo CD's form) a
/// repoURL without a scheme, `host[:port]/path`. Returns `host/path`.
fn oci_registry(repo_url: &str) -> Option<&str> {
    let u = repo_url.trim();
    if let Some(rest) = u.strip_prefix("oci://") {
        return Some(rest.trim_end_matches('/'));
    }
    (!u.contains("://") && !u.is_empty()).then(|| u.trim_end_matches('/'))
}

/// Registries on loopback are reached over plain HTTP (as Docker does for them).
fn loopback_registry(registry: &str) -> bool {
    let host = registry.split('/').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Fetcher {
    /// `<registry>/<chart>`, tagged by version: an exact version is the tag, anything
    /// else a semver range over the tags (Argo CD's rule; `*` and empty: the latest
    /// stable version).
    fn oci_chart(
        &self,
        registry: &str,
        chart: &str,
        version: &str,
    ) -> Result<capstan_helm::Chart, String> {
        let version = version.trim();
        let exact = capstan_source::parse_version(version).is_some()
            && !version.contains(['<', '>', '~', '^', '*', ' ', 'x', 'X', '|', '=']);
        let spec = capstan_source::OciRepositorySpec {
            namespace: "argocd".into(),
            name: chart.into(),
            url: format!("oci://{registry}/{chart}"),
            reference: capstan_source::OciRef {
                tag: exact.then(|| version.to_string()),
                semver: (!exact).then(|| {
                    if version.is_empty() {
                        "*".to_string()
                    } else {
                        version.to_string()
                    }
                }),
                digest: None,
            },
            interval: None,
            secret_ref: None,
            insecure: loopback_registry(registry),
            ignore: None,
        };
        let a = self
            .rt
            .block_on(self.cache.fetch_oci(&spec, None))
            .map_err(|e| e.to_string())?;
        capstan_engine::load_local_chart(&a.path)
    }
}

/// Other Git repositories and Helm repositories through capstan's source cache in
/// `cache_dir` (default: capstan's cache directory).
pub(crate) fn remote_sources(
    cache_dir: Option<PathBuf>,
) -> Result<std::sync::Arc<dyn capstan_argocd::RemoteSources>, String> {
    let dir = match cache_dir {
        Some(d) => d,
        None => crate::source::default_cache_dir()
            .ok_or("no cache directory: set --cache-dir, $XDG_CACHE_HOME or $HOME")?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(Fetcher {
        cache: capstan_source::SourceCache::new(dir),
        rt,
    }))
}

pub fn run(
    target: &crate::Target,
    a: &AppsArgs,
    output: &str,
    keep_going: bool,
) -> Result<u8, String> {
    let mut opts = options(a)?;
    if a.fetch_remote {
        opts.remote = Some(remote_sources(target.source.cache_dir.clone())?);
    }
    let artifact = crate::runtime()?.block_on(target.source.fetch())?;
    let root = match &artifact {
        Some(art) => {
            if opts.revision.is_empty() {
                opts.revision = art.revision.rsplit(':').next().unwrap_or("").to_string();
            }
            art.path.clone()
        }
        None => target.repo.clone(),
    };
    let fs = capstan_vfs::DiskFs::new(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    if opts.this_repo.is_empty() {
        eprintln!("warning: no --this-repo: every source is taken to be another repository");
    }
    let under = target.path.as_ref().map(|p| {
        p.to_string_lossy()
            .trim_start_matches("./")
            .trim_matches('/')
            .to_string()
    });
    // Rendering runs engines with deep recursion: give them the render stack.
    let render = std::thread::Builder::new()
        .stack_size(capstan_engine::RENDER_STACK_SIZE)
        .spawn(move || {
            // Cluster Secrets anywhere in the tree; the Applications and ApplicationSets
            // declared beneath --path (all of them without it) are the roots.
            let (declared, clusters) = capstan_argocd::discover(&fs);
            for c in clusters {
                if !opts
                    .clusters
                    .iter()
                    .any(|k| k.name == c.name && k.server == c.server)
                {
                    opts.clusters.push(c);
                }
            }
            let roots: Vec<capstan_argocd::Declared> = match &under {
                Some(dir) => declared
                    .into_iter()
                    .filter(|d| {
                        d.origin.file == *dir || d.origin.file.starts_with(&format!("{dir}/"))
                    })
                    .collect(),
                None => declared,
            };
            capstan_argocd::render_declared(&fs, &roots, &opts)
        })
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "the Argo CD reader panicked".to_string())?;
    let mut failed = false;
    for e in &render.errors {
        eprintln!("error: {e}");
        failed = true;
    }
    let mut list = Vec::new();
    let mut text = String::new();
    for r in &render.apps {
        let app = &r.application;
        let mut entry = json!({
            "app": r.name(),
            "namespace": app.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
            "source": r.origin.source(),
            "file": r.origin.file,
            "appset": r.origin.appset,
            "parent": r.origin.parent,
            "destination": app.pointer("/spec/destination").cloned().unwrap_or(Value::Null),
            "sources": match app.pointer("/spec/sources") {
                Some(Value::Array(s)) if !s.is_empty() => Value::Array(s.clone()),
                _ => app.pointer("/spec/source").map(|s| json!([s])).unwrap_or(json!([])),
            },
            "application": app,
        });
        match &r.objects {
            Ok(objs) => {
                entry["objects"] = json!(objs);
                text.push_str(&format!(
                    "# Application: {} ({})\n",
                    r.name(),
                    r.origin.source()
                ));
                if !objs.is_empty() {
                    text.push_str(&capstan_engine::to_yaml(objs));
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                }
                text.push_str("---\n");
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                entry["error"] = json!(e.to_string());
            }
        }
        list.push(entry);
    }
    for e in &render.errors {
        let set = e
            .object
            .strip_prefix("ApplicationSet/")
            .unwrap_or(&e.object);
        list.push(json!({"appset": set, "source": e.file, "error": e.to_string()}));
    }
    if failed && !keep_going {
        eprintln!("nothing printed: the build failed (--keep-going prints the Applications that rendered)");
        return Ok(EXIT_FAILURE);
    }
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        print!("{}", text.strip_suffix("---\n").unwrap_or(&text));
    }
    Ok(if failed { EXIT_FAILURE } else { 0 })
}

#[cfg(test)]
mod oci_tests {
    use super::*;

    #[test]
    fn oci_chart_sources_with_and_without_scheme() {
        assert_eq!(
            oci_registry("oci://reg.example.com/charts/"),
            Some("reg.example.com/charts")
        );
        assert_eq!(
            oci_registry("reg.example.com/charts"),
            Some("reg.example.com/charts")
        );
        assert_eq!(oci_registry("https://charts.example.com"), None);
        assert!(loopback_registry("127.0.0.1:5000/charts"));
        assert!(loopback_registry("localhost:5000/charts"));
        assert!(loopback_registry("[::1]:5000/charts"));
        assert!(!loopback_registry("reg.example.com/charts"));
    }
}
