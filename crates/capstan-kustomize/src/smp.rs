//! Strategic merge patch over [`capstan_yaml::Node`], exactly as kustomize v5.5 applies it:
//! kyaml's `merge2.Merge` (a `walk.Walker` with the `Merger` visitor, the patch's list
//! elements prepended, no inference of associative lists).
//!
//! What decides how a list merges is the OpenAPI schema at its position, found from the
//! target object's apiVersion/kind in kustomize's builtin schema (Kubernetes v1.21.2, see
//! [`capstan_openapi`]) or in a custom `openapi.path` document:
//!
//! - a list whose `x-kubernetes-patch-strategy` includes `merge` is associative: its elements
//!   pair up by the `x-kubernetes-list-map-keys` (when given) or the
//!   `x-kubernetes-patch-merge-key` (containers by `name`, container ports by
//!   `containerPort`+`protocol`, ...); without a key it is a merged list of primitives
//!   (`metadata.finalizers`);
//! - every other list, and every list with no schema (custom resources, kinds newer than the
//!   schema such as autoscaling/v2 HorizontalPodAutoscaler, fields the schema lacks), is
//!   replaced by the patch's. kyaml does not guess keys from field names here (its
//!   `InferAssociativeLists` is off in `merge2.Merge`), so neither does capstan.
//! - a map without a schema that has `apiVersion` and `kind` gets the schema of that kind
//!   (kyaml's `Walker.GetSchema`).
//!
//! Directives, as kyaml reads them: `$patch: delete|replace|merge` on a map; a list element
//! that is only `$patch: delete|replace|merge` on an associative list (delete clears the list,
//! replace takes the patch's). `$retainKeys`, `$setElementOrder/<f>` and
//! `$deleteFromPrimitiveList/<f>` are not directives for kyaml: they stay as fields, as in
//! `kubectl kustomize`. Elements pair up the way kyaml's `ElementSetter`/`ElementMatcher` do,
//! quirks included (duplicate keys collapse, multi-key lists match on the keys present).

use std::borrow::Cow;

use capstan_yaml::{Mapping, Node};

use crate::error::{kerr, Result};

/// kyaml's `AssociativeSequenceKeys`, in the order it tries them when it infers a list's key.
pub const ASSOCIATIVE_KEYS: [&str; 7] = [
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "topologyKey",
    "name",
    "containerPort",
];

/// kyaml's `RNode.GetAssociativeKey`: the first of [`ASSOCIATIVE_KEYS`] every element has
/// ("" when none; an empty list yields the first key).
fn associative_key(list: &[Node]) -> &'static str {
    ASSOCIATIVE_KEYS
        .into_iter()
        .find(|k| {
            list.iter()
                .all(|e| e.as_mapping().is_some_and(|m| m.contains_key(k)))
        })
        .unwrap_or("")
}

/// What decides whether a list is merged by key or replaced.
#[derive(Debug, Clone, Copy)]
pub enum Schema<'a> {
    /// kustomize's builtin Kubernetes schema ([`capstan_openapi::builtin`]), found from the
    /// object's apiVersion/kind.
    Builtin,
    /// The same (kyaml has no separate mode): objects of kinds the schema lacks get no schema.
    Unknown,
    /// The builtin schema, and where it has nothing, associative lists inferred from their
    /// elements (kyaml's `InferAssociativeLists`: a list whose elements all have one of
    /// [`ASSOCIATIVE_KEYS`] merges by it). capstan uses this only when the kustomization's
    /// `openapi.path` is a remote schema it cannot fetch.
    Inferred,
    /// A custom OpenAPI schema (`openapi.path`): the root document and the schema of
    /// the current node, if any.
    Custom(&'a serde_json::Value, Option<&'a serde_json::Value>),
}

/// A position in a schema during the walk.
#[derive(Debug, Clone, Copy)]
enum Sch<'a> {
    Table(capstan_openapi::Schema<'static>),
    Json(&'a serde_json::Value, &'a serde_json::Value),
}

/// Where schemas of nested `apiVersion`/`kind` maps come from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Builtin,
    Custom(&'a serde_json::Value),
}

fn resolve<'a>(root: &'a serde_json::Value, n: &'a serde_json::Value) -> &'a serde_json::Value {
    let mut n = n;
    for _ in 0..32 {
        let Some(name) = n
            .get("$ref")
            .and_then(|r| r.as_str())
            .and_then(|r| r.strip_prefix("#/definitions/"))
        else {
            return n;
        };
        match root.get("definitions").and_then(|d| d.get(name)) {
            Some(x) => n = x,
            None => return n,
        }
    }
    n
}

