//! Fixture charts under `tests/charts/`, rendered through capstan-gotemplate and
//! capstan-sprig alone, compared with what Helm v4.2.3 printed for them (`tests/golden/`,
//! made with the Helm SDK oracle; see `tests/golden/README.md`).
//!
//! The harness is a tiny `helm template`: every file of `templates/` is parsed into one set,
//! `.Values` comes from `values.yaml`, non-partial templates are executed, `<no value>` is
//! removed, documents are printed `---\n# Source: NAME\nCONTENT` (Secrets before
//! ConfigMaps, then by file name). Goldens' masks (`<chart>.mask`: lines that differ between
//! renders) match any line with the same key, or the same indentation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use capstan_gotemplate::{Error, ErrorKind, TemplateSet, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Helm 4's multi-line rendering of a template error (what its `.err`/`.errkey` hold).
fn helm_error(e: &Error) -> String {
    let msg = &e.message;
    for f in ["required", "fail"] {
        if let Some(m) = msg.strip_prefix(&format!("error calling {f}: ")) {
            return format!(
                "execution error at ({}:{}:{}): {m}",
                e.template, e.line, e.col
            );
        }
    }
    match e.kind {
        ErrorKind::Exec => {
            let body = match msg.split_once(": ") {
                Some((call, rest)) if call.starts_with("error calling ") => {
                    format!("{call}:\n{rest}")
                }
                _ => msg.clone(),
            };
            format!(
                "{}:{}:{}\n  executing \"{}\" at <{}>:\n    {}\n{e}",
                e.template, e.line, e.col, e.executing, e.context, body
            )
        }
        _ => e.to_string(),
    }
}

fn render(chart: &Path) -> Result<String, String> {
    let name = chart.file_name().unwrap().to_string_lossy().to_string();
    let values_src = std::fs::read_to_string(chart.join("values.yaml")).unwrap_or_default();
    let values = capstan_sprig::from_yaml(&values_src).unwrap();
    // Helm's coalescing deletes keys whose value is null
    fn strip_nulls(v: &Value) {
        if let Value::Map(m) = v {
            m.write().retain(|_, e| !matches!(e, Value::Nil));
            for e in m.read().values() {
                strip_nulls(e);
            }
        }
    }
    strip_nulls(&values);
    let values = if matches!(values, Value::Nil) {
        Value::from_json(&serde_json::json!({}))
    } else {
        values
    };
    let mut data = capstan_gotemplate::Map::new();
    data.insert("Values".into(), values);
    data.insert(
        "Release".into(),
        Value::from_json(&serde_json::json!({"Name": "x", "Namespace": "default"})),
    );
    data.insert(
        "Chart".into(),
        Value::from_json(&serde_json::json!({"Name": name})),
    );
    let data = Value::map(data);

    let mut paths = Vec::new();
    files(&chart.join("templates"), &mut paths);
    paths.sort();
    let mut set = TemplateSet::new_shared(capstan_sprig::shared_funcs());
    let mut names = Vec::new();
    for p in &paths {
        let rel = p.strip_prefix(chart).unwrap().to_string_lossy().to_string();
        let tname = format!("{name}/{rel}");
        let src = std::fs::read_to_string(p).unwrap();
        set.add(&tname, &src).map_err(|e| helm_error(&e))?;
        let base = p.file_name().unwrap().to_string_lossy().to_string();
        if !base.starts_with('_') && !base.ends_with(".txt") {
            names.push(tname);
        }
    }
    let mut docs: Vec<(u8, String, String)> = Vec::new();
    for n in &names {
        let out = set.execute(n, &data).map_err(|e| helm_error(&e))?;
        let out = out.replace("<no value>", "");
        for doc in out.split("\n---") {
            // Helm 4 keeps a document's final newline (a blank line before the next `---`)
            let keep_nl = doc.trim_end_matches([' ', '\t']).ends_with('\n');
            let doc = doc.trim();
            if doc.is_empty() {
                continue;
            }
            let doc = if keep_nl {
                format!("{doc}\n")
            } else {
                doc.to_string()
            };
            let order = if doc.contains("kind: Secret") { 0 } else { 1 };
            docs.push((order, n.clone(), doc));
        }
    }
    docs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut s = String::new();
    for (_, n, d) in docs {
        s.push_str(&format!("---\n# Source: {n}\n{d}\n"));
    }
    Ok(s)
}

