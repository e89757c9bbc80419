//! The objects of Flux's image automation API (`image.toolkit.fluxcd.io` v1beta2 and v1;
//! v1beta1 reads the same), read from YAML nodes, and their status as Flux writes it.

use capstan_yaml::Node;
use serde_json::{json, Value};

use crate::error::{ImageError, ImageErrorKind};
use crate::policy::{Order, Policy, PolicyChoice};

pub const API_GROUP: &str = "image.toolkit.fluxcd.io";
/// `spec.exclusionList` when none is given: cosign signature tags.
pub const DEFAULT_EXCLUSION: &str = "^.*\\.sig$";

/// `namespace/name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.digestReflectionPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReflectionPolicy {
    #[default]
    Never,
    IfNotPresent,
    Always,
}

fn spec_err(ctx: &str, field: &str, msg: impl Into<String>) -> ImageError {
    ImageError::new(ImageErrorKind::InvalidSpec, msg)
        .context(ctx)
        .field(field)
}

fn opt_str<'a>(node: &'a Node, path: &[&str], ctx: &str) -> Result<Option<&'a str>, ImageError> {
    match node.get_path(path) {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => n
            .as_str()
            .map(Some)
            .ok_or_else(|| spec_err(ctx, &path.join("."), "must be a string")),
    }
}

fn check_kind(node: &Node, kind: &str, source: &str) -> Result<(ObjectKey, String), ImageError> {
    let api = node.str_at(&["apiVersion"]).unwrap_or_default();
    let k = node.str_at(&["kind"]).unwrap_or_default();
    let name = node.str_at(&["metadata", "name"]).unwrap_or_default();
    let ns = node
        .str_at(&["metadata", "namespace"])
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let ctx = format!("{source}: {kind} {ns}/{name}");
    if k != kind || api.split('/').next() != Some(API_GROUP) {
        return Err(spec_err(
            source,
            "kind",
            format!("expected {API_GROUP} {kind}, found {api} {k}"),
        ));
    }
    if name.is_empty() {
        return Err(spec_err(&ctx, "metadata.name", "is required"));
    }
    Ok((
        ObjectKey {
            namespace: ns.to_string(),
            name: name.to_string(),
        },
        ctx,
    ))
}

/// An `ImagePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    pub key: ObjectKey,
    /// `spec.imageRepositoryRef` (namespace defaults to the policy's).
    pub repository: ObjectKey,
    pub choice: PolicyChoice,
    /// `spec.filterTags` `(pattern, extract)`.
    pub filter_tags: Option<(String, String)>,
    pub digest_reflection: ReflectionPolicy,
    pub interval: Option<String>,
    pub suspend: bool,
}

