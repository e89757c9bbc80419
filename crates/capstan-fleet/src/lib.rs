//! The clusters an agent drives.
//!
//! Besides its own cluster ([`ClusterSpec::local`]), an agent reconciles the clusters whose
//! kubeconfigs sit in Secrets of its management cluster. [`discover`] finds them:
//!
//! - Secrets labelled `capstan.io/cluster=<name>` ([`Origin::Label`]); the kubeconfig is under
//!   the key named by the annotation `capstan.io/kubeconfig-key`, else under `value`,
//!   `value.yaml` or `kubeconfig` (the first present);
//! - Cluster API kubeconfig Secrets ([`Origin::ClusterApi`]): type `cluster.x-k8s.io/secret`,
//!   named `<cluster>-kubeconfig`, labelled `cluster.x-k8s.io/cluster-name=<cluster>`, key `value`;
//! - Crossplane connection Secrets ([`Origin::Crossplane`]): type
//!   `connection.crossplane.io/v1alpha1`, key `kubeconfig`, only when labelled
//!   `capstan.io/cluster=<name>` (connection Secrets carry no cluster name of their own).
//!
//! [`client_for`] turns a [`ClusterSpec`] into a `kube::Client` (current context of its
//! kubeconfig), [`kubeconfig_client`] does the same for Flux's `spec.kubeConfig.secretRef`, and
//! [`watch`] reports clusters appearing, changing and disappearing by polling [`discover`].
//!
//! Kubeconfigs hold credentials: they never appear in `Debug` output, errors or logs. Parse
//! errors are reported without the parser's excerpt of the document. Like Flux's controllers
//! (`--insecure-kubeconfig-exec`, `--insecure-kubeconfig-tls`), kubeconfigs from Secrets may not
//! run `exec` credential plugins, disable TLS verification or refer to local files unless a
//! [`KubeconfigPolicy`] allows it.
//!
//! ```no_run
//! # async fn t(management: kube::Client) -> Result<(), capstan_fleet::FleetError> {
//! use futures::StreamExt;
//! for spec in capstan_fleet::discover(&management, Some("fleet")).await? {
//!     let client = capstan_fleet::client_for(&spec).await?;
//!     // ... reconcile spec.name with client ...
//! #   drop(client);
//! }
//! let mut events = Box::pin(capstan_fleet::watch(management, Some("fleet".into())));
//! while let Some(event) = events.next().await {
//!     println!("{event:?}"); // kubeconfigs print as `<N bytes redacted>`
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Label naming the cluster a kubeconfig Secret belongs to.
pub const CLUSTER_LABEL: &str = "capstan.io/cluster";
/// Annotation naming the Secret key that holds the kubeconfig.
pub const KEY_ANNOTATION: &str = "capstan.io/kubeconfig-key";
/// Secret type of Cluster API kubeconfig Secrets.
pub const CAPI_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
/// Label carrying the Cluster API cluster name.
pub const CAPI_CLUSTER_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// Secret type of Crossplane connection Secrets.
pub const CROSSPLANE_SECRET_TYPE: &str = "connection.crossplane.io/v1alpha1";
/// Keys tried, in order, for labelled Secrets without the key annotation.
pub const DEFAULT_KEYS: [&str; 3] = ["value", "value.yaml", "kubeconfig"];
/// Keys tried, in order, for Flux's `spec.kubeConfig.secretRef` without a key.
pub const FLUX_DEFAULT_KEYS: [&str; 2] = ["value", "value.yaml"];

/// Where a cluster came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// The cluster the agent runs in (in-cluster or the ambient kubeconfig).
    Local,
    /// A Secret labelled `capstan.io/cluster`.
    Label,
    /// A Cluster API `<cluster>-kubeconfig` Secret.
    ClusterApi,
    /// A Crossplane connection Secret labelled `capstan.io/cluster`.
    Crossplane,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Local => "local",
            Origin::Label => "label",
            Origin::ClusterApi => "cluster-api",
            Origin::Crossplane => "crossplane",
        })
    }
}