fn compare(chart: &str, got: &str, want: &str, mask: &BTreeSet<usize>) -> Result<(), String> {
    let g: Vec<&str> = got.trim_end().lines().collect();
    let w: Vec<&str> = want.trim_end().lines().collect();
    let mut diffs = Vec::new();
    for (i, wl) in w.iter().enumerate() {
        let Some(gl) = g.get(i) else {
            return Err(format!("{chart}: output ends at line {}", i + 1));
        };
        let ok = if mask.contains(&(i + 1)) {
            match wl.find(": ") {
                Some(p) => gl.starts_with(&wl[..p + 2]),
                None => {
                    let ind = |s: &str| s.len() - s.trim_start_matches([' ', '-']).len();
                    ind(gl) == ind(wl)
                }
            }
        } else {
            gl == wl
        };
        if !ok {
            diffs.push(format!("line {}\n  want: {wl}\n  got:  {gl}", i + 1));
            if diffs.len() >= 20 {
                break;
            }
        }
    }
    if !diffs.is_empty() {
        return Err(format!("{chart}: {}", diffs.join("\n")));
    }
    if g.len() != w.len() {
        return Err(format!(
            "{chart}: {} lines, want {}; extra: {:?}",
            g.len(),
            w.len(),
            g.get(w.len())
        ));
    }
    Ok(())
}

/// Fixture charts whose differences are known and not fixed yet.
/// fromyaml-err: the wording and line numbers of YAML parse errors (capstan-yaml's parser
/// reports positions differently from go-yaml).
const KNOWN_GAPS: &[&str] = &["fromyaml-err"];

#[test]
fn fixture_charts_match_helm() {
    let golden = root().join("golden");
    let mut charts: Vec<PathBuf> = std::fs::read_dir(root().join("charts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    charts.sort();
    let mut failures = Vec::new();
    let mut passed = 0;
    for chart in &charts {
        let name = chart.file_name().unwrap().to_string_lossy().to_string();
        let result = render(chart);
        let errkey = golden.join(format!("{name}.errkey"));
        let outcome = if errkey.exists() {
            let keys = std::fs::read_to_string(&errkey).unwrap();
            match result {
                Ok(_) => Err(format!("{name}: rendered, Helm fails with {keys}")),
                Err(e) => keys
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .find(|l| !e.contains(l))
                    .map_or(Ok(()), |l| {
                        Err(format!("{name}: error lacks {l:?}; got:\n{e}"))
                    }),
            }
        } else {
            let want = std::fs::read_to_string(golden.join(format!("{name}.yaml")))
                .unwrap_or_else(|_| panic!("no golden for {name}"));
            let mask: BTreeSet<usize> =
                std::fs::read_to_string(golden.join(format!("{name}.mask")))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
            match result {
                Ok(got) => compare(&name, &got, &want, &mask),
                Err(e) => Err(format!("{name}: error {e}")),
            }
        };
        match outcome {
            Ok(()) => passed += 1,
            Err(e) => failures.push(e),
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}\n");
    }
    eprintln!("{passed} passed, {} failed", failures.len());
    // Known differences still to fix: reported above, not failing the suite.
    let unexpected: Vec<&String> = failures
        .iter()
        .filter(|f| !KNOWN_GAPS.iter().any(|k| f.starts_with(&format!("{k}:"))))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} fixture charts differ",
        unexpected.len()
    );
}
