//! The `sops` metadata block.

use crate::tree::{Item, Value};
use regex::Regex;

/// Which values a file encrypts (at most one rule; none means `unencrypted_suffix:
/// _unencrypted`).
#[derive(Debug, Clone)]
pub enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    UnencryptedCommentRegex(Regex),
    EncryptedCommentRegex(Regex),
}

/// One master key entry that wraps the data key.
#[derive(Debug, Clone)]
pub enum MasterKey {
    Age {
        recipient: String,
        enc: String,
    },
    Pgp {
        fp: String,
        enc: String,
    },
    /// KMS, GCP KMS, Azure Key Vault, Vault, HuaweiCloud KMS: not available offline.
    Other {
        kind: String,
        id: String,
    },
}

impl MasterKey {
    /// The recipient or fingerprint, for error messages.
    pub fn describe(&self) -> String {
        match self {
            MasterKey::Age { recipient, .. } => format!("age {}", short_recipient(recipient)),
            MasterKey::Pgp { fp, .. } => format!("pgp {fp}"),
            MasterKey::Other { kind, id } => format!("{kind} {id}"),
        }
    }
}

/// An age recipient as errors show it: post-quantum recipients (`age1pq1...`, about 1960
/// characters) abbreviated to their start and end, as age's own messages do.
pub fn short_recipient(r: &str) -> String {
    let chars: Vec<char> = r.chars().collect();
    if chars.len() <= 80 {
        return r.to_string();
    }
    let head: String = chars[..24].iter().collect();
    let tail: String = chars[chars.len() - 12..].iter().collect();
    format!("{head}...{tail}")
}

/// The parsed metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub lastmodified: String,
    pub mac: String,
    pub key_groups: Vec<Vec<MasterKey>>,
    pub shamir_threshold: usize,
    pub rule: Rule,
    pub mac_only_encrypted: bool,
    pub version: String,
}

/// A metadata problem: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub field: String,
    pub problem: String,
}

fn err(field: &str, problem: &str) -> MetaError {
    MetaError {
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| v.scalar_text())
}

fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|i| match i {
                Item::Elem(v) => Some(v),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn group_keys(m: &Value, field: &str) -> Result<Vec<MasterKey>, MetaError> {
    let mut keys = Vec::new();
    for (i, e) in list(m.get("age")).into_iter().enumerate() {
        let enc =
            text(e.get("enc")).ok_or_else(|| err(&format!("{field}age[{i}].enc"), "missing"))?;
        keys.push(MasterKey::Age {
            recipient: text(e.get("recipient")).unwrap_or_default(),
            enc,
        });
    }
    for (i, e) in list(m.get("pgp")).into_iter().enumerate() {
        let enc =
            text(e.get("enc")).ok_or_else(|| err(&format!("{field}pgp[{i}].enc"), "missing"))?;
        keys.push(MasterKey::Pgp {
            fp: text(e.get("fp")).unwrap_or_default(),
            enc,
        });
    }
    for (kind, idf) in [
        ("kms", "arn"),
        ("gcp_kms", "resource_id"),
        ("azure_kv", "vault_url"),
        ("hc_vault", "vault_address"),
        ("hckms", "key_id"),
    ] {
        for e in list(m.get(kind)) {
            keys.push(MasterKey::Other {
                kind: kind.to_string(),
                id: text(e.get(idf)).unwrap_or_default(),
            });
        }
    }
    Ok(keys)
}

fn regex(field: &str, v: &str) -> Result<Regex, MetaError> {
    Regex::new(v).map_err(|_| err(field, "not a valid regular expression"))
}

impl Metadata {
    /// Read the metadata from the `sops` value.
    pub fn from_value(v: &Value) -> Result<Metadata, MetaError> {
        if !matches!(v, Value::Map(_)) {
            return Err(err("sops", "not a mapping"));
        }
        let lastmodified =
            text(v.get("lastmodified")).ok_or_else(|| err("sops.lastmodified", "missing"))?;
        let mac = text(v.get("mac")).unwrap_or_default();
        let mut key_groups = Vec::new();
        let groups = list(v.get("key_groups"));
        if groups.is_empty() {
            key_groups.push(group_keys(v, "sops.")?);
        } else {
            for (i, g) in groups.into_iter().enumerate() {
                key_groups.push(group_keys(g, &format!("sops.key_groups[{i}]."))?);
            }
        }
        let shamir_threshold = match v.get("shamir_threshold") {
            None | Some(Value::Null) => 0,
            Some(x) => x
                .scalar_text()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| err("sops.shamir_threshold", "not a number"))?,
        };
        let mut rule = None;
        for f in [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
            "unencrypted_comment_regex",
            "encrypted_comment_regex",
        ] {
            let Some(t) = text(v.get(f)) else { continue };
            if t.is_empty() {
                continue;
            }
            if rule.is_some() {
                return Err(err(
                    &format!("sops.{f}"),
                    "only one of the *_suffix / *_regex fields may be set",
                ));
            }
            let field = format!("sops.{f}");
            rule = Some(match f {
                "unencrypted_suffix" => Rule::UnencryptedSuffix(t),
                "encrypted_suffix" => Rule::EncryptedSuffix(t),
                "unencrypted_regex" => Rule::UnencryptedRegex(regex(&field, &t)?),
                "encrypted_regex" => Rule::EncryptedRegex(regex(&field, &t)?),
                "unencrypted_comment_regex" => Rule::UnencryptedCommentRegex(regex(&field, &t)?),
                _ => Rule::EncryptedCommentRegex(regex(&field, &t)?),
            });
        }
        let mac_only_encrypted = match v.get("mac_only_encrypted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(x) => matches!(x.scalar_text().as_deref(), Some("true" | "True" | "TRUE")),
        };
        Ok(Metadata {
            lastmodified,
            mac,
            key_groups,
            shamir_threshold,
            rule: rule.unwrap_or_else(|| Rule::UnencryptedSuffix("_unencrypted".into())),
            mac_only_encrypted,
            version: text(v.get("version")).unwrap_or_default(),
        })
    }
}

