//! The content-addressed cache on disk: atomic publication (temp dir + rename),
//! tree digests, and small file helpers.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// A fetched source, materialised on disk. Read it; never modify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Flux's revision string: `main@sha1:<commit>`, `v1.1.0@sha1:<commit>`,
    /// `sha1:<commit>` (commit pin), `<tag>@sha256:<manifest digest>` (OCI),
    /// `<chart version>` (Helm).
    pub revision: String,
    /// Directory (Git, OCI) or `.tgz` file (Helm chart) in the cache.
    pub path: PathBuf,
    /// `sha256:<hex>`: for Git, of the canonical listing of the materialised
    /// files (path, mode, content); for OCI, of the layer blob; for Helm, of the `.tgz`.
    pub digest: String,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// First 16 hex digits of the SHA-256 of `data`.
pub(crate) fn short_hash(data: &[u8]) -> String {
    hex(&Sha256::digest(data))[..16].to_string()
}

/// Digest over a tree's files in the order they are written.
#[derive(Default)]
pub(crate) struct TreeDigest(Sha256);

impl TreeDigest {
    pub fn file(&mut self, path: &str, exec: bool, data: &[u8]) {
        let mode = if exec { "755" } else { "644" };
        self.0
            .update(format!("F {mode} {path}\0{}\0", data.len()).as_bytes());
        self.0.update(data);
    }
    pub fn link(&mut self, path: &str, target: &str) {
        self.0.update(format!("L {path}\0{target}\0").as_bytes());
    }
    pub fn finish(self) -> String {
        format!("sha256:{}", hex(&self.0.finalize()))
    }
}

/// A scratch directory under `<cache>/tmp`, removed on drop.
pub(crate) struct TempDir(PathBuf);

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new(root: &Path) -> io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let p = root.join("tmp").join(name);
        std::fs::create_dir_all(&p)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn digest_file(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".digest");
    dest.with_file_name(name)
}

/// If `dest` was published before, its digest.
pub(crate) fn existing(dest: &Path) -> Option<String> {
    if !dest.exists() {
        return None;
    }
    std::fs::read_to_string(digest_file(dest))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Atomically move `src` to `dest` and record its digest next to it. If another
/// fetch published `dest` meanwhile, keep that one.
pub(crate) fn publish(src: &Path, dest: &Path, digest: &str) -> io::Result<()> {
    let df = digest_file(dest);
    let tmp_df = src.with_extension("digest-tmp");
    std::fs::write(&tmp_df, digest)?;
    if dest.exists() && df.exists() {
        return Ok(());
    }
    if dest.exists() {
        // a previous publication crashed before writing its digest
        if dest.is_dir() {
            std::fs::remove_dir_all(dest)?;
        } else {
            std::fs::remove_file(dest)?;
        }
    }
    match std::fs::rename(src, dest) {
        Ok(()) => {}
        Err(_) if dest.exists() => return Ok(()),
        Err(e) => return Err(e),
    }
    std::fs::rename(&tmp_df, &df)
}

/// See [`crate::SourceCache::retain`].
pub(crate) fn retain(root: &Path, keep: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for kind in ["git", "oci", "helm"] {
        let Ok(sources) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        for source in sources {
            let source = source?.path();
            if !source.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&source)? {
                let path = entry?.path();
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if name == "mirror.git"
                    || name.ends_with(".digest")
                    || keep.iter().any(|k| k == &path)
                {
                    continue;
                }
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
                let _ = std::fs::remove_file(digest_file(&path));
                removed.push(path);
            }
        }
    }
    // scratch folders left by a crash
    if let Ok(tmp) = std::fs::read_dir(root.join("tmp")) {
        for t in tmp.flatten() {
            let _ = std::fs::remove_dir_all(t.path());
        }
    }
    Ok(removed)
}

pub(crate) fn write_file(path: &Path, data: &[u8], exec: bool) -> io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, data)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

pub(crate) fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    std::fs::write(path, data)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

pub(crate) fn symlink(target: &str, dest: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, dest)
    }
    #[cfg(not(unix))]
    {
        let _ = (target, dest);
        Ok(())
    }
}
