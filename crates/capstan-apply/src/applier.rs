//! The [`Applier`]: plan, apply, prune, wait, delete.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use kube::Client;
use serde_json::Value;

use capstan_health::{Health, Status};

use crate::drift::{applied_fields, applied_state_hash, owns_only_intent_fields};
use crate::inventory::{inventory_ref, Inventory, INVENTORY_NAMESPACE};
use crate::live::{Cached, LiveState};
use crate::objects::{
    diff, is_cluster_definition, is_immutable_error, kind_rank, order_key, prune_disabled,
    same_content, set_native_defaults, set_owner_labels, LABEL_KIND, LABEL_NAME, LABEL_NAMESPACE,
};
use crate::types::{
    Action, ApplyError, ApplyEvent, ApplyOptions, ApplyStats, ApplyUnit, ObjectRef, ObjectResult,
    PlanOp, PlannedChange, UnitPlan, UnitRef, UnitResult,
};

/// The field manager capstan applies with.
pub const FIELD_MANAGER: &str = "capstan";

/// Default number of requests of one unit in flight at once ([`Applier::with_concurrency`]).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Default client-side rate limit, requests per second ([`Applier::with_rate_limit`]). A safety
/// net against a runaway client, like kubectl's `--qps`; the API server protects itself with API
/// Priority and Fairness (a 429 is retried with backoff).
pub const DEFAULT_QPS: f64 = 1000.0;

/// Default burst of the client-side rate limit (requests allowed at once above [`DEFAULT_QPS`]).
pub const DEFAULT_BURST: u32 = 2000;

