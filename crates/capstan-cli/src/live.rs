//! `capstan diff` and `capstan apply`: a thin driver of the round the agent runs
//! ([`capstan_engine::round`]): everything is due (`spec.suspend` in the cluster wins
//! unless `--ignore-suspend`), outcomes go to the terminal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_apply::{Action, Applier, ApplyOptions, PlanOp};
use capstan_engine::round::{
    honour_suspend, ignore_suspend, observe, Blocked, Everything, Mode, Outcomes, Ran, Round,
    RoundResult, RoundSettings, RunError, Targets, UnitState,
};
use capstan_engine::{ClusterRender, Panicked};
use capstan_units::{RenderedUnit, Unit};
use clap::Args;

use crate::{EXIT_DRIFT, EXIT_FAILURE};

#[derive(Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub target: crate::Target,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// How many units run at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Run units suspended in the cluster (`spec.suspend: true`) too.
    #[arg(long)]
    pub ignore_suspend: bool,
    /// With --argocd: a repoURL that is this repository (a URL or its path `org/repo`);
    /// such sources are read from the tree being applied. Repeatable.
    #[arg(long = "this-repo", value_name = "URL", requires = "argocd")]
    pub this_repo: Vec<String>,
    /// A SOPS key file (age identities or an armored OpenPGP key; repeatable), used
    /// besides the decryption Secret a unit's `spec.decryption.secretRef` names in the
    /// cluster. `SOPS_AGE_KEY_FILE` and `SOPS_AGE_KEY` are read too. `diff` never prints
    /// decrypted values: Secret values are masked.
    #[arg(long = "decryption-key")]
    pub decryption_key: Vec<PathBuf>,
}

fn report_render(render: &ClusterRender) -> bool {
    let mut bad = false;
    for e in &render.units.errors {
        eprintln!("error: {e}");
        bad = true;
    }
    for (_, e) in render.units.failed() {
        eprintln!("error: {e}");
        bad = true;
    }
    for w in &render.units.warnings {
        eprintln!("warning: {w}");
    }
    // capstan.io/image-policy: which tag each policy elected (no commit).
    for r in render.units.rendered() {
        for i in &r.images {
            eprintln!("{}: image {i}", r.unit.id);
        }
    }
    if let Ok(p) = &render.plan {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
    }
    bad
}

/// The shared round against the cluster of `--kubeconfig`/`--context`, with the cluster's
/// state rendered (sources fetched into the cache, `spec.suspend` honoured).
async fn prepare(args: &LiveArgs) -> Result<(Round, ClusterRender), String> {
    let (root, cluster_path) = args.target.open_root().await?;
    let config = crate::ops::config(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| format!("connecting to the cluster: {e}"))?;
    let mut settings = RoundSettings::new("cli", args.target.cache_dir());
    settings.concurrency = args.concurrency;
    settings.argo = args
        .target
        .argo
        .root(&cluster_path, crate::argocd::live_options(&args.this_repo));
    settings.offline = args.target.offline;
    let targets =
        Targets::new(client.clone(), Arc::new(Applier::new(client.clone()))).with_config(config);
    let keys = crate::sops::load_keys(&args.decryption_key)?;
    let round = Round::new(client.clone(), targets, settings)
        .with_mirrors(args.target.mirrors()?)
        .with_decryption_keys(keys);
    let (mut render, _) = round.render_with_sources(root, cluster_path).await?;
    if args.ignore_suspend {
        ignore_suspend(&mut render);
    } else {
        let observed = observe(&client).await?;
        honour_suspend(&mut render, &observed);
    }
    Ok((round, render))
}

/// The CLI's outcomes: failures on stderr as they happen; the rest in the table; Argo CD
/// Applications' status written when applying.
#[derive(Default)]
struct Terminal {
    client: Option<kube::Client>,
    revision: String,
}

impl Outcomes for Terminal {
    async fn finished(&self, unit: &RenderedUnit, _: &str, r: &Result<Ran, RunError>, _: Duration) {
        // Argo CD Applications get Argo CD's status (when the Application CRD is installed).
        if let (Some(client), Ok(Ran::Applied(result))) = (&self.client, r) {
            if let Err(e) =
                capstan_agent::argo_status::write(client, unit, Ok(result), &self.revision).await
            {
                eprintln!("warning: {}: {e}", unit.unit.id);
            }
        } else if let (Some(client), Err(e)) = (&self.client, r) {
            let _ = capstan_agent::argo_status::write(
                client,
                unit,
                Err(&e.to_string()),
                &self.revision,
            )
            .await;
        }
    }
    async fn panicked(&self, unit: &RenderedUnit, p: &Panicked) -> String {
        let m = format!(
            "applying {p} (a bug in capstan, not an error in the repository; only this unit is affected)"
        );
        eprintln!("error: {}: {m}", unit.unit.id);
        m
    }
    async fn blocked(&self, _: &Unit, _: &Blocked) {}
}