impl<'a> Sch<'a> {
    fn field(self, f: &str) -> Option<Sch<'a>> {
        match self {
            Sch::Table(s) => capstan_openapi::builtin().field(s, f).map(Sch::Table),
            Sch::Json(root, n) => {
                let x = n
                    .get("properties")
                    .and_then(|p| p.get(f))
                    .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))?;
                Some(Sch::Json(root, resolve(root, x)))
            }
        }
    }
    fn elements(self) -> Option<Sch<'a>> {
        match self {
            Sch::Table(s) => capstan_openapi::builtin().elements(s).map(Sch::Table),
            Sch::Json(root, n) => {
                let is_array = match n.get("type") {
                    Some(serde_json::Value::String(t)) => t == "array",
                    Some(serde_json::Value::Array(t)) => {
                        t.len() == 1 && t[0].as_str() == Some("array")
                    }
                    _ => false,
                };
                if !is_array {
                    return None;
                }
                n.get("items").map(|x| Sch::Json(root, resolve(root, x)))
            }
        }
    }
    /// kyaml's `PatchStrategyAndKeyList` reduced to what merge2 uses: whether the list is
    /// associative (strategy includes `merge`) and its keys.
    fn list_keys(self) -> Option<Vec<String>> {
        match self {
            Sch::Table(capstan_openapi::Schema::List(l)) => l
                .is_associative()
                .then(|| l.merge_keys().into_iter().map(str::to_string).collect()),
            Sch::Table(_) => None,
            Sch::Json(_, n) => {
                let s = n.get("x-kubernetes-patch-strategy")?.as_str()?;
                if !s.split(',').any(|x| x == "merge") {
                    return None;
                }
                if let Some(keys) = n
                    .get("x-kubernetes-list-map-keys")
                    .and_then(|v| v.as_array())
                {
                    return Some(
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect(),
                    );
                }
                Some(
                    n.get("x-kubernetes-patch-merge-key")
                        .and_then(|v| v.as_str())
                        .map(|k| vec![k.to_string()])
                        .unwrap_or_default(),
                )
            }
        }
    }
}

