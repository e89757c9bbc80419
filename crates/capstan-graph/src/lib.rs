//! The cluster's dependency graph.
//!
//! Every unit of a cluster (a Flux `Kustomization`, a `HelmRelease`, ...) is a node.
//! Edges come from two places:
//!
//! * **explicit** `dependsOn` entries: the dependent waits until the dependency is
//!   applied and Ready. A missing dependency or a cycle among these is an error, with
//!   the full cycle path;
//! * **implicit** needs found in the rendered objects: a unit whose objects live in a
//!   Namespace, or are custom resources of a CRD, that another unit creates, waits
//!   until that unit has applied them (and the CRD is Established). This is what makes
//!   "apply a few times until the CRDs are installed" unnecessary. An implicit edge that
//!   would close a cycle is dropped and reported as a warning: the apply layer still
//!   orders Namespaces and CRDs first inside each unit.
//!
//! The crate is pure: callers hand it [`UnitNode`]s (what each unit provides and
//! needs, see [`Footprint::of_objects`]) and get a [`Plan`] back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A unit's identity: kind, namespace and name, as Flux names its objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitId {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl UnitId {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        UnitId {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// An API group and kind, e.g. `cert-manager.io` / `Certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// What a unit's rendered objects create and need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Namespaces this unit creates.
    pub namespaces: BTreeSet<String>,
    /// Kinds this unit defines through CustomResourceDefinitions.
    pub crds: BTreeSet<GroupKind>,
    /// Namespaces its namespaced objects live in.
    pub needs_namespaces: BTreeSet<String>,
    /// Kinds of its objects outside Kubernetes' built-in API groups.
    pub needs_kinds: BTreeSet<GroupKind>,
}

/// Namespaces every cluster has.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Kinds that are cluster-scoped in every Kubernetes version (the rest are assumed
/// namespaced unless a CRD in the render says otherwise).
pub const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("policy", "PodSecurityPolicy"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// Is this API group one that Kubernetes itself serves (so no CRD is needed)?
pub fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || !group.contains('.')
        || group.ends_with(".k8s.io") && !group.ends_with(".x-k8s.io")
        || group == "apps"
}

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    match api_version.rsplit_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

impl Footprint {
    /// Work out a unit's footprint from its rendered objects. `cluster_scoped` tells
    /// whether a group/kind is cluster-scoped (beyond [`CLUSTER_SCOPED`]), e.g. from
    /// CRDs seen anywhere in the render.
    pub fn of_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
        cluster_scoped: &dyn Fn(&GroupKind) -> bool,
    ) -> Footprint {
        let mut fp = Footprint::default();
        for obj in objects {
            let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            let gk = GroupKind {
                group: group_of(api_version).to_string(),
                kind: kind.to_string(),
            };
            let meta = obj.get("metadata");
            let name = meta
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if gk.group.is_empty() && kind == "Namespace" {
                fp.namespaces.insert(name.to_string());
                continue;
            }
            if gk.group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition" {
                if let Some(defined) = crd_group_kind(obj) {
                    fp.crds.insert(defined);
                }
                continue;
            }
            if !is_builtin_group(&gk.group) {
                fp.needs_kinds.insert(gk.clone());
            }
            let scoped = CLUSTER_SCOPED
                .iter()
                .any(|(g, k)| *g == gk.group && *k == gk.kind)
                || cluster_scoped(&gk);
            if !scoped {
                if let Some(ns) = meta
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str)
                {
                    if !ns.is_empty() {
                        fp.needs_namespaces.insert(ns.to_string());
                    }
                }
            }
        }
        fp
    }
}

/// The group/kind a CRD object defines.
pub fn crd_group_kind(crd: &Value) -> Option<GroupKind> {
    let spec = crd.get("spec")?;
    Some(GroupKind {
        group: spec.get("group")?.as_str()?.to_string(),
        kind: spec.get("names")?.get("kind")?.as_str()?.to_string(),
    })
}

/// Whether a CRD object declares a cluster-scoped kind.
pub fn crd_is_cluster_scoped(crd: &Value) -> bool {
    crd.pointer("/spec/scope").and_then(Value::as_str) == Some("Cluster")
}

