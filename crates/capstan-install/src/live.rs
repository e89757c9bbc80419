//! Install, check and uninstall against a live cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use capstan_apply::{
    Applier, ApplyOptions, ApplyUnit, Health, HealthStatus, ObjectRef, UnitPlan, UnitRef,
    UnitResult,
};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{verbs, ApiCapabilities, Discovery, Scope};
use serde_json::{json, Value};

use crate::{
    manifests, InstallError, InstallOptions, AGENT_NAME, INSTALL_UNIT_KIND, LABEL_MANAGED_BY,
    LABEL_NAME, LABEL_UNIT_KIND, LABEL_VERSION,
};

/// The unit an install is applied as: `Install/<namespace>/capstan`; its objects carry
/// `capstan.io/kind: install` and its inventory is `inventory.install.<namespace>.capstan`.
pub fn install_unit(namespace: &str) -> UnitRef {
    UnitRef::new(INSTALL_UNIT_KIND, namespace, "capstan")
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Api { what, source }
}

fn gvk_api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::all_with(client.clone(), &ar)
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn labels_of(o: &Value) -> BTreeMap<String, String> {
    o.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Flux running in the cluster, found by Flux's own labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxPresence {
    /// Deployments labelled `app.kubernetes.io/part-of: flux` with replicas > 0 (`ns/name`).
    pub controllers: Vec<String>,
    /// CRDs of the toolkit kinds labelled `app.kubernetes.io/part-of: flux`.
    pub crds: Vec<String>,
}

