//! # capstan-source
//!
//! Fetches Flux sources into a local, content-addressed cache, with read-only
//! access to the remotes:
//!
//! * [`GitRepositorySpec`] (`source.toolkit.fluxcd.io/v1` GitRepository) via
//!   gitoxide: http(s) with basic or bearer auth, ssh (identity + known_hosts,
//!   through the system `ssh`), `git://`, `file://` and paths. Materialised at
//!   `<cache>/git/<url-hash>/<commit>/` (or `<commit>-<ignore-hash>/` when
//!   `spec.ignore` is set), published atomically (temp dir + rename).
//! * Helm HTTP repositories ([`HelmRepositorySpec`]): `index.yaml`, version
//!   by semver constraint, chart `.tgz` cached by digest under `<cache>/helm/`.
//! * [`OciRepositorySpec`]: Flux artifacts (one tar+gzip layer) under `<cache>/oci/`.
//!
//! Offline ([`SourceCache::offline`]) no fetch touches the network: each answers with the
//! artifact the same URL and reference resolved to when last fetched (every successful
//! fetch records it under `<cache>/refs/`), or an [`ErrorKind::NotCached`] error naming
//! the source, its URL and the reference.
//!
//! Credentials come from a Secret's `data`, read by the caller
//! ([`GitAuth::from_secret_data`], [`HttpAuth::from_secret_data`]). They never
//! appear in errors, logs or `Debug` output.
//!
//! ```no_run
//! # async fn f(obj: serde_json::Value) -> Result<(), capstan_source::SourceError> {
//! let cache = capstan_source::SourceCache::new("/var/cache/capstan");
//! let spec = capstan_source::GitRepositorySpec::from_object(&obj)?;
//! let artifact = cache.fetch_git(&spec, None).await?;
//! println!("{} at {}", artifact.revision, artifact.path.display());
//! # Ok(()) }
//! ```

mod constraint;
mod duration;
mod error;
mod git;
mod helm;
mod oci;
mod refs;
mod sourceignore;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use constraint::{parse_version, Constraint};
pub use duration::parse_go_duration;
pub use error::{redact_url, ErrorKind, SourceError};
pub use git::{GitAuth, GitRef, GitRepositorySpec};
pub use helm::{HelmChart, HelmRepositorySpec, HttpAuth};
pub use oci::{image_tag_digest, list_image_tags, OciRef, OciRepositorySpec, TAG_PAGE_SIZE};
pub use sourceignore::{IgnoreRules, EXCLUDE_DEFAULT, EXCLUDE_VCS, IGNORE_FILE};
pub use store::{sha256_digest, Artifact};

/// A Git reference as a user wrote it, for messages.
fn git_ref_text(r: &GitRef) -> String {
    match (&r.commit, &r.name, &r.semver, &r.tag, &r.branch) {
        (Some(c), ..) => format!("commit {c}"),
        (None, Some(n), ..) => format!("reference {n:?}"),
        (None, None, Some(s), ..) => format!("semver {s:?}"),
        (None, None, None, Some(t), _) => format!("tag {t:?}"),
        (None, None, None, None, Some(b)) => format!("branch {b:?}"),
        _ => "the default branch".to_string(),
    }
}

/// The local cache of fetched sources. Cheap to clone; fetches of the same
/// remote are serialised, different remotes proceed in parallel.
#[derive(Clone, Debug)]
pub struct SourceCache {
    root: PathBuf,
    insecure_http_credentials: bool,
    offline: bool,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// fetches hold it shared, [`SourceCache::retain`] exclusively
    gc: Arc<tokio::sync::RwLock<()>>,
}

