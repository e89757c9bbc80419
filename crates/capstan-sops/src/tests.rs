//! In-memory tests: vectors made here with the `age` crate (see `encrypt`).
// X25519 identities and recipients are deprecated by age 0.13 for new keys; SOPS files use them.
#![allow(deprecated)]

use crate::*;
use std::str::FromStr;

fn identity() -> (age::x25519::Identity, String) {
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    (id, r)
}

fn keys_for(id: &age::x25519::Identity) -> Keys {
    use age::secrecy::ExposeSecret;
    let mut k = Keys::new();
    k.add_age_identities(id.to_string().expose_secret())
        .unwrap();
    k
}

fn enc(plain: &str, f: Format, r: &str) -> String {
    String::from_utf8(encrypt(plain.as_bytes(), f, &[r], &EncryptOptions::default()).unwrap())
        .unwrap()
}

fn dec(file: &str, f: Format, k: &Keys, ignore_mac: bool) -> Result<String, SopsError> {
    decrypt(
        file.as_bytes(),
        f,
        k,
        DecryptOptions { ignore_mac },
        "f.sops",
    )
    .map(|b| String::from_utf8(b).unwrap())
}

const YAML: &str = "# head comment\napp:\n    db:\n        password: s3cr3t\n        port: 5432\n        # trailing\n    key: |\n        line one\n        line two\nratio: 0.5\nbig: 1.234568e+09\nflag: true\nlist:\n    - one\n    - two\nkept_unencrypted: plain\n";

#[test]
fn yaml_round_trips_byte_for_byte_with_comments_types_and_indent_4() {
    let (id, r) = identity();
    let file = enc(YAML, Format::Yaml, &r);
    assert!(!file.contains("s3cr3t"), "value encrypted");
    assert!(
        file.contains("kept_unencrypted: plain"),
        "_unencrypted suffix left clear"
    );
    assert!(file.contains("#ENC[AES256_GCM,"), "comments encrypted");
    assert_eq!(
        dec(&file, Format::Yaml, &keys_for(&id), false).unwrap(),
        YAML
    );
}

#[test]
fn json_dotenv_and_binary_round_trip() {
    let (id, r) = identity();
    let k = keys_for(&id);
    let json = "{\n\t\"a\": \"x<y\",\n\t\"n\": 3,\n\t\"f\": 2.5,\n\t\"l\": [\n\t\ttrue,\n\t\tnull\n\t],\n\t\"e\": {}\n}\n";
    assert_eq!(
        dec(&enc(json, Format::Json, &r), Format::Json, &k, false).unwrap(),
        json.replace('<', "\\u003c")
    );
    let env = "#comment\nA=1\nB=two\\nlines\n";
    assert_eq!(
        dec(&enc(env, Format::Dotenv, &r), Format::Dotenv, &k, false).unwrap(),
        env
    );
    let bin = "raw bytes\nwith lines";
    assert_eq!(
        dec(&enc(bin, Format::Binary, &r), Format::Binary, &k, false).unwrap(),
        bin
    );
}

#[test]
fn wrong_key_is_no_key_naming_the_recipients() {
    let (_, r) = identity();
    let (other, other_r) = identity();
    let e = dec(
        &enc("a: b\n", Format::Yaml, &r),
        Format::Yaml,
        &keys_for(&other),
        false,
    )
    .unwrap_err();
    assert_eq!(e.kind.class(), "no-key");
    let msg = e.to_string();
    assert!(
        msg.contains("f.sops") && msg.contains(&r) && msg.contains(&other_r),
        "{msg}"
    );
}

#[test]
fn altered_or_moved_value_fails_authentication_without_plaintext() {
    let (id, r) = identity();
    let file = enc("a: topsecret\nb: other\n", Format::Yaml, &r);
    // Move a's ciphertext to b: the path (additional data) differs.
    let lines: Vec<&str> = file.lines().collect();
    let a = lines[0].strip_prefix("a: ").unwrap();
    let swapped = file.replacen(lines[1], &format!("b: {a}"), 1);
    let e = dec(&swapped, Format::Yaml, &keys_for(&id), true).unwrap_err();
    assert_eq!(e.kind.class(), "value-auth");
    assert!(!e.to_string().contains("topsecret"));
}

