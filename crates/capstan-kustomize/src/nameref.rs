//! Name reference fix-ups (kustomize's nameReference transformer, run once at the end).

use std::collections::HashMap;

use capstan_yaml::Node;

use crate::error::{kerr, Result};
use crate::fieldspec::{apply_path, TransformerConfig};
use crate::resource::{is_cluster_scoped, Resource};

struct Cand {
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    names: Vec<(String, String)>,
    name: String,
    ns: String,
    id: String,
}

fn eff(ns: &str) -> &str {
    if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    // An empty list (no prefix/suffix at all) is compatible with any.
    if short.is_empty() {
        return true;
    }
    let diff = long.len() - short.len();
    (0..short.len()).all(|i| long[i + diff] == short[i])
}

/// Find the one candidate named `v` (kustomize's selectReferral sieve).
/// Candidates indexed by every name they had.
struct Cands {
    list: Vec<Cand>,
    by_name: HashMap<String, Vec<usize>>,
}

impl Cands {
    /// kustomize only considers resources by their previous names (`PrevIds`): one that
    /// was never renamed is no candidate.
    fn new(list: Vec<Cand>) -> Cands {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            for (n, _) in &c.names[..c.names.len() - 1] {
                let v = by_name.entry(n.clone()).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        Cands { list, by_name }
    }
}

fn select<'a>(
    cands: &'a Cands,
    v: &str,
    ns: Option<&str>,
    cluster: bool,
    referrer: (&[String], &[String]),
    keep: &dyn Fn(&Cand) -> bool,
) -> Result<Option<&'a Cand>> {
    let matching: Vec<&Cand> = cands
        .by_name
        .get(v)
        .map(|ix| {
            ix.iter()
                .map(|&i| &cands.list[i])
                .filter(|c| keep(c))
                .collect()
        })
        .unwrap_or_default();
    if matching.is_empty() {
        return Ok(None);
    }
    let filtered: Vec<&Cand> = if cluster {
        matching
    } else {
        match ns {
            Some(ns) => matching
                .into_iter()
                .filter(|c| eff(&c.ns) == eff(ns))
                .collect(),
            None => matching,
        }
    };
    if filtered.len() == 1 {
        return Ok(Some(filtered[0]));
    }
    let filtered: Vec<&Cand> = filtered
        .into_iter()
        .filter(|c| same_ending(&c.prefixes, referrer.0) && same_ending(&c.suffixes, referrer.1))
        .collect();
    match filtered.len() {
        0 => Ok(None),
        1 => Ok(Some(filtered[0])),
        _ => {
            // kustomize's allNamesAndNamespacesAreTheSame: then any one will do.
            if filtered
                .iter()
                .all(|c| c.name == filtered[0].name && eff(&c.ns) == eff(&filtered[0].ns))
            {
                return Ok(Some(filtered[0]));
            }
            let ids: Vec<String> = filtered.iter().map(|c| c.id.clone()).collect();
            Err(kerr!(
                "found multiple possible referrals: {}",
                ids.join(", ")
            ))
        }
    }
}

