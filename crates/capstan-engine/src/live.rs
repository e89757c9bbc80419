//! The live half: reading `substituteFrom`/`valuesFrom` objects and chart sources from
//! the cluster, fetching charts ([`SourceFetcher`]), Helm's `lookup` and Capabilities
//! from the cluster, and drivers that apply or diff units with
//! [`capstan_apply::Applier`] (HelmRelease hooks run in phases around the apply:
//! [`apply_rendered`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_apply::{
    Action, Applier, ApplyError, ApplyEvent, ApplyOptions, ApplyUnit, ObjectRef, ObjectResult,
    UnitPlan, UnitRef, UnitResult,
};
use capstan_source::{HelmRepositorySpec, HttpAuth, OciRef, OciRepositorySpec, SourceCache};
use capstan_units::{ClusterLookup, RenderedUnit};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;

use crate::execute::UnitDriver;
use crate::hooks::{hooks_for, Hook, Phase};
use crate::{ChartFetcher, LiveRenderer};

/// Run a future to completion from synchronous code called on a tokio runtime (a
/// worker of a multi-threaded runtime, or a blocking thread).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    block_on_in(None, f)
}

/// [`block_on`], or, on a thread outside any runtime (Helm renders templates on a thread
/// of its own, where `lookup` runs), on the runtime `fallback` was taken from.
fn block_on_in<F: std::future::Future>(
    fallback: Option<&tokio::runtime::Handle>,
    f: F,
) -> F::Output {
    match (tokio::runtime::Handle::try_current(), fallback) {
        (Ok(handle), _) => tokio::task::block_in_place(|| handle.block_on(f)),
        (Err(_), Some(handle)) => handle.block_on(f),
        (Err(e), None) => panic!("capstan-engine: blocking call outside a tokio runtime: {e}"),
    }
}

/// Flux's default timeout when neither `timeout` nor `interval` is set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// `substituteFrom` lookups against the live cluster. Must be used from a
/// multi-threaded tokio runtime (it blocks one worker while the request runs).
pub struct KubeLookup {
    client: kube::Client,
}

impl KubeLookup {
    pub fn new(client: kube::Client) -> Self {
        KubeLookup { client }
    }
}

impl ClusterLookup for KubeLookup {
    /// ConfigMaps, Secrets, and Flux sources (HelmRepository, HelmChart, OCIRepository;
    /// a cluster without Flux's CRDs has none).
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, String> {
        let (group, versions, plural): (&str, &[&str], &str) = match kind {
            "ConfigMap" => ("", &["v1"], "configmaps"),
            "Secret" => ("", &["v1"], "secrets"),
            "HelmRepository" => (
                capstan_units::SOURCE_GROUP,
                &["v1", "v1beta2"],
                "helmrepositories",
            ),
            "HelmChart" => (
                capstan_units::SOURCE_GROUP,
                &["v1", "v1beta2"],
                "helmcharts",
            ),
            "OCIRepository" => (
                capstan_units::SOURCE_GROUP,
                &["v1", "v1beta2"],
                "ocirepositories",
            ),
            // capstan.io/image-policy (apply-time image policies)
            "ImagePolicy" => (
                "image.toolkit.fluxcd.io",
                &["v1", "v1beta2"],
                "imagepolicies",
            ),
            "ImageRepository" => (
                "image.toolkit.fluxcd.io",
                &["v1", "v1beta2"],
                "imagerepositories",
            ),
            other => return Err(format!("cannot look up kind {other}")),
        };
        for version in versions {
            let ar = ApiResource {
                group: group.into(),
                version: version.to_string(),
                api_version: if group.is_empty() {
                    version.to_string()
                } else {
                    format!("{group}/{version}")
                },
                kind: kind.into(),
                plural: plural.into(),
            };
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
            // Errors never include the object's content, so no secret value can leak here.
            // An unknown resource (CRD not installed, or not this version) is a 404 too.
            if let Some(o) = block_on(api.get_opt(name)).map_err(|e| e.to_string())? {
                return Ok(Some(serde_json::to_value(o).unwrap_or(Value::Null)));
            }
        }
        Ok(None)
    }
}

fn object_name(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn secret_data(obj: &Value) -> Result<BTreeMap<String, Vec<u8>>, String> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    for (k, v) in obj
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let b = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or("").trim())
            .map_err(|_| format!("key {k:?} is not valid base64"))?;
        out.insert(k.clone(), b);
    }
    Ok(out)
}