/// One cluster the agent drives. The kubeconfig bytes are private and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// The cluster's name (unique in the fleet).
    pub name: String,
    /// Where it was found.
    pub origin: Origin,
    /// The Secret (namespace, name) holding its kubeconfig; `None` for the local cluster.
    pub secret: Option<(String, String)>,
    kubeconfig: Vec<u8>,
}

impl fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("secret", &self.secret)
            .field(
                "kubeconfig",
                &format_args!("<{} bytes redacted>", self.kubeconfig.len()),
            )
            .finish()
    }
}

impl ClusterSpec {
    /// The agent's own cluster: [`client_for`] uses the in-cluster config or the ambient
    /// kubeconfig (`kube::Config::infer`).
    pub fn local(name: impl Into<String>) -> Self {
        ClusterSpec {
            name: name.into(),
            origin: Origin::Local,
            secret: None,
            kubeconfig: Vec::new(),
        }
    }

    /// A cluster reached through the given kubeconfig bytes.
    pub fn with_kubeconfig(
        name: impl Into<String>,
        origin: Origin,
        secret: Option<(String, String)>,
        kubeconfig: Vec<u8>,
    ) -> Self {
        ClusterSpec {
            name: name.into(),
            origin,
            secret,
            kubeconfig,
        }
    }

    /// The raw kubeconfig (empty for the local cluster). Handle as a secret.
    pub fn kubeconfig(&self) -> &[u8] {
        &self.kubeconfig
    }

    /// `cluster NAME (Secret NS/NAME)`, for messages.
    pub fn describe(&self) -> String {
        match &self.secret {
            Some((ns, name)) => format!("cluster {} (Secret {ns}/{name})", self.name),
            None => format!("cluster {} ({})", self.name, self.origin),
        }
    }
}

/// Why discovering or connecting to a cluster failed. Never contains kubeconfig contents.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Listing or reading Secrets failed.
    #[error("{what}: {message}")]
    Api {
        /// What was being read (e.g. `listing Secrets in all namespaces`).
        what: String,
        /// The API server's answer.
        message: String,
    },
    /// The Secret does not exist.
    #[error("Secret {namespace}/{name} not found{hint}")]
    SecretNotFound {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// Extra advice.
        hint: String,
    },
    /// Two Secrets claim the same cluster name.
    #[error("cluster name {name:?} is claimed by two Secrets: {first} and {second} (hint: give one of them a different capstan.io/cluster label)")]
    Duplicate {
        /// The contested cluster name.
        name: String,
        /// `namespace/name` of the first Secret.
        first: String,
        /// `namespace/name` of the second Secret.
        second: String,
    },
    /// The Secret has none of the keys that may hold the kubeconfig.
    #[error("Secret {secret} has no kubeconfig under {tried} (keys present: {present}){hint}")]
    MissingKey {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The keys looked for, comma-separated.
        tried: String,
        /// The keys the Secret has, comma-separated.
        present: String,
        /// Extra advice.
        hint: String,
    },
    /// The Secret is not usable as a cluster entry (e.g. an empty cluster label).
    #[error("Secret {secret}: {message}")]
    BadSecret {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong.
        message: String,
    },
    /// The kubeconfig is malformed, refers to something missing, or is refused by the policy.
    #[error("kubeconfig of {what}: {message}")]
    Kubeconfig {
        /// Which cluster/Secret the kubeconfig came from.
        what: String,
        /// What is wrong (never the kubeconfig's contents).
        message: String,
    },
}

/// What kubeconfigs taken from Secrets may do. The default refuses `exec`/`auth-provider`
/// credential plugins (they would run commands inside the agent), `insecure-skip-tls-verify`
/// (as Flux does without `--insecure-kubeconfig-exec` / `--insecure-kubeconfig-tls`; Flux
/// silently drops them, we refuse with an error naming the entry) and references to local files
/// (as Flux's `ValidateKubeConfig`: a Secret could otherwise make the agent read e.g. its own
/// service account token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KubeconfigPolicy {
    /// Allow `users[].user.exec` and `auth-provider`.
    pub allow_exec: bool,
    /// Allow `clusters[].cluster.insecure-skip-tls-verify: true`.
    pub allow_insecure_tls: bool,
    /// Allow references to files of the agent's file system (`certificate-authority`,
    /// `tokenFile`, `client-certificate`, `client-key`); otherwise everything must be inline.
    pub allow_files: bool,
}