impl<'a> Schema<'a> {
    /// The schema of the definition for a group/version/kind in a custom document.
    pub fn for_gvk(
        root: &'a serde_json::Value,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<Schema<'a>> {
        json_gvk(root, group, version, kind).map(|d| Schema::Custom(root, Some(d)))
    }
}

fn json_gvk<'a>(
    root: &'a serde_json::Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<&'a serde_json::Value> {
    let defs = root.get("definitions")?.as_object()?;
    defs.values().find(|d| {
        d.get("x-kubernetes-group-version-kind")
            .and_then(|x| x.as_array())
            .is_some_and(|gvks| {
                gvks.iter().any(|g| {
                    let s = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("");
                    s("group") == group && s("version") == version && s("kind") == kind
                })
            })
    })
}

/// kyaml's `Walker.GetSchema` for a node without one: the schema of its apiVersion/kind.
fn schema_of_meta<'a>(src: Source<'a>, nodes: [Option<&Node>; 2]) -> Option<Sch<'a>> {
    for n in nodes.into_iter().flatten() {
        let (Some(av), Some(kind)) = (n.str_at(&["apiVersion"]), n.str_at(&["kind"])) else {
            continue;
        };
        if av.is_empty() || kind.is_empty() {
            continue;
        }
        let found = match src {
            Source::Builtin => capstan_openapi::builtin()
                .for_api_version(av, kind)
                .map(Sch::Table),
            Source::Custom(root) => {
                let (g, v) = av.split_once('/').unwrap_or(("", av));
                json_gvk(root, g, v, kind).map(|d| Sch::Json(root, d))
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Apply `patch` to `dst` in place with kustomize's builtin schema. A top-level
/// `$patch: delete` makes `dst` null.
pub fn merge(dst: &mut Node, patch: &Node) -> Result<()> {
    merge_with(dst, patch, Schema::Builtin)
}

/// [`merge`] with an explicit schema.
pub fn merge_with(dst: &mut Node, patch: &Node, schema: Schema) -> Result<()> {
    let (src, sch) = match schema {
        Schema::Builtin | Schema::Unknown | Schema::Inferred => (Source::Builtin, None),
        Schema::Custom(root, n) => (Source::Custom(root), n.map(|n| Sch::Json(root, n))),
    };
    let w = Walker {
        src,
        infer: matches!(schema, Schema::Inferred),
    };
    let mut path = Vec::new();
    match w.walk(Some(dst), Some(patch), sch, false, &mut path)? {
        Out::Keep => {}
        Out::Set(n) => *dst = n,
        Out::Clear => *dst = Node::null(),
    }
    Ok(())
}

/// A patch value with directives and nulls removed (what lands when nothing is there).
pub fn clean(n: &Node) -> Node {
    let mut d = Node::null();
    let _ = merge_with(&mut d, n, Schema::Builtin);
    d
}

/// The result of walking one position.
enum Out {
    /// The destination, as changed in place.
    Keep,
    /// A new value.
    Set(Node),
    /// Remove the field (or element).
    Clear,
}

fn missing_or_null(n: Option<&Node>) -> bool {
    n.is_none_or(Node::is_null)
}

fn kind_name(n: &Node) -> &'static str {
    match n {
        Node::Scalar(_) => "ScalarNode",
        Node::Sequence(_) => "SequenceNode",
        Node::Mapping(_) => "MappingNode",
    }
}

fn is_empty_map(n: &Node) -> bool {
    matches!(n, Node::Mapping(m) if m.is_empty())
}

/// The text kyaml compares for a node (`yaml.Node.Value`): a scalar's text, "" otherwise.
fn value_text(n: &Node) -> &str {
    match n {
        Node::Scalar(s) => &s.value,
        _ => "",
    }
}

/// A map's `$patch` directive (kyaml's `determineMappingNodePatchStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

fn map_directive(m: &Mapping, path: &[String]) -> Result<Option<Directive>> {
    let Some(v) = m.get("$patch") else {
        return Ok(None);
    };
    match value_text(v) {
        "delete" => Ok(Some(Directive::Delete)),
        "replace" => Ok(Some(Directive::Replace)),
        "merge" => Ok(Some(Directive::Merge)),
        other => Err(kerr!(
            "unknown patch strategy '{other}' at {} (use $patch: merge, replace or delete)",
            show_path(path)
        )),
    }
}

/// A list's directive element (kyaml's `determineSequenceNodePatchStrategy`): the first map
/// element with a `$patch` key, when `$patch` is its only key.
fn seq_directive(s: &[Node], path: &[String]) -> Result<Option<(Directive, String)>> {
    let Some(m) = s
        .iter()
        .filter_map(Node::as_mapping)
        .find(|m| m.contains_key("$patch"))
    else {
        return Ok(None);
    };
    if m.len() > 1 {
        return Ok(None);
    }
    let d = map_directive(m, path)?;
    Ok(d.map(|d| (d, value_text(m.get("$patch").unwrap()).to_string())))
}

fn show_path(path: &[String]) -> String {
    if path.is_empty() {
        "the object's root".to_string()
    } else {
        format!("field {}", path.join("."))
    }
}

/// kyaml's `ElementSetter`: replace (or, with `element` None, delete) every element matching
/// all key/value pairs; append when none matched. Null and empty-map elements are dropped.
fn element_setter(
    list: &mut Vec<Node>,
    element: Option<&Node>,
    keys: &[String],
    values: &[String],
) {
    let empty = [String::new()];
    let keys: &[String] = if keys.is_empty() { &empty } else { keys };
    let mapping_setter = !keys[0].is_empty() && !values.is_empty() && !values[0].is_empty();
    let mut out = Vec::with_capacity(list.len() + 1);
    let mut found_any = false;
    for elem in std::mem::take(list) {
        if elem.is_null() || is_empty_map(&elem) {
            continue;
        }
        if !matches!(elem, Node::Mapping(_)) && mapping_setter {
            out.push(elem);
            continue;
        }
        let mut found = true;
        let mut matched = false;
        for (j, key) in keys.iter().enumerate() {
            if j < values.len() {
                matched = field_matches(&elem, key, &values[j]);
            }
            if !matched {
                found = false;
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                out.push(elem);
            }
            continue;
        }
        found_any = true;
        if let Some(e) = element {
            out.push(e.clone());
        }
    }
    *list = out;
    match element {
        Some(e) if !e.is_null() && !found_any => list.push(e.clone()),
        _ => {}
    }
}

/// kyaml's `FieldMatcher{Name, StringValue}` as `ElementSetter` uses it: an empty value
/// matches any value of the field.
fn field_matches(elem: &Node, key: &str, value: &str) -> bool {
    if key.is_empty() {
        return match elem {
            Node::Scalar(s) => s.value == value,
            _ => false,
        };
    }
    match elem {
        Node::Mapping(m) => m
            .entries
            .iter()
            .any(|(k, v)| k == key && (value.is_empty() || value_text(v) == value)),
        _ => false,
    }
}

/// kyaml's `ElementMatcher` (`RNode.ElementList`): the index of the first element whose keys
/// have exactly these values (primitive lists: whose text is the value).
fn element_list(list: &[Node], keys: &[String], values: &[String]) -> Option<usize> {
    if keys.is_empty() || keys[0].is_empty() {
        let v = values.first().map(String::as_str).unwrap_or("");
        return list.iter().position(|n| value_text(n) == v);
    }
    if keys.len() != values.len() {
        return None;
    }
    list.iter().position(|n| {
        let Node::Mapping(m) = n else {
            return false;
        };
        keys.iter().zip(values).all(|(k, v)| {
            m.entries
                .iter()
                .any(|(fk, fv)| fk == k && value_text(fv) == v)
        })
    })
}

/// kyaml's `validateKeys`: the keys some element has a value for (all keys when none has).
fn validate_keys(
    values_list: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let has = |i: usize| {
        values_list
            .iter()
            .any(|v| v.get(i).is_some_and(|x| !x.is_empty()))
    };
    if !(0..keys.len()).any(has) {
        return (keys.to_vec(), values.to_vec());
    }
    let mut vk = Vec::new();
    let mut vv = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if has(i) {
            vk.push(k.clone());
            if let Some(v) = values.get(i) {
                vv.push(v.clone());
            }
        }
    }
    (vk, vv)
}

/// kyaml's `match`: two key tuples match when they share a value and differ only where one
/// is empty; the result fills the empty ones.
fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut res = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            res.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if !x.is_empty() {
            res.push(x.clone());
        } else {
            res.push(y.clone());
        }
    }
    common.then_some(res)
}

fn merge_values(list: &mut [Vec<String>]) {
    for i in 0..list.len() {
        let v1 = list[i].clone();
        for j in 0..list.len() {
            if let Some(res) = match_values(&v1, &list[j]) {
                list[i] = res.clone();
                list[j] = res;
            }
        }
    }
}

struct Walker<'a> {
    src: Source<'a>,
    /// kyaml's `InferAssociativeLists`.
    infer: bool,
}

const MAX_DEPTH: usize = 512;