/// Fetches charts with [`capstan_source`] (cached by digest: a chart version already in
/// the cache is not downloaded again), reading `spec.secretRef` credentials from the
/// cluster. Blocking (see [`ChartFetcher`]); needs a tokio runtime.
#[derive(Clone)]
pub struct SourceFetcher {
    cache: SourceCache,
    client: Option<kube::Client>,
    mirrors: crate::sources::Mirrors,
    secrets: crate::sources::LocalSecrets,
}

impl SourceFetcher {
    /// `client` reads `secretRef` Secrets; without one, sources with credentials fail.
    pub fn new(cache: SourceCache, client: Option<kube::Client>) -> Self {
        SourceFetcher {
            cache,
            client,
            mirrors: Default::default(),
            secrets: Default::default(),
        }
    }

    /// Credentials for `spec.secretRef` when there is no cluster (`--source-secret`).
    pub fn with_secrets(mut self, secrets: crate::sources::LocalSecrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Fetch through `mirrors` (`--source-mirror`).
    pub fn with_mirrors(mut self, mirrors: crate::sources::Mirrors) -> Self {
        self.mirrors = mirrors;
        self
    }

    fn auth(&self, source: &Value, namespace: &str) -> Result<Option<HttpAuth>, String> {
        if self.cache.is_offline() {
            // Nothing is sent anywhere.
            return Ok(None);
        }
        let Some(name) = source
            .pointer("/spec/secretRef/name")
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let Some(client) = &self.client else {
            let data = self.secrets.data(namespace, name, "spec.secretRef")?;
            return HttpAuth::from_secret_data(&data)
                .map(Some)
                .map_err(|e| format!("spec.secretRef: Secret {namespace}/{name}: {e}"));
        };
        let secret = KubeLookup::new(client.clone())
            .get("Secret", namespace, name)?
            .ok_or_else(|| format!("spec.secretRef: Secret {namespace}/{name} not found"))?;
        let data = secret_data(&secret)
            .map_err(|e| format!("spec.secretRef: Secret {namespace}/{name}: {e}"))?;
        HttpAuth::from_secret_data(&data)
            .map(Some)
            .map_err(|e| format!("spec.secretRef: Secret {namespace}/{name}: {e}"))
    }
}

impl ChartFetcher for SourceFetcher {
    fn fetch(&self, source: &Value, chart: &str, version: &str) -> Result<PathBuf, String> {
        let mirrored;
        let source = if self.mirrors.is_empty() {
            source
        } else {
            mirrored = self.mirrors.object(source);
            &mirrored
        };
        let kind = source.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "HelmRepository" => {
                let spec = HelmRepositorySpec::from_object(source).map_err(|e| e.to_string())?;
                let auth = self.auth(source, &spec.namespace)?;
                if spec.repo_type == "oci" {
                    // Helm OCI repositories: the chart is `<url>/<chart>`, tagged by version.
                    let exact = capstan_source::parse_version(version).is_some()
                        && !version.contains(['<', '>', '~', '^', '*', ' ', 'x', 'X', '|', '=']);
                    let oci = OciRepositorySpec {
                        namespace: spec.namespace.clone(),
                        name: spec.name.clone(),
                        url: format!("{}/{chart}", spec.url.trim_end_matches('/')),
                        reference: OciRef {
                            tag: exact.then(|| version.to_string()),
                            semver: (!exact).then(|| {
                                if version.is_empty() { "*".to_string() } else { version.to_string() }
                            }),
                            digest: None,
                        },
                        interval: spec.interval.clone(),
                        secret_ref: spec.secret_ref.clone(),
                        insecure: source
                            .pointer("/spec/insecure")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        ignore: None,
                    };
                    return block_on(self.cache.fetch_oci(&oci, auth.as_ref()))
                        .map(|a| a.path)
                        .map_err(|mut e| {
                            // The source is the HelmRepository.
                            e.source = spec.id();
                            e.to_string()
                        });
                }
                block_on(self.cache.fetch_helm_chart(&spec, chart, version, auth.as_ref()))
                    .map(|a| a.path)
                    .map_err(|e| e.to_string())
            }
            "OCIRepository" => {
                let spec = OciRepositorySpec::from_object(source).map_err(|e| e.to_string())?;
                let auth = self.auth(source, &spec.namespace)?;
                block_on(self.cache.fetch_oci(&spec, auth.as_ref()))
                    .map(|a| a.path)
                    .map_err(|e| e.to_string())
            }
            "HelmChart" => {
                // A HelmChart (spec.chartRef) names a chart in a HelmRepository, read
                // from the cluster next to it.
                let ns = source
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                let field = |k: &str| {
                    source
                        .pointer(&format!("/spec/{k}"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let (chart, version) = (field("chart"), field("version"));
                let (kind, name) = (field("sourceRef/kind"), field("sourceRef/name"));
                if kind != "HelmRepository" {
                    return Err(format!(
                        "HelmChart {ns}/{}: charts from {kind} sources are not supported through a HelmChart; reference the chart with spec.chart instead",
                        object_name(source)
                    ));
                }
                let Some(client) = &self.client else {
                    return Err(format!("HelmChart {ns}/{}: reading HelmRepository {ns}/{name} needs a cluster", object_name(source)));
                };
                let repo = KubeLookup::new(client.clone())
                    .get("HelmRepository", ns, &name)?
                    .ok_or_else(|| {
                        format!("HelmChart {ns}/{}: HelmRepository {ns}/{name} not found in the cluster", object_name(source))
                    })?;
                self.fetch(&repo, &chart, &version)
            }
            other => Err(format!(
                "charts from {other} sources are not supported (use a HelmRepository, OCIRepository, HelmChart or GitRepository)"
            )),
        }
    }
}

/// Helm's `lookup` against the live cluster: the object, a `<Kind>List` with `items`
/// when `name` is empty, an empty map when it does not exist. Blocking; needs a tokio
/// runtime.
pub fn helm_lookup(client: kube::Client) -> capstan_helm::LookupFn {
    // The runtime the lookup is made on: templates render on Helm's own thread.
    let runtime = tokio::runtime::Handle::try_current().ok();
    Arc::new(
        move |api_version: &str, kind: &str, namespace: &str, name: &str| {
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            let gvk = GroupVersionKind::gvk(group, version, kind);
            block_on_in(runtime.as_ref(), async {
                let (ar, caps) =
                    kube::discovery::pinned_kind(&client, &gvk)
                        .await
                        .map_err(|e| {
                            format!("unable to get apiresource for {api_version} {kind}: {e}")
                        })?;
                let api: Api<DynamicObject> =
                    if caps.scope == Scope::Namespaced && !namespace.is_empty() {
                        Api::namespaced_with(client.clone(), namespace, &ar)
                    } else {
                        Api::all_with(client.clone(), &ar)
                    };
                let to_tpl = |v: Value| capstan_gotemplate::Value::from_json(&v);
                if name.is_empty() {
                    let list = api.list(&ListParams::default()).await.map_err(|e| {
                        format!("lookup {api_version} {kind} in {namespace:?}: {e}")
                    })?;
                    let items: Vec<Value> = list
                        .items
                        .iter()
                        .map(|o| {
                            let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                            if let Some(m) = v.as_object_mut() {
                                m.insert("apiVersion".into(), Value::String(api_version.into()));
                                m.insert("kind".into(), Value::String(kind.into()));
                            }
                            v
                        })
                        .collect();
                    return Ok(to_tpl(serde_json::json!({
                        "apiVersion": api_version, "kind": format!("{kind}List"),
                        "metadata": {}, "items": items,
                    })));
                }
                match api.get_opt(name).await {
                    Ok(Some(o)) => Ok(to_tpl(serde_json::to_value(o).unwrap_or(Value::Null))),
                    Ok(None) => Ok(capstan_gotemplate::Value::empty_map()),
                    Err(e) => Err(format!(
                        "lookup {api_version} {kind} {namespace}/{name}: {e}"
                    )),
                }
            })
        },
    )
}

/// The cluster's Capabilities for Helm: the API server's version and every
/// `group/version` and `group/version/Kind` discovery reports (as Helm's
/// `GetVersionSet`). A group whose discovery fails (an aggregated API that is down) is
/// left out rather than failing everything, as Helm tolerates partial discovery.
pub async fn cluster_capabilities(
    client: &kube::Client,
) -> Result<capstan_helm::engine::Capabilities, String> {
    let info = client
        .apiserver_version()
        .await
        .map_err(|e| format!("reading the API server version: {e}"))?;
    let mut caps = capstan_helm::engine::Capabilities::default()
        .with_kube_version(&info.git_version)
        .map_err(|e| e.to_string())?;
    let mut gvs: Vec<String> = client
        .list_core_api_versions()
        .await
        .map_err(|e| format!("API discovery: {e}"))?
        .versions;
    let groups = client
        .list_api_groups()
        .await
        .map_err(|e| format!("API discovery: {e}"))?;
    for g in groups.groups {
        gvs.extend(g.versions.into_iter().map(|v| v.group_version));
    }
    let mut versions: Vec<String> = Vec::new();
    for gv in gvs {
        let resources = if gv.contains('/') {
            client.list_api_group_resources(&gv).await
        } else {
            client.list_core_api_resources(&gv).await
        };
        versions.push(gv.clone());
        match resources {
            Ok(list) => {
                for r in list.resources {
                    let v = format!("{gv}/{}", r.kind);
                    if !versions.contains(&v) {
                        versions.push(v);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "API discovery failed for a group version; left out of Capabilities")
            }
        }
    }
    caps.api_versions = versions;
    Ok(caps)
}

impl LiveRenderer {
    /// Everything from the cluster: charts fetched into `cache` (credentials read from
    /// the cluster), `lookup` answered by it, its Capabilities, and whether a release is
    /// installed (it has an inventory in the default inventory namespace; see
    /// [`installed_probe`] for another [`Applier`]).
    pub async fn connect(client: kube::Client, cache: SourceCache) -> Result<LiveRenderer, String> {
        let caps = cluster_capabilities(&client).await?;
        Ok(LiveRenderer::default()
            .with_fetcher(Arc::new(SourceFetcher::new(cache, Some(client.clone()))))
            .with_lookup(helm_lookup(client.clone()))
            .with_capabilities(caps)
            .with_installed(installed_probe(Arc::new(Applier::new(client)))))
    }
}

/// A HelmRelease unit is installed when `applier` has an inventory for it (what
/// [`apply_rendered`] uses to choose install or upgrade hooks). Blocking; needs a tokio
/// runtime. A failed read counts as not installed.
pub fn installed_probe(applier: Arc<Applier>) -> crate::InstalledProbe {
    Arc::new(move |id: &capstan_graph::UnitId| {
        let unit = UnitRef::new(id.kind.clone(), id.namespace.clone(), id.name.clone());
        block_on(applier.inventory(&unit)).is_ok_and(|inv| !inv.is_empty())
    })
}

/// What the apply layer needs to know about a rendered unit.
pub fn apply_unit(r: &RenderedUnit) -> ApplyUnit {
    let spec = &r.unit.spec;
    let id = UnitRef::new(
        r.unit.id.kind.clone(),
        r.unit.id.namespace.clone(),
        r.unit.id.name.clone(),
    );
    let default_ns = spec
        .target_namespace
        .clone()
        .unwrap_or_else(|| r.unit.id.namespace.clone());
    let mut unit = ApplyUnit::new(id, r.objects.clone());
    unit.prune = spec.prune;
    unit.wait = spec.wait;
    unit.force = spec.force;
    unit.timeout = spec.timeout.or(spec.interval).unwrap_or(DEFAULT_TIMEOUT);
    unit.target_namespace = spec.target_namespace.clone();
    unit.health_checks = spec
        .health_checks
        .iter()
        .map(|h| {
            ObjectRef::new(
                &h.api_version,
                &h.kind,
                h.namespace.as_deref().unwrap_or(&default_ns),
                &h.name,
            )
        })
        .collect();
    unit
}

/// Applies units.
pub struct ApplyDriver<'a> {
    pub applier: &'a Applier,
    pub options: ApplyOptions,
}

impl UnitDriver for ApplyDriver<'_> {
    type Output = UnitResult;
    async fn run(&self, unit: &RenderedUnit) -> Result<UnitResult, String> {
        apply_rendered(self.applier, unit, &self.options)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Applies a rendered unit. For a HelmRelease with hooks: pre-install (no inventory yet)
/// or pre-upgrade hooks first, each applied and waited for; then the release's objects
/// (with prune and wait); then post-install/post-upgrade hooks. Hooks are never
/// recorded in the inventory; their actions are reported in `UnitResult::objects` and
/// as events. A failed hook fails the unit (nothing after it runs).
/// `spec.install.disableHooks`/`spec.upgrade.disableHooks` skip them.
pub async fn apply_rendered(
    applier: &Applier,
    r: &RenderedUnit,
    opts: &ApplyOptions,
) -> Result<UnitResult, ApplyError> {
    let unit = apply_unit(r);
    if r.hooks.is_empty() {
        return applier.apply(&unit, opts).await;
    }
    let upgrade = !applier.inventory(&unit.id).await?.is_empty();
    let disabled = r.unit.helm.as_ref().is_some_and(|h| {
        if upgrade {
            h.upgrade_disable_hooks
        } else {
            h.install_disable_hooks
        }
    });
    if disabled {
        return applier.apply(&unit, opts).await;
    }
    let (pre, post) = Phase::around(upgrade);
    let mut hook_results = Vec::new();
    run_hooks(
        applier,
        &unit,
        &hooks_for(&r.hooks, pre),
        opts,
        &mut hook_results,
    )
    .await?;
    let mut result = applier.apply(&unit, opts).await?;
    run_hooks(
        applier,
        &unit,
        &hooks_for(&r.hooks, post),
        opts,
        &mut hook_results,
    )
    .await?;
    result.objects.extend(hook_results);
    Ok(result)
}

fn hook_event(opts: &ApplyOptions, unit: &UnitRef, object: &ObjectRef, action: Action) {
    if let Some(f) = &opts.on_event {
        f(&ApplyEvent {
            unit: unit.clone(),
            object: object.clone(),
            action,
        });
    }
}

async fn run_hooks(
    applier: &Applier,
    unit: &ApplyUnit,
    hooks: &[Hook],
    opts: &ApplyOptions,
    results: &mut Vec<ObjectResult>,
) -> Result<(), ApplyError> {
    for h in hooks {
        let Some(mut r) = ObjectRef::from_object(&h.object) else {
            return Err(ApplyError::InvalidObject {
                unit: unit.id.clone(),
                index: 0,
                reason: format!(
                    "hook {:?}: apiVersion, kind and metadata.name are required",
                    h.name()
                ),
            });
        };
        let gvk = GroupVersionKind::gvk(&r.group, &r.version, &r.kind);
        let (ar, caps) = kube::discovery::pinned_kind(applier.client(), &gvk)
            .await
            .map_err(|_| ApplyError::UnknownKind {
                kind: r.kind.clone(),
                api_version: r.api_version(),
                object: r.clone(),
            })?;
        let mut obj = h.object.clone();
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            if r.namespace.is_empty() {
                r.namespace = unit
                    .target_namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
            }
            obj["metadata"]["namespace"] = Value::String(r.namespace.clone());
            Api::namespaced_with(applier.client().clone(), &r.namespace, &ar)
        } else {
            r.namespace.clear();
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            Api::all_with(applier.client().clone(), &ar)
        };
        if h.delete_before_creation {
            delete_and_wait(&api, &r, unit.timeout).await?;
        }
        let pp = PatchParams::apply(capstan_apply::FIELD_MANAGER).force();
        api.patch(&r.name, &pp, &Patch::Apply(&obj))
            .await
            .map_err(|e| ApplyError::Api {
                object: r.clone(),
                operation: "hook apply",
                // Only the message may echo the object: Secret values are redacted.
                source: match e {
                    kube::Error::Api(mut s) => {
                        s.message = capstan_apply::objects::redact_secret_values(&obj, &s.message);
                        kube::Error::Api(s)
                    }
                    other => other,
                },
            })?;
        // Deleted first (before-hook-creation): created anew; otherwise updated in place.
        let action = if h.delete_before_creation {
            Action::Created
        } else {
            Action::Configured
        };
        hook_event(opts, &unit.id, &r, action.clone());
        results.push(ObjectResult {
            object: r.clone(),
            action,
        });
        tracing::info!(unit = %unit.id, hook = %r, "hook applied");
        if h.waits() {
            match applier
                .wait_healthy(&unit.id, std::slice::from_ref(&r), unit.timeout, opts)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    if h.delete_on_failure {
                        delete_and_wait(&api, &r, unit.timeout).await?;
                    }
                    return Err(e);
                }
            }
        }
        if h.delete_on_success {
            delete_and_wait(&api, &r, unit.timeout).await?;
            hook_event(opts, &unit.id, &r, Action::Deleted);
        }
    }
    Ok(())
}

/// Deletes an object (its dependents in the background, as Helm does) and waits until
/// it is gone.
async fn delete_and_wait(
    api: &Api<DynamicObject>,
    r: &ObjectRef,
    timeout: Duration,
) -> Result<(), ApplyError> {
    match api.delete(&r.name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(source) => {
            return Err(ApplyError::Api {
                object: r.clone(),
                operation: "hook delete",
                source,
            })
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        match api.get_opt(&r.name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) if Instant::now() >= deadline => {
                return Err(ApplyError::DeleteTimeout { object: r.clone() })
            }
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(source) => {
                return Err(ApplyError::Api {
                    object: r.clone(),
                    operation: "get",
                    source,
                })
            }
        }
    }
}

/// Plans units with server-side dry runs (changes nothing).
pub struct DiffDriver<'a> {
    pub applier: &'a Applier,
}

impl UnitDriver for DiffDriver<'_> {
    type Output = UnitPlan;
    async fn run(&self, unit: &RenderedUnit) -> Result<UnitPlan, String> {
        self.applier
            .plan(&apply_unit(unit))
            .await
            .map_err(|e| e.to_string())
    }
}
