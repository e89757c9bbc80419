//! Master keys: age identities and OpenPGP secret keys that unwrap a file's data key.

use std::io::{BufReader, Read};
use std::str::FromStr;

/// Why a key file did not load (never carries key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLoadError {
    /// An `AGE-SECRET-KEY-...` line that does not parse.
    BadAgeIdentity { line: usize },
    /// No age identity in an age key file.
    NoAgeIdentity,
    /// The armored OpenPGP key does not parse.
    BadPgpKey(String),
    /// An OpenPGP file with no secret key.
    NoPgpSecretKey,
}

impl std::fmt::Display for KeyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyLoadError::BadAgeIdentity { line } => {
                write!(
                    f,
                    "line {line}: not a valid age identity (AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1...)"
                )
            }
            KeyLoadError::NoAgeIdentity => write!(f, "no age identity (AGE-SECRET-KEY-1...) found"),
            KeyLoadError::BadPgpKey(e) => write!(f, "not an armored OpenPGP secret key: {e}"),
            KeyLoadError::NoPgpSecretKey => write!(f, "no OpenPGP secret key found"),
        }
    }
}

/// A new X25519 age identity: (`AGE-SECRET-KEY-1...`, its `age1...` recipient), to write
/// test fixtures with [`crate::encrypt`].
#[allow(deprecated)] // X25519: the recipient type SOPS files use most.
pub fn generate_age_identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (
        id.to_string().expose_secret().to_string(),
        id.to_public().to_string(),
    )
}

/// The keys available to unwrap data keys.
#[derive(Default, Clone)]
pub struct Keys {
    age: Vec<age::x25519::Identity>,
    /// Hybrid post-quantum identities (`AGE-SECRET-KEY-PQ-1...`, ML-KEM-768 + X25519,
    /// `mlkem768x25519` stanzas, age v1.3).
    age_pq: Vec<age::pq::Identity>,
    pgp: Vec<pgp::composed::SignedSecretKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("age", &self.age_recipients())
            .field("pgp", &self.pgp_fingerprints())
            .finish()
    }
}

impl Keys {
    pub fn new() -> Keys {
        Keys::default()
    }

    /// Add all of `other`'s keys.
    pub fn extend(&mut self, other: Keys) {
        self.age.extend(other.age);
        self.age_pq.extend(other.age_pq);
        self.pgp.extend(other.pgp);
    }

    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.pgp.is_empty() && self.age_pq.is_empty()
    }

    /// Add the age identities of an identity file (`AGE-SECRET-KEY-1...` X25519 and
    /// `AGE-SECRET-KEY-PQ-1...` hybrid post-quantum lines; `#` comments and blank lines
    /// ignored), as Flux reads `*.agekey` Secret entries and `SOPS_AGE_KEY`.
    pub fn add_age_identities(&mut self, text: &str) -> Result<usize, KeyLoadError> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-SECRET-KEY-PQ-") {
                let id = age::pq::Identity::from_str(line)
                    .map_err(|_| KeyLoadError::BadAgeIdentity { line: i + 1 })?;
                self.age_pq.push(id);
                n += 1;
                continue;
            }
            let id = age::x25519::Identity::from_str(line)
                .map_err(|_| KeyLoadError::BadAgeIdentity { line: i + 1 })?;
            self.age.push(id);
            n += 1;
        }
        if n == 0 {
            return Err(KeyLoadError::NoAgeIdentity);
        }
        Ok(n)
    }

    /// Add the secret keys of an armored OpenPGP key file (one or several keys), as Flux
    /// reads `*.asc` Secret entries. Keys must not be passphrase protected.
    pub fn add_pgp_keys(&mut self, armored: &[u8]) -> Result<usize, KeyLoadError> {
        use pgp::composed::PublicOrSecret;
        let (iter, _) = PublicOrSecret::from_armor_many(armored)
            .map_err(|e| KeyLoadError::BadPgpKey(e.to_string()))?;
        let mut n = 0;
        for k in iter {
            match k.map_err(|e| KeyLoadError::BadPgpKey(e.to_string()))? {
                PublicOrSecret::Secret(s) => {
                    self.pgp.push(s);
                    n += 1;
                }
                PublicOrSecret::Public(_) => {}
            }
        }
        if n == 0 {
            return Err(KeyLoadError::NoPgpSecretKey);
        }
        Ok(n)
    }

    /// Add a key file by its content: armored OpenPGP if it looks like one, else age
    /// identities.
    pub fn add_key_file(&mut self, content: &[u8]) -> Result<usize, KeyLoadError> {
        let text = String::from_utf8_lossy(content);
        if text.contains("-----BEGIN PGP") {
            self.add_pgp_keys(content)
        } else {
            self.add_age_identities(&text)
        }
    }

    /// The age recipients of the identities (public; X25519 first, then post-quantum
    /// `age1pq1...` ones).
    pub fn age_recipients(&self) -> Vec<String> {
        self.age
            .iter()
            .map(|i| i.to_public().to_string())
            .chain(self.age_pq.iter().map(|i| i.to_public().to_string()))
            .collect()
    }

    /// The fingerprints of the OpenPGP secret keys (primary keys, upper hex).
    pub fn pgp_fingerprints(&self) -> Vec<String> {
        use pgp::types::KeyDetails;
        self.pgp
            .iter()
            .map(|k| format!("{:X}", k.fingerprint()))
            .collect()
    }

    /// Unwrap an age-encrypted data key (armored age file).
    pub(crate) fn unwrap_age(&self, armored: &str) -> Option<Vec<u8>> {
        if self.age.is_empty() && self.age_pq.is_empty() {
            return None;
        }
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let dec = age::Decryptor::new(reader).ok()?;
        let ids = self
            .age
            .iter()
            .map(|i| i as &dyn age::Identity)
            .chain(self.age_pq.iter().map(|i| i as &dyn age::Identity));
        let mut r = dec.decrypt(ids).ok()?;
        let mut out = Vec::new();
        r.by_ref().take(4096).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// Unwrap an OpenPGP-encrypted data key (armored message).
    pub(crate) fn unwrap_pgp(&self, armored: &str) -> Option<Vec<u8>> {
        use pgp::composed::Message;
        use pgp::types::Password;
        for key in &self.pgp {
            let Ok((msg, _)) = Message::from_armor(BufReader::new(armored.as_bytes())) else {
                return None;
            };
            let Ok(msg) = msg.decrypt(&Password::empty(), key) else {
                continue;
            };
            let Ok(mut msg) = msg.decompress() else {
                continue;
            };
            if let Ok(data) = msg.as_data_vec() {
                return Some(data);
            }
        }
        None
    }
}
