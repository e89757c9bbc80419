//! `capstan diff` and `capstan apply`: one cluster, from the working tree.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use capstan_apply::{Action, Applier, ApplyOptions, PlanOp};
use capstan_engine::{
    execute, render_cluster_with, ApplyDriver, DiffDriver, ExecuteOptions, KubeLookup, UnitStatus,
};
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
}

async fn client(args: &LiveArgs) -> Result<kube::Client, String> {
    crate::ops::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await
}

fn report_render(render: &capstan_engine::ClusterRender) -> bool {
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
    if let Ok(p) = &render.plan {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
    }
    bad
}

/// Renders as the agent does: charts from Helm/OCI repositories (cached), `lookup` and
/// Capabilities from the cluster.
async fn live_renderer(client: &kube::Client) -> Result<capstan_engine::LiveRenderer, String> {
    let cache = crate::source::default_cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("capstan"))
        .join("charts");
    capstan_engine::LiveRenderer::connect(client.clone(), capstan_source::SourceCache::new(cache))
        .await
}

pub async fn diff(args: LiveArgs) -> Result<u8, String> {
    let (fs, opts) = args.target.open().await?;
    let client = client(&args).await?;
    let renderer = live_renderer(&client).await?;
    let render = render_cluster_with(&fs, &renderer, &KubeLookup::new(client.clone()), &opts);
    let mut failed = report_render(&render);
    let applier = Applier::new(client);
    let exec = execute(
        &DiffDriver { applier: &applier },
        &render,
        &ExecuteOptions {
            concurrency: args.concurrency,
            ignore_dependencies: true,
        },
    )
    .await?;
    let mut drift = false;
    for id in &exec.order {
        match &exec.status[id] {
            UnitStatus::Done(plan) => {
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
            UnitStatus::Failed(e) => {
                eprintln!("error: {id}: {e}");
                failed = true;
            }
            UnitStatus::Blocked(why) => {
                eprintln!("error: {id}: {why}");
                failed = true;
            }
            UnitStatus::Suspended => eprintln!("{id}: suspended, not compared"),
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
    let (fs, opts) = args.target.open().await?;
    let client = client(&args).await?;
    let renderer = live_renderer(&client).await?;
    let render = render_cluster_with(&fs, &renderer, &KubeLookup::new(client.clone()), &opts);
    let render_failed = report_render(&render);
    if let Err(e) = &render.plan {
        eprintln!("error: {e}");
        eprintln!("nothing was applied");
        return Ok(EXIT_FAILURE);
    }
    let applier = Applier::new(client);
    let options = ApplyOptions {
        on_event: Some(Arc::new(|ev: &capstan_apply::ApplyEvent| {
            if !matches!(ev.action, Action::Unchanged | Action::Waiting(_)) {
                eprintln!("  {} {}: {}", ev.unit.name, ev.object, ev.action);
            }
        })),
        ..Default::default()
    };
    let exec = execute(
        &ApplyDriver {
            applier: &applier,
            options,
        },
        &render,
        &ExecuteOptions {
            concurrency: args.concurrency,
            ignore_dependencies: false,
        },
    )
    .await?;
    let mut failed = render_failed;
    println!("{:<50} {:<10} DETAILS", "UNIT", "STATUS");
    for id in &exec.order {
        let (status, details) = match &exec.status[id] {
            UnitStatus::Done(r) => {
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
            UnitStatus::Failed(e) => {
                failed = true;
                ("failed", e.clone())
            }
            UnitStatus::Blocked(why) => {
                failed = true;
                ("blocked", why.clone())
            }
            UnitStatus::Suspended => ("suspended", "spec.suspend is true".to_string()),
        };
        println!("{:<50} {:<10} {}", id.to_string(), status, details);
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(if failed { EXIT_FAILURE } else { 0 })
}
