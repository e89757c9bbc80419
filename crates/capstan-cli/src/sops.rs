//! `capstan sops decrypt`: decrypt a SOPS file (age or OpenPGP keys) and print the plaintext
//! as `sops decrypt` does.

use std::io::Write;
use std::path::PathBuf;

use capstan_sops::{DecryptOptions, Format, Keys};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SopsCommand {
    /// Decrypt a SOPS file and print the plaintext on stdout, byte for byte as
    /// `sops decrypt` prints it. Errors name their class (no-metadata, format, no-key,
    /// value-auth, mac-missing, mac-mismatch) and never show plaintext.
    Decrypt {
        /// A key file: age identities (`AGE-SECRET-KEY-1...`) or an armored OpenPGP secret
        /// key. Repeatable. Without it: `SOPS_AGE_KEY_FILE` / `SOPS_AGE_KEY`.
        #[arg(long = "key-file", short = 'k')]
        key_file: Vec<PathBuf>,
        /// The file's format (default: from its extension, else binary).
        #[arg(long = "input-type", value_parser = ["yaml", "json", "dotenv", "ini", "binary"])]
        input_type: Option<String>,
        /// Do not verify the MAC (per-value authentication still applies).
        #[arg(long = "ignore-mac")]
        ignore_mac: bool,
        /// The encrypted file.
        file: PathBuf,
    },
}

/// Keys from files, then from `SOPS_AGE_KEY_FILE` and `SOPS_AGE_KEY`.
pub fn load_keys(files: &[PathBuf]) -> Result<Keys, String> {
    let mut keys = Keys::new();
    for f in files {
        let content =
            std::fs::read(f).map_err(|e| format!("cannot read key file {}: {e}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".agekey") || name.ends_with(".asc") || name.starts_with("sops.") {
            // Named like a Flux decryption Secret entry: Flux's rules.
            let k = capstan_sops::flux::keys_from_secret(&[(name, content)])
                .map_err(|e| format!("key file {}: {e}", f.display()))?;
            keys.extend(k);
        } else {
            keys.add_key_file(&content)
                .map_err(|e| format!("key file {}: {e}", f.display()))?;
        }
    }
    if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        let p = PathBuf::from(p);
        if let Ok(content) = std::fs::read_to_string(&p) {
            keys.add_age_identities(&content)
                .map_err(|e| format!("SOPS_AGE_KEY_FILE {}: {e}", p.display()))?;
        }
    }
    if let Ok(k) = std::env::var("SOPS_AGE_KEY") {
        if !k.trim().is_empty() {
            keys.add_age_identities(&k)
                .map_err(|e| format!("SOPS_AGE_KEY: {e}"))?;
        }
    }
    Ok(keys)
}

pub fn run(cmd: SopsCommand) -> Result<u8, String> {
    match cmd {
        SopsCommand::Decrypt {
            key_file,
            input_type,
            ignore_mac,
            file,
        } => {
            let keys = load_keys(&key_file)?;
            let name = file.display().to_string();
            let format = match input_type.as_deref() {
                Some(t) => Format::from_name(t).ok_or_else(|| format!("unknown input type {t}"))?,
                None => Format::from_path(&name),
            };
            let content = std::fs::read(&file).map_err(|e| format!("cannot read {name}: {e}"))?;
            let plain = capstan_sops::decrypt(
                &content,
                format,
                &keys,
                DecryptOptions { ignore_mac },
                &name,
            )
            .map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            out.write_all(&plain)
                .and_then(|_| out.flush())
                .map_err(|e| format!("cannot write the plaintext: {e}"))?;
            Ok(0)
        }
    }
}
