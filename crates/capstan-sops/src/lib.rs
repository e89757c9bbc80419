//! SOPS decryption, natively: the SOPS file format (as getsops/sops 3.x writes it) for
//! YAML, JSON, dotenv, INI and binary files, with data keys wrapped for age recipients (the
//! `age` crate) or OpenPGP keys (`pgp`, rPGP), and MAC verification.
//!
//! The file format itself is written here because no maintained Rust crate implements it:
//! the Rust SOPS ports that exist are unmaintained or cover only a format or two, and none
//! reproduces `sops decrypt`'s output byte for byte, which Flux writes back and which a
//! pull-request diff of decrypted Secrets depends on.
//!
//! What is implemented (see getsops/sops `aes/cipher.go`, `sops.go`, `stores/*`):
//! * values `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]`: AES-256-GCM with a 32-byte IV,
//!   the additional data being the value's path (`a:b:c:`; list items take their list's
//!   path; comments the path of their mapping), typed plaintext (`str`, `int`, `float`,
//!   `bool`, `time`, `comment`, `bytes`);
//! * which values are encrypted: `unencrypted_suffix` (default `_unencrypted`),
//!   `encrypted_suffix`, `unencrypted_regex`, `encrypted_regex` and the comment regexes;
//! * the MAC: SHA-512 over the plaintext of every leaf (or only the encrypted ones with
//!   `mac_only_encrypted`), encrypted with `lastmodified` as additional data; checked unless
//!   [`DecryptOptions::ignore_mac`] (Flux never checks it);
//! * output as `sops -d` prints it: YAML through capstan-yaml's SOPS dialect (indent 4,
//!   indented sequences, comments), JSON tab-indented with Go's escaping, dotenv, INI as
//!   go-ini's pretty output, binary as the raw `data` string.
//!
//! Errors ([`SopsError`]) name the file, the class ([`ErrorKind::class`]) and the recipients
//! or fingerprints tried; they never contain plaintext.

mod cipher;
mod dotenv;
mod encrypt;
pub mod flux;
mod ini;
mod json;
mod keys;
mod meta;
pub mod shamir;
mod tree;
mod yaml;

#[cfg(test)]
mod tests;

pub use cipher::is_enc;
pub use encrypt::{encrypt, EncryptOptions};
pub use keys::{generate_age_identity, KeyLoadError, Keys};
pub use meta::{MasterKey, Metadata};
pub use tree::{Item, Value};

use meta::Rule;
use sha2::{Digest, Sha256, Sha512};

/// A SOPS file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// Parse a `--input-type` name.
    pub fn from_name(s: &str) -> Option<Format> {
        Some(match s {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "dotenv" | "env" => Format::Dotenv,
            "ini" => Format::Ini,
            "binary" => Format::Binary,
            _ => return None,
        })
    }

    /// The format sops infers from a file name: by extension (`.yaml`/`.yml`, `.json`,
    /// `.env`, `.ini`), anything else binary.
    pub fn from_path(path: &str) -> Format {
        let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if path.rsplit('/').next().is_some_and(|n| !n.contains('.')) {
            return Format::Binary;
        }
        match ext {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "env" => Format::Dotenv,
            "ini" => Format::Ini,
            _ => Format::Binary,
        }
    }

    /// Whether `content` carries this format's SOPS MAC marker (Flux decrypts only such
    /// files).
    pub fn has_marker(self, content: &[u8]) -> bool {
        let s = String::from_utf8_lossy(content);
        match self {
            Format::Yaml => s.contains("mac: ENC["),
            Format::Json | Format::Binary => s.contains("\"mac\": \"ENC["),
            Format::Dotenv => s.contains("sops_mac=ENC["),
            Format::Ini => s.contains("[sops]"),
        }
    }
}

/// Options for [`decrypt`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DecryptOptions {
    /// Skip the MAC check (per-value authentication still applies), as Flux does.
    pub ignore_mac: bool,
}

