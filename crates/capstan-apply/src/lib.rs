//! capstan's apply layer: server-side apply of rendered units, with dry-run plans and diffs,
//! an inventory per unit, pruning, and kstatus health waits.
//!
//! # Usage
//!
//! ```no_run
//! # async fn t(client: kube::Client, objects: Vec<serde_json::Value>) -> Result<(), capstan_apply::ApplyError> {
//! use capstan_apply::{Applier, ApplyOptions, ApplyUnit, UnitRef};
//! let applier = Applier::new(client);
//! let mut unit = ApplyUnit::new(UnitRef::new("Kustomization", "flux-system", "apps"), objects);
//! unit.wait = true;
//! let plan = applier.plan(&unit).await?;          // dry run: Create/Update(diff)/Unchanged/Replace/Prune
//! let opts = ApplyOptions::with_events(|e| println!("{} {}: {}", e.unit, e.object, e.action));
//! let result = applier.apply(&unit, &opts).await?; // apply, prune, store inventory, wait
//! # let _ = (plan, result); Ok(()) }
//! ```
//!
//! # Design
//!
//! * **Server-side apply** with field manager `capstan` and `force=true` (conflicts are taken
//!   over, as Flux does), as `PATCH application/apply-patch+yaml` through `kube` dynamic APIs.
//! * **Drift detection without a request**: the inventory keeps, per object, a hash of its
//!   intent and of the live values of the fields it sets, taken right after the last
//!   successful apply (see [`drift`]). The next apply reads the live objects with one LIST
//!   per kind and namespace (a GET where the unit has one object of that kind there) and
//!   sends nothing for an object whose hash still matches, that capstan applied and that
//!   owns no field the intent dropped. An unchanged re-apply (or plan) sends reads only:
//!   the inventory GET and one read per kind and namespace. Counted in [`Applier::stats`]
//!   (`skipped`).
//! * **Watch cache**: given a live-state cache ([`Applier::with_live_state`], the agent's
//!   watch cache of reduced objects, see [`live`]), objects the cache shows unchanged since
//!   their last apply and inventories the cache holds need no request at all (`cached`,
//!   `skipped`); whatever the cache cannot tell is read as below.
//! * **Fallback**: every other object (changed in Git, drifted in the cluster, no recorded
//!   hash) is first applied with `dryRun=All`; when the result equals the live object
//!   (ignoring managedFields, resourceVersion, generation, uid, creationTimestamp and
//!   status), nothing is written (`dry_runs` in the stats). Values the API server normalises
//!   or fills hash as the server holds them, so they never cause re-applies. The inventory
//!   is only written when it (or a hash) changes.
//! * **Order and pace**: stage one applies Namespaces and CustomResourceDefinitions, waits
//!   until the CRDs are Established and refreshes discovery; then quotas, storage classes,
//!   service accounts and RBAC; then everything else; webhooks last. The objects of one stage
//!   are applied concurrently, started in kustomize's kind order (at most
//!   [`DEFAULT_CONCURRENCY`] at once, [`Applier::with_concurrency`]); a stage starts only
//!   after the previous one succeeded. Requests share the client's connection pool and a
//!   client-side rate limit ([`DEFAULT_QPS`], [`DEFAULT_BURST`], [`Applier::with_rate_limit`],
//!   like kubectl's `--qps`/`--burst`). Live objects are read before the first write, at the
//!   same time as the write-ahead inventory.
//! * **Defaults** for old servers: `protocol: TCP` is filled in container ports and Service
//!   ports (list-map keys that server-side apply on 1.20 requires).
//! * **Namespaces**: namespaced objects go to `target_namespace` when set, else keep theirs,
//!   else `default`; cluster-scoped objects lose any namespace.
//! * **Ownership labels**: every applied object gets `capstan.io/kind` (lowercased unit kind),
//!   `capstan.io/namespace` and `capstan.io/name` (the equivalent of Flux's
//!   `kustomize.toolkit.fluxcd.io/name`/`namespace`). Prune never deletes an object whose labels
//!   name another unit (it moved).
//! * **Immutable fields**: a dry run failing with an immutable-field error plans as
//!   [`PlanOp::Replace`]; apply fails with [`ApplyError::Immutable`] unless the unit has
//!   `force`, in which case the object is deleted, awaited, and created again.
//! * **Inventory**: a ConfigMap per unit in `capstan-system` (see [`inventory`]).
//! * **Prune**: after the whole new set applied, objects of the previous inventory that are not
//!   rendered anymore are deleted (background propagation, reverse apply order), except those
//!   annotated `kustomize.toolkit.fluxcd.io/prune: disabled` (or `capstan.io/prune: disabled`).
//!   Objects that were never in the inventory are never deleted.
//! * **Health**: with `wait`, every applied object is polled until Current (see
//!   `capstan-health`); without `wait`, only `health_checks` are. A Failed object ends the wait
//!   early ([`ApplyOptions::fail_fast`]); a timeout reports every object that is not ready and
//!   why.
//! * **Retries**: transient errors (connection errors, 429, 5xx, 409 Conflict) are retried with
//!   exponential backoff ([`Applier::with_retry`]).
//! * **Secrets**: values of `data`/`stringData` are masked as `***` in diffs; objects are never
//!   put in logs or errors.

mod applier;
pub mod drift;
pub mod inventory;
pub mod live;
pub mod objects;
mod types;

pub use applier::{Applier, DEFAULT_BURST, DEFAULT_CONCURRENCY, DEFAULT_QPS, FIELD_MANAGER};
pub use types::*;

/// Builds a client from a kubeconfig file (`None`: `$KUBECONFIG` or `~/.kube/config`, then the
/// in-cluster config) and an optional context name.
pub async fn client_from_kubeconfig(
    path: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, kube::Error> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match path {
        Some(p) => {
            let kc =
                kube::config::Kubeconfig::read_from(p).map_err(kube::Error::InferKubeconfig)?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(kube::Error::InferKubeconfig)?,
        None => kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig)?,
    };
    kube::Client::try_from(config)
}