pub fn fix(resources: &mut [Resource], config: &TransformerConfig) -> Result<()> {
    check_blank_subject_namespaces(resources)?;
    for nr in &config.name_reference {
        let cands: Vec<Cand> = resources
            .iter()
            .filter(|r| r.kind() == nr.kind && (nr.group.is_empty() || r.group() == nr.group))
            .map(|r| Cand {
                prefixes: r.prefixes.clone(),
                suffixes: r.suffixes.clone(),
                names: r.all_names(),
                name: r.name().to_string(),
                ns: r.namespace().to_string(),
                id: r.id().to_string(),
            })
            .collect();
        // Only resources with previous ids (renamed, or passed through a namespace
        // transformer) are candidates (kustomize's `previousNameMatches`).
        if cands.iter().all(|c| c.names.len() == 1) {
            continue;
        }
        let cands = Cands::new(cands);
        let ref_cluster = is_cluster_scoped(&nr.kind);
        for r in resources.iter_mut() {
            let referrer_ns = r.namespace().to_string();
            let referrer_cluster = is_cluster_scoped(r.kind());
            let role_kind = r.node.str_at(&["roleRef", "kind"]).map(str::to_string);
            let (rp, rs) = (r.prefixes.clone(), r.suffixes.clone());
            // kustomize's SubsetThatCouldBeReferencedByResource: a namespaced referrer
            // sees cluster-scoped objects, those of its own namespace and, for a
            // RoleBinding, those of the namespaces its ServiceAccount subjects name. A
            // base included twice under different namespaces thus resolves within its
            // own copy.
            let rb_namespaces: Vec<String> = if r.kind() == "RoleBinding" {
                r.node
                    .get("subjects")
                    .and_then(|s| s.as_sequence())
                    .into_iter()
                    .flatten()
                    .filter(|s| s.str_at(&["kind"]) == Some("ServiceAccount"))
                    .filter_map(|s| s.str_at(&["namespace"]).map(str::to_string))
                    .collect()
            } else {
                Vec::new()
            };
            let visible = |c: &Cand| {
                referrer_cluster
                    || ref_cluster
                    || eff(&c.ns) == eff(&referrer_ns)
                    || rb_namespaces.contains(&c.ns)
            };
            for fs in &nr.field_specs {
                if !fs.matches(r) {
                    continue;
                }
                if fs.path == ["roleRef", "name"] && role_kind.as_deref() != Some(nr.kind.as_str())
                {
                    continue;
                }
                let ns_filter = if referrer_cluster {
                    None
                } else {
                    Some(referrer_ns.as_str())
                };
                let mut err = None;
                apply_path(&mut r.node, &fs.path, false, &mut |n| {
                    match n {
                        Node::Scalar(s) if !s.is_null() => {
                            match select(
                                &cands,
                                &s.value,
                                ns_filter,
                                ref_cluster,
                                (&rp, &rs),
                                &visible,
                            ) {
                                Ok(Some(c)) => *n = Node::string(c.name.clone()),
                                Ok(None) => {}
                                Err(e) => err = Some(e),
                            }
                        }
                        Node::Mapping(m) => {
                            // subjects / webhook service: {kind?, name, namespace}
                            if let Some(k) = m.get("kind").and_then(|k| k.as_str()) {
                                if k != nr.kind {
                                    return Ok(());
                                }
                            }
                            let Some(name) =
                                m.get("name").and_then(|v| v.as_str()).map(str::to_string)
                            else {
                                return Ok(());
                            };
                            let ns = m
                                .get("namespace")
                                .and_then(|v| v.as_str())
                                .map(str::to_string);
                            // kustomize's filterMapCandidatesByNamespace: the candidates
                            // whose original namespace is the one named, else those
                            // currently in it.
                            let by_orig = |c: &Cand| {
                                ns.as_deref().is_none_or(|ns| eff(&c.names[0].1) == eff(ns))
                            };
                            let by_cur =
                                |c: &Cand| ns.as_deref().is_none_or(|ns| eff(&c.ns) == eff(ns));
                            let by_orig = |c: &Cand| visible(c) && by_orig(c);
                            let by_cur = |c: &Cand| visible(c) && by_cur(c);
                            let any_orig = cands.list.iter().any(by_orig);
                            let keep: &dyn Fn(&Cand) -> bool =
                                if any_orig { &by_orig } else { &by_cur };
                            let filt = if nr.kind == "ServiceAccount" {
                                None
                            } else {
                                ns_filter
                            };
                            match select(&cands, &name, filt, ref_cluster, (&rp, &rs), keep) {
                                // kustomize's setMapping: the referral's name, and its
                                // namespace unless empty (a wildcard, not "default").
                                Ok(Some(c)) if c.name != name || !c.ns.is_empty() => {
                                    m.insert("name", Node::string(c.name.clone()));
                                    if !c.ns.is_empty() {
                                        m.insert("namespace", Node::string(c.ns.clone()));
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => err = Some(e),
                            }
                        }
                        _ => {}
                    }
                    Ok(())
                })?;
                if let Some(e) = err {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// kustomize refuses a (Cluster)RoleBinding subject naming a ServiceAccount of the
/// build with a `namespace` field that is present but blank.
fn check_blank_subject_namespaces(resources: &[Resource]) -> Result<()> {
    let sas: std::collections::HashSet<&str> = resources
        .iter()
        .filter(|r| r.kind() == "ServiceAccount")
        .map(|r| r.name())
        .collect();
    if sas.is_empty() {
        return Ok(());
    }
    for r in resources {
        if !matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding") {
            continue;
        }
        let Some(subs) = r.node.get("subjects").and_then(|s| s.as_sequence()) else {
            continue;
        };
        for s in subs {
            let blank = s
                .get("namespace")
                .is_some_and(|n| n.is_null() || n.as_str() == Some(""));
            if blank
                && s.str_at(&["kind"]) == Some("ServiceAccount")
                && s.str_at(&["name"]).is_some_and(|n| sas.contains(n))
            {
                return Err(kerr!(
                    "Invalid Input: namespace is blank for resource \"{}\"",
                    r.id()
                ));
            }
        }
    }
    Ok(())
}
