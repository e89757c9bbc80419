//! The agent's watch-backed cache of one cluster (kube-runtime watchers, as Argo CD's cluster
//! cache and Flux's informers).
//!
//! * **Unit objects** (every toolkit kind units are: Kustomization, HelmRelease): one watch
//!   per kind keeps what the schedule reads of each (`spec.suspend`, the
//!   `reconcile.fluxcd.io/requestedAt` annotation, `metadata.generation`). A change of any of
//!   these wakes the worker at once; nothing is LISTed on every poll any more. Until every
//!   kind's watch has listed (or its CRD is absent) the worker reads them with LISTs as before.
//! * **Applied objects**: every kind the cluster's applier works with (it calls
//!   [`LiveState::track`]) is watched cluster-wide, selecting capstan's ownership label
//!   (`capstan.io/name`): only objects capstan applied (and its inventories) are held, each
//!   reduced to what drift detection needs ([`capstan_apply::drift::reduce_live`]: identity,
//!   capstan's managed fields and the values of the fields it owns). The applier decides from
//!   it, without a request, that an object is unchanged since its last apply; what the cache
//!   cannot tell (kind not synced yet, object missing, state not matching) falls back to the
//!   API server (LIST, GET, dry run).
//!
//! Memory is bounded by the objects capstan applied, each reduced; [`WatchCache::size`]
//! reports objects and approximate bytes (exported as `capstan_cache_objects` and
//! `capstan_cache_bytes`). Watches restart with kube-runtime's backoff after errors and
//! re-list when their resourceVersion expired; a kind whose watch is broken reads as unknown
//! (the applier falls back), never as empty. Dropping the cache stops every watch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use capstan_apply::live::{Cached, LiveState};
use capstan_apply::objects::LABEL_NAME;
use capstan_apply::{Health, ObjectRef};
use capstan_engine::round::{api_resource, Observed};
use capstan_graph::UnitId;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// (group, kind) of a watched kind.
type GroupKind = (String, String);
/// (namespace, name) of an object.
type Key = (String, String);

/// One cached object: reduced, with its health as computed from the full object.
struct Entry {
    reduced: Value,
    health: Health,
    size: usize,
}

impl Entry {
    fn new(reduced: Value, health: Health) -> Self {
        let size = approx_size(&reduced) + health.message.len() + 16;
        Entry {
            reduced,
            health,
            size,
        }
    }
}

#[derive(Default)]
struct KindCache {
    /// The watch listed every object once (and is not re-listing from scratch).
    synced: bool,
    objects: HashMap<Key, Entry>,
    bytes: usize,
}

