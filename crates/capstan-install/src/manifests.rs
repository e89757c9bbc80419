//! The agent's install manifests (pure: options in, objects out).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};

use crate::image::ImageRef;
use crate::{
    InstallError, AGENT_NAME, CREDENTIALS_SECRET, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME,
    LABEL_PART_OF, LABEL_VERSION, METRICS_PORT, METRICS_SERVICE,
};

/// Which revision of the repository the agent follows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceRef {
    /// The remote's HEAD branch.
    #[default]
    Head,
    /// A branch.
    Branch(String),
    /// A tag.
    Tag(String),
    /// The highest tag in a semver range.
    Semver(String),
}

/// The agent's rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rbac {
    /// `cluster-admin` (the agent applies anything anywhere, as Flux's controllers do).
    #[default]
    ClusterAdmin,
    /// Everything in the install namespace only, plus reading CustomResourceDefinitions
    /// (a tenant install: the agent does not install CRDs itself).
    Namespaced,
}

/// Flux's keys of a Git credentials Secret (`spec.secretRef` of a GitRepository).
pub const CREDENTIAL_KEYS: &[&str] = &[
    "username",
    "password",
    "bearerToken",
    "identity",
    "known_hosts",
];

/// Environment variable holding an HTTP bearer token (as `capstan build --source` reads).
pub const ENV_TOKEN: &str = "CAPSTAN_GIT_TOKEN";
/// Environment variable holding the HTTP basic user name.
pub const ENV_USERNAME: &str = "CAPSTAN_GIT_USERNAME";
/// Environment variable holding the HTTP basic password.
pub const ENV_PASSWORD: &str = "CAPSTAN_GIT_PASSWORD";

/// Read-only Git credentials for the agent, in Flux's Secret format. The values never
/// appear in `Debug`, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct GitCredentials {
    data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentials")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GitCredentials {
    /// From the environment: `CAPSTAN_GIT_TOKEN` (bearer) or `CAPSTAN_GIT_USERNAME` +
    /// `CAPSTAN_GIT_PASSWORD` (basic). `get` reads one variable (`std::env::var` in the CLI).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<GitCredentials, InstallError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        let mut data = BTreeMap::new();
        if let Some(token) = non_empty(ENV_TOKEN) {
            data.insert("bearerToken".to_string(), token.into_bytes());
        }
        match (non_empty(ENV_USERNAME), non_empty(ENV_PASSWORD)) {
            (Some(u), Some(p)) => {
                data.insert("username".into(), u.into_bytes());
                data.insert("password".into(), p.into_bytes());
            }
            (Some(_), None) => {
                return Err(InstallError::MissingCredential {
                    what: format!("${ENV_PASSWORD} is not set (${ENV_USERNAME} is)"),
                })
            }
            (None, Some(_)) => {
                return Err(InstallError::MissingCredential {
                    what: format!("${ENV_USERNAME} is not set (${ENV_PASSWORD} is)"),
                })
            }
            (None, None) => {}
        }
        if data.is_empty() {
            return Err(InstallError::MissingCredential {
                what: format!(
                    "--source-secret-from-env: neither ${ENV_TOKEN} nor ${ENV_USERNAME}/${ENV_PASSWORD} is set"
                ),
            });
        }
        Ok(GitCredentials { data })
    }

    /// From `KEY=FILE` pairs (Flux's keys: username, password, bearerToken, identity,
    /// known_hosts); `read` reads one file.
    pub fn from_files(
        pairs: &[String],
        read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<GitCredentials, InstallError> {
        let mut data = BTreeMap::new();
        for pair in pairs {
            let Some((key, file)) = pair.split_once('=') else {
                return Err(InstallError::InvalidCredential {
                    what: format!(
                        "--source-secret-from-file {pair:?}: expected KEY=FILE (KEY one of {})",
                        CREDENTIAL_KEYS.join(", ")
                    ),
                });
            };
            if !CREDENTIAL_KEYS.contains(&key) {
                return Err(InstallError::InvalidCredential {
                    what: format!(
                        "--source-secret-from-file: unknown key {key:?} (Flux's keys are {})",
                        CREDENTIAL_KEYS.join(", ")
                    ),
                });
            }
            let mut value = read(file).map_err(|e| InstallError::MissingCredential {
                what: format!("--source-secret-from-file {key}={file}: {e}"),
            })?;
            // Text values lose their trailing newline (a file written by `echo`).
            if key != "identity" && key != "known_hosts" {
                while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    value.pop();
                }
            }
            if value.is_empty() {
                return Err(InstallError::MissingCredential {
                    what: format!("--source-secret-from-file {key}={file}: the file is empty"),
                });
            }
            data.insert(key.to_string(), value);
        }
        let creds = GitCredentials { data };
        creds.validate()?;
        Ok(creds)
    }

    /// Merges `other` into these credentials (its keys win).
    pub fn merge(mut self, other: GitCredentials) -> Result<GitCredentials, InstallError> {
        self.data.extend(other.data);
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), InstallError> {
        let has = |k: &str| self.data.contains_key(k);
        if has("password") && !has("username") {
            return Err(InstallError::MissingCredential {
                what: "a password needs a username (username=FILE or $CAPSTAN_GIT_USERNAME)".into(),
            });
        }
        if has("username") && !has("password") {
            return Err(InstallError::MissingCredential {
                what: "a username needs a password (password=FILE or $CAPSTAN_GIT_PASSWORD)".into(),
            });
        }
        if has("identity") && !has("known_hosts") {
            return Err(InstallError::MissingCredential {
                what: "an SSH identity needs known_hosts (known_hosts=FILE, e.g. from ssh-keyscan): the agent never trusts an unknown host key".into(),
            });
        }
        if self.data.is_empty() {
            return Err(InstallError::MissingCredential {
                what: "no credential given".into(),
            });
        }
        Ok(())
    }

    /// The Secret's keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }
}