impl ImagePolicy {
    /// Reads an ImagePolicy; `source` names the file for errors.
    pub fn from_node(node: &Node, source: &str) -> Result<ImagePolicy, ImageError> {
        let (key, ctx) = check_kind(node, "ImagePolicy", source)?;
        let repo_name = opt_str(node, &["spec", "imageRepositoryRef", "name"], &ctx)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                spec_err(&ctx, "spec.imageRepositoryRef.name", "is required")
                    .hint("the ImageRepository whose tags the policy orders")
            })?;
        let repo_ns = opt_str(node, &["spec", "imageRepositoryRef", "namespace"], &ctx)?
            .filter(|s| !s.is_empty())
            .unwrap_or(&key.namespace);
        // Flux's PolicerFromSpec: semver, then alphabetical, then numerical.
        let policy = node.get_path(&["spec", "policy"]);
        let choice = if let Some(s) = policy
            .and_then(|p| p.get("semver"))
            .filter(|n| !n.is_null())
        {
            let range = s
                .get("range")
                .and_then(Node::as_str)
                .ok_or_else(|| spec_err(&ctx, "spec.policy.semver.range", "is required"))?;
            PolicyChoice::SemVer {
                range: range.to_string(),
            }
        } else if let Some(a) = policy
            .and_then(|p| p.get("alphabetical"))
            .filter(|n| !n.is_null())
        {
            let o = a.get("order").and_then(Node::as_str).unwrap_or("");
            PolicyChoice::Alphabetical {
                order: Order::parse(o, "spec.policy.alphabetical.order")
                    .map_err(|e| e.context(&ctx))?,
            }
        } else if let Some(n) = policy
            .and_then(|p| p.get("numerical"))
            .filter(|n| !n.is_null())
        {
            let o = n.get("order").and_then(Node::as_str).unwrap_or("");
            PolicyChoice::Numerical {
                order: Order::parse(o, "spec.policy.numerical.order")
                    .map_err(|e| e.context(&ctx))?,
            }
        } else {
            return Err(ImageError::new(
                ImageErrorKind::InvalidPolicy,
                "given ImagePolicyChoice object is invalid",
            )
            .context(&ctx)
            .field("spec.policy")
            .hint("set one of semver.range, alphabetical.order or numerical.order"));
        };
        let filter_tags = match node.get_path(&["spec", "filterTags"]) {
            Some(f) if !f.is_null() => Some((
                opt_str(node, &["spec", "filterTags", "pattern"], &ctx)?
                    .unwrap_or("")
                    .to_string(),
                opt_str(node, &["spec", "filterTags", "extract"], &ctx)?
                    .unwrap_or("")
                    .to_string(),
            )),
            _ => None,
        };
        let digest_reflection = match opt_str(node, &["spec", "digestReflectionPolicy"], &ctx)? {
            None | Some("") | Some("Never") => ReflectionPolicy::Never,
            Some("IfNotPresent") => ReflectionPolicy::IfNotPresent,
            Some("Always") => ReflectionPolicy::Always,
            Some(o) => {
                return Err(spec_err(
                    &ctx,
                    "spec.digestReflectionPolicy",
                    format!("unsupported value {o:?}"),
                )
                .hint("one of Always, IfNotPresent, Never"))
            }
        };
        let interval = opt_str(node, &["spec", "interval"], &ctx)?.map(str::to_string);
        if digest_reflection == ReflectionPolicy::Always && interval.is_none() {
            return Err(spec_err(
                &ctx,
                "spec.interval",
                "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'",
            ));
        }
        if digest_reflection != ReflectionPolicy::Always && interval.is_some() {
            return Err(spec_err(
                &ctx,
                "spec.interval",
                "spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always'",
            ));
        }
        let suspend = node
            .str_at(&["spec", "suspend"])
            .is_some_and(|s| s == "true");
        Ok(ImagePolicy {
            repository: ObjectKey {
                namespace: repo_ns.to_string(),
                name: repo_name.to_string(),
            },
            key,
            choice,
            filter_tags,
            digest_reflection,
            interval,
            suspend,
        })
    }

    /// The compiled policy (a bad range, order or pattern is `InvalidPolicy`).
    pub fn compile(&self) -> Result<Policy, ImageError> {
        Policy::new(
            &self.choice,
            self.filter_tags
                .as_ref()
                .map(|(p, e)| (p.as_str(), e.as_str())),
        )
        .map_err(|e| e.or_context(format!("ImagePolicy {}", self.key)))
    }
}

/// An `ImageRepository`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepository {
    pub key: ObjectKey,
    /// `spec.image`: the repository to scan, without tag or digest.
    pub image: String,
    pub interval: Option<String>,
    /// `spec.secretRef.name`: a `kubernetes.io/dockerconfigjson` Secret.
    pub secret_ref: Option<String>,
    /// `spec.exclusionList` (default `^.*\.sig$`).
    pub exclusion_list: Vec<String>,
    pub insecure: bool,
    pub provider: String,
    pub suspend: bool,
}