fn secret_ref(s: &Secret) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or(""),
        s.metadata.name.as_deref().unwrap_or("")
    )
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

fn secret_keys(s: &Secret) -> String {
    let keys: Vec<&str> = s
        .data
        .iter()
        .flat_map(|d| d.keys())
        .map(String::as_str)
        .collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// The first of `keys` present and non-empty in the Secret's data.
fn pick_key(s: &Secret, keys: &[&str], hint: &str) -> Result<Vec<u8>, FleetError> {
    let data = s.data.as_ref();
    for key in keys {
        if let Some(v) = data.and_then(|d| d.get(*key)) {
            if !v.0.is_empty() {
                return Ok(v.0.clone());
            }
        }
    }
    Err(FleetError::MissingKey {
        secret: secret_ref(s),
        tried: keys.join(", "),
        present: secret_keys(s),
        hint: hint.to_string(),
    })
}

/// Turns one Secret into a cluster entry: `Ok(None)` when it is not a cluster Secret.
pub fn cluster_from_secret(s: &Secret) -> Result<Option<ClusterSpec>, FleetError> {
    let labels = s.metadata.labels.as_ref();
    let secret_type = s.type_.as_deref().unwrap_or("");
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let name = s.metadata.name.clone().unwrap_or_default();
    let (cluster, origin, default_keys): (String, Origin, &[&str]) =
        if let Some(label) = labels.and_then(|l| l.get(CLUSTER_LABEL)) {
            if label.is_empty() {
                return Err(FleetError::BadSecret {
                    secret: secret_ref(s),
                    message: format!(
                        "label {CLUSTER_LABEL} is empty (hint: set it to the cluster's name)"
                    ),
                });
            }
            match secret_type {
                CROSSPLANE_SECRET_TYPE => (label.clone(), Origin::Crossplane, &["kubeconfig"]),
                CAPI_SECRET_TYPE => (label.clone(), Origin::ClusterApi, &DEFAULT_KEYS),
                _ => (label.clone(), Origin::Label, &DEFAULT_KEYS),
            }
        } else if secret_type == CAPI_SECRET_TYPE {
            let Some(capi) = labels.and_then(|l| l.get(CAPI_CLUSTER_LABEL)) else {
                return Ok(None);
            };
            if capi.is_empty() || name != format!("{capi}-kubeconfig") {
                // Other Cluster API secrets (CA, etcd, service account keys, user kubeconfigs).
                return Ok(None);
            }
            (capi.clone(), Origin::ClusterApi, &["value"])
        } else {
            return Ok(None);
        };
    let annotated = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(KEY_ANNOTATION));
    let kubeconfig = match annotated {
        Some(key) => pick_key(
            s,
            &[key.as_str()],
            &format!(" (hint: the annotation {KEY_ANNOTATION} names the key)"),
        )?,
        None => pick_key(
            s,
            default_keys,
            &format!(" (hint: put the kubeconfig under one of these keys or name its key in the annotation {KEY_ANNOTATION})"),
        )?,
    };
    Ok(Some(ClusterSpec {
        name: cluster,
        origin,
        secret: Some((ns, name)),
        kubeconfig,
    }))
}

/// The result of a lenient discovery: the usable clusters plus the problems found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Usable clusters, sorted by name, names unique (on duplicates the Secret first in
    /// `namespace/name` order wins).
    pub clusters: Vec<ClusterSpec>,
    /// Secrets that could not be used, and duplicate names.
    pub problems: Vec<FleetError>,
}

