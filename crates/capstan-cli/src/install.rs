//! `capstan install`, `capstan uninstall` and `capstan package crs`: the agent into a
//! cluster and out again, and manifests packaged for Cluster API.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use capstan_apply::{Action, ApplyOptions};
use capstan_install::{
    crs, GitCredentials, ImageRef, InstallOptions, Rbac, SourceRef, Step, StepOutcome,
    UninstallOptions,
};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RbacMode {
    /// Bind the agent to cluster-admin.
    ClusterAdmin,
    /// Everything in the install namespace only (a tenant install).
    Namespaced,
}

#[derive(Args)]
pub struct InstallArgs {
    /// The repository the agent follows (a Git URL).
    #[arg(long, required_unless_present = "check")]
    pub source: Option<String>,
    /// Branch to follow (default: the remote's HEAD).
    #[arg(long, conflicts_with_all = ["tag", "semver"])]
    pub branch: Option<String>,
    /// Tag to follow.
    #[arg(long, conflicts_with = "semver")]
    pub tag: Option<String>,
    /// Follow the highest tag matching this semver range.
    #[arg(long)]
    pub semver: Option<String>,
    /// The agent's own cluster, reconciled from clusters/<NAME>.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    /// Also reconcile clusters found through kubeconfig Secrets (Cluster API, Crossplane).
    #[arg(long)]
    pub discover_clusters: bool,
    /// How often the agent fetches the repository (e.g. 1m).
    #[arg(long)]
    pub interval: Option<String>,
    /// The agent's namespace.
    #[arg(long, short = 'n', default_value = capstan_install::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The agent's container image (default: localhost/capstan:<version>, what scripts/image builds).
    #[arg(long)]
    pub image: Option<String>,
    /// The agent's rights.
    #[arg(long, value_enum, default_value = "cluster-admin")]
    pub rbac: RbacMode,
    /// Read-only Git credentials from $CAPSTAN_GIT_TOKEN or $CAPSTAN_GIT_USERNAME/$CAPSTAN_GIT_PASSWORD,
    /// stored in a Secret in the agent's namespace.
    #[arg(long)]
    pub source_secret_from_env: bool,
    /// Read-only Git credentials from files, KEY=FILE with Flux's keys (username, password,
    /// bearerToken, identity, known_hosts); repeatable.
    #[arg(long, value_name = "KEY=FILE")]
    pub source_secret_from_file: Vec<String>,
    /// Take over Flux's CRDs even while Flux controllers run.
    #[arg(long)]
    pub adopt_flux_crds: bool,
    /// Print the manifests as YAML instead of applying them.
    #[arg(long, conflicts_with = "check")]
    pub export: bool,
    /// With --export: print a Cluster API ClusterResourceSet (strategy Reconcile) carrying the manifests.
    #[arg(long, requires = "export")]
    pub crs: bool,
    /// With --crs: the Clusters it selects (a label key=value; repeatable).
    #[arg(long, value_name = "KEY=VALUE", requires = "crs")]
    pub cluster_selector: Vec<String>,
    /// With --crs: the ClusterResourceSet's name.
    #[arg(long, default_value = "capstan-agent", requires = "crs")]
    pub crs_name: String,
    /// With --crs: the namespace of the ClusterResourceSet and its Secrets (the Clusters').
    #[arg(long, default_value = "default", requires = "crs")]
    pub crs_namespace: String,
    /// Report what is installed, its version and whether the agent is healthy (exit 2 if not).
    #[arg(long)]
    pub check: bool,
    /// Wait until the agent is healthy.
    #[arg(long)]
    pub wait: bool,
    /// Upper bound for --wait.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Path to the kubeconfig file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Args)]
pub struct UninstallArgs {
    /// Leave the objects capstan applied in place (the default).
    #[arg(long, conflicts_with = "prune_workloads")]
    pub keep_workloads: bool,
    /// Delete every object capstan's inventories list, in reverse dependency order.
    #[arg(long)]
    pub prune_workloads: bool,
    /// Keep the CustomResourceDefinitions (and so every custom resource).
    #[arg(long)]
    pub keep_crds: bool,
    /// Print the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the agent to stop and its namespaces to empty.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Path to the kubeconfig file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Subcommand)]
pub enum PackageCommand {
    /// Package kustomize directories or manifest files as a Cluster API ClusterResourceSet
    /// (strategy Reconcile) with resource-set Secrets under 1 MiB each.
    Crs {
        /// The ClusterResourceSet's name (and its Secrets' prefix).
        name: String,
        /// Kustomize directories or YAML files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The Clusters it selects (a label key=value; repeatable).
        #[arg(long, value_name = "KEY=VALUE", required = true)]
        cluster_selector: Vec<String>,
        /// Namespace of the ClusterResourceSet and its Secrets.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    capstan_source::parse_go_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?} (e.g. 30s, 5m, 1h)"))
}

async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, String> {
    capstan_apply::client_from_kubeconfig(kubeconfig, context)
        .await
        .map_err(|e| format!("connecting to the cluster: {e}"))
}

fn print_yaml(objects: &[serde_json::Value]) -> Result<(), String> {
    let docs: Vec<String> = objects.iter().map(crs::to_yaml_document).collect();
    let mut out = std::io::stdout().lock();
    out.write_all(docs.join("---\n").as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())
}

fn options(args: &InstallArgs) -> Result<InstallOptions, String> {
    let image = match &args.image {
        Some(i) => ImageRef::parse(i).map_err(|e| format!("--image: {e}"))?,
        None => ImageRef::parse(&capstan_install::default_image()).map_err(|e| e.to_string())?,
    };
    let source = args.source.clone().unwrap_or_default();
    let mut opts = InstallOptions::new(source, image);
    opts.namespace = args.namespace.clone();
    opts.reference = match (&args.branch, &args.tag, &args.semver) {
        (Some(b), _, _) => SourceRef::Branch(b.clone()),
        (_, Some(t), _) => SourceRef::Tag(t.clone()),
        (_, _, Some(s)) => SourceRef::Semver(s.clone()),
        _ => SourceRef::Head,
    };
    opts.cluster = args.cluster.clone();
    opts.discover_clusters = args.discover_clusters;
    opts.interval = args.interval.clone();
    opts.rbac = match args.rbac {
        RbacMode::ClusterAdmin => Rbac::ClusterAdmin,
        RbacMode::Namespaced => Rbac::Namespaced,
    };
    if opts.cluster.is_none() && !opts.discover_clusters {
        return Err("nothing for the agent to reconcile: name its cluster with --cluster NAME and/or pass --discover-clusters".into());
    }
    let mut creds = None;
    if args.source_secret_from_env {
        creds =
            Some(GitCredentials::from_env(|k| std::env::var(k).ok()).map_err(|e| e.to_string())?);
    }
    if !args.source_secret_from_file.is_empty() {
        let files = GitCredentials::from_files(&args.source_secret_from_file, |f| std::fs::read(f))
            .map_err(|e| e.to_string())?;
        creds = Some(match creds {
            Some(c) => c.merge(files).map_err(|e| e.to_string())?,
            None => files,
        });
    }
    opts.credentials = creds;
    Ok(opts)
}

pub async fn install(args: InstallArgs) -> Result<u8, String> {
    if args.check {
        return check(&args).await;
    }
    let opts = options(&args)?;
    if args.export {
        let unit = capstan_install::install_unit(&opts.namespace);
        let mut objects = capstan_install::manifests(&opts);
        for o in &mut objects {
            capstan_apply::objects::set_owner_labels(o, &unit);
        }
        if args.crs {
            let selector =
                crs::parse_selector(&args.cluster_selector).map_err(|e| e.to_string())?;
            let packaged = crs::package(
                &crs::CrsOptions::new(&args.crs_name, &args.crs_namespace, selector),
                &objects,
            )
            .map_err(|e| e.to_string())?;
            return print_yaml(&packaged).map(|_| 0);
        }
        return print_yaml(&objects).map(|_| 0);
    }
    let client = client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let events = ApplyOptions::with_events(|e| {
        if matches!(e.action, Action::Waiting(_)) {
            return;
        }
        eprintln!("{} {}", e.object, e.action);
    });
    let report = capstan_install::install(
        &client,
        &opts,
        args.adopt_flux_crds,
        args.wait.then_some(args.timeout),
        events,
    )
    .await
    .map_err(|e| format!("install failed (re-run it, or `capstan uninstall`): {e}"))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(plan) = &report.plan {
        print!("{plan}");
    }
    let count = |f: &dyn Fn(&Action) -> bool| {
        report
            .result
            .objects
            .iter()
            .filter(|o| f(&o.action))
            .count()
    };
    let created = count(&|a| *a == Action::Created);
    let changed = count(&|a| matches!(a, Action::Configured | Action::Replaced));
    let unchanged = count(&|a| *a == Action::Unchanged);
    let pruned = report
        .result
        .pruned
        .iter()
        .filter(|o| o.action == Action::Pruned)
        .count();
    let verb = if report.plan.is_some() {
        "upgraded"
    } else {
        "installed"
    };
    println!(
        "{verb} capstan {} in namespace {} ({created} created, {changed} changed, {unchanged} unchanged, {pruned} pruned)",
        opts.version, opts.namespace
    );
    Ok(0)
}

async fn check(args: &InstallArgs) -> Result<u8, String> {
    let client = client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let report = capstan_install::check(&client)
        .await
        .map_err(|e| e.to_string())?;
    if report.installs.is_empty() {
        println!("capstan is not installed in this cluster (no install inventory labelled capstan.io/kind=install, no Deployment labelled app.kubernetes.io/name=capstan-agent)");
        return Ok(crate::EXIT_FAILURE);
    }
    let mut healthy = true;
    for a in &report.installs {
        println!(
            "namespace {}: version {}, image {}",
            a.namespace,
            a.version.as_deref().unwrap_or("unknown"),
            a.image.as_deref().unwrap_or("none")
        );
        if !a.inventory {
            println!("  no install inventory (applied from --export or --crs output): checking the objects its Deployment implies");
        }
        for (r, present) in &a.objects {
            println!("  {r}: {}", if *present { "present" } else { "MISSING" });
        }
        match &a.agent {
            Some(h) => println!("  agent: {h}"),
            None => println!("  agent: no Deployment"),
        }
        healthy &= a.healthy();
    }
    Ok(if healthy { 0 } else { crate::EXIT_FAILURE })
}

pub async fn uninstall(args: UninstallArgs) -> Result<u8, String> {
    let client = client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let opts = UninstallOptions {
        prune_workloads: args.prune_workloads,
        keep_crds: args.keep_crds,
        dry_run: args.dry_run,
        timeout: args.timeout,
    };
    let report =
        capstan_install::uninstall(&client, &opts, |step: &Step, outcome: &StepOutcome| {
            let prefix = match outcome {
                StepOutcome::Planned => "would",
                StepOutcome::Done => "done:",
                StepOutcome::Gone => "already gone:",
                StepOutcome::Kept => "kept:",
            };
            println!("{prefix} {step}");
        })
        .await
        .map_err(|e| format!("uninstall stopped: {e} (re-run `capstan uninstall` to finish)"))?;
    if report.steps.is_empty() {
        println!("capstan is not installed in this cluster: no object labelled capstan.io/kind=install, no capstan inventory, no CRD labelled app.kubernetes.io/managed-by=capstan; nothing to uninstall");
        return Ok(0);
    }
    let mut code = 0;
    for (ns, left) in &report.terminating {
        if left.iter().any(|l| l.contains("finalizers")) {
            eprintln!(
                "error: Namespace/{ns} is stuck terminating: {}",
                left.join(", ")
            );
            code = crate::EXIT_FAILURE;
        } else {
            println!("Namespace/{ns} is terminating: nothing in it holds a finalizer; the namespace controller removes what is left ({} objects)", left.len());
        }
    }
    Ok(code)
}

fn read_input(path: &std::path::Path) -> Result<Vec<serde_json::Value>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let abs = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let fs = capstan_vfs::DiskFs::new(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
        let nodes = capstan_kustomize::build(
            &fs,
            std::path::Path::new("/"),
            &capstan_kustomize::BuildOptions::default(),
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(nodes.iter().map(capstan_yaml::to_json).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = capstan_yaml::parse_documents(&text, &path.display().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(docs
        .iter()
        .map(capstan_yaml::to_json)
        .filter(|v| !v.is_null())
        .collect())
}

pub fn package(cmd: PackageCommand) -> Result<u8, String> {
    match cmd {
        PackageCommand::Crs {
            name,
            inputs,
            cluster_selector,
            namespace,
        } => {
            let mut objects = Vec::new();
            for input in &inputs {
                objects.extend(read_input(input)?);
            }
            let selector = crs::parse_selector(&cluster_selector).map_err(|e| e.to_string())?;
            let packaged = crs::package(&crs::CrsOptions::new(name, namespace, selector), &objects)
                .map_err(|e| e.to_string())?;
            print_yaml(&packaged)?;
            Ok(0)
        }
    }
}
