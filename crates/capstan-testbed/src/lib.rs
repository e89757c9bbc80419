//! Test helper: real Kubernetes API servers for cluster tests.
//!
//! [`TestCluster::start`] runs `scripts/test-cluster up NAME` (etcd + kube-apiserver 1.20.2 on
//! loopback, token auth, RBAC, no kubelet and no controller-manager) under a unique name and stops
//! it again (`scripts/test-cluster down NAME`) when the value is dropped.
//!
//! When the test bed binaries are absent (`~/.cache/capstan-testbed/bin/kube-apiserver`, or
//! `$CAPSTAN_TESTBED_CACHE/bin/kube-apiserver`), `start` returns `None` after printing
//! `skipping: test bed not available`, so cluster tests skip cleanly. Set
//! `CAPSTAN_REQUIRE_CLUSTER=1` to make an unavailable or failing test bed a panic instead (CI).
//!
//! Counting requests: [`TestCluster::counting_client`] returns a client whose HTTP requests are
//! all recorded by a [`RequestCounter`]; [`RequestCounter::writes`] lists the requests that
//! would change the cluster (every non-GET/HEAD request without a `dryRun` query parameter).
//!
//! ```no_run
//! # async fn t() {
//! let Some(cluster) = capstan_testbed::TestCluster::start("my-test") else { return };
//! let (client, counter) = cluster.counting_client().await;
//! // ... use client ...
//! assert!(counter.writes().is_empty(), "{:?}", counter.writes());
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

pub mod servers;
pub mod trials;
use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A running test API server; stopped and deleted on drop.
#[derive(Debug)]
pub struct TestCluster {
    name: String,
    kubeconfig: PathBuf,
    root: PathBuf,
}

/// The workspace root (two levels above this crate's manifest directory).
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAPSTAN_TESTBED_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/capstan-testbed")
}

fn require_cluster() -> bool {
    std::env::var("CAPSTAN_REQUIRE_CLUSTER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Turns a test-chosen prefix into something that matches `[a-z0-9][a-z0-9-]*`.
fn sanitize(prefix: &str) -> String {
    let mut out: String = prefix
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(30);
    if out.is_empty() {
        out.push_str("cluster");
    }
    out
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{n}-{:x}",
        sanitize(prefix),
        std::process::id(),
        nanos & 0xfffff
    )
}

impl TestCluster {
    /// Starts a fresh API server named `<prefix>-<pid>-<n>-<rand>`.
    ///
    /// Returns `None` (after a loud message on stderr) when the test bed is not installed and
    /// `CAPSTAN_REQUIRE_CLUSTER` is unset. Panics with the script's stderr when the script fails
    /// and a cluster is required, or when it fails although the binaries are present.
    pub fn start(name_prefix: &str) -> Option<TestCluster> {
        let available = cache_dir().join("bin/kube-apiserver").exists();
        if !available && !require_cluster() {
            eprintln!(
                "skipping: test bed not available ({} is missing; run scripts/test-cluster setup)",
                cache_dir().join("bin/kube-apiserver").display()
            );
            return None;
        }
        let root = workspace_root();
        let script = root.join("scripts/test-cluster");
        // The script picks free ports before the API server binds them; another test can take
        // one in between. Such a start is retried under a new name (and new ports).
        let mut attempt = 0;
        let (name, out) = loop {
            attempt += 1;
            let name = unique_name(name_prefix);
            let out = Command::new("bash")
                .arg(&script)
                .arg("up")
                .arg(&name)
                .current_dir(&root)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            if out.status.success() {
                break (name, out);
            }
            // Clean up whatever was half-started.
            let _ = Command::new("bash")
                .arg(&script)
                .arg("down")
                .arg(&name)
                .current_dir(&root)
                .output();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if attempt < 3 && stderr.contains("address already in use") {
                eprintln!("scripts/test-cluster up {name}: a port was taken meanwhile; retrying");
                continue;
            }
            panic!(
                "scripts/test-cluster up {name} failed ({}):\n{stderr}",
                out.status
            );
        };
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(
            !path.is_empty(),
            "scripts/test-cluster up {name} printed no kubeconfig path:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(TestCluster {
            name,
            kubeconfig: PathBuf::from(path),
            root,
        })
    }

    /// One cluster shared by every test of this test binary (process), started on first use
    /// and stopped when the process exits. Saves the start-up cost (several seconds per
    /// cluster) for tests that can share: give each test its own namespaces and unit names.
    /// Returns `None` (skip) under the same conditions as [`TestCluster::start`].
    pub fn shared() -> Option<&'static TestCluster> {
        static SHARED: std::sync::OnceLock<Option<TestCluster>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cluster = TestCluster::start("shared")?;
                SHARED_NAME
                    .set((cluster.root.clone(), cluster.name.clone()))
                    .expect("shared cluster registered once");
                extern "C" {
                    fn atexit(cb: extern "C" fn()) -> std::os::raw::c_int;
                }
                // SAFETY: registering a plain `extern "C" fn` with the C library's atexit.
                unsafe {
                    atexit(stop_shared);
                }
                Some(cluster)
            })
            .as_ref()
    }

    /// Stops and starts this cluster's kube-apiserver (etcd and its data stay), as a
    /// control-plane restart does. Blocks until the API server is ready again.
    pub fn restart_apiserver(&self) {
        let script = self.root.join("scripts/test-cluster");
        let out = Command::new("bash")
            .arg(&script)
            .arg("restart-apiserver")
            .arg(&self.name)
            .current_dir(&self.root)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/test-cluster restart-apiserver {} failed:\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The cluster's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the kubeconfig for the admin user (`system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin kubeconfig with the CA embedded (`certificate-authority-data`), as
    /// kubeconfigs stored in Secrets must be (Cluster API and Crossplane write them so;
    /// kubeconfigs naming local files are refused by the agent).
    pub fn self_contained_kubeconfig(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let mut out = String::new();
        for line in text.lines() {
            match line.trim_start().strip_prefix("certificate-authority: ") {
                Some(path) => {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    let ca = std::fs::read(path.trim())
                        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
                    out.push_str(&format!(
                        "{indent}certificate-authority-data: {}\n",
                        servers::b64(&ca)
                    ));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        assert!(
            out.contains("certificate-authority-data"),
            "test bed kubeconfig changed shape"
        );
        out
    }

    /// The kube config for the admin user.
    pub async fn config(&self) -> kube::Config {
        let kc = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", self.kubeconfig.display()))
    }

    /// A client for the admin user.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).expect("building kube client")
    }

    /// A client whose requests are recorded by the returned [`RequestCounter`].
    pub async fn counting_client(&self) -> (kube::Client, RequestCounter) {
        let counter = RequestCounter::default();
        let client = ClientBuilder::try_from(self.config().await)
            .expect("building kube client")
            .with_layer(&counter.layer())
            .build();
        (client, counter)
    }
}

static SHARED_NAME: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();

extern "C" fn stop_shared() {
    if let Some((root, name)) = SHARED_NAME.get() {
        let _ = Command::new("bash")
            .arg(root.join("scripts/test-cluster"))
            .arg("down")
            .arg(name)
            .current_dir(root)
            .output();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.root.join("scripts/test-cluster"))
            .arg("down")
            .arg(&self.name)
            .current_dir(&self.root)
            .output();
    }
}

/// One HTTP request seen by a [`RequestCounter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `PATCH`.
    pub method: String,
    /// Path and query, e.g. `/api/v1/namespaces/default/configmaps/x?fieldManager=capstan`.
    pub path: String,
}

