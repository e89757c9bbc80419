//! SOPS' value encryption: AES-256-GCM with a 32-byte IV and the value's path as additional
//! data, written as `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]`.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// AES-256-GCM with SOPS' 32-byte nonces (GHASH-derived initial counter block).
type SopsGcm = AesGcm<Aes256, U32>;

/// The parts of an `ENC[...]` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub kind: String,
}

/// Why a value did not decrypt (never carries plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherError {
    /// Not an `ENC[AES256_GCM,...]` string, or bad base64 / IV / tag sizes.
    Malformed(&'static str),
    /// AES-GCM authentication failed (wrong key, altered value, or moved to another path).
    Auth,
}

/// Whether `s` looks like a SOPS encrypted value (the pattern is anchored at the start only).
pub fn is_enc(s: &str) -> bool {
    s.starts_with("ENC[AES256_GCM,")
}

/// Parse `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`.
pub fn parse_enc(s: &str) -> Result<EncValue, CipherError> {
    let rest = s
        .strip_prefix("ENC[AES256_GCM,")
        .ok_or(CipherError::Malformed("not an ENC[AES256_GCM,...] value"))?;
    let end = rest
        .find(']')
        .ok_or(CipherError::Malformed("no closing ] in ENC[...]"))?;
    let body = &rest[..end];
    let (mut data, mut iv, mut tag, mut kind) = (None, None, None, None);
    for part in body.split(',') {
        let (k, v) = part
            .split_once(':')
            .ok_or(CipherError::Malformed("ENC[...] field without ':'"))?;
        match k {
            "data" => data = Some(v),
            "iv" => iv = Some(v),
            "tag" => tag = Some(v),
            "type" => kind = Some(v),
            _ => return Err(CipherError::Malformed("unknown field in ENC[...]")),
        }
    }
    let b64 = |v: Option<&str>, what: &'static str| -> Result<Vec<u8>, CipherError> {
        STANDARD
            .decode(v.ok_or(CipherError::Malformed(what))?)
            .map_err(|_| CipherError::Malformed(what))
    };
    let data = b64(data, "ENC[...] data is missing or not base64")?;
    let iv = b64(iv, "ENC[...] iv is missing or not base64")?;
    let tag = b64(tag, "ENC[...] tag is missing or not base64")?;
    if iv.len() != 32 {
        return Err(CipherError::Malformed("ENC[...] iv is not 32 bytes"));
    }
    if tag.len() != 16 {
        return Err(CipherError::Malformed("ENC[...] tag is not 16 bytes"));
    }
    Ok(EncValue {
        data,
        iv,
        tag,
        kind: kind
            .ok_or(CipherError::Malformed("ENC[...] type is missing"))?
            .to_string(),
    })
}

/// Decrypt an `ENC[...]` value with the data key and the additional data; returns the
/// plaintext bytes and the `type`.
pub fn decrypt(key: &[u8; 32], value: &str, aad: &str) -> Result<(Vec<u8>, String), CipherError> {
    let enc = parse_enc(value)?;
    let cipher = SopsGcm::new(key.into());
    let mut buf = enc.data.clone();
    cipher
        .decrypt_in_place_detached(
            Nonce::<U32>::from_slice(&enc.iv),
            aad.as_bytes(),
            &mut buf,
            Tag::from_slice(&enc.tag),
        )
        .map_err(|_| CipherError::Auth)?;
    Ok((buf, enc.kind))
}

/// Encrypt `plain` as an `ENC[...]` value (used to write fixtures and tests).
pub fn encrypt(key: &[u8; 32], iv: &[u8; 32], plain: &[u8], aad: &str, kind: &str) -> String {
    let cipher = SopsGcm::new(key.into());
    let mut buf = plain.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::<U32>::from_slice(iv), aad.as_bytes(), &mut buf)
        .expect("AES-GCM encryption of a bounded buffer");
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        STANDARD.encode(&buf),
        STANDARD.encode(iv),
        STANDARD.encode(tag),
        kind
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enc_value_round_trips_with_32_byte_iv_and_path_aad() {
        let key = [7u8; 32];
        let iv = [9u8; 32];
        let v = encrypt(&key, &iv, b"secret", "a:b:", "str");
        assert!(is_enc(&v));
        assert_eq!(
            decrypt(&key, &v, "a:b:").unwrap(),
            (b"secret".to_vec(), "str".into())
        );
        // Moved to another path: the additional data differs.
        assert_eq!(decrypt(&key, &v, "a:c:"), Err(CipherError::Auth));
        assert_eq!(decrypt(&[8u8; 32], &v, "a:b:"), Err(CipherError::Auth));
    }

    #[test]
    fn malformed_enc_values_are_rejected() {
        assert!(matches!(
            parse_enc("ENC[AES256_GCM,data:xx"),
            Err(CipherError::Malformed(_))
        ));
        assert!(matches!(
            parse_enc("ENC[AES256_GCM,data:,iv:AAAA,tag:AAAA,type:str]"),
            Err(CipherError::Malformed(_))
        ));
    }
}
