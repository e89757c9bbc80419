//! Sprig's certificate, key, password and encryption functions, producing what Go's
//! `crypto/x509`, `encoding/pem`, `golang.org/x/crypto/bcrypt` and `scrypt` produce: the
//! same ASN.1 structures (so the same PEM sizes and line counts), the same PEM block types
//! (`RSA PRIVATE KEY` PKCS#1, `EC PRIVATE KEY` SEC1, `PRIVATE KEY` PKCS#8 for ed25519), the
//! same certificate extensions in Go's order, and Sprig's error strings.
//!
//! Keys and signatures come from `aws-lc-rs` (optimized C even in debug builds: RSA
//! generation stays fast in tests; RSA primes are searched in [`crate::rsagen`]); the
//! certificate DER is assembled in [`crate::der`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use base64::Engine as _;
use capstan_gotemplate::{FuncMap, Map, StructObject, Value};
use sha1::Digest as _;

use crate::der::{self, Reader};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// OIDs
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const PRIME256V1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const ED25519: &[u64] = &[1, 3, 101, 112];
const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const EXT_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const EXT_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const EXT_SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const EXT_AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];
const EXT_SAN: &[u64] = &[2, 5, 29, 17];
const SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

// ---------------------------------------------------------------------------------------
// PEM

/// Go's `pem.EncodeToMemory`: base64 in 64-character lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut out = String::with_capacity(b.len() + b.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Go's `pem.Decode` (first block; headers are skipped): the block type and its bytes.
pub(crate) fn pem_decode(s: &str) -> Option<(String, Vec<u8>)> {
    let start = s.find("-----BEGIN ")?;
    let rest = &s[start + 11..];
    let end_label = rest.find("-----")?;
    let label = &rest[..end_label];
    if label.contains('\n') {
        return None;
    }
    let body = &rest[end_label + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body.find(&end_marker)?;
    let mut b64 = String::new();
    for line in body[..end].lines() {
        if line.contains(':') {
            continue; // a header
        }
        b64.extend(line.chars().filter(|c| !c.is_whitespace()));
    }
    let bytes = B64.decode(b64.as_bytes()).ok()?;
    Some((label.to_string(), bytes))
}

// ---------------------------------------------------------------------------------------
// Keys

/// A private key of one of the types Sprig handles.
pub(crate) enum Key {
    /// PKCS#1 `RSAPrivateKey` DER.
    Rsa(Vec<u8>),
    /// P-256: the private scalar (32 bytes) and the uncompressed public point.
    Ec { scalar: Vec<u8>, public: Vec<u8> },
    /// Ed25519 seed and public key.
    Ed25519 { seed: Vec<u8>, public: Vec<u8> },
}

fn rng_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        for x in b.iter_mut() {
            *x = super::funcs_rand_byte();
        }
    }
    b
}

/// The PKCS#1 key inside a PKCS#8 `PrivateKeyInfo`, with the algorithm OID.
fn unwrap_pkcs8(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut r = Reader::new(der);
    let info = r.expect(der::SEQUENCE)?;
    let mut r = Reader::new(info.content);
    r.expect(der::INTEGER)?;
    let alg = r.expect(der::SEQUENCE)?;
    let alg_oid = Reader::new(alg.content).expect(der::OID)?;
    let key = r.expect(der::OCTET_STRING)?;
    Some((alg_oid.raw.to_vec(), key.content.to_vec()))
}

impl Key {
    /// A new RSA key (see [`crate::rsagen`]: sieved prime search on two threads).
    pub(crate) fn generate_rsa(bits: usize) -> Result<Key, String> {
        let bits = match bits {
            4096 | 3072 => bits,
            _ => 2048,
        };
        Ok(Key::Rsa(crate::rsagen::generate_pkcs1(bits)?))
    }

