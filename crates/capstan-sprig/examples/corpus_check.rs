//! Parses every template of the Helm conformance corpus (`charts/*/templates/**` and the
//! same under vendored subcharts) with the full function map and reports parse errors and
//! unknown functions.
//!
//! `cargo run -p capstan-sprig --example corpus_check -- /work/shared/conformance/helm/charts`

use std::path::{Path, PathBuf};

use capstan_gotemplate::TemplateSet;

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

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/shared/conformance/helm/charts".into());
    let mut files = Vec::new();
    collect(Path::new(&root), &mut files);
    let funcs = capstan_sprig::funcs(Default::default());
    let mut errors = 0;
    let mut unknown = std::collections::BTreeMap::<String, usize>::new();
    let start = std::time::Instant::now();
    for f in &files {
        let Ok(src) = std::fs::read_to_string(f) else {
            continue;
        };
        let mut set = TemplateSet::new(funcs.clone());
        let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        if let Err(e) = set.add(&name, &src) {
            errors += 1;
            let msg = e.to_string();
            if let Some(i) = msg.find("function \"") {
                let fname = msg[i + 10..].split('"').next().unwrap_or("").to_string();
                *unknown.entry(fname).or_default() += 1;
            }
            println!("PARSE ERROR {msg}");
        }
    }
    println!(
        "{} files parsed in {:?}, {} parse errors, unknown functions: {:?}",
        files.len(),
        start.elapsed(),
        errors,
        unknown
    );
}