/// A token bucket: `burst` requests at once, refilled at `qps` per second. A request that finds
/// the bucket empty reserves the next token and waits for it.
#[derive(Debug)]
struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            qps: qps.max(0.001),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token at `now`; returns how long to wait for it (`None`: available now).
    fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut state = self.state.lock().expect("rate limiter");
        let (tokens, last) = &mut *state;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.qps).min(self.burst);
        if now > *last {
            *last = now;
        }
        *tokens -= 1.0;
        (*tokens < 0.0).then(|| Duration::from_secs_f64(-*tokens / self.qps))
    }

    async fn acquire(&self) {
        if let Some(wait) = self.reserve(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    skipped: AtomicU64,
    dry_runs: AtomicU64,
    applies: AtomicU64,
    lists: AtomicU64,
    gets: AtomicU64,
    cached: AtomicU64,
    deletes: AtomicU64,
    inventory_writes: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Group, kind and namespace: the unit of a LIST.
type KindKey = (String, String, String);

/// Live objects of one kind and namespace read with a LIST.
#[derive(Debug, Default)]
struct Listed {
    /// True when the LIST had no label selector: an object missing from it does not exist.
    complete: bool,
    objects: HashMap<String, Value>,
}

/// What was read before the first write: LISTs, and the objects the live-state cache showed
/// unchanged since their last apply (by id).
#[derive(Debug, Default)]
struct Known {
    lists: HashMap<KindKey, Listed>,
    unchanged: HashSet<String>,
}

fn kind_key(r: &ObjectRef) -> KindKey {
    (r.group.clone(), r.kind.clone(), r.namespace.clone())
}

/// What is known of an object's live state: `Some(Some(v))` listed, `Some(None)` known not to
/// exist, `None` unknown (read it with a GET).
fn known_live(known: &Known, r: &ObjectRef) -> Option<Option<Value>> {
    let listed = known.lists.get(&kind_key(r))?;
    match listed.objects.get(&r.name) {
        Some(v) => Some(Some(v.clone())),
        None if listed.complete => Some(None),
        None => None,
    }
}

/// What an apply starts from for one object.
enum Live {
    /// The live-state cache shows it unchanged since its recorded apply: no request.
    Unchanged,
    /// Read already (`Some(None)`: known not to exist), or `None`: read it with a GET.
    Known(Option<Option<Value>>),
}

/// The apply stage of an object after stage one (Namespaces, CRDs): 1 for kinds other objects
/// depend on at admission (quotas, storage classes, service accounts, RBAC), 2 for everything
/// else, 3 for webhook configurations. A stage starts when the previous one succeeded; objects
/// of one stage are applied concurrently.
fn stage(r: &ObjectRef) -> u8 {
    let rank = kind_rank(&r.kind);
    if rank > kind_rank("PodDisruptionBudget") && rank != kind_rank("Unknown") {
        3
    } else if rank < kind_rank("ConfigMap") {
        1
    } else {
        2
    }
}

/// A resolved resource: its API description and whether it is namespaced.
#[derive(Clone, Debug)]
struct Resolved {
    ar: ApiResource,
    namespaced: bool,
}

/// A rendered object ready to apply.
#[derive(Clone, Debug)]
struct Prepared {
    r: ObjectRef,
    obj: Value,
    /// `None` while the kind is only known from a CRD of the same unit that is not installed yet.
    res: Option<Resolved>,
}

/// Applies units to one cluster. Cheap to share (`&Applier` everywhere); holds a discovery cache.
pub struct Applier {
    client: Client,
    field_manager: String,
    inventory_namespace: String,
    cache: Mutex<HashMap<(String, String, String), Resolved>>,
    retry_attempts: u32,
    retry_base: Duration,
    concurrency: usize,
    limiter: Option<RateLimiter>,
    stats: Counters,
    inventory_namespace_ready: AtomicBool,
    live: Option<Arc<dyn LiveState>>,
    /// resourceVersion of each inventory ConfigMap as this applier last wrote or read it: a
    /// cached inventory is used only when it is at least that version.
    inventory_versions: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("field_manager", &self.field_manager)
            .field("inventory_namespace", &self.inventory_namespace)
            .finish_non_exhaustive()
    }
}

fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            matches!(s.code, 429 | 500 | 502 | 503 | 504)
                || (s.code == 409 && s.reason == "Conflict")
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Removes Secret values the API server may echo in an error about `obj`.
fn redact_error(obj: &Value, e: kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(mut status) => {
            status.message = crate::objects::redact_secret_values(obj, &status.message);
            if let Some(details) = status.details.as_mut() {
                for cause in &mut details.causes {
                    cause.message = crate::objects::redact_secret_values(obj, &cause.message);
                }
            }
            kube::Error::Api(status)
        }
        other => other,
    }
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn emit(opts: &ApplyOptions, unit: &UnitRef, object: &ObjectRef, action: Action) {
    if let Some(f) = &opts.on_event {
        f(&ApplyEvent {
            unit: unit.clone(),
            object: object.clone(),
            action,
        });
    }
}

impl Applier {
    /// An applier using `client`, field manager `capstan` and inventories in `capstan-system`.
    pub fn new(client: Client) -> Self {
        Applier {
            client,
            field_manager: FIELD_MANAGER.to_string(),
            inventory_namespace: INVENTORY_NAMESPACE.to_string(),
            cache: Mutex::new(HashMap::new()),
            retry_attempts: 5,
            retry_base: Duration::from_millis(200),
            concurrency: DEFAULT_CONCURRENCY,
            limiter: Some(RateLimiter::new(DEFAULT_QPS, DEFAULT_BURST)),
            stats: Counters::default(),
            inventory_namespace_ready: AtomicBool::new(false),
            live: None,
            inventory_versions: Mutex::new(HashMap::new()),
        }
    }

    /// Reads live state from `cache` where it can (see [`crate::live`]): objects the cache
    /// shows unchanged since their last apply need no request at all, and inventories are read
    /// from it. Everything the cache cannot tell is read from the API server as without it.
    pub fn with_live_state(mut self, cache: Arc<dyn LiveState>) -> Self {
        self.live = Some(cache);
        self
    }

    /// Sets the client-side rate limit: at most `qps` requests per second on average, with
    /// bursts of up to `burst` (as kubectl's `--qps`/`--burst`). Defaults: [`DEFAULT_QPS`],
    /// [`DEFAULT_BURST`].
    pub fn with_rate_limit(mut self, qps: f64, burst: u32) -> Self {
        self.limiter = Some(RateLimiter::new(qps, burst));
        self
    }

    /// Sends requests without a client-side rate limit.
    pub fn without_rate_limit(mut self) -> Self {
        self.limiter = None;
        self
    }

    /// Requests sent and drift decisions taken so far (see [`ApplyStats`]).
    pub fn stats(&self) -> ApplyStats {
        let c = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ApplyStats {
            skipped: get(&c.skipped),
            dry_runs: get(&c.dry_runs),
            applies: get(&c.applies),
            lists: get(&c.lists),
            gets: get(&c.gets),
            cached: get(&c.cached),
            deletes: get(&c.deletes),
            inventory_writes: get(&c.inventory_writes),
        }
    }

    /// Sets every counter of [`Applier::stats`] back to zero.
    pub fn reset_stats(&self) {
        let c = &self.stats;
        for a in [
            &c.skipped,
            &c.dry_runs,
            &c.applies,
            &c.lists,
            &c.gets,
            &c.cached,
            &c.deletes,
            &c.inventory_writes,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Uses another namespace for the inventory ConfigMaps (default `capstan-system`).
    pub fn with_inventory_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.inventory_namespace = namespace.into();
        self
    }

    /// Sets the retry policy for transient errors (connection errors, 429, 5xx, 409 Conflict):
    /// up to `attempts` tries with exponential backoff starting at `base` (capped at 5 s).
    pub fn with_retry(mut self, attempts: u32, base: Duration) -> Self {
        self.retry_attempts = attempts.max(1);
        self.retry_base = base;
        self
    }

    /// How many objects of one unit are applied (or read, or health-checked) at once
    /// (default [`DEFAULT_CONCURRENCY`]; 1 applies strictly one after the other).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Forgets everything discovery learned (call after CRDs were installed by someone else).
    pub fn refresh_discovery(&self) {
        self.cache.lock().expect("discovery cache").clear();
    }

    async fn retry<T, F, Fut>(&self, mut f: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = self.retry_base;
        let mut attempt = 1;
        loop {
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.retry_attempts && is_transient(&e) => {
                    // Only the code: messages may echo request bodies (Secret values).
                    tracing::debug!(attempt, code = ?api_code(&e), "transient error, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Resolves a kind through discovery (cached). `Ok(None)` when the server does not know it.
    async fn resolve(&self, r: &ObjectRef) -> Result<Option<Resolved>, ApplyError> {
        let key = (r.group.clone(), r.version.clone(), r.kind.clone());
        if let Some(hit) = self.cache.lock().expect("discovery cache").get(&key) {
            return Ok(Some(hit.clone()));
        }
        let result = if r.version.is_empty() {
            self.retry(|| kube::discovery::group(&self.client, &r.group))
                .await
                .map(|g| g.recommended_kind(&r.kind))
        } else {
            let gvk = GroupVersionKind::gvk(&r.group, &r.version, &r.kind);
            self.retry(|| kube::discovery::pinned_kind(&self.client, &gvk))
                .await
                .map(Some)
        };
        match result {
            Ok(Some((ar, caps))) => {
                let res = Resolved {
                    ar,
                    namespaced: caps.scope == Scope::Namespaced,
                };
                self.cache
                    .lock()
                    .expect("discovery cache")
                    .insert(key, res.clone());
                Ok(Some(res))
            }
            Ok(None) => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(ApplyError::Api {
                object: r.clone(),
                operation: "discovery",
                source: e,
            }),
        }
    }

    fn api(&self, res: &Resolved, namespace: &str) -> Api<DynamicObject> {
        if res.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &res.ar)
        } else {
            Api::all_with(self.client.clone(), &res.ar)
        }
    }

    /// Validates, resolves, namespaces, defaults and labels the unit's objects; sorted in apply
    /// order. With `lenient` (plans), kinds nobody defines yet are kept (another unit may
    /// install their CRD first); they are namespaced when they carry a namespace or the unit
    /// has a target namespace.
    async fn prepare(&self, unit: &ApplyUnit, lenient: bool) -> Result<Vec<Prepared>, ApplyError> {
        let mut out = Vec::with_capacity(unit.objects.len());
        for (index, obj) in flatten_lists(&unit.objects).into_iter().enumerate() {
            let Some(mut r) = ObjectRef::from_object(obj) else {
                return Err(ApplyError::InvalidObject {
                    unit: unit.id.clone(),
                    index,
                    reason: "apiVersion, kind and metadata.name are required".into(),
                });
            };
            let mut obj = obj.clone();
            let res = self.resolve(&r).await?;
            let namespaced = match &res {
                Some(res) => res.namespaced,
                None => match crd_scope_in_unit(unit, &r) {
                    Some(namespaced) => namespaced,
                    None if lenient => !r.namespace.is_empty() || unit.target_namespace.is_some(),
                    None => {
                        return Err(ApplyError::UnknownKind {
                            kind: r.kind.clone(),
                            api_version: r.api_version(),
                            object: r,
                        })
                    }
                },
            };
            let meta = obj
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .expect("metadata checked by ObjectRef::from_object");
            if namespaced {
                let ns = unit
                    .target_namespace
                    .clone()
                    .or_else(|| (!r.namespace.is_empty()).then(|| r.namespace.clone()))
                    .unwrap_or_else(|| "default".to_string());
                meta.insert("namespace".into(), Value::String(ns.clone()));
                r.namespace = ns;
            } else {
                meta.remove("namespace");
                r.namespace.clear();
            }
            set_native_defaults(&mut obj);
            set_owner_labels(&mut obj, &unit.id);
            out.push(Prepared { r, obj, res });
        }
        out.sort_by_key(|p| order_key(&p.r));
        Ok(out)
    }

    async fn get_live(
        &self,
        api: &Api<DynamicObject>,
        r: &ObjectRef,
    ) -> Result<Option<Value>, ApplyError> {
        bump(&self.stats.gets);
        self.retry(|| api.get_opt(&r.name))
            .await
            .map(|o| o.as_ref().map(to_value))
            .map_err(|source| ApplyError::Api {
                object: r.clone(),
                operation: "get",
                source,
            })
    }

    /// Reads the stored inventory of a unit (empty when none is stored).
    pub async fn inventory(&self, unit: &UnitRef) -> Result<Vec<ObjectRef>, ApplyError> {
        Ok(self.load_inventory(unit).await?.refs())
    }

    async fn load_inventory(&self, unit: &UnitRef) -> Result<Inventory, ApplyError> {
        let r = self.inventory_ref(unit);
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
        if let Some(text) = self.cached_inventory(&r, &ar) {
            bump(&self.stats.cached);
            return Inventory::decode(&text).map_err(|reason| ApplyError::Inventory {
                unit: unit.clone(),
                reason,
            });
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.inventory_namespace, &ar);
        let Some(cm) = self.get_live(&api, &r).await? else {
            return Ok(Inventory::default());
        };
        self.remember_inventory_version(&r, &cm);
        match cm.pointer("/data/entries").and_then(Value::as_str) {
            None => Ok(Inventory::default()),
            Some(text) => Inventory::decode(text).map_err(|reason| ApplyError::Inventory {
                unit: unit.clone(),
                reason,
            }),
        }
    }

    /// The inventory text from the live-state cache: only when the cache holds the ConfigMap
    /// with its entries, at the version this applier last saw (a cache that has not seen the
    /// applier's own last write yet is not used).
    fn cached_inventory(&self, r: &ObjectRef, ar: &ApiResource) -> Option<String> {
        let cache = self.live.as_ref()?;
        cache.track(ar, true);
        let Cached::Present(cm) = cache.lookup(r) else {
            return None;
        };
        let version = cm
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        let seen = self
            .inventory_versions
            .lock()
            .expect("inventory versions")
            .get(&r.name)
            .cloned();
        if seen.is_some() && seen.as_deref() != version {
            return None;
        }
        cm.pointer("/data/entries")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn remember_inventory_version(&self, r: &ObjectRef, cm: &Value) {
        if self.live.is_none() {
            return;
        }
        if let Some(v) = cm
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            self.inventory_versions
                .lock()
                .expect("inventory versions")
                .insert(r.name.clone(), v.to_string());
        }
    }

    fn inventory_ref(&self, unit: &UnitRef) -> ObjectRef {
        let mut r = inventory_ref(unit);
        r.namespace = self.inventory_namespace.clone();
        r
    }

    fn configmap_api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.inventory_namespace,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
        )
    }

    /// Writes the inventory when it differs from `previous`.
    async fn store_inventory(
        &self,
        unit: &UnitRef,
        previous: &Inventory,
        inv: &Inventory,
    ) -> Result<(), ApplyError> {
        if inv == previous {
            return Ok(());
        }
        let r = self.inventory_ref(unit);
        self.ensure_inventory_namespace().await?;
        let mut cm = inv.to_configmap(unit);
        cm["metadata"]["namespace"] = Value::String(self.inventory_namespace.clone());
        let api = self.configmap_api();
        let pp = PatchParams::apply(&self.field_manager).force();
        let patch = Patch::Apply(&cm);
        bump(&self.stats.inventory_writes);
        let mut outcome = self.retry(|| api.patch(&r.name, &pp, &patch)).await;
        if matches!(&outcome, Err(e) if api_code(e) == Some(404)) {
            // The namespace was deleted since this applier created it.
            self.inventory_namespace_ready
                .store(false, Ordering::Relaxed);
            self.ensure_inventory_namespace().await?;
            bump(&self.stats.inventory_writes);
            outcome = self.retry(|| api.patch(&r.name, &pp, &patch)).await;
        }
        let written = outcome.map_err(|source| ApplyError::Api {
            object: r.clone(),
            operation: "apply inventory",
            source,
        })?;
        self.remember_inventory_version(&r, &to_value(&written));
        Ok(())
    }

    /// Creates the inventory namespace when missing (checked once per applier).
    async fn ensure_inventory_namespace(&self) -> Result<(), ApplyError> {
        if self.inventory_namespace_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.create_inventory_namespace().await?;
        self.inventory_namespace_ready
            .store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn create_inventory_namespace(&self) -> Result<(), ApplyError> {
        let res = Resolved {
            ar: ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")),
            namespaced: false,
        };
        let api = self.api(&res, "");
        let r = ObjectRef::new("v1", "Namespace", "", &self.inventory_namespace);
        if self.get_live(&api, &r).await?.is_some() {
            return Ok(());
        }
        let ns = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": self.inventory_namespace, "labels": {"app.kubernetes.io/managed-by": "capstan"}}
        });
        let pp = PatchParams::apply(&self.field_manager).force();
        let patch = Patch::Apply(&ns);
        self.retry(|| api.patch(&r.name, &pp, &patch))
            .await
            .map_err(|source| ApplyError::Api {
                object: r.clone(),
                operation: "apply",
                source,
            })?;
        Ok(())
    }

    /// Computes what [`Applier::apply`] would do, without changing anything. Objects whose
    /// recorded applied-state hash still matches (see [`crate::drift`]) plan as unchanged
    /// from one LIST per kind and namespace; the others are compared with server-side dry runs
    /// (`dryRun=All`).
    pub async fn plan(&self, unit: &ApplyUnit) -> Result<UnitPlan, ApplyError> {
        let (old, prepared) =
            futures::join!(self.load_inventory(&unit.id), self.prepare(unit, true));
        let (old, prepared) = (old?, prepared?);
        let known = self.prefetch_live(&prepared, &old, &unit.id).await;
        let futures: Vec<_> = prepared
            .iter()
            .map(|p| {
                let known = &known;
                let old = &old;
                async move {
                    match &p.res {
                        None => Ok(PlannedChange {
                            object: p.r.clone(),
                            op: PlanOp::Create,
                            diff: diff(&p.r, None, &p.obj),
                        }),
                        Some(_) if known.unchanged.contains(&p.r.id()) => {
                            bump(&self.stats.skipped);
                            Ok(PlannedChange {
                                object: p.r.clone(),
                                op: PlanOp::Unchanged,
                                diff: None,
                            })
                        }
                        Some(res) => {
                            self.plan_one(p, res, known_live(known, &p.r), old.hash(&p.r))
                                .await
                        }
                    }
                }
            })
            .collect();
        let planned: Vec<Result<PlannedChange, ApplyError>> = stream::iter(futures)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut changes = planned.into_iter().collect::<Result<Vec<_>, _>>()?;
        if unit.prune {
            let new = Inventory::from_refs(prepared.iter().map(|p| &p.r));
            let mut gone: Vec<ObjectRef> = old
                .refs()
                .into_iter()
                .filter(|r| !new.contains(r))
                .collect();
            gone.sort_by_key(order_key);
            gone.reverse();
            for r in gone {
                if self.would_prune(&unit.id, &r).await? {
                    changes.push(PlannedChange {
                        object: r,
                        op: PlanOp::Prune,
                        diff: None,
                    });
                }
            }
        }
        Ok(UnitPlan {
            unit: unit.id.clone(),
            changes,
        })
    }

    /// True when the live object still is as capstan left it after applying this intent: its
    /// applied-state hash equals the recorded one, capstan applied it and owns no field the
    /// intent dropped, and it is not being deleted.
    fn unchanged_since_recorded(&self, p: &Prepared, live: &Value, recorded: &str) -> bool {
        let deleting = live
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        !deleting
            && applied_fields(live, &self.field_manager)
                .is_some_and(|fields| owns_only_intent_fields(fields, &p.obj))
            && applied_state_hash(&p.obj, live) == recorded
    }

    async fn plan_one(
        &self,
        p: &Prepared,
        res: &Resolved,
        known: Option<Option<Value>>,
        recorded: Option<&str>,
    ) -> Result<PlannedChange, ApplyError> {
        let api = self.api(res, &p.r.namespace);
        let live = match known {
            Some(live) => live,
            None => self.get_live(&api, &p.r).await?,
        };
        let change = |op, diff| PlannedChange {
            object: p.r.clone(),
            op,
            diff,
        };
        if let (Some(l), Some(h)) = (&live, recorded) {
            if self.unchanged_since_recorded(p, l, h) {
                bump(&self.stats.skipped);
                return Ok(change(PlanOp::Unchanged, None));
            }
        }
        let pp = PatchParams::apply(&self.field_manager).force().dry_run();
        let patch = Patch::Apply(&p.obj);
        bump(&self.stats.dry_runs);
        let dry = self.retry(|| api.patch(&p.r.name, &pp, &patch)).await;
        match dry {
            Ok(dry) => {
                let dry = to_value(&dry);
                match &live {
                    Some(l) if same_content(l, &dry) => Ok(change(PlanOp::Unchanged, None)),
                    Some(l) => Ok(change(PlanOp::Update, diff(&p.r, Some(l), &dry))),
                    None => Ok(change(PlanOp::Create, diff(&p.r, None, &dry))),
                }
            }
            Err(kube::Error::Api(s)) if is_immutable_error(s.code, &s.message) => Ok(change(
                PlanOp::Replace {
                    reason: crate::objects::redact_secret_values(&p.obj, &s.message),
                },
                None,
            )),
            // The namespace (or CRD) it needs is created by the same unit.
            Err(e) if live.is_none() && api_code(&e) == Some(404) => {
                Ok(change(PlanOp::Create, diff(&p.r, None, &p.obj)))
            }
            Err(source) => Err(ApplyError::Api {
                object: p.r.clone(),
                operation: "dry-run apply",
                source: redact_error(&p.obj, source),
            }),
        }
    }

    /// Applies a unit: stage one (Namespaces, CRDs), wait for CRDs, then the rest in stages
    /// (see `stage`), each stage's objects concurrently; skips objects whose recorded
    /// applied-state hash still matches, and objects whose dry run equals the live object;
    /// replaces on immutable changes when `force`; prunes objects that left the unit; stores
    /// the inventory (with the new hashes); waits for health.
    pub async fn apply(
        &self,
        unit: &ApplyUnit,
        opts: &ApplyOptions,
    ) -> Result<UnitResult, ApplyError> {
        let (old, prepared) =
            futures::join!(self.load_inventory(&unit.id), self.prepare(unit, false));
        let (old, mut prepared) = (old?, prepared?);
        let new_inv = Inventory::from_refs(prepared.iter().map(|p| &p.r));
        let mut result = UnitResult::default();

        // Write-ahead: objects about to be created are recorded before they exist, so a
        // process killed mid-apply leaves no object that no inventory knows (the next
        // apply prunes what the repository no longer renders). Costs a write only when
        // the unit gains objects. Recorded hashes stay: they describe the last successful
        // apply, and a changed intent does not match them. The live objects are read at the
        // same time (one LIST per kind and namespace).
        let mut applied = old.clone();
        for r in new_inv.refs() {
            applied.insert(r);
        }
        //
        // A first apply (no inventory yet) skips the write-ahead and writes the inventory once,
        // after the objects were applied (or failed), as Flux records its inventory: a process
        // killed during a unit's very first apply leaves objects that the next apply records
        // again while the repository still renders them.
        let ahead = applied != old && !old.is_empty();
        let write_ahead = async {
            if ahead {
                self.store_inventory(&unit.id, &old, &applied).await
            } else {
                Ok(())
            }
        };
        let (written, known) =
            futures::join!(write_ahead, self.prefetch_live(&prepared, &old, &unit.id));
        written?;
        let before = applied.clone();
        // What the cluster's inventory holds now.
        let stored = if ahead { applied.clone() } else { old.clone() };
        let outcome = self
            .apply_all(
                unit,
                opts,
                &mut prepared,
                &known,
                &old,
                &mut result,
                &mut applied,
            )
            .await;
        if let Err(e) = outcome {
            if let Err(store) = self.store_inventory(&unit.id, &stored, &applied).await {
                tracing::warn!(error = %store, "cannot record the partially applied inventory");
            }
            return Err(e);
        }
        let old = before;

        // Prune only after the whole new set applied. The new inventory keeps the hashes of
        // what was applied.
        let mut final_inv = new_inv.clone();
        for r in new_inv.refs() {
            if let Some(h) = applied.hash(&r) {
                final_inv.insert_hashed(r, h.to_string());
            }
        }
        if unit.prune {
            let mut gone: Vec<ObjectRef> = old
                .refs()
                .into_iter()
                .filter(|r| !new_inv.contains(r))
                .collect();
            gone.sort_by_key(order_key);
            gone.reverse();
            for (i, r) in gone.iter().enumerate() {
                match self.prune_one(&unit.id, r).await {
                    Ok(action) => {
                        emit(opts, &unit.id, r, action.clone());
                        result.pruned.push(ObjectResult {
                            object: r.clone(),
                            action,
                        });
                    }
                    Err(e) => {
                        // Keep tracking this object and the ones not attempted yet.
                        for rest in &gone[i..] {
                            final_inv.insert(rest.clone());
                        }
                        if let Err(store) =
                            self.store_inventory(&unit.id, &stored, &final_inv).await
                        {
                            tracing::warn!(error = %store, "cannot record the inventory");
                        }
                        return Err(e);
                    }
                }
            }
        }
        self.store_inventory(&unit.id, &stored, &final_inv).await?;
        result.inventory = final_inv.refs();

        // Health.
        let targets: Vec<ObjectRef> = if unit.wait {
            prepared.iter().map(|p| p.r.clone()).collect()
        } else {
            unit.health_checks.clone()
        };
        if !targets.is_empty() {
            // Objects this apply wrote are read from the API server until Current (a cache
            // may not have seen the write yet); the others may be Current from the cache.
            let written: HashSet<String> = result
                .objects
                .iter()
                .filter(|o| o.action != Action::Unchanged)
                .map(|o| o.object.id())
                .collect();
            result.health = self
                .wait_healthy_with(&unit.id, &targets, unit.timeout, opts, Some(&written))
                .await?;
        }
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_all(
        &self,
        unit: &ApplyUnit,
        opts: &ApplyOptions,
        prepared: &mut [Prepared],
        known: &Known,
        old: &Inventory,
        result: &mut UnitResult,
        applied: &mut Inventory,
    ) -> Result<(), ApplyError> {
        let split = prepared
            .iter()
            .filter(|p| is_cluster_definition(&p.r))
            .count();
        // Stage one sorts first (Namespace and CustomResourceDefinition rank first), then the
        // other stages, each in kind order.
        prepared.sort_by_key(|p| (!is_cluster_definition(&p.r), stage(&p.r), order_key(&p.r)));
        let (stage_one, rest) = prepared.split_at_mut(split);
        if let Some(p) = stage_one.iter().find(|p| p.res.is_none()) {
            return Err(ApplyError::UnknownKind {
                object: p.r.clone(),
                kind: p.r.kind.clone(),
                api_version: p.r.api_version(),
            });
        }
        self.apply_batch(unit, opts, stage_one, known, old, result, applied)
            .await?;
        let crds: Vec<(ObjectRef, Resolved)> = stage_one
            .iter()
            .filter(|p| p.r.kind == "CustomResourceDefinition")
            .filter_map(|p| p.res.clone().map(|res| (p.r.clone(), res)))
            .collect();
        if !crds.is_empty() {
            self.wait_crds(&crds, unit.timeout).await?;
        }
        // Kinds defined by CRDs of this unit: discovery must see them now.
        let deadline = Instant::now() + unit.timeout;
        for p in rest.iter_mut().filter(|p| p.res.is_none()) {
            loop {
                if let Some(res) = self.resolve(&p.r).await? {
                    p.res = Some(res);
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ApplyError::UnknownKind {
                        object: p.r.clone(),
                        kind: p.r.kind.clone(),
                        api_version: p.r.api_version(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.refresh_discovery();
            }
        }
        let mut start = 0;
        while start < rest.len() {
            let current = stage(&rest[start].r);
            let len = rest[start..]
                .iter()
                .take_while(|p| stage(&p.r) == current)
                .count();
            self.apply_batch(
                unit,
                opts,
                &rest[start..start + len],
                known,
                old,
                result,
                applied,
            )
            .await?;
            start += len;
        }
        Ok(())
    }

    /// Applies objects (already resolved and sorted) concurrently, at most `concurrency` at a
    /// time, started in order; results are recorded in order. Fails with the first error
    /// after every started object finished.
    #[allow(clippy::too_many_arguments)]
    async fn apply_batch(
        &self,
        unit: &ApplyUnit,
        opts: &ApplyOptions,
        items: &[Prepared],
        known: &Known,
        old: &Inventory,
        result: &mut UnitResult,
        applied: &mut Inventory,
    ) -> Result<(), ApplyError> {
        let futures: Vec<_> = items
            .iter()
            .map(|p| {
                let live = if known.unchanged.contains(&p.r.id()) {
                    Live::Unchanged
                } else {
                    Live::Known(known_live(known, &p.r))
                };
                self.apply_and_emit(unit, opts, p, live, old.hash(&p.r))
            })
            .collect();
        let outcomes: Vec<Result<(Action, Option<String>), ApplyError>> = stream::iter(futures)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut first_error = None;
        for (p, outcome) in items.iter().zip(outcomes) {
            match outcome {
                Ok((action, hash)) => {
                    match hash {
                        Some(h) => applied.insert_hashed(p.r.clone(), h),
                        None => applied.insert(p.r.clone()),
                    }
                    result.objects.push(ObjectResult {
                        object: p.r.clone(),
                        action,
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads the live objects of a unit with one LIST per kind and namespace where the unit
    /// has several objects of that kind there (one request instead of one GET per object).
    /// When every such object was applied before, the LIST selects the unit's ownership labels
    /// (only the unit's objects come back; one missing from it is read with a GET); otherwise
    /// (first apply) it lists the kind in the namespace, and a missing object does not exist.
    /// Kinds and namespaces not listed (one object, or a failed LIST) are read one by one.
    async fn prefetch_live(&self, items: &[Prepared], old: &Inventory, unit: &UnitRef) -> Known {
        const LIST_FROM: usize = 2;
        struct Group<'a> {
            count: usize,
            all_recorded: bool,
            res: &'a Resolved,
        }
        let mut unchanged = HashSet::new();
        if let Some(cache) = &self.live {
            let mut tracked = HashSet::new();
            for p in items {
                let Some(res) = &p.res else { continue };
                if tracked.insert((p.r.group.as_str(), p.r.kind.as_str())) {
                    cache.track(&res.ar, res.namespaced);
                }
                let Some(recorded) = old.hash(&p.r) else {
                    continue;
                };
                if let Cached::Present(v) = cache.lookup(&p.r) {
                    bump(&self.stats.cached);
                    if self.unchanged_since_recorded(p, &v, recorded) {
                        unchanged.insert(p.r.id());
                    }
                }
            }
        }
        let mut groups: HashMap<KindKey, Group> = HashMap::new();
        for p in items {
            if unchanged.contains(&p.r.id()) {
                continue;
            }
            if let Some(res) = &p.res {
                let g = groups.entry(kind_key(&p.r)).or_insert(Group {
                    count: 0,
                    all_recorded: true,
                    res,
                });
                g.count += 1;
                g.all_recorded &= old.hash(&p.r).is_some();
            }
        }
        let selector = format!(
            "{LABEL_KIND}={},{LABEL_NAMESPACE}={},{LABEL_NAME}={}",
            unit.kind.to_lowercase(),
            unit.namespace,
            unit.name
        );
        let lists: Vec<_> = groups
            .into_iter()
            .filter(|(_, g)| g.count >= LIST_FROM)
            .map(|(key, g)| {
                // Listing every CRD of a cluster is large: select the unit's.
                let crd = key.0 == "apiextensions.k8s.io" && key.1 == "CustomResourceDefinition";
                let labels = (g.all_recorded || crd).then_some(selector.as_str());
                self.list_live(key, g.res, labels)
            })
            .collect();
        let listed: Vec<Option<_>> = stream::iter(lists)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        Known {
            lists: listed.into_iter().flatten().collect(),
            unchanged,
        }
    }

    async fn list_live(
        &self,
        key: KindKey,
        res: &Resolved,
        labels: Option<&str>,
    ) -> Option<(KindKey, Listed)> {
        let api = self.api(res, &key.2);
        let mut lp = ListParams::default();
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        bump(&self.stats.lists);
        let listed = self.retry(|| api.list(&lp)).await.ok()?;
        let objects = listed
            .items
            .iter()
            .filter_map(|o| {
                // List items come without apiVersion and kind; put them back so they
                // compare equal to what a GET returns.
                let mut v = to_value(o);
                if let Some(m) = v.as_object_mut() {
                    m.insert(
                        "apiVersion".into(),
                        Value::String(res.ar.api_version.clone()),
                    );
                    m.insert("kind".into(), Value::String(res.ar.kind.clone()));
                }
                Some((o.metadata.name.clone()?, v))
            })
            .collect();
        Some((
            key,
            Listed {
                complete: labels.is_none(),
                objects,
            },
        ))
    }

    async fn apply_and_emit(
        &self,
        unit: &ApplyUnit,
        opts: &ApplyOptions,
        p: &Prepared,
        live: Live,
        recorded: Option<&str>,
    ) -> Result<(Action, Option<String>), ApplyError> {
        let res = p.res.as_ref().expect("resolved before applying");
        let live = match (live, recorded) {
            (Live::Unchanged, Some(h)) => {
                bump(&self.stats.skipped);
                emit(opts, &unit.id, &p.r, Action::Unchanged);
                return Ok((Action::Unchanged, Some(h.to_string())));
            }
            (Live::Unchanged, None) => None,
            (Live::Known(known), _) => known,
        };
        let (action, hash) = self.apply_one(unit, p, res, live, recorded).await?;
        emit(opts, &unit.id, &p.r, action.clone());
        Ok((action, hash))
    }

    /// Applies one object and returns what happened with its new applied-state hash. Sends
    /// nothing when the recorded hash still matches, and no write when the dry run equals the
    /// live object. `known` is the live object when it was already read (`Some(None)`: known
    /// not to exist). A new object is applied directly (no dry run: there is nothing to
    /// compare with).
    async fn apply_one(
        &self,
        unit: &ApplyUnit,
        p: &Prepared,
        res: &Resolved,
        known: Option<Option<Value>>,
        recorded: Option<&str>,
    ) -> Result<(Action, Option<String>), ApplyError> {
        let api = self.api(res, &p.r.namespace);
        let live = match known {
            Some(live) => live,
            None => self.get_live(&api, &p.r).await?,
        };
        if let (Some(l), Some(h)) = (&live, recorded) {
            if self.unchanged_since_recorded(p, l, h) {
                bump(&self.stats.skipped);
                return Ok((Action::Unchanged, Some(h.to_string())));
            }
        }
        let hash_of = |after: &DynamicObject| Some(applied_state_hash(&p.obj, &to_value(after)));
        let pp = PatchParams::apply(&self.field_manager).force();
        if live.is_none() {
            let object = p.r.clone();
            let create = Patch::Apply(&p.obj);
            bump(&self.stats.applies);
            let created = self
                .retry(|| api.patch(&p.r.name, &pp, &create))
                .await
                .map_err(|source| ApplyError::Api {
                    object,
                    operation: "apply",
                    source: redact_error(&p.obj, source),
                })?;
            return Ok((Action::Created, hash_of(&created)));
        }
        let dry_pp = pp.clone().dry_run();
        let patch = Patch::Apply(&p.obj);
        let background = DeleteParams::background();
        let api_err = |operation: &'static str| {
            let object = p.r.clone();
            move |source| ApplyError::Api {
                object,
                operation,
                source: redact_error(&p.obj, source),
            }
        };
        bump(&self.stats.dry_runs);
        match self.retry(|| api.patch(&p.r.name, &dry_pp, &patch)).await {
            Ok(dry) => {
                if let Some(l) = &live {
                    // Skip the write when nothing would change and capstan already manages
                    // the object (otherwise apply once to take ownership of the fields, so
                    // that removing a field from the unit later removes it from the object).
                    if same_content(l, &to_value(&dry)) && applied_by(l, &self.field_manager) {
                        return Ok((Action::Unchanged, Some(applied_state_hash(&p.obj, l))));
                    }
                }
                bump(&self.stats.applies);
                let after = self
                    .retry(|| api.patch(&p.r.name, &pp, &patch))
                    .await
                    .map_err(api_err("apply"))?;
                let action = if live.is_some() {
                    Action::Configured
                } else {
                    Action::Created
                };
                Ok((action, hash_of(&after)))
            }
            Err(kube::Error::Api(s)) if is_immutable_error(s.code, &s.message) => {
                if !unit.force {
                    return Err(ApplyError::Immutable {
                        object: p.r.clone(),
                        message: crate::objects::redact_secret_values(&p.obj, &s.message),
                    });
                }
                tracing::info!(object = %p.r, "immutable field changed; recreating");
                bump(&self.stats.deletes);
                self.retry(|| api.delete(&p.r.name, &background))
                    .await
                    .map_err(api_err("delete"))?;
                let deadline = Instant::now() + unit.timeout;
                while self.get_live(&api, &p.r).await?.is_some() {
                    if Instant::now() >= deadline {
                        return Err(ApplyError::DeleteTimeout {
                            object: p.r.clone(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                bump(&self.stats.applies);
                let after = self
                    .retry(|| api.patch(&p.r.name, &pp, &patch))
                    .await
                    .map_err(api_err("apply"))?;
                Ok((Action::Replaced, hash_of(&after)))
            }
            Err(e) => Err(api_err("dry-run apply")(e)),
        }
    }

    async fn wait_crds(
        &self,
        crds: &[(ObjectRef, Resolved)],
        timeout: Duration,
    ) -> Result<(), ApplyError> {
        let deadline = Instant::now() + timeout;
        for (r, res) in crds {
            let api = self.api(res, "");
            loop {
                let live = self.get_live(&api, r).await?;
                let health = capstan_health::compute_opt(live.as_ref());
                match health.status {
                    Status::Current => break,
                    Status::Failed => {
                        return Err(ApplyError::HealthFailed {
                            failed: vec![(r.clone(), health)],
                        })
                    }
                    _ if Instant::now() >= deadline => {
                        return Err(ApplyError::HealthTimeout {
                            timeout,
                            not_ready: vec![(r.clone(), health)],
                        })
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        self.refresh_discovery();
        Ok(())
    }

    /// Whether [`Applier::prune_one`] would delete the object.
    async fn would_prune(&self, unit: &UnitRef, r: &ObjectRef) -> Result<bool, ApplyError> {
        let Some(res) = self.resolve(r).await? else {
            return Ok(false);
        };
        let api = self.api(&res, &r.namespace);
        Ok(match self.get_live(&api, r).await? {
            None => false,
            Some(live) => !prune_disabled(&live) && !owned_by_other_unit(&live, unit),
        })
    }

    /// Prunes one object of the old inventory.
    async fn prune_one(&self, unit: &UnitRef, r: &ObjectRef) -> Result<Action, ApplyError> {
        let Some(res) = self.resolve(r).await? else {
            // The kind is gone (its CRD was removed): so are its objects.
            return Ok(Action::PruneSkipped);
        };
        let api = self.api(&res, &r.namespace);
        let Some(live) = self.get_live(&api, r).await? else {
            return Ok(Action::PruneSkipped);
        };
        if prune_disabled(&live) || owned_by_other_unit(&live, unit) {
            return Ok(Action::PruneSkipped);
        }
        if live
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Ok(Action::Pruned);
        }
        let background = DeleteParams::background();
        bump(&self.stats.deletes);
        match self.retry(|| api.delete(&r.name, &background)).await {
            Ok(_) => Ok(Action::Pruned),
            Err(e) if api_code(&e) == Some(404) => Ok(Action::PruneSkipped),
            Err(source) => Err(ApplyError::Api {
                object: r.clone(),
                operation: "delete",
                source,
            }),
        }
    }

    /// Health of one object (NotFound when it or its kind does not exist).
    pub async fn health(&self, r: &ObjectRef) -> Result<Health, ApplyError> {
        let Some(res) = self.resolve(r).await? else {
            return Ok(Health::not_found());
        };
        let api = self.api(&res, &r.namespace);
        let live = self.get_live(&api, r).await?;
        Ok(capstan_health::compute_opt(live.as_ref()))
    }

    /// Polls until every target is Current, one is Failed (with `fail_fast`), or `timeout`.
    pub async fn wait_healthy(
        &self,
        unit: &UnitRef,
        targets: &[ObjectRef],
        timeout: Duration,
        opts: &ApplyOptions,
    ) -> Result<Vec<(ObjectRef, Health)>, ApplyError> {
        self.wait_healthy_with(unit, targets, timeout, opts, None)
            .await
    }

    /// [`Applier::wait_healthy`]; with `written` (objects the caller just wrote), every other
    /// target the live-state cache shows Current counts as Current without a request.
    async fn wait_healthy_with(
        &self,
        unit: &UnitRef,
        targets: &[ObjectRef],
        timeout: Duration,
        opts: &ApplyOptions,
        written: Option<&HashSet<String>>,
    ) -> Result<Vec<(ObjectRef, Health)>, ApplyError> {
        let deadline = Instant::now() + timeout;
        let mut last: HashMap<String, Health> = HashMap::new();
        let cached_current = |r: &ObjectRef| -> Option<Health> {
            let cache = self.live.as_ref()?;
            if written?.contains(&r.id()) {
                return None;
            }
            let h = cache.health(r).filter(Health::is_current)?;
            bump(&self.stats.cached);
            Some(h)
        };
        loop {
            let futures: Vec<_> = targets
                .iter()
                .map(|r| {
                    let known = last
                        .get(&r.id())
                        .filter(|h| h.is_current())
                        .cloned()
                        .or_else(|| cached_current(r));
                    async move {
                        match known {
                            Some(h) => Ok(h),
                            None => self.health(r).await,
                        }
                    }
                })
                .collect();
            let healths: Vec<Result<Health, ApplyError>> = stream::iter(futures)
                .buffered(self.concurrency)
                .collect()
                .await;
            let mut all = Vec::with_capacity(targets.len());
            for (r, h) in targets.iter().zip(healths) {
                let h = h?;
                if last.get(&r.id()) != Some(&h) {
                    let action = match h.status {
                        Status::Current => Action::Healthy,
                        Status::Failed => Action::Unhealthy(h.message.clone()),
                        _ => Action::Waiting(format!("{}: {}", h.status, h.message)),
                    };
                    emit(opts, unit, r, action);
                    last.insert(r.id(), h.clone());
                }
                all.push((r.clone(), h));
            }
            if all.iter().all(|(_, h)| h.is_current()) {
                return Ok(all);
            }
            let failed: Vec<_> = all
                .iter()
                .filter(|(_, h)| h.status == Status::Failed)
                .cloned()
                .collect();
            if opts.fail_fast && !failed.is_empty() {
                return Err(ApplyError::HealthFailed { failed });
            }
            if Instant::now() >= deadline {
                let not_ready: Vec<_> = all.into_iter().filter(|(_, h)| !h.is_current()).collect();
                for (r, h) in &not_ready {
                    emit(opts, unit, r, Action::Unhealthy(h.to_string()));
                }
                return Err(ApplyError::HealthTimeout { timeout, not_ready });
            }
            tokio::time::sleep(opts.poll_interval).await;
        }
    }

    /// Uninstalls a unit: deletes every object of its inventory in reverse apply order
    /// (objects annotated `prune: disabled` are kept), then the inventory itself.
    pub async fn delete_unit(
        &self,
        unit: &UnitRef,
        opts: &ApplyOptions,
    ) -> Result<UnitResult, ApplyError> {
        let inv = self.load_inventory(unit).await?;
        let mut refs = inv.refs();
        refs.sort_by_key(order_key);
        refs.reverse();
        let mut result = UnitResult::default();
        let mut remaining = inv.clone();
        for r in refs {
            let action = match self.prune_one(unit, &r).await {
                Ok(Action::Pruned) => Action::Deleted,
                Ok(other) => other,
                Err(e) => {
                    if let Err(store) = self.store_inventory(unit, &inv, &remaining).await {
                        tracing::warn!(error = %store, "cannot record the inventory");
                    }
                    return Err(e);
                }
            };
            remaining.remove(&r);
            emit(opts, unit, &r, action.clone());
            result.objects.push(ObjectResult { object: r, action });
        }
        let inv_ref = self.inventory_ref(unit);
        let api = self.configmap_api();
        let background = DeleteParams::background();
        match self.retry(|| api.delete(&inv_ref.name, &background)).await {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => {
                return Err(ApplyError::Api {
                    object: inv_ref,
                    operation: "delete inventory",
                    source,
                })
            }
        }
        Ok(result)
    }
}

/// Expands `v1/List` (and any `*List` kind with `items`) into its items.
fn flatten_lists(objects: &[Value]) -> Vec<&Value> {
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        let is_list = o
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && o.get("items").is_some_and(Value::is_array)
            && o.pointer("/metadata/name").is_none();
        match o.get("items").and_then(Value::as_array) {
            Some(items) if is_list => out.extend(flatten_lists(items)),
            _ => out.push(o),
        }
    }
    out
}

/// True when `manager` has an `Apply` entry in the object's managedFields.
fn applied_by(obj: &Value, manager: &str) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|e| {
                e.get("manager").and_then(Value::as_str) == Some(manager)
                    && e.get("operation").and_then(Value::as_str) == Some("Apply")
            })
        })
}

/// Scope of a kind defined by a CRD of the unit: `Some(true)` for namespaced.
fn crd_scope_in_unit(unit: &ApplyUnit, r: &ObjectRef) -> Option<bool> {
    unit.objects.iter().find_map(|o| {
        let is_crd = o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && o.get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"));
        if !is_crd {
            return None;
        }
        let spec = o.get("spec")?;
        if spec.get("group").and_then(Value::as_str) != Some(r.group.as_str())
            || spec.pointer("/names/kind").and_then(Value::as_str) != Some(r.kind.as_str())
        {
            return None;
        }
        Some(spec.get("scope").and_then(Value::as_str) != Some("Cluster"))
    })
}

/// True when the object's capstan labels name a different unit (it moved to another unit).
fn owned_by_other_unit(obj: &Value, unit: &UnitRef) -> bool {
    let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return false;
    };
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    match (get(LABEL_KIND), get(LABEL_NAMESPACE), get(LABEL_NAME)) {
        (Some(k), Some(ns), Some(n)) => {
            k != unit.kind.to_lowercase() || ns != unit.namespace || n != unit.name
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transient_errors() {
        let api = |code: u16, reason: &str| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", reason).with_code(code),
            ))
        };
        assert!(is_transient(&api(503, "ServiceUnavailable")));
        assert!(is_transient(&api(429, "TooManyRequests")));
        assert!(is_transient(&api(500, "InternalError")));
        assert!(is_transient(&api(409, "Conflict")));
        assert!(!is_transient(&api(409, "AlreadyExists")));
        assert!(!is_transient(&api(422, "Invalid")));
        assert!(!is_transient(&api(404, "NotFound")));
    }

    #[tokio::test]
    async fn retry_backs_off_then_gives_up() {
        // A client that is never used: retry only runs the closure.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let applier =
            Applier::new(Client::try_from(config).unwrap()).with_retry(3, Duration::from_millis(1));
        let calls = std::sync::atomic::AtomicU32::new(0);
        let out: Result<(), kube::Error> = applier
            .retry(|| async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(kube::Error::Api(Box::new(
                    kube::core::Status::failure("busy", "ServiceUnavailable").with_code(503),
                )))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let out = applier
            .retry(|| async {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n == 0 {
                    Err(kube::Error::Api(Box::new(
                        kube::core::Status::failure("busy", "TooManyRequests").with_code(429),
                    )))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(out.unwrap(), 1);
    }

    #[test]
    fn lists_are_flattened() {
        let objs = vec![
            json!({"apiVersion":"v1","kind":"List","items":[
                {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},
                {"apiVersion":"v1","kind":"ConfigMapList","items":[
                    {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]}]}),
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}),
        ];
        let names: Vec<&str> = flatten_lists(&objs)
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn field_manager_detection() {
        let o = json!({"metadata":{"managedFields":[
            {"manager":"kubectl","operation":"Apply"},
            {"manager":"capstan","operation":"Update"}]}});
        assert!(applied_by(&o, "kubectl"));
        assert!(!applied_by(&o, "capstan"));
        assert!(!applied_by(&json!({"metadata":{}}), "capstan"));
    }

    #[test]
    fn crd_scope_lookup() {
        let unit = ApplyUnit::new(
            UnitRef::new("Kustomization", "flux-system", "x"),
            vec![
                json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
                "metadata":{"name":"widgets.example.com"},
                "spec":{"group":"example.com","scope":"Cluster","names":{"kind":"Widget","plural":"widgets"}}}),
            ],
        );
        assert_eq!(
            crd_scope_in_unit(&unit, &ObjectRef::new("example.com/v1", "Widget", "", "w")),
            Some(false)
        );
        assert_eq!(
            crd_scope_in_unit(&unit, &ObjectRef::new("example.com/v1", "Gadget", "", "w")),
            None
        );
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_paces() {
        let limiter = RateLimiter::new(10.0, 3);
        let t0 = Instant::now();
        // The burst: three requests at once.
        for _ in 0..3 {
            assert_eq!(limiter.reserve(t0), None);
        }
        // The fourth waits for one token (100 ms at 10 per second), the fifth for two.
        let wait = limiter.reserve(t0).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        let wait = limiter.reserve(t0).unwrap();
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-6, "{wait:?}");
        // After a second, the bucket is full again (capped at the burst).
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(limiter.reserve(later), None);
        }
        assert!(limiter.reserve(later).is_some());
    }

    #[test]
    fn apply_stages() {
        let stage_of = |kind: &str| stage(&ObjectRef::new("v1", kind, "", "x"));
        assert_eq!(stage_of("ServiceAccount"), 1);
        assert_eq!(stage_of("ClusterRoleBinding"), 1);
        assert_eq!(stage_of("ConfigMap"), 2);
        assert_eq!(stage_of("Deployment"), 2);
        assert_eq!(stage_of("Widget"), 2);
        assert_eq!(stage_of("MutatingWebhookConfiguration"), 3);
        assert_eq!(stage_of("ValidatingWebhookConfiguration"), 3);
    }

    #[test]
    fn listed_objects_are_known_or_missing() {
        let r = ObjectRef::new("v1", "ConfigMap", "ns", "a");
        let mut known = Known::default();
        assert_eq!(known_live(&known, &r), None);
        known.lists.insert(
            kind_key(&r),
            Listed {
                complete: false,
                objects: HashMap::new(),
            },
        );
        // Missing from a LIST by labels: unknown (its labels may have been changed).
        assert_eq!(known_live(&known, &r), None);
        known.lists.get_mut(&kind_key(&r)).unwrap().complete = true;
        assert_eq!(known_live(&known, &r), Some(None));
        known
            .lists
            .get_mut(&kind_key(&r))
            .unwrap()
            .objects
            .insert("a".into(), json!({"metadata":{"name":"a"}}));
        assert_eq!(
            known_live(&known, &r),
            Some(Some(json!({"metadata":{"name":"a"}})))
        );
    }

    #[test]
    fn other_unit_ownership() {
        let u = UnitRef::new("Kustomization", "flux-system", "apps");
        let mut o = json!({"metadata":{"name":"x"}});
        assert!(!owned_by_other_unit(&o, &u));
        set_owner_labels(&mut o, &u);
        assert!(!owned_by_other_unit(&o, &u));
        set_owner_labels(
            &mut o,
            &UnitRef::new("Kustomization", "flux-system", "infra"),
        );
        assert!(owned_by_other_unit(&o, &u));
    }
}