    pub(crate) fn generate_ec() -> Result<Key, String> {
        let kp = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| "failed to generate private key".to_string())?;
        Self::from_ec_pair(&kp)
    }

    fn from_ec_pair(kp: &sig::EcdsaKeyPair) -> Result<Key, String> {
        let scalar =
            AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin>::as_be_bytes(&kp.private_key())
                .map_err(|_| "failed to generate private key".to_string())?;
        Ok(Key::Ec {
            scalar: scalar.as_ref().to_vec(),
            public: kp.public_key().as_ref().to_vec(),
        })
    }

    pub(crate) fn generate_ed25519() -> Result<Key, String> {
        let seed = rng_bytes(32);
        let kp = sig::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| "failed to generate private key".to_string())?;
        Ok(Key::Ed25519 {
            public: kp.public_key().as_ref().to_vec(),
            seed,
        })
    }

    /// Sprig's `pemBlockForKey`.
    pub(crate) fn to_pem(&self) -> String {
        match self {
            Key::Rsa(pkcs1) => pem_encode("RSA PRIVATE KEY", pkcs1),
            Key::Ec { scalar, public } => pem_encode("EC PRIVATE KEY", &ec_sec1(scalar, public)),
            Key::Ed25519 { seed, .. } => {
                let inner = der::octets(seed);
                let info = der::seq(&[
                    &der::small_int(0),
                    &der::seq(&[&der::oid(ED25519)]),
                    &der::octets(&inner),
                ]);
                pem_encode("PRIVATE KEY", &info)
            }
        }
    }

    /// Sprig's `parsePrivateKeyPEM`.
    pub(crate) fn from_pem(s: &str) -> Result<Key, String> {
        let (label, bytes) = pem_decode(s).ok_or_else(|| "no PEM data in input".to_string())?;
        if label == "PRIVATE KEY" {
            let (alg, inner) = unwrap_pkcs8(&bytes)
                .ok_or_else(|| "decoding PEM as PKCS#8: asn1: structure error".to_string())?;
            if alg == der::oid(RSA_ENCRYPTION) {
                return Self::rsa_from_pkcs1(&inner)
                    .map_err(|e| format!("decoding PEM as PKCS#8: {e}"));
            }
            if alg == der::oid(ED25519) {
                let seed = Reader::new(&inner)
                    .expect(der::OCTET_STRING)
                    .map(|t| t.content.to_vec())
                    .filter(|s| s.len() == 32)
                    .ok_or_else(|| {
                        "decoding PEM as PKCS#8: x509: invalid ED25519 private key".to_string()
                    })?;
                let kp = sig::Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| {
                    "decoding PEM as PKCS#8: x509: invalid ED25519 private key".to_string()
                })?;
                return Ok(Key::Ed25519 {
                    public: kp.public_key().as_ref().to_vec(),
                    seed,
                });
            }
            if alg == der::oid(EC_PUBLIC_KEY) {
                return Self::ec_from_sec1(&inner)
                    .map_err(|e| format!("decoding PEM as PKCS#8: {e}"));
            }
            return Err(
                "decoding PEM as PKCS#8: x509: PKCS#8 wrapping contained private key with unknown algorithm"
                    .into(),
            );
        }
        let Some(kind) = label.strip_suffix(" PRIVATE KEY") else {
            return Err(format!("no private key data in PEM block of type {label}"));
        };
        match kind {
            "RSA" => Self::rsa_from_pkcs1(&bytes)
                .map_err(|e| format!("parsing RSA private key from PEM: {e}")),
            "EC" => Self::ec_from_sec1(&bytes)
                .map_err(|e| format!("parsing EC private key from PEM: {e}")),
            "DSA" => Err("parsing DSA private key from PEM: DSA keys are not supported".into()),
            _ => Err(format!("invalid private key type {label}")),
        }
    }

    fn rsa_from_pkcs1(der: &[u8]) -> Result<Key, String> {
        aws_lc_rs::rsa::KeyPair::from_der(der)
            .map_err(|_| "x509: failed to parse private key".to_string())?;
        Ok(Key::Rsa(der.to_vec()))
    }

    fn ec_from_sec1(der: &[u8]) -> Result<Key, String> {
        let kp = sig::EcdsaKeyPair::from_private_key_der(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| "x509: failed to parse EC private key".to_string())?;
        Self::from_ec_pair(&kp)
    }

    /// The DER `SubjectPublicKeyInfo`.
    fn spki(&self) -> Result<Vec<u8>, String> {
        Ok(match self {
            Key::Rsa(pkcs1) => {
                let (n, e) = rsa_public(pkcs1).ok_or("x509: malformed RSA private key")?;
                let pk = der::seq(&[&der::uint(&n), &der::uint(&e)]);
                der::seq(&[
                    &der::seq(&[&der::oid(RSA_ENCRYPTION), &der::tlv(der::NULL, &[])]),
                    &der::bit_string(&pk),
                ])
            }
            Key::Ec { public, .. } => der::seq(&[
                &der::seq(&[&der::oid(EC_PUBLIC_KEY), &der::oid(PRIME256V1)]),
                &der::bit_string(public),
            ]),
            Key::Ed25519 { public, .. } => {
                der::seq(&[&der::seq(&[&der::oid(ED25519)]), &der::bit_string(public)])
            }
        })
    }

    /// The raw public key bytes (the SPKI's BIT STRING content), for key identifiers.
    fn public_bits(&self) -> Result<Vec<u8>, String> {
        let spki = self.spki()?;
        let mut r = Reader::new(&spki);
        let s = r.expect(der::SEQUENCE).ok_or("bad spki")?;
        let mut r = Reader::new(s.content);
        r.next();
        let bits = r.expect(der::BIT_STRING).ok_or("bad spki")?;
        Ok(bits.content[1..].to_vec())
    }

    /// The signature `AlgorithmIdentifier` Go picks for this signing key.
    fn sig_alg(&self) -> Vec<u8> {
        match self {
            Key::Rsa(_) => der::seq(&[&der::oid(SHA256_WITH_RSA), &der::tlv(der::NULL, &[])]),
            Key::Ec { .. } => der::seq(&[&der::oid(ECDSA_SHA256)]),
            Key::Ed25519 { .. } => der::seq(&[&der::oid(ED25519)]),
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let fail = |_| "error creating certificate: signing failed".to_string();
        match self {
            Key::Rsa(pkcs1) => {
                let kp = aws_lc_rs::rsa::KeyPair::from_der(pkcs1)
                    .map_err(|_| "error creating certificate: bad RSA key".to_string())?;
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                    .map_err(fail)?;
                Ok(out)
            }
            Key::Ec { scalar, public } => {
                let kp = sig::EcdsaKeyPair::from_private_key_der(
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &ec_sec1(scalar, public),
                )
                .map_err(|_| "error creating certificate: bad EC key".to_string())?;
                Ok(kp.sign(&rng, msg).map_err(fail)?.as_ref().to_vec())
            }
            Key::Ed25519 { seed, .. } => {
                let kp = sig::Ed25519KeyPair::from_seed_unchecked(seed)
                    .map_err(|_| "error creating certificate: bad ed25519 key".to_string())?;
                Ok(kp.sign(msg).as_ref().to_vec())
            }
        }
    }
}

