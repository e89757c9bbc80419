//! Encryption for age recipients, to write fixtures and tests (and for a later
//! `capstan sops encrypt`): the inverse of [`crate::decrypt`], with the same paths, types and
//! MAC.

use crate::cipher;
use crate::tree::{go_format_float_f, Item, Value};
use crate::{dotenv, json, yaml, ErrorKind, Format, SopsError};
use sha2::{Digest, Sha512};
use std::io::Write;
use std::str::FromStr;

/// Options for [`encrypt`].
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// Encrypt only values with a path component matching this regex (Flux's usual
    /// `^(data|stringData)$`); default: every value not under a key ending `_unencrypted`.
    pub encrypted_regex: Option<String>,
    /// `lastmodified` (RFC 3339); default `2024-01-01T00:00:00Z`.
    pub lastmodified: Option<String>,
    /// Several key groups of age recipients (`key_groups`), the data key split among
    /// them by Shamir's scheme with `shamir_threshold`; the `recipients` argument of
    /// [`encrypt`] is then not used.
    pub key_groups: Vec<Vec<String>>,
    pub shamir_threshold: u8,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the system's random source");
    b
}

fn typed(v: &Value) -> Option<(Vec<u8>, &'static str)> {
    Some(match v {
        Value::Str(s) => (s.clone().into_bytes(), "str"),
        Value::Time(s) => (s.clone().into_bytes(), "time"),
        Value::Int(i) => (i.to_string().into_bytes(), "int"),
        Value::Float(f) => (go_format_float_f(*f).into_bytes(), "float"),
        Value::Bool(b) => (
            (if *b { "True" } else { "False" }).as_bytes().to_vec(),
            "bool",
        ),
        _ => return None,
    })
}

struct Enc<'a> {
    key: [u8; 32],
    regex: Option<regex::Regex>,
    mac: &'a mut Sha512,
}

impl Enc<'_> {
    fn aad(path: &[String]) -> String {
        let mut s = path.join(":");
        s.push(':');
        s
    }
    fn encrypted(&self, path: &[String]) -> bool {
        match &self.regex {
            Some(r) => path.iter().any(|c| r.is_match(c)),
            None => !path.iter().any(|c| c.ends_with("_unencrypted")),
        }
    }
    fn walk(&mut self, v: &mut Value, path: &mut Vec<String>) {
        match v {
            Value::Map(items) | Value::Seq(items) => {
                for item in items.iter_mut() {
                    match item {
                        Item::Comment(c) => {
                            if self.encrypted(path) {
                                *c = cipher::encrypt(
                                    &self.key,
                                    &random(),
                                    c.as_bytes(),
                                    &Self::aad(path),
                                    "comment",
                                );
                            }
                        }
                        Item::Entry(k, child) => {
                            path.push(k.clone());
                            self.walk(child, path);
                            path.pop();
                        }
                        Item::Elem(child) => self.walk(child, path),
                    }
                }
            }
            Value::Null => {}
            leaf => {
                let Some((plain, kind)) = typed(leaf) else {
                    return;
                };
                self.mac.update(&plain);
                if self.encrypted(path) && !(kind == "str" && plain.is_empty()) {
                    *leaf = Value::Str(cipher::encrypt(
                        &self.key,
                        &random(),
                        &plain,
                        &Self::aad(path),
                        kind,
                    ));
                }
            }
        }
    }
}

fn entry(k: &str, v: Value) -> Item {
    Item::Entry(k.to_string(), v)
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Map(items) => {
            for i in items {
                if let Item::Entry(k, c) = i {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}__map_{k}")
                    };
                    flatten(&p, c, out);
                }
            }
        }
        Value::Seq(items) => {
            for (n, i) in items.iter().enumerate() {
                if let Item::Elem(c) = i {
                    flatten(&format!("{prefix}__list_{n}"), c, out);
                }
            }
        }
        leaf => out.push((
            prefix.to_string(),
            leaf.scalar_text().unwrap_or_default().replace('\n', "\\n"),
        )),
    }
}

/// The `age` entries of a key group: `payload` (the data key, or its Shamir share)
/// wrapped for each recipient.
fn wrap_age(payload: &[u8], recipients: &[&str]) -> Result<Vec<Item>, SopsError> {
    let fail = |kind| SopsError {
        file: "(plaintext)".into(),
        kind,
    };
    let mut age_items = Vec::new();
    for r in recipients {
        let bad = || {
            fail(ErrorKind::Metadata {
                field: "age recipient".into(),
                problem: format!("not an age recipient: {}", crate::meta::short_recipient(r)),
            })
        };
        // `age1pq1...`: the hybrid ML-KEM-768 + X25519 recipient type; else X25519.
        let rec: Box<dyn age::Recipient> = if r.starts_with("age1pq1") {
            Box::new(age::pq::Recipient::from_str(r).map_err(|_| bad())?)
        } else {
            // Classic X25519 recipients (deprecated by age 0.13 for new keys) are what
            // most SOPS files use.
            #[allow(deprecated)]
            let x = age::x25519::Recipient::from_str(r).map_err(|_| bad())?;
            Box::new(x)
        };
        let e = age::Encryptor::with_recipients(std::iter::once(rec.as_ref()))
            .map_err(|_| fail(ErrorKind::Format("no recipient".into())))?;
        let mut armored = Vec::new();
        let aw =
            age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)
                .map_err(|_| fail(ErrorKind::Format("armor".into())))?;
        let mut w = e
            .wrap_output(aw)
            .map_err(|_| fail(ErrorKind::Format("age".into())))?;
        w.write_all(payload).expect("in-memory write");
        w.finish()
            .and_then(|aw| aw.finish())
            .map_err(|_| fail(ErrorKind::Format("age".into())))?;
        age_items.push(Item::Elem(Value::Map(vec![
            entry("recipient", Value::Str(r.to_string())),
            entry(
                "enc",
                Value::Str(String::from_utf8_lossy(&armored).into_owned()),
            ),
        ])));
    }
    Ok(age_items)
}

