//! The builtin transformers: namespace, prefix/suffix, labels, annotations, replicas,
//! images, and builtin transformer plugin configs.

use capstan_yaml::{Mapping, Node, Scalar, ScalarStyle, Tag};

use crate::accumulate::{apply_json6902, merge_generated, plugin_configs, Acc, Ctx, Selector};
use crate::error::{kerr, Result};
use crate::fieldspec::{apply_path, FieldSpec};
use crate::kustfile::Kustomization;
use crate::resource::Resource;
use crate::{json6902, replacements, smp};

/// Remove bookkeeping annotations before output, as kustomize's `RemoveBuildAnnotations`
/// does: kyaml's reader annotations (path, index, sequence indent; internal and legacy
/// spellings), whoever wrote them. capstan's own bookkeeping is kept outside the tree.
pub fn strip_internal(n: &mut Node) {
    crate::krm::remove_reader_annotations(n);
}

fn string_map(n: Option<&Node>) -> Vec<(String, String)> {
    match n {
        Some(Node::Mapping(m)) => m
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        _ => vec![],
    }
}

fn fieldspecs(n: Option<&Node>) -> Result<Option<Vec<FieldSpec>>> {
    match n {
        Some(Node::Sequence(s)) => Ok(Some(
            s.iter().map(FieldSpec::from_node).collect::<Result<_>>()?,
        )),
        _ => Ok(None),
    }
}

pub fn namespace(k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let Some(ns) = k.str("namespace") else {
        return Ok(());
    };
    let fss = acc.config.namespace.clone();
    set_namespace(acc, ns, &fss, false, "defaultOnly")
}

