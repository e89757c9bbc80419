//! The per-unit inventory: which objects a unit applied last time.
//!
//! Flux keeps the inventory in the Kustomization's status; capstan runs without a controller, so
//! it keeps it in a ConfigMap:
//!
//! * namespace [`INVENTORY_NAMESPACE`] (`capstan-system`, created when first needed; a dedicated
//!   namespace, so pruning a unit's own namespace never loses the inventory);
//! * name `inventory.<kind>.<namespace>.<name>` (kind lowercased, e.g.
//!   `inventory.kustomization.flux-system.apps`; unit namespaces contain no dots, so the name is
//!   unambiguous), shortened with a hash when longer than 253 characters;
//! * labels `app.kubernetes.io/managed-by: capstan`, `capstan.io/inventory: "true"` and the
//!   unit labels (`capstan.io/kind`, `capstan.io/namespace`, `capstan.io/name`);
//! * `data.entries`: a JSON array of `{"id": "<namespace>_<name>_<group>_<kind>", "v": "<version>"}`
//!   sorted by id (Flux's `ResourceInventory` format), plus, for objects applied successfully,
//!   `"h"`: the applied-state hash of [`crate::drift`] (an unchanged object with an unchanged
//!   hash needs no request on the next apply). Entries without `h` (older inventories, objects
//!   recorded before they were applied) are compared with a server-side dry run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::types::{ObjectRef, UnitRef};

/// Namespace holding the inventories.
pub const INVENTORY_NAMESPACE: &str = "capstan-system";

/// Name of the inventory ConfigMap of a unit.
pub fn inventory_name(unit: &UnitRef) -> String {
    let full = format!(
        "inventory.{}.{}.{}",
        unit.kind.to_lowercase(),
        unit.namespace,
        unit.name
    );
    if full.len() <= 253 {
        return full;
    }
    // FNV-1a keeps it deterministic without another dependency.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in full.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let mut short = full[..236].trim_end_matches(['.', '-']).to_string();
    short.push_str(&format!(".{h:016x}"));
    short
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    id: String,
    v: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<String>,
}

/// The set of objects of a unit, keyed by id, with the applied-state hash of each object
/// applied successfully.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    entries: BTreeMap<String, ObjectRef>,
    hashes: BTreeMap<String, String>,
}

impl Inventory {
    /// An inventory of these objects.
    pub fn from_refs<'a>(refs: impl IntoIterator<Item = &'a ObjectRef>) -> Self {
        let mut inv = Inventory::default();
        for r in refs {
            inv.insert(r.clone());
        }
        inv
    }

    /// Adds (or updates the version of) an object.
    pub fn insert(&mut self, r: ObjectRef) {
        self.entries.insert(r.id(), r);
    }

    /// Adds (or updates) an object with its applied-state hash (see [`crate::drift`]).
    pub fn insert_hashed(&mut self, r: ObjectRef, hash: String) {
        let id = r.id();
        self.hashes.insert(id.clone(), hash);
        self.entries.insert(id, r);
    }

    /// The applied-state hash recorded for the object, if any.
    pub fn hash(&self, r: &ObjectRef) -> Option<&str> {
        self.hashes.get(&r.id()).map(String::as_str)
    }

    /// Removes an object.
    pub fn remove(&mut self, r: &ObjectRef) {
        let id = r.id();
        self.entries.remove(&id);
        self.hashes.remove(&id);
    }

    /// Whether the object (any version) is in the inventory.
    pub fn contains(&self, r: &ObjectRef) -> bool {
        self.entries.contains_key(&r.id())
    }

    /// The objects, sorted by id.
    pub fn refs(&self) -> Vec<ObjectRef> {
        self.entries.values().cloned().collect()
    }

    /// Whether the inventory is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `data.entries` text.
    pub fn encode(&self) -> String {
        let list: Vec<Entry> = self
            .entries
            .iter()
            .map(|(id, r)| Entry {
                id: id.clone(),
                v: r.version.clone(),
                h: self.hashes.get(id).cloned(),
            })
            .collect();
        serde_json::to_string(&list).expect("inventory serializes")
    }

    /// Parses `data.entries`.
    pub fn decode(text: &str) -> Result<Self, String> {
        let list: Vec<Entry> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut inv = Inventory::default();
        for e in list {
            let r = ObjectRef::parse_id(&e.id, &e.v)
                .ok_or_else(|| format!("invalid inventory id {:?}", e.id))?;
            match e.h {
                Some(h) => inv.insert_hashed(r, h),
                None => inv.insert(r),
            }
        }
        Ok(inv)
    }

    /// The ConfigMap holding this inventory for `unit`.
    pub fn to_configmap(&self, unit: &UnitRef) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": inventory_name(unit),
                "namespace": INVENTORY_NAMESPACE,
                "labels": {
                    "app.kubernetes.io/managed-by": "capstan",
                    "capstan.io/inventory": "true",
                    crate::objects::LABEL_KIND: unit.kind.to_lowercase(),
                    crate::objects::LABEL_NAMESPACE: unit.namespace,
                    crate::objects::LABEL_NAME: unit.name,
                },
                "annotations": { "capstan.io/unit": unit.to_string() },
            },
            "data": { "entries": self.encode() },
        })
    }
}