/// A node handed to [`plan`].
#[derive(Debug, Clone)]
pub struct UnitNode {
    pub id: UnitId,
    /// Explicit `dependsOn`, already resolved to ids (namespace defaulted).
    pub depends_on: Vec<UnitId>,
    /// Where the dependsOn came from, for error messages (e.g. a file path).
    pub origin: Option<String>,
    pub footprint: Footprint,
}

/// Why one unit waits for another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeReason {
    DependsOn,
    Namespace(String),
    Crd(GroupKind),
}

impl fmt::Display for EdgeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdgeReason::DependsOn => write!(f, "dependsOn"),
            EdgeReason::Namespace(ns) => write!(f, "creates namespace {ns}"),
            EdgeReason::Crd(gk) => write!(f, "defines {gk}"),
        }
    }
}

/// A dependency edge: the unit waits for `on`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub on: UnitId,
    pub reason: EdgeReason,
}

/// Errors that stop planning: nothing is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("{0}")]
    MissingDependency(Box<MissingDependency>),
    #[error("dependency cycle: {}", path.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(" -> "))]
    Cycle { path: Vec<UnitId> },
    #[error("two units have the same id {0}")]
    Duplicate(UnitId),
}

/// A `dependsOn` entry naming a unit that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{unit}: spec.dependsOn names {missing}, which does not exist{}{}", origin.as_ref().map(|o| format!(" (declared in {o})")).unwrap_or_default(), hint.as_ref().map(|h| format!("\n  = hint: did you mean {h}?")).unwrap_or_default())]
pub struct MissingDependency {
    pub unit: UnitId,
    pub missing: UnitId,
    pub origin: Option<String>,
    pub hint: Option<UnitId>,
}

/// The result of planning.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Units in an order where every unit comes after what it waits for (ties broken by id).
    pub order: Vec<UnitId>,
    /// For each unit, what it waits for and why.
    pub edges: BTreeMap<UnitId, Vec<Edge>>,
    /// Implicit edges dropped because they would have closed a cycle.
    pub warnings: Vec<String>,
}

