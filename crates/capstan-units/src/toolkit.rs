//! The Flux toolkit's kinds, API versions and annotations, in one table.
//!
//! Readers of the Flux dialect, the live shell (observing units in a cluster, reading
//! sources) and the CLI's day-two commands use this table; nothing else names a toolkit
//! group, version or annotation.

use crate::spec::{HELM_GROUP, KUSTOMIZE_GROUP, SOURCE_GROUP};

/// A toolkit kind: its group, the version capstan writes (`version`), every version it
/// reads (`versions`, newest first) and its plural resource name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolkitKind {
    pub group: &'static str,
    pub kind: &'static str,
    pub version: &'static str,
    pub versions: &'static [&'static str],
    pub plural: &'static str,
}

impl ToolkitKind {
    /// `group/version` of the version capstan writes.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

pub const KUSTOMIZATION: ToolkitKind = ToolkitKind {
    group: KUSTOMIZE_GROUP,
    kind: "Kustomization",
    version: "v1",
    versions: &["v1", "v1beta2"],
    plural: "kustomizations",
};

pub const HELM_RELEASE: ToolkitKind = ToolkitKind {
    group: HELM_GROUP,
    kind: "HelmRelease",
    version: "v2",
    versions: &["v2", "v2beta2", "v2beta1"],
    plural: "helmreleases",
};

pub const GIT_REPOSITORY: ToolkitKind = ToolkitKind {
    group: SOURCE_GROUP,
    kind: "GitRepository",
    version: "v1",
    versions: &["v1", "v1beta2"],
    plural: "gitrepositories",
};

pub const OCI_REPOSITORY: ToolkitKind = ToolkitKind {
    group: SOURCE_GROUP,
    kind: "OCIRepository",
    version: "v1",
    versions: &["v1", "v1beta2"],
    plural: "ocirepositories",
};

pub const HELM_REPOSITORY: ToolkitKind = ToolkitKind {
    group: SOURCE_GROUP,
    kind: "HelmRepository",
    version: "v1",
    versions: &["v1", "v1beta2"],
    plural: "helmrepositories",
};

pub const HELM_CHART: ToolkitKind = ToolkitKind {
    group: SOURCE_GROUP,
    kind: "HelmChart",
    version: "v1",
    versions: &["v1", "v1beta2"],
    plural: "helmcharts",
};

pub const BUCKET: ToolkitKind = ToolkitKind {
    group: SOURCE_GROUP,
    kind: "Bucket",
    version: "v1",
    versions: &["v1", "v1beta2"],
    plural: "buckets",
};

/// Flux 2.7's `ExternalArtifact` (source.toolkit.fluxcd.io/v1).
pub const EXTERNAL_ARTIFACT: ToolkitKind = ToolkitKind {
    group: SOURCE_GROUP,
    kind: "ExternalArtifact",
    version: "v1",
    versions: &["v1"],
    plural: "externalartifacts",
};

/// Flux 2.7's `ArtifactGenerator` (source.extensions.fluxcd.io/v1beta1).
pub const ARTIFACT_GENERATOR: ToolkitKind = ToolkitKind {
    group: "source.extensions.fluxcd.io",
    kind: "ArtifactGenerator",
    version: "v1beta1",
    versions: &["v1beta1"],
    plural: "artifactgenerators",
};

/// The kinds that are units.
pub const UNIT_KINDS: [ToolkitKind; 2] = [KUSTOMIZATION, HELM_RELEASE];

/// Every source kind.
pub const SOURCE_KINDS: [ToolkitKind; 7] = [
    GIT_REPOSITORY,
    OCI_REPOSITORY,
    HELM_REPOSITORY,
    HELM_CHART,
    BUCKET,
    EXTERNAL_ARTIFACT,
    ARTIFACT_GENERATOR,
];

/// The toolkit kind named `kind`.
pub fn by_kind(kind: &str) -> Option<&'static ToolkitKind> {
    UNIT_KINDS
        .iter()
        .chain(SOURCE_KINDS.iter())
        .find(|k| k.kind == kind)
}

/// Why a unit cannot read a source of this kind (`None`: capstan reads it). `Bucket`
/// sources (S3-compatible storage) and Flux 2.7's `ExternalArtifact`/`ArtifactGenerator`
/// (artifacts composed by source-watcher) are refused by name rather than read from the
/// repository's tree by mistake.
pub fn unsupported_source(kind: &str) -> Option<&'static str> {
    match kind {
        "Bucket" => Some("Bucket sources (S3-compatible object storage) are not supported by capstan (hint: publish the manifests to a GitRepository or an OCIRepository)"),
        "ExternalArtifact" => Some("ExternalArtifact sources (Flux 2.7, produced by an ArtifactGenerator in source-watcher) are not supported by capstan (hint: point sourceRef at the GitRepository/OCIRepository the ArtifactGenerator reads, with spec.path set to the directory it copies)"),
        "ArtifactGenerator" => Some("an ArtifactGenerator is not a source a unit can name: units reference the ExternalArtifact it produces, which capstan does not support"),
        _ => None,
    }
}

/// `capstan reconcile` / `flux reconcile` ask for a reconcile now with this annotation.
pub const RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// Variables substitution opt-out (`disabled`) on objects of a Kustomization.
pub const SUBSTITUTE: &str = crate::SUBSTITUTE_ANNOTATION;

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry per kind; the versions written are among those read.
    #[test]
    fn the_table_names_each_kind_once_and_writes_a_version_it_reads() {
        let all: Vec<_> = UNIT_KINDS.iter().chain(SOURCE_KINDS.iter()).collect();
        for k in &all {
            assert!(k.versions.contains(&k.version), "{}", k.kind);
            assert_eq!(all.iter().filter(|o| o.kind == k.kind).count(), 1);
        }
        assert_eq!(
            by_kind("HelmRelease").unwrap().api_version(),
            "helm.toolkit.fluxcd.io/v2"
        );
        assert!(by_kind("Deployment").is_none());
    }

    /// Bucket, ExternalArtifact and ArtifactGenerator are refused by name; Git and OCI
    /// repositories are read.
    #[test]
    fn unsupported_source_kinds_are_named() {
        for k in ["Bucket", "ExternalArtifact", "ArtifactGenerator"] {
            assert!(unsupported_source(k).unwrap().contains(k), "{k}");
        }
        for k in ["GitRepository", "OCIRepository"] {
            assert!(unsupported_source(k).is_none());
        }
    }
}