/// The ObjectRef of the inventory ConfigMap of a unit.
pub fn inventory_ref(unit: &UnitRef) -> ObjectRef {
    ObjectRef::new(
        "v1",
        "ConfigMap",
        INVENTORY_NAMESPACE,
        &inventory_name(unit),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let u = UnitRef::new("Kustomization", "flux-system", "apps");
        assert_eq!(
            inventory_name(&u),
            "inventory.kustomization.flux-system.apps"
        );
        let long = UnitRef::new("HelmRelease", "ns", "x".repeat(300));
        let n = inventory_name(&long);
        assert!(n.len() <= 253, "{}", n.len());
        assert_eq!(n, inventory_name(&long));
    }

    #[test]
    fn round_trip() {
        let refs = [
            ObjectRef::new("apps/v1", "Deployment", "default", "web"),
            ObjectRef::new("v1", "Namespace", "", "apps"),
            ObjectRef::new("example.com/v1alpha1", "Widget", "apps", "w.1"),
        ];
        let inv = Inventory::from_refs(&refs);
        let text = inv.encode();
        assert!(text.contains("\"default_web_apps_Deployment\""), "{text}");
        assert!(text.contains("\"_apps__Namespace\""), "{text}");
        let back = Inventory::decode(&text).unwrap();
        assert_eq!(back, inv);
        assert!(back.contains(&ObjectRef::new(
            "apps/v1beta1",
            "Deployment",
            "default",
            "web"
        )));
        assert!(Inventory::decode("[{\"id\":\"bad\",\"v\":\"v1\"}]").is_err());
    }

    #[test]
    fn hashes_round_trip_and_old_entries_decode() {
        let mut inv = Inventory::default();
        let web = ObjectRef::new("apps/v1", "Deployment", "default", "web");
        let ns = ObjectRef::new("v1", "Namespace", "", "apps");
        inv.insert_hashed(web.clone(), "0123456789abcdef".into());
        inv.insert(ns.clone());
        let text = inv.encode();
        assert!(text.contains("\"h\":\"0123456789abcdef\""), "{text}");
        // An entry without a hash has no `h` key (Flux's format).
        assert!(
            text.contains("{\"id\":\"_apps__Namespace\",\"v\":\"v1\"}"),
            "{text}"
        );
        let back = Inventory::decode(&text).unwrap();
        assert_eq!(back, inv);
        assert_eq!(back.hash(&web), Some("0123456789abcdef"));
        assert_eq!(back.hash(&ns), None);
        // Re-inserting without a hash keeps the recorded one; removing drops it.
        let mut again = back.clone();
        again.insert(web.clone());
        assert_eq!(again.hash(&web), Some("0123456789abcdef"));
        again.remove(&web);
        assert_eq!(again.hash(&web), None);
        // A hash change makes the inventory differ (it is written again).
        let mut rehashed = back.clone();
        rehashed.insert_hashed(web, "fedcba9876543210".into());
        assert_ne!(rehashed, back);
    }
}
