//! Day-two commands against a cluster, Flux CLI style: `capstan reconcile`,
//! `capstan suspend`, `capstan resume`. They talk to the objects the capstan
//! agent (or Flux) reconciles: Kustomizations, HelmReleases and sources.
//!
//! - `reconcile KIND NAME`: merge-patches `metadata.annotations."reconcile.fluxcd.io/requestedAt"`
//!   to now (RFC3339Nano) and, with `--wait` (default), polls until
//!   `status.lastHandledReconcileAt` equals it and the Ready condition is decided.
//! - `suspend KIND NAME...` / `resume KIND NAME...`: merge-patch `spec.suspend`;
//!   resume also requests a reconcile and waits like reconcile.
//!
//! Exit code 2 when Ready=False, on timeout, or when anything fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgAction, Args};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use serde_json::{json, Value};

use crate::EXIT_FAILURE;

/// The Flux annotation asking for a reconciliation now.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// How often `--wait` polls the object.
const POLL: Duration = Duration::from_millis(500);

/// One Flux kind the day-two commands handle.
#[derive(Debug, PartialEq, Eq)]
pub struct FluxKind {
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// The short name on the command line (`ks`, `hr`, ...).
    pub short: &'static str,
}

pub const KUSTOMIZATION: FluxKind = FluxKind {
    kind: "Kustomization",
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    plural: "kustomizations",
    short: "ks",
};
pub const HELM_RELEASE: FluxKind = FluxKind {
    kind: "HelmRelease",
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    plural: "helmreleases",
    short: "hr",
};
pub const GIT_REPOSITORY: FluxKind = FluxKind {
    kind: "GitRepository",
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    plural: "gitrepositories",
    short: "gitrepo",
};
pub const OCI_REPOSITORY: FluxKind = FluxKind {
    kind: "OCIRepository",
    group: "source.toolkit.fluxcd.io",
    version: "v1beta2",
    plural: "ocirepositories",
    short: "ocirepo",
};
pub const HELM_REPOSITORY: FluxKind = FluxKind {
    kind: "HelmRepository",
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    plural: "helmrepositories",
    short: "helmrepo",
};

/// Units first, then sources: the order of `get` listings.
pub const ALL_KINDS: [&FluxKind; 5] = [
    &KUSTOMIZATION,
    &HELM_RELEASE,
    &GIT_REPOSITORY,
    &OCI_REPOSITORY,
    &HELM_REPOSITORY,
];
pub const UNIT_KINDS: [&FluxKind; 2] = [&KUSTOMIZATION, &HELM_RELEASE];
pub const SOURCE_KINDS: [&FluxKind; 3] = [&GIT_REPOSITORY, &OCI_REPOSITORY, &HELM_REPOSITORY];

impl FluxKind {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    pub fn resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    pub fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource()),
            None => Api::all_with(client.clone(), &self.resource()),
        }
    }

    /// The kind a Flux `kind` field names (`sourceRef.kind`).
    pub fn by_kind(kind: &str) -> Option<&'static FluxKind> {
        ALL_KINDS.into_iter().find(|k| k.kind == kind)
    }

    /// "no Kustomization CRD on this cluster ..."
    pub fn missing_crd(&self) -> String {
        format!(
            "no {} CRD on this cluster ({}.{}/{}): is the capstan agent or Flux installed?",
            self.kind, self.plural, self.group, self.version
        )
    }
}

