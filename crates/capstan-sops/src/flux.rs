//! Flux's SOPS conventions (kustomize-controller `internal/decryptor`): the keys of a
//! decryption Secret, the decryption of kustomize sources before the build
//! (`DecryptSources`) and of the built objects after it (`DecryptResource`). Flux never
//! checks the MAC (`namePrefix`, patches and key sorting change what it covers); per-value
//! authentication always applies.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use capstan_vfs::FileSystem;
use serde_json::Value as Json;

use crate::tree::{Item, Value};
use crate::{dotenv, ini, json, yaml, ErrorKind, Format, Keys, Parsed, SopsError};

/// The annotation that turns decryption off for one object.
pub const DECRYPT_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/decrypt";

/// Files larger than this are not decrypted (Flux's limit).
pub const MAX_FILE_SIZE: usize = 5 << 20;

/// A decryption Secret entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyError {
    /// The Secret's data key.
    pub entry: String,
    pub problem: String,
}

impl std::fmt::Display for SecretKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "decryption Secret entry '{}': {}",
            self.entry, self.problem
        )
    }
}

/// The keys of a Flux decryption Secret (its data, decoded): entries ending `.agekey` are
/// age identities, `.asc` armored OpenPGP keys; `sops.vault-token`, `sops.aws-kms`,
/// `sops.azure-kv`, `sops.gcp-kms` are cloud credentials (not used offline). Any other
/// entry that holds an age identity or an OpenPGP private key is an error naming the suffix
/// Flux expects (Flux would silently ignore it and fail later with "no key").
pub fn keys_from_secret(entries: &[(String, Vec<u8>)]) -> Result<Keys, SecretKeyError> {
    let mut keys = Keys::new();
    for (name, data) in entries {
        let problem = |p: String| SecretKeyError {
            entry: name.clone(),
            problem: p,
        };
        if name.ends_with(".agekey") {
            keys.add_age_identities(&String::from_utf8_lossy(data))
                .map_err(|e| problem(e.to_string()))?;
        } else if name.ends_with(".asc") {
            keys.add_pgp_keys(data)
                .map_err(|e| problem(e.to_string()))?;
        } else if matches!(
            name.as_str(),
            "sops.vault-token" | "sops.aws-kms" | "sops.azure-kv" | "sops.gcp-kms"
        ) {
            continue;
        } else {
            let text = String::from_utf8_lossy(data);
            if text.contains("AGE-SECRET-KEY-") {
                return Err(problem(
                    "holds an age identity, but Flux reads age keys only from entries whose name ends with `.agekey` (rename it, e.g. to `age.agekey`)".into(),
                ));
            }
            if text.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
                return Err(problem(
                    "holds an OpenPGP private key, but Flux reads PGP keys only from entries whose name ends with `.asc` (rename it, e.g. to `pgp.asc`)".into(),
                ));
            }
        }
    }
    Ok(keys)
}

/// The format of a Secret data key's value (`.dockerconfigjson` is JSON, else by extension,
/// none: binary).
pub fn format_for_data_key(key: &str) -> Format {
    if key == ".dockerconfigjson" {
        return Format::Json;
    }
    Format::from_path(key)
}

/// The format whose MAC marker `content` carries (dotenv, JSON, YAML, INI in that order).
pub fn detect_format(content: &[u8]) -> Option<Format> {
    [Format::Dotenv, Format::Json, Format::Yaml, Format::Ini]
        .into_iter()
        .find(|f| f.has_marker(content))
}

fn parse(text: &str, format: Format) -> Result<Parsed, ErrorKind> {
    match format {
        Format::Yaml => yaml::parse(text),
        Format::Json => json::parse(text, false),
        Format::Binary => json::parse(text, true),
        Format::Dotenv => dotenv::parse(text),
        Format::Ini => ini::parse(text),
    }
}

fn emit(docs: &[Value], format: Format) -> Result<Vec<u8>, ErrorKind> {
    Ok(match format {
        Format::Yaml => yaml::emit(docs).into_bytes(),
        Format::Json => json::emit(&docs[0]).into_bytes(),
        Format::Dotenv => dotenv::emit(&docs[0]).into_bytes(),
        Format::Ini => ini::emit(&docs[0]).into_bytes(),
        Format::Binary => match docs.first().and_then(|d| d.get("data")) {
            Some(v) => v.scalar_text().unwrap_or_default().into_bytes(),
            None => {
                return Err(ErrorKind::Format(
                    "the decrypted document has no 'data' to write as binary".into(),
                ))
            }
        },
    })
}

/// Decrypt `content` from `input` format and write it in `output` format, without MAC
/// verification (as Flux does).
pub fn decrypt_as(
    content: &[u8],
    input: Format,
    output: Format,
    keys: &Keys,
    name: &str,
) -> Result<Vec<u8>, SopsError> {
    let fail = |kind| SopsError {
        file: name.to_string(),
        kind,
    };
    let text = std::str::from_utf8(content)
        .map_err(|_| fail(ErrorKind::Format("not UTF-8 text".into())))?;
    let parsed = parse(text, input).map_err(fail)?;
    let docs = crate::decrypt_tree(parsed, keys, crate::DecryptOptions { ignore_mac: true })
        .map_err(fail)?;
    emit(&docs, output).map_err(fail)
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Str(s) | Value::Time(s) => Json::String(s.clone()),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Bool(b) => Json::Bool(*b),
        Value::Map(items) => Json::Object(
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Entry(k, v) => Some((k.clone(), to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Elem(v) | Item::Entry(_, v) => Some(to_json(v)),
                    _ => None,
                })
                .collect(),
        ),
    }
}