async fn list_candidates(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<Secret>, FleetError> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let scope = match namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".to_string(),
    };
    let err = |e: kube::Error, what: &str| FleetError::Api {
        what: format!("listing {what} Secrets in {scope}"),
        message: api_message(&e),
    };
    let labelled = api
        .list(&ListParams::default().labels(CLUSTER_LABEL))
        .await
        .map_err(|e| err(e, "capstan.io/cluster labelled"))?;
    let capi = api
        .list(&ListParams::default().fields(&format!("type={CAPI_SECRET_TYPE}")))
        .await
        .map_err(|e| err(e, "Cluster API"))?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in labelled.items.into_iter().chain(capi.items) {
        if seen.insert(secret_ref(&s)) {
            out.push(s);
        }
    }
    out.sort_by_key(secret_ref);
    Ok(out)
}

fn collect(secrets: &[Secret]) -> Discovery {
    let mut by_name: BTreeMap<String, ClusterSpec> = BTreeMap::new();
    let mut problems = Vec::new();
    for s in secrets {
        match cluster_from_secret(s) {
            Ok(None) => {}
            Ok(Some(spec)) => {
                if let Some(first) = by_name.get(&spec.name) {
                    let show = |c: &ClusterSpec| {
                        c.secret
                            .as_ref()
                            .map(|(ns, n)| format!("{ns}/{n}"))
                            .unwrap_or_default()
                    };
                    problems.push(FleetError::Duplicate {
                        name: spec.name.clone(),
                        first: show(first),
                        second: show(&spec),
                    });
                } else {
                    by_name.insert(spec.name.clone(), spec);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    Discovery {
        clusters: by_name.into_values().collect(),
        problems,
    }
}

/// Finds the cluster Secrets in `namespace` (all namespaces when `None`), sorted by cluster
/// name. Strict: a duplicate cluster name, or a cluster Secret without a kubeconfig, is an
/// error naming the Secrets. The kubeconfigs are not parsed here (see [`client_for`]).
pub async fn discover(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<ClusterSpec>, FleetError> {
    let d = discover_lenient(client, namespace).await?;
    if let Some(first) = d.problems.into_iter().next() {
        return Err(first);
    }
    Ok(d.clusters)
}

/// Like [`discover`], but keeps going past unusable Secrets and duplicate names, reporting
/// them in [`Discovery::problems`]. Fails only when the Secrets cannot be listed.
pub async fn discover_lenient(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Discovery, FleetError> {
    let secrets = list_candidates(client, namespace).await?;
    Ok(collect(&secrets))
}

fn kubeconfig_error(what: &str, e: &KubeconfigError) -> FleetError {
    let message = match e {
        // The YAML parser's message quotes the document: keep it out.
        KubeconfigError::Parse(_) => {
            "not a valid kubeconfig (YAML parse error; details withheld because the document holds credentials)".to_string()
        }
        // The remaining variants describe structure (names, missing fields), not values.
        other => other.to_string(),
    };
    FleetError::Kubeconfig {
        what: what.to_string(),
        message,
    }
}

/// Parses kubeconfig bytes and checks them against `policy`. Errors never include the
/// contents.
pub fn parse_kubeconfig(
    what: &str,
    bytes: &[u8],
    policy: &KubeconfigPolicy,
) -> Result<Kubeconfig, FleetError> {
    let bad = |message: String| FleetError::Kubeconfig {
        what: what.to_string(),
        message,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| bad("not valid UTF-8 (hint: store the kubeconfig YAML itself, not e.g. a gzip or base64 of it)".into()))?;
    if text.trim().is_empty() {
        return Err(bad("empty".into()));
    }
    let kc = Kubeconfig::from_yaml(text).map_err(|e| kubeconfig_error(what, &e))?;
    let current = kc.current_context.as_deref().unwrap_or("");
    if current.is_empty() {
        return Err(bad(
            "no current-context (hint: set current-context to the context to use)".into(),
        ));
    }
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| {
            bad(format!(
                "current-context {current:?} is not among its contexts"
            ))
        })?;
    if !kc
        .clusters
        .iter()
        .any(|c| c.name == ctx.cluster && c.cluster.is_some())
    {
        return Err(bad(format!(
            "context {current:?} names cluster {:?}, which is not among its clusters",
            ctx.cluster
        )));
    }
    check_policy(&kc, policy).map_err(bad)?;
    Ok(kc)
}

/// Checks every cluster and user entry against `policy` (as Flux's `ValidateKubeConfig` and
/// `KubeConfig` sanitizer do).
fn check_policy(kc: &Kubeconfig, policy: &KubeconfigPolicy) -> Result<(), String> {
    for named in &kc.clusters {
        let name = &named.name;
        let Some(c) = named.cluster.as_ref() else {
            continue;
        };
        if c.certificate_authority.is_some() && !policy.allow_files {
            return Err(format!(
                "cluster {name:?} references a certificate-authority file, which is refused (hint: embed it as certificate-authority-data)"
            ));
        }
        if c.insecure_skip_tls_verify == Some(true) && !policy.allow_insecure_tls {
            return Err(format!(
                "cluster {name:?} sets insecure-skip-tls-verify, which is refused (hint: add certificate-authority-data, or allow insecure TLS in the agent's kubeconfig policy)"
            ));
        }
    }
    for named in &kc.auth_infos {
        let name = &named.name;
        let Some(u) = named.auth_info.as_ref() else {
            continue;
        };
        if !policy.allow_files {
            let file = if u.token_file.is_some() {
                Some(("tokenFile", "token"))
            } else if u.client_certificate.is_some() {
                Some(("client-certificate", "client-certificate-data"))
            } else if u.client_key.is_some() {
                Some(("client-key", "client-key-data"))
            } else {
                None
            };
            if let Some((field, inline)) = file {
                return Err(format!(
                    "user {name:?} references a {field} file, which is refused (hint: embed it as {inline})"
                ));
            }
        }
        if !policy.allow_exec && (u.exec.is_some() || u.auth_provider.is_some()) {
            return Err(format!(
                "user {name:?} uses an exec/auth-provider credential plugin, which is refused (hint: use a token or client certificate, or allow exec in the agent's kubeconfig policy)"
            ));
        }
    }
    Ok(())
}

/// Builds a client from kubeconfig bytes (current context), checked against `policy`.
pub async fn client_from_kubeconfig(
    what: &str,
    bytes: &[u8],
    policy: &KubeconfigPolicy,
) -> Result<kube::Client, FleetError> {
    client_from_config(what, config_from_kubeconfig(what, bytes, policy).await?)
}

/// The client configuration of kubeconfig bytes (current context), checked against
/// `policy`: for callers that adjust it (impersonation) before building a client.
pub async fn config_from_kubeconfig(
    what: &str,
    bytes: &[u8],
    policy: &KubeconfigPolicy,
) -> Result<kube::Config, FleetError> {
    let kc = parse_kubeconfig(what, bytes, policy)?;
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| kubeconfig_error(what, &e))
}

/// A client from a configuration; `what` names the cluster in the error.
pub fn client_from_config(what: &str, config: kube::Config) -> Result<kube::Client, FleetError> {
    kube::Client::try_from(config).map_err(|e| FleetError::Kubeconfig {
        what: what.to_string(),
        message: format!("cannot build a client: {}", api_message(&e)),
    })
}

/// A client for the cluster: its kubeconfig's current context, under the default
/// [`KubeconfigPolicy`]; for [`Origin::Local`] without a kubeconfig, the in-cluster config
/// or the ambient kubeconfig.
pub async fn client_for(spec: &ClusterSpec) -> Result<kube::Client, FleetError> {
    client_for_with(spec, &KubeconfigPolicy::default()).await
}

/// [`client_for`] with an explicit [`KubeconfigPolicy`].
pub async fn client_for_with(
    spec: &ClusterSpec,
    policy: &KubeconfigPolicy,
) -> Result<kube::Client, FleetError> {
    if spec.origin == Origin::Local && spec.kubeconfig.is_empty() {
        let config = kube::Config::infer()
            .await
            .map_err(|e| FleetError::Kubeconfig {
                what: spec.describe(),
                message: format!("no in-cluster config or kubeconfig: {e}"),
            })?;
        return kube::Client::try_from(config).map_err(|e| FleetError::Kubeconfig {
            what: spec.describe(),
            message: format!("cannot build a client: {}", api_message(&e)),
        });
    }
    client_from_kubeconfig(&spec.describe(), &spec.kubeconfig, policy).await
}

/// A client from Flux's `spec.kubeConfig.secretRef`: the Secret `namespace/secret_name`, key
/// `key` or else `value`, then `value.yaml`; default [`KubeconfigPolicy`].
pub async fn kubeconfig_client(
    client: &kube::Client,
    namespace: &str,
    secret_name: &str,
    key: Option<&str>,
) -> Result<kube::Client, FleetError> {
    kubeconfig_client_with(
        client,
        namespace,
        secret_name,
        key,
        &KubeconfigPolicy::default(),
    )
    .await
}

/// [`kubeconfig_client`] with an explicit [`KubeconfigPolicy`].
pub async fn kubeconfig_client_with(
    client: &kube::Client,
    namespace: &str,
    secret_name: &str,
    key: Option<&str>,
    policy: &KubeconfigPolicy,
) -> Result<kube::Client, FleetError> {
    let config = kubeconfig_config_with(client, namespace, secret_name, key, policy).await?;
    client_from_config(&format!("Secret {namespace}/{secret_name}"), config)
}

/// The client configuration behind Flux's `spec.kubeConfig.secretRef` (see
/// [`kubeconfig_client`]), for callers that adjust it (impersonation) first.
pub async fn kubeconfig_config_with(
    client: &kube::Client,
    namespace: &str,
    secret_name: &str,
    key: Option<&str>,
    policy: &KubeconfigPolicy,
) -> Result<kube::Config, FleetError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(secret_name)
        .await
        .map_err(|e| FleetError::Api {
            what: format!("reading Secret {namespace}/{secret_name} (spec.kubeConfig.secretRef)"),
            message: api_message(&e),
        })?
        .ok_or_else(|| FleetError::SecretNotFound {
            namespace: namespace.to_string(),
            name: secret_name.to_string(),
            hint: " (hint: spec.kubeConfig.secretRef names a Secret in the object's namespace)"
                .into(),
        })?;
    let bytes = match key {
        Some(k) => pick_key(&secret, &[k], " (hint: spec.kubeConfig.secretRef.key)")?,
        None => pick_key(
            &secret,
            &FLUX_DEFAULT_KEYS,
            " (hint: set spec.kubeConfig.secretRef.key)",
        )?,
    };
    config_from_kubeconfig(&format!("Secret {namespace}/{secret_name}"), &bytes, policy).await
}

/// A change in the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetEvent {
    /// A cluster appeared (the first poll reports every cluster as added).
    Added(ClusterSpec),
    /// A cluster's Secret, origin or kubeconfig changed.
    Changed(ClusterSpec),
    /// The cluster with this name is gone.
    Removed(String),
}

/// The interval [`watch`] polls at.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Watches the fleet by polling [`discover_lenient`] every 30 s; see [`watch_every`].
pub fn watch(client: kube::Client, namespace: Option<String>) -> impl Stream<Item = FleetEvent> {
    watch_every(client, namespace, DEFAULT_POLL_INTERVAL)
}

/// Watches the fleet by polling every `interval`: the first poll yields `Added` for every
/// cluster, later polls yield the differences. Unusable Secrets and duplicate names are
/// logged (the first Secret of a duplicate name keeps it); a failed listing is logged and
/// retried at the next poll without emitting events. The stream never ends.
pub fn watch_every(
    client: kube::Client,
    namespace: Option<String>,
    interval: Duration,
) -> impl Stream<Item = FleetEvent> {
    struct State {
        client: kube::Client,
        namespace: Option<String>,
        interval: Duration,
        known: HashMap<String, ClusterSpec>,
        pending: VecDeque<FleetEvent>,
        first: bool,
        reported: Vec<String>,
    }
    let state = State {
        client,
        namespace,
        interval,
        known: HashMap::new(),
        pending: VecDeque::new(),
        first: true,
        reported: Vec::new(),
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((ev, st));
            }
            if !st.first {
                tokio::time::sleep(st.interval).await;
            }
            st.first = false;
            match discover_lenient(&st.client, st.namespace.as_deref()).await {
                Ok(d) => {
                    // Log each problem once until it goes away.
                    let now: Vec<String> = d.problems.iter().map(|p| p.to_string()).collect();
                    for p in &now {
                        if !st.reported.contains(p) {
                            tracing::warn!(problem = %p, "unusable cluster Secret");
                        }
                    }
                    st.reported = now;
                    st.pending = diff(&mut st.known, d.clusters);
                }
                Err(e) => tracing::warn!(error = %e, "discovering clusters failed; retrying"),
            }
        }
    })
}