/// Parse the kind words of a command line: `ks`, `kustomization`, `hr`,
/// `helmrelease`, `gitrepo`, `source git`, `ocirepo`, `source oci`,
/// `helmrepo`, `source helm` (plurals too). Returns the kind and how many
/// words it took.
pub fn parse_kind(words: &[String]) -> Result<(&'static FluxKind, usize), String> {
    const KNOWN: &str = "ks|kustomization, hr|helmrelease, gitrepo|source git, ocirepo|source oci, helmrepo|source helm";
    let Some(first) = words.first() else {
        return Err(format!("name a kind: {KNOWN}"));
    };
    let one = |w: &str| -> Option<&'static FluxKind> {
        let w = w.to_ascii_lowercase();
        let w = w.as_str();
        Some(match w {
            "ks" | "kustomization" | "kustomizations" => &KUSTOMIZATION,
            "hr" | "helmrelease" | "helmreleases" => &HELM_RELEASE,
            "gitrepo" | "gitrepos" | "gitrepository" | "gitrepositories" => &GIT_REPOSITORY,
            "ocirepo" | "ocirepos" | "ocirepository" | "ocirepositories" => &OCI_REPOSITORY,
            "helmrepo" | "helmrepos" | "helmrepository" | "helmrepositories" => &HELM_REPOSITORY,
            _ => return None,
        })
    };
    if first.eq_ignore_ascii_case("source") {
        let sub = words.get(1).map(|s| s.to_ascii_lowercase());
        let kind = match sub.as_deref() {
            Some("git") => &GIT_REPOSITORY,
            Some("oci") => &OCI_REPOSITORY,
            Some("helm") => &HELM_REPOSITORY,
            other => {
                return Err(format!(
                    "unknown source kind {:?}: use source git, source oci or source helm",
                    other.unwrap_or("")
                ))
            }
        };
        return Ok((kind, 2));
    }
    match one(first) {
        Some(k) => Ok((k, 1)),
        None => {
            let mut msg = format!("unknown kind {first:?}: use {KNOWN}");
            let names = [
                "ks",
                "kustomization",
                "hr",
                "helmrelease",
                "gitrepo",
                "ocirepo",
                "helmrepo",
                "source",
            ];
            if let Some(m) = capstan_units::did_you_mean(first, names) {
                msg.push_str(&format!("\n  = hint: did you mean {m}?"));
            }
            Err(msg)
        }
    }
}

/// `KIND NAME...`: the kind and at least one name.
pub fn parse_targets(words: &[String]) -> Result<(&'static FluxKind, Vec<String>), String> {
    let (kind, used) = parse_kind(words)?;
    let names: Vec<String> = words[used..].to_vec();
    if names.is_empty() {
        return Err(format!("name the {} after the kind", kind.kind));
    }
    Ok((kind, names))
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped), as Flux writes
/// `reconcile.fluxcd.io/requestedAt`.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut s = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Which cluster: the kubeconfig arguments of every command talking to one.
#[derive(Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    pub async fn client(&self) -> Result<kube::Client, String> {
        connect(self.kubeconfig.as_deref(), self.context.as_deref()).await
    }
}

/// A client for the cluster of a kubeconfig file (or the default one) and context.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, String> {
    let config = config(kubeconfig, context).await?;
    kube::Client::try_from(config).map_err(|e| format!("connecting to the cluster: {e}"))
}

/// The client configuration [`connect`] uses.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, String> {
    let opts = KubeConfigOptions {
        context: context.map(String::from),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(p) => {
            let kc = Kubeconfig::read_from(p).map_err(|e| format!("{}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await
        }
        None => kube::Config::from_kubeconfig(&opts).await,
    }
    .map_err(|e| format!("kubeconfig: {e}"))?;
    Ok(config)
}

/// Whether the API server serves `kind` (its CRD is installed).
pub async fn kind_served(client: &kube::Client, kind: &FluxKind) -> bool {
    match client.list_api_group_resources(&kind.api_version()).await {
        Ok(list) => list.resources.iter().any(|r| r.name == kind.plural),
        Err(_) => false,
    }
}

/// A 404, with a Status body or (a path the server does not serve) without one.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.is_not_found())
}

/// A readable error for a failed request about `kind namespace/name`.
pub async fn api_error(
    client: &kube::Client,
    kind: &FluxKind,
    what: &str,
    e: kube::Error,
) -> String {
    if let kube::Error::Api(s) = &e {
        if is_not_found(&e) {
            if !kind_served(client, kind).await {
                return kind.missing_crd();
            }
            return format!(
                "{} {what} not found\n  = hint: list them with `capstan get {} -A`",
                kind.kind,
                if UNIT_KINDS.contains(&kind) {
                    kind.short
                } else {
                    "sources"
                }
            );
        }
        if s.is_forbidden() {
            return format!("{} {what}: forbidden: {}", kind.kind, s.message);
        }
        return format!("{} {what}: {}", kind.kind, s.message);
    }
    format!("{} {what}: {e}", kind.kind)
}

