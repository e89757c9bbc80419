//! Apply-time image policies (`capstan.io/image-policy`): the registry half of
//! [`capstan_units::ImageResolver`]. Tags are listed through capstan-source's OCI client
//! (every page), the tag is elected by capstan-image, nothing is written anywhere.
//!
//! Credentials: with a cluster, the ImageRepository's `spec.secretRef` (a
//! `kubernetes.io/dockerconfigjson` Secret read from the cluster, as Flux reads it; none:
//! anonymous). Without a cluster (`capstan build`), the environment, as `capstan image
//! scan`: `CAPSTAN_REGISTRY_DOCKER_CONFIG` (a `.dockerconfigjson` file),
//! `CAPSTAN_REGISTRY_TOKEN`, or `CAPSTAN_REGISTRY_USERNAME`/`CAPSTAN_REGISTRY_PASSWORD`.

use std::sync::Arc;

use capstan_image::{ImagePolicy, ImageRef, ImageRepository};
use capstan_source::HttpAuth;
use capstan_units::{ClusterLookup, ImageResolver, SharedImageResolver};
use serde_json::Value;

use crate::live::block_on;

/// Registry credentials from the environment (no cluster): `Ok(None)` for anonymous.
pub fn registry_auth_from_env() -> Result<Option<HttpAuth>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut auth = HttpAuth::default();
    if let Some(p) = env("CAPSTAN_REGISTRY_DOCKER_CONFIG") {
        auth.docker_config_json =
            Some(std::fs::read(&p).map_err(|e| format!("cannot read {p}: {e}"))?);
    } else if let Some(t) = env("CAPSTAN_REGISTRY_TOKEN") {
        auth.bearer_token = Some(t);
    } else if let Some(u) = env("CAPSTAN_REGISTRY_USERNAME") {
        auth.username = Some(u);
        auth.password = Some(
            env("CAPSTAN_REGISTRY_PASSWORD")
                .ok_or("CAPSTAN_REGISTRY_USERNAME is set but CAPSTAN_REGISTRY_PASSWORD is not")?,
        );
    } else {
        return Ok(None);
    }
    Ok(Some(auth))
}

/// Where an image resolver takes registry credentials from.
enum Credentials {
    /// The ImageRepository's `spec.secretRef`, read from the cluster.
    Cluster(Arc<dyn ClusterLookup>),
    /// The environment (read once, when the resolver is made).
    Fixed(Option<HttpAuth>),
}

/// Lists registry tags and digests to elect ImagePolicies' tags at render time. Must be
/// used from a multi-threaded tokio runtime (render threads enter it).
pub struct RegistryResolver {
    credentials: Credentials,
    page_size: usize,
}

impl RegistryResolver {
    /// Credentials from the ImageRepositories' `spec.secretRef` in the cluster.
    pub fn with_cluster(cluster: Arc<dyn ClusterLookup>) -> Self {
        RegistryResolver {
            credentials: Credentials::Cluster(cluster),
            page_size: capstan_source::TAG_PAGE_SIZE,
        }
    }

    /// Credentials from the environment ([`registry_auth_from_env`]).
    pub fn from_env() -> Result<Self, String> {
        Ok(RegistryResolver {
            credentials: Credentials::Fixed(registry_auth_from_env()?),
            page_size: capstan_source::TAG_PAGE_SIZE,
        })
    }

    pub fn shared(self) -> SharedImageResolver {
        SharedImageResolver(Arc::new(self))
    }

    fn auth(&self, repo: &ImageRepository) -> Result<Option<HttpAuth>, String> {
        match &self.credentials {
            Credentials::Fixed(a) => Ok(a.clone()),
            Credentials::Cluster(cluster) => {
                let Some(name) = repo.secret_ref.as_deref().filter(|s| !s.is_empty()) else {
                    return Ok(None);
                };
                let ns = &repo.key.namespace;
                let secret = cluster
                    .get("Secret", ns, name)
                    .map_err(|e| format!("spec.secretRef: reading Secret {ns}/{name}: {e}"))?
                    .ok_or_else(|| format!("spec.secretRef: Secret {ns}/{name} not found"))?;
                let data = secret
                    .pointer("/data/.dockerconfigjson")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        format!(
                            "spec.secretRef: Secret {ns}/{name} has no .dockerconfigjson key (a kubernetes.io/dockerconfigjson Secret is expected)"
                        )
                    })?;
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|_| {
                        format!("spec.secretRef: Secret {ns}/{name}: .dockerconfigjson is not valid base64")
                    })?;
                Ok(Some(HttpAuth {
                    docker_config_json: Some(bytes),
                    ..Default::default()
                }))
            }
        }
    }
}

/// The registry seen by capstan-image, for one ImageRepository.
struct Registry {
    auth: Option<HttpAuth>,
    page_size: usize,
    insecure: bool,
}

impl capstan_image::TagLister for Registry {
    fn list_tags(&self, repo: &ImageRepository) -> Result<Vec<String>, String> {
        block_on(capstan_source::list_image_tags(
            &format!("ImageRepository {}", repo.key),
            &repo.image,
            repo.insecure,
            self.auth.as_ref(),
            self.page_size,
        ))
        .map_err(|e| e.to_string())
    }
}

impl capstan_image::DigestLookup for Registry {
    fn digest(&self, image: &str, tag: &str) -> Result<String, String> {
        block_on(capstan_source::image_tag_digest(
            image,
            image,
            tag,
            self.insecure,
            self.auth.as_ref(),
        ))
        .map_err(|e| e.to_string())
    }
}

fn object_source(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{kind} {ns}/{name}")
}

impl ImageResolver for RegistryResolver {
    fn latest(&self, policy: &Value, repository: &Value) -> Result<ImageRef, String> {
        let policy =
            ImagePolicy::from_node(&capstan_yaml::from_json(policy), &object_source(policy))
                .map_err(|e| e.to_string())?;
        let src = object_source(repository);
        let repo = ImageRepository::from_node(&capstan_yaml::from_json(repository), &src)
            .map_err(|e| e.to_string())?;
        if repo.provider != "generic" {
            return Err(format!(
                "{src}: spec.provider: {:?} (cloud-provider registry login) is not supported at apply time; use provider generic with spec.secretRef",
                repo.provider
            ));
        }
        let auth = self.auth(&repo).map_err(|e| format!("{src}: {e}"))?;
        let registry = Registry {
            auth,
            page_size: self.page_size,
            insecure: repo.insecure,
        };
        capstan_image::resolve_latest(&policy, &repo, &registry, &registry)
            .map_err(|e| e.to_string())
    }
}
