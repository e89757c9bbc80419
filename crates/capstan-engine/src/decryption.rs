//! Flux's SOPS decryption for rendering ([`capstan_units::Decryptor`], through
//! capstan-sops): units with `spec.decryption.provider: sops` are decrypted with the keys
//! given (`--decryption-key`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`) and, when a cluster is
//! reachable, the keys of the Secret their `spec.decryption.secretRef` names (in the
//! unit's namespace: `*.agekey` age identities, `*.asc` OpenPGP keys), as
//! kustomize-controller reads them. The root of the cluster path, which has no
//! Kustomization of its own when the repository declares none, is decrypted when keys
//! were given.
//!
//! Errors name the Secret, the file or object and the recipients or fingerprints tried,
//! never a key or a plaintext.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use capstan_sops::Keys;
use capstan_units::ClusterLookup;
use serde_json::Value;

/// A unit's decryption Secret, by namespace and name.
type SecretId = (String, String);

/// Flux's SOPS decryption: see the [module docs](self).
pub struct SopsDecryptor {
    /// Keys given on the command line or in the environment.
    keys: Keys,
    /// The cluster the units' `spec.decryption.secretRef` Secrets are read from.
    lookup: Option<Arc<dyn ClusterLookup>>,
    /// Leave decrypted values in the output (apply needs them); else `***` (`build`).
    show: bool,
    /// Secrets read so far (one read per Secret and render): their keys, or why not.
    secrets: Mutex<BTreeMap<SecretId, Result<Keys, String>>>,
}

impl SopsDecryptor {
    /// Decrypt with `keys` only (no cluster); values masked as `***` unless `show`.
    pub fn new(keys: Keys, show: bool) -> Self {
        SopsDecryptor {
            keys,
            lookup: None,
            show,
            secrets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Also read units' `spec.decryption.secretRef` Secrets through `lookup`.
    pub fn with_cluster(mut self, lookup: Arc<dyn ClusterLookup>) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Whether `unit` is decrypted: `spec.decryption.provider: sops`, or the undeclared
    /// root when keys were given.
    fn wants(&self, unit: &Value, root: bool) -> bool {
        match unit.pointer("/spec/decryption") {
            Some(d) => d.get("provider").and_then(Value::as_str) == Some("sops"),
            None => root && !self.keys.is_empty(),
        }
    }

    /// The keys for `unit`: those given, plus its decryption Secret's when a cluster is
    /// reachable. A Secret that cannot be read is an error only when no keys were given
    /// (Flux fails the unit; on the command line the keys given stand in for it).
    fn keys_for(&self, unit: &Value) -> Result<Keys, String> {
        let mut keys = self.keys.clone();
        let (Some(lookup), Some(name)) = (
            &self.lookup,
            unit.pointer("/spec/decryption/secretRef/name")
                .and_then(Value::as_str),
        ) else {
            return Ok(keys);
        };
        let namespace = unit
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let id = (namespace.to_string(), name.to_string());
        let mut cache = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        let got = cache
            .entry(id)
            .or_insert_with(|| secret_keys(lookup.as_ref(), namespace, name));
        match got {
            Ok(k) => keys.extend(k.clone()),
            Err(e) if self.keys.is_empty() => return Err(e.clone()),
            Err(_) => {}
        }
        Ok(keys)
    }
}

/// The keys of the decryption Secret `namespace/name`, read from the cluster.
fn secret_keys(lookup: &dyn ClusterLookup, namespace: &str, name: &str) -> Result<Keys, String> {
    use base64::Engine;
    let what = format!("decryption Secret {namespace}/{name} (spec.decryption.secretRef)");
    let secret = match lookup.get("Secret", namespace, name) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("cannot get the {what}: not found")),
        Err(e) => return Err(format!("cannot get the {what}: {e}")),
    };
    let mut entries = Vec::new();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let bytes = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(|| format!("{what}: entry '{k}' is not base64"))?;
            entries.push((k.clone(), bytes));
        }
    }
    capstan_sops::flux::keys_from_secret(&entries).map_err(|e| format!("{what}: {e}"))
}

/// Replace every string that decryption changed by `***`.
pub fn mask_decrypted(before: &Value, after: &mut Value) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in a.iter_mut() {
                if let Some(bv) = b.get(k) {
                    mask_decrypted(bv, v);
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (bv, v) in b.iter().zip(a.iter_mut()) {
                mask_decrypted(bv, v);
            }
        }
        (Value::String(b), a) if a.as_str() != Some(b.as_str()) => {
            *a = Value::String("***".into());
        }
        _ => {}
    }
}

impl capstan_units::Decryptor for SopsDecryptor {
    fn sources(
        &self,
        unit: &Value,
        root: bool,
        fs: &dyn capstan_vfs::FileSystem,
        source_root: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>, String> {
        if !self.wants(unit, root) {
            return Ok(Vec::new());
        }
        let keys = self.keys_for(unit)?;
        capstan_sops::flux::decrypt_sources(fs, source_root, dir, &keys).map_err(|e| e.to_string())
    }

    fn objects(&self, unit: &Value, root: bool, objects: &mut [Value]) -> Result<(), String> {
        if !self.wants(unit, root) {
            return Ok(());
        }
        let keys = self.keys_for(unit)?;
        for obj in objects.iter_mut() {
            let before = (!self.show).then(|| obj.clone());
            let changed = capstan_sops::flux::decrypt_object(obj, &keys)
                .map_err(|e| format!("failed to decrypt and format {e}"))?;
            if let (true, Some(b)) = (changed, before) {
                mask_decrypted(&b, obj);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_units::Decryptor;
    use serde_json::json;

    /// A cluster holding Secrets in memory.
    struct Secrets(Vec<Value>);

    impl ClusterLookup for Secrets {
        fn get(&self, kind: &str, ns: &str, name: &str) -> Result<Option<Value>, String> {
            Ok(self
                .0
                .iter()
                .find(|s| {
                    kind == "Secret"
                        && s["metadata"]["namespace"] == ns
                        && s["metadata"]["name"] == name
                })
                .cloned())
        }
    }

    fn age_secret(ns: &str, name: &str, entry: &str, identity: &str) -> Value {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(identity);
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"namespace": ns, "name": name}, "data": {entry: b64}})
    }

    fn unit(secret: Option<&str>) -> Value {
        let mut d = json!({"provider": "sops"});
        if let Some(s) = secret {
            d["secretRef"] = json!({"name": s});
        }
        json!({"kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"},
               "spec": {"decryption": d}})
    }