/// What `capstan install` puts into the cluster.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Namespace of the agent (and of its Lease and credentials Secret).
    pub namespace: String,
    /// The repository URL.
    pub source: String,
    /// Which revision to follow.
    pub reference: SourceRef,
    /// The agent's own cluster (`clusters/<NAME>`).
    pub cluster: Option<String>,
    /// Also reconcile clusters found through kubeconfig Secrets.
    pub discover_clusters: bool,
    /// The agent's image.
    pub image: ImageRef,
    /// The agent's rights.
    pub rbac: Rbac,
    /// Read-only Git credentials (a Secret), if the repository needs them.
    pub credentials: Option<GitCredentials>,
    /// Include the toolkit CRDs.
    pub include_crds: bool,
    /// How often the repository is fetched (a Go duration, e.g. `1m`).
    pub interval: Option<String>,
    /// The version recorded in `app.kubernetes.io/version`.
    pub version: String,
}

impl InstallOptions {
    /// Options with defaults: namespace `capstan-system`, cluster-admin, CRDs included.
    pub fn new(source: impl Into<String>, image: ImageRef) -> Self {
        InstallOptions {
            namespace: crate::DEFAULT_NAMESPACE.into(),
            source: source.into(),
            reference: SourceRef::Head,
            cluster: None,
            discover_clusters: false,
            image,
            rbac: Rbac::ClusterAdmin,
            credentials: None,
            include_crds: true,
            interval: None,
            version: crate::VERSION.into(),
        }
    }

    /// Name of the cluster-scoped RBAC objects: one per install namespace, so tenant
    /// installs do not collide.
    pub fn cluster_rbac_name(&self) -> String {
        format!("{AGENT_NAME}-{}", self.namespace)
    }
}

fn labels(opts: &InstallOptions, component: &str) -> Value {
    json!({
        LABEL_NAME: AGENT_NAME,
        LABEL_PART_OF: "capstan",
        LABEL_MANAGED_BY: "capstan",
        LABEL_COMPONENT: component,
        LABEL_VERSION: opts.version,
    })
}

fn meta(opts: &InstallOptions, name: &str, namespaced: bool, component: &str) -> Value {
    let mut m = json!({"name": name, "labels": labels(opts, component)});
    if namespaced {
        m["namespace"] = json!(opts.namespace);
    }
    m
}

/// The agent's command line in the container.
pub fn agent_args(opts: &InstallOptions) -> Vec<String> {
    let mut args = vec!["--source".to_string(), opts.source.clone()];
    match &opts.reference {
        SourceRef::Head => {}
        SourceRef::Branch(b) => args.extend(["--branch".into(), b.clone()]),
        SourceRef::Tag(t) => args.extend(["--tag".into(), t.clone()]),
        SourceRef::Semver(s) => args.extend(["--semver".into(), s.clone()]),
    }
    if let Some(c) = &opts.cluster {
        args.extend(["--cluster".into(), c.clone()]);
    }
    if opts.discover_clusters {
        args.push("--discover-clusters".into());
    }
    if let Some(i) = &opts.interval {
        args.extend(["--interval".into(), i.clone()]);
    }
    if opts.credentials.is_some() {
        args.extend(["--source-secret".into(), CREDENTIALS_SECRET.into()]);
    }
    args.extend([
        "--namespace".into(),
        opts.namespace.clone(),
        "--leader-elect".into(),
        "--listen".into(),
        format!("0.0.0.0:{METRICS_PORT}"),
        "--cache-dir".into(),
        "/var/cache/capstan".into(),
        "--log-json".into(),
    ]);
    if opts.rbac == Rbac::Namespaced {
        args.push("--no-install-crds".into());
    }
    args
}