/// Looks for Flux's controllers and CRDs (by Flux's labels).
pub async fn detect_flux(client: &kube::Client) -> Result<FluxPresence, InstallError> {
    let lp = ListParams::default().labels("app.kubernetes.io/part-of=flux");
    let deployments = gvk_api(client, "apps", "v1", "Deployment", "deployments")
        .list(&lp)
        .await
        .map_err(api_err("listing Flux's Deployments"))?;
    let controllers = deployments
        .items
        .iter()
        .map(to_value)
        .filter(|d| {
            d.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                > 0
        })
        .map(|d| {
            format!(
                "{}/{}",
                str_at(&d, "/metadata/namespace"),
                str_at(&d, "/metadata/name")
            )
        })
        .collect();
    let ours: BTreeSet<String> = capstan_status::flux_crds()
        .iter()
        .map(|c| str_at(c, "/metadata/name").to_string())
        .collect();
    let crds = gvk_api(
        client,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
    .list(&lp)
    .await
    .map_err(api_err("listing Flux's CRDs"))?
    .items
    .iter()
    .filter_map(|c| c.metadata.name.clone())
    .filter(|n| ours.contains(n))
    .collect();
    Ok(FluxPresence { controllers, crds })
}

/// What [`install`] did.
#[derive(Debug)]
pub struct InstallReport {
    /// The dry-run plan of an upgrade (None on a first install).
    pub plan: Option<UnitPlan>,
    /// The apply's outcome.
    pub result: UnitResult,
    /// Warnings (Flux found, CRDs left to Flux).
    pub warnings: Vec<String>,
}

/// Applies the install as one unit with capstan's apply (an upgrade when it exists).
///
/// Flux's CRDs (labelled `app.kubernetes.io/part-of: flux`) are left out of the unit while
/// Flux controllers run, unless `adopt_flux_crds`.
pub async fn install(
    client: &kube::Client,
    opts: &InstallOptions,
    adopt_flux_crds: bool,
    wait: Option<Duration>,
    events: ApplyOptions,
) -> Result<InstallReport, InstallError> {
    let flux = detect_flux(client).await?;
    let mut warnings = Vec::new();
    let mut objects = manifests(opts);
    if !flux.controllers.is_empty() {
        warnings.push(format!(
            "Flux controllers run in this cluster ({}): they and the capstan agent would both reconcile Flux objects; scale them down or give capstan other units",
            flux.controllers.join(", ")
        ));
        if !adopt_flux_crds && !flux.crds.is_empty() {
            warnings.push(format!(
                "leaving Flux's CRDs to Flux ({}); pass --adopt-flux-crds to take them over",
                flux.crds.join(", ")
            ));
            objects.retain(|o| {
                !(o["kind"] == "CustomResourceDefinition"
                    && flux.crds.iter().any(|c| c == str_at(o, "/metadata/name")))
            });
        }
    }
    let applier = Applier::new(client.clone());
    let unit_ref = install_unit(&opts.namespace);
    let mut unit = ApplyUnit::new(unit_ref.clone(), objects);
    unit.prune = true;
    if let Some(t) = wait {
        unit.wait = true;
        unit.timeout = t;
    }
    let plan = if applier.inventory(&unit_ref).await?.is_empty() {
        None
    } else {
        Some(applier.plan(&unit).await?)
    };
    let result = applier.apply(&unit, &events).await?;
    Ok(InstallReport {
        plan,
        result,
        warnings,
    })
}

/// One installed agent, as [`check`] finds it.
#[derive(Debug, Clone)]
pub struct InstalledAgent {
    /// The install namespace.
    pub namespace: String,
    /// `app.kubernetes.io/version` of the Deployment.
    pub version: Option<String>,
    /// The Deployment's image.
    pub image: Option<String>,
    /// Inventoried objects and whether each exists.
    pub objects: Vec<(ObjectRef, bool)>,
    /// The Deployment's health (None when it is missing).
    pub agent: Option<Health>,
    /// Whether the install has an inventory (applied by `capstan install`); false for an
    /// agent put in place from `--export` or `--crs` output, whose objects are then the ones
    /// its Deployment implies ([`expected_objects`]).
    pub inventory: bool,
}

impl InstalledAgent {
    /// Every object present and the agent Current.
    pub fn healthy(&self) -> bool {
        self.objects.iter().all(|(_, present)| *present)
            && self
                .agent
                .as_ref()
                .is_some_and(|h| h.status == HealthStatus::Current)
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Every install (one per install namespace).
    pub installs: Vec<InstalledAgent>,
}

async fn install_inventories(client: &kube::Client) -> Result<Vec<Value>, InstallError> {
    let lp = ListParams::default().labels(&format!(
        "capstan.io/inventory=true,{LABEL_UNIT_KIND}={}",
        INSTALL_UNIT_KIND.to_lowercase()
    ));
    Ok(gvk_api(client, "", "v1", "ConfigMap", "configmaps")
        .list(&lp)
        .await
        .map_err(api_err("listing capstan's install inventories"))?
        .items
        .iter()
        .map(to_value)
        .collect())
}

/// Reports every install, its version and the agent's health.
pub async fn check(client: &kube::Client) -> Result<CheckReport, InstallError> {
    let applier = Applier::new(client.clone());
    let mut report = CheckReport::default();
    for inv in install_inventories(client).await? {
        let labels = labels_of(&inv);
        let Some(ns) = labels.get("capstan.io/namespace").cloned() else {
            continue;
        };
        let unit = install_unit(&ns);
        let refs = applier.inventory(&unit).await?;
        let mut objects = Vec::new();
        let mut agent = InstalledAgent {
            namespace: ns.clone(),
            version: None,
            image: None,
            objects: Vec::new(),
            agent: None,
            inventory: true,
        };
        for r in refs {
            let present = match applier.health(&r).await {
                Ok(h) => {
                    let exists = h.status != HealthStatus::NotFound;
                    if r.kind == "Deployment" && r.name == AGENT_NAME && exists {
                        agent.agent = Some(h);
                    }
                    exists
                }
                Err(_) => false,
            };
            if r.kind == "Deployment" && r.name == AGENT_NAME && present {
                let api: Api<DynamicObject> = Api::namespaced_with(
                    client.clone(),
                    &r.namespace,
                    &ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
                );
                if let Some(d) = api
                    .get_opt(&r.name)
                    .await
                    .map_err(api_err("reading the agent's Deployment"))?
                {
                    let d = to_value(&d);
                    agent.version = labels_of(&d).get(LABEL_VERSION).cloned();
                    agent.image = d
                        .pointer("/spec/template/spec/containers/0/image")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
            objects.push((r, present));
        }
        agent.objects = objects;
        report.installs.push(agent);
    }
    // Installs without an inventory (`--export` applied by hand or through GitOps, a
    // ClusterResourceSet): found by the agent Deployment's labels.
    let lp = ListParams::default().labels(&format!(
        "{LABEL_NAME}={AGENT_NAME},{LABEL_MANAGED_BY}=capstan"
    ));
    let deployments = gvk_api(client, "apps", "v1", "Deployment", "deployments")
        .list(&lp)
        .await
        .map_err(api_err("listing capstan's agent Deployments"))?;
    for d in deployments.items.iter().map(to_value) {
        let ns = str_at(&d, "/metadata/namespace").to_string();
        if str_at(&d, "/metadata/name") != AGENT_NAME
            || report.installs.iter().any(|a| a.namespace == ns)
        {
            continue;
        }
        let mut agent = InstalledAgent {
            namespace: ns,
            version: labels_of(&d).get(LABEL_VERSION).cloned(),
            image: d
                .pointer("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                .map(str::to_string),
            objects: Vec::new(),
            agent: None,
            inventory: false,
        };
        for r in expected_objects(&d) {
            let health = applier.health(&r).await.ok();
            let present = health
                .as_ref()
                .is_some_and(|h| h.status != HealthStatus::NotFound);
            if r.kind == "Deployment" {
                agent.agent = health.filter(|_| present);
            }
            agent.objects.push((r, present));
        }
        report.installs.push(agent);
    }
    Ok(report)
}

/// The objects an install implies, read off its agent Deployment (for installs without an
/// inventory): its Namespace, the ServiceAccount the pods run as, the RBAC binding it
/// (cluster-admin, or the namespaced set when the agent runs with `--no-install-crds`), the
/// credentials Secret of `--source-secret`, the metrics Service and the Deployment itself.
/// The toolkit CRDs are not among them: the agent installs those itself.
pub fn expected_objects(deployment: &Value) -> Vec<ObjectRef> {
    let ns = str_at(deployment, "/metadata/namespace");
    let pod = deployment
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or(Value::Null);
    let sa = match str_at(&pod, "/serviceAccountName") {
        "" => "default",
        sa => sa,
    };
    let args: Vec<&str> = pod
        .pointer("/containers/0/args")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let flag = |name: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            if *a == name {
                args.get(i + 1).map(|v| v.to_string())
            } else {
                a.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_string)
            }
        })
    };
    let rbac = "rbac.authorization.k8s.io/v1";
    let cluster_rbac = format!("{AGENT_NAME}-{ns}");
    let mut out = vec![
        ObjectRef::new("v1", "Namespace", "", ns),
        ObjectRef::new("v1", "ServiceAccount", ns, sa),
    ];
    if args.contains(&"--no-install-crds") {
        out.extend([
            ObjectRef::new(rbac, "ClusterRole", "", &cluster_rbac),
            ObjectRef::new(rbac, "ClusterRoleBinding", "", &cluster_rbac),
            ObjectRef::new(rbac, "Role", ns, AGENT_NAME),
            ObjectRef::new(rbac, "RoleBinding", ns, AGENT_NAME),
        ]);
    } else {
        out.push(ObjectRef::new(
            rbac,
            "ClusterRoleBinding",
            "",
            &cluster_rbac,
        ));
    }
    if let Some(secret) = flag("--source-secret") {
        out.push(ObjectRef::new("v1", "Secret", ns, &secret));
    }
    out.push(ObjectRef::new("v1", "Service", ns, crate::METRICS_SERVICE));
    out.push(ObjectRef::new(
        "apps/v1",
        "Deployment",
        ns,
        str_at(deployment, "/metadata/name"),
    ));
    out
}

/// Options of [`uninstall`].
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// Delete every object the units' inventories list (reverse dependency order).
    pub prune_workloads: bool,
    /// Keep CustomResourceDefinitions.
    pub keep_crds: bool,
    /// Only plan.
    pub dry_run: bool,
    /// How long to wait for the agent to stop and for namespaces to empty.
    pub timeout: Duration,
}