#[test]
fn mac_covers_unencrypted_values_and_can_be_ignored() {
    let (id, r) = identity();
    let k = keys_for(&id);
    let file = enc("a: x\nb_unencrypted: clear\n", Format::Yaml, &r);
    let changed = file.replace("b_unencrypted: clear", "b_unencrypted: changed");
    assert_eq!(
        dec(&changed, Format::Yaml, &k, false)
            .unwrap_err()
            .kind
            .class(),
        "mac-mismatch"
    );
    assert_eq!(
        dec(&changed, Format::Yaml, &k, true).unwrap(),
        "a: x\nb_unencrypted: changed\n"
    );
    // lastmodified is the MAC's additional data.
    let lm = file.replace("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z");
    assert_eq!(
        dec(&lm, Format::Yaml, &k, false).unwrap_err().kind.class(),
        "mac-mismatch"
    );
    // No MAC at all.
    let start = file.find("mac: ENC[").unwrap();
    let end = start + file[start..].find('\n').unwrap();
    let nomac = format!("{}mac: \"\"{}", &file[..start], &file[end..]);
    assert_eq!(
        dec(&nomac, Format::Yaml, &k, false)
            .unwrap_err()
            .kind
            .class(),
        "mac-missing"
    );
    assert!(dec(&nomac, Format::Yaml, &k, true).is_ok());
}

#[test]
fn no_metadata_and_format_errors() {
    let k = Keys::new();
    assert_eq!(
        dec("a: b\n", Format::Yaml, &k, false).unwrap_err().kind,
        ErrorKind::NoMetadata
    );
    assert_eq!(
        dec("A=b\n", Format::Dotenv, &k, false).unwrap_err().kind,
        ErrorKind::NoMetadata
    );
    assert_eq!(
        dec("{\"a\": ", Format::Json, &k, false)
            .unwrap_err()
            .kind
            .class(),
        "format"
    );
    let e = dec("a: b\nsops:\n    mac: x\n", Format::Yaml, &k, false).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Metadata { ref field, .. } if field == "sops.lastmodified")
    );
}

#[test]
fn encrypted_regex_leaves_other_fields_clear() {
    let (id, r) = identity();
    let plain =
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: s\nstringData:\n    key: value\n";
    let opts = EncryptOptions {
        encrypted_regex: Some("^(data|stringData)$".into()),
        ..Default::default()
    };
    let file =
        String::from_utf8(encrypt(plain.as_bytes(), Format::Yaml, &[&r], &opts).unwrap()).unwrap();
    assert!(file.contains("name: s") && !file.contains("key: value"));
    assert_eq!(
        dec(&file, Format::Yaml, &keys_for(&id), false).unwrap(),
        plain
    );
}

#[test]
fn ini_output_is_go_ini_pretty_format() {
    let parsed = ini::parse("; c\n[s]\na = 1\nlonger = two\n\n[sops]\nlastmodified = x\n").unwrap();
    assert_eq!(
        ini::emit(&parsed.docs[0]),
        "; c\n[s]\na      = 1\nlonger = two\n"
    );
    assert!(parsed.meta.get("lastmodified").is_some());
}

#[test]
fn flattened_metadata_unflattens() {
    let v = meta::unflatten(&[
        ("age__list_0__map_recipient".into(), "r".into()),
        ("age__list_0__map_enc".into(), "e".into()),
        ("lastmodified".into(), "t".into()),
    ]);
    let age = v.get("age").unwrap();
    match age {
        Value::Seq(items) => assert_eq!(items.len(), 1),
        _ => panic!("list"),
    }
}

