//! Status that existing tools read: capstan records the outcome of its reconciliations the
//! way Flux's controllers do, so `flux get`, `kubectl get ks -A`, `kubectl wait
//! --for=condition=Ready`, kstatus-based tools and dashboards work unchanged.
//!
//! - [`flux_crds`] / [`ensure_crds`]: Flux's CRDs (Kustomization, HelmRelease, GitRepository,
//!   OCIRepository, HelmRepository, Receiver) with Flux's names, versions, short names and
//!   printer columns, created only when absent.
//! - [`conditions_for`]: Flux's `Ready` / `Reconciling` / `Stalled` conditions for an
//!   [`Outcome`] (pure).
//! - [`StatusClient`]: reads an object's generation, suspend flag, requestedAt annotation and
//!   status ([`LiveObject`]); writes a [`StatusUpdate`] (conditions, observedGeneration,
//!   lastAppliedRevision, lastAttemptedRevision, lastHandledReconcileAt, inventory, artifact)
//!   through the status subresource, only when something other than timestamps changes.
//! - [`EventRecorder`]: core/v1 Events about the objects, aggregated (`count`) like
//!   client-go's event correlator.
//!
//! Messages (in conditions and events) are written as given: callers redact them first.
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), capstan_status::StatusError> {
//! use capstan_status::{ensure_crds, EventRecorder, ObjectKey, Outcome, StatusClient, StatusUpdate};
//!
//! ensure_crds(&client).await?;
//! let status = StatusClient::new(client.clone());
//! let events = EventRecorder::new(client, "capstan");
//! let key = ObjectKey::kustomization("flux-system", "apps");
//! if let Some(live) = status.read(&key).await? {
//!     let update = StatusUpdate {
//!         last_applied_revision: Some("main@sha1:0123abcd".into()),
//!         last_attempted_revision: Some("main@sha1:0123abcd".into()),
//!         last_handled_reconcile_at: live.requested_at.clone(),
//!         ..StatusUpdate::new(
//!             Outcome::Ready {
//!                 reason: String::new(),
//!                 message: "Applied revision: main@sha1:0123abcd".into(),
//!             },
//!             live.generation,
//!         )
//!     };
//!     if status.write(&key, &update).await? {
//!         events
//!             .publish(&key, false, "ReconciliationSucceeded", "Applied revision: main@sha1:0123abcd")
//!             .await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod conditions;
mod crds;
mod events;
mod status;

use std::fmt;
use std::time::Duration;

use kube::core::{ApiResource, GroupVersionKind};

pub use conditions::{conditions_for, Condition, Outcome};
pub use crds::{ensure_crds, flux_crds};
pub use events::{EventRecorder, AGGREGATION_WINDOW, MAX_EVENT_MESSAGE_BYTES};
pub use status::{
    status_patch, ArtifactStatus, HelmSnapshot, InventoryEntry, LiveObject, StatusClient,
    StatusUpdate, FIELD_MANAGER, REQUESTED_AT_ANNOTATION,
};

/// The object a status or event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// E.g. `kustomize.toolkit.fluxcd.io/v1`.
    pub api_version: String,
    /// E.g. `Kustomization`.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

impl ObjectKey {
    /// Any namespaced object.
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> ObjectKey {
        ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// A `kustomize.toolkit.fluxcd.io/v1` Kustomization.
    pub fn kustomization(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey::new(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            namespace,
            name,
        )
    }

    /// A `helm.toolkit.fluxcd.io/v2` HelmRelease.
    pub fn helm_release(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey::new("helm.toolkit.fluxcd.io/v2", "HelmRelease", namespace, name)
    }

    /// A `source.toolkit.fluxcd.io/v1` GitRepository.
    pub fn git_repository(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey::new(
            "source.toolkit.fluxcd.io/v1",
            "GitRepository",
            namespace,
            name,
        )
    }

    /// A `source.toolkit.fluxcd.io/v1` OCIRepository.
    pub fn oci_repository(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey::new(
            "source.toolkit.fluxcd.io/v1",
            "OCIRepository",
            namespace,
            name,
        )
    }

    /// A `source.toolkit.fluxcd.io/v1` HelmRepository.
    pub fn helm_repository(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey::new(
            "source.toolkit.fluxcd.io/v1",
            "HelmRepository",
            namespace,
            name,
        )
    }

    /// A `notification.toolkit.fluxcd.io/v1` Receiver.
    pub fn receiver(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey::new(
            "notification.toolkit.fluxcd.io/v1",
            "Receiver",
            namespace,
            name,
        )
    }

    /// The kube API resource of this key's kind (plural derived from the kind).
    pub(crate) fn api_resource(&self) -> Result<ApiResource, StatusError> {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        if version.is_empty() || self.kind.is_empty() || self.name.is_empty() {
            return Err(StatusError::Invalid {
                object: self.to_string(),
                message: format!(
                    "apiVersion {:?}, kind and name must be set (e.g. kustomize.toolkit.fluxcd.io/v1 Kustomization)",
                    self.api_version
                ),
            });
        }
        Ok(ApiResource::from_gvk(&GroupVersionKind::gvk(
            group, version, &self.kind,
        )))
    }
}

impl fmt::Display for ObjectKey {
    /// `Kind/namespace/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Errors of this crate; each names the object it is about.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A request about an object failed.
    #[error("{action} {object}: {source} (hint: check that the agent's service account may get/patch it and its status, and create events)")]
    Kube {
        /// `Kind/namespace/name`.
        object: String,
        /// What was being done, e.g. `writing the status of`.
        action: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A request about a CRD failed.
    #[error("{action} CustomResourceDefinition {name}: {source} (hint: installing Flux's CRDs needs cluster-admin or apiextensions.k8s.io create rights)")]
    Crd {
        /// The CRD's name.
        name: String,
        /// `reading` or `creating`.
        action: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A created CRD did not become Established in time.
    #[error("CustomResourceDefinition {name} not Established after {waited:?} (hint: kubectl describe crd {name})")]
    NotEstablished {
        /// The CRD's name.
        name: String,
        /// How long it waited.
        waited: Duration,
    },
    /// A malformed key or object.
    #[error("{object}: {message}")]
    Invalid {
        /// The object concerned.
        object: String,
        /// What is wrong.
        message: String,
    },
}

/// The current time as RFC 3339 in UTC with second precision (Kubernetes' `metav1.Time`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = ObjectKey::kustomization("flux-system", "apps");
        assert_eq!(k.to_string(), "Kustomization/flux-system/apps");
        assert_eq!(k.api_resource().unwrap().plural, "kustomizations");
        assert_eq!(
            ObjectKey::oci_repository("a", "b")
                .api_resource()
                .unwrap()
                .plural,
            "ocirepositories"
        );
        assert_eq!(
            ObjectKey::helm_release("a", "b")
                .api_resource()
                .unwrap()
                .group,
            "helm.toolkit.fluxcd.io"
        );
        assert!(ObjectKey::new("", "", "ns", "x").api_resource().is_err());
    }

    #[test]
    fn now_is_rfc3339_seconds() {
        let n = now_rfc3339();
        assert_eq!(n.len(), 20, "{n}");
        assert!(n.ends_with('Z'));
    }
}