impl Plan {
    /// What `unit` waits for.
    pub fn dependencies(&self, unit: &UnitId) -> &[Edge] {
        self.edges.get(unit).map(Vec::as_slice).unwrap_or(&[])
    }
    /// Units that wait for `unit`, directly.
    pub fn dependents(&self, unit: &UnitId) -> Vec<&UnitId> {
        self.edges
            .iter()
            .filter(|(_, es)| es.iter().any(|e| &e.on == unit))
            .map(|(u, _)| u)
            .collect()
    }
    /// Every unit that waits for `unit`, directly or not.
    pub fn transitive_dependents(&self, unit: &UnitId) -> BTreeSet<UnitId> {
        let mut out = BTreeSet::new();
        let mut stack = vec![unit.clone()];
        while let Some(u) = stack.pop() {
            for d in self.dependents(&u) {
                if out.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        out
    }
}

/// Build the plan.
pub fn plan(units: &[UnitNode]) -> Result<Plan, GraphError> {
    let mut index: HashMap<&UnitId, usize> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        if index.insert(&u.id, i).is_some() {
            return Err(GraphError::Duplicate(u.id.clone()));
        }
    }
    let n = units.len();
    let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut edges: BTreeMap<UnitId, Vec<Edge>> =
        units.iter().map(|u| (u.id.clone(), Vec::new())).collect();

    // Explicit edges.
    for (i, u) in units.iter().enumerate() {
        for dep in &u.depends_on {
            match index.get(dep) {
                Some(&j) => {
                    if adj[i].insert(j) {
                        edges.get_mut(&u.id).unwrap().push(Edge {
                            on: dep.clone(),
                            reason: EdgeReason::DependsOn,
                        });
                    }
                }
                None => {
                    let hint = units
                        .iter()
                        .filter(|c| c.id.kind == dep.kind)
                        .min_by_key(|c| distance(&c.id.to_string(), &dep.to_string()))
                        .filter(|c| {
                            distance(&c.id.to_string(), &dep.to_string()) <= 3
                                || c.id.name == dep.name
                        })
                        .map(|c| c.id.clone());
                    return Err(GraphError::MissingDependency(Box::new(MissingDependency {
                        unit: u.id.clone(),
                        missing: dep.clone(),
                        origin: u.origin.clone(),
                        hint,
                    })));
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&adj) {
        let mut path: Vec<UnitId> = cycle.iter().map(|&i| units[i].id.clone()).collect();
        path.push(path[0].clone());
        return Err(GraphError::Cycle { path });
    }

    // Implicit edges, in a deterministic order.
    let mut ns_providers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut crd_providers: BTreeMap<&GroupKind, Vec<usize>> = BTreeMap::new();
    for (i, u) in units.iter().enumerate() {
        for ns in &u.footprint.namespaces {
            ns_providers.entry(ns.as_str()).or_default().push(i);
        }
        for gk in &u.footprint.crds {
            crd_providers.entry(gk).or_default().push(i);
        }
    }
    let mut warnings = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let mut wanted: Vec<(usize, EdgeReason)> = Vec::new();
        for ns in &u.footprint.needs_namespaces {
            if SYSTEM_NAMESPACES.contains(&ns.as_str()) || u.footprint.namespaces.contains(ns) {
                continue;
            }
            for &j in ns_providers.get(ns.as_str()).into_iter().flatten() {
                wanted.push((j, EdgeReason::Namespace(ns.clone())));
            }
        }
        for gk in &u.footprint.needs_kinds {
            if u.footprint.crds.contains(gk) {
                continue;
            }
            for &j in crd_providers.get(gk).into_iter().flatten() {
                wanted.push((j, EdgeReason::Crd(gk.clone())));
            }
        }
        for (j, reason) in wanted {
            if j == i {
                continue;
            }
            if adj[i].contains(&j) {
                // Already waiting for that unit: keep the extra reason for explanations.
                let es = edges.get_mut(&u.id).unwrap();
                if !es.iter().any(|e| e.on == units[j].id && e.reason == reason)
                    && es
                        .iter()
                        .any(|e| e.on == units[j].id && e.reason != EdgeReason::DependsOn)
                {
                    es.push(Edge {
                        on: units[j].id.clone(),
                        reason,
                    });
                }
                continue;
            }
            if reaches(&adj, j, i) {
                warnings.push(format!(
                    "{} needs {} ({}), but {} already waits for {}; relying on in-unit ordering",
                    u.id, units[j].id, reason, units[j].id, u.id
                ));
                continue;
            }
            adj[i].insert(j);
            edges.get_mut(&u.id).unwrap().push(Edge {
                on: units[j].id.clone(),
                reason,
            });
        }
    }

    // Topological order (Kahn), ties broken by id for determinism.
    let mut indegree: Vec<usize> = adj.iter().map(BTreeSet::len).collect();
    let mut rev: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in adj.iter().enumerate() {
        for &j in deps {
            rev[j].push(i);
        }
    }
    let mut ready: BTreeSet<(&UnitId, usize)> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| (&units[i].id, i))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(&first) = ready.iter().next() {
        ready.remove(&first);
        let (_, i) = first;
        order.push(units[i].id.clone());
        for &d in &rev[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert((&units[d].id, d));
            }
        }
    }
    debug_assert_eq!(order.len(), n);
    for es in edges.values_mut() {
        es.sort();
    }
    Ok(Plan {
        order,
        edges,
        warnings,
    })
}

/// Does `from` reach `to` following dependency edges?
fn reaches(adj: &[BTreeSet<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; adj.len()];
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        if x == to {
            return true;
        }
        if std::mem::replace(&mut seen[x], true) {
            continue;
        }
        stack.extend(adj[x].iter().copied());
    }
    false
}

