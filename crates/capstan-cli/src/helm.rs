//! `capstan helm template`: Helm's `template`, natively.

use std::path::{Path, PathBuf};

use capstan_helm::{template, TemplateOptions};
use clap::Subcommand;

use crate::EXIT_FAILURE;

#[derive(Subcommand)]
pub enum HelmCommand {
    /// Render a chart as `helm template [NAME] CHART` does.
    Template {
        /// `[NAME] CHART`: the release name (default `release-name`) and the chart
        /// directory or .tgz.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Values files, in order.
        #[arg(short = 'f', long = "values")]
        values: Vec<PathBuf>,
        #[arg(long)]
        set: Vec<String>,
        #[arg(long = "set-string")]
        set_string: Vec<String>,
        #[arg(long = "set-json")]
        set_json: Vec<String>,
        #[arg(long = "set-literal")]
        set_literal: Vec<String>,
        /// `key=path`: the value is the file's content.
        #[arg(long = "set-file")]
        set_file: Vec<String>,
        /// Kubernetes version for .Capabilities (default v1.36.0, as Helm 4.2).
        #[arg(long = "kube-version")]
        kube_version: Option<String>,
        /// Extra API versions for .Capabilities.APIVersions.
        #[arg(short = 'a', long = "api-versions", value_delimiter = ',')]
        api_versions: Vec<String>,
        #[arg(long = "include-crds")]
        include_crds: bool,
        #[arg(long = "skip-tests")]
        skip_tests: bool,
        #[arg(long = "no-hooks")]
        no_hooks: bool,
        #[arg(long = "skip-schema-validation")]
        skip_schema_validation: bool,
        #[arg(long = "is-upgrade")]
        is_upgrade: bool,
    },
}

pub fn run(cmd: HelmCommand) -> Result<u8, String> {
    let HelmCommand::Template {
        args,
        namespace,
        values,
        set,
        set_string,
        set_json,
        set_literal,
        set_file,
        kube_version,
        api_versions,
        include_crds,
        skip_tests,
        no_hooks,
        skip_schema_validation,
        is_upgrade,
    } = cmd;
    let (release_name, chart) = match args.as_slice() {
        [chart] => ("release-name".to_string(), chart.clone()),
        [name, chart] => (name.clone(), chart.clone()),
        _ => return Err("usage: capstan helm template [NAME] CHART".into()),
    };
    let mut values_yaml = Vec::new();
    for f in &values {
        let text = std::fs::read_to_string(f).map_err(|e| format!("open {}: {e}", f.display()))?;
        // Helm names the file that does not parse (`failed to parse FILE: ...`).
        capstan_helm::yaml::parse_values(&text)
            .map_err(|e| format!("failed to parse {}: {e}", f.display()))?;
        values_yaml.push(text);
    }
    let opts = TemplateOptions {
        release_name,
        namespace,
        values_yaml,
        set,
        set_string,
        set_json,
        set_literal,
        set_file,
        kube_version,
        api_versions,
        include_crds,
        skip_tests,
        no_hooks,
        skip_schema_validation,
        is_upgrade,
    };
    let abs = std::path::absolute(Path::new(&chart)).map_err(|e| format!("{chart}: {e}"))?;
    let fs = capstan_vfs::DiskFs::new("/").map_err(|e| e.to_string())?;
    match template(&fs, &abs, &opts) {
        Ok(r) => {
            for w in r.warnings.iter().filter(|w| w.starts_with("warning:")) {
                eprintln!("{w}");
            }
            print!("{}", r.output);
            Ok(0)
        }
        Err(e) => {
            eprintln!("Error: {e}");
            Ok(EXIT_FAILURE)
        }
    }
}
