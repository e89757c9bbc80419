//! Compare two revisions: cluster -> unit -> object.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ignore::{self, FieldPath};
use crate::model::{ClusterSnapshot, ObjectKey, RevisionSnapshot, UnitSnapshot};
use crate::notes::{self, Note};

/// How to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Fields left out of the comparison (`--ignore-field`, plus the defaults).
    pub ignores: Vec<FieldPath>,
    /// Lines of context in the unified diffs.
    pub context: usize,
    /// Also every object's (masked) manifests at both revisions, unchanged objects
    /// included (as [`Change::Unchanged`]), and each unit's side ([`UnitSide`]): the
    /// full structure for other tools (`capstan diff -o json --objects`).
    pub include_objects: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            ignores: ignore::defaults(),
            context: 3,
            include_objects: false,
        }
    }
}

/// What happened to a cluster, unit or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Added,
    Removed,
    Changed,
    Renamed,
    /// Fails to render at the target.
    Failed,
    Unchanged,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Renamed => "renamed",
            Change::Failed => "failed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub base: String,
    pub target: String,
    pub summary: Summary,
    pub clusters: Vec<ClusterDiff>,
}

/// Counts over every cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub clusters: usize,
    pub clusters_changed: usize,
    pub units_added: usize,
    pub units_removed: usize,
    pub units_changed: usize,
    pub units_renamed: usize,
    pub objects_added: usize,
    pub objects_changed: usize,
    pub objects_removed: usize,
    /// Units (and clusters) that fail at the target.
    pub failures: usize,
}

