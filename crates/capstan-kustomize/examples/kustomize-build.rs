//! `kustomize build` look-alike over the native engine, for conformance runs:
//! `kustomize-build build [--reorder=none|legacy] [--load-restrictor=...] [--enable-helm]
//! [--enable-alpha-plugins] [--enable-exec] [-o FILE] DIR`.

use std::path::Path;
use std::process::ExitCode;

use capstan_kustomize::{build_to_string, BuildOptions, LoadRestrictor, Reorder};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let mut opts = BuildOptions {
        reorder: Reorder::Unspecified,
        ..Default::default()
    };
    let mut dir: Option<String> = None;
    let mut out: Option<String> = None;
    while let Some(a) = args.next() {
        let (flag, val) = match a.split_once('=') {
            Some((f, v)) if a.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |val: Option<String>| val.or_else(|| args.next()).unwrap_or_default();
        match flag.as_str() {
            "build" if dir.is_none() => {}
            "--reorder" => {
                opts.reorder = match value(val).as_str() {
                    "none" => Reorder::None,
                    "legacy" => Reorder::Legacy,
                    other => {
                        eprintln!("Error: unknown --reorder value {other:?}");
                        return ExitCode::from(1);
                    }
                }
            }
            "--load-restrictor" | "--load_restrictor" => {
                opts.load_restrictor = if value(val) == "LoadRestrictionsNone" {
                    LoadRestrictor::None
                } else {
                    LoadRestrictor::RootOnly
                }
            }
            "--enable-helm" => opts.enable_helm = true,
            "--enable-alpha-plugins" => opts.enable_alpha_plugins = true,
            "--enable-exec" => opts.enable_exec = true,
            "--enable-managedby-label" => opts.add_managed_by_label = true,
            "-o" | "--output" => out = Some(value(val)),
            _ if a.starts_with('-') => {
                eprintln!("Error: unknown flag {a}");
                return ExitCode::from(1);
            }
            _ => dir = Some(a),
        }
    }
    let dir = dir.unwrap_or_else(|| ".".into());
    let host = match std::fs::canonicalize(&dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: {dir}: {e}");
            return ExitCode::from(1);
        }
    };
    // The whole disk, so that paths in messages are the real absolute paths.
    let fs_root = std::path::PathBuf::from("/");
    let fs = match capstan_vfs::DiskFs::new(&fs_root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    let inner = fs.inner_path(&host).unwrap_or_else(|| "/".into());
    match build_to_string(&fs, Path::new(&inner), &opts) {
        Ok(s) => {
            if let Some(o) = out {
                if let Err(e) = std::fs::write(&o, s) {
                    eprintln!("Error: {o}: {e}");
                    return ExitCode::from(1);
                }
            } else {
                print!("{s}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
