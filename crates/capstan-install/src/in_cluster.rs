//! The agent's in-cluster client configuration, with the service account directory
//! overridable.
//!
//! In a pod, Kubernetes puts the ServiceAccount's token, the cluster's CA bundle and the
//! pod's namespace into `/var/run/secrets/kubernetes.io/serviceaccount/` (`token`, `ca.crt`,
//! `namespace`) and the API server's address into `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT`; client-go and kube read exactly these. The directory is fixed
//! in both, so an agent run outside a pod with a ServiceAccount's identity (tests, a
//! debugging session) cannot be pointed at another one. `CAPSTAN_SERVICEACCOUNT_DIR` does
//! that: when set (and no `--kubeconfig`/`--context` is given), `capstan agent` uses the
//! in-cluster configuration with the files of that directory. The token file is re-read as
//! it is rotated (kube reloads `tokenFile`).

use std::path::{Path, PathBuf};

use crate::InstallError;

/// Environment variable naming the directory holding `token`, `ca.crt` and (optionally)
/// `namespace`, instead of `/var/run/secrets/kubernetes.io/serviceaccount`.
pub const ENV_SERVICEACCOUNT_DIR: &str = "CAPSTAN_SERVICEACCOUNT_DIR";
/// Where Kubernetes mounts a pod's ServiceAccount credentials.
pub const SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The API server's host, as Kubernetes sets it in every pod.
pub const ENV_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
/// The API server's port, as Kubernetes sets it in every pod.
pub const ENV_SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";

fn invalid(msg: String) -> InstallError {
    InstallError::InvalidArgument(msg)
}

/// The API server URL for `KUBERNETES_SERVICE_HOST`/`PORT` (IPv6 hosts bracketed, as
/// client-go's `net.JoinHostPort`).
pub fn service_url(host: &str, port: &str) -> Result<String, InstallError> {
    let host = host.trim();
    let port = port.trim();
    if host.is_empty() {
        return Err(invalid(format!(
            "in-cluster configuration: ${ENV_SERVICE_HOST} is empty (hint: outside a pod, set it and ${ENV_SERVICE_PORT} to the API server's address)"
        )));
    }
    let port: u16 = port.parse().map_err(|_| {
        invalid(format!(
            "in-cluster configuration: ${ENV_SERVICE_PORT} {port:?} is not a port number"
        ))
    })?;
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_string(),
    };
    Ok(format!("https://{host}:{port}"))
}

/// The in-cluster configuration as a kubeconfig: the service URL, `ca.crt` and `token`
/// (as a `tokenFile`, re-read when rotated) of `dir`, and the namespace of its `namespace`
/// file (default `default`). Files are checked to exist and the CA to be PEM; the token's
/// content never appears in errors.
pub fn in_cluster_kubeconfig(
    dir: &Path,
    host: &str,
    port: &str,
) -> Result<kube::config::Kubeconfig, InstallError> {
    let server = service_url(host, port)?;
    let file = |name: &str| -> PathBuf { dir.join(name) };
    let token = file("token");
    match std::fs::metadata(&token) {
        Ok(m) if m.len() > 0 => {}
        Ok(_) => {
            return Err(InstallError::MissingCredential {
                what: format!("in-cluster configuration: {} is empty", token.display()),
            })
        }
        Err(e) => {
            return Err(InstallError::MissingCredential {
                what: format!(
                    "in-cluster configuration: the ServiceAccount token {}: {e} (hint: in a pod it is mounted there; outside, point ${ENV_SERVICEACCOUNT_DIR} at a directory with token, ca.crt and namespace)",
                    token.display()
                ),
            })
        }
    }
    let ca = file("ca.crt");
    let ca_text = std::fs::read_to_string(&ca).map_err(|e| InstallError::MissingCredential {
        what: format!(
            "in-cluster configuration: the cluster CA {}: {e}",
            ca.display()
        ),
    })?;
    if !ca_text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(InstallError::InvalidCredential {
            what: format!(
                "in-cluster configuration: {} holds no PEM certificate",
                ca.display()
            ),
        });
    }
    let namespace = match std::fs::read_to_string(file("namespace")) {
        Ok(ns) if !ns.trim().is_empty() => ns.trim().to_string(),
        _ => "default".to_string(),
    };
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {"server": server, "certificate-authority": path(&ca)}}],
        "users": [{"name": "serviceaccount", "user": {"tokenFile": path(&token)}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "serviceaccount", "namespace": namespace}}],
        "current-context": "in-cluster",
    });
    serde_json::from_value(kubeconfig).map_err(|e| {
        invalid(format!(
            "in-cluster configuration: building the kubeconfig: {e}"
        ))
    })
}

