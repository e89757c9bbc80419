//! `capstan build`: render a cluster's units without touching any cluster.

use capstan_engine::to_yaml;
use capstan_units::UnitOutcome;
use clap::Args;

use crate::EXIT_FAILURE;

#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub target: crate::Target,
    /// Print only this unit (NAME or NAMESPACE/NAME).
    #[arg(long, short = 'u')]
    pub unit: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', default_value = "yaml", value_parser = ["yaml", "json"])]
    pub output: String,
    /// When a unit fails, still print the units that rendered (the exit code stays 2).
    /// Without it a failed build prints nothing on stdout.
    #[arg(long)]
    pub keep_going: bool,
    #[command(flatten)]
    pub argocd: crate::argocd::AppsArgs,
    /// A SOPS key file (age identities or an armored OpenPGP key; repeatable): units with
    /// `spec.decryption.provider: sops` (and an undeclared root) are decrypted as Flux
    /// does. `SOPS_AGE_KEY_FILE` and `SOPS_AGE_KEY` are read too.
    #[arg(long = "decryption-key")]
    pub decryption_key: Vec<std::path::PathBuf>,
    /// Print decrypted values instead of `***`.
    #[arg(long = "show-secrets")]
    pub show_secrets: bool,
}

pub fn run(args: BuildArgs) -> Result<u8, String> {
    if args.argocd.apps {
        return crate::argocd::run(&args.target, &args.argocd, &args.output, args.keep_going);
    }
    if args.target.argo.argocd {
        let (root, cluster_path) = crate::runtime()?.block_on(args.target.open_root())?;
        let opts = crate::argocd::options(&args.argocd)?;
        if opts.this_repo.is_empty() {
            eprintln!("warning: no --this-repo: every source is taken to be another repository");
        }
        let argo = args
            .target
            .argo
            .root(&cluster_path, opts)
            .expect("--argocd is set");
        let render = std::thread::Builder::new()
            .stack_size(capstan_engine::RENDER_STACK_SIZE)
            .spawn(move || -> Result<capstan_engine::ClusterRender, String> {
                let fs = capstan_vfs::DiskFs::new(&root)
                    .map_err(|e| format!("{}: {e}", root.display()))?;
                let flux = argo
                    .flux_path
                    .as_ref()
                    .map(|p| capstan_units::LoadOptions::new(p.clone()));
                Ok(capstan_engine::argo::render_argo_cluster(
                    &fs,
                    &capstan_engine::NativeRenderer,
                    &capstan_units::NoCluster,
                    flux.as_ref(),
                    &argo,
                    false,
                ))
            })
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "rendering the cluster panicked (a bug in capstan)".to_string())??;
        return print(&args, render);
    }
    let keys = crate::sops::load_keys(&args.decryption_key)?;
    let decryptor = (!keys.is_empty()).then(|| {
        capstan_units::SharedDecryptor(std::sync::Arc::new(
            capstan_engine::decryption::SopsDecryptor::new(keys, args.show_secrets),
        ))
    });
    // Charts from Helm/OCI repositories and other GitRepository/OCIRepository sources are
    // fetched into the cache, as `apply` and the agent fetch them.
    let how = capstan_engine::round::Detached {
        cache_dir: args.target.cache_dir(),
        mirrors: args.target.mirrors()?,
        decryptor,
        offline: args.target.offline,
        secrets: args.target.local_secrets()?,
        allow_insecure_http: args.target.source.allow_insecure_http,
    };
    let render = crate::runtime()?.block_on(async {
        let (root, cluster_path) = args.target.open_root().await?;
        capstan_engine::round::render_detached_with(root, cluster_path, &how).await
    })?;
    print(&args, render)
}

/// Print a rendered cluster (every unit in plan order, or `--unit`).
fn print(args: &BuildArgs, render: capstan_engine::ClusterRender) -> Result<u8, String> {
    let mut failed = false;
    for e in &render.units.errors {
        eprintln!("error: {e}");
        failed = true;
    }
    for w in &render.units.warnings {
        eprintln!("warning: {w}");
    }
    if let Err(e) = &render.plan {
        eprintln!("error: {e}");
        failed = true;
    }
    let order: Vec<&capstan_graph::UnitId> = match &render.plan {
        Ok(p) => p.order.iter().collect(),
        Err(_) => render.units.units.iter().map(UnitOutcome::id).collect(),
    };
    let mut found = args.unit.is_none();
    let mut out = String::new();
    let mut json_units = Vec::new();
    for id in order {
        if let Some(want) = &args.unit {
            if want != &id.name && want != &format!("{}/{}", id.namespace, id.name) {
                continue;
            }
            found = true;
        }
        match render.units.get(id) {
            Some(UnitOutcome::Rendered(r)) => {
                // capstan.io/image-policy: which tag each policy elected (no commit).
                for i in &r.images {
                    eprintln!("{id}: image {i}");
                }
                // Planned each on its own: a bad `dependsOn` or a cycle (or a dependency
                // that failed) is this unit's error; it still rendered.
                if let Some(why) = render.blocked.get(id) {
                    eprintln!("error: {id}: {why}");
                    failed = true;
                }
                if args.output == "json" {
                    json_units
                        .push(serde_json::json!({"unit": id.to_string(), "objects": r.objects}));
                } else if !r.objects.is_empty() {
                    out.push_str(&format!("# Unit: {id}\n"));
                    out.push_str(&to_yaml(&r.objects));
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str("---\n");
                }
            }
            Some(UnitOutcome::Failed { error, .. }) => {
                eprintln!("error: {error}");
                failed = true;
            }
            None => {}
        }
    }
    if let Some(u) = &args.unit {
        if !found {
            let names: Vec<String> = render
                .units
                .units
                .iter()
                .map(|u| u.id().name.clone())
                .collect();
            let mut msg = format!("no unit named {u}");
            if let Some(m) = capstan_units::did_you_mean(u, names.iter().map(String::as_str)) {
                msg.push_str(&format!("\n  = hint: did you mean {m}?"));
            }
            return Err(msg);
        }
    }
    if failed && !args.keep_going {
        eprintln!(
            "nothing printed: the build failed (--keep-going prints the units that rendered)"
        );
        return Ok(EXIT_FAILURE);
    }
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_units).unwrap_or_default()
        );
    } else {
        print!("{}", out.strip_suffix("---\n").unwrap_or(&out));
    }
    Ok(if failed { EXIT_FAILURE } else { 0 })
}
