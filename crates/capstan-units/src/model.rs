//! The neutral unit model: what the layers below the readers (graph, plan, round, apply)
//! need to know about a unit, in no dialect's words.
//!
//! A [`UnitModel`] is
//! * an **id** ([`UnitId`]: kind, namespace, name of the object that declared it);
//! * a **target** ([`Target`]): the cluster it applies to ([`TargetCluster`]: the
//!   round's own, or one a kubeconfig Secret names) and as whom (a service account
//!   impersonated, or the round's own credentials);
//! * a **render recipe** ([`Recipe`]): a kustomize directory, a Helm chart with values,
//!   or a plain directory of manifests, each read from a source ([`SourceRef`]: the
//!   repository itself or another fetched source);
//! * **apply options** ([`ApplyPolicy`]): prune, wait, force, timeout, health checks,
//!   namespace creation, the namespace objects default to;
//! * **dependencies**: the units it waits for;
//! * whether it is **suspended**.
//!
//! Readers turn a dialect's objects into units. The Flux reader is this crate's loader
//! ([`crate::load`]): a `Kustomization` becomes a [`Recipe::Kustomize`], a `HelmRelease` a
//! [`Recipe::Helm`]; [`UnitModel::of`] projects its [`Unit`]s onto the model. The next
//! reader (Argo CD `Application`s: Helm, kustomize and directory sources, a destination
//! cluster, sync options) produces the same model beside it: nothing below the readers
//! needs a Flux field name.
//!
//! The model is being adopted incrementally: [`Unit`] still carries the Flux reader's
//! parsed spec, which the renderer uses; code that only needs the neutral parts reads them
//! through [`UnitModel::of`] (the round's per-unit target, for one).

use std::time::Duration;

use capstan_graph::UnitId;
use serde_json::Value;

use crate::{ChartSource, HealthCheckRef, SourceRef, Unit};

/// The cluster a unit applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetCluster {
    /// The cluster the round drives.
    #[default]
    Local,
    /// The cluster of a kubeconfig held in a Secret of the unit's namespace (Flux's
    /// `spec.kubeConfig.secretRef`): Secret namespace, name, and key (`None`: the reader's
    /// default keys).
    KubeConfigSecret {
        namespace: String,
        name: String,
        key: Option<String>,
    },
}

/// Where a unit applies, and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub cluster: TargetCluster,
    /// A service account (namespace, name) impersonated on the target cluster
    /// (`None`: the round's own credentials).
    pub service_account: Option<(String, String)>,
}

/// How a unit's objects are produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipe {
    /// `kustomize build` of a directory of a source (a kustomization is generated when
    /// the directory has none), with the reader's overlays applied in memory.
    Kustomize {
        /// `None`: the repository itself.
        source: Option<SourceRef>,
        path: String,
    },
    /// A Helm chart rendered as a release with these values.
    Helm {
        chart: ChartSource,
        release_name: String,
        namespace: String,
        values: Value,
    },
    /// Every manifest of a directory of a source, as they are.
    Directory {
        source: Option<SourceRef>,
        path: String,
        recurse: bool,
    },
}

/// How a unit's objects are applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyPolicy {
    /// Delete objects the unit no longer renders.
    pub prune: bool,
    /// Wait for every object to be ready.
    pub wait: bool,
    /// Replace objects whose immutable fields change.
    pub force: bool,
    pub timeout: Option<Duration>,
    /// Objects beyond the unit's own to wait for.
    pub health_checks: Vec<HealthCheckRef>,
    /// Create the target namespace when it does not exist.
    pub create_namespace: bool,
    /// The namespace of the unit's namespaced objects that name none.
    pub namespace: Option<String>,
}

/// A unit in no dialect's words: see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitModel {
    pub id: UnitId,
    pub target: Target,
    pub recipe: Recipe,
    pub apply: ApplyPolicy,
    pub depends_on: Vec<UnitId>,
    pub suspend: bool,
}