    fn encrypted_secret(recipient: &str) -> Value {
        let plain = br#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}"#;
        let opts = capstan_sops::EncryptOptions {
            encrypted_regex: Some("^(data|stringData)$".into()),
            ..Default::default()
        };
        let enc =
            capstan_sops::encrypt(plain, capstan_sops::Format::Json, &[recipient], &opts).unwrap();
        let v: Value = serde_json::from_slice(&enc).unwrap();
        assert_ne!(v["stringData"]["password"], "hunter2");
        v
    }

    fn identity() -> (String, String) {
        capstan_sops::generate_age_identity()
    }

    /// `spec.decryption.secretRef`: the keys of the Secret in the unit's namespace
    /// (`*.agekey`) decrypt its objects, with no key given on the command line.
    #[test]
    fn secret_ref_keys_come_from_the_cluster() {
        let (secret_key, recipient) = identity();
        let d = SopsDecryptor::new(Keys::new(), true).with_cluster(Arc::new(Secrets(vec![
            age_secret("flux-system", "sops-age", "identity.agekey", &secret_key),
        ])));
        let mut objs = vec![encrypted_secret(&recipient)];
        d.objects(&unit(Some("sops-age")), false, &mut objs)
            .unwrap();
        assert_eq!(objs[0]["stringData"]["password"], "hunter2");
        assert!(objs[0].get("sops").is_none());
    }

    /// A missing decryption Secret fails the unit naming the Secret (no keys given), and
    /// a Secret in another namespace is not used.
    #[test]
    fn a_missing_decryption_secret_is_named() {
        let (secret_key, recipient) = identity();
        let d = SopsDecryptor::new(Keys::new(), true).with_cluster(Arc::new(Secrets(vec![
            age_secret("other", "sops-age", "identity.agekey", &secret_key),
        ])));
        let mut objs = vec![encrypted_secret(&recipient)];
        let e = d
            .objects(&unit(Some("sops-age")), false, &mut objs)
            .unwrap_err();
        assert!(
            e.contains("decryption Secret flux-system/sops-age") && e.contains("not found"),
            "{e}"
        );
    }

    /// Keys given on the command line stand in for a decryption Secret the cluster does
    /// not have; a wrong key names the file's recipient and never the plaintext.
    #[test]
    fn given_keys_stand_in_and_wrong_keys_name_the_recipient() {
        let (secret_key, recipient) = identity();
        let mut given = Keys::new();
        given.add_age_identities(&secret_key).unwrap();
        let d = SopsDecryptor::new(given, true).with_cluster(Arc::new(Secrets(vec![])));
        let mut objs = vec![encrypted_secret(&recipient)];
        d.objects(&unit(Some("sops-age")), false, &mut objs)
            .unwrap();
        assert_eq!(objs[0]["stringData"]["password"], "hunter2");

        let (other_key, _) = identity();
        let d = SopsDecryptor::new(Keys::new(), true).with_cluster(Arc::new(Secrets(vec![
            age_secret("flux-system", "sops-age", "identity.agekey", &other_key),
        ])));
        let mut objs = vec![encrypted_secret(&recipient)];
        let e = d
            .objects(&unit(Some("sops-age")), false, &mut objs)
            .unwrap_err();
        assert!(e.contains("no-key") && e.contains(&recipient), "{e}");
        assert!(
            !e.contains("hunter2") && !e.contains("AGE-SECRET-KEY"),
            "{e}"
        );
    }

    /// A key entry named without Flux's suffix (`age.key`) fails naming the suffix Flux
    /// expects.
    #[test]
    fn a_secret_entry_without_the_agekey_suffix_is_named() {
        let (secret_key, recipient) = identity();
        let d = SopsDecryptor::new(Keys::new(), true).with_cluster(Arc::new(Secrets(vec![
            age_secret("flux-system", "sops-age", "age.key", &secret_key),
        ])));
        let mut objs = vec![encrypted_secret(&recipient)];
        let e = d
            .objects(&unit(Some("sops-age")), false, &mut objs)
            .unwrap_err();
        assert!(e.contains("age.key") && e.contains(".agekey"), "{e}");
    }

    /// Units without `spec.decryption` are left alone; the undeclared root is decrypted
    /// only with keys given; `build` masks decrypted values.
    #[test]
    fn only_sops_units_decrypt_and_build_masks() {
        let (secret_key, recipient) = identity();
        let none = json!({"spec": {}});
        let d = SopsDecryptor::new(Keys::new(), false);
        assert!(!d.wants(&none, false) && !d.wants(&none, true));
        let mut given = Keys::new();
        given.add_age_identities(&secret_key).unwrap();
        let d = SopsDecryptor::new(given, false);
        assert!(d.wants(&none, true) && !d.wants(&none, false));
        let mut objs = vec![encrypted_secret(&recipient)];
        d.objects(&none, true, &mut objs).unwrap();
        assert_eq!(objs[0]["stringData"]["password"], "***");
    }
}