/// A cycle, as the list of nodes in order, if there is one.
fn find_cycle(adj: &[BTreeSet<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    let n = adj.len();
    let mut mark = vec![Mark::White; n];
    for start in 0..n {
        if mark[start] != Mark::White {
            continue;
        }
        // Iterative DFS keeping the path.
        let mut path: Vec<usize> = vec![start];
        let mut iters: Vec<std::collections::btree_set::Iter<usize>> = vec![adj[start].iter()];
        mark[start] = Mark::Grey;
        while let Some(it) = iters.last_mut() {
            match it.next() {
                Some(&next) => match mark[next] {
                    Mark::White => {
                        mark[next] = Mark::Grey;
                        path.push(next);
                        iters.push(adj[next].iter());
                    }
                    Mark::Grey => {
                        let pos = path.iter().position(|&p| p == next).unwrap();
                        return Some(path[pos..].to_vec());
                    }
                    Mark::Black => {}
                },
                None => {
                    mark[*path.last().unwrap()] = Mark::Black;
                    path.pop();
                    iters.pop();
                }
            }
        }
    }
    None
}

/// Levenshtein distance, for "did you mean" hints.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ks(name: &str) -> UnitId {
        UnitId::new("Kustomization", "flux-system", name)
    }

    fn node(name: &str, deps: &[&str], objects: &[Value]) -> UnitNode {
        UnitNode {
            id: ks(name),
            depends_on: deps.iter().map(|d| ks(d)).collect(),
            origin: None,
            footprint: Footprint::of_objects(objects, &|_| false),
        }
    }

    #[test]
    fn depends_on_orders() {
        let p = plan(&[node("apps", &["infra"], &[]), node("infra", &[], &[])]).unwrap();
        assert_eq!(p.order, vec![ks("infra"), ks("apps")]);
        assert_eq!(p.dependencies(&ks("apps"))[0].reason, EdgeReason::DependsOn);
    }

    #[test]
    fn crd_and_namespace_edges_are_implicit() {
        let crd = json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},"spec":{"group":"example.com","names":{"kind":"Widget"},"scope":"Namespaced"}});
        let ns = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}});
        let cr = json!({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"shop"}});
        let p = plan(&[node("a-crs", &[], &[cr]), node("z-crds", &[], &[crd, ns])]).unwrap();
        assert_eq!(p.order, vec![ks("z-crds"), ks("a-crs")]);
        let reasons: Vec<_> = p
            .dependencies(&ks("a-crs"))
            .iter()
            .map(|e| e.reason.to_string())
            .collect();
        assert_eq!(
            reasons,
            vec!["creates namespace shop", "defines Widget.example.com"]
        );
    }

    #[test]
    fn cycles_report_the_path() {
        let err = plan(&[
            node("a", &["b"], &[]),
            node("b", &["c"], &[]),
            node("c", &["a"], &[]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dependency cycle: Kustomization/flux-system/a -> Kustomization/flux-system/b -> Kustomization/flux-system/c -> Kustomization/flux-system/a"
        );
    }

    #[test]
    fn missing_dependency_hints() {
        let err = plan(&[
            node("apps", &["infra-controller"], &[]),
            node("infra-controllers", &[], &[]),
        ])
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("spec.dependsOn names Kustomization/flux-system/infra-controller, which does not exist"), "{msg}");
        assert!(
            msg.contains("did you mean Kustomization/flux-system/infra-controllers?"),
            "{msg}"
        );
    }

    #[test]
    fn implicit_edge_closing_a_cycle_is_dropped() {
        let ns = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}});
        let cm =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"x"}});
        // b dependsOn a explicitly, but a needs b's namespace.
        let p = plan(&[node("a", &[], &[cm]), node("b", &["a"], &[ns])]).unwrap();
        assert_eq!(p.order, vec![ks("a"), ks("b")]);
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn builtin_groups() {
        assert!(is_builtin_group(""));
        assert!(is_builtin_group("apps"));
        assert!(is_builtin_group("networking.k8s.io"));
        assert!(!is_builtin_group("cert-manager.io"));
        assert!(!is_builtin_group("cluster.x-k8s.io"));
    }

    proptest::proptest! {
        #[test]
        fn order_respects_edges(deps in proptest::collection::vec(proptest::collection::vec(0usize..12, 0..4), 1..12)) {
            // Only edges to lower indices: acyclic by construction.
            let names: Vec<String> = (0..deps.len()).map(|i| format!("u{i:02}")).collect();
            let nodes: Vec<UnitNode> = deps.iter().enumerate().map(|(i, ds)| {
                let d: Vec<&str> = ds.iter().filter(|&&j| j < i).map(|&j| names[j].as_str()).collect();
                node(&names[i], &d, &[])
            }).collect();
            let p = plan(&nodes).unwrap();
            let pos: HashMap<&UnitId, usize> = p.order.iter().enumerate().map(|(i, u)| (u, i)).collect();
            for (u, es) in &p.edges {
                for e in es {
                    proptest::prop_assert!(pos[&e.on] < pos[u]);
                }
            }
        }
    }
}