/// Updates `known` to `current` and returns the events that describe the change, sorted by
/// cluster name (removals first).
pub fn diff(
    known: &mut HashMap<String, ClusterSpec>,
    current: Vec<ClusterSpec>,
) -> VecDeque<FleetEvent> {
    let mut events = VecDeque::new();
    let current: BTreeMap<String, ClusterSpec> =
        current.into_iter().map(|c| (c.name.clone(), c)).collect();
    let mut gone: Vec<String> = known
        .keys()
        .filter(|k| !current.contains_key(*k))
        .cloned()
        .collect();
    gone.sort();
    for name in gone {
        known.remove(&name);
        events.push_back(FleetEvent::Removed(name));
    }
    for (name, spec) in current {
        match known.get(&name) {
            None => events.push_back(FleetEvent::Added(spec.clone())),
            Some(old) if *old != spec => events.push_back(FleetEvent::Changed(spec.clone())),
            Some(_) => continue,
        }
        known.insert(name, spec);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn secret(
        ns: &str,
        name: &str,
        type_: Option<&str>,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        data: &[(&str, &str)],
    ) -> Secret {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Secret {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: map(labels),
                annotations: map(annotations),
                ..ObjectMeta::default()
            },
            type_: type_.map(str::to_string),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn shapes() {
        let label = secret(
            "ns",
            "a",
            None,
            &[(CLUSTER_LABEL, "a")],
            &[],
            &[("value.yaml", "KC-A")],
        );
        let c = cluster_from_secret(&label).unwrap().unwrap();
        assert_eq!(
            (c.name.as_str(), c.origin, c.kubeconfig()),
            ("a", Origin::Label, &b"KC-A"[..])
        );
        assert_eq!(c.secret, Some(("ns".into(), "a".into())));

        let annotated = secret(
            "ns",
            "x",
            None,
            &[(CLUSTER_LABEL, "b")],
            &[(KEY_ANNOTATION, "my.conf")],
            &[("value", "WRONG"), ("my.conf", "KC-B")],
        );
        assert_eq!(
            cluster_from_secret(&annotated)
                .unwrap()
                .unwrap()
                .kubeconfig(),
            b"KC-B"
        );

        let capi = secret(
            "ns",
            "c1-kubeconfig",
            Some(CAPI_SECRET_TYPE),
            &[(CAPI_CLUSTER_LABEL, "c1")],
            &[],
            &[("value", "KC-C")],
        );
        let c = cluster_from_secret(&capi).unwrap().unwrap();
        assert_eq!((c.name.as_str(), c.origin), ("c1", Origin::ClusterApi));
        let capi_other = secret(
            "ns",
            "c1-ca",
            Some(CAPI_SECRET_TYPE),
            &[(CAPI_CLUSTER_LABEL, "c1")],
            &[],
            &[("tls.crt", "x")],
        );
        assert!(cluster_from_secret(&capi_other).unwrap().is_none());

        let xp = secret(
            "ns",
            "conn",
            Some(CROSSPLANE_SECRET_TYPE),
            &[(CLUSTER_LABEL, "d")],
            &[],
            &[("value", "NOT-THIS"), ("kubeconfig", "KC-D")],
        );
        let c = cluster_from_secret(&xp).unwrap().unwrap();
        assert_eq!(
            (c.name.as_str(), c.origin, c.kubeconfig()),
            ("d", Origin::Crossplane, &b"KC-D"[..])
        );
        let xp_unlabelled = secret(
            "ns",
            "conn",
            Some(CROSSPLANE_SECRET_TYPE),
            &[],
            &[],
            &[("kubeconfig", "K")],
        );
        assert!(cluster_from_secret(&xp_unlabelled).unwrap().is_none());

        let missing = secret(
            "ns",
            "m",
            None,
            &[(CLUSTER_LABEL, "m")],
            &[],
            &[("token", "SECRET")],
        );
        let msg = cluster_from_secret(&missing).unwrap_err().to_string();
        assert!(
            msg.contains("ns/m")
                && msg.contains("value, value.yaml, kubeconfig")
                && msg.contains("token"),
            "{msg}"
        );
        assert!(!msg.contains("SECRET"));
    }

    #[test]
    fn duplicates_and_order() {
        let s = [
            secret(
                "ns1",
                "z",
                None,
                &[(CLUSTER_LABEL, "b")],
                &[],
                &[("value", "1")],
            ),
            secret(
                "ns2",
                "y",
                None,
                &[(CLUSTER_LABEL, "a")],
                &[],
                &[("value", "2")],
            ),
            secret(
                "ns2",
                "z",
                None,
                &[(CLUSTER_LABEL, "b")],
                &[],
                &[("value", "3")],
            ),
        ];
        let d = collect(&s);
        let names: Vec<_> = d.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(d.problems.len(), 1);
        let msg = d.problems[0].to_string();
        assert!(msg.contains("ns1/z") && msg.contains("ns2/z"), "{msg}");
    }

    #[test]
    fn debug_redacts() {
        let c = ClusterSpec::with_kubeconfig("a", Origin::Label, None, b"token: hunter2".to_vec());
        let dbg = format!("{c:?} {:?}", FleetEvent::Added(c.clone()));
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn diffing() {
        let mut known = HashMap::new();
        let a = ClusterSpec::with_kubeconfig("a", Origin::Label, None, b"1".to_vec());
        let b = ClusterSpec::with_kubeconfig("b", Origin::Label, None, b"1".to_vec());
        let ev = diff(&mut known, vec![a.clone(), b.clone()]);
        assert_eq!(
            ev,
            [FleetEvent::Added(a.clone()), FleetEvent::Added(b.clone())]
        );
        assert!(diff(&mut known, vec![a.clone(), b.clone()]).is_empty());
        let b2 = ClusterSpec::with_kubeconfig("b", Origin::Label, None, b"2".to_vec());
        let ev = diff(&mut known, vec![b2.clone()]);
        assert_eq!(
            ev,
            [FleetEvent::Removed("a".into()), FleetEvent::Changed(b2)]
        );
    }

    const KC: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: hunter2\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n";

    #[test]
    fn kubeconfig_errors_hide_contents() {
        let policy = KubeconfigPolicy::default();
        for bad in [
            "token: hunter2\n  - : [".to_string(),
            "clusters: hunter2".to_string(),
            KC.replace("current-context: x", "current-context: hunter2-ctx"),
        ] {
            let e = parse_kubeconfig("cluster t", bad.as_bytes(), &policy)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("hunter2\n") && !e.contains("token"), "{e}");
            assert!(e.contains("cluster t"), "{e}");
        }
        let e = parse_kubeconfig("cluster t", b"\xff\xfe", &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("UTF-8"), "{e}");
        let e = parse_kubeconfig("cluster t", KC.as_bytes(), &policy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("insecure-skip-tls-verify") && !e.contains("hunter2"),
            "{e}"
        );
        let lax = KubeconfigPolicy {
            allow_insecure_tls: true,
            ..policy
        };
        assert!(parse_kubeconfig("cluster t", KC.as_bytes(), &lax).is_ok());
        let exec = KC.replace("    token: hunter2\n", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/steal\n");
        let e = parse_kubeconfig("cluster t", exec.as_bytes(), &lax)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exec"), "{e}");
    }
}