pub fn set_namespace(
    acc: &mut Acc,
    ns: &str,
    fss: &[FieldSpec],
    unset_only: bool,
    subjects_mode: &str,
) -> Result<()> {
    if ns.is_empty() {
        return Ok(());
    }
    // kustomize >= 5.8: what a helm chart rendered keeps the namespaces helm gave it.
    for r in acc.resources.iter_mut().filter(|r| !r.helm_generated) {
        r.store_previous_id();
        let kind = r.kind().to_string();
        for fs in fss {
            if !fs.matches(r) {
                continue;
            }
            let p: Vec<&str> = fs.path.iter().map(String::as_str).collect();
            if p == ["metadata", "namespace"] {
                if crate::resource::is_cluster_scoped_gk(&r.group(), &kind) {
                    continue;
                }
                if unset_only && !r.namespace().is_empty() {
                    continue;
                }
                r.set_namespace(ns);
            } else if p == ["metadata", "name"] && kind == "Namespace" {
                // Only the core Namespace is renamed to the namespace.
                if r.api_version() == "v1" {
                    r.set_name(ns);
                }
            } else if p == ["subjects"] {
                if let Some(Node::Sequence(subs)) = r.node.get_mut("subjects") {
                    for s in subs.iter_mut() {
                        let set = match subjects_mode {
                            "none" => false,
                            "allServiceAccounts" => s.str_at(&["kind"]) == Some("ServiceAccount"),
                            _ => s.str_at(&["name"]) == Some("default"),
                        };
                        if set {
                            if let Some(m) = s.as_mapping_mut() {
                                m.insert("namespace", Node::string(ns));
                            }
                        }
                    }
                }
            } else {
                apply_path(&mut r.node, &fs.path, fs.create, &mut |n| {
                    *n = Node::string(ns);
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

pub fn prefix_suffix(k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let prefix = k.str("namePrefix").unwrap_or("").to_string();
    let suffix = k.str("nameSuffix").unwrap_or("").to_string();
    if !prefix.is_empty() {
        let fss = acc.config.name_prefix.clone();
        apply_prefix_suffix(acc, &prefix, "", &fss)?;
    }
    if !suffix.is_empty() {
        let fss = acc.config.name_suffix.clone();
        apply_prefix_suffix(acc, "", &suffix, &fss)?;
    }
    Ok(())
}

fn skip_prefix(r: &Resource) -> bool {
    matches!(
        r.orig_kind.as_str(),
        "CustomResourceDefinition" | "Namespace"
    ) || (r.kind() == "APIService" && r.group() == "apiregistration.k8s.io")
}

pub fn apply_prefix_suffix(
    acc: &mut Acc,
    prefix: &str,
    suffix: &str,
    fss: &[FieldSpec],
) -> Result<()> {
    for r in acc.resources.iter_mut() {
        if skip_prefix(r) {
            continue;
        }
        for fs in fss {
            if !fs.matches(r) {
                continue;
            }
            if fs.path == ["metadata", "name"] {
                if !prefix.is_empty() {
                    r.prefixes.push(prefix.to_string());
                }
                if !suffix.is_empty() {
                    r.suffixes.push(suffix.to_string());
                }
                let n = format!("{prefix}{}{suffix}", r.name());
                r.set_name(&n);
            } else {
                apply_path(&mut r.node, &fs.path, fs.create, &mut |n| {
                    if let Some(s) = n.as_str() {
                        *n = Node::string(format!("{prefix}{s}{suffix}"));
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

fn add_pairs(r: &mut Resource, pairs: &[(String, String)], fss: &[FieldSpec]) -> Result<()> {
    for fs in fss {
        if !fs.matches(r) {
            continue;
        }
        apply_path(&mut r.node, &fs.path, fs.create, &mut |n| {
            if n.is_null() {
                *n = Node::mapping();
            }
            if let Some(m) = n.as_mapping_mut() {
                for (k, v) in pairs {
                    m.insert(k.clone(), Node::string(v.clone()));
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

pub fn labels(k: &Kustomization, acc: &mut Acc) -> Result<()> {
    // kustomize runs one transformer per `labels` entry, then the commonLabels one.
    for l in k.seq("labels").to_vec() {
        let pairs = string_map(l.get("pairs"));
        let sel = l.str_at(&["includeSelectors"]) == Some("true");
        let tmpl = l.str_at(&["includeTemplates"]) == Some("true");
        let vct = l.str_at(&["includeVolumeClaimTemplates"]) == Some("true");
        let mut fss = if sel {
            acc.config.common_labels.clone()
        } else if tmpl {
            acc.config.template_labels.clone()
        } else {
            vec![FieldSpec::new("", "", "metadata/labels", true)]
        };
        for fs in &acc.config.labels {
            if !fss.contains(fs) {
                fss.push(fs.clone());
            }
        }
        if vct {
            fss.push(FieldSpec::new(
                "StatefulSet",
                "apps",
                "spec/volumeClaimTemplates/metadata/labels",
                true,
            ));
        }
        if let Some(extra) = fieldspecs(l.get("fields"))? {
            fss.extend(extra);
        }
        for r in acc.resources.iter_mut() {
            add_pairs(r, &pairs, &fss)?;
        }
    }
    let common = string_map(k.get("commonLabels"));
    if !common.is_empty() {
        let fss = acc.config.common_labels.clone();
        for r in acc.resources.iter_mut() {
            add_pairs(r, &common, &fss)?;
        }
    }
    Ok(())
}

pub fn annotations(k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let common = string_map(k.get("commonAnnotations"));
    if common.is_empty() {
        return Ok(());
    }
    let fss = acc.config.common_annotations.clone();
    for r in acc.resources.iter_mut() {
        add_pairs(r, &common, &fss)?;
    }
    Ok(())
}

fn int_node(s: &str) -> Node {
    Node::Scalar(Scalar {
        value: s.to_string(),
        style: ScalarStyle::Any,
        tag: Tag::Int,
    })
}

pub fn replicas(k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for rep in k.seq("replicas").to_vec() {
        let fss = acc.config.replicas.clone();
        apply_replica(acc, &rep, &fss)?;
    }
    Ok(())
}

fn apply_replica(acc: &mut Acc, rep: &Node, fss: &[FieldSpec]) -> Result<()> {
    let name = rep.str_at(&["name"]).unwrap_or("");
    let count = rep
        .get("count")
        .and_then(|c| c.as_str())
        .unwrap_or("0")
        .to_string();
    let mut found = false;
    for r in acc.resources.iter_mut() {
        if !r.all_names().iter().any(|(n, _)| n == name) {
            continue;
        }
        for fs in fss {
            if fs.matches(r) {
                found = true;
                apply_path(&mut r.node, &fs.path, fs.create, &mut |n| {
                    *n = int_node(&count);
                    Ok(())
                })?;
            }
        }
    }
    if !found {
        // kustomize's ReplicaCountTransformer: a name no replicas field spec selects is
        // an error, not a no-op.
        let kinds: Vec<String> = fss
            .iter()
            .map(|fs| {
                if fs.kind.is_empty() {
                    "~G_~V_~K".to_string()
                } else {
                    fs.kind.clone()
                }
            })
            .collect();
        return Err(kerr!(
            "replicas: resource with name {name} does not match a config with the following kinds [{}]",
            kinds.join(" ")
        ));
    }
    Ok(())
}

/// Split an image reference into name, tag and digest, as kustomize's `image.Split`: the
/// first `:` or `@` after the first `/` (the registry host may carry a port) separates the
/// name; a tag runs up to the `@` of a digest.
pub fn split_image(s: &str) -> (String, String, String) {
    let slash = match s.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let search = &s[slash..];
    let at = search.find('@').map(|i| i + slash);
    let colon = search.find(':').map(|i| i + slash);
    match (colon, at) {
        (None, None) => (s.to_string(), String::new(), String::new()),
        (c, Some(a)) if c.is_none_or(|c| a < c) => {
            (s[..a].to_string(), String::new(), s[a + 1..].to_string())
        }
        (Some(c), Some(a)) => (
            s[..c].to_string(),
            s[c + 1..a].to_string(),
            s[a + 1..].to_string(),
        ),
        (Some(c), None) => (s[..c].to_string(), s[c + 1..].to_string(), String::new()),
        (None, Some(_)) => unreachable!("handled by the digest-only arm"),
    }
}

/// kustomize's `image.IsImageMatched` (v5.5): the `images[].name` is a Go regular expression
/// spliced unescaped into `^NAME(:TAG)?(@sha256:DIGEST)?$`, so `.` matches any character and
/// a name starting with `*` repeats the `^` (matching every image).
pub fn image_name_matches(image: &str, name: &str) -> bool {
    const TAIL: &str = "(?::[a-zA-Z0-9_.{}-]*)?(?:@sha256:[a-zA-Z0-9_.{}-]*)?$";
    // Go accepts a repetition operator right after `^` (it repeats the assertion); the Rust
    // regex syntax wants it grouped.
    let pattern = match name.as_bytes().first() {
        Some(b'*' | b'+' | b'?') => format!("(?:^){name}{TAIL}"),
        _ => format!("^{name}{TAIL}"),
    };
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, Option<regex::Regex>>> =
            Default::default();
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.entry(pattern.clone())
            .or_insert_with(|| regex::Regex::new(&pattern).ok())
            .as_ref()
            // A name Go cannot compile panics in kustomize; here it matches nothing.
            .is_some_and(|re| re.is_match(image))
    })
}

fn update_image(value: &str, img: &Node) -> Option<String> {
    let want = img.str_at(&["name"]).unwrap_or("");
    if !image_name_matches(value, want) {
        return None;
    }
    let (mut name, mut tag, mut digest) = split_image(value);
    let s = |k: &str| {
        img.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let (new_name, new_tag, new_digest) = (s("newName"), s("newTag"), s("digest"));
    if !new_name.is_empty() {
        name = new_name;
    }
    if !new_tag.is_empty() && !new_digest.is_empty() {
        tag = new_tag;
        digest = new_digest;
    } else if !new_tag.is_empty() {
        tag = new_tag;
        digest.clear();
    } else if !new_digest.is_empty() {
        tag.clear();
        digest = new_digest;
    }
    if !tag.is_empty() {
        name = format!("{name}:{tag}");
    }
    if !digest.is_empty() {
        name = format!("{name}@{digest}");
    }
    Some(name)
}

fn walk_containers(n: &mut Node, img: &Node) {
    match n {
        Node::Mapping(m) => {
            for (k, v) in m.entries.iter_mut() {
                if (k == "containers" || k == "initContainers") && matches!(v, Node::Sequence(_)) {
                    if let Node::Sequence(items) = v {
                        for it in items.iter_mut() {
                            if let Some(Node::Scalar(s)) = it.get_mut("image") {
                                if let Some(new) = update_image(&s.value, img) {
                                    *s = Scalar::string(new);
                                }
                            }
                        }
                    }
                }
                walk_containers(v, img);
            }
        }
        Node::Sequence(s) => s.iter_mut().for_each(|x| walk_containers(x, img)),
        _ => {}
    }
}

pub fn images(k: &Kustomization, acc: &mut Acc) -> Result<()> {
    for img in k.seq("images").to_vec() {
        let fss = acc.config.images.clone();
        apply_image(acc, &img, &fss)?;
    }
    Ok(())
}

fn apply_image(acc: &mut Acc, img: &Node, fss: &[FieldSpec]) -> Result<()> {
    for r in acc.resources.iter_mut() {
        // kustomize's legacy image filter leaves CustomResourceDefinitions alone.
        if r.kind() != "CustomResourceDefinition" {
            walk_containers(&mut r.node, img);
        }
        for fs in fss {
            if fs.matches(r) {
                apply_path(&mut r.node, &fs.path, false, &mut |n| {
                    if let Some(v) = n.as_str() {
                        if let Some(new) = update_image(v, img) {
                            *n = Node::string(new);
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

/// Run a builtin transformer given as a plugin configuration (`transformers:` entry).
pub fn builtin_transformer(
    ctx: &mut Ctx,
    k: &Kustomization,
    acc: &mut Acc,
    cfg: &Node,
) -> Result<()> {
    let kind = cfg.str_at(&["kind"]).unwrap_or("");
    let fss = fieldspecs(cfg.get("fieldSpecs"))?;
    match kind {
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            let p = cfg.str_at(&["prefix"]).unwrap_or("");
            let s = cfg.str_at(&["suffix"]).unwrap_or("");
            let fss = fss.unwrap_or_else(|| vec![FieldSpec::new("", "", "metadata/name", false)]);
            apply_prefix_suffix(acc, p, s, &fss)
        }
        "LabelTransformer" => {
            let pairs = string_map(cfg.get("labels"));
            let fss = fss.unwrap_or_default();
            for r in acc.resources.iter_mut() {
                add_pairs(r, &pairs, &fss)?;
            }
            Ok(())
        }
        "AnnotationsTransformer" => {
            let pairs = string_map(cfg.get("annotations"));
            let fss = fss.unwrap_or_default();
            for r in acc.resources.iter_mut() {
                add_pairs(r, &pairs, &fss)?;
            }
            Ok(())
        }
        "NamespaceTransformer" => {
            let ns = cfg
                .str_at(&["metadata", "namespace"])
                .unwrap_or("")
                .to_string();
            let fss = fss.unwrap_or_else(|| acc.config.namespace.clone());
            let unset_only = cfg.str_at(&["unsetOnly"]) == Some("true");
            let mode = cfg
                .str_at(&["setRoleBindingSubjects"])
                .unwrap_or("defaultOnly")
                .to_string();
            set_namespace(acc, &ns, &fss, unset_only, &mode)
        }
        "ImageTagTransformer" => {
            let img = cfg.get("imageTag").cloned().unwrap_or_else(Node::mapping);
            apply_image(acc, &img, &fss.unwrap_or_default())
        }
        "ReplicaCountTransformer" => {
            let rep = cfg.get("replica").cloned().unwrap_or_else(Node::mapping);
            let fss = fss.unwrap_or_else(|| acc.config.replicas.clone());
            apply_replica(acc, &rep, &fss)
        }
        "ReplacementTransformer" => {
            for r in cfg
                .get("replacements")
                .and_then(|r| r.as_sequence())
                .cloned()
                .unwrap_or_default()
            {
                replacements::apply(&mut acc.resources, &r)?;
            }
            Ok(())
        }
        "PatchTransformer" => {
            let mut entry = Mapping::new();
            for key in ["path", "patch", "target", "options"] {
                if let Some(v) = cfg.get(key) {
                    entry.insert(key, v.clone());
                }
            }
            let mut kk = k.clone();
            kk.node = Node::Mapping(Mapping {
                entries: vec![("patches".into(), Node::Sequence(vec![Node::Mapping(entry)]))],
            });
            crate::accumulate::accumulate_patches_only(ctx, &kk, acc)
        }
        "PatchStrategicMergeTransformer" => {
            let mut list = Vec::new();
            if let Some(Node::Sequence(paths)) = cfg.get("paths") {
                list.extend(paths.iter().cloned());
            }
            if let Some(p) = cfg.get("patches") {
                list.push(p.clone());
            }
            let mut kk = k.clone();
            kk.node = Node::Mapping(Mapping {
                entries: vec![("patchesStrategicMerge".into(), Node::Sequence(list))],
            });
            crate::accumulate::accumulate_patches_only(ctx, &kk, acc)
        }
        "PatchJson6902Transformer" => {
            let target = cfg.get("target").cloned().unwrap_or_else(Node::mapping);
            let ops = if let Some(p) = cfg.str_at(&["path"]) {
                let (path, text) = crate::accumulate::read_file(ctx, &k.dir, p)?;
                json6902::parse_ops(&text, &path.display().to_string())?
            } else if let Some(p) = cfg.str_at(&["jsonOp"]) {
                json6902::parse_ops(p, "jsonOp")?
            } else {
                vec![]
            };
            let sel = Selector::from_node(&target)?;
            for r in acc.resources.iter_mut() {
                if sel.matches(r) {
                    apply_json6902(r, &ops)?;
                }
            }
            Ok(())
        }
        "ConfigMapGenerator" | "SecretGenerator" => {
            for r in crate::generators::builtin_generator(ctx, &k.dir, cfg)? {
                merge_generated(acc, r)?;
            }
            Ok(())
        }
        _ => {
            let r = Resource::new(cfg.clone());
            let _ = (plugin_configs, smp::clean);
            Err(kerr!("unable to load builtin {}", r.id().gvk_string()))
        }
    }
}