impl KindCache {
    fn insert(&mut self, key: Key, e: Entry) {
        self.bytes += e.size;
        if let Some(old) = self.objects.insert(key, e) {
            self.bytes -= old.size;
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.objects.remove(key) {
            self.bytes -= old.size;
        }
    }

    fn replace(&mut self, objects: HashMap<Key, Entry>) {
        self.bytes = objects.values().map(|e| e.size).sum();
        self.objects = objects;
        self.synced = true;
    }
}

/// The unit objects as the schedule reads them, per toolkit kind.
#[derive(Default)]
struct Units {
    /// Per kind: `None` until its watch listed (or found the CRD absent).
    kinds: BTreeMap<String, Option<BTreeMap<UnitId, Observed>>>,
}

struct Inner {
    cluster: String,
    client: kube::Client,
    /// The ownership label capstan's objects carry (the watches select it).
    selector: String,
    field_manager: String,
    kinds: Mutex<HashMap<GroupKind, KindCache>>,
    units: Mutex<Units>,
    /// Woken when a unit object's suspend, reconcile request or generation changed.
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// A lock, also after a panic while it was held (the maps stay consistent between
/// statements).
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn approx_size(v: &Value) -> usize {
    match v {
        Value::Object(m) => {
            16 + m
                .iter()
                .map(|(k, v)| k.len() + 8 + approx_size(v))
                .sum::<usize>()
        }
        Value::Array(a) => 16 + a.iter().map(approx_size).sum::<usize>(),
        Value::String(s) => 8 + s.len(),
        _ => 8,
    }
}

/// The watch cache of one cluster. Cheap to share; dropping the last handle stops every watch.
pub struct WatchCache {
    inner: Arc<Inner>,
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

impl WatchCache {
    /// A cache of `cluster` read through `client`; `wake` is notified when a unit object's
    /// suspend, reconcile request or generation changes. Nothing is watched until
    /// [`WatchCache::watch_units`] or [`LiveState::track`].
    pub fn new(cluster: impl Into<String>, client: kube::Client, wake: Arc<Notify>) -> Self {
        WatchCache {
            inner: Arc::new(Inner {
                cluster: cluster.into(),
                client,
                selector: LABEL_NAME.to_string(),
                field_manager: capstan_apply::FIELD_MANAGER.to_string(),
                kinds: Mutex::new(HashMap::new()),
                units: Mutex::new(Units::default()),
                wake,
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// Stops every watch (also done on drop).
    pub fn stop(&self) {
        self.inner.cancel.cancel();
    }

    /// Starts the watches of the unit objects (once; call after their CRDs are installed).
    pub fn watch_units(&self) {
        let kinds: Vec<_> = {
            let mut units = locked(&self.inner.units);
            let mut new = Vec::new();
            for k in capstan_units::toolkit::UNIT_KINDS {
                if !units.kinds.contains_key(k.kind) {
                    units.kinds.insert(k.kind.to_string(), None);
                    new.push(k);
                }
            }
            new
        };
        for kind in kinds {
            let inner = self.inner.clone();
            tokio::spawn(
                async move { watch_unit_kind(inner, kind.kind, api_resource(&kind)).await },
            );
        }
    }

    /// The unit objects of the cluster, once every unit kind's watch has listed; `None`
    /// before (read them with `capstan_engine::round::observe`).
    pub fn observed(&self) -> Option<BTreeMap<UnitId, Observed>> {
        let units = locked(&self.inner.units);
        if units.kinds.is_empty() {
            return None;
        }
        let mut out = BTreeMap::new();
        for kind in units.kinds.values() {
            out.extend(kind.as_ref()?.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Some(out)
    }

    /// Objects held (unit objects and reduced applied objects) and their approximate size in
    /// bytes.
    pub fn size(&self) -> (usize, usize) {
        let kinds = locked(&self.inner.kinds);
        let (mut n, mut bytes) = kinds
            .values()
            .fold((0, 0), |(n, b), k| (n + k.objects.len(), b + k.bytes));
        let units = locked(&self.inner.units);
        for k in units.kinds.values().flatten() {
            n += k.len();
            bytes += k.len() * std::mem::size_of::<(UnitId, Observed)>();
        }
        (n, bytes)
    }

    /// Whether the watch of this kind has listed every object (tests and diagnostics).
    pub fn synced(&self, group: &str, kind: &str) -> bool {
        locked(&self.inner.kinds)
            .get(&(group.to_string(), kind.to_string()))
            .is_some_and(|k| k.synced)
    }

    /// The cluster this cache watches.
    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }
}

impl LiveState for WatchCache {
    fn lookup(&self, r: &ObjectRef) -> Cached {
        let kinds = locked(&self.inner.kinds);
        let Some(kind) = kinds.get(&(r.group.clone(), r.kind.clone())) else {
            return Cached::Unknown;
        };
        if !kind.synced {
            return Cached::Unknown;
        }
        match kind.objects.get(&(r.namespace.clone(), r.name.clone())) {
            Some(e) => Cached::Present(e.reduced.clone()),
            None => Cached::Missing,
        }
    }

    fn health(&self, r: &ObjectRef) -> Option<Health> {
        let kinds = locked(&self.inner.kinds);
        let kind = kinds
            .get(&(r.group.clone(), r.kind.clone()))
            .filter(|k| k.synced)?;
        kind.objects
            .get(&(r.namespace.clone(), r.name.clone()))
            .map(|e| e.health.clone())
    }

    fn track(&self, resource: &ApiResource, _namespaced: bool) {
        let key = (resource.group.clone(), resource.kind.clone());
        {
            let mut kinds = locked(&self.inner.kinds);
            if kinds.contains_key(&key) {
                return;
            }
            kinds.insert(key.clone(), KindCache::default());
        }
        let inner = self.inner.clone();
        let ar = resource.clone();
        // The applier runs inside the agent's runtime.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { watch_kind(inner, key, ar).await });
        }
    }
}

/// Keeps one applied kind's reduced objects (those carrying capstan's ownership label).
async fn watch_kind(inner: Arc<Inner>, key: GroupKind, ar: ApiResource) {
    let api: Api<DynamicObject> = Api::all_with(inner.client.clone(), &ar);
    let config = watcher::Config::default().labels(&inner.selector);
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut buffer: HashMap<Key, Entry> = HashMap::new();
    let reduce = |o: &DynamicObject| -> (Key, Entry) {
        let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            // List items come without apiVersion and kind.
            m.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
            m.insert("kind".into(), Value::String(ar.kind.clone()));
        }
        let k = (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone().unwrap_or_default(),
        );
        let health = capstan_health::compute(&v);
        let reduced = capstan_apply::drift::reduce_live(&v, &inner.field_manager);
        (k, Entry::new(reduced, health))
    };
    loop {
        let event = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        let mut kinds = locked(&inner.kinds);
        let Some(cache) = kinds.get_mut(&key) else {
            return;
        };
        match event {
            Ok(Event::Init) => {
                // A (re-)list: until it is done the kind is unknown, never partial.
                cache.synced = false;
                buffer.clear();
            }
            Ok(Event::InitApply(o)) => {
                let (k, e) = reduce(&o);
                buffer.insert(k, e);
            }
            Ok(Event::InitDone) => {
                cache.replace(std::mem::take(&mut buffer));
                tracing::debug!(cluster = %inner.cluster, kind = %ar.kind, objects = cache.objects.len(), "watch cache synced");
            }
            Ok(Event::Apply(o)) => {
                let (k, e) = reduce(&o);
                cache.insert(k, e);
            }
            Ok(Event::Delete(o)) => {
                cache.remove(&(
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                ));
            }
            Err(e) if is_forbidden(&e) => {
                // No RBAC to watch the kind cluster-wide (`--rbac namespaced`): it stays
                // unknown, and the applier reads it with LISTs and GETs as without a cache.
                tracing::info!(cluster = %inner.cluster, kind = %ar.kind, error = %e, "cannot watch applied objects of this kind; reading them from the API server instead");
                return;
            }
            Err(e) => {
                tracing::debug!(cluster = %inner.cluster, kind = %ar.kind, error = %e, "watch failed; retrying");
            }
        }
    }
}

fn observed_of(o: &DynamicObject) -> Observed {
    Observed {
        suspended: o.data.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true),
        requested_at: o
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(capstan_units::toolkit::RECONCILE_REQUESTED_AT))
            .cloned(),
        generation: o.metadata.generation,
    }
}

/// The API status code of a failed list or watch start.
fn error_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

fn is_not_found(e: &watcher::Error) -> bool {
    error_code(e) == Some(404)
}

fn is_forbidden(e: &watcher::Error) -> bool {
    matches!(error_code(e), Some(401 | 403))
}

/// Keeps one unit kind's observed state; wakes the worker when it changes.
async fn watch_unit_kind(inner: Arc<Inner>, kind: &'static str, ar: ApiResource) {
    let api: Api<DynamicObject> = Api::all_with(inner.client.clone(), &ar);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut buffer: BTreeMap<UnitId, Observed> = BTreeMap::new();
    let id_of = |o: &DynamicObject| {
        UnitId::new(
            kind,
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone().unwrap_or_default(),
        )
    };
    loop {
        let event = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        let changed = {
            let mut units = locked(&inner.units);
            let Some(slot) = units.kinds.get_mut(kind) else {
                return;
            };
            match event {
                Ok(Event::Init) => {
                    buffer.clear();
                    false
                }
                Ok(Event::InitApply(o)) => {
                    buffer.insert(id_of(&o), observed_of(&o));
                    false
                }
                Ok(Event::InitDone) => {
                    let new = std::mem::take(&mut buffer);
                    let changed = slot.as_ref() != Some(&new);
                    *slot = Some(new);
                    changed
                }
                Ok(Event::Apply(o)) => {
                    let map = slot.get_or_insert_with(BTreeMap::new);
                    let observed = observed_of(&o);
                    map.insert(id_of(&o), observed.clone()) != Some(observed)
                }
                Ok(Event::Delete(o)) => slot
                    .as_mut()
                    .is_some_and(|m| m.remove(&id_of(&o)).is_some()),
                Err(e) if is_not_found(&e) => {
                    // The CRD is not installed: no unit objects of this kind (the watch
                    // retries and lists them once it is).
                    let changed = slot.as_ref().is_some_and(|m| !m.is_empty());
                    *slot = Some(BTreeMap::new());
                    changed
                }
                Err(e) => {
                    tracing::debug!(cluster = %inner.cluster, kind, error = %e, "watch of unit objects failed; retrying");
                    false
                }
            }
        };
        if changed {
            inner.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(v: Value) -> Entry {
        let health = capstan_health::compute(&v);
        Entry::new(capstan_apply::drift::reduce_live(&v, "capstan"), health)
    }

    fn cm(name: &str, value: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"ns",
            "managedFields":[{"manager":"capstan","operation":"Apply","fieldsV1":{"f:data":{"f:k":{}}}}]},
            "data":{"k":value,"other":"not capstan's"}})
    }

