//! Argo CD Applications as units of the cluster's one dependency graph, beside Flux units.
//!
//! Every Application reachable from the cluster's root (Applications and ApplicationSets
//! declared beneath a directory, or one root Application; app of apps followed) becomes a
//! unit `Application/<namespace>/<name>`, rendered by `capstan-argocd`:
//!
//! * **sync waves** of its resources: an Application whose resources span several waves is
//!   split into one unit per wave, `ApplicationWave/<namespace>/<name>.wave<N>`, chained
//!   (wave N waits for wave N-1 to be applied and healthy); the last wave is the
//!   `Application` unit itself, so whatever waits for the Application waits for all of it;
//! * **hooks**: PreSync hooks run before the first wave, Sync hooks with their wave, PostSync
//!   hooks after the last wave is healthy (capstan's hook phases, with Argo CD's delete
//!   policies); Helm hooks inside Argo sources are mapped as Argo CD maps them; `Skip` is
//!   never applied; SyncFail, PreDelete and PostDelete hooks are reported, not run;
//! * **sync waves of child Applications**: among Applications with the same parent (or
//!   among the roots), one in wave N waits for those in lower waves;
//! * **`capstan.io/depends-on`** on an Application: explicit edges to other units, Flux or
//!   Argo (`NAME`, `KIND/NAME`, `KIND/NAMESPACE/NAME`);
//! * capstan's **implicit Namespace and CRD edges** come from the rendered objects, as for
//!   Flux units;
//! * **sync options**: `automated.prune` (and not `Prune=false`) is the unit's prune,
//!   `CreateNamespace=true` adds the destination Namespace (with
//!   `managedNamespaceMetadata`, never pruned), `Replace=true` recreates objects an update
//!   cannot change, resources annotated `Prune=false`/`Delete=false` (or Helm's
//!   `resource-policy: keep`) are never pruned, `RespectIgnoreDifferences` leaves the
//!   ignored fields out of what is applied, `ignoreDifferences` is honoured by diff; the
//!   resources finalizer decides whether a removed Application's objects are deleted.
//!
//! Child Applications and ApplicationSets found in an Application's output are consumed
//! (they are units themselves), not applied as objects of their parent.

use std::collections::{BTreeMap, BTreeSet};

/// The Argo CD reader (Applications, sync mapping, status), for the engine's callers.
pub use capstan_argocd as reader;
use std::path::PathBuf;

use capstan_argocd::sync::{self, HookType, SyncPolicy};
use capstan_argocd::{AppRecord, Declared, Options};
use capstan_graph::UnitId;
use capstan_units::{
    ClusterUnits, ErrorKind, KustomizationSpec, Location, RenderedUnit, Unit, UnitError,
    UnitOutcome,
};
use capstan_vfs::FileSystem;
use serde_json::{json, Value};

/// The unit kind of an Application (its last wave).
pub const APPLICATION: &str = "Application";
/// The unit kind of an Application's earlier sync waves.
pub const APPLICATION_WAVE: &str = "ApplicationWave";
/// The namespace of Applications that do not name one (Argo CD's own).
pub const DEFAULT_NAMESPACE: &str = "argocd";

/// Where a cluster's Argo CD Applications start.
#[derive(Debug, Clone, Default)]
pub struct ArgoRoot {
    /// Applications and ApplicationSets declared in this file or beneath this directory
    /// (relative to the repository root) are the roots.
    pub path: Option<String>,
    /// The root is the Application (or ApplicationSet) with this name.
    pub app: Option<String>,
    /// How to render (this repository's URLs, kustomize options, clusters...).
    pub options: Options,
    /// Flux units of this cluster path are units of the same graph (`None`: Argo CD only).
    pub flux_path: Option<String>,
}

/// Is this unit one of an Argo CD Application?
pub fn is_argo_unit(unit: &Unit) -> bool {
    matches!(unit.id.kind.as_str(), APPLICATION | APPLICATION_WAVE)
        && unit
            .object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with("argoproj.io/"))
}

/// Does removing this unit from the repository delete its objects? Argo CD units: when the
/// Application carries the resources finalizer. Flux units: when they prune.
pub fn deletes_on_removal(unit: &Unit) -> bool {
    if is_argo_unit(unit) {
        return SyncPolicy::of(&unit.object).is_ok_and(|p| p.resources_finalizer);
    }
    unit.spec.prune
}

