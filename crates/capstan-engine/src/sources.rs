//! Sources other than the root repository that a cluster's units name in `sourceRef`
//! (GitRepository, OCIRepository), fetched read-only on their own interval and mounted
//! next to the repository's tree for rendering (see [`capstan_vfs::MountFs`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_source::{
    Artifact, GitAuth, GitRepositorySpec, HttpAuth, OciRepositorySpec, SourceCache,
};
use capstan_units::ClusterUnits;
use serde_json::Value;

/// (kind, namespace, name) of a source.
pub type SourceKey = (String, String, String);

/// Where sources are mounted in the render's file system.
pub const MOUNT_ROOT: &str = "/.capstan/sources";

/// The mount point of a source.
pub fn mount_point(key: &SourceKey) -> PathBuf {
    PathBuf::from(format!("{MOUNT_ROOT}/{}/{}/{}", key.0, key.1, key.2))
}

#[derive(Debug, Clone)]
struct Fetched {
    artifact: Option<Arc<Artifact>>,
    error: Option<String>,
    at: Instant,
    interval: Duration,
    /// The source object's spec, to refetch when it changes.
    spec: Value,
}

/// `--source-mirror FROM=TO`: source URLs starting with `FROM` are fetched from `TO`
/// instead (air-gapped mirrors, tests). The longest matching prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors(Vec<(String, String)>);

impl Mirrors {
    /// Parses `FROM=TO` pairs.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<Mirrors, String> {
        let mut out = Vec::new();
        for p in pairs {
            let p = p.as_ref();
            match p.split_once('=') {
                Some((from, to)) if !from.is_empty() && !to.is_empty() => {
                    out.push((from.to_string(), to.to_string()))
                }
                _ => {
                    return Err(format!(
                        "--source-mirror {p:?}: expected FROM=TO (e.g. https://charts.example.com=http://127.0.0.1:8080)"
                    ))
                }
            }
        }
        out.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Ok(Mirrors(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `url` with its mirror's prefix, or unchanged.
    pub fn rewrite(&self, url: &str) -> String {
        for (from, to) in &self.0 {
            if let Some(rest) = url.strip_prefix(from.as_str()) {
                return format!("{to}{rest}");
            }
        }
        url.to_string()
    }

    /// A source object with its `spec.url` rewritten. An `oci://` URL mirrored to
    /// `http://HOST/PATH` is fetched from the registry at `oci://HOST/PATH` over plain HTTP
    /// (`spec.insecure: true`); to `https://HOST/PATH`, from `oci://HOST/PATH`.
    pub fn object(&self, o: &Value) -> Value {
        let mut o = o.clone();
        if let Some(url) = o.pointer("/spec/url").and_then(Value::as_str) {
            let oci = url.starts_with("oci://");
            let mut url = self.rewrite(url);
            if oci {
                if let Some(rest) = url.strip_prefix("http://") {
                    url = format!("oci://{rest}");
                    o["spec"]["insecure"] = Value::Bool(true);
                } else if let Some(rest) = url.strip_prefix("https://") {
                    url = format!("oci://{rest}");
                }
            }
            o["spec"]["url"] = Value::String(url);
        }
        o
    }
}

/// Secrets for sources' `spec.secretRef` when no cluster is reachable (`capstan build`,
/// `--source-secret FILE`): Kubernetes Secret manifests read from files. A Secret without
/// `metadata.namespace` answers a `secretRef` of that name in any namespace. With a
/// cluster, the cluster's Secrets are read instead. `Debug` never shows values.
#[derive(Clone, Default)]
pub struct LocalSecrets(Arc<BTreeMap<SecretName, SecretData>>);

/// A Secret's namespace (`None`: any) and name.
type SecretName = (Option<String>, String);
/// A Secret's `data`, decoded.
type SecretData = BTreeMap<String, Vec<u8>>;

impl std::fmt::Debug for LocalSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|(ns, n)| match ns {
                Some(ns) => format!("{ns}/{n}"),
                None => format!("*/{n}"),
            }))
            .finish()
    }
}