#[test]
fn flux_secret_keys_need_their_suffix() {
    let id = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret;
    let text = id.to_string().expose_secret().to_string();
    let e = flux::keys_from_secret(&[("age.key".into(), text.clone().into_bytes())]).unwrap_err();
    assert!(e.to_string().contains(".agekey") && e.to_string().contains("age.key"));
    assert!(!e.to_string().contains("AGE-SECRET-KEY-1"));
    let k = flux::keys_from_secret(&[
        ("age.agekey".into(), text.into_bytes()),
        ("sops.vault-token".into(), b"t".to_vec()),
        ("other".into(), b"x".to_vec()),
    ])
    .unwrap();
    assert_eq!(k.age_recipients(), vec![id.to_public().to_string()]);
}

#[test]
fn flux_decrypts_secret_objects_data_fields_and_honours_disabled() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (id, r) = identity();
    let k = keys_for(&id);
    let opts = EncryptOptions {
        encrypted_regex: Some("^(data|stringData)$".into()),
        ..Default::default()
    };
    let file = encrypt(
        b"apiVersion: v1\nkind: Secret\nmetadata:\n    name: s\nstringData:\n    key: value\n",
        Format::Json,
        &[&r],
        &opts,
    );
    // JSON input from YAML text fails: use JSON.
    assert!(file.is_err());
    let file = encrypt(
        br#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"key": "value"}}"#,
        Format::Json,
        &[&r],
        &opts,
    )
    .unwrap();
    let mut obj: serde_json::Value = serde_json::from_slice(&file).unwrap();
    let mut disabled = obj.clone();
    disabled["metadata"]["annotations"] =
        serde_json::json!({"kustomize.toolkit.fluxcd.io/decrypt": "Disabled"});
    assert!(!flux::decrypt_object(&mut disabled, &k).unwrap());
    assert!(flux::decrypt_object(&mut obj, &k).unwrap());
    assert_eq!(obj["stringData"]["key"], "value");
    assert!(obj.get("sops").is_none());
    // A data field holding an encrypted dotenv file, written back as dotenv.
    let env = encrypt(b"A=1\n", Format::Dotenv, &[&r], &EncryptOptions::default()).unwrap();
    let mut secret = serde_json::json!({"kind": "Secret", "metadata": {"name": "x"},
        "data": {"app.env": b64.encode(&env), "plain": b64.encode("p")}});
    assert!(flux::decrypt_object(&mut secret, &k).unwrap());
    assert_eq!(secret["data"]["app.env"], b64.encode("A=1\n"));
    assert_eq!(secret["data"]["plain"], b64.encode("p"));
}

#[test]
fn flux_decrypts_generator_sources_in_place() {
    let (id, r) = identity();
    let env = encrypt(
        b"PASSWORD=hunter2\n",
        Format::Dotenv,
        &[&r],
        &EncryptOptions::default(),
    )
    .unwrap();
    let mut fs = capstan_vfs::MemFs::new();
    fs.add(
        "/app/kustomization.yaml",
        "resources:\n- base\nsecretGenerator:\n- name: s\n  envs:\n  - app.env\n",
    );
    fs.add("/app/app.env", &env);
    fs.add(
        "/app/base/kustomization.yaml",
        "secretGenerator:\n- name: t\n  files:\n  - key=k.txt\n",
    );
    fs.add("/app/base/k.txt", b"not encrypted");
    let out = flux::decrypt_sources(
        &fs,
        std::path::Path::new("/"),
        std::path::Path::new("/app"),
        &keys_for(&id),
    )
    .unwrap();
    assert_eq!(
        out,
        vec![(
            std::path::PathBuf::from("/app/app.env"),
            b"PASSWORD=hunter2\n".to_vec()
        )]
    );
}

#[test]
fn age_recipient_parse_check() {
    assert!(age::x25519::Recipient::from_str("age1notvalid").is_err());
}

