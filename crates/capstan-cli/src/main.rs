//! `capstan`: GitOps for fleets of Kubernetes clusters.
//!
//! Exit codes: 0 success; 1 drift found (`diff`); 2 failure (bad input, render or apply
//! errors, usage errors).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod argocd;
mod build;
mod get;
mod helm;
mod image;
mod install;
mod kustomize;
mod live;
mod ops;
mod revdiff;
mod sops;
mod source;

/// Exit code for drift found by `capstan diff`.
pub const EXIT_DRIFT: u8 = 1;
/// Exit code for failures.
pub const EXIT_FAILURE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "GitOps for fleets of Kubernetes clusters",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the rendered objects of every unit of a cluster (no cluster needed).
    Build(build::BuildArgs),
    /// Show what `apply` would change on the live cluster (server-side dry run), or,
    /// with --base/--target/--base-dir/--target-dir, the rendered diff between two
    /// revisions for every cluster (no cluster needed; `capstan diff --base --help`).
    ///
    /// Secret values are never printed. In a Secret, every value of `data` and
    /// `stringData` shows as `***` (a value that changes as `*** (before)` and
    /// `*** (after)`), the `kubectl.kubernetes.io/last-applied-configuration` annotation
    /// (and any annotation holding the Secret as JSON) is masked the same way, and copies
    /// of a value (as written, base64-encoded or decoded; 3 characters or more) in any
    /// other annotation, label or field show as `***`.
    ///
    /// Exit codes: 0 no drift, 1 drift found, 2 failure.
    Diff(live::LiveArgs),
    /// Apply every unit of a cluster in dependency order, prune, wait on health.
    Apply(live::LiveArgs),
    /// Keep clusters converged on a Git repository (interval, webhooks, status, metrics).
    Agent(agent::AgentArgs),
    /// Helm, natively.
    Helm {
        #[command(subcommand)]
        command: helm::HelmCommand,
    },
    /// kustomize, natively.
    Kustomize {
        #[command(subcommand)]
        command: kustomize::KustomizeCommand,
    },
    /// Ask the agent to reconcile a unit or source now, and wait for the result.
    Reconcile(ops::ReconcileArgs),
    /// Suspend units: the agent stops reconciling them.
    Suspend(ops::SuspendArgs),
    /// Resume suspended units, reconcile them and wait for the result.
    Resume(ops::ResumeArgs),
    /// SOPS, natively: decrypt files encrypted for age or OpenPGP keys.
    Sops {
        #[command(subcommand)]
        command: sops::SopsCommand,
    },
    /// Flux image automation offline: which tag an ImagePolicy elects, setter rewrites.
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// Show units, sources or clusters and their status.
    Get {
        #[command(subcommand)]
        command: get::GetCommand,
    },
    /// Put the agent into a cluster (or upgrade it): its namespace, ServiceAccount, RBAC,
    /// Deployment, metrics Service, the toolkit CRDs and read-only Git credentials, applied
    /// as one unit with its own inventory. `--export` prints them, `--crs` as a Cluster API
    /// ClusterResourceSet; `--check` reports what is installed and whether it is healthy.
    Install(install::InstallArgs),
    /// Take the agent out of a cluster: stop it, remove capstan's finalizers, delete its
    /// cluster-scoped objects, CRDs (unless --keep-crds) and namespace; --prune-workloads
    /// also deletes everything capstan's inventories list.
    Uninstall(install::UninstallArgs),
    /// Package manifests for other tools.
    Package {
        #[command(subcommand)]
        command: install::PackageCommand,
    },
}

fn main() -> ExitCode {
    // `capstan diff --base/--target/--base-dir/--target-dir`: two revisions, no cluster.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("diff") && revdiff::wanted(&argv[2..]) {
        capstan_engine::install_panic_hook();
        let rest = argv[2..].to_vec();
        return finish(
            capstan_engine::spawn_render("capstan", move || revdiff::run_args(rest))
                .map_err(|e| format!("cannot start: {e}"))
                .and_then(|t| {
                    t.join().unwrap_or_else(|_| {
                        Err("capstan panicked (a bug; the panic is logged above)".into())
                    })
                }),
        );
    }
    let cli = Cli::parse();
    // A panic is reported once (a unit's, with its unit) and is a failure (exit 2), not
    // Rust's 101 (e.g. a `println!` whose stdout the reader closed: `capstan build | head`).
    // Every command renders on a thread with room for the engines' depth budgets.
    capstan_engine::install_panic_hook();
    let result = capstan_engine::spawn_render("capstan", move || dispatch(cli))
        .map_err(|e| format!("cannot start: {e}"))
        .and_then(|t| {
            t.join().unwrap_or_else(|_| {
                Err("capstan panicked (a bug; the panic is logged above)".into())
            })
        });
    finish(result)
}

fn finish(result: Result<u8, String>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report_error(&mut std::io::stderr(), &e);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, String> {
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Agent(args) => runtime().and_then(|rt| rt.block_on(agent::run(args))),
        Command::Kustomize { command } => kustomize::run(command),
        Command::Helm { command } => helm::run(command),
        Command::Sops { command } => sops::run(command),
        Command::Image { command } => image::run(command),
        Command::Diff(args) => runtime().and_then(|rt| rt.block_on(live::diff(args))),
        Command::Apply(args) => runtime().and_then(|rt| rt.block_on(live::apply(args))),
        Command::Reconcile(args) => runtime().and_then(|rt| rt.block_on(ops::reconcile(args))),
        Command::Suspend(args) => runtime().and_then(|rt| rt.block_on(ops::suspend(args))),
        Command::Resume(args) => runtime().and_then(|rt| rt.block_on(ops::resume(args))),
        Command::Get { command } => runtime().and_then(|rt| rt.block_on(get::run(command))),
        Command::Install(args) => runtime().and_then(|rt| rt.block_on(install::install(args))),
        Command::Uninstall(args) => runtime().and_then(|rt| rt.block_on(install::uninstall(args))),
        Command::Package { command } => install::package(command),
    }
}

