//! Strategic merge patch over [`capstan_yaml::Node`], as kustomize (kyaml merge2) applies
//! it: maps merge recursively, `null` deletes, lists of objects merge by their merge key
//! (Kubernetes' `patchMergeKey`, or the associative keys kyaml infers for unknown types),
//! other lists are replaced; directives `$patch: delete|replace|merge`,
//! `$setElementOrder/<field>`, `$retainKeys`, `$deleteFromPrimitiveList/<field>`.

use capstan_yaml::{Mapping, Node};

use crate::error::Result;

/// The associative keys kyaml tries, in order, for lists without a schema.
const ASSOCIATIVE_KEYS: [&str; 7] = [
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "topologyKey",
    "name",
    "containerPort",
];

/// Lists of primitives that Kubernetes merges (patchStrategy: merge) rather than replaces.
const MERGED_PRIMITIVE_LISTS: [&str; 1] = ["finalizers"];

/// The merge key of the list at `field` given the elements of both sides.
#[allow(clippy::collapsible_match)]
pub fn merge_key(field: &str, dst: &[Node], patch: &[Node]) -> Option<&'static str> {
    let all_maps = dst
        .iter()
        .chain(patch.iter())
        .all(|n| matches!(n, Node::Mapping(_)));
    if !all_maps {
        return None;
    }
    let has = |k: &str| {
        dst.iter()
            .chain(patch.iter())
            .filter(|n| n.str_at(&["$patch"]).is_none() || n.get(k).is_some())
            .all(|n| n.get(k).is_some())
    };
    match field {
        "ports" => {
            if has("containerPort") {
                return Some("containerPort");
            }
            if has("port") {
                return Some("port");
            }
        }
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => {
            if has("name") {
                return Some("name");
            }
        }
        "volumeMounts" => return Some("mountPath"),
        "volumeDevices" => return Some("devicePath"),
        "hostAliases" => return Some("ip"),
        "conditions" => return Some("type"),
        "topologySpreadConstraints" => return Some("topologyKey"),
        // Atomic lists in the Kubernetes schema.
        "args" | "command" | "tolerations" | "envFrom" | "subjects" | "rules" | "webhooks"
        | "egress" | "ingress" => return None,
        _ => {}
    }
    ASSOCIATIVE_KEYS.into_iter().find(|&k| has(k))
}

/// What decides whether a list is merged by key or replaced.
#[derive(Debug, Clone, Copy)]
pub enum Schema<'a> {
    /// kustomize's builtin Kubernetes schema (approximated by field names).
    Builtin,
    /// No schema for the type (kustomize doesn't infer keys then): lists are replaced.
    Unknown,
    /// A custom OpenAPI schema (`openapi.path`): the root document and the schema of
    /// the current node, if any.
    Custom(&'a serde_json::Value, Option<&'a serde_json::Value>),
}

impl<'a> Schema<'a> {
    fn resolve(root: &'a serde_json::Value, n: &'a serde_json::Value) -> &'a serde_json::Value {
        let mut n = n;
        for _ in 0..32 {
            match n.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => {
                    let Some(name) = r.strip_prefix("#/definitions/") else {
                        return n;
                    };
                    match root.get("definitions").and_then(|d| d.get(name)) {
                        Some(x) => n = x,
                        None => return n,
                    }
                }
                None => return n,
            }
        }
        n
    }
    fn field(self, f: &str) -> Schema<'a> {
        match self {
            Schema::Custom(root, Some(n)) => Schema::Custom(
                root,
                n.get("properties")
                    .and_then(|p| p.get(f))
                    .map(|x| Self::resolve(root, x)),
            ),
            other => other,
        }
    }
    fn items(self) -> Schema<'a> {
        match self {
            Schema::Custom(root, Some(n)) => {
                Schema::Custom(root, n.get("items").map(|x| Self::resolve(root, x)))
            }
            other => other,
        }
    }
    /// The schema of the definition for a group/version/kind in a custom document.
    pub fn for_gvk(
        root: &'a serde_json::Value,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<Schema<'a>> {
        let defs = root.get("definitions")?.as_object()?;
        for d in defs.values() {
            let Some(gvks) = d
                .get("x-kubernetes-group-version-kind")
                .and_then(|x| x.as_array())
            else {
                continue;
            };
            if gvks.iter().any(|g| {
                let s = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("");
                s("group") == group && s("version") == version && s("kind") == kind
            }) {
                return Some(Schema::Custom(root, Some(d)));
            }
        }
        None
    }
}