/// Sprig's DSA key (`dsa.GenerateParameters` L2048N256, then `GenerateKey`), marshalled as
/// its `DSAKeyFormat{Version, P, Q, G, Y, X}` in a `DSA PRIVATE KEY` block. The parameters
/// come from AWS-LC (2048-bit p, 256-bit q).
fn generate_dsa_pem() -> Result<String, String> {
    use aws_lc_sys as ffi;
    // SAFETY: plain AWS-LC object lifecycle: the DSA is created, filled, read through
    // borrowed BIGNUM pointers (valid while `dsa` lives), copied out and freed exactly once.
    unsafe {
        let dsa = ffi::DSA_new();
        if dsa.is_null() {
            return Err("out of memory".into());
        }
        let ok = ffi::DSA_generate_parameters_ex(
            dsa,
            2048,
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ) == 1
            && ffi::DSA_generate_key(dsa) == 1;
        if !ok {
            ffi::DSA_free(dsa);
            return Err("parameter generation failed".into());
        }
        let (mut p, mut q, mut g) = (std::ptr::null(), std::ptr::null(), std::ptr::null());
        let (mut y, mut x) = (std::ptr::null(), std::ptr::null());
        ffi::DSA_get0_pqg(dsa, &mut p, &mut q, &mut g);
        ffi::DSA_get0_key(dsa, &mut y, &mut x);
        let bn = |b: *const ffi::BIGNUM| -> Vec<u8> {
            if b.is_null() {
                return Vec::new();
            }
            let mut v = vec![0u8; ffi::BN_num_bytes(b) as usize];
            let n = ffi::BN_bn2bin(b, v.as_mut_ptr());
            v.truncate(n);
            v
        };
        let parts = [bn(p), bn(q), bn(g), bn(y), bn(x)];
        ffi::DSA_free(dsa);
        let ints: Vec<Vec<u8>> = parts.iter().map(|b| der::uint(b)).collect();
        let zero = der::small_int(0);
        let mut refs: Vec<&[u8]> = vec![&zero];
        refs.extend(ints.iter().map(|v| v.as_slice()));
        Ok(pem_encode("DSA PRIVATE KEY", &der::seq(&refs)))
    }
}

/// Go's `x509.MarshalECPrivateKey` (SEC 1, with the curve and the public key).
fn ec_sec1(scalar: &[u8], public: &[u8]) -> Vec<u8> {
    let mut padded = vec![0u8; 32usize.saturating_sub(scalar.len())];
    padded.extend_from_slice(scalar);
    der::seq(&[
        &der::small_int(1),
        &der::octets(&padded),
        &der::tlv(0xa0, &der::oid(PRIME256V1)),
        &der::tlv(0xa1, &der::bit_string(public)),
    ])
}

/// The modulus and public exponent of a PKCS#1 `RSAPrivateKey`.
fn rsa_public(pkcs1: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let s = Reader::new(pkcs1).expect(der::SEQUENCE)?;
    let mut r = Reader::new(s.content);
    r.expect(der::INTEGER)?;
    let n = r.expect(der::INTEGER)?;
    let e = r.expect(der::INTEGER)?;
    Some((
        der::int_magnitude(n.content).to_vec(),
        der::int_magnitude(e.content).to_vec(),
    ))
}

// ---------------------------------------------------------------------------------------
// Certificates