fn deployment(opts: &InstallOptions) -> Value {
    let selector = json!({LABEL_NAME: AGENT_NAME});
    let probe = |path: &str, period: u32| {
        json!({
            "httpGet": {"path": path, "port": "http-metrics"},
            "initialDelaySeconds": 5,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(opts, AGENT_NAME, true, "agent"),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {LABEL_NAME: AGENT_NAME, LABEL_PART_OF: "capstan", LABEL_VERSION: opts.version},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": METRICS_PORT.to_string()},
                },
                "spec": {
                    "serviceAccountName": AGENT_NAME,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "agent",
                        "image": opts.image.to_string(),
                        "imagePullPolicy": "IfNotPresent",
                        "args": agent_args(opts),
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "HOME", "value": "/tmp"},
                        ],
                        "ports": [{"name": "http-metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                        "livenessProbe": probe("/healthz", 10),
                        "readinessProbe": probe("/readyz", 5),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "2", "memory": "1Gi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "volumeMounts": [
                            {"name": "cache", "mountPath": "/var/cache/capstan"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    })
}

fn rbac(opts: &InstallOptions) -> Vec<Value> {
    let subject =
        json!([{"kind": "ServiceAccount", "name": AGENT_NAME, "namespace": opts.namespace}]);
    let name = opts.cluster_rbac_name();
    match opts.rbac {
        Rbac::ClusterAdmin => vec![json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(opts, &name, false, "rbac"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": subject,
        })],
        Rbac::Namespaced => vec![
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": meta(opts, &name, false, "rbac"),
                "rules": [
                    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
                ],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": meta(opts, &name, false, "rbac"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": subject,
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta(opts, AGENT_NAME, true, "rbac"),
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta(opts, AGENT_NAME, true, "rbac"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT_NAME},
                "subjects": subject,
            }),
        ],
    }
}