/// Apply `patch` to `dst` in place. A top-level `$patch: delete` makes `dst` null.
pub fn merge(dst: &mut Node, patch: &Node) -> Result<()> {
    merge_value(dst, patch, "", Schema::Builtin);
    Ok(())
}

/// [`merge`] with an explicit schema.
pub fn merge_with(dst: &mut Node, patch: &Node, schema: Schema) -> Result<()> {
    merge_value(dst, patch, "", schema);
    Ok(())
}

fn directive(n: &Node) -> Option<&str> {
    n.str_at(&["$patch"])
}

/// A patch value with directives and nulls removed (what lands when nothing is there).
pub fn clean(n: &Node) -> Node {
    match n {
        Node::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in &m.entries {
                if k.starts_with('$') || v.is_null() {
                    continue;
                }
                out.entries.push((k.clone(), clean(v)));
            }
            Node::Mapping(out)
        }
        Node::Sequence(s) => Node::Sequence(
            s.iter()
                .filter(|x| !matches!(directive(x), Some("delete")))
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_value(dst: &mut Node, patch: &Node, field: &str, sch: Schema) {
    match (&mut *dst, patch) {
        (Node::Mapping(d), Node::Mapping(p)) => {
            match p.get("$patch").and_then(|v| v.as_str()) {
                Some("delete") => {
                    *dst = Node::null();
                    return;
                }
                Some("replace") => {
                    *dst = clean(patch);
                    return;
                }
                _ => {}
            }
            merge_mapping(d, p, sch);
        }
        (Node::Sequence(d), Node::Sequence(p)) => {
            merge_list(d, p, field, sch);
        }
        (_, p) => {
            *dst = clean(p);
        }
    }
}

fn merge_mapping(d: &mut Mapping, p: &Mapping, sch: Schema) {
    let mut retain: Option<Vec<String>> = None;
    let mut orders: Vec<(String, &Vec<Node>)> = Vec::new();
    for (k, v) in &p.entries {
        if k == "$patch" {
            continue;
        }
        if k == "$retainKeys" {
            if let Some(s) = v.as_sequence() {
                retain = Some(
                    s.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                );
            }
            continue;
        }
        if let Some(f) = k.strip_prefix("$setElementOrder/") {
            if let Some(s) = v.as_sequence() {
                orders.push((f.to_string(), s));
            }
            continue;
        }
        if let Some(f) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(s), Some(Node::Sequence(list))) = (v.as_sequence(), d.get_mut(f)) {
                list.retain(|x| !s.iter().any(|y| y.as_str() == x.as_str()));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            d.remove(k);
            continue;
        }
        match d.get_mut(k) {
            Some(existing) if !existing.is_null() => {
                merge_value(existing, v, k, sch.field(k));
                if existing.is_null() {
                    d.remove(k);
                }
            }
            Some(existing) => {
                if directive(v) == Some("delete") {
                    d.remove(k);
                } else {
                    *existing = clean(v);
                }
            }
            None => {
                if directive(v) != Some("delete") {
                    d.entries.push((k.clone(), clean(v)));
                }
            }
        }
    }
    for (f, order) in orders {
        if let Some(Node::Sequence(list)) = d.get_mut(&f) {
            set_element_order(list, order);
        }
    }
    if let Some(keys) = retain {
        d.entries.retain(|(k, _)| keys.iter().any(|x| x == k));
    }
}

fn set_element_order(list: &mut Vec<Node>, order: &[Node]) {
    let key = order
        .first()
        .and_then(|o| o.as_mapping())
        .and_then(|m| m.entries.first().map(|(k, _)| k.clone()));
    let val_of = |n: &Node| -> Option<String> {
        match &key {
            Some(k) => n.get(k).and_then(|v| v.as_str()).map(str::to_string),
            None => n.as_str().map(str::to_string),
        }
    };
    let wanted: Vec<String> = order.iter().filter_map(&val_of).collect();
    let mut items: Vec<Option<Node>> = std::mem::take(list).into_iter().map(Some).collect();
    let mut out = Vec::new();
    for w in &wanted {
        if let Some(slot) = items
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|n| val_of(n).as_deref() == Some(w)))
        {
            out.push(slot.take().unwrap());
        }
    }
    out.extend(items.into_iter().flatten());
    *list = out;
}