impl RecordedRequest {
    /// True when the request asks for a dry run (`dryRun=All`): it changes nothing.
    pub fn is_dry_run(&self) -> bool {
        self.path
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("dryRun=")))
    }

    /// True for requests that may change the cluster: not GET/HEAD/OPTIONS and not a dry run.
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS") && !self.is_dry_run()
    }
}

impl std::fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Records every request that goes through a client built with its [`RequestCounter::layer`].
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    seen: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl RequestCounter {
    /// A tower layer to add to a `kube::client::ClientBuilder`.
    pub fn layer(&self) -> CountingLayer {
        CountingLayer {
            counter: self.clone(),
        }
    }

    /// Every request recorded so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.seen.lock().expect("counter lock").clone()
    }

    /// The recorded requests that may change the cluster (see [`RecordedRequest::is_write`]).
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_write())
            .collect()
    }

    /// Number of recorded requests with this method (e.g. `"PATCH"`), dry runs included.
    pub fn count_method(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// Forgets everything recorded so far.
    pub fn reset(&self) {
        self.seen.lock().expect("counter lock").clear();
    }

    fn record(&self, req: &http::Request<Body>) {
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| req.uri().to_string());
        self.seen
            .lock()
            .expect("counter lock")
            .push(RecordedRequest {
                method: req.method().as_str().to_string(),
                path,
            });
    }
}

/// Tower layer produced by [`RequestCounter::layer`].
#[derive(Debug, Clone)]
pub struct CountingLayer {
    counter: RequestCounter,
}

impl<S> tower::Layer<S> for CountingLayer {
    type Service = CountingService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountingService {
            inner,
            counter: self.counter.clone(),
        }
    }
}

/// Tower service produced by [`CountingLayer`].
#[derive(Debug, Clone)]
pub struct CountingService<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S> tower::Service<http::Request<Body>> for CountingService<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.counter.record(&req);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let a = unique_name("Apply_Test/1");
        let b = unique_name("Apply_Test/1");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            assert!(n.starts_with("apply-test-1-"), "{n}");
        }
        assert_eq!(sanitize("---"), "cluster");
    }

    #[test]
    fn write_classification() {
        let r = |m: &str, p: &str| RecordedRequest {
            method: m.into(),
            path: p.into(),
        };
        assert!(!r("GET", "/api/v1/namespaces").is_write());
        assert!(!r("PATCH", "/api/v1/x?dryRun=All&fieldManager=capstan").is_write());
        assert!(r("PATCH", "/api/v1/x?fieldManager=capstan").is_write());
        assert!(r("DELETE", "/api/v1/x").is_write());
        assert!(r("POST", "/api/v1/x").is_write());
    }

    #[test]
    fn workspace_root_has_script() {
        assert!(workspace_root().join("scripts/test-cluster").exists());
    }

    #[tokio::test]
    async fn shared_cluster_is_reused() {
        let Some(a) = TestCluster::shared() else {
            return;
        };
        let b = TestCluster::shared().expect("still there");
        assert_eq!(a.name(), b.name());
        let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(a.client().await);
        assert!(ns.get_opt("default").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn starts_and_counts() {
        let Some(cluster) = TestCluster::start("testbed-self") else {
            return;
        };
        let (client, counter) = cluster.counting_client().await;
        let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        let got = ns.get("default").await.expect("default namespace");
        assert_eq!(got.metadata.name.as_deref(), Some("default"));
        assert!(counter.count_method("GET") >= 1);
        assert!(counter.writes().is_empty());
    }
}
