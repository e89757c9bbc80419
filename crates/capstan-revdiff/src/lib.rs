//! Rendered diff between two revisions of a fleet repository, for every cluster: what a
//! pull request changes, cluster -> unit -> object, before it is merged.
//!
//! - [`model`]: what one revision renders ([`RevisionSnapshot`]); readers produce it;
//! - [`compare`]: the comparison (pure): added, removed (what prune deletes), changed
//!   objects with a unified diff of their YAML (Secret values masked with
//!   `capstan_apply::objects`), renamed units, semantic [`notes`];
//! - [`report`]: text, markdown parts under a size limit, JSON;
//! - [`ignore`]: `--ignore-field` paths and the default noise filters;
//! - [`render`]: which clusters a revision holds and what they render, through a
//!   [`render::Reader`] (Flux: [`render::FluxReader`]; Argo CD readers plug in here),
//!   clusters in parallel;
//! - [`argocd`]: Argo CD repositories (every Application by destination cluster) and
//!   [`argocd::FleetReader`] for repositories with Flux and Argo CD layouts;
//! - [`memo`]: render reuse keyed by the exact inputs each render read;
//! - [`tree`]: a Git revision as a read-only file system (gix, in memory).

pub mod argocd;
pub mod compare;
pub mod ignore;
pub mod memo;
pub mod model;
pub mod notes;
pub mod render;
pub mod report;
pub mod tree;

pub use compare::{compare, Change, CompareOptions, Report};
pub use model::{ClusterSnapshot, ObjectKey, RevisionSnapshot, UnitSnapshot};
pub use notes::Note;