/// A decryption failure. Never contains plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SopsError {
    /// The file (or object) that failed.
    pub file: String,
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// No `sops` metadata in the file.
    NoMetadata,
    /// The file does not parse in its format.
    Format(String),
    /// The metadata block is malformed.
    Metadata { field: String, problem: String },
    /// No available key unwraps the data key. `tried`: the file's recipients and
    /// fingerprints; `available`: the keys given.
    NoKey {
        tried: Vec<String>,
        available: Vec<String>,
    },
    /// A value failed AES-GCM authentication (altered, or moved to another path), or is
    /// not a well-formed `ENC[...]` value.
    ValueAuth { path: String, detail: String },
    /// The file has no MAC and MAC checking is on.
    MacMissing,
    /// The MAC does not decrypt (altered, or `lastmodified` changed) or differs from the
    /// computed one.
    MacMismatch { detail: String },
}

impl ErrorKind {
    /// The error class, as the conformance corpus names them.
    pub fn class(&self) -> &'static str {
        match self {
            ErrorKind::NoMetadata => "no-metadata",
            ErrorKind::Format(_) => "format",
            ErrorKind::Metadata { .. } => "metadata",
            ErrorKind::NoKey { .. } => "no-key",
            ErrorKind::ValueAuth { .. } => "value-auth",
            ErrorKind::MacMissing => "mac-missing",
            ErrorKind::MacMismatch { .. } => "mac-mismatch",
        }
    }
}

impl std::fmt::Display for SopsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = &self.file;
        let class = self.kind.class();
        match &self.kind {
            ErrorKind::NoMetadata => write!(
                f,
                "{file}: {class}: sops metadata not found (the file is not encrypted by SOPS)"
            ),
            ErrorKind::Format(d) => write!(f, "{file}: {class}: cannot parse the file: {d}"),
            ErrorKind::Metadata { field, problem } => {
                write!(f, "{file}: {class}: malformed sops metadata: {field}: {problem}")
            }
            ErrorKind::NoKey { tried, available } => {
                write!(
                    f,
                    "{file}: {class}: cannot get the sops data key: no key given unwraps it (the file's keys: {}; keys given: {})",
                    if tried.is_empty() { "none".to_string() } else { tried.join(", ") },
                    if available.is_empty() { "none".to_string() } else { available.join(", ") }
                )
            }
            ErrorKind::ValueAuth { path, detail } => write!(
                f,
                "{file}: {class}: the value at '{path}' does not decrypt: {detail} (altered, or moved to another key)"
            ),
            ErrorKind::MacMissing => write!(
                f,
                "{file}: {class}: the file has no MAC (use --ignore-mac to skip the check)"
            ),
            ErrorKind::MacMismatch { detail } => write!(f, "{file}: {class}: {detail}"),
        }
    }
}

impl std::error::Error for SopsError {}

/// A parsed SOPS file: its documents (the metadata removed) and metadata.
pub(crate) struct Parsed {
    pub docs: Vec<Value>,
    pub meta: Value,
}

/// Decrypt `content` (a SOPS file in `format`) and print it as `sops decrypt` does.
/// `name` names the file in errors.
pub fn decrypt(
    content: &[u8],
    format: Format,
    keys: &Keys,
    opts: DecryptOptions,
    name: &str,
) -> Result<Vec<u8>, SopsError> {
    let fail = |kind| SopsError {
        file: name.to_string(),
        kind,
    };
    let text = std::str::from_utf8(content)
        .map_err(|_| fail(ErrorKind::Format("not UTF-8 text".into())))?;
    let parsed = match format {
        Format::Yaml => yaml::parse(text),
        Format::Json => json::parse(text, false),
        Format::Binary => json::parse(text, true),
        Format::Dotenv => dotenv::parse(text),
        Format::Ini => ini::parse(text),
    }
    .map_err(fail)?;
    let docs = decrypt_tree(parsed, keys, opts).map_err(fail)?;
    Ok(match format {
        Format::Yaml => yaml::emit(&docs).into_bytes(),
        Format::Json => json::emit(&docs[0]).into_bytes(),
        Format::Binary => match docs[0].get("data") {
            Some(v) => v.scalar_text().unwrap_or_default().into_bytes(),
            None => Vec::new(),
        },
        Format::Dotenv => dotenv::emit(&docs[0]).into_bytes(),
        Format::Ini => ini::emit(&docs[0]).into_bytes(),
    })
}