impl Default for UninstallOptions {
    fn default() -> Self {
        UninstallOptions {
            prune_workloads: false,
            keep_crds: false,
            dry_run: false,
            timeout: Duration::from_secs(120),
        }
    }
}

/// One step of an uninstall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delete the agent's Deployment and wait for its pods to go.
    StopAgent(ObjectRef),
    /// Remove capstan's finalizers from a unit object.
    RemoveFinalizers {
        /// The unit object.
        object: ObjectRef,
        /// The finalizers removed.
        finalizers: Vec<String>,
    },
    /// Delete an inventoried workload object (`--prune-workloads`).
    DeleteWorkload(ObjectRef),
    /// Delete a unit's inventory.
    DeleteInventory(ObjectRef),
    /// Delete one of the agent's cluster-scoped objects (RBAC, CRDs).
    DeleteClusterObject(ObjectRef),
    /// Delete a namespace of the agent (with everything in it).
    DeleteNamespace(String),
    /// Something kept, and why.
    Keep {
        /// The object.
        object: ObjectRef,
        /// Why it stays.
        reason: String,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::StopAgent(r) => write!(f, "stop the agent: delete {r}"),
            Step::RemoveFinalizers { object, finalizers } => {
                write!(
                    f,
                    "remove finalizers {} from {object}",
                    finalizers.join(", ")
                )
            }
            Step::DeleteWorkload(r) => write!(f, "delete workload {r}"),
            Step::DeleteInventory(r) => write!(f, "delete inventory {r}"),
            Step::DeleteClusterObject(r) => write!(f, "delete {r}"),
            Step::DeleteNamespace(n) => write!(f, "delete Namespace/{n}"),
            Step::Keep { object, reason } => write!(f, "keep {object} ({reason})"),
        }
    }
}