/// What Sprig's `getBaseCertTemplate` sets, plus `IsCA`.
struct CertTemplate {
    cn: String,
    ips: Vec<Vec<u8>>,
    dns: Vec<String>,
    days: i64,
    is_ca: bool,
}

/// Go's ASN.1 string choice for a `pkix.Name` value: PrintableString when every character
/// is in its set, else UTF8String.
fn asn1_string(s: &str) -> Vec<u8> {
    let printable = s.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    });
    der::tlv(if printable { 0x13 } else { 0x0c }, s.as_bytes())
}

fn name_der(cn: &str) -> Vec<u8> {
    if cn.is_empty() {
        return der::seq(&[]);
    }
    let atv = der::seq(&[&der::oid(COMMON_NAME), &asn1_string(cn)]);
    der::seq(&[&der::cons(der::SET, &[&atv])])
}

/// Go's ASN.1 time: UTCTime for 1950..2049, GeneralizedTime otherwise.
fn time_der(t: SystemTime) -> Vec<u8> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    use chrono::Datelike as _;
    let y = dt.year();
    if (1950..2050).contains(&y) {
        der::tlv(0x17, dt.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        der::tlv(0x18, dt.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// Go's `marshalKeyUsage`: bits reversed, trailing zero bits dropped.
fn key_usage_der(ku: u16) -> Vec<u8> {
    let a = [(ku as u8).reverse_bits(), ((ku >> 8) as u8).reverse_bits()];
    let bytes: &[u8] = if a[1] != 0 { &a } else { &a[..1] };
    let last = bytes[bytes.len() - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut c = vec![unused];
    c.extend_from_slice(bytes);
    der::tlv(der::BIT_STRING, &c)
}

fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        der::seq(&[
            &der::oid(oid),
            &der::tlv(der::BOOLEAN, &[0xff]),
            &der::octets(value),
        ])
    } else {
        der::seq(&[&der::oid(oid), &der::octets(value)])
    }
}

/// The parts of a parent certificate `x509.CreateCertificate` uses.
struct Parent {
    subject: Vec<u8>,
    skid: Option<Vec<u8>>,
}

/// Go's `x509.CreateCertificate` for Sprig's templates, as PEM.
fn create_certificate(
    t: &CertTemplate,
    subject_key: &Key,
    parent: Option<&Parent>,
    signing_key: &Key,
) -> Result<String, String> {
    let mut serial = rng_bytes(16);
    if serial.iter().all(|b| *b == 0) {
        serial[15] = 1;
    }
    let subject = name_der(&t.cn);
    let issuer = parent.map(|p| p.subject.clone()).unwrap_or(subject.clone());
    let now = SystemTime::now();
    // Go: time.Now().Add(time.Hour * 24 * time.Duration(daysValid)), an int64 count of
    // nanoseconds that wraps around for huge day counts (so NotAfter stays within about
    // 292 years of now)
    let span_ns = t.days.wrapping_mul(86_400_000_000_000);
    let span = Duration::from_nanos(span_ns.unsigned_abs());
    let not_after = if span_ns >= 0 {
        now.checked_add(span)
    } else {
        now.checked_sub(span)
    }
    .unwrap_or(UNIX_EPOCH);
    let spki = subject_key.spki()?;

    let mut exts: Vec<Vec<u8>> = Vec::new();
    // KeyUsage: DigitalSignature(1) | KeyEncipherment(4) [| CertSign(32)]
    let ku: u16 = if t.is_ca { 1 | 4 | 32 } else { 1 | 4 };
    exts.push(extension(EXT_KEY_USAGE, true, &key_usage_der(ku)));
    exts.push(extension(
        EXT_EXT_KEY_USAGE,
        false,
        &der::seq(&[&der::oid(SERVER_AUTH), &der::oid(CLIENT_AUTH)]),
    ));
    let bc = if t.is_ca {
        der::seq(&[&der::tlv(der::BOOLEAN, &[0xff])])
    } else {
        der::seq(&[])
    };
    exts.push(extension(EXT_BASIC_CONSTRAINTS, true, &bc));
    if t.is_ca {
        let h = sha1::Sha1::digest(subject_key.public_bits()?);
        exts.push(extension(EXT_SUBJECT_KEY_ID, false, &der::octets(&h)));
    }
    if let Some(p) = parent {
        if p.subject != subject {
            if let Some(skid) = &p.skid {
                let akid = der::seq(&[&der::tlv(0x80, skid)]);
                exts.push(extension(EXT_AUTHORITY_KEY_ID, false, &akid));
            }
        }
    }
    if !t.dns.is_empty() || !t.ips.is_empty() {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for d in &t.dns {
            names.push(der::tlv(0x82, d.as_bytes()));
        }
        for ip in &t.ips {
            names.push(der::tlv(0x87, ip));
        }
        let refs: Vec<&[u8]> = names.iter().map(|v| v.as_slice()).collect();
        exts.push(extension(EXT_SAN, false, &der::seq(&refs)));
    }
    let ext_refs: Vec<&[u8]> = exts.iter().map(|v| v.as_slice()).collect();
    let sig_alg = signing_key.sig_alg();
    let tbs = der::seq(&[
        &der::tlv(0xa0, &der::small_int(2)),
        &der::uint(&serial),
        &sig_alg,
        &issuer,
        &der::seq(&[&time_der(now), &time_der(not_after)]),
        &subject,
        &spki,
        &der::tlv(0xa3, &der::seq(&ext_refs)),
    ]);
    let signature = signing_key.sign(&tbs)?;
    let cert = der::seq(&[&tbs, &sig_alg, &der::bit_string(&signature)]);
    Ok(pem_encode("CERTIFICATE", &cert))
}

/// Reads a certificate PEM: its subject and subject key identifier.
fn parse_parent(pem: &str) -> Result<Parent, String> {
    let (_, bytes) = pem_decode(pem).ok_or_else(|| "unable to decode certificate".to_string())?;
    let malformed = || {
        "error parsing certificate: decodedSignerCert.Bytes: x509: malformed certificate"
            .to_string()
    };
    let cert = Reader::new(&bytes)
        .expect(der::SEQUENCE)
        .ok_or_else(malformed)?;
    let tbs = Reader::new(cert.content)
        .expect(der::SEQUENCE)
        .ok_or_else(malformed)?;
    let mut r = Reader::new(tbs.content);
    let mut first = r.next().ok_or_else(malformed)?;
    if first.tag == 0xa0 {
        first = r.next().ok_or_else(malformed)?; // serial
    }
    if first.tag != der::INTEGER {
        return Err(malformed());
    }
    r.expect(der::SEQUENCE).ok_or_else(malformed)?; // signature algorithm
    r.expect(der::SEQUENCE).ok_or_else(malformed)?; // issuer
    r.expect(der::SEQUENCE).ok_or_else(malformed)?; // validity
    let subject = r.expect(der::SEQUENCE).ok_or_else(malformed)?.raw.to_vec();
    r.expect(der::SEQUENCE).ok_or_else(malformed)?; // spki
    let mut skid = None;
    while !r.is_empty() {
        let t = r.next().ok_or_else(malformed)?;
        if t.tag != 0xa3 {
            continue;
        }
        let exts = Reader::new(t.content)
            .expect(der::SEQUENCE)
            .ok_or_else(malformed)?;
        let mut er = Reader::new(exts.content);
        while let Some(ext) = er.expect(der::SEQUENCE) {
            let mut x = Reader::new(ext.content);
            let Some(id) = x.expect(der::OID) else {
                continue;
            };
            let mut v = x.next();
            if v.is_some_and(|v| v.tag == der::BOOLEAN) {
                v = x.next();
            }
            if id.raw == der::oid(EXT_SUBJECT_KEY_ID).as_slice() {
                if let Some(v) = v {
                    skid = Reader::new(v.content)
                        .expect(der::OCTET_STRING)
                        .map(|o| o.content.to_vec());
                }
            }
        }
    }
    Ok(Parent { subject, skid })
}

fn cert_value(cert: String, key: String) -> Value {
    let mut data = Map::new();
    data.insert("Cert".into(), Value::from(cert.clone()));
    data.insert("Key".into(), Value::from(key.clone()));
    StructObject::new("sprig.certificate")
        .with_field("Cert", Value::from(cert))
        .with_field("Key", Value::from(key))
        .with_data(Value::map(data))
        .into_value()
}

// ---------------------------------------------------------------------------------------
// Argument conversion (Go's reflect rules for the functions' parameter types)

fn want_args(name: &str, a: &[Value], n: usize) -> Result<(), String> {
    if a.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

use capstan_gotemplate::arg_type_error;

fn want_string(a: &[Value], i: usize) -> Result<String, String> {
    match &a[i] {
        Value::String(s) => Ok(s.to_string()),
        _ => Err(arg_type_error(i, "string")),
    }
}

fn want_int(a: &[Value], i: usize) -> Result<i64, String> {
    match &a[i] {
        Value::Int(n) => Ok(*n),
        _ => Err(arg_type_error(i, "int")),
    }
}

fn want_list(a: &[Value], i: usize) -> Result<Option<Vec<Value>>, String> {
    match &a[i] {
        Value::List(l) => Ok(Some(l.to_vec())),
        Value::Nil => Ok(None),
        _ => Err(arg_type_error(i, "[]interface {}")),
    }
}

fn want_cert(a: &[Value], i: usize) -> Result<(String, String), String> {
    match &a[i] {
        Value::Object(o) if o.type_name() == "sprig.certificate" => {
            let f = |n: &str| o.field(n).map(|v| crate::strval(&v)).unwrap_or_default();
            Ok((f("Cert"), f("Key")))
        }
        _ => Err(arg_type_error(i, "sprig.certificate")),
    }
}

/// Go's `net.ParseIP`, as the bytes x509 writes (4 for IPv4).
fn parse_ip(s: &str) -> Option<Vec<u8>> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(v4.octets().to_vec()),
        std::net::IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        }),
    }
}