/// The Ready condition of an object's status: (status, reason, message).
pub fn ready_condition(obj: &Value) -> Option<(String, String, String)> {
    let conds = obj.pointer("/status/conditions")?.as_array()?;
    let c = conds
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?;
    let s = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some((s("status"), s("reason"), s("message")))
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr).and_then(Value::as_str)
}

/// `spec.suspend` is true.
pub fn is_suspended(obj: &Value) -> bool {
    obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

/// Wait arguments of reconcile and resume.
#[derive(Args, Clone, Debug)]
pub struct WaitArgs {
    /// Wait until the agent handled the request and print the Ready condition
    /// (--wait=false to only request).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub wait: bool,
    /// How long to wait (Go duration: 30s, 5m, 1h).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub timeout: String,
}

impl WaitArgs {
    fn timeout(&self) -> Result<Duration, String> {
        capstan_source::parse_go_duration(&self.timeout).ok_or_else(|| {
            format!(
                "--timeout {:?} is not a duration like 30s or 5m",
                self.timeout
            )
        })
    }
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// KIND NAME: ks|kustomization, hr|helmrelease, gitrepo|source git, ocirepo|source oci,
    /// helmrepo|source helm, then the object's name.
    #[arg(required = true, num_args = 2..=3, value_names = ["KIND", "NAME"])]
    pub what: Vec<String>,
    /// The object's namespace.
    #[arg(long, short = 'n', default_value = "flux-system")]
    pub namespace: String,
    /// Reconcile the object's source first (spec.sourceRef, spec.chart.spec.sourceRef or spec.chartRef).
    #[arg(long)]
    pub with_source: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args)]