/// An Application's destination cluster other than the one the round drives.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArgoDestination {
    /// Where the cluster Secrets are (the Application's namespace).
    pub namespace: String,
    /// `destination.server` (may be empty when `name` is given).
    pub server: String,
    /// `destination.name` (may be empty when `server` is given).
    pub name: String,
}

/// Where an Argo CD unit applies: `None` for the cluster Argo CD runs in (`in-cluster`,
/// `https://kubernetes.default.svc`) and for other units.
pub fn destination(unit: &Unit) -> Option<ArgoDestination> {
    if !is_argo_unit(unit) {
        return None;
    }
    let d = unit.object.pointer("/spec/destination")?;
    let s = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    };
    let (server, name) = (s("server"), s("name"));
    if server == capstan_argocd::IN_CLUSTER_SERVER
        || (server.is_empty() && (name == "in-cluster" || name.is_empty()))
    {
        return None;
    }
    Some(ArgoDestination {
        namespace: unit.id.namespace.clone(),
        server,
        name,
    })
}

/// A unit's objects as `diff` compares them: an Argo CD unit's `ignoreDifferences`
/// (jsonPointers, jqPathExpressions) left out of the desired objects, so the server-side
/// dry run keeps the live values there and the diff shows no change in them.
pub fn diff_objects(r: &RenderedUnit) -> Vec<Value> {
    if !is_argo_unit(&r.unit) {
        return r.objects.clone();
    }
    let Ok(policy) = SyncPolicy::of(&r.unit.object) else {
        return r.objects.clone();
    };
    r.objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            sync::strip_ignored(&mut o, None, &policy.ignore_differences);
            o
        })
        .collect()
}

/// The kubeconfig (JSON, which is YAML) of an Argo CD cluster Secret's `server` and
/// `config` (`bearerToken`, `username`/`password`, `tlsClientConfig` with `caData`,
/// `certData`, `keyData`, `serverName`, `insecure`). Credential plugins
/// (`execProviderConfig`, `awsAuthConfig`) are refused by name. Errors never quote values.
pub fn kubeconfig_of_cluster_secret(server: &str, config: &str) -> Result<String, String> {
    let c: Value = if config.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(config).map_err(|_| {
            "`config` is not JSON (details withheld: it holds credentials)".to_string()
        })?
    };
    for refused in ["execProviderConfig", "awsAuthConfig"] {
        if c.get(refused).is_some_and(|v| !v.is_null()) {
            return Err(format!(
                "`config.{refused}` (a credential plugin) is not supported (hint: use bearerToken or a client certificate)"
            ));
        }
    }
    if server.is_empty() {
        return Err("`server` is empty".into());
    }
    let tls = c.get("tlsClientConfig").cloned().unwrap_or(json!({}));
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
    };
    let mut cluster = json!({"server": server});
    if let Some(ca) = s(&tls, "caData") {
        cluster["certificate-authority-data"] = json!(ca);
    }
    if let Some(n) = s(&tls, "serverName") {
        cluster["tls-server-name"] = json!(n);
    }
    if tls.get("insecure").and_then(Value::as_bool) == Some(true) {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    let mut user = json!({});
    if let Some(t) = s(&c, "bearerToken") {
        user["token"] = json!(t);
    }
    if let (Some(u), Some(p)) = (s(&c, "username"), s(&c, "password")) {
        user["username"] = json!(u);
        user["password"] = json!(p);
    }
    if let Some(cd) = s(&tls, "certData") {
        user["client-certificate-data"] = json!(cd);
    }
    if let Some(kd) = s(&tls, "keyData") {
        user["client-key-data"] = json!(kd);
    }
    Ok(json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "argocd",
        "clusters": [{"name": "argocd", "cluster": cluster}],
        "users": [{"name": "argocd", "user": user}],
        "contexts": [{"name": "argocd", "context": {"cluster": "argocd", "user": "argocd"}}],
    })
    .to_string())
}