fn base_template(
    a: &[Value],
    cn: usize,
    ips: Option<usize>,
    days: usize,
) -> Result<CertTemplate, String> {
    let cn = want_string(a, cn)?;
    let (ips, dns) = match ips {
        Some(i) => (want_list(a, i)?, want_list(a, i + 1)?),
        None => (None, None),
    };
    let days = want_int(a, days)?;
    let mut ip_bytes = Vec::new();
    for ip in ips.unwrap_or_default() {
        let Value::String(s) = &ip else {
            return Err(format!(
                "error parsing ip: {} is not a string",
                ip.to_go_string()
            ));
        };
        ip_bytes.push(parse_ip(s).ok_or_else(|| format!("error parsing ip: {s}"))?);
    }
    let mut names = Vec::new();
    for d in dns.unwrap_or_default() {
        let Value::String(s) = &d else {
            return Err(format!(
                "error processing alternate dns name: {} is not a string",
                d.to_go_string()
            ));
        };
        names.push(s.to_string());
    }
    Ok(CertTemplate {
        cn,
        ips: ip_bytes,
        dns: names,
        days,
        is_ca: false,
    })
}

fn self_signed(t: &CertTemplate, key: Key) -> Result<Value, String> {
    let cert = create_certificate(t, &key, None, &key)?;
    Ok(cert_value(cert, key.to_pem()))
}

