//! The plan walk with a fake driver: order, concurrency and blocking, no cluster.

use std::sync::Mutex;
use std::time::Duration;

use capstan_engine::{execute, plan_units, ClusterRender, ExecuteOptions, UnitDriver, UnitStatus};
use capstan_graph::UnitId;
use capstan_units::{load, LoadOptions, NoCluster, RenderedUnit, Renderer};
use capstan_vfs::{FileSystem, MemFs};
use serde_json::Value;

/// Renders each directory's `objects.yaml` as is.
struct Plain;
impl Renderer for Plain {
    fn build(&self, fs: &dyn FileSystem, dir: &std::path::Path) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for name in fs.read_dir(dir).map_err(|e| e.to_string())? {
            let p = dir.join(&name);
            if !name.ends_with(".yaml") || fs.is_dir(&p) {
                continue;
            }
            let text = fs.read_to_string(&p).map_err(|e| e.to_string())?;
            if text.contains("BROKEN") {
                return Err(format!("{}: broken", p.display()));
            }
            for d in capstan_yaml::parse_documents(&text, "x").map_err(|e| e.to_string())? {
                out.push(capstan_yaml::to_json(&d));
            }
        }
        Ok(out)
    }
}

struct Recorder {
    log: Mutex<Vec<String>>,
    fail: &'static str,
}

impl UnitDriver for Recorder {
    type Output = ();
    async fn run(&self, unit: &RenderedUnit) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", unit.unit.id.name));
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.log
            .lock()
            .unwrap()
            .push(format!("end {}", unit.unit.id.name));
        if unit.unit.id.name == self.fail {
            return Err("boom".into());
        }
        Ok(())
    }
}

fn ks(name: &str, path: &str, deps: &[&str]) -> String {
    let mut s = format!("---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  path: {path}\n  prune: true\n");
    if !deps.is_empty() {
        s.push_str("  dependsOn:\n");
        for d in deps {
            s.push_str(&format!("  - name: {d}\n"));
        }
    }
    s
}

fn render(fs: &MemFs) -> ClusterRender {
    let units = load(fs, &Plain, &NoCluster, &LoadOptions::new("clusters/c"));
    let (plan, blocked) = plan_units(fs, &units);
    ClusterRender {
        units,
        plan,
        blocked,
    }
}

fn repo() -> MemFs {
    let mut ks_all = String::new();
    ks_all += &ks("crds", "./crds", &[]);
    ks_all += &ks("crs", "./crs", &[]);
    ks_all += &ks("apps", "./apps", &["crs"]);
    ks_all += &ks("other", "./other", &[]);
    MemFs::new()
        .with("/clusters/c/ks.yaml", ks_all)
        .with("/crds/crd.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ws.example.com\nspec:\n  group: example.com\n  names:\n    kind: W\n  scope: Namespaced\n")
        .with("/crs/w.yaml", "apiVersion: example.com/v1\nkind: W\nmetadata:\n  name: w\n  namespace: default\n")
        .with("/apps/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n")
        .with("/other/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: o\n  namespace: default\n")
}

fn pos(log: &[String], what: &str) -> usize {
    log.iter()
        .position(|l| l == what)
        .unwrap_or_else(|| panic!("{what} not in {log:?}"))
}

#[tokio::test]
async fn dependencies_finish_before_dependents_start() {
    let r = render(&repo());
    let d = Recorder {
        log: Mutex::new(Vec::new()),
        fail: "",
    };
    let ex = execute(
        &d,
        &r,
        &ExecuteOptions {
            concurrency: 4,
            ignore_dependencies: false,
        },
    )
    .await
    .unwrap();
    assert!(ex.all_ok());
    let log = d.log.lock().unwrap().clone();
    assert!(
        pos(&log, "end crds") < pos(&log, "start crs"),
        "implicit CRD edge: {log:?}"
    );
    assert!(
        pos(&log, "end crs") < pos(&log, "start apps"),
        "dependsOn: {log:?}"
    );
}

#[tokio::test]
async fn a_failed_unit_blocks_only_its_dependents() {
    let r = render(&repo());
    let d = Recorder {
        log: Mutex::new(Vec::new()),
        fail: "crs",
    };
    let ex = execute(&d, &r, &ExecuteOptions::default()).await.unwrap();
    let st = |n: &str| ex.status[&UnitId::new("Kustomization", "flux-system", n)].clone();
    assert_eq!(st("crs"), UnitStatus::Failed("boom".into()));
    assert!(
        matches!(st("apps"), UnitStatus::Blocked(ref m) if m.contains("crs")),
        "{:?}",
        st("apps")
    );
    assert_eq!(st("other"), UnitStatus::Done(()));
    assert!(!d.log.lock().unwrap().iter().any(|l| l == "start apps"));
}

#[tokio::test]
async fn a_unit_that_fails_to_render_is_never_run_and_blocks_dependents() {
    let mut fs = repo();
    fs.add("/crs/w.yaml", "BROKEN");
    let r = render(&fs);
    assert!(r.has_errors());
    let d = Recorder {
        log: Mutex::new(Vec::new()),
        fail: "",
    };
    let ex = execute(&d, &r, &ExecuteOptions::default()).await.unwrap();
    let st = |n: &str| ex.status[&UnitId::new("Kustomization", "flux-system", n)].clone();
    assert!(matches!(st("crs"), UnitStatus::Blocked(ref m) if m.contains("failed to render")));
    assert!(matches!(st("apps"), UnitStatus::Blocked(_)));
    assert_eq!(st("other"), UnitStatus::Done(()));
    let log = d.log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|l| l == "start crs" || l == "start apps"),
        "{log:?}"
    );
}

#[tokio::test]
async fn cycles_stop_everything() {
    let mut fs = repo();
    fs.add(
        "/clusters/c/ks.yaml",
        ks("a", "./apps", &["b"]) + &ks("b", "./other", &["a"]),
    );
    let r = render(&fs);
    let d = Recorder {
        log: Mutex::new(Vec::new()),
        fail: "",
    };
    let err = execute(&d, &r, &ExecuteOptions::default())
        .await
        .unwrap_err();
    assert!(err.starts_with("dependency cycle: "), "{err}");
    assert!(d.log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn suspended_units_are_skipped() {
    let mut fs = repo();
    fs.add(
        "/clusters/c/ks.yaml",
        ks("other", "./other", &[]).replace("prune: true", "prune: true\n  suspend: true"),
    );
    let r = render(&fs);
    let d = Recorder {
        log: Mutex::new(Vec::new()),
        fail: "",
    };
    let ex = execute(&d, &r, &ExecuteOptions::default()).await.unwrap();
    assert_eq!(
        ex.status[&UnitId::new("Kustomization", "flux-system", "other")],
        UnitStatus::Suspended
    );
}
