//! `capstan-helm-template [NAME] CHART [flags]`: `helm template` on capstan's engine.

use capstan_helm::{template, TemplateOptions};
use capstan_vfs::DiskFs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage() -> ! {
    eprintln!(
        "usage: capstan-helm-template [NAME] CHART [-n NS] [-f values.yaml]... [--set k=v]... [--set-string k=v]... [--set-json k=json]... [--set-literal k=v]... [--set-file k=path]... \
         [--kube-version V] [--api-versions X]... [--include-crds] [--skip-tests] [--no-hooks] [--skip-schema-validation]"
    );
    std::process::exit(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = TemplateOptions::default();
    let mut positional = Vec::new();
    let mut values_files: Vec<String> = Vec::new();
    let mut i = 0;
    let take = |i: &mut usize, name: &str| -> String {
        if let Some((_, v)) = args[*i].split_once('=') {
            if args[*i].starts_with("--") && args[*i][2..].starts_with(name) {
                return v.to_string();
            }
        }
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| usage())
    };
    while i < args.len() {
        let a = args[i].clone();
        let key = a
            .split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or(a.clone());
        match key.as_str() {
            "-n" | "--namespace" => opts.namespace = take(&mut i, "namespace"),
            "-f" | "--values" => values_files.push(take(&mut i, "values")),
            "--set" => opts.set.push(take(&mut i, "set")),
            "--set-string" => opts.set_string.push(take(&mut i, "set-string")),
            "--set-json" => opts.set_json.push(take(&mut i, "set-json")),
            "--set-literal" => opts.set_literal.push(take(&mut i, "set-literal")),
            "--set-file" => {
                for entry in take(&mut i, "set-file").split(',') {
                    let Some((k, path)) = entry.split_once('=') else {
                        eprintln!(
                            "Error: failed parsing --set-file data: key {entry:?} has no value"
                        );
                        return ExitCode::from(1);
                    };
                    match std::fs::read_to_string(path) {
                        Ok(c) => opts.set_file.push(format!("{k}={c}")),
                        Err(e) => {
                            eprintln!("Error: failed parsing --set-file data: open {path}: {e}");
                            return ExitCode::from(1);
                        }
                    }
                }
            }
            "--kube-version" => opts.kube_version = Some(take(&mut i, "kube-version")),
            "-a" | "--api-versions" => {
                let v = take(&mut i, "api-versions");
                opts.api_versions
                    .extend(v.split(',').map(|s| s.to_string()));
            }
            "--include-crds" => opts.include_crds = true,
            "--skip-tests" => opts.skip_tests = true,
            "--no-hooks" => opts.no_hooks = true,
            "--skip-schema-validation" => opts.skip_schema_validation = true,
            "--is-upgrade" => opts.is_upgrade = true,
            "-h" | "--help" => usage(),
            _ if a.starts_with('-') && a.len() > 1 => {
                eprintln!("Error: unknown flag: {a}");
                return ExitCode::from(1);
            }
            _ => positional.push(a),
        }
        i += 1;
    }
    let chart = match positional.len() {
        1 => positional[0].clone(),
        2 => {
            opts.release_name = positional[0].clone();
            positional[1].clone()
        }
        _ => usage(),
    };
    for f in values_files {
        match std::fs::read_to_string(&f) {
            Ok(t) => opts.values_yaml.push(t),
            Err(e) => {
                eprintln!("Error: open {f}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let abs: PathBuf =
        std::path::absolute(Path::new(&chart)).unwrap_or_else(|_| PathBuf::from(&chart));
    let fs = match DiskFs::new("/") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    match template(&fs, &abs, &opts) {
        Ok(r) => {
            for w in &r.warnings {
                if w.starts_with("warning:") {
                    eprintln!("{w}");
                }
            }
            print!("{}", r.output);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