/// A client from the in-cluster configuration of `dir` and the process environment's
/// `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`.
pub async fn in_cluster_client(dir: &Path) -> Result<kube::Client, InstallError> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let kubeconfig = in_cluster_kubeconfig(dir, &var(ENV_SERVICE_HOST), &var(ENV_SERVICE_PORT))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| invalid(format!("in-cluster configuration: {e}")))?;
    kube::Client::try_from(config).map_err(|e| invalid(format!("in-cluster configuration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "capstan-install-incluster-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn service_url_follows_kubernetes_service_host_and_port() {
        assert_eq!(
            service_url("10.96.0.1", "443").unwrap(),
            "https://10.96.0.1:443"
        );
        assert_eq!(
            service_url("fd00::1", "6443").unwrap(),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            service_url("kubernetes.default.svc", "443").unwrap(),
            "https://kubernetes.default.svc:443"
        );
        let e = service_url("", "443").unwrap_err().to_string();
        assert!(e.contains("KUBERNETES_SERVICE_HOST is empty"), "{e}");
        let e = service_url("10.0.0.1", "https").unwrap_err().to_string();
        assert!(e.contains("KUBERNETES_SERVICE_PORT \"https\""), "{e}");
    }

    #[test]
    fn in_cluster_kubeconfig_uses_token_file_ca_and_namespace_of_the_directory() {
        let d = dir("ok");
        std::fs::write(d.0.join("token"), "secret-token-value").unwrap();
        std::fs::write(d.0.join("ca.crt"), PEM).unwrap();
        std::fs::write(d.0.join("namespace"), "capstan-system\n").unwrap();
        let kc = in_cluster_kubeconfig(&d.0, "127.0.0.1", "6443").unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(d.0.join("ca.crt").to_str().unwrap())
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some(d.0.join("token").to_str().unwrap()),
            "a token file (re-read on rotation), never the token inline"
        );
        assert!(user.token.is_none());
        let ctx = kc.contexts[0].context.as_ref().unwrap();
        assert_eq!(ctx.namespace.as_deref(), Some("capstan-system"));
    }

    #[test]
    fn in_cluster_kubeconfig_reports_missing_files_without_the_token() {
        let d = dir("missing");
        let e = in_cluster_kubeconfig(&d.0, "127.0.0.1", "6443")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ServiceAccount token") && e.contains("CAPSTAN_SERVICEACCOUNT_DIR"),
            "{e}"
        );
        std::fs::write(d.0.join("token"), "secret-token-value").unwrap();
        let e = in_cluster_kubeconfig(&d.0, "127.0.0.1", "6443")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the cluster CA"), "{e}");
        std::fs::write(d.0.join("ca.crt"), "not a certificate").unwrap();
        let e = in_cluster_kubeconfig(&d.0, "127.0.0.1", "6443")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(!e.contains("secret-token-value"));
        std::fs::write(d.0.join("ca.crt"), PEM).unwrap();
        let kc = in_cluster_kubeconfig(&d.0, "127.0.0.1", "6443").unwrap();
        assert_eq!(
            kc.contexts[0]
                .context
                .as_ref()
                .unwrap()
                .namespace
                .as_deref(),
            Some("default"),
            "no namespace file: default"
        );
    }
}
