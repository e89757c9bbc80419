//! # capstan-agent
//!
//! Keeps every registered cluster converged on its state in the repository, like Flux's
//! controllers together, in one process:
//!
//! * [`source::RootSource`] fetches the repository (read-only) on its interval and when a
//!   webhook or a `reconcile.fluxcd.io/requestedAt` annotation asks;
//! * one [`cluster::ClusterWorker`] per cluster renders `clusters/<name>` from the newest
//!   revision and runs the units that are due ([`schedule`]) in dependency order, with
//!   bounded concurrency, never pruning what failed to render; one unit's failure (a
//!   render error, a caught panic, a failed apply, a `dependsOn` naming nothing) fails
//!   that unit and its dependents only, never the round, the worker or the process;
//! * [`watch`] keeps a watch-backed cache per cluster: unit objects (a suspend, a reconcile
//!   request or a spec change wakes the worker at once, no LIST every poll) and the objects
//!   capstan applied, reduced to what drift detection needs, so an unchanged cluster costs
//!   no request per object;
//! * [`report`] writes Flux-compatible status on the unit objects, Events, and metrics;
//! * clusters come from the agent's own cluster and from kubeconfig Secrets (Cluster API,
//!   Crossplane, or labelled `capstan.io/cluster`): a cluster that appears is reconciled,
//!   one that disappears is left alone (nothing is deleted on its behalf);
//! * only the holder of a Lease reconciles; SIGTERM stops starting units, lets running
//!   ones finish, and releases the Lease.
//!
//! Data flows one way, as in the CLI: source -> tree -> units -> rendered objects -> plan
//! -> apply -> status. The split follows kube-runtime's: what wakes a worker (revisions,
//! timers, requests, webhooks) is kept apart from what a round does.

pub mod argo_status;
pub mod cluster;
pub mod report;
pub mod schedule;
pub mod source;
pub mod sources;
pub mod watch;

mod agent;

pub use agent::{Agent, AgentConfig, ClusterSource};
pub use cluster::{ClusterWorker, RoundSummary, WorkerSettings};
pub use report::{ClusterReporter, NoReport, Outcome, Reporter};
pub use source::RootSource;