/// What happened to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Planned only (`--dry-run`).
    Planned,
    /// Done.
    Done,
    /// Already gone.
    Gone,
    /// Kept.
    Kept,
}

/// What [`uninstall`] found and did. `steps` is empty when capstan never ran here.
#[derive(Debug, Clone, Default)]
pub struct UninstallReport {
    /// Every step with its outcome.
    pub steps: Vec<(Step, StepOutcome)>,
    /// Namespaces still terminating at the end, with what is left in them.
    pub terminating: Vec<(String, Vec<String>)>,
}

/// Every listable resource type of the cluster (preferred versions).
pub struct Resources {
    list: Vec<(ApiResource, ApiCapabilities)>,
}

impl Resources {
    /// Runs discovery.
    pub async fn discover(client: &kube::Client) -> Result<Resources, InstallError> {
        let d = Discovery::new(client.clone())
            .run()
            .await
            .map_err(api_err("discovering the cluster's resource types"))?;
        let mut list = Vec::new();
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                if caps.supports_operation(verbs::LIST) {
                    list.push((ar, caps));
                }
            }
        }
        Ok(Resources { list })
    }

    /// Resource types (all, or namespaced only).
    pub fn types(
        &self,
        namespaced_only: bool,
    ) -> impl Iterator<Item = &(ApiResource, ApiCapabilities)> {
        self.list
            .iter()
            .filter(move |(_, c)| !namespaced_only || c.scope == Scope::Namespaced)
    }

    fn find(&self, group: &str, kind: &str) -> Option<&(ApiResource, ApiCapabilities)> {
        self.list
            .iter()
            .find(|(ar, _)| ar.group == group && ar.kind == kind)
    }

    fn api(&self, client: &kube::Client, r: &ObjectRef) -> Option<Api<DynamicObject>> {
        let (ar, caps) = self.find(&r.group, &r.kind)?;
        Some(if caps.scope == Scope::Namespaced {
            Api::namespaced_with(client.clone(), &r.namespace, ar)
        } else {
            Api::all_with(client.clone(), ar)
        })
    }

    /// Every object (of every type, in `namespace` or everywhere) matching `selector`.
    /// Types the caller may not list are skipped.
    pub async fn list_all(
        &self,
        client: &kube::Client,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, InstallError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (ar, caps) in self.list.iter() {
            if namespace.is_some() && caps.scope != Scope::Namespaced {
                continue;
            }
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
                None => Api::all_with(client.clone(), ar),
            };
            let mut lp = ListParams::default();
            if let Some(s) = selector {
                lp = lp.labels(s);
            }
            let items = match api.list(&lp).await {
                Ok(l) => l.items,
                Err(kube::Error::Api(s)) if matches!(s.code, 403..=405) => continue,
                Err(e) => return Err(api_err(format!("listing {}", ar.plural))(e)),
            };
            for item in items {
                let mut v = to_value(&item);
                v["apiVersion"] = json!(ar.api_version);
                v["kind"] = json!(ar.kind);
                let uid = str_at(&v, "/metadata/uid").to_string();
                if seen.insert(uid) {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }
}

fn object_ref(v: &Value) -> Option<ObjectRef> {
    ObjectRef::from_object(v)
}

/// capstan's finalizers on unit objects: its own (`*.capstan.io`, `capstan.io/*`) always;
/// Flux's `finalizers.fluxcd.io` too when no Flux controller runs to process it.
fn capstan_finalizers(obj: &Value, flux_running: bool) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|f| {
            f.ends_with(".capstan.io")
                || f.starts_with("capstan.io/")
                || f.contains(".capstan.io/")
                || (!flux_running && *f == "finalizers.fluxcd.io")
        })
        .map(str::to_string)
        .collect()
}