/// Decrypt a parsed file in place: data key, values, MAC.
pub(crate) fn decrypt_tree(
    parsed: Parsed,
    keys: &Keys,
    opts: DecryptOptions,
) -> Result<Vec<Value>, ErrorKind> {
    let meta = Metadata::from_value(&parsed.meta).map_err(|e| ErrorKind::Metadata {
        field: e.field,
        problem: e.problem,
    })?;
    let data_key = data_key(&meta, keys)?;
    let mut docs = parsed.docs;
    let mut walker = Walker {
        key: &data_key,
        rule: &meta.rule,
        mac: Sha512::new(),
        mac_only_encrypted: meta.mac_only_encrypted,
    };
    if meta.mac_only_encrypted {
        walker.mac.update(Sha256::digest(b"sops"));
    }
    for d in docs.iter_mut() {
        let mut path = Vec::new();
        walker.walk(d, &mut path, false)?;
    }
    let computed = hex::encode_upper(walker.mac.finalize());
    if !opts.ignore_mac {
        if meta.mac.is_empty() {
            return Err(ErrorKind::MacMissing);
        }
        let aad = go_rfc3339(&meta.lastmodified).ok_or_else(|| ErrorKind::Metadata {
            field: "sops.lastmodified".into(),
            problem: "not an RFC 3339 time".into(),
        })?;
        let stored = match cipher::decrypt(&data_key, &meta.mac, &aad) {
            Ok((b, _)) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => {
                return Err(ErrorKind::MacMismatch {
                    detail: "cannot decrypt the MAC (altered, or lastmodified changed)".into(),
                })
            }
        };
        if stored != computed {
            return Err(ErrorKind::MacMismatch {
                detail: "MAC mismatch: the file's MAC differs from the one computed over its values (a value, its key or their order changed)".into(),
            });
        }
    }
    Ok(docs)
}

/// Go's `time.RFC3339` rendering of an RFC 3339 time (seconds; `Z` or `±hh:mm`).
fn go_rfc3339(s: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    if t.offset().local_minus_utc() == 0 {
        Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    } else {
        Some(t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
    }
}

/// Unwrap the data key: each group's keys, age first then PGP; first success wins.
fn data_key(meta: &Metadata, keys: &Keys) -> Result<[u8; 32], ErrorKind> {
    let mut tried = Vec::new();
    let no_key = |tried: Vec<String>| ErrorKind::NoKey {
        tried,
        available: keys
            .age_recipients()
            .into_iter()
            .map(|r| format!("age {}", meta::short_recipient(&r)))
            .chain(
                keys.pgp_fingerprints()
                    .into_iter()
                    .map(|f| format!("pgp {f}")),
            )
            .collect(),
    };
    // Each group gives its part: the first of its keys that unwraps it, age first, then
    // PGP. One group: the part is the data key; several: Shamir shares, of which
    // `shamir_threshold` (default: all groups) recover it.
    let mut parts = Vec::new();
    for group in &meta.key_groups {
        let mut ordered: Vec<&MasterKey> = group
            .iter()
            .filter(|k| matches!(k, MasterKey::Age { .. }))
            .collect();
        ordered.extend(group.iter().filter(|k| !matches!(k, MasterKey::Age { .. })));
        for k in ordered {
            tried.push(k.describe());
            let got = match k {
                MasterKey::Age { enc, .. } => keys.unwrap_age(enc),
                MasterKey::Pgp { enc, .. } => keys.unwrap_pgp(enc),
                MasterKey::Other { .. } => None,
            };
            if let Some(b) = got {
                parts.push(b);
                break;
            }
        }
    }
    let key = if meta.key_groups.len() > 1 {
        let threshold = match meta.shamir_threshold {
            0 => meta.key_groups.len(),
            t => t,
        };
        if parts.len() < threshold {
            return Err(no_key(tried));
        }
        shamir::combine(&parts).map_err(|e| ErrorKind::Metadata {
            field: "sops.key_groups".into(),
            problem: format!("the key group parts do not combine: {e}"),
        })?
    } else {
        match parts.pop() {
            Some(p) => p,
            None => return Err(no_key(tried)),
        }
    };
    <[u8; 32]>::try_from(key.as_slice()).map_err(|_| ErrorKind::Metadata {
        field: "sops.key_groups".into(),
        problem: format!("the data key has {} bytes, not 32", key.len()),
    })
}

struct Walker<'a> {
    key: &'a [u8; 32],
    rule: &'a Rule,
    mac: Sha512,
    mac_only_encrypted: bool,
}