fn object_name(obj: &Json) -> String {
    let kind = obj.get("kind").and_then(Json::as_str).unwrap_or("object");
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Json::as_str)
        .unwrap_or("");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or("");
    format!("'{ns}/{name}' {kind}")
}

/// Whether decryption is disabled on the object (`kustomize.toolkit.fluxcd.io/decrypt:
/// disabled`, any case).
pub fn decryption_disabled(obj: &Json) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(DECRYPT_ANNOTATION))
        .and_then(Json::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
}

/// Decrypt one built object as Flux's `DecryptResource` does: an object of any kind with a
/// non-empty `sops.mac` is decrypted whole (and loses its `sops` field); in a Secret, each
/// `data` value holding a SOPS file is decrypted to the format of its key. Returns whether
/// anything was decrypted.
pub fn decrypt_object(obj: &mut Json, keys: &Keys) -> Result<bool, SopsError> {
    if decryption_disabled(obj) {
        return Ok(false);
    }
    let has_mac = obj
        .pointer("/sops/mac")
        .and_then(Json::as_str)
        .is_some_and(|m| !m.is_empty());
    if has_mac {
        let name = object_name(obj);
        let fail = |kind| SopsError {
            file: name.clone(),
            kind,
        };
        let text = serde_json::to_string(obj).unwrap_or_default();
        let parsed = json::parse(&text, false).map_err(fail)?;
        let docs = crate::decrypt_tree(parsed, keys, crate::DecryptOptions { ignore_mac: true })
            .map_err(fail)?;
        *obj = to_json(&docs[0]);
        return Ok(true);
    }
    if obj.get("kind").and_then(Json::as_str) != Some("Secret") {
        return Ok(false);
    }
    let name = object_name(obj);
    let mut changed = false;
    if let Some(Json::Object(data)) = obj.get_mut("data") {
        for (k, v) in data.iter_mut() {
            let Some(b64) = v.as_str() else { continue };
            let Ok(raw) = STANDARD.decode(b64.trim()) else {
                continue;
            };
            let Some(input) = detect_format(&raw) else {
                continue;
            };
            let output = format_for_data_key(k);
            let plain = decrypt_as(&raw, input, output, keys, &format!("{name} field '{k}'"))?;
            *v = Json::String(STANDARD.encode(plain));
            changed = true;
        }
    }
    Ok(changed)
}

fn kustomization_file(fs: &dyn FileSystem, dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| fs.is_file(p))
}

fn strings(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Flux's `DecryptSources`: from `dir`, through local `resources` and `components`
/// directories (never leaving `root`), the files that kustomize reads for
/// `secretGenerator[].files` (format from the key name), `secretGenerator[].envs` (format
/// from the file name; unknown: dotenv) and `patches[].path` (format from the path), when
/// they carry their format's SOPS marker; decrypted. Returns (path, plaintext) pairs to lay
/// over the file system the build reads.
pub fn decrypt_sources(
    fs: &dyn FileSystem,
    root: &Path,
    dir: &Path,
    keys: &Keys,
) -> Result<Vec<(PathBuf, Vec<u8>)>, SopsError> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![capstan_vfs::normalize(dir)];
    while let Some(d) = todo.pop() {
        if !seen.insert(d.clone()) || seen.len() > 10_000 {
            continue;
        }
        let Some(kfile) = kustomization_file(fs, &d) else {
            continue;
        };
        let Ok(text) = fs.read_to_string(&kfile) else {
            continue;
        };
        let Ok(docs) = capstan_yaml::parse_documents(&text, &kfile.display().to_string()) else {
            continue;
        };
        let Some(k) = docs.first().map(capstan_yaml::to_json) else {
            continue;
        };
        let within = |p: &Path| p.starts_with(root);
        let file = |rel: &str,
                    format: Format,
                    out: &mut Vec<(PathBuf, Vec<u8>)>|
         -> Result<(), SopsError> {
            if rel.contains("://") {
                return Ok(());
            }
            let p = capstan_vfs::join(&d, rel);
            if !within(&p) || !fs.is_file(&p) {
                return Ok(());
            }
            let Ok(content) = fs.read(&p) else {
                return Ok(());
            };
            if content.len() > MAX_FILE_SIZE || !format.has_marker(&content) {
                return Ok(());
            }
            let plain = decrypt_as(&content, format, format, keys, &p.display().to_string())?;
            out.push((p, plain));
            Ok(())
        };
        if let Some(Json::Array(gens)) = k.get("secretGenerator") {
            for g in gens {
                for f in strings(g.get("files")) {
                    let (key, path) = match f.split_once('=') {
                        Some((k, p)) => (k.to_string(), p.to_string()),
                        None => (f.rsplit('/').next().unwrap_or(&f).to_string(), f.clone()),
                    };
                    file(&path, Format::from_path(&key), &mut out)?;
                }
                for e in strings(g.get("envs"))
                    .into_iter()
                    .chain(g.get("env").and_then(Json::as_str).map(str::to_string))
                {
                    let f = match Format::from_path(&e) {
                        Format::Binary => Format::Dotenv,
                        f => f,
                    };
                    file(&e, f, &mut out)?;
                }
            }
        }
        if let Some(Json::Array(patches)) = k.get("patches") {
            for p in patches {
                if let Some(path) = p.get("path").and_then(Json::as_str) {
                    file(path, Format::from_path(path), &mut out)?;
                }
            }
        }
        for r in strings(k.get("resources"))
            .into_iter()
            .chain(strings(k.get("components")))
        {
            if r.contains("://") {
                continue;
            }
            let p = capstan_vfs::join(&d, &r);
            if within(&p) && fs.is_dir(&p) {
                todo.push(p);
            }
        }
    }
    Ok(out)
}