/// Rebuild the nested metadata from flattened keys (`age__list_0__map_enc`), as the dotenv
/// and INI stores write it. `pairs` are (key without the `sops_` prefix, value).
pub fn unflatten(pairs: &[(String, String)]) -> Value {
    let mut root = Value::Map(Vec::new());
    for (k, v) in pairs {
        let mut parts = k.split("__");
        let first = parts.next().unwrap_or_default().to_string();
        let mut path: Vec<Seg> = vec![Seg::Key(first)];
        for p in parts {
            if let Some(n) = p
                .strip_prefix("list_")
                .and_then(|n| n.parse::<usize>().ok())
            {
                path.push(Seg::Index(n));
            } else if let Some(m) = p.strip_prefix("map_") {
                path.push(Seg::Key(m.to_string()));
            } else {
                path.push(Seg::Key(p.to_string()));
            }
        }
        insert(&mut root, &path, Value::Str(v.clone()));
    }
    root
}

enum Seg {
    Key(String),
    Index(usize),
}

fn insert(node: &mut Value, path: &[Seg], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = leaf;
        return;
    };
    match first {
        Seg::Key(k) => {
            if !matches!(node, Value::Map(_)) {
                *node = Value::Map(Vec::new());
            }
            let Value::Map(items) = node else { return };
            let pos = items
                .iter()
                .position(|i| matches!(i, Item::Entry(x, _) if x == k));
            let i = match pos {
                Some(i) => i,
                None => {
                    items.push(Item::Entry(k.clone(), Value::Null));
                    items.len() - 1
                }
            };
            if let Item::Entry(_, v) = &mut items[i] {
                insert(v, rest, leaf);
            }
        }
        Seg::Index(n) => {
            if !matches!(node, Value::Seq(_)) {
                *node = Value::Seq(Vec::new());
            }
            let Value::Seq(items) = node else { return };
            // Bounded: an index far beyond the list is appended, not padded.
            let n = (*n).min(items.len());
            if n == items.len() {
                items.push(Item::Elem(Value::Null));
            }
            if let Item::Elem(v) = &mut items[n] {
                insert(v, rest, leaf);
            }
        }
    }
}