impl Walker<'_> {
    fn aad(path: &[String]) -> String {
        let mut s = path.join(":");
        s.push(':');
        s
    }

    /// Whether a value at `path` is encrypted (`comment_flag`: the comment rule's verdict
    /// from the comments above the value).
    fn encrypted(&self, path: &[String], comment_flag: bool) -> bool {
        match self.rule {
            Rule::UnencryptedSuffix(s) => !path.iter().any(|c| c.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|c| c.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|c| r.is_match(c)),
            Rule::EncryptedRegex(r) => path.iter().any(|c| r.is_match(c)),
            Rule::UnencryptedCommentRegex(_) => !comment_flag,
            Rule::EncryptedCommentRegex(_) => comment_flag,
        }
    }

    fn comment(&self, text: &mut String, path: &[String]) -> bool {
        if is_enc(text) {
            if let Ok((b, _)) = cipher::decrypt(self.key, text, &Self::aad(path)) {
                *text = String::from_utf8_lossy(&b).into_owned();
            }
        }
        match self.rule {
            Rule::UnencryptedCommentRegex(r) | Rule::EncryptedCommentRegex(r) => r.is_match(text),
            _ => false,
        }
    }

    fn walk(&mut self, v: &mut Value, path: &mut Vec<String>, flag: bool) -> Result<(), ErrorKind> {
        match v {
            Value::Map(items) => {
                let mut flag_next = false;
                for item in items.iter_mut() {
                    match item {
                        Item::Comment(c) => flag_next |= self.comment(c, path),
                        Item::Entry(k, child) => {
                            path.push(k.clone());
                            let r = self.walk(child, path, flag || flag_next);
                            path.pop();
                            r?;
                            flag_next = false;
                        }
                        Item::Elem(child) => self.walk(child, path, flag)?,
                    }
                }
                Ok(())
            }
            Value::Seq(items) => {
                let mut flag_next = false;
                for item in items.iter_mut() {
                    match item {
                        Item::Comment(c) => flag_next |= self.comment(c, path),
                        Item::Elem(child) | Item::Entry(_, child) => {
                            self.walk(child, path, flag || flag_next)?;
                            flag_next = false;
                        }
                    }
                }
                Ok(())
            }
            Value::Null => Ok(()),
            leaf => {
                let encrypted = self.encrypted(path, flag);
                if encrypted {
                    if let Value::Str(s) = leaf {
                        if is_enc(s) {
                            *leaf = self.decrypt_value(s, path)?;
                        }
                    }
                }
                if !self.mac_only_encrypted || encrypted {
                    self.mac.update(mac_bytes(leaf));
                }
                Ok(())
            }
        }
    }

    fn decrypt_value(&self, s: &str, path: &[String]) -> Result<Value, ErrorKind> {
        let shown = path.join(".");
        let auth = |detail: &str| ErrorKind::ValueAuth {
            path: shown.clone(),
            detail: detail.to_string(),
        };
        let (bytes, kind) =
            cipher::decrypt(self.key, s, &Self::aad(path)).map_err(|e| match e {
                cipher::CipherError::Auth => auth("message authentication failed"),
                cipher::CipherError::Malformed(m) => auth(m),
            })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(match kind.as_str() {
            "str" | "bytes" | "comment" => Value::Str(text),
            "int" => Value::Int(
                text.parse()
                    .map_err(|_| auth("the int value does not parse"))?,
            ),
            "float" => Value::Float(
                text.parse()
                    .map_err(|_| auth("the float value does not parse"))?,
            ),
            "bool" => Value::Bool(match text.as_str() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                _ => return Err(auth("the bool value does not parse")),
            }),
            "time" => Value::Time(text),
            _ => return Err(auth("unknown value type")),
        })
    }
}

/// The bytes a leaf contributes to the MAC.
fn mac_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) | Value::Time(s) => s.clone().into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Float(f) => tree::go_format_float_f(*f).into_bytes(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        _ => Vec::new(),
    }
}