impl<'a> Walker<'a> {
    /// kyaml's `Walker.Walk` over (dest, origin). `alias` says the destination is a copy of
    /// the origin (kyaml walks the same node twice then): directives are removed from both.
    fn walk(
        &self,
        dest: Option<&mut Node>,
        origin: Option<&Node>,
        sch: Option<Sch<'a>>,
        alias: bool,
        path: &mut Vec<String>,
    ) -> Result<Out> {
        if path.len() > MAX_DEPTH {
            return Err(kerr!(
                "strategic merge patch nested deeper than {MAX_DEPTH} levels at {}",
                show_path(path)
            ));
        }
        let kind_of = dest
            .as_deref()
            .filter(|n| !n.is_null())
            .or(origin.filter(|n| !n.is_null()));
        let want = kind_of.map(kind_name);
        for n in [dest.as_deref(), origin].into_iter().flatten() {
            if let Some(w) = want {
                if !n.is_null() && kind_name(n) != w {
                    return Err(kerr!(
                        "wrong node kind: expected {w} but got {} at {} (the patch and the resource disagree on the field's type)",
                        kind_name(n),
                        show_path(path)
                    ));
                }
            }
        }
        match want {
            Some("ScalarNode") => Ok(match origin {
                Some(o) if o.is_null() => Out::Clear,
                Some(o) => Out::Set(o.clone()),
                None => Out::Keep,
            }),
            Some("SequenceNode") => {
                let keys = match sch {
                    Some(s) => s.list_keys(),
                    None if self.infer => self.inferred_key(dest.as_deref(), origin, path)?,
                    None => None,
                };
                match keys {
                    Some(keys) => self.walk_assoc(dest, origin, sch, keys, alias, path),
                    None => Ok(match origin {
                        Some(o) if o.is_null() => Out::Clear,
                        Some(o) => Out::Set(o.clone()),
                        None => Out::Keep,
                    }),
                }
            }
            _ => self.walk_map(dest, origin, sch, alias, path),
        }
    }