/// Every object of the install, in apply order: Namespace, CRDs (when included),
/// ServiceAccount, RBAC, the credentials Secret (when given), the metrics Service and the
/// Deployment.
pub fn manifests(opts: &InstallOptions) -> Vec<Value> {
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(opts, &opts.namespace, false, "namespace"),
    })];
    if opts.include_crds {
        out.extend(capstan_status::flux_crds().into_iter().map(|mut crd| {
            if let Some(l) = crd
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                l.insert(LABEL_PART_OF.into(), json!("capstan"));
                l.insert(LABEL_VERSION.into(), json!(opts.version));
            }
            crd
        }));
    }
    out.push(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(opts, AGENT_NAME, true, "agent"),
    }));
    out.extend(rbac(opts));
    if let Some(creds) = &opts.credentials {
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = creds
            .data
            .iter()
            .map(|(k, v)| (k.clone(), json!(b64.encode(v))))
            .collect();
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta(opts, CREDENTIALS_SECRET, true, "credentials"),
            "type": "Opaque",
            "data": data,
        }));
    }
    out.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(opts, METRICS_SERVICE, true, "metrics"),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_NAME: AGENT_NAME},
            "ports": [{"name": "http-metrics", "port": METRICS_PORT, "targetPort": "http-metrics", "protocol": "TCP"}],
        },
    }));
    out.push(deployment(opts));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> InstallOptions {
        let mut o = InstallOptions::new(
            "https://git.example.com/fleet.git",
            ImageRef::parse("registry.example.com/capstan:0.1.0").unwrap(),
        );
        o.cluster = Some("mgmt".into());
        o.reference = SourceRef::Branch("main".into());
        o
    }

    fn find<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
        objs.iter().filter(|o| o["kind"] == kind).collect()
    }

    #[test]
    fn deployment_is_non_root_read_only_with_probes_resources_and_leader_election() {
        let objs = manifests(&opts());
        let d = find(&objs, "Deployment")[0];
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert!(c["resources"]["requests"]["memory"].is_string());
        assert!(c["resources"]["limits"]["memory"].is_string());
        assert_eq!(c["image"], "registry.example.com/capstan:0.1.0");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--leader-elect"));
        assert!(args.windows(2).any(|w| w == ["--branch", "main"]));
        assert!(args.windows(2).any(|w| w == ["--cluster", "mgmt"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--namespace", "capstan-system"]));
        assert!(
            !args.contains(&"--source-secret"),
            "no credentials, no secret"
        );
        // The pod's writable places are volumes.
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert!(mounts.contains(&"/tmp") && mounts.contains(&"/var/cache/capstan"));
        assert_eq!(d["spec"]["selector"]["matchLabels"][LABEL_NAME], AGENT_NAME);
    }

    #[test]
    fn install_has_namespace_sa_cluster_admin_binding_service_and_the_toolkit_crds() {
        let objs = manifests(&opts());
        assert_eq!(objs[0]["kind"], "Namespace");
        assert_eq!(objs[0]["metadata"]["name"], "capstan-system");
        assert_eq!(find(&objs, "ServiceAccount").len(), 1);
        let crb = find(&objs, "ClusterRoleBinding");
        assert_eq!(crb.len(), 1);
        assert_eq!(crb[0]["roleRef"]["name"], "cluster-admin");
        assert_eq!(crb[0]["subjects"][0]["namespace"], "capstan-system");
        assert!(find(&objs, "ClusterRole").is_empty());
        let svc = find(&objs, "Service")[0];
        assert_eq!(svc["spec"]["ports"][0]["port"], METRICS_PORT);
        // The CRDs are the agent's own (capstan-status), one home.
        let crds = find(&objs, "CustomResourceDefinition");
        assert_eq!(crds.len(), capstan_status::flux_crds().len());
        assert!(find(&objs, "Secret").is_empty());
        for o in &objs {
            assert_eq!(o["metadata"]["labels"][LABEL_MANAGED_BY], "capstan", "{o}");
        }
        let mut no_crds = opts();
        no_crds.include_crds = false;
        assert!(find(&manifests(&no_crds), "CustomResourceDefinition").is_empty());
    }

    #[test]
    fn namespaced_rbac_is_a_role_in_the_namespace_and_crd_read_only() {
        let mut o = opts();
        o.rbac = Rbac::Namespaced;
        let objs = manifests(&o);
        let role = find(&objs, "Role")[0];
        assert_eq!(role["metadata"]["namespace"], "capstan-system");
        let cr = find(&objs, "ClusterRole")[0];
        let verbs = &cr["rules"][0]["verbs"];
        assert_eq!(verbs, &json!(["get", "list", "watch"]));
        assert!(find(&objs, "ClusterRoleBinding")
            .iter()
            .all(|b| b["roleRef"]["name"] != "cluster-admin"));
        let d = find(&objs, "Deployment")[0];
        assert!(d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--no-install-crds")));
    }

    #[test]
    fn credentials_from_env_become_a_flux_format_secret_the_agent_reads() {
        let env = |k: &str| match k {
            ENV_USERNAME => Some("git".to_string()),
            ENV_PASSWORD => Some("s3cret".to_string()),
            _ => None,
        };
        let mut o = opts();
        o.credentials = Some(GitCredentials::from_env(env).unwrap());
        let objs = manifests(&o);
        let s = find(&objs, "Secret")[0];
        assert_eq!(s["metadata"]["name"], CREDENTIALS_SECRET);
        assert_eq!(s["data"]["username"], "Z2l0");
        assert_eq!(s["data"]["password"], "czNjcmV0");
        assert!(!format!("{:?}", o.credentials).contains("s3cret"));
        let d = find(&objs, "Deployment")[0];
        let args = d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        assert!(args
            .windows(2)
            .any(|w| w == [json!("--source-secret"), json!(CREDENTIALS_SECRET)]));
    }

    #[test]
    fn missing_credentials_are_clear_errors() {
        let none = |_: &str| None;
        let e = GitCredentials::from_env(none).unwrap_err().to_string();
        assert!(e.contains("CAPSTAN_GIT_TOKEN"), "{e}");
        let half = |k: &str| (k == ENV_USERNAME).then(|| "git".to_string());
        let e = GitCredentials::from_env(half).unwrap_err().to_string();
        assert!(e.contains("CAPSTAN_GIT_PASSWORD is not set"), "{e}");
        let token = |k: &str| (k == ENV_TOKEN).then(|| "t0k".to_string());
        assert_eq!(
            GitCredentials::from_env(token)
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["bearerToken"]
        );

        let read = |f: &str| match f {
            "id" => Ok(b"-----BEGIN OPENSSH PRIVATE KEY-----\n".to_vec()),
            "kh" => Ok(b"host ssh-ed25519 AAAA\n".to_vec()),
            "pw" => Ok(b"pw\n".to_vec()),
            "empty" => Ok(Vec::new()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file",
            )),
        };
        let e = GitCredentials::from_files(&["identity=id".into()], read)
            .unwrap_err()
            .to_string();
        assert!(e.contains("known_hosts"), "{e}");
        assert!(
            GitCredentials::from_files(&["identity=id".into(), "known_hosts=kh".into()], read)
                .is_ok()
        );
        let e = GitCredentials::from_files(&["password=missing".into()], read)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("password=missing") && e.contains("No such file"),
            "{e}"
        );
        let e = GitCredentials::from_files(&["token=pw".into()], read)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key \"token\""), "{e}");
        let e = GitCredentials::from_files(&["bearerToken=empty".into()], read)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = GitCredentials::from_files(&["password".into()], read)
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEY=FILE"), "{e}");
        let c = GitCredentials::from_files(&["bearerToken=pw".into()], read).unwrap();
        assert_eq!(c.data["bearerToken"], b"pw", "trailing newline dropped");
    }
}
