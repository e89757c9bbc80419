//! kustomize's legacy resource order.

use capstan_yaml::Node;

use crate::resource::Resource;

const ORDER_FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Sort stably in the legacy order (or the order given by `legacySortOptions`).
pub fn legacy_sort(res: &mut [Resource], opts: Option<&Node>) {
    let list = |k: &str| -> Option<Vec<String>> {
        opts.and_then(|o| o.get(k))
            .and_then(|v| v.as_sequence())
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
    };
    let first =
        list("orderFirst").unwrap_or_else(|| ORDER_FIRST.iter().map(|s| s.to_string()).collect());
    let last =
        list("orderLast").unwrap_or_else(|| ORDER_LAST.iter().map(|s| s.to_string()).collect());
    // kustomize ranks a kind by `typeOrders`: orderFirst entries get negative ranks, orderLast
    // entries positive ones, any other kind 0; a later entry overwrites an earlier one.
    let mut ranks: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (i, k) in first.iter().enumerate() {
        ranks.insert(k.as_str(), i as i64 - first.len() as i64);
    }
    for (i, k) in last.iter().enumerate() {
        ranks.insert(k.as_str(), 1 + i as i64);
    }
    res.sort_by_cached_key(|r| {
        let id = r.id();
        let gvk = legacy_gvk_string(&id.group, &id.version, &id.kind);
        let id_string = legacy_id_string(&gvk, &id.namespace, &id.name);
        (
            ranks.get(id.kind.as_str()).copied().unwrap_or(0),
            gvk,
            id_string,
        )
    });
}

/// kustomize's `legacyGVKSortString`: `group_version_kind` with `~G`/`~V`/`~K` for empty parts.
fn legacy_gvk_string(group: &str, version: &str, kind: &str) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}",
        or(group, "~G"),
        or(version, "~V"),
        or(kind, "~K")
    )
}

/// kustomize's `legacyResIDSortString`: `gvk|namespace|name` with `~X` for no namespace and
/// `~N` for no name, compared as one string (so `~X` sorts after any namespace and `|`
/// after `-`).
fn legacy_id_string(gvk: &str, namespace: &str, name: &str) -> String {
    let ns = if namespace.is_empty() {
        "~X"
    } else {
        namespace
    };
    let nm = if name.is_empty() { "~N" } else { name };
    format!("{gvk}|{ns}|{nm}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(api: &str, kind: &str, ns: &str, name: &str) -> Resource {
        let mut y = format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n");
        if !ns.is_empty() {
            y.push_str(&format!("  namespace: {ns}\n"));
        }
        Resource::new(capstan_yaml::parse_documents(&y, "t").unwrap().remove(0))
    }

    fn names(r: &[Resource]) -> Vec<String> {
        r.iter()
            .map(|r| format!("{}/{}/{}", r.kind(), r.namespace(), r.name()))
            .collect()
    }

    #[test]
    fn legacy_order_compares_id_as_one_string_with_pipe_separator() {
        // Namespace "a-b" sorts before namespace "a": "a-b|..." < "a|..." as '-' < '|'.
        let mut r = vec![
            res("v1", "ConfigMap", "a", "n"),
            res("v1", "ConfigMap", "a-b", "n"),
        ];
        legacy_sort(&mut r, None);
        assert_eq!(names(&r), ["ConfigMap/a-b/n", "ConfigMap/a/n"]);
    }

    #[test]
    fn legacy_order_puts_empty_namespace_after_named_ones() {
        let mut r = vec![
            res("v1", "ConfigMap", "", "a"),
            res("v1", "ConfigMap", "zz", "b"),
        ];
        legacy_sort(&mut r, None);
        assert_eq!(names(&r), ["ConfigMap/zz/b", "ConfigMap//a"]);
    }

    #[test]
    fn legacy_order_same_rank_kinds_by_group_version_kind_string() {
        // Unranked kinds: "apps_v1_..." < "~G_v1_..." (core group last).
        let mut r = vec![
            res("v1", "Pod", "", "a"),
            res("apps/v1", "DaemonSet", "", "a"),
            res("batch/v1", "Job", "", "a"),
        ];
        legacy_sort(&mut r, None);
        assert_eq!(names(&r), ["DaemonSet//a", "Job//a", "Pod//a"]);
    }

    #[test]
    fn legacy_order_ranks_first_and_last_lists() {
        let mut r = vec![
            res(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "",
                "a",
            ),
            res("apps/v1", "DaemonSet", "", "a"),
            res("v1", "Namespace", "", "a"),
        ];
        legacy_sort(&mut r, None);
        assert_eq!(
            names(&r),
            [
                "Namespace//a",
                "DaemonSet//a",
                "ValidatingWebhookConfiguration//a"
            ]
        );
    }
}