/// The client configuration of an Application's destination: the Argo CD cluster Secret
/// (`argocd.argoproj.io/secret-type: cluster`) in the Application's namespace whose `name`
/// (or, without a name, `server`) is the destination's. Errors: (what was read, why).
pub async fn destination_config(
    client: &kube::Client,
    dest: &ArgoDestination,
) -> Result<(String, kube::Config), (String, String)> {
    use k8s_openapi::api::core::v1::Secret;
    let what = if dest.name.is_empty() {
        format!(
            "Argo CD cluster Secret for server {} in {}",
            dest.server, dest.namespace
        )
    } else {
        format!(
            "Argo CD cluster Secret for cluster {:?} in {}",
            dest.name, dest.namespace
        )
    };
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &dest.namespace);
    let list = api
        .list(&kube::api::ListParams::default().labels("argocd.argoproj.io/secret-type=cluster"))
        .await
        .map_err(|e| (what.clone(), format!("cannot list cluster Secrets: {e}")))?;
    let field = |s: &Secret, k: &str| -> String {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).to_string())
            .unwrap_or_default()
    };
    let found = list.items.iter().find(|s| {
        if dest.name.is_empty() {
            field(s, "server").trim_end_matches('/') == dest.server
        } else {
            field(s, "name") == dest.name
        }
    });
    let Some(secret) = found else {
        return Err((
            what,
            "not found (hint: register the cluster with a Secret labelled argocd.argoproj.io/secret-type: cluster whose name and server match the destination)".into(),
        ));
    };
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let what = format!("Secret {}/{secret_name} (Argo CD cluster)", dest.namespace);
    let kc = kubeconfig_of_cluster_secret(&field(secret, "server"), &field(secret, "config"))
        .map_err(|m| (what.clone(), m))?;
    let config = capstan_fleet::config_from_kubeconfig(
        &what,
        kc.as_bytes(),
        &capstan_fleet::KubeconfigPolicy::default(),
    )
    .await
    .map_err(|e| (what.clone(), e.to_string()))?;
    Ok((what, config))
}

fn app_ns(app: &Value) -> String {
    app.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

fn wave_name(name: &str, wave: i64) -> String {
    format!("{name}.wave{wave}")
}

/// Choose the root documents: those named by `--app`, or declared beneath `--path`.
fn select_roots(declared: Vec<Declared>, root: &ArgoRoot) -> Result<Vec<Declared>, String> {
    let mut out: Vec<Declared> = declared;
    if let Some(p) = &root.path {
        let p = p.trim_start_matches("./").trim_matches('/').to_string();
        out.retain(|d| {
            p.is_empty() || d.origin.file == p || d.origin.file.starts_with(&format!("{p}/"))
        });
        if out.is_empty() {
            return Err(format!(
                "no Application or ApplicationSet is declared beneath {p:?}"
            ));
        }
    }
    if let Some(name) = &root.app {
        let names: Vec<String> = out.iter().map(|d| d.name().to_string()).collect();
        out.retain(|d| d.name() == name);
        if out.is_empty() {
            let mut msg = format!("no Application or ApplicationSet named {name:?}");
            if let Some(m) = capstan_units::did_you_mean(name, names.iter().map(String::as_str)) {
                msg.push_str(&format!("\n  = hint: did you mean {m}?"));
            }
            return Err(msg);
        }
    }
    Ok(out)
}

fn spec_for(id: &UnitId, prune: bool, force: bool) -> KustomizationSpec {
    let mut spec = KustomizationSpec::parse(
        &json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "spec": {"path": "./", "prune": prune, "wait": true, "force": force}}),
        id,
    )
    .expect("a synthetic spec is valid");
    spec.prune = prune;
    spec.wait = true;
    spec.force = force;
    spec
}

fn unit_of(id: UnitId, app: &Value, parent: Option<UnitId>, policy: Option<&SyncPolicy>) -> Unit {
    let prune = policy.is_some_and(SyncPolicy::prunes);
    let force = policy.is_some_and(|p| p.replace);
    Unit {
        spec: spec_for(&id, prune, force),
        id,
        parent,
        object: app.clone(),
        declared_in: None,
        helm: None,
        source_root: PathBuf::from("/"),
    }
}

fn unit_error(
    id: &UnitId,
    origin: &capstan_argocd::Origin,
    e: &capstan_argocd::ArgoError,
) -> UnitError {
    let mut err = UnitError::new(Some(id.clone()), e.message.clone()).kind(ErrorKind::Render);
    let file = (!e.file.is_empty()).then(|| e.file.clone()).or_else(|| {
        (!origin.file.is_empty() && origin.parent.is_none()).then(|| origin.file.clone())
    });
    err = err.at(Location {
        file: file.map(|f| PathBuf::from(format!("/{}", f.trim_start_matches('/')))),
        document: (e.document > 0).then_some(e.document as usize),
        object: Some(format!("Application {}/{}", id.namespace, id.name)),
        field: (!e.field.is_empty()).then(|| e.field.clone()),
    });
    if let Some(h) = &e.hint {
        err = err.hint(h.to_string());
    }
    err
}