/// Write `error: MSG` to `w` (stderr). A closed or failing stderr is not a reason to
/// panic (exit 101): the exit code still says what happened.
fn report_error(w: &mut impl std::io::Write, e: &str) {
    let _ = writeln!(w, "error: {e}");
    let _ = w.flush();
}

#[cfg(test)]
mod tests {
    /// A writer whose reader is gone.
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn error_report_survives_a_closed_stderr() {
        super::report_error(&mut Closed, "boom");
        let mut v = Vec::new();
        super::report_error(&mut v, "boom");
        assert_eq!(v, b"error: boom\n");
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // `diff` and `apply` render on the runtime's threads.
        .thread_stack_size(capstan_engine::RENDER_STACK_SIZE)
        .build()
        .map_err(|e| e.to_string())
}

/// Which repository and which cluster in it: the arguments every cluster command takes.
#[derive(clap::Args)]
pub struct Target {
    /// The repository (a working tree).
    #[arg(default_value = ".", conflicts_with = "source")]
    pub repo: PathBuf,
    /// The cluster: its state is read from clusters/<NAME>.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    /// The cluster directory inside the repository, instead of clusters/<NAME>.
    #[arg(long)]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub source: source::SourceArgs,
    /// Fetch sources whose URL starts with FROM from TO instead (repeatable; air-gapped
    /// mirrors). Applies to the units' GitRepository, OCIRepository and HelmRepository sources;
    /// an `oci://` URL mirrored to `http://HOST/PATH` is read from that registry over plain HTTP.
    #[arg(long = "source-mirror", value_name = "FROM=TO")]
    pub source_mirror: Vec<String>,
    #[command(flatten)]
    pub argo: argocd::ArgoClusterArgs,
    /// Never use the network: the repository (`--source`), other sources and charts come
    /// from the cache (`--cache-dir`) as they were last fetched; a unit whose source is
    /// not in the cache fails, naming the source, its URL and the reference.
    #[arg(long)]
    pub offline: bool,
    /// A file of Kubernetes Secret manifests (repeatable) answering the `spec.secretRef`
    /// of GitRepository, OCIRepository and HelmRepository sources when no cluster is
    /// reachable (`build`): keys as Flux reads them (`username`/`password`, `bearerToken`,
    /// `identity`/`known_hosts`, `.dockerconfigjson`); a Secret without a namespace
    /// answers in every namespace. `$CAPSTAN_SOURCE_SECRETS` (files separated by `:`) is
    /// read too. `diff` and `apply` read the cluster's Secrets instead.
    #[arg(long = "source-secret", value_name = "FILE")]
    pub source_secret: Vec<PathBuf>,
}

/// Secret manifest files for sources' `spec.secretRef` without a cluster (`:`-separated).
pub const ENV_SOURCE_SECRETS: &str = "CAPSTAN_SOURCE_SECRETS";

impl Target {
    /// The repository as a file system (the working tree, or the tree fetched
    /// with `--source`), and where the cluster's state starts in it.
    pub async fn open(&self) -> Result<(capstan_vfs::DiskFs, capstan_units::LoadOptions), String> {
        let (root, cluster_path) = self.open_root().await?;
        let fs = capstan_vfs::DiskFs::new(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        Ok((fs, capstan_units::LoadOptions::new(cluster_path)))
    }

    /// `--source-secret` files and `$CAPSTAN_SOURCE_SECRETS`, read.
    pub fn local_secrets(&self) -> Result<capstan_engine::sources::LocalSecrets, String> {
        let mut files: Vec<PathBuf> = std::env::var_os(ENV_SOURCE_SECRETS)
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        files.extend(self.source_secret.iter().cloned());
        capstan_engine::sources::LocalSecrets::load(&files)
            .map_err(|e| format!("--source-secret: {e}"))
    }

    /// `--source-mirror`, parsed.
    pub fn mirrors(&self) -> Result<capstan_engine::sources::Mirrors, String> {
        capstan_engine::sources::Mirrors::parse(&self.source_mirror)
    }

    /// Where sources and charts are cached (`--cache-dir`, default ~/.cache/capstan).
    pub fn cache_dir(&self) -> PathBuf {
        self.source
            .cache_dir
            .clone()
            .or_else(source::default_cache_dir)
            .unwrap_or_else(|| std::env::temp_dir().join("capstan"))
    }

    /// The repository's root directory (the working tree, or the tree fetched with
    /// `--source`) and the cluster's directory in it.
    pub async fn open_root(&self) -> Result<(PathBuf, String), String> {
        let cluster_path = match (&self.path, &self.cluster) {
            (Some(p), _) => p.to_string_lossy().trim_start_matches("./").to_string(),
            (None, Some(c)) => format!("clusters/{c}"),
            (None, None) => return Err("name a cluster with --cluster NAME (reads clusters/NAME) or a directory with --path".into()),
        };
        let root = match self.source.fetch_with(self.offline).await? {
            Some(artifact) => artifact.path,
            None => self.repo.clone(),
        };
        Ok((root, cluster_path))
    }
}