impl ImageRepository {
    pub fn from_node(node: &Node, source: &str) -> Result<ImageRepository, ImageError> {
        let (key, ctx) = check_kind(node, "ImageRepository", source)?;
        let image = opt_str(node, &["spec", "image"], &ctx)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                spec_err(&ctx, "spec.image", "is required")
                    .hint("the image repository to scan, e.g. registry.example.com/team/app")
            })?;
        if image.contains('@') || image.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            return Err(spec_err(
                &ctx,
                "spec.image",
                format!("{image:?} must not have a tag or digest"),
            ));
        }
        let exclusion_list = match node.get_path(&["spec", "exclusionList"]) {
            None => vec![DEFAULT_EXCLUSION.to_string()],
            Some(n) if n.is_null() => vec![DEFAULT_EXCLUSION.to_string()],
            Some(n) => n
                .as_sequence()
                .ok_or_else(|| {
                    spec_err(
                        &ctx,
                        "spec.exclusionList",
                        "must be a list of regular expressions",
                    )
                })?
                .iter()
                .map(|e| {
                    e.as_str().map(str::to_string).ok_or_else(|| {
                        spec_err(&ctx, "spec.exclusionList", "entries must be strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        // Flux's GetExclusionList: an empty list is the default one.
        let exclusion_list = if exclusion_list.is_empty() {
            vec![DEFAULT_EXCLUSION.to_string()]
        } else {
            exclusion_list
        };
        Ok(ImageRepository {
            image: image.to_string(),
            interval: opt_str(node, &["spec", "interval"], &ctx)?.map(str::to_string),
            secret_ref: opt_str(node, &["spec", "secretRef", "name"], &ctx)?.map(str::to_string),
            exclusion_list,
            insecure: node.str_at(&["spec", "insecure"]) == Some("true"),
            provider: opt_str(node, &["spec", "provider"], &ctx)?
                .unwrap_or("generic")
                .to_string(),
            suspend: node.str_at(&["spec", "suspend"]) == Some("true"),
            key,
        })
    }
}

/// `ImageRef`: `status.latestRef` / `status.observedPreviousRef` of an ImagePolicy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
    pub digest: String,
}

impl ImageRef {
    /// `name:tag[@digest]`, as Flux's `ImageRef.String()`.
    pub fn reference(&self) -> String {
        let mut s = format!("{}:{}", self.name, self.tag);
        if !self.digest.is_empty() {
            s.push('@');
            s.push_str(&self.digest);
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"name": self.name, "tag": self.tag});
        if !self.digest.is_empty() {
            v["digest"] = json!(self.digest);
        }
        v
    }

    pub fn from_json(v: &Value) -> Option<ImageRef> {
        Some(ImageRef {
            name: v.get("name")?.as_str()?.to_string(),
            tag: v.get("tag")?.as_str()?.to_string(),
            digest: v
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// Looks up the digest of `image:tag` in the registry (I/O lives behind this trait).
pub trait DigestLookup {
    fn digest(&self, image: &str, tag: &str) -> Result<String, String>;
}

/// The ImagePolicy status fields Flux updates after a selection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyStatus {
    pub latest_ref: Option<ImageRef>,
    pub observed_previous_ref: Option<ImageRef>,
}

impl PolicyStatus {
    /// Flux's `updateImageRefs`: the digest per `digestReflectionPolicy` (`Never`:
    /// none; `IfNotPresent`: looked up when the image or tag changed or no digest is
    /// known, else kept; `Always`: looked up every time), and `observedPreviousRef`
    /// set to the former `latestRef` only when the result differs.
    pub fn update(
        &mut self,
        image: &str,
        tag: &str,
        policy: ReflectionPolicy,
        lookup: &dyn DigestLookup,
    ) -> Result<(), ImageError> {
        let mut latest = ImageRef {
            name: image.to_string(),
            tag: tag.to_string(),
            digest: String::new(),
        };
        let fetch = match policy {
            ReflectionPolicy::Never => false,
            ReflectionPolicy::Always => true,
            ReflectionPolicy::IfNotPresent => match &self.latest_ref {
                Some(prev) if prev.name == image && prev.tag == tag && !prev.digest.is_empty() => {
                    latest.digest = prev.digest.clone();
                    false
                }
                _ => true,
            },
        };
        if fetch {
            latest.digest = lookup.digest(image, tag).map_err(|e| {
                ImageError::new(
                    ImageErrorKind::Digest,
                    format!("failed fetching digest of {}: {e}", latest.reference()),
                )
            })?;
        }
        if self.latest_ref.as_ref() != Some(&latest) {
            self.observed_previous_ref = self.latest_ref.take();
            self.latest_ref = Some(latest);
        }
        Ok(())
    }

    /// Flux's Ready message for the policy.
    pub fn ready_message(&self) -> String {
        let Some(l) = &self.latest_ref else {
            return String::new();
        };
        let mut m = format!("Latest image tag for {} resolved to {}", l.name, l.tag);
        if !l.digest.is_empty() {
            m.push_str(&format!(" with digest {}", l.digest));
        }
        if let Some(p) = &self.observed_previous_ref {
            if p != l {
                m.push_str(&format!(" (previously {}:{}", p.name, p.tag));
                if !p.digest.is_empty() {
                    m.push_str(&format!("@{}", p.digest));
                }
                m.push(')');
            }
        }
        m
    }

    /// The status fields as JSON (`latestRef`, `observedPreviousRef`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({});
        if let Some(l) = &self.latest_ref {
            v["latestRef"] = l.to_json();
        }
        if let Some(p) = &self.observed_previous_ref {
            v["observedPreviousRef"] = p.to_json();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node {
        capstan_yaml::parse_documents(text, "p.yaml")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn image_policy_reads_flux_v1_and_v1beta2() {
        for api in [
            "image.toolkit.fluxcd.io/v1",
            "image.toolkit.fluxcd.io/v1beta2",
        ] {
            let p = ImagePolicy::from_node(
                &doc(&format!(
                    "apiVersion: {api}\nkind: ImagePolicy\nmetadata: {{name: app, namespace: apps}}\n\
                     spec:\n  imageRepositoryRef: {{name: app}}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n  \
                     filterTags: {{pattern: '^v(?P<v>.*)$', extract: '$v'}}\n"
                )),
                "p.yaml",
            )
            .unwrap();
            assert_eq!(p.repository.to_string(), "apps/app");
            assert_eq!(
                p.choice,
                PolicyChoice::SemVer {
                    range: ">=1.0.0".into()
                }
            );
            assert_eq!(p.filter_tags, Some(("^v(?P<v>.*)$".into(), "$v".into())));
            assert_eq!(p.digest_reflection, ReflectionPolicy::Never);
        }
    }

    #[test]
    fn image_policy_errors_name_the_file_object_and_field() {
        let e = ImagePolicy::from_node(
            &doc("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  imageRepositoryRef: {name: r}\n  policy: {}\n"),
            "pol.yaml",
        )
        .unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::InvalidPolicy);
        assert!(
            e.to_string()
                .contains("pol.yaml: ImagePolicy default/a: spec.policy"),
            "{e}"
        );
        let e = ImagePolicy::from_node(
            &doc("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  imageRepositoryRef: {name: r}\n  policy: {numerical: {order: up}}\n"),
            "pol.yaml",
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.policy.numerical.order");
        let e = ImagePolicy::from_node(
            &doc("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  imageRepositoryRef: {name: r}\n  policy: {alphabetical: {}}\n  digestReflectionPolicy: Always\n"),
            "pol.yaml",
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.interval");
        let e = ImagePolicy::from_node(
            &doc("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
            "pol.yaml",
        )
        .unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::InvalidSpec);
    }

    #[test]
    fn image_repository_exclusion_list_defaults_to_signature_tags() {
        let r = ImageRepository::from_node(
            &doc("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: a, namespace: n}\nspec: {image: 'localhost:5000/team/app'}\n"),
            "r.yaml",
        )
        .unwrap();
        assert_eq!(r.exclusion_list, vec![DEFAULT_EXCLUSION.to_string()]);
        assert_eq!(r.image, "localhost:5000/team/app");
        let r = ImageRepository::from_node(
            &doc("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: a}\nspec: {image: 'r.io/app', exclusionList: []}\n"),
            "r.yaml",
        )
        .unwrap();
        assert_eq!(r.exclusion_list, vec![DEFAULT_EXCLUSION.to_string()]);
        let e = ImageRepository::from_node(
            &doc("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: a}\nspec: {image: 'localhost:5000/app:v1'}\n"),
            "r.yaml",
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.image");
    }

    struct Fixed(&'static str);
    impl DigestLookup for Fixed {
        fn digest(&self, _: &str, _: &str) -> Result<String, String> {
            Ok(self.0.to_string())
        }
    }
    struct Fails;
    impl DigestLookup for Fails {
        fn digest(&self, _: &str, _: &str) -> Result<String, String> {
            Err("unreachable".into())
        }
    }

    #[test]
    fn digest_reflection_policy_never_if_not_present_always() {
        let mut s = PolicyStatus::default();
        s.update("r/app", "1.0.0", ReflectionPolicy::Never, &Fails)
            .unwrap();
        assert_eq!(s.latest_ref.as_ref().unwrap().digest, "");
        // IfNotPresent: looked up because none is known...
        s.update(
            "r/app",
            "1.0.0",
            ReflectionPolicy::IfNotPresent,
            &Fixed("sha256:a"),
        )
        .unwrap();
        assert_eq!(s.latest_ref.as_ref().unwrap().digest, "sha256:a");
        assert_eq!(s.observed_previous_ref.as_ref().unwrap().digest, "");
        // ...then kept while the tag stays (no lookup: Fails is not called).
        s.update("r/app", "1.0.0", ReflectionPolicy::IfNotPresent, &Fails)
            .unwrap();
        assert_eq!(s.latest_ref.as_ref().unwrap().digest, "sha256:a");
        // Always: looked up every time; a changed digest moves latest to previous.
        s.update(
            "r/app",
            "1.0.0",
            ReflectionPolicy::Always,
            &Fixed("sha256:b"),
        )
        .unwrap();
        assert_eq!(s.latest_ref.as_ref().unwrap().digest, "sha256:b");
        assert_eq!(s.observed_previous_ref.as_ref().unwrap().digest, "sha256:a");
        assert_eq!(
            s.ready_message(),
            "Latest image tag for r/app resolved to 1.0.0 with digest sha256:b (previously r/app:1.0.0@sha256:a)"
        );
        let e = s
            .update("r/app", "2.0.0", ReflectionPolicy::IfNotPresent, &Fails)
            .unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::Digest);
        assert_eq!(s.to_json()["latestRef"]["tag"], "1.0.0");
    }
}
