//! Fault trials: `capstan apply` and `capstan agent` interrupted at random points of an apply
//! (SIGKILL, an API server restart, the Git server stopped mid-fetch), then run again; after
//! every trial the cluster must have converged to the repository, with the inventory equal
//! to the live objects (no orphan, nothing lost) and nothing of another field manager touched.
//!
//! Used by the test suite (a few trials) and by `cargo bench -p capstan-cli --bench
//! fault_trials` (many, with the report printed). Randomness comes from a seed, so a failing
//! trial can be run again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use tokio::process::Child;

use crate::servers::{free_port, git, GitDaemon, Repo};
use crate::TestCluster;

/// What interrupts a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `capstan apply` of the working tree, SIGKILLed after a random delay.
    KillApply,
    /// `capstan agent` following the Git repository, SIGKILLed after a random delay, then
    /// started again on a newer revision.
    KillAgent,
    /// The API server restarted while `capstan apply` runs.
    RestartApiServer,
    /// The Git server stopped (its whole process group) while `capstan apply --source`
    /// fetches.
    StopGitMidFetch,
}

/// The tally of a series of trials.
#[derive(Debug, Default, Clone)]
pub struct TrialReport {
    pub trials: usize,
    pub converged: usize,
    /// Live objects of the trial namespace that the inventory does not list.
    pub orphans: usize,
    /// Objects the repository declares that are not live (or live with other data), or that
    /// the inventory lists but the cluster does not have.
    pub lost: usize,
    /// Changes to objects and fields of another field manager.
    pub foreign_touched: usize,
    /// One line per trial that did not converge cleanly.
    pub failures: Vec<String>,
}

impl std::fmt::Display for TrialReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trials {}, converged {}, orphans {}, lost {}, foreign objects touched {}",
            self.trials, self.converged, self.orphans, self.lost, self.foreign_touched
        )
    }
}

const NS: &str = "trials";
const FOREIGN_MANAGER: &str = "someone-else";
const CLUSTER: &str = "k";

/// A repository, a cluster and the capstan binary under trial.
pub struct FaultTrials<'a> {
    cluster: &'a TestCluster,
    client: kube::Client,
    capstan: PathBuf,
    _tmp: tempfile_dir::TempDir,
    repo: Repo,
    daemon: GitDaemon,
    cache: PathBuf,
    objects: usize,
    rng: u64,
    /// How long an uninterrupted apply takes: random delays are drawn below it.
    window: Duration,
    desired: BTreeMap<String, String>,
    revision: usize,
    pub report: TrialReport,
}