/// Encrypt a plaintext file for age recipients (`age1...`).
pub fn encrypt(
    plain: &[u8],
    format: Format,
    recipients: &[&str],
    opts: &EncryptOptions,
) -> Result<Vec<u8>, SopsError> {
    let fail = |kind| SopsError {
        file: "(plaintext)".into(),
        kind,
    };
    let text =
        std::str::from_utf8(plain).map_err(|_| fail(ErrorKind::Format("not UTF-8".into())))?;
    let mut docs = match format {
        Format::Yaml => yaml::parse_docs(text).map_err(fail)?,
        Format::Json => vec![json::parse_value(text).map_err(fail)?],
        Format::Dotenv => vec![Value::Map(dotenv::parse_items(text).map_err(fail)?)],
        Format::Binary => vec![Value::Map(vec![entry(
            "data",
            Value::Str(text.to_string()),
        )])],
        Format::Ini => {
            return Err(fail(ErrorKind::Format(
                "INI encryption is not supported".into(),
            )))
        }
    };
    let regex = match &opts.encrypted_regex {
        Some(r) => Some(regex::Regex::new(r).map_err(|_| {
            fail(ErrorKind::Metadata {
                field: "encrypted_regex".into(),
                problem: "not a valid regular expression".into(),
            })
        })?),
        None => None,
    };
    let mut mac = Sha512::new();
    let mut enc = Enc {
        key: random(),
        regex,
        mac: &mut mac,
    };
    for d in docs.iter_mut() {
        enc.walk(d, &mut Vec::new());
    }
    let key = enc.key;
    let lastmodified = opts
        .lastmodified
        .clone()
        .unwrap_or_else(|| "2024-01-01T00:00:00Z".into());
    let mac_hex = hex::encode_upper(mac.finalize());
    let aad = crate::go_rfc3339(&lastmodified).ok_or_else(|| {
        fail(ErrorKind::Metadata {
            field: "lastmodified".into(),
            problem: "not an RFC 3339 time".into(),
        })
    })?;
    let mut meta = if opts.key_groups.len() > 1 {
        let mut shares = crate::shamir::split(
            &key,
            opts.key_groups.len() as u8,
            opts.shamir_threshold.max(2),
            &mut || random::<1>()[0],
        );
        let mut groups = Vec::new();
        for (g, share) in opts.key_groups.iter().zip(shares.iter_mut()) {
            let rs: Vec<&str> = g.iter().map(String::as_str).collect();
            groups.push(Item::Elem(Value::Map(vec![entry(
                "age",
                Value::Seq(wrap_age(share, &rs)?),
            )])));
        }
        vec![
            entry("key_groups", Value::Seq(groups)),
            entry(
                "shamir_threshold",
                Value::Int(i64::from(opts.shamir_threshold.max(2))),
            ),
        ]
    } else {
        vec![entry("age", Value::Seq(wrap_age(&key, recipients)?))]
    };
    meta.extend([
        entry("lastmodified", Value::Str(lastmodified)),
        entry(
            "mac",
            Value::Str(cipher::encrypt(
                &key,
                &random(),
                mac_hex.as_bytes(),
                &aad,
                "str",
            )),
        ),
    ]);
    match &opts.encrypted_regex {
        Some(r) => meta.push(entry("encrypted_regex", Value::Str(r.clone()))),
        None => meta.push(entry(
            "unencrypted_suffix",
            Value::Str("_unencrypted".into()),
        )),
    }
    meta.push(entry("version", Value::Str("3.9.0".into())));
    let meta = Value::Map(meta);
    Ok(match format {
        Format::Yaml => {
            if let Some(Value::Map(items)) = docs.first_mut() {
                items.push(entry("sops", meta));
            }
            yaml::emit(&docs).into_bytes()
        }
        Format::Json | Format::Binary => {
            if let Some(Value::Map(items)) = docs.first_mut() {
                items.push(entry("sops", meta));
            }
            json::emit(&docs[0]).into_bytes()
        }
        Format::Dotenv => {
            let mut flat = Vec::new();
            flatten("", &meta, &mut flat);
            if let Some(Value::Map(items)) = docs.first_mut() {
                for (k, v) in flat {
                    items.push(entry(&format!("sops_{k}"), Value::Str(v)));
                }
            }
            // Metadata values were escaped by `flatten`; dotenv::emit escapes the data.
            dotenv::emit(&docs[0]).into_bytes()
        }
        Format::Ini => unreachable!("rejected above"),
    })
}
