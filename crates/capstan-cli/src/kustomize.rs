//! `capstan kustomize build`: kustomize's `build`, natively, with kustomize's flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use capstan_kustomize::{BuildOptions, LoadRestrictor, Reorder};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KustomizeCommand {
    /// Build a kustomization directory, as `kustomize build DIR` does.
    Build {
        /// The kustomization directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Output order: `legacy` (kustomize's kind order) or `none` (load order).
        #[arg(long, value_parser = ["legacy", "none"])]
        reorder: Option<String>,
        /// `LoadRestrictionsRootOnly` (default) or `LoadRestrictionsNone`.
        #[arg(long = "load-restrictor", value_parser = ["LoadRestrictionsRootOnly", "LoadRestrictionsNone"], default_value = "LoadRestrictionsRootOnly")]
        load_restrictor: String,
        /// Allow helmCharts (rendered natively, no helm binary).
        #[arg(long = "enable-helm")]
        enable_helm: bool,
        /// Allow KRM-function plugins.
        #[arg(long = "enable-alpha-plugins")]
        enable_alpha_plugins: bool,
        /// Allow exec plugins.
        #[arg(long = "enable-exec")]
        enable_exec: bool,
        /// Add the app.kubernetes.io/managed-by label.
        #[arg(long = "enable-managedby-label")]
        enable_managedby_label: bool,
        /// Write the output to this file instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

pub fn run(cmd: KustomizeCommand) -> Result<u8, String> {
    match cmd {
        KustomizeCommand::Build {
            dir,
            reorder,
            load_restrictor,
            enable_helm,
            enable_alpha_plugins,
            enable_exec,
            enable_managedby_label,
            output,
        } => {
            let opts = BuildOptions {
                reorder: match reorder.as_deref() {
                    Some("none") => Reorder::None,
                    Some(_) => Reorder::Legacy,
                    None => Reorder::Unspecified,
                },
                load_restrictor: if load_restrictor == "LoadRestrictionsNone" {
                    LoadRestrictor::None
                } else {
                    LoadRestrictor::RootOnly
                },
                enable_helm,
                enable_alpha_plugins,
                enable_exec,
                add_managed_by_label: enable_managedby_label,
            };
            // The file system is rooted at `/` so that LoadRestrictionsNone can reach
            // files outside the kustomization; the engine enforces the restrictor.
            let abs = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let fs = capstan_vfs::DiskFs::new("/").map_err(|e| e.to_string())?;
            let text = capstan_kustomize::build_to_string(&fs, Path::new(&abs), &opts)
                .map_err(|e| e.to_string())?;
            match output {
                Some(p) => std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?,
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| e.to_string())?,
            }
            Ok(0)
        }
    }
}