pub async fn diff(args: LiveArgs) -> Result<u8, String> {
    let (round, render) = prepare(&args).await?;
    let mut failed = report_render(&render);
    let result = round
        .run(
            &render,
            &Everything,
            &Terminal::default(),
            &Mode::Diff,
            &ApplyOptions::default(),
        )
        .await?;
    let mut drift = false;
    for id in &result.order {
        match &result.status[id] {
            UnitState::Ran(Ran::Planned(plan)) => {
                for c in &plan.changes {
                    let what = match &c.op {
                        PlanOp::Unchanged => continue,
                        PlanOp::Create => "create".to_string(),
                        PlanOp::Update => "update".to_string(),
                        PlanOp::Replace { reason } => format!("replace (needs force: {reason})"),
                        PlanOp::Prune => "prune".to_string(),
                    };
                    drift = true;
                    println!("► {id}: {} {what}", c.object);
                    if let Some(d) = &c.diff {
                        print!("{d}");
                        if !d.ends_with('\n') {
                            println!();
                        }
                    }
                }
            }
            UnitState::Ran(Ran::Applied(_)) | UnitState::NotDue => {}
            UnitState::Failed(e) => {
                eprintln!("error: {id}: {e}");
                failed = true;
            }
            UnitState::Blocked(b) => {
                eprintln!("error: {id}: {}", b.message);
                failed = true;
            }
            UnitState::Suspended => eprintln!("{id}: suspended, not compared"),
        }
    }
    Ok(if failed {
        EXIT_FAILURE
    } else if drift {
        EXIT_DRIFT
    } else {
        0
    })
}

pub async fn apply(args: LiveArgs) -> Result<u8, String> {
    let started = Instant::now();
    let (round, render) = prepare(&args).await?;
    let render_failed = report_render(&render);
    if let Err(e) = &render.plan {
        eprintln!("error: {e}");
        eprintln!("nothing was applied");
        return Ok(EXIT_FAILURE);
    }
    let options = ApplyOptions {
        on_event: Some(Arc::new(|ev: &capstan_apply::ApplyEvent| {
            if !matches!(ev.action, Action::Unchanged | Action::Waiting(_)) {
                eprintln!("  {} {}: {}", ev.unit.name, ev.object, ev.action);
            }
        })),
        ..Default::default()
    };
    let result = round
        .run(
            &render,
            &Everything,
            &Terminal {
                client: args.target.argo.argocd.then(|| round.client().clone()),
                revision: String::new(),
            },
            &Mode::Apply,
            &options,
        )
        .await?;
    let mut failed = print_table(&result) || render_failed;
    if args.target.argo.argocd {
        // Applications removed from the repository: uninstalled as their finalizer asks.
        for (id, r) in
            capstan_agent::argo_status::collect_removed(round.client(), &round.targets, &render)
                .await
        {
            match r {
                Ok(n) => println!("{id}: removed from the repository, {n} objects deleted"),
                Err(e) => {
                    eprintln!("error: {id}: removed from the repository, cannot uninstall: {e}");
                    failed = true;
                }
            }
        }
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(if failed { EXIT_FAILURE } else { 0 })
}

/// The apply table; whether any unit failed.
fn print_table(result: &RoundResult) -> bool {
    let mut failed = false;
    println!("{:<50} {:<10} DETAILS", "UNIT", "STATUS");
    for id in &result.order {
        let (status, details) = match &result.status[id] {
            UnitState::Ran(Ran::Applied(r)) => {
                let count = |a: &Action| r.objects.iter().filter(|o| &o.action == a).count();
                let pruned = r
                    .pruned
                    .iter()
                    .filter(|o| o.action == Action::Pruned)
                    .count();
                (
                    "applied",
                    format!(
                        "{} objects: {} created, {} configured, {} replaced, {} unchanged, {} pruned",
                        r.objects.len(),
                        count(&Action::Created),
                        count(&Action::Configured),
                        count(&Action::Replaced),
                        count(&Action::Unchanged),
                        pruned
                    ),
                )
            }
            UnitState::Ran(Ran::Planned(_)) | UnitState::NotDue => ("skipped", String::new()),
            UnitState::Failed(e) => {
                failed = true;
                ("failed", e.to_string())
            }
            UnitState::Blocked(b) => {
                failed = true;
                ("blocked", b.message.clone())
            }
            UnitState::Suspended => ("suspended", "spec.suspend is true".to_string()),
        };
        println!("{:<50} {:<10} {}", id.to_string(), status, details);
    }
    failed
}
