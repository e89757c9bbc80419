//! Live state from a cache: what an [`Applier`](crate::Applier) may use instead of reading
//! objects from the API server.
//!
//! The agent keeps a watch-backed cache per cluster (capstan-agent's `watch` module) of the
//! objects capstan applied, reduced to what drift detection needs
//! ([`crate::drift::reduce_live`]). An applier given such a cache
//! ([`Applier::with_live_state`](crate::Applier::with_live_state)) decides from it, without a
//! request, that an object is unchanged since its last apply. Whenever the cache cannot tell
//! (the kind is not watched yet or its watch has not listed everything, the object is missing
//! from it, or its state does not match the recorded one) the applier reads the object from
//! the API server as it does without a cache: LIST, GET, and the server-side dry run.

use kube::discovery::ApiResource;
use serde_json::Value;

use crate::types::{Health, ObjectRef};

/// What a cache knows of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    /// The object as the cache holds it (reduced: see [`crate::drift::reduce_live`]).
    Present(Value),
    /// Not in the cache. The object may still exist (a cache only holds capstan's objects):
    /// the applier reads it from the API server.
    Missing,
    /// The cache does not watch this kind (yet), or its watch is not synced.
    Unknown,
}

/// A source of live objects that costs no request (a watch cache).
pub trait LiveState: Send + Sync {
    /// The cached state of `r` (group, kind, namespace and name; the version is ignored).
    fn lookup(&self, r: &ObjectRef) -> Cached;

    /// The applier works with objects of this resource: the cache should hold them from now
    /// on (e.g. start watching the kind). Called for every kind an applier reads; cheap when
    /// the kind is already watched.
    fn track(&self, resource: &ApiResource, namespaced: bool);

    /// The object's health as computed from the full object when the cache last saw it
    /// (`None`: not cached). The applier trusts only a Current health, and only for objects
    /// it did not just write.
    fn health(&self, _r: &ObjectRef) -> Option<Health> {
        None
    }
}