fn signed(t: &CertTemplate, key: Key, a: &[Value], ca: usize) -> Result<Value, String> {
    let (ca_cert, ca_key) = want_cert(a, ca)?;
    let parent = parse_parent(&ca_cert)?;
    let signer = Key::from_pem(&ca_key).map_err(|e| format!("error parsing private key: {e}"))?;
    let cert = create_certificate(t, &key, Some(&parent), &signer)?;
    Ok(cert_value(cert, key.to_pem()))
}

fn pem_key_arg(a: &[Value], i: usize) -> Result<Key, String> {
    let s = want_string(a, i)?;
    Key::from_pem(&s).map_err(|e| format!("parsing private key: {e}"))
}

// ---------------------------------------------------------------------------------------
// Passwords, encryption

const MASTER_PASSWORD_SEED: &str = "com.lyndir.masterpassword";

fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_chars(c: u8) -> &'static [u8] {
    match c {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        b'x' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
        _ => b"",
    }
}

/// Sprig's `derivePassword` (the Master Password algorithm, v3).
pub(crate) fn derive_password(
    counter: u32,
    kind: &str,
    password: &str,
    user: &str,
    site: &str,
) -> String {
    let Some(templates) = password_templates(kind) else {
        return format!("cannot find password template {kind}");
    };
    let mut salt = MASTER_PASSWORD_SEED.as_bytes().to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let mut key = [0u8; 64];
    if let Err(e) = scrypt(password.as_bytes(), &salt, &mut key) {
        return format!("failed to derive password: {e}");
    }
    let mut msg = MASTER_PASSWORD_SEED.as_bytes().to_vec();
    msg.extend_from_slice(&(site.len() as u32).to_be_bytes());
    msg.extend_from_slice(site.as_bytes());
    msg.extend_from_slice(&counter.to_be_bytes());
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let seed = aws_lc_rs::hmac::sign(&hkey, &msg);
    let seed = seed.as_ref();
    let temp = templates[seed[0] as usize % templates.len()].as_bytes();
    temp.iter()
        .enumerate()
        .map(|(i, c)| {
            let chars = template_chars(*c);
            chars[seed[i + 1] as usize % chars.len()] as char
        })
        .collect()
}