impl Summary {
    fn add(&mut self, o: &Summary) {
        self.clusters += o.clusters;
        self.clusters_changed += o.clusters_changed;
        self.units_added += o.units_added;
        self.units_removed += o.units_removed;
        self.units_changed += o.units_changed;
        self.units_renamed += o.units_renamed;
        self.objects_added += o.objects_added;
        self.objects_changed += o.objects_changed;
        self.objects_removed += o.objects_removed;
        self.failures += o.failures;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDiff {
    pub name: String,
    pub path: String,
    pub change: Change,
    pub summary: Summary,
    /// Cluster-wide errors at the target (a missing path, a dependency cycle).
    pub errors: Vec<String>,
    pub units: Vec<UnitDiff>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitDiff {
    pub id: String,
    pub kind: String,
    pub source: String,
    pub change: Change,
    pub notes: Vec<Note>,
    pub objects: Vec<ObjectDiff>,
    /// With [`CompareOptions::include_objects`]: the unit at the base (absent: added;
    /// a renamed unit's old id) and at the target (absent: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<UnitSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<UnitSide>,
}

/// A unit at one revision ([`CompareOptions::include_objects`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitSide {
    pub id: String,
    pub source: String,
    /// The unit's own object (an Argo CD Application as declared or generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl UnitSide {
    fn of(u: &UnitSnapshot) -> UnitSide {
        UnitSide {
            id: u.id.clone(),
            source: u.source.clone(),
            manifest: u.manifest.clone(),
            error: u.error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    pub key: ObjectKey,
    /// `apps/v1`
    pub api_version: String,
    pub change: Change,
    /// Removed objects: deleted by prune (false: prune is off, or disabled on the object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<bool>,
    pub notes: Vec<Note>,
    /// Unified diff of the YAML (Secret values masked); whole object for added/removed.
    pub diff: String,
    /// With [`CompareOptions::include_objects`]: the object at the base and at the
    /// target as rendered (Secret values masked; ignored fields kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
}

impl ObjectDiff {
    pub fn title(&self) -> String {
        format!("{} {}", self.change.word(), self.key)
    }
}

impl Report {
    /// Changes at all?
    pub fn has_changes(&self) -> bool {
        let s = &self.summary;
        s.clusters_changed > 0
    }
    /// Failures at the target?
    pub fn has_failures(&self) -> bool {
        self.summary.failures > 0
    }
    /// `0` no change, `1` changes, `2` failures at the target.
    pub fn exit_code(&self) -> u8 {
        if self.has_failures() {
            2
        } else if self.has_changes() {
            1
        } else {
            0
        }
    }
    /// Keep only changed clusters and units (`--changed-only`).
    pub fn changed_only(mut self) -> Report {
        self.clusters.retain(|c| c.change != Change::Unchanged);
        for c in &mut self.clusters {
            c.units.retain(|u| u.change != Change::Unchanged);
        }
        self
    }
}

/// Compare two revisions.
pub fn compare(
    base: &RevisionSnapshot,
    target: &RevisionSnapshot,
    opts: &CompareOptions,
) -> Report {
    let mut names: Vec<&str> = Vec::new();
    for c in target.clusters.iter().chain(&base.clusters) {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    names.sort();
    let mut clusters = Vec::new();
    let mut summary = Summary::default();
    for name in names {
        let b = base.clusters.iter().find(|c| c.name == name);
        let t = target.clusters.iter().find(|c| c.name == name);
        let cd = compare_cluster(b, t, opts);
        summary.add(&cd.summary);
        clusters.push(cd);
    }
    Report {
        base: base.label.clone(),
        target: target.label.clone(),
        summary,
        clusters,
    }
}

fn empty_cluster(like: &ClusterSnapshot) -> ClusterSnapshot {
    ClusterSnapshot {
        name: like.name.clone(),
        path: like.path.clone(),
        ..Default::default()
    }
}

/// Compare one cluster (absent on one side: added or removed).
pub fn compare_cluster(
    base: Option<&ClusterSnapshot>,
    target: Option<&ClusterSnapshot>,
    opts: &CompareOptions,
) -> ClusterDiff {
    let like = target.or(base).expect("a cluster on one side at least");
    let empty = empty_cluster(like);
    let b = base.unwrap_or(&empty);
    let t = target.unwrap_or(&empty);
    let mut units: Vec<UnitDiff> = Vec::new();
    let mut removed: Vec<&UnitSnapshot> = Vec::new();
    for bu in &b.units {
        if !t.units.iter().any(|u| u.id == bu.id) {
            removed.push(bu);
        }
    }
    let mut renamed_from: BTreeMap<String, String> = BTreeMap::new();
    for tu in &t.units {
        if b.units.iter().any(|u| u.id == tu.id) || tu.error.is_some() {
            continue;
        }
        let out = normalised_set(&tu.objects, opts);
        if let Some(pos) = removed.iter().position(|r| {
            r.error.is_none() && r.kind == tu.kind && normalised_set(&r.objects, opts) == out
        }) {
            let r = removed.remove(pos);
            renamed_from.insert(tu.id.clone(), r.id.clone());
        }
    }
    for tu in &t.units {
        let bu = b.units.iter().find(|u| u.id == tu.id);
        let mut ud = match renamed_from.get(&tu.id) {
            Some(from) => {
                let old = b
                    .units
                    .iter()
                    .find(|u| u.id == *from)
                    .expect("a removed unit");
                let mut ud = UnitDiff {
                    id: tu.id.clone(),
                    kind: tu.kind.clone(),
                    source: tu.source.clone(),
                    change: Change::Renamed,
                    notes: vec![Note::Renamed { from: from.clone() }],
                    objects: Vec::new(),
                    base: None,
                    target: None,
                };
                if opts.include_objects {
                    ud.base = Some(UnitSide::of(old));
                    ud.target = Some(UnitSide::of(tu));
                    let bmap: BTreeMap<ObjectKey, &Value> =
                        old.objects.iter().map(|o| (ObjectKey::of(o), o)).collect();
                    for t in &tu.objects {
                        let key = ObjectKey::of(t);
                        let b = bmap.get(&key).copied();
                        ud.objects.push(unchanged(key, b, t));
                    }
                }
                ud
            }
            None => compare_unit(bu, Some(tu), opts),
        };
        if let Some(bu) = bu {
            edge_notes(bu, tu, &mut ud);
        }
        units.push(ud);
    }
    for bu in removed {
        units.push(compare_unit(Some(bu), None, opts));
    }
    let errors: Vec<String> = t.errors.clone();
    let mut summary = Summary {
        clusters: 1,
        ..Default::default()
    };
    for u in &units {
        match u.change {
            Change::Added => summary.units_added += 1,
            Change::Removed => summary.units_removed += 1,
            Change::Changed => summary.units_changed += 1,
            Change::Renamed => summary.units_renamed += 1,
            Change::Failed => summary.failures += 1,
            Change::Unchanged => {}
        }
        for o in &u.objects {
            match o.change {
                Change::Added => summary.objects_added += 1,
                Change::Removed => summary.objects_removed += 1,
                Change::Changed => summary.objects_changed += 1,
                _ => {}
            }
        }
    }
    let new_errors = errors.iter().any(|e| !b.errors.contains(e)) || b.errors.len() != errors.len();
    summary.failures += errors.len();
    let change = match (base, target) {
        (None, Some(_)) => Change::Added,
        (Some(_), None) => Change::Removed,
        _ if summary.failures > 0 => Change::Failed,
        _ if units.iter().any(|u| u.change != Change::Unchanged) || new_errors => Change::Changed,
        _ => Change::Unchanged,
    };
    if change != Change::Unchanged {
        summary.clusters_changed = 1;
    }
    ClusterDiff {
        name: like.name.clone(),
        path: like.path.clone(),
        change,
        summary,
        errors,
        units,
    }
}

fn edge_notes(b: &UnitSnapshot, t: &UnitSnapshot, ud: &mut UnitDiff) {
    let be: BTreeSet<&(String, String)> = b.depends_on.iter().collect();
    let te: BTreeSet<&(String, String)> = t.depends_on.iter().collect();
    let mut any = false;
    for (on, reason) in te.difference(&be) {
        ud.notes.push(Note::DependencyAdded {
            on: on.clone(),
            reason: reason.clone(),
        });
        any = true;
    }
    for (on, reason) in be.difference(&te) {
        ud.notes.push(Note::DependencyRemoved {
            on: on.clone(),
            reason: reason.clone(),
        });
        any = true;
    }
    if any && ud.change == Change::Unchanged {
        ud.change = Change::Changed;
    }
}

fn normalised_set(objects: &[Value], opts: &CompareOptions) -> BTreeMap<ObjectKey, Value> {
    objects
        .iter()
        .map(|o| (ObjectKey::of(o), ignore::strip(o, &opts.ignores)))
        .collect()
}

fn api_version(o: &Value) -> String {
    o.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Objects the cluster keeps when prune runs: `kustomize.toolkit.fluxcd.io/prune: disabled`
/// (and capstan's own annotation).
fn prune_disabled(o: &Value) -> bool {
    capstan_apply::objects::prune_disabled(o)
}

/// Compare one unit (absent on one side: added or removed).
pub fn compare_unit(
    base: Option<&UnitSnapshot>,
    target: Option<&UnitSnapshot>,
    opts: &CompareOptions,
) -> UnitDiff {
    let like = target.or(base).expect("a unit on one side at least");
    let mut ud = UnitDiff {
        id: like.id.clone(),
        kind: like.kind.clone(),
        source: like.source.clone(),
        change: Change::Unchanged,
        notes: Vec::new(),
        objects: Vec::new(),
        base: None,
        target: None,
    };
    if opts.include_objects {
        ud.base = base.map(UnitSide::of);
        ud.target = target.map(UnitSide::of);
    }
    // Failures first: a failed render says nothing about its objects.
    if let Some(t) = target {
        if let Some(err) = &t.error {
            ud.change = Change::Failed;
            ud.notes.push(match base {
                Some(b) if b.error.is_some() => Note::StillFails { error: err.clone() },
                _ => Note::NewlyFails { error: err.clone() },
            });
            return ud;
        }
    }
    if let (Some(b), Some(_)) = (base, target) {
        if let Some(err) = &b.error {
            ud.notes.push(Note::NowRenders { error: err.clone() });
        }
    }
    if let (Some(b), Some(t)) = (base, target) {
        chart_notes(b, t, &mut ud.notes);
    }
    let empty = Vec::new();
    let bobjs = base.map(|b| &b.objects).unwrap_or(&empty);
    let tobjs = target.map(|t| &t.objects).unwrap_or(&empty);
    let bmap: BTreeMap<ObjectKey, &Value> = bobjs.iter().map(|o| (ObjectKey::of(o), o)).collect();
    let tkeys: BTreeSet<ObjectKey> = tobjs.iter().map(ObjectKey::of).collect();
    let prune = base.map(|b| b.prune).unwrap_or(true);
    for t in tobjs {
        let key = ObjectKey::of(t);
        match bmap.get(&key) {
            None => ud
                .objects
                .push(added_or_removed(key, t, Change::Added, None, opts)),
            Some(b) => match changed(key.clone(), b, t, opts) {
                Some(d) => ud.objects.push(d),
                None if opts.include_objects => ud.objects.push(unchanged(key, Some(b), t)),
                None => {}
            },
        }
    }
    let mut pruned_count = 0;
    let mut kept_count = 0;
    for b in bobjs {
        let key = ObjectKey::of(b);
        if !tkeys.contains(&key) {
            let pruned = prune && !prune_disabled(b);
            if pruned {
                pruned_count += 1;
            } else {
                kept_count += 1;
            }
            ud.objects.push(added_or_removed(
                key,
                b,
                Change::Removed,
                Some(pruned),
                opts,
            ));
        }
    }
    if pruned_count > 0 {
        ud.notes.push(Note::Prune {
            objects: pruned_count,
            pruned: true,
        });
    }
    if kept_count > 0 {
        ud.notes.push(Note::Prune {
            objects: kept_count,
            pruned: false,
        });
    }
    let any_object = ud.objects.iter().any(|o| o.change != Change::Unchanged);
    ud.change = match (base, target) {
        (None, _) => Change::Added,
        (_, None) => Change::Removed,
        _ if any_object || !ud.notes.is_empty() => Change::Changed,
        _ => Change::Unchanged,
    };
    ud
}

fn chart_notes(b: &UnitSnapshot, t: &UnitSnapshot, notes: &mut Vec<Note>) {
    if let (Some((bn, bv)), Some((tn, tv))) = (&b.chart, &t.chart) {
        if bv != tv && !(bv.is_empty() && tv.is_empty()) {
            notes.push(Note::ChartVersion {
                chart: tn.clone(),
                from: if bn != tn {
                    format!("{bn} {bv}")
                } else {
                    bv.clone()
                },
                to: tv.clone(),
            });
            return;
        }
    }
    // A chart from the repository declares no version: its objects' helm.sh/chart
    // labels (name-version) tell.
    let (bl, tl) = (
        notes::chart_labels(&b.objects),
        notes::chart_labels(&t.objects),
    );
    if bl != tl && !bl.is_empty() && !tl.is_empty() {
        notes.push(Note::ChartVersion {
            chart: b.chart.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
            from: bl.join(", "),
            to: tl.join(", "),
        });
    }
}

/// Masked YAML of one object (Secret values never leave this function).
fn yaml(o: &Value) -> String {
    let mut s = capstan_engine::to_yaml(std::slice::from_ref(o));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn added_or_removed(
    key: ObjectKey,
    obj: &Value,
    change: Change,
    pruned: Option<bool>,
    opts: &CompareOptions,
) -> ObjectDiff {
    let masked = capstan_apply::objects::mask_secret(obj);
    let text = yaml(&masked);
    let (old, new) = if change == Change::Added {
        (String::new(), text)
    } else {
        (text, String::new())
    };
    let mut notes = Vec::new();
    let (b, a) = if change == Change::Added {
        (None, Some(obj))
    } else {
        (Some(obj), None)
    };
    if let Some(n) = notes::crd_note(b, a) {
        notes.push(n);
    }
    let manifest = opts.include_objects.then_some(masked);
    let (base, target) = if change == Change::Added {
        (None, manifest)
    } else {
        (manifest, None)
    };
    ObjectDiff {
        api_version: api_version(obj),
        diff: unified(&key, &old, &new, opts.context),
        key,
        change,
        pruned,
        notes,
        base,
        target,
    }
}

/// An object that did not change ([`CompareOptions::include_objects`]); `b`: its base
/// manifest (a renamed unit's may lack one).
fn unchanged(key: ObjectKey, b: Option<&Value>, t: &Value) -> ObjectDiff {
    let (bm, tm) = capstan_apply::objects::mask_secret_pair(b, t);
    ObjectDiff {
        api_version: api_version(t),
        key,
        change: Change::Unchanged,
        pruned: None,
        notes: Vec::new(),
        diff: String::new(),
        base: bm,
        target: Some(tm),
    }
}

fn changed(key: ObjectKey, b: &Value, t: &Value, opts: &CompareOptions) -> Option<ObjectDiff> {
    if b == t {
        return None;
    }
    let bs = ignore::strip(b, &opts.ignores);
    let ts = ignore::strip(t, &opts.ignores);
    if bs == ts {
        return None;
    }
    let (bm, tm) = capstan_apply::objects::mask_secret_pair(Some(&bs), &ts);
    let old = yaml(&bm.unwrap_or(Value::Null));
    let new = yaml(&tm);
    let mut notes = notes::image_notes(&bs, &ts);
    notes.extend(notes::immutable_notes(&bs, &ts));
    if let Some(n) = notes::crd_note(Some(&bs), Some(&ts)) {
        notes.push(n);
    }
    let diff = if old == new {
        // Only key order (or a masked value that is the same) differs.
        String::new()
    } else {
        unified(&key, &old, &new, opts.context)
    };
    if diff.is_empty() && notes.is_empty() && !is_secret(t) {
        return None;
    }
    let (base, target) = if opts.include_objects {
        let (bm, tm) = capstan_apply::objects::mask_secret_pair(Some(b), t);
        (bm, Some(tm))
    } else {
        (None, None)
    };
    Some(ObjectDiff {
        api_version: api_version(t),
        key,
        change: Change::Changed,
        pruned: None,
        notes,
        diff,
        base,
        target,
    })
}

fn is_secret(o: &Value) -> bool {
    o.get("kind").and_then(Value::as_str) == Some("Secret")
}

fn unified(key: &ObjectKey, old: &str, new: &str, context: usize) -> String {
    let name = key.to_string().replace(' ', "/");
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(context)
        .header(&format!("base/{name}"), &format!("target/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unit(id: &str, objects: Vec<Value>) -> UnitSnapshot {
        UnitSnapshot {
            id: id.into(),
            kind: "Kustomization".into(),
            source: "./apps".into(),
            objects,
            prune: true,
            ..Default::default()
        }
    }

    fn cm(name: &str, v: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": v}})
    }

    fn rev(units: Vec<UnitSnapshot>) -> RevisionSnapshot {
        RevisionSnapshot {
            label: "r".into(),
            clusters: vec![ClusterSnapshot {
                name: "c".into(),
                path: "clusters/c".into(),
                units,
                errors: vec![],
            }],
        }
    }

    #[test]
    fn added_removed_changed_objects() {
        let b = rev(vec![unit("u", vec![cm("a", "1"), cm("b", "1")])]);
        let t = rev(vec![unit("u", vec![cm("a", "2"), cm("c", "1")])]);
        let r = compare(&b, &t, &CompareOptions::default());
        let u = &r.clusters[0].units[0];
        let changes: Vec<(Change, &str)> = u
            .objects
            .iter()
            .map(|o| (o.change, o.key.name.as_str()))
            .collect();
        assert_eq!(
            changes,
            vec![
                (Change::Changed, "a"),
                (Change::Added, "c"),
                (Change::Removed, "b")
            ]
        );
        assert!(
            u.objects[0].diff.contains("-  k: \"1\"") || u.objects[0].diff.contains("-  k: '1'"),
            "{}",
            u.objects[0].diff
        );
        assert_eq!(u.objects[2].pruned, Some(true));
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.summary.objects_removed, 1);
    }

    #[test]
    fn identical_revisions_exit_zero() {
        let b = rev(vec![unit("u", vec![cm("a", "1")])]);
        let r = compare(&b, &b, &CompareOptions::default());
        assert_eq!(r.exit_code(), 0);
        assert!(r.changed_only().clusters.is_empty());
    }

    #[test]
    fn renamed_unit_with_same_output() {
        let b = rev(vec![unit("old", vec![cm("a", "1")])]);
        let t = rev(vec![unit("new", vec![cm("a", "1")])]);
        let r = compare(&b, &t, &CompareOptions::default());
        let u = &r.clusters[0].units;
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].change, Change::Renamed);
        assert_eq!(u[0].notes, vec![Note::Renamed { from: "old".into() }]);
    }

    #[test]
    fn newly_failing_unit_prunes_nothing() {
        let b = rev(vec![unit("u", vec![cm("a", "1")])]);
        let mut f = unit("u", vec![]);
        f.error = Some("boom".into());
        let t = rev(vec![f]);
        let r = compare(&b, &t, &CompareOptions::default());
        let u = &r.clusters[0].units[0];
        assert_eq!(u.change, Change::Failed);
        assert!(u.objects.is_empty());
        assert!(u.notes[0].to_string().contains("nothing will be pruned"));
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn secret_values_are_masked_changed_keys_shown() {
        let s = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": v, "user": "admin-user"}});
        let b = rev(vec![unit("u", vec![s("hunter2-old")])]);
        let t = rev(vec![unit("u", vec![s("hunter2-new")])]);
        let r = compare(&b, &t, &CompareOptions::default());
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("admin-user"), "{text}");
        let d = &r.clusters[0].units[0].objects[0].diff;
        assert!(
            d.contains("password: '*** (after)'") || d.contains("password: \"*** (after)\""),
            "{d}"
        );
    }

    #[test]
    fn default_ignores_hide_chart_label_noise() {
        let o = |c: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"helm.sh/chart": c}}});
        let b = rev(vec![unit("u", vec![o("x-1")])]);
        let t = rev(vec![unit("u", vec![o("x-2")])]);
        let r = compare(&b, &t, &CompareOptions::default());
        // No object differs; the chart version change is still told.
        assert!(r.clusters[0].units[0].objects.is_empty());
        assert!(matches!(
            &r.clusters[0].units[0].notes[..],
            [Note::ChartVersion { .. }]
        ));
        let none = CompareOptions {
            ignores: vec![],
            context: 3,
            include_objects: false,
        };
        assert_eq!(compare(&b, &t, &none).clusters[0].units[0].objects.len(), 1);
    }

    #[test]
    fn dependency_edges_added_and_removed() {
        let mut b = unit("u", vec![]);
        b.depends_on = vec![("infra".into(), "dependsOn".into())];
        let mut t = unit("u", vec![]);
        t.depends_on = vec![("crds".into(), "dependsOn".into())];
        let r = compare(&rev(vec![b]), &rev(vec![t]), &CompareOptions::default());
        let u = &r.clusters[0].units[0];
        assert_eq!(u.change, Change::Changed);
        assert_eq!(u.notes.len(), 2);
    }

    #[test]
    fn chart_version_from_the_helmrelease() {
        let mut b = unit("hr", vec![]);
        b.chart = Some(("podinfo".into(), "6.0.0".into()));
        let mut t = b.clone();
        t.chart = Some(("podinfo".into(), "6.1.0".into()));
        let r = compare(&rev(vec![b]), &rev(vec![t]), &CompareOptions::default());
        assert_eq!(
            r.clusters[0].units[0].notes,
            vec![Note::ChartVersion {
                chart: "podinfo".into(),
                from: "6.0.0".into(),
                to: "6.1.0".into()
            }]
        );
    }
}
