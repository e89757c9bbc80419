//! Certificates, keys, passwords: shapes as Go/Sprig produce them, and validity checked
//! with `openssl` when it is installed.

use capstan_gotemplate::{TemplateSet, Value};

fn r(src: &str) -> Result<String, String> {
    let mut set = TemplateSet::new(capstan_sprig::funcs(Default::default()));
    set.add("t", src).map_err(|e| e.to_string())?;
    set.execute("t", &Value::Nil).map_err(|e| e.to_string())
}

fn openssl(args: &[&str], dir: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ca_and_signed_cert_are_valid_x509() {
    let out = r(r#"{{- $ca := genCA "my-ca" 365 -}}
{{- $c := genSignedCert "svc.ns" (list "10.0.0.1" "::1") (list "svc" "svc.ns.svc") 365 $ca -}}
{{- $s := genSelfSignedCert "self" nil (list "a.example") 30 -}}
{{ $ca.Cert }}@@{{ $ca.Key }}@@{{ $c.Cert }}@@{{ $c.Key }}@@{{ $s.Cert }}@@{{ $s.Key }}"#)
    .unwrap();
    let parts: Vec<&str> = out.split("@@").collect();
    assert_eq!(parts.len(), 6);
    for (i, p) in parts.iter().enumerate() {
        let label = if i % 2 == 0 {
            "CERTIFICATE"
        } else {
            "RSA PRIVATE KEY"
        };
        assert!(p.starts_with(&format!("-----BEGIN {label}-----\n")), "{p}");
        assert!(p.ends_with(&format!("-----END {label}-----\n")), "{p}");
        let body: Vec<&str> = p.lines().collect();
        for l in &body[1..body.len() - 2] {
            assert_eq!(l.len(), 64);
        }
    }
    // RSA 2048 PKCS#1 keys are 1190-1194 bytes: 26 lines with the markers.
    assert!(
        (26..=27).contains(&parts[1].lines().count()),
        "{}",
        parts[1]
    );

    let dir = std::env::temp_dir().join(format!("capstan-sprig-crypto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, name) in ["ca.crt", "ca.key", "c.crt", "c.key", "s.crt", "s.key"]
        .iter()
        .enumerate()
    {
        std::fs::write(dir.join(name), parts[i]).unwrap();
    }
    let Some(text) = openssl(&["x509", "-in", "ca.crt", "-noout", "-text"], &dir) else {
        return; // no openssl here
    };
    assert!(
        text.contains("Subject: CN=my-ca") || text.contains("Subject: CN = my-ca"),
        "{text}"
    );
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");
    let v = openssl(&["verify", "-CAfile", "ca.crt", "c.crt"], &dir).unwrap();
    assert!(v.contains("c.crt: OK"), "{v}");
    let text = openssl(&["x509", "-in", "c.crt", "-noout", "-text"], &dir).unwrap();
    assert!(
        text.contains("DNS:svc, DNS:svc.ns.svc, IP Address:10.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    assert!(text.contains("Authority Key Identifier"), "{text}");
    let v = openssl(&["verify", "-CAfile", "s.crt", "s.crt"], &dir).unwrap();
    assert!(v.contains("OK"), "{v}");
    for k in ["ca.key", "c.key", "s.key"] {
        openssl(&["rsa", "-in", k, "-check", "-noout"], &dir).unwrap();
    }
    std::fs::write(
        dir.join("dsa.key"),
        r(r#"{{ genPrivateKey "dsa" }}"#).unwrap(),
    )
    .unwrap();
    let t = openssl(&["dsa", "-in", "dsa.key", "-noout", "-text"], &dir).unwrap();
    assert!(t.contains("(2048 bit)"), "{t}");
    std::fs::write(
        dir.join("ec.key"),
        r(r#"{{ genPrivateKey "ecdsa" }}"#).unwrap(),
    )
    .unwrap();
    openssl(&["ec", "-in", "ec.key", "-check", "-noout"], &dir).unwrap();
    std::fs::write(
        dir.join("ed.key"),
        r(r#"{{ genPrivateKey "ed25519" }}"#).unwrap(),
    )
    .unwrap();
    openssl(&["pkey", "-in", "ed.key", "-noout"], &dir).unwrap();
    // the certificate's key is the key returned
    let m1 = openssl(&["x509", "-in", "c.crt", "-noout", "-modulus"], &dir).unwrap();
    let m2 = openssl(&["rsa", "-in", "c.key", "-noout", "-modulus"], &dir).unwrap();
    assert_eq!(m1, m2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn private_keys_and_with_key_variants() {
    let ec = r(r#"{{ genPrivateKey "ecdsa" }}"#).unwrap();
    assert!(ec.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    assert_eq!(ec.lines().count(), 5, "{ec}");
    let ed = r(r#"{{ genPrivateKey "ed25519" }}"#).unwrap();
    assert!(ed.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(ed.lines().count(), 3, "{ed}");
    assert_eq!(
        r(r#"{{ genPrivateKey "foo" }}"#).unwrap(),
        "Unknown type foo"
    );
    let out = r(r#"{{- $k := genPrivateKey "ecdsa" -}}
{{- $ca := genCAWithKey "ca" 10 $k -}}
{{- $c := genSignedCertWithKey "x" nil nil 10 $ca (genPrivateKey "ed25519") -}}
{{- $s := genSelfSignedCertWithKey "y" nil nil 10 $k -}}
{{ eq $ca.Key $k }} {{ $c.Key | trunc 27 }} {{ eq $s.Key $k }}"#)
    .unwrap();
    assert_eq!(out, "true -----BEGIN PRIVATE KEY----- true");
    let e = r(r#"{{ genCAWithKey "ca" 10 "junk" }}"#).unwrap_err();
    assert!(
        e.ends_with("error calling genCAWithKey: parsing private key: no PEM data in input"),
        "{e}"
    );
}

#[test]
fn build_custom_cert_round_trip() {
    let out = r(r#"{{- $ca := genCA "x" 1 -}}
{{- $b := buildCustomCert ($ca.Cert | b64enc) ($ca.Key | b64enc) -}}
{{ eq $b.Cert $ca.Cert }} {{ eq $b.Key $ca.Key }} {{ typeOf $b }}"#)
    .unwrap();
    assert_eq!(out, "true true sprig.certificate");
    let e = r(r#"{{ buildCustomCert "!!" "" }}"#).unwrap_err();
    assert!(e.ends_with("unable to decode base64 certificate"), "{e}");
}

#[test]
fn argument_types_are_checked_like_go() {
    let e = r(r#"{{ genCA "x" 1.5 }}"#).unwrap_err();
    assert!(e.ends_with("at <1.5>: expected integer; found 1.5"), "{e}");
    let e = r(r#"{{ $d := 1.5 }}{{ genCA "x" $d }}"#).unwrap_err();
    assert!(
        e.ends_with("at <$d>: wrong type for value; expected int; got float64"),
        "{e}"
    );
    let e = r(r#"{{ genSignedCert "x" nil nil 1 (dict) }}"#).unwrap_err();
    assert!(
        e.ends_with("at <dict>: wrong type for value; expected sprig.certificate; got map[string]interface {}"),
        "{e}"
    );
    let e = r(r#"{{ genSelfSignedCert "x" (list "1.2.3") nil 1 }}"#).unwrap_err();
    assert!(e.ends_with("error parsing ip: 1.2.3"), "{e}");
}

#[test]
fn htpasswd_and_aes() {
    let h = r(r#"{{ htpasswd "user" "pw" }}"#).unwrap();
    assert!(h.starts_with("user:$2a$10$"), "{h}");
    assert_eq!(h.len(), "user:".len() + 60);
    assert!(bcrypt::verify("pw", &h[5..]).unwrap());
    assert_eq!(
        r(r#"{{ htpasswd "a:b" "pw" }}"#).unwrap(),
        "invalid username: a:b"
    );
    assert_eq!(
        r(r#"{{ encryptAES "secretkey" "plaintext" | decryptAES "secretkey" }}"#).unwrap(),
        "plaintext"
    );
    // made by Helm's encryptAES "secretkey" "plaintext" (the oracle)
    assert_eq!(
        r(r#"{{ "AfEQyRoJkZbL+zgDZYHkjazugOs/QxqZsCX8+m2eEHc=" | decryptAES "secretkey" }}"#)
            .unwrap(),
        "plaintext"
    );
}

#[test]
fn derive_password_template() {
    assert_eq!(
        r(r#"{{ derivePassword 1 "long" "password" "user" "example.com" }}"#).unwrap(),
        "ZedaFaxcZaso9*"
    );
}