/// A temporary directory removed on drop (the testbed has no tempfile dependency).
mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new(prefix: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            std::fs::create_dir_all(&dir).expect("create a temporary directory");
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl<'a> FaultTrials<'a> {
    /// Sets up a repository of `objects` ConfigMaps in a namespace of their own, applies it
    /// once (measuring how long an apply takes), and puts objects and fields of another
    /// field manager beside capstan's.
    pub async fn new(cluster: &'a TestCluster, capstan: &Path, objects: usize, seed: u64) -> Self {
        let tmp = tempfile_dir::TempDir::new("capstan-trials");
        let repo = Repo::new(&tmp.0, "fleet");
        git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
        let daemon = GitDaemon::start(&repo.srv);
        let cache = tmp.0.join("cache");
        let mut t = FaultTrials {
            cluster,
            client: cluster.client().await,
            capstan: capstan.to_path_buf(),
            _tmp: tmp,
            repo,
            daemon,
            cache,
            objects,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            window: Duration::from_millis(500),
            desired: BTreeMap::new(),
            revision: 0,
            report: TrialReport::default(),
        };
        t.next_revision();
        let started = Instant::now();
        let out = t
            .apply_cmd(None)
            .output()
            .await
            .expect("capstan apply runs");
        assert!(
            out.status.success(),
            "the first apply failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.window = started.elapsed();
        t.put_foreign().await;
        t
    }

    /// How long one uninterrupted apply took.
    pub fn apply_time(&self) -> Duration {
        self.window
    }

    fn random(&mut self, n: u64) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    /// A new revision: a random range of the ConfigMaps (always `cm-000`, which carries a
    /// field of another manager), each with data naming the revision; committed and pushed.
    fn next_revision(&mut self) {
        self.revision += 1;
        let n = self.objects as u64;
        let first = 1 + self.random(n / 2);
        let count = n / 4 + self.random(n / 2);
        let mut desired = BTreeMap::new();
        desired.insert("cm-000".to_string(), format!("r{}", self.revision));
        for i in first..(first + count).min(n) {
            desired.insert(format!("cm-{i:03}"), format!("r{}", self.revision));
        }
        let mut yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n");
        for (name, v) in &desired {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}\ndata:\n  revision: {v}\n"
            ));
        }
        self.repo.write("clusters/k/objects.yaml", &yaml);
        self.repo.commit(&format!("revision {}", self.revision));
        self.repo.run(&["push", "-q", "-f", "origin", "HEAD:main"]);
        self.desired = desired;
    }

    fn apply_cmd(&self, source: Option<&str>) -> tokio::process::Command {
        let mut cmd = Command::new(&self.capstan);
        cmd.arg("apply");
        match source {
            Some(url) => {
                cmd.args(["--source", url, "--rev", "main", "--cache-dir"])
                    .arg(&self.cache);
            }
            None => {
                cmd.arg(&self.repo.work);
            }
        }
        cmd.args(["--cluster", CLUSTER, "--kubeconfig"])
            .arg(self.cluster.kubeconfig_path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.into()
    }

    fn agent_cmd(&self) -> tokio::process::Command {
        let mut cmd = Command::new(&self.capstan);
        cmd.args(["agent", "--source", &self.daemon.url("fleet")])
            .args(["--branch", "main", "--cluster", CLUSTER])
            .args(["--interval", "1s", "--poll", "1s"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig_path())
            .arg("--cache-dir")
            .arg(&self.cache)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.into()
    }

    fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_millis(self.random(max.as_millis().max(1) as u64))
    }

    /// One trial: a new revision, the fault at a random point, a run to completion, and the
    /// checks. Returns whether the trial converged cleanly.
    pub async fn run(&mut self, fault: Fault) -> bool {
        self.next_revision();
        self.report.trials += 1;
        let trial = self.report.trials;
        let recovered = match fault {
            Fault::KillApply => {
                let mut child = self.apply_cmd(None).spawn().expect("capstan apply runs");
                let d = self.delay(self.window);
                kill_after(&mut child, d).await;
                self.apply_to_end(None).await
            }
            Fault::RestartApiServer => {
                let mut child = self.apply_cmd(None).spawn().expect("capstan apply runs");
                let d = self.delay(self.window);
                tokio::time::sleep(d).await;
                // needs the multi-threaded runtime (as every cluster test uses)
                tokio::task::block_in_place(|| self.cluster.restart_apiserver());
                let _ = child.wait().await;
                self.apply_to_end(None).await
            }
            Fault::StopGitMidFetch => {
                let url = self.daemon.url("fleet");
                let mut child = self
                    .apply_cmd(Some(&url))
                    .spawn()
                    .expect("capstan apply runs");
                let d = self.delay(Duration::from_millis(150));
                tokio::time::sleep(d).await;
                self.daemon.stop_group();
                let _ = child.wait().await;
                self.daemon = GitDaemon::start(&self.repo.srv);
                let url = self.daemon.url("fleet");
                self.apply_to_end(Some(&url)).await
            }
            Fault::KillAgent => {
                // The agent starts on the previous revision's successor; it is killed at a
                // random point, the repository moves on, and a new agent must converge.
                let mut child = self.agent_cmd().spawn().expect("capstan agent runs");
                let d = self.delay(self.window + Duration::from_secs(2));
                kill_after(&mut child, d).await;
                self.next_revision();
                let mut agent = self.agent_cmd().spawn().expect("capstan agent runs");
                let ok = self.wait_converged(Duration::from_secs(120)).await;
                if let Some(pid) = agent.id() {
                    let _ = Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
                let _ = agent.wait().await;
                ok.map(|_| ())
            }
        };
        let verdict = match recovered {
            Err(e) => Err(e),
            Ok(()) => self.check().await,
        };
        match verdict {
            Ok(()) => {
                self.report.converged += 1;
                true
            }
            Err(e) => {
                self.report
                    .failures
                    .push(format!("trial {trial} ({fault:?}): {e}"));
                false
            }
        }
    }

    async fn apply_to_end(&self, source: Option<&str>) -> Result<(), String> {
        // A run right after an API server restart may meet a server that is still settling:
        // the first complete run must succeed within a few attempts.
        let mut last = String::new();
        for _ in 0..3 {
            let out = self
                .apply_cmd(source)
                .output()
                .await
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        Err(format!("capstan apply did not succeed: {last}"))
    }

    async fn wait_converged(&self, within: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let live = self.live().await;
            if live == self.desired && self.inventory().await.len() == live.len() {
                return Ok(());
            }
            if start.elapsed() > within {
                return Err(format!(
                    "not converged after {within:?}: {} live, {} desired",
                    live.len(),
                    self.desired.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The trial's ConfigMaps in the cluster: name -> data.revision.
    async fn live(&self) -> BTreeMap<String, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(_) => return BTreeMap::new(),
        };
        list.items
            .into_iter()
            .filter_map(|cm| {
                let name = cm.metadata.name?;
                if !name.starts_with("cm-") {
                    return None;
                }
                let v = cm
                    .data
                    .and_then(|d| d.get("revision").cloned())
                    .unwrap_or_default();
                Some((name, v))
            })
            .collect()
    }

    /// The names of the trial's ConfigMaps in the root unit's inventory.
    async fn inventory(&self) -> Vec<String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "capstan-system");
        let Ok(Some(cm)) = api
            .get_opt("inventory.kustomization.flux-system.flux-system")
            .await
        else {
            return Vec::new();
        };
        let entries = cm
            .data
            .unwrap_or_default()
            .get("entries")
            .cloned()
            .unwrap_or_default();
        let inventory = capstan_apply::inventory::Inventory::decode(&entries).unwrap_or_default();
        let mut v: Vec<String> = inventory
            .refs()
            .into_iter()
            .filter(|r| r.namespace == NS && r.name.starts_with("cm-"))
            .map(|r| r.name)
            .collect();
        v.sort();
        v
    }

    /// Objects and fields of another field manager: a ConfigMap capstan never declared, and
    /// a label on `cm-000` (which every revision declares).
    async fn put_foreign(&self) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let foreign: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "foreign", "namespace": NS},
            "data": {"owner": FOREIGN_MANAGER},
        }))
        .expect("a ConfigMap");
        let pp = PostParams {
            field_manager: Some(FOREIGN_MANAGER.into()),
            ..Default::default()
        };
        let _ = api.create(&pp, &foreign).await;
        let label = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm-000", "namespace": NS, "labels": {"owner": FOREIGN_MANAGER}},
        });
        api.patch(
            "cm-000",
            &PatchParams::apply(FOREIGN_MANAGER),
            &Patch::Apply(&label),
        )
        .await
        .expect("the foreign label is applied");
    }

    async fn check(&mut self) -> Result<(), String> {
        let live = self.live().await;
        let inventory = self.inventory().await;
        let mut problems = Vec::new();
        let orphans: Vec<_> = live
            .keys()
            .filter(|n| !inventory.contains(n) || !self.desired.contains_key(*n))
            .cloned()
            .collect();
        let lost: Vec<_> = self
            .desired
            .iter()
            .filter(|(n, v)| live.get(*n) != Some(*v))
            .map(|(n, _)| n.clone())
            .chain(inventory.iter().filter(|n| !live.contains_key(*n)).cloned())
            .collect();
        if !orphans.is_empty() {
            self.report.orphans += orphans.len();
            problems.push(format!("orphans {orphans:?}"));
        }
        if !lost.is_empty() {
            self.report.lost += lost.len();
            problems.push(format!("lost {lost:?}"));
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let foreign_ok = matches!(api.get_opt("foreign").await, Ok(Some(cm))
            if cm.data.as_ref().and_then(|d| d.get("owner")).map(String::as_str) == Some(FOREIGN_MANAGER));
        let label_ok = matches!(api.get_opt("cm-000").await, Ok(Some(cm))
            if cm.metadata.labels.as_ref().and_then(|l| l.get("owner")).map(String::as_str) == Some(FOREIGN_MANAGER));
        if !foreign_ok || !label_ok {
            self.report.foreign_touched += 1;
            problems.push(format!(
                "another manager's object intact: {foreign_ok}, its label on cm-000 intact: {label_ok}"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

async fn kill_after(child: &mut Child, delay: Duration) {
    tokio::time::sleep(delay).await;
    let _ = child.kill().await;
}
