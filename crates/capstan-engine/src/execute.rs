//! Walking the plan: every unit starts as soon as everything it waits for is done and
//! Ready, with bounded concurrency; a unit that fails blocks its dependents (and only
//! them). What "run a unit" means (apply, or a dry-run diff) is the [`UnitDriver`]'s
//! business, so this walk is tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use capstan_graph::{Plan, UnitId};
use capstan_units::{RenderedUnit, UnitOutcome};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::ClusterRender;

/// Runs one unit.
pub trait UnitDriver {
    /// What a successful run reports.
    type Output;
    /// Apply (or diff) a rendered unit. An `Err` fails the unit and blocks its dependents.
    fn run(&self, unit: &RenderedUnit) -> impl Future<Output = Result<Self::Output, String>>;
}

/// What happened to one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitStatus<T> {
    /// Ran successfully.
    Done(T),
    /// Ran and failed.
    Failed(String),
    /// Not run: it failed to render, or something it waits for failed.
    Blocked(String),
    /// Not run: `spec.suspend: true`.
    Suspended,
}

impl<T> UnitStatus<T> {
    pub fn is_ok(&self) -> bool {
        matches!(self, UnitStatus::Done(_) | UnitStatus::Suspended)
    }
}

/// Options of a walk.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// How many units run at once.
    pub concurrency: usize,
    /// Ignore dependencies (for diffs, which change nothing).
    pub ignore_dependencies: bool,
}

impl Default for ExecuteOptions {
    fn default() -> Self {
        ExecuteOptions {
            concurrency: 4,
            ignore_dependencies: false,
        }
    }
}

/// The outcome of every unit, in plan order.
#[derive(Debug, Clone)]
pub struct Execution<T> {
    pub order: Vec<UnitId>,
    pub status: BTreeMap<UnitId, UnitStatus<T>>,
}

impl<T> Execution<T> {
    pub fn all_ok(&self) -> bool {
        self.status.values().all(UnitStatus::is_ok)
    }
}

/// Run every unit of a rendered cluster in dependency order.
pub async fn execute<D: UnitDriver>(
    driver: &D,
    render: &ClusterRender,
    opts: &ExecuteOptions,
) -> Result<Execution<D::Output>, String> {
    let plan: &Plan = render.plan.as_ref().map_err(|e| e.to_string())?;
    let mut status: BTreeMap<UnitId, UnitStatus<D::Output>> = BTreeMap::new();
    for (id, why) in &render.blocked {
        status.insert(id.clone(), UnitStatus::Blocked(why.clone()));
    }
    let rendered: BTreeMap<&UnitId, &RenderedUnit> = render
        .units
        .units
        .iter()
        .filter_map(|u| match u {
            UnitOutcome::Rendered(r) => Some((&r.unit.id, r)),
            _ => None,
        })
        .collect();
    let mut pending: Vec<&UnitId> = plan
        .order
        .iter()
        .filter(|id| !status.contains_key(*id))
        .collect();
    let mut running: BTreeSet<UnitId> = BTreeSet::new();
    let mut in_flight = FuturesUnordered::new();
    let concurrency = opts.concurrency.max(1);

    loop {
        // Settle units whose dependencies failed, start those whose are done.
        let mut i = 0;
        while i < pending.len() {
            let id = pending[i];
            let deps = if opts.ignore_dependencies {
                &[][..]
            } else {
                plan.dependencies(id)
            };
            if let Some(bad) = deps
                .iter()
                .find(|e| status.get(&e.on).is_some_and(|s| !s.is_ok()))
            {
                status.insert(
                    id.clone(),
                    UnitStatus::Blocked(format!(
                        "waits for {} ({}), which did not succeed",
                        bad.on, bad.reason
                    )),
                );
                pending.remove(i);
                continue;
            }
            let ready = deps
                .iter()
                .all(|e| status.get(&e.on).is_some_and(UnitStatus::is_ok));
            if ready && running.len() < concurrency {
                pending.remove(i);
                let unit = rendered[id];
                if unit.unit.spec.suspend {
                    status.insert(id.clone(), UnitStatus::Suspended);
                    // A newly settled unit may unblock others: rescan.
                    i = 0;
                    continue;
                }
                running.insert(id.clone());
                let id = id.clone();
                in_flight.push(async move { (id, driver.run(unit).await) });
                continue;
            }
            i += 1;
        }
        match in_flight.next().await {
            Some((id, result)) => {
                running.remove(&id);
                status.insert(
                    id,
                    match result {
                        Ok(out) => UnitStatus::Done(out),
                        Err(e) => UnitStatus::Failed(e),
                    },
                );
            }
            None => break,
        }
    }
    // Anything still pending waits on something that never ran (should not happen).
    for id in pending {
        status
            .entry(id.clone())
            .or_insert_with(|| UnitStatus::Blocked("its dependencies never completed".into()));
    }
    Ok(Execution {
        order: plan.order.clone(),
        status,
    })
}