fn is_crd(r: &ObjectRef) -> bool {
    r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition"
}

/// Plans (and unless `dry_run`, carries out) the uninstall. Returns a report without steps
/// when capstan never ran in this cluster.
pub async fn uninstall(
    client: &kube::Client,
    opts: &UninstallOptions,
    on_step: impl Fn(&Step, &StepOutcome),
) -> Result<UninstallReport, InstallError> {
    let resources = Resources::discover(client).await?;
    let flux = detect_flux(client).await?;
    let flux_running = !flux.controllers.is_empty();
    let applier = Applier::new(client.clone());

    // The install's objects: by label and by the install inventories.
    let install_label = format!("{LABEL_UNIT_KIND}={}", INSTALL_UNIT_KIND.to_lowercase());
    let mut install_objects: BTreeMap<String, ObjectRef> = BTreeMap::new();
    for o in resources
        .list_all(client, None, Some(&install_label))
        .await?
    {
        if let Some(r) = object_ref(&o) {
            install_objects.insert(r.id(), r);
        }
    }
    // Inventories (capstan's apply keeps one ConfigMap per unit).
    let inventories: Vec<Value> = gvk_api(client, "", "v1", "ConfigMap", "configmaps")
        .list(&ListParams::default().labels("capstan.io/inventory=true"))
        .await
        .map_err(api_err("listing capstan's inventories"))?
        .items
        .iter()
        .map(|o| {
            let mut v = to_value(o);
            v["apiVersion"] = json!("v1");
            v["kind"] = json!("ConfigMap");
            v
        })
        .collect();
    let mut workload_units = Vec::new();
    for inv in &inventories {
        let l = labels_of(inv);
        let unit = UnitRef::new(
            l.get(LABEL_UNIT_KIND).cloned().unwrap_or_default(),
            l.get("capstan.io/namespace").cloned().unwrap_or_default(),
            l.get("capstan.io/name").cloned().unwrap_or_default(),
        );
        let entries = match inv.pointer("/data/entries").and_then(Value::as_str) {
            Some(t) => capstan_apply::inventory::Inventory::decode(t)
                .map_err(|reason| {
                    InstallError::from(capstan_apply::ApplyError::Inventory {
                        unit: unit.clone(),
                        reason,
                    })
                })?
                .refs(),
            None => Vec::new(),
        };
        if unit.kind == INSTALL_UNIT_KIND.to_lowercase() {
            for r in entries {
                install_objects.insert(r.id(), r);
            }
        } else {
            workload_units.push((object_ref(inv), entries));
        }
    }
    // CRDs the agent created itself (capstan-status labels them).
    let agent_crds: Vec<ObjectRef> = gvk_api(
        client,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
    .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=capstan")))
    .await
    .map_err(api_err("listing capstan's CRDs"))?
    .items
    .iter()
    .filter_map(|c| {
        object_ref(&to_value(c)).or_else(|| {
            Some(ObjectRef::new(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                c.metadata.name.as_deref()?,
            ))
        })
    })
    .collect();

    let mut report = UninstallReport::default();
    if install_objects.is_empty() && inventories.is_empty() && agent_crds.is_empty() {
        return Ok(report);
    }

    let mut steps: Vec<Step> = Vec::new();
    // 1. Stop the agent.
    for r in install_objects
        .values()
        .filter(|r| r.kind == "Deployment" && r.group == "apps")
    {
        steps.push(Step::StopAgent(r.clone()));
    }
    // 2. Unit objects lose capstan's finalizers (nothing hangs in Terminating).
    let toolkit_groups: BTreeSet<String> = capstan_status::flux_crds()
        .iter()
        .map(|c| str_at(c, "/spec/group").to_string())
        .collect();
    for (ar, _) in resources
        .types(false)
        .filter(|(ar, _)| toolkit_groups.contains(&ar.group))
    {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        let items = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(s)) if matches!(s.code, 403..=405) => continue,
            Err(e) => return Err(api_err(format!("listing {}", ar.plural))(e)),
        };
        for item in items {
            let mut v = to_value(&item);
            v["apiVersion"] = json!(ar.api_version);
            v["kind"] = json!(ar.kind);
            let finalizers = capstan_finalizers(&v, flux_running);
            if let (false, Some(object)) = (finalizers.is_empty(), object_ref(&v)) {
                steps.push(Step::RemoveFinalizers { object, finalizers });
            }
        }
    }
    // 3. Workloads (only with --prune-workloads), in reverse dependency order.
    let keep_crd_reason = if opts.keep_crds {
        Some("--keep-crds".to_string())
    } else if flux_running {
        Some("Flux controllers run in this cluster and may own objects of it".to_string())
    } else {
        None
    };
    if opts.prune_workloads {
        let mut all: BTreeMap<String, ObjectRef> = BTreeMap::new();
        for (_, refs) in &workload_units {
            for r in refs {
                if !install_objects.contains_key(&r.id()) {
                    all.insert(r.id(), r.clone());
                }
            }
        }
        let mut refs: Vec<ObjectRef> = all.into_values().collect();
        refs.sort_by_key(capstan_apply::objects::order_key);
        refs.reverse();
        for r in refs {
            match (&keep_crd_reason, is_crd(&r)) {
                (Some(reason), true) => steps.push(Step::Keep {
                    object: r,
                    reason: reason.clone(),
                }),
                _ => steps.push(Step::DeleteWorkload(r)),
            }
        }
    }
    // 4. Inventories of the units: capstan forgets its units (kept workloads stay as they are).
    let mut inventory_namespaces = BTreeSet::new();
    for inv in &inventories {
        if let Some(r) = object_ref(inv) {
            inventory_namespaces.insert(r.namespace.clone());
            steps.push(Step::DeleteInventory(r));
        }
    }
    // 5. The agent's cluster-scoped objects: RBAC, then CRDs.
    let mut cluster_scoped: Vec<ObjectRef> = install_objects
        .values()
        .filter(|r| r.namespace.is_empty() && !(r.group.is_empty() && r.kind == "Namespace"))
        .cloned()
        .collect();
    for c in &agent_crds {
        if !cluster_scoped.iter().any(|r| r.same_object(c)) {
            cluster_scoped.push(c.clone());
        }
    }
    cluster_scoped.sort_by_key(capstan_apply::objects::order_key);
    cluster_scoped.reverse();
    for r in cluster_scoped {
        match (&keep_crd_reason, is_crd(&r)) {
            (Some(reason), true) => steps.push(Step::Keep {
                object: r,
                reason: reason.clone(),
            }),
            _ => steps.push(Step::DeleteClusterObject(r)),
        }
    }
    // 6. Namespaces: the install's, and capstan's inventory namespace when capstan made it
    // (labelled managed-by capstan) and, with kept workloads, it holds no workload.
    let mut namespaces: BTreeSet<String> = install_objects
        .values()
        .filter(|r| r.group.is_empty() && r.kind == "Namespace")
        .map(|r| r.name.clone())
        .collect();
    let ns_api = gvk_api(client, "", "v1", "Namespace", "namespaces");
    for ns in &inventory_namespaces {
        if namespaces.contains(ns) {
            continue;
        }
        let Some(live) = ns_api
            .get_opt(ns)
            .await
            .map_err(api_err(format!("reading Namespace/{ns}")))?
        else {
            continue;
        };
        if labels_of(&to_value(&live))
            .get(LABEL_MANAGED_BY)
            .map(String::as_str)
            != Some("capstan")
        {
            continue;
        }
        namespaces.insert(ns.clone());
    }
    let workload_selector = format!(
        "{LABEL_UNIT_KIND},{LABEL_UNIT_KIND}!={}",
        INSTALL_UNIT_KIND.to_lowercase()
    );
    for ns in namespaces.clone() {
        if opts.prune_workloads {
            continue;
        }
        // A namespace that also holds workloads of units stays (--keep-workloads).
        let found = resources
            .list_all(client, Some(&ns), Some(&workload_selector))
            .await?;
        let workloads: Vec<&Value> = found
            .iter()
            .filter(|o| {
                labels_of(o).get("capstan.io/inventory").map(String::as_str) != Some("true")
            })
            .collect();
        if let Some(w) = workloads.first() {
            namespaces.remove(&ns);
            steps.push(Step::Keep {
                object: ObjectRef::new("v1", "Namespace", "", &ns),
                reason: format!(
                    "it holds workloads of capstan's units ({} and {} more); --prune-workloads deletes them",
                    object_ref(w).map(|r| r.to_string()).unwrap_or_default(),
                    workloads.len() - 1
                ),
            });
        }
    }
    for ns in &namespaces {
        steps.push(Step::DeleteNamespace(ns.clone()));
    }

    // Carry out.
    for step in steps {
        let outcome = if opts.dry_run {
            if matches!(step, Step::Keep { .. }) {
                StepOutcome::Kept
            } else {
                StepOutcome::Planned
            }
        } else {
            run_step(client, &resources, &applier, &step, opts).await?
        };
        on_step(&step, &outcome);
        report.steps.push((step, outcome));
    }
    if !opts.dry_run {
        report.terminating = wait_namespaces(client, &resources, &namespaces, opts.timeout).await?;
    }
    Ok(report)
}

