//! `capstan agent`: keep clusters converged on a Git repository.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use capstan_agent::{Agent, AgentConfig, ClusterSource, WorkerSettings};
use capstan_source::{GitAuth, GitRepositorySpec};
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct AgentArgs {
    /// The repository: a Git URL (https, ssh, git) or a path to a Git repository.
    #[arg(long)]
    pub source: String,
    /// Branch to follow (default: the remote's HEAD).
    #[arg(long, conflicts_with_all = ["tag", "semver", "commit"])]
    pub branch: Option<String>,
    /// Tag to follow.
    #[arg(long)]
    pub tag: Option<String>,
    /// Follow the highest tag matching this semver range.
    #[arg(long)]
    pub semver: Option<String>,
    /// Pin a commit.
    #[arg(long)]
    pub commit: Option<String>,
    /// How often the repository is fetched (webhooks fetch at once).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Secret (in the agent's namespace on the management cluster) with the repository's
    /// credentials, in Flux's format: username/password, bearerToken, or identity + known_hosts.
    #[arg(long)]
    pub source_secret: Option<String>,
    /// The agent's own cluster, reconciled from clusters/<NAME> (omit for a pure management agent).
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    /// Where the cluster directories live in the repository.
    #[arg(long, default_value = "clusters")]
    pub clusters_dir: String,
    /// Also reconcile the clusters whose kubeconfig Secrets are on this cluster
    /// (Cluster API `<name>-kubeconfig`, Crossplane, or labelled `capstan.io/cluster`).
    #[arg(long)]
    pub discover_clusters: bool,
    /// Only look for kubeconfig Secrets in this namespace.
    #[arg(long)]
    pub discover_namespace: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster;
    /// with $CAPSTAN_SERVICEACCOUNT_DIR set, in-cluster with that directory's token, ca.crt and
    /// namespace instead of /var/run/secrets/kubernetes.io/serviceaccount).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Serve /metrics, /healthz, /readyz and webhooks (/hook/...) here.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Units applied at once per cluster.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Interval of units that set none.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub default_interval: Duration,
    /// How often reconcile requests, suspensions and due units are checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub poll: Duration,
    /// Elect a leader with a Lease, so several replicas can run.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease and of the agent.
    #[arg(long, default_value = "flux-system")]
    pub namespace: String,
    /// Where fetched revisions are cached (default: ~/.cache/capstan/agent).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not install the toolkit CRDs (status needs them; Flux's own do too).
    #[arg(long)]
    pub no_install_crds: bool,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    #[command(flatten)]
    pub argo: crate::argocd::ArgoClusterArgs,
    /// With --argocd: a repoURL that is this repository (a URL or its path `org/repo`).
    /// Repeatable.
    #[arg(long = "this-repo", value_name = "URL", requires = "argocd")]
    pub this_repo: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    capstan_source::parse_go_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?} (e.g. 30s, 5m, 1h)"))
}

/// Logs through `tracing` (stderr), and panics too: once, with their location and
/// message (a unit's panic is logged by the agent with the unit it belongs to).
fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
    capstan_engine::install_panic_hook();
}

async fn read_auth(client: &kube::Client, ns: &str, name: &str) -> Result<GitAuth, String> {
    let data = capstan_agent::sources::secret_data(client, ns, name, "--source-secret").await?;
    GitAuth::from_secret_data(&data).map_err(|e| format!("Secret {ns}/{name}: {e}"))
}

pub async fn run(args: AgentArgs) -> Result<u8, String> {
    init_logs(args.log_json);
    // In a pod kube finds the in-cluster configuration by itself; CAPSTAN_SERVICEACCOUNT_DIR
    // points it at another directory holding the ServiceAccount's token and CA.
    let sa_dir = std::env::var_os(capstan_install::in_cluster::ENV_SERVICEACCOUNT_DIR)
        .filter(|d| !d.is_empty() && args.kubeconfig.is_none() && args.context.is_none());
    let client = match sa_dir {
        Some(dir) => capstan_install::in_cluster::in_cluster_client(std::path::Path::new(&dir))
            .await
            .map_err(|e| format!("connecting to the cluster: {e}"))?,
        None => capstan_apply::client_from_kubeconfig(
            args.kubeconfig.as_deref(),
            args.context.as_deref(),
        )
        .await
        .map_err(|e| format!("connecting to the cluster: {e}"))?,
    };
    let mut reference = serde_json::Map::new();
    for (k, v) in [
        ("branch", &args.branch),
        ("tag", &args.tag),
        ("semver", &args.semver),
        ("commit", &args.commit),
    ] {
        if let Some(v) = v {
            reference.insert(k.into(), v.clone().into());
        }
    }
    let interval = format!("{}s", args.interval.as_secs().max(1));
    let spec = GitRepositorySpec::from_object(&serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": args.namespace},
        "spec": {"url": args.source, "interval": interval, "ref": reference},
    }))
    .map_err(|e| e.to_string())?;
    let auth = match &args.source_secret {
        Some(name) => Some(read_auth(&client, &args.namespace, name).await?),
        None => None,
    };
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        base.join("capstan/agent")
    });
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("capstan-{}", std::process::id()));
    let cfg = AgentConfig {
        source: spec,
        source_auth: auth,
        source_interval: args.interval,
        cache_dir,
        clusters: args
            .cluster
            .iter()
            .map(|name| ClusterSource {
                name: name.clone(),
                client: client.clone(),
            })
            .collect(),
        management: Some(client.clone()),
        discover_clusters: args.discover_clusters,
        discover_namespace: args.discover_namespace.clone(),
        discover_interval: Duration::from_secs(10).min(args.poll * 2),
        settings: WorkerSettings {
            clusters_dir: args.clusters_dir.clone(),
            default_interval: args.default_interval,
            poll_interval: args.poll,
            concurrency: args.concurrency,
            // Each cluster's Applications beneath its directory (or the one --app names).
            argo: args.argo.argocd.then(|| capstan_engine::argo::ArgoRoot {
                path: None,
                app: args.argo.app.clone(),
                options: crate::argocd::live_options(&args.this_repo),
                flux_path: args.argo.flux_path.clone(),
            }),
            ..Default::default()
        },
        listen: Some(args.listen),
        install_crds: !args.no_install_crds,
        leader_election: args.leader_elect.then(|| capstan_lease::LeaseConfig {
            namespace: args.namespace.clone(),
            name: "capstan-agent".into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }),
    };
    if cfg.clusters.is_empty() && !cfg.discover_clusters {
        return Err("nothing to reconcile: name the agent's cluster with --cluster NAME and/or pass --discover-clusters".into());
    }
    let agent = Agent::new(cfg);
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("signal received");
        signals.cancel();
    });
    agent.run(stop).await?;
    Ok(0)
}