impl UnitModel {
    /// The Flux reader's unit, in the model's terms.
    pub fn of(unit: &Unit) -> UnitModel {
        let spec = &unit.spec;
        let ns = &unit.id.namespace;
        let target = Target {
            cluster: match &spec.kube_config_secret {
                Some((name, key)) => TargetCluster::KubeConfigSecret {
                    namespace: ns.clone(),
                    name: name.clone(),
                    key: key.clone(),
                },
                None => TargetCluster::Local,
            },
            service_account: spec
                .service_account_name
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| (ns.clone(), s.clone())),
        };
        let source = spec.source_ref.clone();
        let (recipe, namespace, create_namespace) = match &unit.helm {
            Some(h) => (
                Recipe::Helm {
                    chart: h.chart.clone(),
                    release_name: h.release_name.clone(),
                    namespace: h.target_namespace.clone(),
                    values: h.values.clone(),
                },
                Some(h.target_namespace.clone()),
                // Flux's `spec.install.createNamespace`, read by the apply layer from the
                // object.
                unit.object
                    .pointer("/spec/install/createNamespace")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            ),
            None => (
                Recipe::Kustomize {
                    source,
                    path: spec.path.clone(),
                },
                spec.target_namespace.clone(),
                false,
            ),
        };
        UnitModel {
            id: unit.id.clone(),
            target,
            recipe,
            apply: ApplyPolicy {
                prune: spec.prune,
                wait: spec.wait,
                force: spec.force,
                timeout: spec.timeout,
                health_checks: spec.health_checks.clone(),
                create_namespace,
                namespace,
            },
            depends_on: spec.depends_on.clone(),
            suspend: spec.suspend,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load, LoadOptions, NoCluster, Renderer};
    use capstan_vfs::{FileSystem, MemFs};
    use std::path::Path;

    struct Files;
    impl Renderer for Files {
        fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
            let mut out = Vec::new();
            for n in fs.read_dir(dir).map_err(|e| e.to_string())? {
                let p = dir.join(n);
                if fs.is_file(&p) {
                    let text = fs.read_to_string(&p).map_err(|e| e.to_string())?;
                    for d in capstan_yaml::parse_documents(&text, "f").map_err(|e| e.to_string())? {
                        out.push(capstan_yaml::to_json(&d));
                    }
                }
            }
            Ok(out)
        }
    }

    /// The Flux reader's Kustomization (`spec.kubeConfig.secretRef`,
    /// `spec.serviceAccountName`, `spec.sourceRef`, `prune`/`wait`/`force`,
    /// `targetNamespace`, `dependsOn`) and HelmRelease (chart, release name, values,
    /// `install.createNamespace`) in the model's terms.
    #[test]
    fn flux_units_project_onto_the_neutral_model() {
        let fs = MemFs::new()
            .with("/clusters/c/ks.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./apps\n  prune: true\n  wait: true\n  force: true\n  targetNamespace: apps\n  serviceAccountName: deployer\n  kubeConfig:\n    secretRef:\n      name: remote\n  dependsOn:\n  - name: infra\n  sourceRef:\n    kind: GitRepository\n    name: other\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: flux-system\nspec:\n  interval: 1m\n  targetNamespace: web\n  install:\n    createNamespace: true\n  chart:\n    spec:\n      chart: podinfo\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n  values:\n    a: 1\n");
        let units = load(&fs, &Files, &NoCluster, &LoadOptions::new("clusters/c"));
        let model = |name: &str| {
            UnitModel::of(
                units
                    .units
                    .iter()
                    .map(|u| u.unit())
                    .find(|u| u.id.name == name)
                    .unwrap_or_else(|| panic!("no unit {name}")),
            )
        };
        let ks = model("apps");
        assert_eq!(
            ks.target,
            Target {
                cluster: TargetCluster::KubeConfigSecret {
                    namespace: "flux-system".into(),
                    name: "remote".into(),
                    key: None
                },
                service_account: Some(("flux-system".into(), "deployer".into())),
            }
        );
        assert_eq!(
            ks.recipe,
            Recipe::Kustomize {
                source: Some(SourceRef {
                    kind: "GitRepository".into(),
                    name: "other".into(),
                    namespace: "flux-system".into()
                }),
                path: "./apps".into()
            }
        );
        assert!(ks.apply.prune && ks.apply.wait && ks.apply.force);
        assert_eq!(ks.apply.namespace.as_deref(), Some("apps"));
        assert_eq!(
            ks.depends_on,
            vec![UnitId::new("Kustomization", "flux-system", "infra")]
        );
        let hr = model("web");
        let Recipe::Helm {
            release_name,
            namespace,
            values,
            ..
        } = &hr.recipe
        else {
            panic!("{:?}", hr.recipe);
        };
        assert_eq!(
            (release_name.as_str(), namespace.as_str()),
            ("web-web", "web")
        );
        assert_eq!(values["a"], 1);
        assert!(hr.apply.create_namespace);
        assert_eq!(hr.target, Target::default());
    }
}