/// Read, render and turn into units every Application reachable from `root`.
pub fn load_argo(fs: &dyn FileSystem, root: &ArgoRoot) -> ClusterUnits {
    let mut out = ClusterUnits::default();
    let (declared, tree_clusters) = capstan_argocd::discover(fs);
    let mut opts = root.options.clone();
    for c in tree_clusters {
        if !opts
            .clusters
            .iter()
            .any(|k| k.name == c.name && k.server == c.server)
        {
            opts.clusters.push(c);
        }
    }
    let roots = match select_roots(declared, root) {
        Ok(r) => r,
        Err(m) => {
            out.errors
                .push(UnitError::new(None, m).kind(ErrorKind::Render));
            return out;
        }
    };
    let rendered = capstan_argocd::render_declared(fs, &roots, &opts);
    for e in &rendered.errors {
        // An ApplicationSet that generated nothing: not any one unit's failure.
        let mut err = UnitError::new(None, e.to_string()).kind(ErrorKind::Render);
        err = err.field(e.field.clone());
        out.errors.push(err);
    }
    units_of(&rendered.apps, &mut out);
    out
}

/// Turn rendered Applications into units (see the module docs).
pub fn units_of(apps: &[AppRecord], out: &mut ClusterUnits) {
    // Unit ids by Application name, for parents (app-of-apps origins name the parent).
    let ids: BTreeMap<String, UnitId> = apps
        .iter()
        .map(|a| {
            (
                a.name().to_string(),
                UnitId::new(APPLICATION, app_ns(&a.application), a.name()),
            )
        })
        .collect();
    // Siblings' waves: (parent, wave) -> Application units.
    let mut siblings: BTreeMap<Option<String>, Vec<(i64, UnitId)>> = BTreeMap::new();
    let mut seen: BTreeSet<UnitId> = BTreeSet::new();
    let mut first_units: BTreeMap<UnitId, usize> = BTreeMap::new();
    for rec in apps {
        let app = &rec.application;
        let id = UnitId::new(APPLICATION, app_ns(app), rec.name());
        if !seen.insert(id.clone()) {
            // The same Application reached twice (two parents render it): the first wins,
            // as in Argo CD where one object holds it.
            out.warnings.push(format!(
                "{id}: declared more than once (again in {}); the first one is used",
                rec.origin.source()
            ));
            continue;
        }
        let parent = rec.origin.parent.as_ref().and_then(|p| ids.get(p)).cloned();
        siblings
            .entry(rec.origin.parent.clone())
            .or_default()
            .push((sync::sync_wave(app), id.clone()));
        let policy = SyncPolicy::of(app);
        let objects = match (&rec.objects, &policy) {
            (Err(e), _) => {
                let unit = unit_of(id.clone(), app, parent, None);
                first_units.insert(id.clone(), out.units.len());
                out.units.push(UnitOutcome::Failed {
                    error: unit_error(&id, &rec.origin, e),
                    unit,
                });
                continue;
            }
            (Ok(_), Err(e)) => {
                let unit = unit_of(id.clone(), app, parent, None);
                first_units.insert(id.clone(), out.units.len());
                out.units.push(UnitOutcome::Failed {
                    error: unit_error(&id, &rec.origin, e),
                    unit,
                });
                continue;
            }
            (Ok(o), Ok(_)) => o,
        };
        let policy = policy.expect("checked above");
        let mut depends_on: Vec<UnitId> = Vec::new();
        match sync::depends_on(app) {
            Ok(d) => depends_on.extend(d.into_iter().map(|(k, n, name)| UnitId::new(k, n, name))),
            Err(e) => {
                let unit = unit_of(id.clone(), app, parent, None);
                first_units.insert(id.clone(), out.units.len());
                out.units.push(UnitOutcome::Failed {
                    error: unit_error(&id, &rec.origin, &e),
                    unit,
                });
                continue;
            }
        }
        // Child Applications and ApplicationSets are units of their own.
        let (consumed, objects): (Vec<Value>, Vec<Value>) = objects
            .iter()
            .cloned()
            .partition(capstan_argocd::is_argo_app);
        let mut objects = objects;
        for o in &mut objects {
            let r = sync::ResourceOptions::of(o);
            if !r.prune || !r.delete {
                sync::keep_from_prune(o);
            }
            if policy.respect_ignore_differences {
                sync::strip_ignored(o, None, &policy.ignore_differences);
            }
        }
        let plan = sync::plan_sync(&objects);
        let unhandled: Vec<&str> = [
            ("SyncFail", plan.sync_fail.len()),
            ("PreDelete", plan.pre_delete.len()),
            ("PostDelete", plan.post_delete.len()),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, _)| *k)
        .collect();
        if !unhandled.is_empty() {
            out.warnings.push(format!(
                "{id}: {} hooks are not run by capstan",
                unhandled.join(", ")
            ));
        }
        let dest_ns = app
            .pointer("/spec/destination/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut waves = plan.waves.clone();
        if waves.is_empty() {
            waves.push((0, Vec::new()));
        }
        if let Some(mut ns) = policy.managed_namespace(dest_ns) {
            let rendered_ns = objects.iter().any(|o| {
                o.get("kind").and_then(Value::as_str) == Some("Namespace")
                    && o.pointer("/metadata/name").and_then(Value::as_str) == Some(dest_ns)
            });
            if !rendered_ns {
                // Argo CD never deletes the namespace it created.
                sync::keep_from_prune(&mut ns);
                waves[0].1.insert(0, ns);
            }
        }
        let sync_hooks: Vec<&Value> = plan.sync_hooks.iter().collect();
        let n = waves.len();
        // The Application remembers its units (for its removal, see `removed_units`).
        let all: Vec<String> = waves
            .iter()
            .enumerate()
            .map(|(i, (w, _))| {
                if i + 1 == n {
                    id.to_string()
                } else {
                    UnitId::new(
                        APPLICATION_WAVE,
                        id.namespace.clone(),
                        wave_name(&id.name, *w),
                    )
                    .to_string()
                }
            })
            .collect();
        let mut app = app.clone();
        set_annotation(&mut app, UNITS_ANNOTATION, &all.join(","));
        let app = &app;
        let mut prev: Option<UnitId> = None;
        for (i, (wave, objs)) in waves.into_iter().enumerate() {
            let last = i + 1 == n;
            let uid = if last {
                id.clone()
            } else {
                UnitId::new(
                    APPLICATION_WAVE,
                    id.namespace.clone(),
                    wave_name(&id.name, wave),
                )
            };
            let mut unit = unit_of(uid.clone(), app, parent.clone(), Some(&policy));
            let mut hooks = Vec::new();
            let mut applied = Vec::new();
            for o in objs {
                if sync_hooks.contains(&&o) {
                    let h = sync::hook_of(&o, true)
                        .map(|h| h.delete_policies)
                        .unwrap_or_default();
                    hooks.push(sync::as_helm_hook(&o, HookType::Sync, &h));
                } else {
                    applied.push(o);
                }
            }
            if i == 0 {
                for o in &plan.pre_sync {
                    let h = hook_policies(o, &objects);
                    hooks.push(sync::as_helm_hook(o, HookType::PreSync, &h));
                }
                unit.spec.depends_on = depends_on.clone();
                first_units.insert(id.clone(), out.units.len());
            }
            if last {
                for o in &plan.post_sync {
                    let h = hook_policies(o, &objects);
                    hooks.push(sync::as_helm_hook(o, HookType::PostSync, &h));
                }
            }
            if let Some(p) = &prev {
                unit.spec.depends_on.push(p.clone());
            }
            prev = Some(uid);
            out.units.push(UnitOutcome::Rendered(RenderedUnit {
                unit,
                objects: applied,
                consumed: if last { consumed.clone() } else { Vec::new() },
                hooks,
                images: Vec::new(),
            }));
        }
    }
    // Waves among sibling Applications: the first unit of an Application in wave N waits
    // for every sibling Application in a lower wave.
    for members in siblings.values() {
        for (w, id) in members {
            let Some(&at) = first_units.get(id) else {
                continue;
            };
            let earlier: Vec<UnitId> = members
                .iter()
                .filter(|(ow, oid)| ow < w && oid != id)
                .map(|(_, oid)| oid.clone())
                .collect();
            let unit = match &mut out.units[at] {
                UnitOutcome::Rendered(r) => &mut r.unit,
                UnitOutcome::Failed { unit, .. } => unit,
            };
            for e in earlier {
                if !unit.spec.depends_on.contains(&e) {
                    unit.spec.depends_on.push(e);
                }
            }
        }
    }
}