    /// kyaml's `IsAssociative` with inference, then `elementKey`: the key every non-empty
    /// side agrees on.
    fn inferred_key(
        &self,
        dest: Option<&Node>,
        origin: Option<&Node>,
        path: &[String],
    ) -> Result<Option<Vec<String>>> {
        let lists: Vec<&[Node]> = [dest, origin]
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_sequence().map(Vec::as_slice))
            .collect();
        if !lists.iter().any(|l| !associative_key(l).is_empty()) {
            return Ok(None);
        }
        let mut key = "";
        for l in lists.iter().filter(|l| !l.is_empty()) {
            let k = associative_key(l);
            if !key.is_empty() && key != k {
                return Err(kerr!(
                    "conflicting merge keys [{key},{k}] for {}",
                    show_path(path)
                ));
            }
            key = k;
        }
        if key.is_empty() {
            return Err(kerr!("no merge key found for {}", show_path(path)));
        }
        Ok(Some(vec![key.to_string()]))
    }

    fn walk_map(
        &self,
        dest: Option<&mut Node>,
        origin: Option<&Node>,
        sch: Option<Sch<'a>>,
        alias: bool,
        path: &mut Vec<String>,
    ) -> Result<Out> {
        let sch = sch.or_else(|| schema_of_meta(self.src, [dest.as_deref(), origin]));
        // The origin without its `$patch` (kyaml removes the directive from the patch).
        let elided = |o: &Node| -> Node {
            let mut o = o.clone();
            if let Some(m) = o.as_mapping_mut() {
                m.remove("$patch");
            }
            o
        };
        let dest_missing = missing_or_null(dest.as_deref());
        if dest_missing {
            let directive = match origin.and_then(Node::as_mapping) {
                Some(m) => map_directive(m, path).ok().flatten(),
                None => None,
            };
            if directive == Some(Directive::Delete) {
                return Ok(Out::Clear);
            }
            let Some(o) = origin else {
                // Only in the destination: a null stays.
                return Ok(Out::Keep);
            };
            if o.is_null() {
                return Ok(Out::Clear);
            }
            let o = elided(o);
            let mut d = o.clone();
            self.walk_fields(&mut d, Some(&o), sch, true, path)?;
            return Ok(Out::Set(d));
        }
        let dest = dest.unwrap();
        let Some(o) = origin else {
            self.walk_fields(dest, None, sch, alias, path)?;
            return Ok(Out::Keep);
        };
        if o.is_null() {
            return Ok(Out::Clear);
        }
        let directive = match o.as_mapping() {
            Some(m) => map_directive(m, path)?,
            None => None,
        };
        match directive {
            Some(Directive::Delete) => Ok(Out::Clear),
            Some(Directive::Replace) => {
                let o = elided(o);
                let mut d = o.clone();
                self.walk_fields(&mut d, Some(&o), sch, true, path)?;
                Ok(Out::Set(d))
            }
            Some(Directive::Merge) => {
                let o = elided(o);
                if alias {
                    if let Some(m) = dest.as_mapping_mut() {
                        m.remove("$patch");
                    }
                }
                self.walk_fields(dest, Some(&o), sch, alias, path)?;
                Ok(Out::Keep)
            }
            None => {
                self.walk_fields(dest, Some(o), sch, alias, path)?;
                Ok(Out::Keep)
            }
        }
    }

    /// kyaml's `walkMap` after the visit: every field of either side, in sorted order.
    fn walk_fields(
        &self,
        dest: &mut Node,
        origin: Option<&Node>,
        sch: Option<Sch<'a>>,
        alias: bool,
        path: &mut Vec<String>,
    ) -> Result<()> {
        let Node::Mapping(dm) = dest else {
            return Ok(());
        };
        let om = origin.and_then(Node::as_mapping);
        let mut names: Vec<&str> = dm.keys().collect();
        if let Some(om) = om {
            names.extend(om.keys());
        }
        names.sort_unstable();
        names.dedup();
        let names: Vec<String> = names.into_iter().map(str::to_string).collect();
        for key in names {
            let fs = sch.and_then(|s| s.field(&key));
            let ov = om.and_then(|m| m.get(&key));
            path.push(key.clone());
            let out = self.walk(dm.get_mut(&key), ov, fs, alias, path);
            path.pop();
            match out? {
                Out::Keep => {}
                Out::Clear => {
                    dm.remove(&key);
                }
                Out::Set(v) if v.is_null() => {
                    dm.remove(&key);
                }
                Out::Set(v) => {
                    dm.insert(key, v);
                }
            }
        }
        Ok(())
    }

    /// kyaml's `walkAssociativeSequence` (with merge2's `VisitList`).
    fn walk_assoc(
        &self,
        dest: Option<&mut Node>,
        origin: Option<&Node>,
        sch: Option<Sch<'a>>,
        keys: Vec<String>,
        alias: bool,
        path: &mut Vec<String>,
    ) -> Result<Out> {
        // The visit: add, clear, or the list's own directive.
        let mut owned: Vec<Node>;
        let mut is_owned = true;
        let (d, o, alias): (&mut Vec<Node>, Option<Cow<'_, [Node]>>, bool) =
            if missing_or_null(dest.as_deref()) {
                match origin {
                    Some(o) if !o.is_null() => {
                        let s = o.as_sequence().map(Vec::as_slice).unwrap_or(&[]);
                        owned = s.to_vec();
                        (&mut owned, Some(Cow::Borrowed(s)), true)
                    }
                    _ => return Ok(Out::Clear),
                }
            } else {
                let dest = dest.unwrap();
                is_owned = false;
                match origin {
                    Some(o) if o.is_null() => return Ok(Out::Clear),
                    Some(o) => {
                        let s = o.as_sequence().map(Vec::as_slice).unwrap_or(&[]);
                        match seq_directive(s, path)? {
                            Some((dir, value)) => {
                                let mut s2 = s.to_vec();
                                let key = ["$patch".to_string()];
                                element_setter(&mut s2, None, &key, std::slice::from_ref(&value));
                                match dir {
                                    Directive::Delete => return Ok(Out::Clear),
                                    Directive::Replace => {
                                        is_owned = true;
                                        owned = s2.clone();
                                        (&mut owned, Some(Cow::Owned(s2)), true)
                                    }
                                    Directive::Merge => {
                                        let dl = dest.as_sequence_mut().unwrap();
                                        if alias {
                                            element_setter(dl, None, &key, &[value]);
                                        }
                                        (dl, Some(Cow::Owned(s2)), alias)
                                    }
                                }
                            }
                            None => (
                                dest.as_sequence_mut().unwrap(),
                                Some(Cow::Borrowed(s)),
                                alias,
                            ),
                        }
                    }
                    None => (dest.as_sequence_mut().unwrap(), None, alias),
                }
            };
        let o: Option<&[Node]> = o.as_deref();
        let esch = sch.and_then(|s| s.elements());

        // The key tuples of every element, the patch's first (kyaml's ListIncreaseDirection
        // Prepend), without repeats.
        let mut values_list: Vec<Vec<String>> = Vec::new();
        let tuples = |l: &[Node], out: &mut Vec<Vec<String>>| {
            for e in l {
                let t: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        e.get(k)
                            .filter(|v| !v.is_null())
                            .map(|v| value_text(v).to_string())
                            .unwrap_or_default()
                    })
                    .collect();
                if t.is_empty() || out.contains(&t) {
                    continue;
                }
                out.push(t);
            }
        };
        if let Some(o) = o {
            tuples(o, &mut values_list);
        }
        tuples(d, &mut values_list);
        let keys: Vec<String> = if values_list.is_empty() && keys.is_empty() {
            let mut seen: Vec<String> = Vec::new();
            for e in o.unwrap_or(&[]).iter().chain(d.iter()) {
                let v = value_text(e).to_string();
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
            values_list = seen.into_iter().map(|v| vec![v]).collect();
            vec![String::new()]
        } else {
            keys
        };
        if keys.len() > 1 {
            merge_values(&mut values_list);
        }

        let mut items: Vec<Node> = Vec::new();
        let mut valid_keys: Vec<String> = keys.clone();
        for values in &values_list {
            if values.is_empty() {
                continue;
            }
            let (vk, vv) = validate_keys(&values_list, values, &keys);
            valid_keys = vk.clone();
            let (lk, lv) = validate_keys(std::slice::from_ref(&vv), &vv, &vk);
            let di = element_list(d, &lk, &lv);
            let oe = o
                .and_then(|o| element_list(o, &lk, &lv))
                .map(|i| &o.unwrap()[i]);
            path.push(format!("[{}]", lv.join(",")));
            let out = match di {
                Some(i) => self.walk(Some(&mut d[i]), oe, esch, alias, path),
                None => self.walk(None, oe, esch, alias, path),
            };
            path.pop();
            let mut val: Option<Node> = match out? {
                Out::Keep => di.map(|i| d[i].clone()),
                Out::Set(n) => Some(n),
                Out::Clear => None,
            };
            if val.as_ref().is_none_or(|v| v.is_null() || is_empty_map(v)) {
                element_setter(d, None, &vk, &vv);
                continue;
            }
            if let Some(Node::Mapping(m)) = val.as_mut() {
                for (i, k) in vk.iter().enumerate() {
                    let v = vv.get(i).cloned().unwrap_or_default();
                    if !k.is_empty() && !m.contains_key(k) && !v.is_empty() {
                        m.insert(k.clone(), Node::plain(v.clone()));
                        if let Some(i) = di {
                            if let Some(dm) = d[i].as_mapping_mut() {
                                dm.insert(k.clone(), Node::plain(v));
                            }
                        }
                    }
                }
            }
            element_setter(&mut items, val.as_ref(), &vk, &vv);
        }
        if values_list.is_empty() {
            return Ok(if is_owned {
                Out::Set(Node::Sequence(d.clone()))
            } else {
                Out::Keep
            });
        }
        // kyaml's appendListNode(itemsToBeAdded, dest, keys): the destination's elements
        // replace the matching items, or come after them.
        for elem in d.iter() {
            if valid_keys.first().is_none_or(|k| k.is_empty()) {
                let v = [value_text(elem).to_string()];
                element_setter(&mut items, Some(elem), &[String::new()], &v);
                continue;
            }
            let mut v: Vec<String> = Vec::new();
            for k in &valid_keys {
                match elem.as_mapping() {
                    Some(m) => match m.get(k) {
                        Some(x) => v.push(value_text(x).to_string()),
                        None => {
                            if !elem.is_null() {
                                items.push(elem.clone());
                            }
                        }
                    },
                    None => {
                        return Err(kerr!(
                            "wrong node kind: expected MappingNode but got {} in the list at {} (its elements pair up by {})",
                            kind_name(elem),
                            show_path(path),
                            valid_keys.join(", ")
                        ))
                    }
                }
            }
            if valid_keys.len() > 1 {
                element_setter(&mut items, None, &valid_keys, &v);
            }
            element_setter(&mut items, Some(elem), &valid_keys, &v);
        }
        Ok(Out::Set(Node::Sequence(items)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn y(s: &str) -> Node {
        capstan_yaml::parse_documents(s, "").unwrap().remove(0)
    }
    fn out(n: &Node) -> String {
        let mut n = n.clone();
        n.sort_keys_recursive();
        capstan_yaml::emit_document(&n)
    }
    /// `base` patched with `patch` (both YAML), keys sorted as kustomize prints them.
    fn apply(base: &str, patch: &str) -> String {
        let mut d = y(base);
        merge(&mut d, &y(patch)).unwrap();
        out(&d)
    }
    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n";

    /// Regression: autoscaling/v2 HorizontalPodAutoscaler is newer than kustomize's
    /// schema, so `spec.metrics` is replaced, never merged by `type` (which kept only the
    /// last metric of the patch).
    #[test]
    fn hpa_v2_spec_metrics_are_replaced() {
        let h = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\nspec:\n";
        let base = format!("{h}  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n      target:\n        averageUtilization: 50\n");
        let patch = format!("{h}  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n      target:\n        averageUtilization: 90\n  - type: Resource\n    resource:\n      name: memory\n      target:\n        averageUtilization: 80\n");
        let got = apply(&base, &patch);
        assert!(got.contains("name: cpu") && got.contains("averageUtilization: 90"));
        assert!(got.contains("name: memory") && got.contains("averageUtilization: 80"));
        assert!(!got.contains("averageUtilization: 50"));
    }

    #[test]
    fn deployment_containers_merge_by_name_patch_first() {
        let b = format!("{DEPLOY}spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: x\n      - name: b\n        image: y\n");
        let p = format!("{DEPLOY}spec:\n  template:\n    spec:\n      containers:\n      - name: b\n        image: z\n      - name: c\n        image: w\n");
        assert_eq!(
            apply(&b, &p),
            format!("{DEPLOY}spec:\n  template:\n    spec:\n      containers:\n      - image: z\n        name: b\n      - image: w\n        name: c\n      - image: x\n        name: a\n")
        );
    }

    #[test]
    fn deployment_env_and_volume_mounts_merge_by_name_and_mount_path() {
        let b = format!("{DEPLOY}spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        env:\n        - name: A\n          value: \"1\"\n        volumeMounts:\n        - name: v\n          mountPath: /a\n");
        let p = format!("{DEPLOY}spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        env:\n        - name: B\n          value: \"2\"\n        volumeMounts:\n        - name: v\n          mountPath: /b\n");
        let got = apply(&b, &p);
        assert!(
            got.contains("- name: B\n          value: \"2\"\n        - name: A\n"),
            "{got}"
        );
        assert!(
            got.contains("- mountPath: /b\n          name: v\n        - mountPath: /a\n"),
            "{got}"
        );
    }

    /// Pod `spec.containers[].ports`: keys containerPort+protocol (list-map keys), with
    /// kyaml's pairing of tuples that differ only by a missing protocol.
    #[test]
    fn pod_container_ports_pair_by_container_port_and_protocol() {
        let h = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    ports:\n";
        let b = format!("{h}    - containerPort: 80\n      name: a\n    - containerPort: 81\n      protocol: UDP\n    - containerPort: 82\n      protocol: TCP\n      name: c\n");
        let p = format!("{h}    - containerPort: 80\n      protocol: TCP\n      hostPort: 1\n    - containerPort: 81\n      protocol: TCP\n    - containerPort: 82\n      hostPort: 2\n");
        // What kubectl kustomize (kustomize v5.5) prints for this patch.
        assert_eq!(
            apply(&b, &p),
            format!("{h}    - containerPort: 81\n      protocol: TCP\n    - containerPort: 80\n      name: a\n    - containerPort: 81\n      protocol: UDP\n    - containerPort: 82\n      name: c\n      protocol: TCP\n").replace("  - name: a\n    ports:", "  - name: a\n    ports:")
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let h = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n";
        let got = apply(
            &format!("{h}  - port: 80\n    targetPort: 8080\n  - port: 443\n"),
            &format!("{h}  - port: 80\n    targetPort: 9090\n"),
        );
        assert_eq!(
            got,
            format!("{h}  - port: 80\n    targetPort: 9090\n  - port: 443\n")
        );
    }

    #[test]
    fn lists_without_merge_strategy_are_replaced() {
        // PodSpec.tolerations, Role.rules, RoleBinding.subjects, NetworkPolicy.spec.ingress.
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  tolerations:\n";
        assert_eq!(
            apply(&format!("{pod}  - key: a\n"), &format!("{pod}  - key: b\n")),
            format!("{pod}  - key: b\n")
        );
        let role =
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: r\nrules:\n";
        assert_eq!(
            apply(
                &format!("{role}- verbs: [get]\n"),
                &format!("{role}- verbs: [list]\n")
            ),
            format!("{role}- verbs:\n  - list\n")
        );
        let rb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: r\nsubjects:\n";
        assert_eq!(
            apply(
                &format!("{rb}- kind: User\n  name: a\n"),
                &format!("{rb}- kind: User\n  name: b\n")
            ),
            format!("{rb}- kind: User\n  name: b\n")
        );
        let np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: n\nspec:\n  ingress:\n";
        assert_eq!(
            apply(
                &format!("{np}  - ports:\n    - port: 1\n"),
                &format!("{np}  - ports:\n    - port: 2\n")
            ),
            format!("{np}  - ports:\n    - port: 2\n")
        );
    }

    #[test]
    fn custom_resources_have_no_schema_even_for_metadata() {
        let h = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
        let got = apply(
            &format!("{h}  finalizers: [a]\nspec:\n  items:\n  - name: a\n"),
            &format!("{h}  finalizers: [b]\nspec:\n  items:\n  - name: b\n"),
        );
        assert!(
            got.contains("  finalizers:\n  - b\n  name: w\nspec:\n  items:\n  - name: b\n"),
            "{got}"
        );
    }

    #[test]
    fn nested_api_version_and_kind_get_that_kinds_schema() {
        let h =
            "apiVersion: example.com/v1\nkind: Wrapper\nmetadata:\n  name: w\nspec:\n  inner:\n";
        let got = apply(
            &format!("{h}    apiVersion: v1\n    kind: Pod\n    spec:\n      containers:\n      - name: a\n"),
            &format!("{h}    spec:\n      containers:\n      - name: b\n"),
        );
        assert!(got.contains("- name: b\n      - name: a\n"), "{got}");
    }

    #[test]
    fn metadata_finalizers_merge_as_primitives_and_owner_references_by_uid() {
        let got = apply(
            &format!("{DEPLOY}  finalizers: [a, b]\n  ownerReferences:\n  - uid: u1\n"),
            &format!("{DEPLOY}  finalizers: [c, a]\n  ownerReferences:\n  - uid: u2\n"),
        );
        assert!(got.contains("finalizers:\n  - c\n  - a\n  - b\n"), "{got}");
        assert!(got.contains("- uid: u2\n  - uid: u1\n"), "{got}");
    }

    #[test]
    fn webhook_configurations_merge_webhooks_by_name() {
        let h = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: v\nwebhooks:\n";
        let got = apply(
            &format!("{h}- name: a\n  sideEffects: None\n- name: b\n"),
            &format!("{h}- name: a\n  timeoutSeconds: 5\n"),
        );
        assert_eq!(
            got,
            format!("{h}- name: a\n  sideEffects: None\n  timeoutSeconds: 5\n- name: b\n")
        );
    }

    #[test]
    fn batch_v1_cronjob_from_the_supplement_merges_containers() {
        let h = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n";
        let got = apply(
            &format!("{h}          - name: a\n"),
            &format!("{h}          - name: b\n"),
        );
        assert_eq!(
            got,
            format!("{h}          - name: b\n          - name: a\n")
        );
    }

    #[test]
    fn patch_directives_on_maps_and_elements() {
        let b = format!("{DEPLOY}spec:\n  selector:\n    matchLabels:\n      a: b\n  template:\n    spec:\n      containers:\n      - name: a\n        env:\n        - name: A\n        - name: B\n");
        let p = format!("{DEPLOY}spec:\n  selector:\n    $patch: replace\n    matchLabels:\n      c: d\n  template:\n    spec:\n      containers:\n      - name: a\n        env:\n        - name: A\n          $patch: delete\n        - name: X\n          $patch: delete\n");
        let got = apply(&b, &p);
        assert!(
            got.contains("matchLabels:\n      c: d\n  template"),
            "{got}"
        );
        assert!(
            got.contains("env:\n        - name: B\n        name: a\n"),
            "{got}"
        );
    }

    #[test]
    fn list_directive_elements_on_associative_lists() {
        let h =
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n";
        // `- $patch: replace` replaces the list; `- $patch: delete` clears it.
        let got = apply(
            &format!("{h}    env:\n    - name: A\n    volumeMounts:\n    - mountPath: /x\n"),
            &format!("{h}    env:\n    - $patch: delete\n    volumeMounts:\n    - $patch: replace\n    - mountPath: /y\n"),
        );
        assert_eq!(got, format!("{h}    volumeMounts:\n    - mountPath: /y\n"));
    }

    #[test]
    fn directive_elements_of_replaced_lists_stay_literal() {
        // PodSpec.tolerations is replaced whole, `$patch` element included (as kyaml does).
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  tolerations:\n";
        assert_eq!(
            apply(
                &format!("{pod}  - key: a\n"),
                &format!("{pod}  - $patch: replace\n  - key: b\n")
            ),
            format!("{pod}  - $patch: replace\n  - key: b\n")
        );
    }

    #[test]
    fn retain_keys_set_element_order_and_delete_from_primitive_list_stay_fields() {
        let got = apply(
            &format!("{DEPLOY}  finalizers: [a]\nspec:\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n"),
            &format!("{DEPLOY}  $deleteFromPrimitiveList/finalizers: [a]\nspec:\n  strategy:\n    $retainKeys: [type]\n    type: Recreate\n  $setElementOrder/x: []\n"),
        );
        assert!(
            got.contains("$deleteFromPrimitiveList/finalizers:\n  - a\n  finalizers:\n  - a\n"),
            "{got}"
        );
        assert!(got.contains("$retainKeys:\n    - type\n    rollingUpdate:\n      maxSurge: 1\n    type: Recreate"), "{got}");
        assert!(got.contains("$setElementOrder/x: []"), "{got}");
    }

    #[test]
    fn duplicate_keys_in_the_target_collapse_to_the_last() {
        let h = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    env:\n";
        let got = apply(
            &format!("{h}    - name: A\n      value: \"1\"\n    - name: A\n      value: \"2\"\n"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n",
        );
        assert!(
            got.ends_with("  - env:\n    - name: A\n      value: \"2\"\n    name: a\n"),
            "{got}"
        );
    }

    #[test]
    fn null_deletes_and_top_level_delete_clears() {
        let got = apply(
            &format!("{DEPLOY}spec:\n  replicas: 1\n  paused: true\n"),
            &format!("{DEPLOY}spec:\n  replicas: null\n"),
        );
        assert_eq!(got, format!("{DEPLOY}spec:\n  paused: true\n"));
        let mut d = y(DEPLOY);
        merge(&mut d, &y(&format!("$patch: delete\n{DEPLOY}"))).unwrap();
        assert!(d.is_null());
    }

    #[test]
    fn mismatched_node_kinds_and_unknown_directives_are_errors() {
        let mut d = y(&format!("{DEPLOY}spec:\n  replicas: 1\n"));
        let e = merge(
            &mut d,
            &y(&format!("{DEPLOY}spec:\n  replicas:\n    a: b\n")),
        )
        .unwrap_err();
        assert!(e.message.contains("spec.replicas"), "{e}");
        let mut d = y(&format!("{DEPLOY}spec:\n  replicas: 1\n"));
        let e = merge(&mut d, &y(&format!("{DEPLOY}spec:\n  $patch: nope\n"))).unwrap_err();
        assert!(e.message.contains("unknown patch strategy 'nope'"), "{e}");
    }

    /// Inference (used for an unfetchable remote `openapi.path`): a custom resource's list
    /// whose elements all have `name` merges by it.
    #[test]
    fn inferred_schema_merges_lists_by_associative_keys() {
        let h = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nitems:\n";
        let mut d = y(&format!("{h}- name: a\n  v: 1\n"));
        merge_with(&mut d, &y(&format!("{h}- name: b\n")), Schema::Inferred).unwrap();
        let got = out(&d);
        assert!(
            got.contains("items:\n- name: b\n- name: a\n  v: 1\n"),
            "{got}"
        );
    }

    #[test]
    fn custom_schema_uses_its_merge_keys() {
        let root: serde_json::Value = serde_json::from_str(r#"{"definitions":{"w":{"x-kubernetes-group-version-kind":[{"group":"example.com","version":"v1","kind":"Widget"}],"properties":{"items":{"type":"array","x-kubernetes-patch-strategy":"merge","x-kubernetes-patch-merge-key":"id","items":{"type":"object"}}}}}}"#).unwrap();
        let h = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nitems:\n";
        let mut d = y(&format!("{h}- id: a\n  v: 1\n"));
        let sch = Schema::for_gvk(&root, "example.com", "v1", "Widget").unwrap();
        merge_with(&mut d, &y(&format!("{h}- id: b\n")), sch).unwrap();
        let got = out(&d);
        assert!(got.contains("items:\n- id: b\n- id: a\n  v: 1\n"), "{got}");
    }
}