async fn delete(
    client: &kube::Client,
    resources: &Resources,
    r: &ObjectRef,
) -> Result<StepOutcome, InstallError> {
    let Some(api) = resources.api(client, r) else {
        return Ok(StepOutcome::Gone);
    };
    match api.delete(&r.name, &DeleteParams::background()).await {
        Ok(_) => Ok(StepOutcome::Done),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(StepOutcome::Gone),
        Err(e) => Err(api_err(format!("deleting {r}"))(e)),
    }
}

async fn run_step(
    client: &kube::Client,
    resources: &Resources,
    applier: &Applier,
    step: &Step,
    opts: &UninstallOptions,
) -> Result<StepOutcome, InstallError> {
    match step {
        Step::StopAgent(r) => {
            let outcome = delete(client, resources, r).await?;
            // Its pods go with it (no new ones once the Deployment is gone).
            let pods: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &r.namespace,
                &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
            );
            let lp = ListParams::default().labels(&format!("{LABEL_NAME}={AGENT_NAME}"));
            let deadline = tokio::time::Instant::now() + opts.timeout;
            loop {
                let left = pods
                    .list(&lp)
                    .await
                    .map_err(api_err("listing the agent's pods"))?
                    .items;
                let deployment_gone = match resources.api(client, r) {
                    Some(api) => api
                        .get_opt(&r.name)
                        .await
                        .map_err(api_err(format!("reading {r}")))?
                        .is_none(),
                    None => true,
                };
                if left.is_empty() && deployment_gone {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(InstallError::Timeout(format!(
                        "the agent did not stop within {:?} ({} pod(s) left in {})",
                        opts.timeout,
                        left.len(),
                        r.namespace
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(outcome)
        }
        Step::RemoveFinalizers { object, finalizers } => {
            let Some(api) = resources.api(client, object) else {
                return Ok(StepOutcome::Gone);
            };
            let Some(live) = api
                .get_opt(&object.name)
                .await
                .map_err(api_err(format!("reading {object}")))?
            else {
                return Ok(StepOutcome::Gone);
            };
            let live = to_value(&live);
            let remaining: Vec<Value> = live
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|f| !finalizers.iter().any(|x| Some(x.as_str()) == f.as_str()))
                .cloned()
                .collect();
            // A merge patch guarded by the resourceVersion: a concurrent change fails it (409).
            let patch = json!({"metadata": {
                "resourceVersion": str_at(&live, "/metadata/resourceVersion"),
                "finalizers": remaining,
            }});
            match api
                .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(StepOutcome::Done),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(StepOutcome::Gone),
                Err(e) => Err(api_err(format!("removing finalizers from {object}"))(e)),
            }
        }
        Step::DeleteWorkload(r) => {
            let Some(api) = resources.api(client, r) else {
                return Ok(StepOutcome::Gone);
            };
            match api
                .get_opt(&r.name)
                .await
                .map_err(api_err(format!("reading {r}")))?
            {
                None => Ok(StepOutcome::Gone),
                Some(live) if capstan_apply::objects::prune_disabled(&to_value(&live)) => {
                    Ok(StepOutcome::Kept)
                }
                Some(_) => delete(client, resources, r).await,
            }
        }
        Step::DeleteInventory(r) | Step::DeleteClusterObject(r) => {
            delete(client, resources, r).await
        }
        Step::DeleteNamespace(ns) => {
            delete(
                client,
                resources,
                &ObjectRef::new("v1", "Namespace", "", ns),
            )
            .await
        }
        Step::Keep { .. } => {
            let _ = applier;
            Ok(StepOutcome::Kept)
        }
    }
}

/// Waits until each namespace is gone, or nothing in it carries a finalizer anymore (the
/// namespace controller then finishes it). Returns the namespaces still terminating with
/// what is left in them.
async fn wait_namespaces(
    client: &kube::Client,
    resources: &Resources,
    namespaces: &BTreeSet<String>,
    timeout: Duration,
) -> Result<Vec<(String, Vec<String>)>, InstallError> {
    let ns_api = gvk_api(client, "", "v1", "Namespace", "namespaces");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    for ns in namespaces {
        loop {
            if ns_api
                .get_opt(ns)
                .await
                .map_err(api_err(format!("reading Namespace/{ns}")))?
                .is_none()
            {
                break;
            }
            let left = resources.list_all(client, Some(ns), None).await?;
            let blocked: Vec<String> = left
                .iter()
                .filter(|o| {
                    o.pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .is_some_and(|f| !f.is_empty())
                })
                .map(|o| {
                    let f = o
                        .pointer("/metadata/finalizers")
                        .cloned()
                        .unwrap_or_default();
                    format!(
                        "{} (finalizers {f})",
                        object_ref(o).map(|r| r.to_string()).unwrap_or_default()
                    )
                })
                .collect();
            if blocked.is_empty() || tokio::time::Instant::now() >= deadline {
                if !blocked.is_empty() || !left.is_empty() {
                    let mut what = blocked;
                    if what.is_empty() {
                        what = left
                            .iter()
                            .filter_map(object_ref)
                            .map(|r| r.to_string())
                            .collect();
                    }
                    out.push((ns.clone(), what));
                } else {
                    out.push((ns.clone(), Vec::new()));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capstan_finalizers_are_its_own_and_fluxs_only_without_flux() {
        let o = json!({"metadata": {"finalizers": ["finalizers.fluxcd.io", "finalizers.capstan.io", "example.com/keep", "kubernetes"]}});
        assert_eq!(
            capstan_finalizers(&o, false),
            ["finalizers.fluxcd.io", "finalizers.capstan.io"]
        );
        assert_eq!(capstan_finalizers(&o, true), ["finalizers.capstan.io"]);
        assert!(capstan_finalizers(&json!({"metadata": {}}), false).is_empty());
    }

    /// `install --check` without an inventory: the objects read off the Deployment are
    /// exactly the install's objects but its CRDs, for both RBAC modes, with and without a
    /// credentials Secret.
    #[test]
    fn expected_objects_of_a_deployment_are_the_installs_objects_but_crds() {
        let image = crate::ImageRef::parse("registry.example.com/capstan:1").unwrap();
        for (rbac, creds) in [
            (crate::Rbac::ClusterAdmin, false),
            (crate::Rbac::ClusterAdmin, true),
            (crate::Rbac::Namespaced, true),
        ] {
            let mut opts = InstallOptions::new("https://git.example.com/x.git", image.clone());
            opts.namespace = "tenant-a".into();
            opts.rbac = rbac;
            if creds {
                opts.credentials = Some(
                    crate::GitCredentials::from_env(|k| {
                        (k == crate::ENV_TOKEN).then(|| "t".to_string())
                    })
                    .unwrap(),
                );
            }
            let objects = manifests(&opts);
            let mut want: Vec<ObjectRef> = objects
                .iter()
                .filter(|o| o["kind"] != "CustomResourceDefinition")
                .map(|o| ObjectRef::from_object(o).unwrap())
                .collect();
            let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
            let mut got = expected_objects(deployment);
            want.sort_by_key(|r| r.to_string());
            got.sort_by_key(|r| r.to_string());
            assert_eq!(got, want, "{rbac:?} credentials {creds}");
        }
    }

    #[test]
    fn install_unit_labels_objects_as_install() {
        let u = install_unit("capstan-system");
        assert_eq!(u.kind.to_lowercase(), "install");
        assert_eq!(
            capstan_apply::inventory::inventory_name(&u),
            "inventory.install.capstan-system.capstan"
        );
    }
}