    /// The cache's size accounting (`capstan_cache_bytes`) follows inserts, updates, deletes
    /// and re-lists; entries are reduced.
    #[test]
    fn kind_cache_accounts_bytes_of_reduced_objects() {
        let mut k = KindCache::default();
        k.insert(("ns".into(), "a".into()), entry(cm("a", "1")));
        let one = k.bytes;
        assert!(one > 0);
        k.insert(("ns".into(), "b".into()), entry(cm("b", "1")));
        assert_eq!(k.bytes, 2 * one);
        // An update replaces the entry's size.
        k.insert(("ns".into(), "a".into()), entry(cm("a", "1")));
        assert_eq!(k.bytes, 2 * one);
        k.remove(&("ns".into(), "b".into()));
        assert_eq!(k.bytes, one);
        k.remove(&("ns".into(), "missing".into()));
        assert_eq!(k.bytes, one);
        let a = &k.objects[&("ns".to_string(), "a".to_string())];
        assert_eq!(a.reduced["data"], json!({"k":"1"}), "only capstan's fields");
        assert!(a.health.is_current());
        // A re-list replaces everything and marks the kind synced.
        assert!(!k.synced);
        k.replace(HashMap::new());
        assert!(k.synced);
        assert_eq!((k.objects.len(), k.bytes), (0, 0));
    }

    /// Unit objects: what the schedule reads (suspend, reconcile request, generation).
    #[test]
    fn observed_state_of_a_unit_object() {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization",
            "metadata":{"name":"apps","namespace":"flux-system","generation":3,
                "annotations":{"reconcile.fluxcd.io/requestedAt":"2026-12-07T16:00:00Z"}},
            "spec":{"suspend":true,"interval":"1m"}}))
        .unwrap();
        let observed = observed_of(&o);
        assert!(observed.suspended);
        assert_eq!(
            observed.requested_at.as_deref(),
            Some("2026-12-07T16:00:00Z")
        );
        assert_eq!(observed.generation, Some(3));
    }
}