/// scrypt with Sprig's parameters (N=32768, r=8, p=2), through AWS-LC (the pure-Rust
/// crate takes seconds per call in debug builds).
fn scrypt(password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), String> {
    // SAFETY: every pointer comes with its slice's length; AWS-LC reads `password` and
    // `salt` and writes exactly `out.len()` bytes to `out`.
    let rc = unsafe {
        aws_lc_sys::EVP_PBE_scrypt(
            password.as_ptr().cast(),
            password.len(),
            salt.as_ptr(),
            salt.len(),
            32768,
            8,
            2,
            128 * 1024 * 1024,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    if rc == 1 {
        Ok(())
    } else {
        Err("scrypt failed".into())
    }
}

fn aes_key(password: &str) -> aes::Aes256 {
    use aes::cipher::KeyInit as _;
    let mut key = [0u8; 32];
    let p = password.as_bytes();
    let n = p.len().min(32);
    key[..n].copy_from_slice(&p[..n]);
    aes::Aes256::new(&key.into())
}

/// Sprig's `encryptAES`: AES-256-CBC (key: the password zero-padded/cut to 32 bytes),
/// PKCS#7 padding, random IV prepended, base64.
pub(crate) fn encrypt_aes(password: &str, plaintext: &str) -> String {
    use aes::cipher::BlockCipherEncrypt as _;
    if plaintext.is_empty() {
        return String::new();
    }
    let cipher = aes_key(password);
    let mut content = plaintext.as_bytes().to_vec();
    let pad = 16 - content.len() % 16;
    content.extend(std::iter::repeat_n(pad as u8, pad));
    let mut out = rng_bytes(16);
    let mut prev: [u8; 16] = out[..16].try_into().unwrap_or_default();
    for chunk in content.chunks(16) {
        let mut block = [0u8; 16];
        for i in 0..16 {
            block[i] = chunk[i] ^ prev[i];
        }
        let mut b = block.into();
        cipher.encrypt_block(&mut b);
        prev = b.into();
        out.extend_from_slice(&prev);
    }
    B64.encode(out)
}

/// Sprig's `decryptAES`.
pub(crate) fn decrypt_aes(password: &str, crypt64: &str) -> Result<String, String> {
    use aes::cipher::BlockCipherDecrypt as _;
    if crypt64.is_empty() {
        return Ok(String::new());
    }
    let crypt = B64
        .decode(crypt64.as_bytes())
        .map_err(|e| go_b64_error(crypt64, &e))?;
    if crypt.len() < 16 {
        return Err("ciphertext too short".into());
    }
    if crypt.len() % 16 != 0 {
        return Err("crypto/cipher: input not full blocks".into());
    }
    let cipher = aes_key(password);
    let mut prev: [u8; 16] = crypt[..16].try_into().unwrap_or_default();
    let mut out = Vec::with_capacity(crypt.len() - 16);
    for chunk in crypt[16..].chunks(16) {
        let c: [u8; 16] = chunk.try_into().unwrap_or_default();
        let mut b = c.into();
        cipher.decrypt_block(&mut b);
        let b: [u8; 16] = b.into();
        for i in 0..16 {
            out.push(b[i] ^ prev[i]);
        }
        prev = c;
    }
    let pad = out.last().copied().unwrap_or(0) as usize;
    if pad > out.len() {
        return Err("runtime error: slice bounds out of range".into());
    }
    out.truncate(out.len() - pad);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub(crate) fn go_b64_error(s: &str, e: &base64::DecodeError) -> String {
    let off = match e {
        base64::DecodeError::InvalidByte(o, _) => *o,
        base64::DecodeError::InvalidLength(_) => s.len() / 4 * 4,
        base64::DecodeError::InvalidLastSymbol(o, _) => *o,
        base64::DecodeError::InvalidPadding => s.len(),
    };
    format!("illegal base64 data at input byte {off}")
}

/// Sprig's `htpasswd`: `user:` + bcrypt (cost 10, `$2a$`).
pub(crate) fn htpasswd(user: &str, password: &str) -> String {
    if user.contains(':') {
        return format!("invalid username: {user}");
    }
    match bcrypt::hash_with_result(password, 10) {
        Ok(h) => format!("{user}:{}", h.format_for_version(bcrypt::Version::TwoA)),
        Err(e) => format!("failed to encrypt string with bcrypt: {e}"),
    }
}

// ---------------------------------------------------------------------------------------

pub(crate) fn register(m: &mut FuncMap) {
    m.add("genCA", |_, a| {
        want_args("genCA", a, 2)?;
        let mut t = base_template(a, 0, None, 1)?;
        t.is_ca = true;
        self_signed(&t, Key::generate_rsa(2048)?)
    });
    m.add("genCAWithKey", |_, a| {
        want_args("genCAWithKey", a, 3)?;
        let mut t = base_template(a, 0, None, 1)?;
        t.is_ca = true;
        self_signed(&t, pem_key_arg(a, 2)?)
    });
    m.add("genSelfSignedCert", |_, a| {
        want_args("genSelfSignedCert", a, 4)?;
        let t = base_template(a, 0, Some(1), 3)?;
        self_signed(&t, Key::generate_rsa(2048)?)
    });
    m.add("genSelfSignedCertWithKey", |_, a| {
        want_args("genSelfSignedCertWithKey", a, 5)?;
        let t = base_template(a, 0, Some(1), 3)?;
        self_signed(&t, pem_key_arg(a, 4)?)
    });
    m.add("genSignedCert", |_, a| {
        want_args("genSignedCert", a, 5)?;
        let t = base_template(a, 0, Some(1), 3)?;
        signed(&t, Key::generate_rsa(2048)?, a, 4)
    });
    m.add("genSignedCertWithKey", |_, a| {
        want_args("genSignedCertWithKey", a, 6)?;
        let t = base_template(a, 0, Some(1), 3)?;
        signed(&t, pem_key_arg(a, 5)?, a, 4)
    });
    m.add("buildCustomCert", |_, a| {
        want_args("buildCustomCert", a, 2)?;
        let cert_b64 = want_string(a, 0)?;
        let key_b64 = want_string(a, 1)?;
        let cert = B64
            .decode(cert_b64.as_bytes())
            .map_err(|_| "unable to decode base64 certificate".to_string())?;
        let key = B64
            .decode(key_b64.as_bytes())
            .map_err(|_| "unable to decode base64 private key".to_string())?;
        let cert = String::from_utf8_lossy(&cert).into_owned();
        let key = String::from_utf8_lossy(&key).into_owned();
        parse_parent(&cert)
            .map_err(|e| e.replace("decodedSignerCert.Bytes", "decodedCert.Bytes"))?;
        Key::from_pem(&key).map_err(|e| format!("error parsing private key: {e}"))?;
        Ok(cert_value(cert, key))
    });
    m.add("genPrivateKey", |_, a| {
        want_args("genPrivateKey", a, 1)?;
        let kind = want_string(a, 0)?;
        let key = match kind.as_str() {
            "" | "rsa" => Key::generate_rsa(4096),
            "ecdsa" => Key::generate_ec(),
            "ed25519" => Key::generate_ed25519(),
            "dsa" => {
                return Ok(Value::from(match generate_dsa_pem() {
                    Ok(p) => p,
                    Err(e) => format!("failed to generate dsa params: {e}"),
                }))
            }
            _ => return Ok(Value::from(format!("Unknown type {kind}"))),
        };
        Ok(Value::from(match key {
            Ok(k) => k.to_pem(),
            Err(e) => format!("failed to generate private key: {e}"),
        }))
    });
    m.add("derivePassword", |_, a| {
        want_args("derivePassword", a, 5)?;
        let counter = match &a[0] {
            Value::Int(i) | Value::Int64(i) => *i as u32,
            _ => return Err(arg_type_error(0, "uint32")),
        };
        let s: Vec<String> = (1..5)
            .map(|i| want_string(a, i))
            .collect::<Result<_, _>>()?;
        Ok(Value::from(derive_password(
            counter, &s[0], &s[1], &s[2], &s[3],
        )))
    });
    m.add("htpasswd", |_, a| {
        want_args("htpasswd", a, 2)?;
        Ok(Value::from(htpasswd(
            &want_string(a, 0)?,
            &want_string(a, 1)?,
        )))
    });
    m.add("bcrypt", |_, a| {
        want_args("bcrypt", a, 1)?;
        let p = want_string(a, 0)?;
        Ok(Value::from(match bcrypt::hash_with_result(p, 10) {
            Ok(h) => h.format_for_version(bcrypt::Version::TwoA),
            Err(e) => format!("failed to encrypt string with bcrypt: {e}"),
        }))
    });
    m.add("encryptAES", |_, a| {
        want_args("encryptAES", a, 2)?;
        Ok(Value::from(encrypt_aes(
            &want_string(a, 0)?,
            &want_string(a, 1)?,
        )))
    });
    m.add("decryptAES", |_, a| {
        want_args("decryptAES", a, 2)?;
        decrypt_aes(&want_string(a, 0)?, &want_string(a, 1)?).map(Value::from)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_password_vectors() {
        // Sprig's crypto_test.go vectors.
        assert_eq!(
            derive_password(1, "long", "password", "user", "example.com"),
            "ZedaFaxcZaso9*"
        );
        assert_eq!(
            derive_password(2, "long", "password", "user", "example.com"),
            "Fovi2@JifpTupx"
        );
        assert_eq!(
            derive_password(1, "maximum", "password", "user", "example.com"),
            "pf4zS1LjCg&LjhsZ7T2~"
        );
        assert_eq!(
            derive_password(1, "pin", "password", "user", "example.com"),
            "6685"
        );
    }

    #[test]
    fn aes_round_trip() {
        let c = encrypt_aes("secretkey", "plaintext");
        assert_eq!(B64.decode(&c).unwrap().len(), 32);
        assert_eq!(decrypt_aes("secretkey", &c).unwrap(), "plaintext");
        assert_eq!(encrypt_aes("k", ""), "");
    }

    #[test]
    fn key_usage_bits() {
        assert_eq!(key_usage_der(5), vec![0x03, 0x02, 0x05, 0xa0]);
        assert_eq!(key_usage_der(37), vec![0x03, 0x02, 0x02, 0xa4]);
    }
}