/// Annotation on an Application (as capstan writes it to the cluster): its unit ids.
pub const UNITS_ANNOTATION: &str = "capstan.io/units";
/// Annotation on an Application written to the cluster: its Argo CD finalizers (the
/// object itself carries none: no controller would remove them).
pub const FINALIZERS_ANNOTATION: &str = "capstan.io/finalizers";

fn set_annotation(o: &mut Value, k: &str, v: &str) {
    if !o.get("metadata").is_some_and(Value::is_object) {
        o["metadata"] = json!({});
    }
    if !o["metadata"]
        .get("annotations")
        .is_some_and(Value::is_object)
    {
        o["metadata"]["annotations"] = json!({});
    }
    o["metadata"]["annotations"][k] = json!(v);
}

/// The Application object capstan writes to the cluster for an Application unit: spec,
/// labels and annotations as rendered, `app.kubernetes.io/managed-by: capstan`, its
/// finalizers kept in [`FINALIZERS_ANNOTATION`] instead.
pub fn application_object(unit: &Unit) -> Value {
    let app = &unit.object;
    let mut obj = json!({
        "apiVersion": app.get("apiVersion").cloned().unwrap_or(json!("argoproj.io/v1alpha1")),
        "kind": "Application",
        "metadata": {"name": unit.id.name, "namespace": unit.id.namespace},
        "spec": app.get("spec").cloned().unwrap_or(json!({})),
    });
    for k in ["labels", "annotations"] {
        if let Some(v) = app
            .pointer(&format!("/metadata/{k}"))
            .filter(|v| v.is_object())
        {
            obj["metadata"][k] = v.clone();
        }
    }
    if !obj["metadata"].get("labels").is_some_and(Value::is_object) {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("capstan");
    let finalizers: Vec<&str> = app
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !finalizers.is_empty() {
        set_annotation(&mut obj, FINALIZERS_ANNOTATION, &finalizers.join(","));
    }
    obj
}

/// The units of an Application removed from the repository, from its object as capstan
/// wrote it ([`application_object`]): each with the Application's destination and its
/// finalizers, so [`deletes_on_removal`] and the round's targets decide as for a present one.
pub fn removed_units(written: &Value) -> Vec<Unit> {
    let mut app = written.clone();
    let ann = |k: &str| {
        written
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if let Some(f) = ann(FINALIZERS_ANNOTATION) {
        app["metadata"]["finalizers"] = json!(f
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>());
    }
    let ns = app_ns(&app);
    let name = app
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ids: Vec<UnitId> = match ann(UNITS_ANNOTATION) {
        Some(list) => list
            .split(',')
            .filter_map(|s| {
                let mut p = s.trim().splitn(3, '/');
                let (k, n, m) = (p.next()?, p.next()?, p.next()?);
                // Only this Application's own units.
                (matches!(k, APPLICATION | APPLICATION_WAVE)
                    && n == ns
                    && (m == name || m.starts_with(&format!("{name}.wave"))))
                .then(|| UnitId::new(k, n, m))
            })
            .collect(),
        None => vec![UnitId::new(APPLICATION, ns.clone(), name.clone())],
    };
    let policy = SyncPolicy::of(&app).ok();
    ids.into_iter()
        .map(|id| unit_of(id, &app, None, policy.as_ref()))
        .collect()
}

fn hook_policies(o: &Value, all: &[Value]) -> Vec<sync::DeletePolicy> {
    let argo = all.iter().any(|x| {
        x.pointer("/metadata/annotations")
            .and_then(|a| a.get(sync::HOOK))
            .is_some()
    });
    sync::hook_of(o, argo)
        .map(|h| h.delete_policies)
        .unwrap_or_default()
}

/// Read, render and plan a cluster whose root is Argo CD Applications, with the Flux units
/// of `flux` (a cluster path) beside them when given: one graph for both.
pub fn render_argo_cluster(
    fs: &dyn FileSystem,
    renderer: &dyn capstan_units::Renderer,
    lookup: &dyn capstan_units::ClusterLookup,
    flux: Option<&capstan_units::LoadOptions>,
    root: &ArgoRoot,
    isolating: bool,
) -> crate::ClusterRender {
    let mut units = match flux {
        Some(opts) => capstan_units::load(fs, renderer, lookup, opts),
        None => ClusterUnits::default(),
    };
    let argo = load_argo(fs, root);
    units.units.extend(argo.units);
    units.errors.extend(argo.errors);
    units.warnings.extend(argo.warnings);
    let (plan, blocked) = crate::plan_units_with(fs, &units, isolating);
    crate::ClusterRender {
        units,
        plan,
        blocked,
    }
}

#[cfg(test)]
mod tests;