impl SourceCache {
    /// A cache rooted at `root` (created on first fetch).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SourceCache {
            root: root.into(),
            insecure_http_credentials: false,
            offline: false,
            locks: Default::default(),
            gc: Default::default(),
        }
    }

    /// Allow sending Git credentials over plain `http://` (off by default:
    /// such fetches fail with [`ErrorKind::InvalidAuth`]). For tests and
    /// trusted networks only.
    pub fn allow_insecure_http_credentials(mut self, allow: bool) -> Self {
        self.insecure_http_credentials = allow;
        self
    }

    /// Forbid the network: fetches answer from the cache only (the artifact each URL and
    /// reference resolved to when last fetched), or fail with [`ErrorKind::NotCached`].
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Does this cache forbid the network?
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(key.to_string()).or_default().clone()
    }

    /// Fetch a GitRepository: always contacts the remote (so moved and
    /// force-pushed branches are followed), resolves `spec.ref` to a commit and
    /// materialises its tree unless that revision is already in the cache.
    pub async fn fetch_git(
        &self,
        spec: &GitRepositorySpec,
        auth: Option<&GitAuth>,
    ) -> Result<Artifact, SourceError> {
        let r = &spec.reference;
        let key = refs::key(
            "git",
            &spec.url,
            &[
                ("branch", r.branch.as_deref()),
                ("tag", r.tag.as_deref()),
                ("semver", r.semver.as_deref()),
                ("name", r.name.as_deref()),
                ("commit", r.commit.as_deref()),
                ("ignore", spec.ignore.as_deref()),
            ],
        );
        if self.offline {
            return refs::lookup(&self.root, "git", &key).ok_or_else(|| {
                SourceError::not_cached(&spec.id(), &spec.url, &git_ref_text(r), &self.root)
            });
        }
        let fetched = self.fetch_git_online(spec, auth).await;
        if let Ok(a) = &fetched {
            refs::record(&self.root, "git", &key, a);
        }
        fetched
    }

    async fn fetch_git_online(
        &self,
        spec: &GitRepositorySpec,
        auth: Option<&GitAuth>,
    ) -> Result<Artifact, SourceError> {
        let lock = self.lock_for(&format!("git:{}", git::url_key(&spec.url)));
        // held by the blocking task until it really ends, even after a timeout
        let gc = self.gc.clone().read_owned().await;
        let guard = lock.lock_owned().await;
        let root = self.root.clone();
        let spec2 = spec.clone();
        let auth = auth.cloned();
        let id = spec.id();
        let insecure = self.insecure_http_credentials;
        let timeout = spec.timeout_duration();
        let task = tokio::task::spawn_blocking(move || {
            let _guards = (gc, guard);
            git::fetch_git_blocking(&root, &spec2, auth.as_ref(), insecure)
        });
        match tokio::time::timeout(timeout + std::time::Duration::from_secs(5), task).await {
            Ok(joined) => joined.unwrap_or_else(|e| {
                Err(SourceError::new(
                    ErrorKind::Other,
                    &id,
                    &spec.url,
                    format!("fetch task failed: {e}"),
                    "",
                ))
            }),
            Err(_) => Err(SourceError::new(
                ErrorKind::Unreachable,
                &id,
                &spec.url,
                format!("timed out after {}s", timeout.as_secs()),
                "check that the server responds, or raise spec.timeout",
            )),
        }
    }

    /// Fetch a chart from a Helm HTTP repository: downloads `index.yaml`, picks
    /// the highest version of `chart` matching `version` (a semver constraint
    /// or exact version; empty means latest stable), and downloads the `.tgz`
    /// unless a file with the index's digest is cached.
    pub async fn fetch_helm_chart(
        &self,
        repo: &HelmRepositorySpec,
        chart: &str,
        version: &str,
        auth: Option<&HttpAuth>,
    ) -> Result<Artifact, SourceError> {
        let key = refs::key(
            "helm",
            &repo.url,
            &[("chart", Some(chart)), ("version", Some(version))],
        );
        if self.offline {
            return refs::lookup(&self.root, "helm", &key).ok_or_else(|| {
                let v = if version.is_empty() {
                    "latest"
                } else {
                    version
                };
                SourceError::not_cached(
                    &repo.id(),
                    &repo.url,
                    &format!("chart {chart:?} version {v:?}"),
                    &self.root,
                )
            });
        }
        let _gc = self.gc.read().await;
        let lock = self.lock_for(&format!("helm:{}", git::url_key(&repo.url)));
        let _guard = lock.lock().await;
        let fetched = helm::fetch_chart(&self.root, repo, chart, version, auth).await;
        if let Ok(a) = &fetched {
            refs::record(&self.root, "helm", &key, a);
        }
        fetched
    }

    /// Pull a Flux OCI artifact (single `tar+gzip` layer) and extract it.
    pub async fn fetch_oci(
        &self,
        spec: &OciRepositorySpec,
        auth: Option<&HttpAuth>,
    ) -> Result<Artifact, SourceError> {
        let r = &spec.reference;
        let key = refs::key(
            "oci",
            &spec.url,
            &[
                ("tag", r.tag.as_deref()),
                ("semver", r.semver.as_deref()),
                ("digest", r.digest.as_deref()),
                ("ignore", spec.ignore.as_deref()),
            ],
        );
        if self.offline {
            return refs::lookup(&self.root, "oci", &key).ok_or_else(|| {
                let what = match (&r.digest, &r.semver, &r.tag) {
                    (Some(d), _, _) => format!("digest {d}"),
                    (None, Some(s), _) => format!("semver {s:?}"),
                    (None, None, Some(t)) => format!("tag {t:?}"),
                    _ => "tag \"latest\"".to_string(),
                };
                SourceError::not_cached(&spec.id(), &spec.url, &what, &self.root)
            });
        }
        let lock = self.lock_for(&format!("oci:{}", spec.url));
        let _guard = lock.lock().await;
        let _gc = self.gc.read().await;
        let fetched = oci::fetch(&self.root, spec, auth).await;
        if let Ok(a) = &fetched {
            refs::record(&self.root, "oci", &key, a);
        }
        fetched
    }

    /// Delete every cached artifact (Git trees, OCI trees, Helm charts) whose
    /// path is not in `keep`, e.g. the artifacts of the sources still in use.
    /// Git mirrors are kept (they make the next fetch incremental). Waits for
    /// running fetches and blocks new ones meanwhile. Returns the removed paths.
    pub async fn retain(&self, keep: &[&Path]) -> std::io::Result<Vec<PathBuf>> {
        let _gc = self.gc.write().await;
        let root = self.root.clone();
        let keep: Vec<PathBuf> = keep.iter().map(|p| p.to_path_buf()).collect();
        tokio::task::spawn_blocking(move || store::retain(&root, &keep))
            .await
            .map_err(std::io::Error::other)?
    }
}