pub struct SuspendArgs {
    /// KIND NAME...: ks|kustomization or hr|helmrelease (sources too), then one or more names.
    #[arg(required = true, num_args = 2.., value_names = ["KIND", "NAME"])]
    pub what: Vec<String>,
    /// The objects' namespace.
    #[arg(long, short = 'n', default_value = "flux-system")]
    pub namespace: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: SuspendArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// What the agent made of a reconcile request.
enum Handled {
    Ready(String),
    NotReady(String),
}

/// Ask for a reconcile of `kind ns/name` and, if `wait`, wait for the answer.
/// `Ok(true)` when Ready=True (or not waiting), `Ok(false)` when Ready=False.
async fn request_and_wait(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    extra_patch: Option<Value>,
    wait: Option<Duration>,
) -> Result<bool, String> {
    let api = kind.api(client, Some(ns));
    let what = format!("{ns}/{name}");
    let obj = match api.get(name).await {
        Ok(o) => o,
        Err(e) => return Err(api_error(client, kind, &what, e).await),
    };
    let value = serde_json::to_value(&obj).unwrap_or_default();
    if extra_patch.is_none() && is_suspended(&value) {
        return Err(format!(
            "{} {what} is suspended: the agent does not reconcile it\n  = hint: `capstan resume {} {name} -n {ns}`",
            kind.kind, kind.short
        ));
    }
    let token = rfc3339_nano(SystemTime::now());
    let mut patch = json!({"metadata": {"annotations": {REQUESTED_AT: token}}});
    if let Some(extra) = extra_patch {
        merge(&mut patch, extra);
    }
    eprintln!("► annotating {} {what}", kind.kind);
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("{} {what}: {e}", kind.kind))?;
    eprintln!("✔ {} annotated (requestedAt {token})", kind.kind);
    let Some(timeout) = wait else {
        return Ok(true);
    };
    eprintln!("◎ waiting for {} reconciliation", kind.kind);
    match wait_handled(client, kind, ns, name, &token, timeout).await? {
        Handled::Ready(msg) => {
            println!("✔ {} {what} reconciled: {msg}", kind.kind);
            Ok(true)
        }
        Handled::NotReady(msg) => {
            println!("✗ {} {what} not ready: {msg}", kind.kind);
            Ok(false)
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

async fn wait_handled(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    token: &str,
    timeout: Duration,
) -> Result<Handled, String> {
    let api = kind.api(client, Some(ns));
    let started = Instant::now();
    let mut last = String::from("the request was not handled yet");
    loop {
        match api.get(name).await {
            Ok(obj) => {
                let v = serde_json::to_value(&obj).unwrap_or_default();
                let handled = str_at(&v, "/status/lastHandledReconcileAt") == Some(token);
                let generation = v.pointer("/metadata/generation").and_then(Value::as_i64);
                let observed = v
                    .pointer("/status/observedGeneration")
                    .and_then(Value::as_i64);
                let current = match (generation, observed) {
                    (Some(g), Some(o)) => o >= g,
                    _ => true,
                };
                let ready = ready_condition(&v);
                if let Some((status, reason, message)) = &ready {
                    last = format!("Ready={status} {reason}: {message}");
                }
                if handled && current {
                    match ready {
                        Some((s, _, message)) if s == "True" => {
                            let rev = str_at(&v, "/status/lastAppliedRevision")
                                .or_else(|| str_at(&v, "/status/artifact/revision"));
                            return Ok(Handled::Ready(match rev {
                                Some(r) if !message.contains(r) => {
                                    format!("{message} (revision {r})")
                                }
                                _ => message,
                            }));
                        }
                        Some((s, reason, message)) if s == "False" => {
                            return Ok(Handled::NotReady(format!("{reason}: {message}")))
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => last = format!("reading the object: {e}"),
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "timed out after {}s waiting for {} {ns}/{name} to be reconciled (last: {last})\n  = hint: is the capstan agent running? `capstan get {} -n {ns}` shows the status",
                timeout.as_secs(),
                kind.kind,
                if UNIT_KINDS.contains(&kind) { kind.short } else { "sources" }
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The source an object reconciles from: (kind, namespace, name).
pub fn source_ref(kind: &FluxKind, obj: &Value, ns: &str) -> Option<(String, String, String)> {
    let r = if kind == &KUSTOMIZATION {
        obj.pointer("/spec/sourceRef")
    } else if kind == &HELM_RELEASE {
        obj.pointer("/spec/chart/spec/sourceRef")
            .or_else(|| obj.pointer("/spec/chartRef"))
    } else {
        None
    }?;
    let k = r.get("kind").and_then(Value::as_str)?.to_string();
    let n = r.get("name").and_then(Value::as_str)?.to_string();
    let namespace = r
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(ns)
        .to_string();
    Some((k, namespace, n))
}

pub async fn reconcile(args: ReconcileArgs) -> Result<u8, String> {
    let (kind, names) = parse_targets(&args.what)?;
    if names.len() != 1 {
        return Err(format!("reconcile takes one {} name", kind.kind));
    }
    let name = &names[0];
    let ns = args.namespace.as_str();
    let wait = if args.wait.wait {
        Some(args.wait.timeout()?)
    } else {
        None
    };
    let client = args.cluster.client().await?;
    let mut ok = true;
    if args.with_source {
        let api = kind.api(&client, Some(ns));
        let obj = match api.get(name).await {
            Ok(o) => serde_json::to_value(&o).unwrap_or_default(),
            Err(e) => return Err(api_error(&client, kind, &format!("{ns}/{name}"), e).await),
        };
        match source_ref(kind, &obj, ns) {
            Some((sk, sns, sname)) => match FluxKind::by_kind(&sk) {
                Some(skind) if SOURCE_KINDS.contains(&skind) => {
                    ok &= request_and_wait(&client, skind, &sns, &sname, None, wait).await?;
                }
                _ => eprintln!(
                    "note: source kind {sk} is not handled by capstan; reconciling {} only",
                    kind.kind
                ),
            },
            None => eprintln!("note: {} {ns}/{name} names no source", kind.kind),
        }
    }
    ok &= request_and_wait(&client, kind, ns, name, None, wait).await?;
    Ok(if ok { 0 } else { EXIT_FAILURE })
}

async fn set_suspend(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    suspend: bool,
) -> Result<(), String> {
    let api = kind.api(client, Some(ns));
    let what = format!("{ns}/{name}");
    let verb = if suspend { "suspending" } else { "resuming" };
    eprintln!("► {verb} {} {what}", kind.kind);
    let patch = json!({"spec": {"suspend": suspend}});
    if let Err(e) = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        return Err(api_error(client, kind, &what, e).await);
    }
    Ok(())
}

pub async fn suspend(args: SuspendArgs) -> Result<u8, String> {
    let (kind, names) = parse_targets(&args.what)?;
    let client = args.cluster.client().await?;
    for name in &names {
        set_suspend(&client, kind, &args.namespace, name, true).await?;
        println!("✔ {} {}/{name} suspended", kind.kind, args.namespace);
    }
    Ok(0)
}

pub async fn resume(args: ResumeArgs) -> Result<u8, String> {
    let (kind, names) = parse_targets(&args.target.what)?;
    let wait = if args.wait.wait {
        Some(args.wait.timeout()?)
    } else {
        None
    };
    let ns = args.target.namespace.as_str();
    let client = args.target.cluster.client().await?;
    let mut ok = true;
    for name in &names {
        eprintln!("► resuming {} {ns}/{name}", kind.kind);
        let resumed = request_and_wait(
            &client,
            kind,
            ns,
            name,
            Some(json!({"spec": {"suspend": false}})),
            wait,
        )
        .await?;
        if wait.is_none() {
            println!("✔ {} {ns}/{name} resumed", kind.kind);
        }
        ok &= resumed;
    }
    Ok(if ok { 0 } else { EXIT_FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn kinds() {
        assert_eq!(parse_kind(&words("ks apps")).unwrap(), (&KUSTOMIZATION, 1));
        assert_eq!(
            parse_kind(&words("Kustomization apps")).unwrap(),
            (&KUSTOMIZATION, 1)
        );
        assert_eq!(parse_kind(&words("hr x")).unwrap(), (&HELM_RELEASE, 1));
        assert_eq!(
            parse_kind(&words("source git fleet")).unwrap(),
            (&GIT_REPOSITORY, 2)
        );
        assert_eq!(
            parse_kind(&words("gitrepo f")).unwrap(),
            (&GIT_REPOSITORY, 1)
        );
        assert_eq!(
            parse_kind(&words("source oci f")).unwrap(),
            (&OCI_REPOSITORY, 2)
        );
        let e = parse_kind(&words("kustomizaton apps")).unwrap_err();
        assert!(e.contains("did you mean kustomization"), "{e}");
        assert!(parse_kind(&words("source bucket x")).is_err());
        let (k, names) = parse_targets(&words("hr a b")).unwrap();
        assert_eq!((k, names), (&HELM_RELEASE, vec!["a".into(), "b".into()]));
        assert!(parse_targets(&words("source git")).is_err());
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 1); // leap day 2000
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn ready_and_source() {
        let obj = json!({
            "spec": {"suspend": true, "chart": {"spec": {"sourceRef": {"kind": "HelmRepository", "name": "charts"}}}},
            "status": {"conditions": [
                {"type": "Reconciling", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "DependencyNotReady", "message": "dependency 'flux-system/infra' is not ready"}
            ]}
        });
        assert!(is_suspended(&obj));
        let (s, r, m) = ready_condition(&obj).unwrap();
        assert_eq!((s.as_str(), r.as_str()), ("False", "DependencyNotReady"));
        assert!(m.contains("infra"));
        assert_eq!(
            source_ref(&HELM_RELEASE, &obj, "apps"),
            Some(("HelmRepository".into(), "apps".into(), "charts".into()))
        );
        assert_eq!(source_ref(&KUSTOMIZATION, &obj, "apps"), None);
    }
}
