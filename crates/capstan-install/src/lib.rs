//! Putting the capstan agent into a cluster, upgrading it, packaging it for Cluster API, and
//! taking it out again.
//!
//! - [`manifests`]: the agent's objects (pure): Namespace, the toolkit CRDs (the agent's own,
//!   from `capstan-status`), ServiceAccount, RBAC (`cluster-admin`, or namespaced for a
//!   tenant), a read-only Git credentials Secret in Flux's format, the metrics Service and a
//!   Deployment (non-root, read-only root filesystem, probes on `/healthz` and `/readyz`,
//!   resources, `--leader-elect`).
//! - [`install`]: applies them with capstan's own apply as one unit, `Install/<namespace>/capstan`,
//!   with its own inventory: a re-run is the upgrade (objects that changed are listed, objects
//!   no longer rendered are pruned), a failed install is re-run or uninstalled cleanly.
//!   Flux's CRDs are not taken over while Flux controllers run unless asked.
//! - [`check`]: what is installed, its version, whether the agent is healthy.
//! - [`uninstall`]: stops the agent, removes capstan's finalizers from unit objects, deletes
//!   (optionally) every inventoried workload in reverse dependency order, the agent's
//!   cluster-scoped objects and CRDs (unless kept) and its namespaces. Objects are found by
//!   capstan's labels and inventories only, never by name patterns.
//! - [`crs`]: manifests as a Cluster API `ClusterResourceSet` with resource-set Secrets under
//!   1 MiB each.
//! - [`ImageRef`]: image references parsed as container runtimes parse them.
//! - [`in_cluster`]: the agent's in-cluster client configuration, its ServiceAccount
//!   directory overridable with `CAPSTAN_SERVICEACCOUNT_DIR`.

pub mod crs;
mod image;
pub mod in_cluster;
mod live;
mod manifests;

pub use image::{ImageRef, ImageRefError};
pub use live::{
    check, detect_flux, expected_objects, install, install_unit, uninstall, CheckReport,
    FluxPresence, InstallReport, InstalledAgent, Resources, Step, StepOutcome, UninstallOptions,
    UninstallReport,
};
pub use manifests::{
    agent_args, manifests, GitCredentials, InstallOptions, Rbac, SourceRef, CREDENTIAL_KEYS,
    ENV_PASSWORD, ENV_TOKEN, ENV_USERNAME,
};

/// capstan's version (the install's `app.kubernetes.io/version` and default image tag).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The default install namespace (also where capstan's apply keeps its inventories).
pub const DEFAULT_NAMESPACE: &str = capstan_apply::inventory::INVENTORY_NAMESPACE;
/// The image `scripts/image` builds by default (`localhost/capstan:<version>`).
pub fn default_image() -> String {
    format!("localhost/capstan:{VERSION}")
}
/// Name of the agent's Deployment, ServiceAccount (and namespaced Role/RoleBinding).
pub const AGENT_NAME: &str = "capstan-agent";
/// Name of the read-only Git credentials Secret.
pub const CREDENTIALS_SECRET: &str = "capstan-git-credentials";
/// Name of the metrics Service.
pub const METRICS_SERVICE: &str = "capstan-agent-metrics";
/// Port of `/metrics`, `/healthz`, `/readyz` and webhooks.
pub const METRICS_PORT: u16 = 9090;

/// `app.kubernetes.io/name`.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/part-of`.
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
/// `app.kubernetes.io/managed-by`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/component`.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/version`.
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";
/// capstan's unit-kind label (set by capstan's apply on every object it applies).
pub const LABEL_UNIT_KIND: &str = "capstan.io/kind";
/// The unit kind of an install.
pub const INSTALL_UNIT_KIND: &str = "Install";

/// Errors of install, check, uninstall and packaging. Messages never hold credentials.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A credential the install needs is missing.
    #[error("missing credential: {what}")]
    MissingCredential {
        /// Which one, and where it was looked for.
        what: String,
    },
    /// A credential is malformed.
    #[error("invalid credential: {what}")]
    InvalidCredential {
        /// What is wrong.
        what: String,
    },
    /// The image reference does not parse.
    #[error(transparent)]
    Image(#[from] ImageRefError),
    /// A bad argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// An object is too large to package.
    #[error("{object} is {bytes} bytes, more than the {limit} bytes one resource-set Secret holds (Secrets are limited to 1 MiB)")]
    TooLarge {
        /// The object.
        object: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// capstan's apply failed.
    #[error(transparent)]
    Apply(Box<capstan_apply::ApplyError>),
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Waiting for something timed out.
    #[error("{0}")]
    Timeout(String),
}

impl From<capstan_apply::ApplyError> for InstallError {
    fn from(e: capstan_apply::ApplyError) -> Self {
        InstallError::Apply(Box::new(e))
    }
}