fn merge_list(d: &mut Vec<Node>, p: &[Node], field: &str, sch: Schema) {
    // `- $patch: replace` in the list replaces it with the other elements.
    if p.iter()
        .any(|x| directive(x) == Some("replace") && x.as_mapping().is_some_and(|m| m.len() == 1))
    {
        *d = p
            .iter()
            .filter(|x| directive(x) != Some("replace"))
            .map(clean)
            .collect();
        return;
    }
    let key: Option<String> = match sch {
        Schema::Builtin => merge_key(field, d, p).map(str::to_string),
        Schema::Unknown => None,
        Schema::Custom(_, n) => n
            .filter(|n| {
                n.get("x-kubernetes-patch-strategy")
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| v.split(',').any(|x| x == "merge"))
            })
            .and_then(|n| n.get("x-kubernetes-patch-merge-key"))
            .and_then(|v| v.as_str())
            .map(str::to_string),
    };
    let esch = sch.items();
    let Some(key) = key else {
        if matches!(sch, Schema::Builtin) && MERGED_PRIMITIVE_LISTS.contains(&field) {
            // Prepend, as for keyed lists: the patch's values, then the others.
            let mut out: Vec<Node> = Vec::new();
            for x in p.iter().chain(d.iter()) {
                if !out.contains(x) {
                    out.push(x.clone());
                }
            }
            *d = out;
            return;
        }
        *d = p.iter().map(clean).collect();
        return;
    };
    // kyaml merge2 with ListIncreaseDirection=Prepend (kustomize's patch filter): the
    // patch's elements come first in patch order (merged into the matching element when
    // there is one), then the elements only in the destination, in their order.
    let key = key.as_str();
    let key_of = |n: &Node| n.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let mut old: Vec<Option<Node>> = std::mem::take(d).into_iter().map(Some).collect();
    let mut out: Vec<Node> = Vec::new();
    for item in p {
        let kv = key_of(item);
        if let Some(kv) = &kv {
            if out
                .iter()
                .any(|x| key_of(x).as_deref() == Some(kv.as_str()))
            {
                if let Some(x) = out
                    .iter_mut()
                    .find(|x| key_of(x).as_deref() == Some(kv.as_str()))
                {
                    merge_value(x, item, "", esch);
                }
                continue;
            }
        }
        let pos = kv.as_ref().and_then(|kv| {
            old.iter()
                .position(|x| x.as_ref().and_then(key_of).as_deref() == Some(kv.as_str()))
        });
        match (directive(item), pos) {
            (Some("delete"), Some(i)) => {
                old[i] = None;
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                let mut x = old[i].take().unwrap();
                merge_value(&mut x, item, "", esch);
                out.push(x);
            }
            (_, None) => out.push(clean(item)),
        }
    }
    out.extend(old.into_iter().flatten());
    *d = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    fn y(s: &str) -> Node {
        capstan_yaml::parse_documents(s, "").unwrap().remove(0)
    }
    fn out(n: &Node) -> String {
        capstan_yaml::emit_document(n)
    }

    #[test]
    fn merges_containers_by_name() {
        let mut d =
            y("spec:\n  containers:\n  - name: a\n    image: x\n  - name: b\n    image: y\n");
        let p = y("spec:\n  containers:\n  - name: b\n    image: z\n  - name: c\n    image: w\n");
        merge(&mut d, &p).unwrap();
        assert_eq!(out(&d), "spec:\n  containers:\n  - name: b\n    image: z\n  - name: c\n    image: w\n  - name: a\n    image: x\n");
    }

    #[test]
    fn delete_and_replace_directives() {
        let mut d = y("a:\n  b: 1\n  c: 2\nl:\n- name: x\n- name: y\n");
        let p = y("a:\n  $patch: replace\n  z: 1\nl:\n- name: x\n  $patch: delete\n");
        merge(&mut d, &p).unwrap();
        assert_eq!(out(&d), "a:\n  z: 1\nl:\n- name: y\n");
    }

    #[test]
    fn null_deletes() {
        let mut d = y("a: 1\nb: 2\n");
        merge(&mut d, &y("a: null\n")).unwrap();
        assert_eq!(out(&d), "b: 2\n");
    }
}
