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
    let rank = |k: &str| -> usize {
        if let Some(i) = first.iter().position(|x| x == k) {
            return i;
        }
        if let Some(i) = last.iter().position(|x| x == k) {
            return first.len() + 1 + i;
        }
        first.len()
    };
    res.sort_by_cached_key(|r| {
        let id = r.id();
        (
            rank(&id.kind),
            id.gvk_string(),
            id.namespace.clone(),
            id.name.clone(),
        )
    });
}