/// age v1.3's hybrid post-quantum recipient type (`age1pq1...`, `mlkem768x25519` stanza:
/// ML-KEM-768 + X25519 through HPKE): a data key wrapped for it unwraps with the
/// `AGE-SECRET-KEY-PQ-1...` identity, also in a key file beside X25519 identities.
#[test]
fn age_post_quantum_recipient_unwraps_the_data_key() {
    use age::secrecy::ExposeSecret;
    let pq = age::pq::Identity::generate();
    let r = pq.to_public().to_string();
    assert!(r.starts_with("age1pq1"));
    let file = enc(YAML, Format::Yaml, &r);
    assert!(file.contains("-----BEGIN AGE ENCRYPTED FILE-----"));
    let (x, _) = identity();
    let text = format!(
        "# x25519\n{}\n# post-quantum\n{}\n",
        x.to_string().expose_secret(),
        pq.to_string().expose_secret()
    );
    let mut k = Keys::new();
    assert_eq!(k.add_age_identities(&text).unwrap(), 2);
    assert_eq!(dec(&file, Format::Yaml, &k, false).unwrap(), YAML);
    assert_eq!(k.age_recipients()[1], r);
}

/// A file for a post-quantum recipient and only an X25519 key: `no-key`, naming the
/// file's recipient abbreviated (no 2000-character lines) and never plaintext.
#[test]
fn age_post_quantum_no_key_error_names_the_recipient_abbreviated() {
    let pq = age::pq::Identity::generate();
    let r = pq.to_public().to_string();
    let file = enc(YAML, Format::Yaml, &r);
    let (x, _) = identity();
    let e = dec(&file, Format::Yaml, &keys_for(&x), false).unwrap_err();
    assert_eq!(e.kind.class(), "no-key");
    let msg = e.to_string();
    assert!(
        msg.contains(&r[..24]) && msg.contains(&r[r.len() - 12..]),
        "{msg}"
    );
    assert!(!msg.contains(&r[..200]));
    assert!(!msg.contains("s3cr3t"));
}

/// A malformed `AGE-SECRET-KEY-PQ-1...` line fails the key file naming the line, without
/// echoing the key.
#[test]
fn age_post_quantum_identity_that_does_not_parse_names_its_line() {
    let mut k = Keys::new();
    let e = k
        .add_age_identities("# c\nAGE-SECRET-KEY-PQ-1QQQQ\n")
        .unwrap_err();
    assert_eq!(e, KeyLoadError::BadAgeIdentity { line: 2 });
    assert!(!e.to_string().contains("QQQQ"));
}

/// `key_groups` with `shamir_threshold`: the data key is split among the groups (SOPS's
/// Shamir scheme over GF(2^8)); keys of `threshold` groups decrypt, fewer are `no-key`
/// naming every group's recipients.
#[test]
fn shamir_key_groups_need_threshold_groups() {
    let ids: Vec<(age::x25519::Identity, String)> = (0..3).map(|_| identity()).collect();
    let opts = EncryptOptions {
        key_groups: ids.iter().map(|(_, r)| vec![r.clone()]).collect(),
        shamir_threshold: 2,
        ..Default::default()
    };
    let file =
        String::from_utf8(encrypt(YAML.as_bytes(), Format::Yaml, &[], &opts).unwrap()).unwrap();
    assert!(
        file.contains("key_groups:") && file.contains("shamir_threshold: 2"),
        "{file}"
    );
    let mut two = keys_for(&ids[0].0);
    two.extend(keys_for(&ids[2].0));
    assert_eq!(dec(&file, Format::Yaml, &two, false).unwrap(), YAML);
    let one = keys_for(&ids[1].0);
    let e = dec(&file, Format::Yaml, &one, false).unwrap_err();
    assert_eq!(e.kind.class(), "no-key");
    for (_, r) in &ids {
        assert!(e.to_string().contains(r.as_str()), "{e}");
    }
}