impl LocalSecrets {
    /// The Secrets of `text` (YAML, one or more documents), read from `file` (named in
    /// errors, which never quote values). `stringData` wins over `data`, as the API server
    /// merges them.
    pub fn parse(text: &str, file: &str) -> Result<LocalSecrets, String> {
        use base64::Engine;
        let docs = capstan_yaml::parse_documents(text, file).map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for (i, doc) in docs.iter().enumerate() {
            let o = capstan_yaml::to_json(doc);
            if o.is_null() {
                continue;
            }
            let at = format!("{file}: document {}", i + 1);
            if o.get("kind").and_then(Value::as_str) != Some("Secret") {
                return Err(format!(
                    "{at}: kind: expected a Secret (a source's spec.secretRef names one)"
                ));
            }
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("{at}: metadata.name is missing"))?;
            let ns = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(String::from);
            let mut data = BTreeMap::new();
            for (k, v) in o
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let b = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or("").trim())
                    .map_err(|_| format!("{at}: Secret {name}: data.{k} is not valid base64"))?;
                data.insert(k.clone(), b);
            }
            for (k, v) in o
                .get("stringData")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(v) = v.as_str() else {
                    return Err(format!(
                        "{at}: Secret {name}: stringData.{k} must be a string"
                    ));
                };
                data.insert(k.clone(), v.as_bytes().to_vec());
            }
            out.insert((ns, name.to_string()), data);
        }
        Ok(LocalSecrets(Arc::new(out)))
    }

    /// The Secrets of every file of `paths` (later files win).
    pub fn load(paths: &[PathBuf]) -> Result<LocalSecrets, String> {
        let mut all = BTreeMap::new();
        for p in paths {
            let shown = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| format!("{shown}: {e}"))?;
            let one = LocalSecrets::parse(&text, &shown)?;
            all.extend(one.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(LocalSecrets(Arc::new(all)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `data` of Secret `namespace/name` (one given with that namespace first, then
    /// one given without a namespace).
    pub fn get(&self, namespace: &str, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.0
            .get(&(Some(namespace.to_string()), name.to_string()))
            .or_else(|| self.0.get(&(None, name.to_string())))
    }

    /// [`LocalSecrets::get`], or an error naming the Secret and where it was referenced.
    pub fn data(
        &self,
        namespace: &str,
        name: &str,
        field: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        self.get(namespace, name).cloned().ok_or_else(|| {
            format!(
                "{field}: Secret {namespace}/{name}: no cluster is reachable to read it from (hint: give the Secret's manifest with --source-secret FILE or $CAPSTAN_SOURCE_SECRETS)"
            )
        })
    }
}

/// The other sources of one cluster.
pub struct SourceSet {
    cache: Arc<SourceCache>,
    fetched: Mutex<BTreeMap<SourceKey, Fetched>>,
    mirrors: Mirrors,
    secrets: LocalSecrets,
}

/// A source object found in the rendered repository.
#[derive(Debug, Clone)]
pub struct Declared {
    pub key: SourceKey,
    pub object: Value,
}

/// Source objects declared among the units' toolkit objects, except `root`.
pub fn declared(units: &ClusterUnits, root: &SourceKey) -> Vec<Declared> {
    let mut out = Vec::new();
    for r in units.rendered() {
        for o in &r.consumed {
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind != "GitRepository" && kind != "OCIRepository" {
                continue;
            }
            let meta = |k: &str| o.pointer(&format!("/metadata/{k}")).and_then(Value::as_str);
            let key = (
                kind.to_string(),
                meta("namespace").unwrap_or("default").to_string(),
                meta("name").unwrap_or("").to_string(),
            );
            if &key != root {
                out.push(Declared {
                    key,
                    object: o.clone(),
                });
            }
        }
    }
    out
}

/// The `data` of Secret `ns/name`, for credentials; `field` names where the reference
/// came from in errors (which never include the data).
pub async fn secret_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    field: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {ns}/{name} ({field}): {e}"))?
        .ok_or_else(|| format!("Secret {ns}/{name} ({field}) not found"))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

impl SourceSet {
    pub fn new(cache: Arc<SourceCache>) -> Self {
        SourceSet {
            cache,
            fetched: Mutex::new(BTreeMap::new()),
            mirrors: Mirrors::default(),
            secrets: LocalSecrets::default(),
        }
    }

    /// Credentials for `spec.secretRef` when fetching without a cluster.
    pub fn with_secrets(mut self, secrets: LocalSecrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Fetch through `mirrors`.
    pub fn with_mirrors(mut self, mirrors: Mirrors) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// Sources with an artifact: (key, mount point, artifact).
    pub fn mounted(&self) -> Vec<(SourceKey, PathBuf, Arc<Artifact>)> {
        self.fetched
            .lock()
            .expect("sources")
            .iter()
            .filter_map(|(k, f)| f.artifact.clone().map(|a| (k.clone(), mount_point(k), a)))
            .collect()
    }

    /// Why a source has no artifact (None when it has one or is unknown).
    pub fn error(&self, key: &SourceKey) -> Option<String> {
        let f = self.fetched.lock().expect("sources");
        f.get(key).and_then(|f| f.error.clone())
    }

    /// The revision of a mounted source.
    pub fn revision(&self, key: &SourceKey) -> Option<String> {
        let f = self.fetched.lock().expect("sources");
        f.get(key)
            .and_then(|f| f.artifact.as_ref().map(|a| a.revision.clone()))
    }

    /// Is any declared source new, changed or due?
    pub fn due(&self, declared: &[Declared]) -> bool {
        let f = self.fetched.lock().expect("sources");
        declared.iter().any(|d| match f.get(&d.key) {
            None => true,
            Some(x) => x.spec != d.object["spec"] || x.at.elapsed() >= x.interval,
        })
    }

    /// Fetch the declared sources that are new, changed or due; forget the others.
    /// Returns whether any artifact changed (the cluster must be rendered again).
    /// Without a `client`, sources with `spec.secretRef` fail (their credentials live in
    /// the cluster).
    pub async fn refresh(&self, client: Option<&kube::Client>, declared: &[Declared]) -> bool {
        let mut changed = false;
        {
            let mut f = self.fetched.lock().expect("sources");
            let before = f.len();
            f.retain(|k, _| declared.iter().any(|d| &d.key == k));
            changed |= f.len() != before;
        }
        for d in declared {
            let (stale, previous) = {
                let f = self.fetched.lock().expect("sources");
                match f.get(&d.key) {
                    None => (true, None),
                    Some(x) => (
                        x.spec != d.object["spec"] || x.at.elapsed() >= x.interval,
                        x.artifact.as_ref().map(|a| a.revision.clone()),
                    ),
                }
            };
            if !stale {
                continue;
            }
            let (result, interval) = self.fetch(client, d).await;
            let revision = result.as_ref().ok().map(|a| a.revision.clone());
            if revision.is_some() && revision != previous {
                changed = true;
            }
            let mut f = self.fetched.lock().expect("sources");
            let entry = f.entry(d.key.clone()).or_insert_with(|| Fetched {
                artifact: None,
                error: None,
                at: Instant::now(),
                interval,
                spec: Value::Null,
            });
            entry.at = Instant::now();
            entry.interval = interval;
            entry.spec = d.object["spec"].clone();
            match result {
                Ok(a) => {
                    entry.artifact = Some(Arc::new(a));
                    entry.error = None;
                }
                Err(e) => {
                    tracing::warn!(source = %format!("{}/{}/{}", d.key.0, d.key.1, d.key.2), error = %e, "fetch failed; keeping the last good revision");
                    entry.error = Some(e);
                }
            }
        }
        changed
    }

    async fn fetch(
        &self,
        client: Option<&kube::Client>,
        d: &Declared,
    ) -> (Result<Artifact, String>, Duration) {
        let mirrored = Declared {
            key: d.key.clone(),
            object: self.mirrors.object(&d.object),
        };
        let d = &mirrored;
        let read_secret = |ns: &str, name: &str, field: &str| {
            let (ns, name, field) = (ns.to_string(), name.to_string(), field.to_string());
            let local = self.secrets.clone();
            async move {
                match client {
                    Some(c) => secret_data(c, &ns, &name, &field).await,
                    None => local.data(&ns, &name, &field),
                }
            }
        };
        let interval = d.object["spec"]["interval"]
            .as_str()
            .and_then(capstan_source::parse_go_duration)
            .unwrap_or(Duration::from_secs(60));
        // Offline, nothing is sent anywhere: no credentials needed.
        let secret = d.object["spec"]["secretRef"]["name"]
            .as_str()
            .filter(|_| !self.cache.is_offline());
        let result = async {
            match d.key.0.as_str() {
                "GitRepository" => {
                    let spec =
                        GitRepositorySpec::from_object(&d.object).map_err(|e| e.to_string())?;
                    let auth = match secret {
                        Some(s) => Some(
                            GitAuth::from_secret_data(
                                &read_secret(&d.key.1, s, "spec.secretRef").await?,
                            )
                            .map_err(|e| e.to_string())?,
                        ),
                        None => None,
                    };
                    self.cache
                        .fetch_git(&spec, auth.as_ref())
                        .await
                        .map_err(|e| e.to_string())
                }
                _ => {
                    let spec =
                        OciRepositorySpec::from_object(&d.object).map_err(|e| e.to_string())?;
                    let auth = match secret {
                        Some(s) => Some(
                            HttpAuth::from_secret_data(
                                &read_secret(&d.key.1, s, "spec.secretRef").await?,
                            )
                            .map_err(|e| e.to_string())?,
                        ),
                        None => None,
                    };
                    self.cache
                        .fetch_oci(&spec, auth.as_ref())
                        .await
                        .map_err(|e| e.to_string())
                }
            }
        }
        .await;
        (result, interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `--source-mirror FROM=TO`: the longest matching prefix of a source's `spec.url` is
    /// replaced; other URLs and malformed pairs are left alone or refused.
    #[test]
    fn mirrors_rewrite_source_urls_by_longest_prefix() {
        let m = Mirrors::parse(&[
            "https://github.com=http://127.0.0.1:9418",
            "https://github.com/fluxcd/flux2-kustomize-helm-example=git://127.0.0.1:1/example",
            "oci://ghcr.io=oci://127.0.0.1:5000",
        ])
        .unwrap();
        assert_eq!(
            m.rewrite("https://github.com/fluxcd/flux2-kustomize-helm-example"),
            "git://127.0.0.1:1/example"
        );
        assert_eq!(
            m.rewrite("https://github.com/stefanprodan/podinfo"),
            "http://127.0.0.1:9418/stefanprodan/podinfo"
        );
        assert_eq!(m.rewrite("https://gitlab.com/x"), "https://gitlab.com/x");
        let o = m.object(&json!({"kind": "HelmRepository", "spec": {"url": "oci://ghcr.io/stefanprodan/charts"}}));
        assert_eq!(o["spec"]["url"], "oci://127.0.0.1:5000/stefanprodan/charts");
        assert!(o["spec"].get("insecure").is_none());
        // An OCI registry mirrored to plain HTTP.
        let m = Mirrors::parse(&["oci://ghcr.io/example=http://127.0.0.1:5000/mirror"]).unwrap();
        let o = m.object(
            &json!({"kind": "OCIRepository", "spec": {"url": "oci://ghcr.io/example/app"}}),
        );
        assert_eq!(o["spec"]["url"], "oci://127.0.0.1:5000/mirror/app");
        assert_eq!(o["spec"]["insecure"], true);
        assert!(Mirrors::parse(&["no-equals"])
            .unwrap_err()
            .contains("FROM=TO"));
        assert!(Mirrors::parse(&["=x"]).is_err());
    }

    /// `--source-secret`: Secret manifests answer `spec.secretRef` by namespace and name
    /// (one without a namespace in any namespace); `stringData` wins over `data`; anything
    /// else is refused naming the file and document; values never show in errors or Debug.
    #[test]
    fn local_secrets_answer_secret_refs_by_namespace_and_name() {
        let s = LocalSecrets::parse(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-auth\n  namespace: flux-system\ndata:\n  username: Ym90\n  password: aHVudGVyMg==\nstringData:\n  username: robot\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: charts\nstringData:\n  bearerToken: tok3n\n",
            "creds.yaml",
        )
        .unwrap();
        let git = s.get("flux-system", "git-auth").unwrap();
        assert_eq!(git["username"], b"robot");
        assert_eq!(git["password"], b"hunter2");
        assert!(s.get("apps", "git-auth").is_none());
        assert_eq!(s.get("apps", "charts").unwrap()["bearerToken"], b"tok3n");
        let shown = format!("{s:?}");
        assert!(shown.contains("flux-system/git-auth") && !shown.contains("hunter2"));
        let e = s.data("apps", "missing", "spec.secretRef").unwrap_err();
        assert!(
            e.contains("spec.secretRef: Secret apps/missing") && e.contains("--source-secret"),
            "{e}"
        );
        let e = LocalSecrets::parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
            "f.yaml",
        )
        .unwrap_err();
        assert!(e.contains("f.yaml: document 1: kind"), "{e}");
        let e = LocalSecrets::parse(
            "kind: Secret\nmetadata:\n  name: x\ndata:\n  password: '%%%hunter2'\n",
            "f.yaml",
        )
        .unwrap_err();
        assert!(
            e.contains("data.password is not valid base64") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
