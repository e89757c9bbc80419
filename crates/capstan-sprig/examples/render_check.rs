//! Renders the top-level templates of each corpus chart (default values, no subchart value
//! scoping, stub `.Files`) and reports execution errors: a smoke test of the engine and
//! functions on real charts. Not a Helm implementation (that is capstan-helm).
//!
//! `cargo run -p capstan-sprig --example render_check -- /work/shared/conformance/helm/charts [chart] [--print]`

use std::path::{Path, PathBuf};

use capstan_gotemplate::{Map, StructObject, TemplateSet, Value};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.components().any(|c| c.as_os_str() == "templates") {
            out.push(p);
        }
    }
}

fn data(chart_dir: &Path, name: &str, tpl: &str) -> Value {
    let values = std::fs::read_to_string(chart_dir.join("values.yaml")).unwrap_or_default();
    let values = capstan_sprig::from_yaml(&values).unwrap_or(Value::Nil);
    let values = if values.is_nil() {
        Value::empty_map()
    } else {
        values
    };
    let chart = std::fs::read_to_string(chart_dir.join("Chart.yaml")).unwrap_or_default();
    let chart = capstan_sprig::from_yaml(&chart).unwrap_or(Value::Nil);
    let g = |k: &str| {
        chart
            .as_map()
            .and_then(|m| m.get(k))
            .unwrap_or(Value::from(""))
    };
    let chart_obj = StructObject::new("*chart.Metadata")
        .with_field("Name", g("name"))
        .with_field("Version", g("version"))
        .with_field("AppVersion", g("appVersion"))
        .with_field("Description", g("description"))
        .with_field("Type", g("type"))
        .with_field("KubeVersion", g("kubeVersion"))
        .with_field("APIVersion", g("apiVersion"))
        .with_field("Home", g("home"))
        .with_field("Icon", g("icon"))
        .with_field("Annotations", g("annotations"))
        .with_field("Keywords", g("keywords"))
        .with_field("Maintainers", g("maintainers"))
        .with_field("Sources", g("sources"))
        .with_field("Dependencies", g("dependencies"))
        .with_field("Deprecated", Value::Bool(false))
        .into_value();
    let mut rel = Map::new();
    rel.insert("Name".into(), Value::from("release-name"));
    rel.insert("Namespace".into(), Value::from("default"));
    rel.insert("IsInstall".into(), Value::Bool(true));
    rel.insert("IsUpgrade".into(), Value::Bool(false));
    rel.insert("Revision".into(), Value::Int(1));
    rel.insert("Service".into(), Value::from("Helm"));
    let kube = StructObject::new("chartutil.KubeVersion")
        .with_field("Version", Value::from("v1.36.0"))
        .with_field("Major", Value::from("1"))
        .with_field("Minor", Value::from("36"))
        .with_field("GitVersion", Value::from("v1.36.0"))
        .with_stringer("v1.36.0")
        .into_value();
    let apis = StructObject::new("chartutil.VersionSet")
        .with_method("Has", |a| {
            let s = a.first().and_then(|v| v.as_str()).unwrap_or("");
            Ok(Value::Bool(matches!(
                s,
                "v1" | "apps/v1"
                    | "batch/v1"
                    | "policy/v1"
                    | "networking.k8s.io/v1"
                    | "rbac.authorization.k8s.io/v1"
                    | "autoscaling/v2"
            )))
        })
        .into_value();
    let caps = StructObject::new("*chartutil.Capabilities")
        .with_field("KubeVersion", kube)
        .with_field("APIVersions", apis)
        .into_value();
    let files = StructObject::new("chart.Files")
        .with_method("Get", |_| Ok(Value::from("")))
        .with_method("Glob", |_| {
            Ok(StructObject::new("chart.Files")
                .with_method("AsConfig", |_| Ok(Value::from("")))
                .with_method("AsSecrets", |_| Ok(Value::from("")))
                .into_value())
        })
        .with_method("Lines", |_| Ok(Value::list(vec![])))
        .into_value();
    let mut t = Map::new();
    t.insert("Name".into(), Value::from(tpl));
    t.insert("BasePath".into(), Value::from(format!("{name}/templates")));
    let mut top = Map::new();
    top.insert("Values".into(), values);
    top.insert("Chart".into(), chart_obj);
    top.insert("Release".into(), Value::map(rel));
    top.insert("Capabilities".into(), caps);
    top.insert("Files".into(), files);
    top.insert("Template".into(), Value::map(t));
    Value::map(top)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "/work/shared/conformance/helm/charts".into()),
    );
    let only = args.get(2).filter(|a| !a.starts_with("--")).cloned();
    let print = args.iter().any(|a| a == "--print");
    let funcs = capstan_sprig::funcs(Default::default());
    let mut charts: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    charts.sort();
    let (mut ok, mut failed) = (0, 0);
    for chart in charts {
        let cname = chart.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| *o != cname) {
            continue;
        }
        let mut files = Vec::new();
        collect(&chart, &mut files);
        let mut set = TemplateSet::new(funcs.clone());
        let mut names = Vec::new();
        for f in &files {
            let rel = f.strip_prefix(&root).unwrap().display().to_string();
            let src = std::fs::read_to_string(f).unwrap_or_default();
            if let Err(e) = set.add(&rel, &src) {
                println!("PARSE {e}");
            }
            let top_level = f.parent() == Some(&chart.join("templates"));
            let base = f.file_name().unwrap().to_string_lossy().to_string();
            if top_level && !base.starts_with('_') && !base.ends_with(".txt") {
                names.push(rel);
            }
        }
        let start = std::time::Instant::now();
        for n in names {
            let d = data(&chart, &cname, &n);
            match set.execute(&n, &d) {
                Ok(out) => {
                    ok += 1;
                    if print {
                        let out = out.replace("<no value>", "");
                        if !out.trim().is_empty() {
                            println!("---\n# Source: {n}\n{}", out.trim_start_matches('\n'));
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("EXEC {cname}: {e}");
                }
            }
        }
        if !print {
            println!("{cname}: {:?}", start.elapsed());
        }
    }
    println!("{ok} templates rendered, {failed} failed");
}
