//! Read-only file systems for capstan's pure engines.
//!
//! The kustomize engine, the unit reader and the Helm chart loader never touch `std::fs`
//! directly: they read through [`FileSystem`], so tests can hand them an in-memory tree
//! ([`MemFs`]) and the CLI a directory on disk ([`DiskFs`]). [`OverlayFs`] layers
//! generated files over another file system (Flux generates or rewrites
//! `kustomization.yaml` before building; capstan does it in memory). [`MountFs`] puts
//! other trees (other sources' artifacts) at directories of a base tree.
//!
//! Paths are always absolute, `/`-separated and normalised (no `.` or `..`
//! components); use [`normalize`] and [`join`] to build them.
//!
//! [`DiskFs`] confines every read beneath its root (symlinks followed only while they
//! stay inside, loops and `..` above the root refused: see [`disk`](DiskFs)); trees
//! combined with [`OverlayFs`] and [`MountFs`] keep the confinement of each tree, so a
//! mounted artifact is confined to its own root.
//!
//! Every read is bounded in size too: a file larger than the per-file budget
//! ([`DEFAULT_MAX_FILE_SIZE`], 64 MiB, or [`MAX_FILE_SIZE_ENV`] in the environment, or
//! [`DiskFs::with_max_file_size`] / [`MemFs::with_max_file_size`]) is an error carrying a
//! [`FileTooLarge`] (the file, its size, the limit), checked before a byte of it is read,
//! and a file that grows while it is read stops at the limit.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

mod disk;
pub use disk::{confinement, Confinement, DiskFs, MAX_LINKS};

/// The default size budget of one file read through a [`FileSystem`] of this crate: 64 MiB
/// (no manifest, values file, chart file or template comes near it; a larger file in a
/// repository is almost certainly a mistake or an attack on the agent's memory).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 20;

/// The environment variable that overrides [`DEFAULT_MAX_FILE_SIZE`] for the process: a
/// number of bytes, or with a `Ki`, `Mi` or `Gi` suffix (`256Mi`).
pub const MAX_FILE_SIZE_ENV: &str = "CAPSTAN_MAX_FILE_SIZE";

/// The per-file size budget when none is set on the file system: [`MAX_FILE_SIZE_ENV`] if
/// it holds a valid size (read once per process), else [`DEFAULT_MAX_FILE_SIZE`].
pub fn default_max_file_size() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(MAX_FILE_SIZE_ENV)
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(DEFAULT_MAX_FILE_SIZE)
    })
}

/// `123`, `64Ki`, `256Mi`, `1Gi` as a number of bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = if let Some(n) = s.strip_suffix("Ki") {
        (n, 10)
    } else if let Some(n) = s.strip_suffix("Mi") {
        (n, 20)
    } else if let Some(n) = s.strip_suffix("Gi") {
        (n, 30)
    } else {
        (s, 0)
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// A file larger than the per-file size budget. Carried inside the [`io::Error`] of a
/// read; get it back with [`too_large`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTooLarge {
    /// The file, as asked for (a path inside the file system).
    pub path: PathBuf,
    /// Its size in bytes (at least `limit + 1` for a file that grew while it was read).
    pub size: u64,
    /// The budget it exceeds.
    pub limit: u64,
}

impl std::fmt::Display for FileTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: file of {} bytes exceeds the limit of {} bytes per file (set {MAX_FILE_SIZE_ENV} to raise it)",
            self.path.display(),
            self.size,
            self.limit
        )
    }
}

impl std::error::Error for FileTooLarge {}

impl From<FileTooLarge> for io::Error {
    fn from(e: FileTooLarge) -> io::Error {
        io::Error::new(io::ErrorKind::FileTooLarge, e)
    }
}

/// The size budget an I/O error of a read stems from, if any.
pub fn too_large(e: &io::Error) -> Option<&FileTooLarge> {
    e.get_ref()?.downcast_ref::<FileTooLarge>()
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    File,
    Dir,
}

/// A read-only file system. Implementations must be cheap to share across threads.
pub trait FileSystem: Send + Sync {
    /// The bytes of a file. `NotFound` if absent, an error if it is a directory.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// What is at `path`, or `None` if nothing is.
    fn file_type(&self, path: &Path) -> Option<FileType>;
    /// Names of the entries of a directory, sorted bytewise.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// The path with symlinks resolved, for load-restriction checks. The default
    /// implementation (no symlinks) returns the normalised path.
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        if self.file_type(path).is_some() {
            Ok(normalize(path))
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file or directory", path.display()),
            ))
        }
    }

    /// What is at `path` (`Ok(None)` if nothing is), or why it may not be read: a path
    /// a [`DiskFs`] refuses (a symlink leading outside its root, a loop) is an error
    /// carrying a [`Confinement`], where [`FileSystem::file_type`] reports a file.
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        Ok(self.file_type(path))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.file_type(path) == Some(FileType::Dir)
    }
    fn is_file(&self, path: &Path) -> bool {
        self.file_type(path) == Some(FileType::File)
    }
    fn exists(&self, path: &Path) -> bool {
        self.file_type(path).is_some()
    }
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not valid UTF-8", path.display()),
            )
        })
    }
}

impl<T: FileSystem + ?Sized> FileSystem for &T {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        (**self).read(path)
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        (**self).file_type(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        (**self).read_dir(path)
    }
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        (**self).real_path(path)
    }
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        (**self).stat(path)
    }
}

impl<T: FileSystem + ?Sized> FileSystem for Arc<T> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        (**self).read(path)
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        (**self).file_type(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        (**self).read_dir(path)
    }
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        (**self).real_path(path)
    }
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        (**self).stat(path)
    }
}

/// Lexically normalise a path: make it absolute (relative paths are taken from `/`),
/// drop `.` and resolve `..` without touching any file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
        }
    }
    let mut p = PathBuf::from("/");
    for s in out {
        p.push(s);
    }
    p
}

/// Join `rel` onto `base` and normalise. An absolute `rel` replaces `base`.
pub fn join(base: &Path, rel: &str) -> PathBuf {
    normalize(&base.join(rel))
}

/// `rel` beneath `root`, never above it: `rel` is normalised on its own first, so `..`
/// stops at `root` and an absolute `rel` starts at `root` (Flux's `SecureJoin` of a
/// path into an artifact).
pub fn join_within(root: &Path, rel: &str) -> PathBuf {
    let inner = normalize(Path::new(rel));
    normalize(&root.join(inner.strip_prefix("/").unwrap_or(&inner)))
}

/// An in-memory tree. Directories are implied by the files below them and can also be
/// added empty with [`MemFs::add_dir`].
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    files: BTreeMap<PathBuf, Arc<[u8]>>,
    dirs: std::collections::BTreeSet<PathBuf>,
    /// Per-file size budget; `None`: [`default_max_file_size`].
    max_file_size: Option<u64>,
}

impl MemFs {
    pub fn new() -> Self {
        let mut fs = MemFs::default();
        fs.dirs.insert(PathBuf::from("/"));
        fs
    }
    /// Add (or replace) a file; its parent directories come into being.
    pub fn add(&mut self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> &mut Self {
        let p = normalize(path.as_ref());
        let mut parent = p.parent();
        while let Some(d) = parent {
            self.dirs.insert(d.to_path_buf());
            parent = d.parent();
        }
        self.files.insert(p, Arc::from(contents.as_ref()));
        self
    }
    /// Builder form of [`MemFs::add`].
    pub fn with(mut self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        self.add(path, contents);
        self
    }
    pub fn add_dir(&mut self, path: impl AsRef<Path>) -> &mut Self {
        let p = normalize(path.as_ref());
        let mut cur = Some(p.as_path());
        while let Some(d) = cur {
            self.dirs.insert(d.to_path_buf());
            cur = d.parent();
        }
        self
    }
    /// Sets the per-file size budget of reads (default [`default_max_file_size`]).
    pub fn with_max_file_size(mut self, limit: u64) -> Self {
        self.max_file_size = Some(limit);
        self
    }
    /// Every file, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.files.iter().map(|(p, c)| (p.as_path(), &**c))
    }
}

impl FileSystem for MemFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let p = normalize(path);
        match self.files.get(&p) {
            Some(c) => {
                let limit = self.max_file_size.unwrap_or_else(default_max_file_size);
                if c.len() as u64 > limit {
                    return Err(FileTooLarge {
                        path: p,
                        size: c.len() as u64,
                        limit,
                    }
                    .into());
                }
                Ok(c.to_vec())
            }
            None if self.dirs.contains(&p) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", p.display()),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file or directory", p.display()),
            )),
        }
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        let p = normalize(path);
        if self.files.contains_key(&p) {
            Some(FileType::File)
        } else if self.dirs.contains(&p) {
            Some(FileType::Dir)
        } else {
            None
        }
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let p = normalize(path);
        if !self.dirs.contains(&p) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", p.display()),
            ));
        }
        let mut names: Vec<String> = self
            .files
            .keys()
            .chain(self.dirs.iter())
            .filter(|k| k.parent() == Some(p.as_path()))
            .filter_map(|k| k.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// Files layered over another file system: reads of an overlaid path see the overlay.
pub struct OverlayFs<F> {
    base: F,
    top: MemFs,
}

impl<F: FileSystem> OverlayFs<F> {
    pub fn new(base: F) -> Self {
        OverlayFs {
            base,
            top: MemFs::new(),
        }
    }
    /// Put a file over the base (replacing any file of the same path).
    pub fn put(&mut self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> &mut Self {
        self.top.add(path, contents);
        self
    }
    pub fn base(&self) -> &F {
        &self.base
    }
}

impl<F: FileSystem> FileSystem for OverlayFs<F> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if self.top.is_file(path) {
            return self.top.read(path);
        }
        self.base.read(path)
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        if self.top.is_file(path) {
            return Some(FileType::File);
        }
        self.base
            .file_type(path)
            .or_else(|| self.top.file_type(path))
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = match self.base.read_dir(path) {
            Ok(n) => n,
            Err(e) if !self.top.is_dir(path) => return Err(e),
            Err(_) => Vec::new(),
        };
        if let Ok(more) = self.top.read_dir(path) {
            names.extend(more);
            names.sort();
            names.dedup();
        }
        Ok(names)
    }
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        if self.top.is_file(path) {
            return Ok(normalize(path));
        }
        self.base.real_path(path)
    }
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        if self.top.is_file(path) {
            return Ok(Some(FileType::File));
        }
        match self.base.stat(path)? {
            Some(t) => Ok(Some(t)),
            None => Ok(self.top.file_type(path)),
        }
    }
}

/// A base file system with other file systems mounted at directories (the artifacts
/// of other sources next to the repository's own tree). A path under a mount point is
/// read from the mounted tree; the directories leading to a mount point exist.
pub struct MountFs {
    base: Arc<dyn FileSystem>,
    /// (mount point, tree), longest mount point first.
    mounts: Vec<(PathBuf, Arc<dyn FileSystem>)>,
}

impl MountFs {
    pub fn new(base: Arc<dyn FileSystem>) -> Self {
        MountFs {
            base,
            mounts: Vec::new(),
        }
    }

    /// Mount `tree` at the absolute directory `at` (its `/` appears there).
    pub fn mount(&mut self, at: impl AsRef<Path>, tree: Arc<dyn FileSystem>) -> &mut Self {
        self.mounts.push((normalize(at.as_ref()), tree));
        self.mounts
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        self
    }

    /// The tree holding `path`, and the path inside it.
    fn route(&self, path: &Path) -> (&dyn FileSystem, PathBuf) {
        let path = normalize(path);
        for (at, tree) in &self.mounts {
            if let Ok(rest) = path.strip_prefix(at) {
                return (tree.as_ref(), Path::new("/").join(rest));
            }
        }
        (self.base.as_ref(), path)
    }

    /// Names of mount points (or their ancestors) directly under `dir`.
    fn mount_entries(&self, dir: &Path) -> Vec<String> {
        let dir = normalize(dir);
        self.mounts
            .iter()
            .filter_map(|(at, _)| at.strip_prefix(&dir).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    }
}

impl FileSystem for MountFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let (fs, inner) = self.route(path);
        fs.read(&inner)
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        let (fs, inner) = self.route(path);
        fs.file_type(&inner)
            .or_else(|| (!self.mount_entries(path).is_empty()).then_some(FileType::Dir))
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let (fs, inner) = self.route(path);
        let extra = self.mount_entries(path);
        let mut names = match fs.read_dir(&inner) {
            Ok(n) => n,
            Err(e) if extra.is_empty() => return Err(e),
            Err(_) => Vec::new(),
        };
        names.extend(extra);
        names.sort();
        names.dedup();
        Ok(names)
    }
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        let (fs, inner) = self.route(path);
        match fs.stat(&inner)? {
            Some(t) => Ok(Some(t)),
            None => Ok((!self.mount_entries(path).is_empty()).then_some(FileType::Dir)),
        }
    }
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        let path = normalize(path);
        for (at, tree) in &self.mounts {
            if let Ok(rest) = path.strip_prefix(at) {
                let inner = tree.real_path(&Path::new("/").join(rest))?;
                let rel = inner.strip_prefix("/").unwrap_or(&inner);
                return Ok(at.join(rel));
            }
        }
        if self.base.file_type(&path).is_none() && !self.mount_entries(&path).is_empty() {
            return Ok(path);
        }
        self.base.real_path(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(
            join(Path::new("/a/b"), "../c/d.yaml"),
            PathBuf::from("/a/c/d.yaml")
        );
        assert_eq!(
            join_within(Path::new("/.sources/git/a"), "../../../clusters"),
            PathBuf::from("/.sources/git/a/clusters")
        );
        assert_eq!(
            join_within(Path::new("/src"), "/abs/./x"),
            PathBuf::from("/src/abs/x")
        );
    }

    #[test]
    fn memfs_lists_and_reads() {
        let fs = MemFs::new().with("/a/k.yaml", "x").with("/a/b/c.yaml", "y");
        assert_eq!(fs.read_dir(Path::new("/a")).unwrap(), vec!["b", "k.yaml"]);
        assert!(fs.is_dir(Path::new("/a/b")));
        assert_eq!(fs.read_to_string(Path::new("/a/b/c.yaml")).unwrap(), "y");
        assert!(fs.read(Path::new("/a/b")).is_err());
        assert!(fs.read(Path::new("/nope")).is_err());
    }

    #[test]
    fn overlay_shadows_base() {
        let base = MemFs::new().with("/a/k.yaml", "base");
        let mut o = OverlayFs::new(base);
        o.put("/a/k.yaml", "top").put("/a/new.yaml", "n");
        assert_eq!(o.read_to_string(Path::new("/a/k.yaml")).unwrap(), "top");
        assert_eq!(
            o.read_dir(Path::new("/a")).unwrap(),
            vec!["k.yaml", "new.yaml"]
        );
    }

    #[test]
    fn disk_fs_rejects_escaping_symlinks() {
        let dir = std::env::temp_dir().join(format!("capstan-vfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::write(dir.join("outside.yaml"), "x").unwrap();
        std::fs::write(dir.join("root/in.yaml"), "y").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("outside.yaml"), dir.join("root/link.yaml")).unwrap();
        let fs = DiskFs::new(dir.join("root")).unwrap();
        assert_eq!(fs.read_to_string(Path::new("/in.yaml")).unwrap(), "y");
        assert_eq!(
            fs.real_path(Path::new("/in.yaml")).unwrap(),
            PathBuf::from("/in.yaml")
        );
        #[cfg(unix)]
        assert!(fs.real_path(Path::new("/link.yaml")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn mounted_and_overlaid_disk_trees_stay_confined_to_their_own_roots() {
        let dir = std::env::temp_dir().join(format!("capstan-vfs-mount-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("repo/clusters")).unwrap();
        std::fs::create_dir_all(dir.join("artifact")).unwrap();
        std::fs::write(dir.join("repo/clusters/secret.yaml"), "REPO-ONLY").unwrap();
        // The artifact's link climbs to the repository next to it: outside its own root.
        std::os::unix::fs::symlink("../repo/clusters/secret.yaml", dir.join("artifact/l.yaml"))
            .unwrap();
        let mut fs = MountFs::new(Arc::new(DiskFs::new(dir.join("repo")).unwrap()));
        fs.mount(
            "/.sources/a",
            Arc::new(DiskFs::new(dir.join("artifact")).unwrap()),
        );
        let e = fs.read(Path::new("/.sources/a/l.yaml")).unwrap_err();
        assert!(
            matches!(confinement(&e), Some(Confinement::Escapes { .. })),
            "{e}"
        );
        assert!(fs.stat(Path::new("/.sources/a/l.yaml")).is_err());
        assert_eq!(
            fs.stat(Path::new("/.sources")).unwrap(),
            Some(FileType::Dir)
        );
        let mut o = OverlayFs::new(&fs);
        o.put("/clusters/new.yaml", "n");
        assert!(o.read(Path::new("/.sources/a/l.yaml")).is_err());
        assert!(o.stat(Path::new("/.sources/a/l.yaml")).is_err());
        assert_eq!(
            o.stat(Path::new("/clusters/new.yaml")).unwrap(),
            Some(FileType::File)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mounts_route_paths_and_list_mount_points() {
        let base = MemFs::new().with("/clusters/a/k.yaml", "base");
        let other = MemFs::new().with("/apps/cm.yaml", "other");
        let mut fs = MountFs::new(Arc::new(base));
        fs.mount("/.sources/GitRepository/ns/apps", Arc::new(other));
        assert_eq!(
            fs.read_to_string(Path::new("/clusters/a/k.yaml")).unwrap(),
            "base"
        );
        assert_eq!(
            fs.read_to_string(Path::new("/.sources/GitRepository/ns/apps/apps/cm.yaml"))
                .unwrap(),
            "other"
        );
        assert!(fs.is_dir(Path::new("/.sources/GitRepository")));
        assert_eq!(
            fs.read_dir(Path::new("/")).unwrap(),
            vec![".sources", "clusters"]
        );
        assert_eq!(
            fs.read_dir(Path::new("/.sources/GitRepository/ns/apps"))
                .unwrap(),
            vec!["apps"]
        );
        assert_eq!(
            fs.real_path(Path::new("/.sources/GitRepository/ns/apps/apps/cm.yaml"))
                .unwrap(),
            PathBuf::from("/.sources/GitRepository/ns/apps/apps/cm.yaml")
        );
        assert!(fs
            .read(Path::new("/.sources/GitRepository/ns/apps/missing"))
            .is_err());
    }

    #[test]
    fn memfs_files_over_the_size_budget_are_refused() {
        let mut fs = MemFs::new().with_max_file_size(10);
        fs.add("/a/ok.yaml", "0123456789")
            .add("/a/big.yaml", "0123456789X");
        assert_eq!(fs.read(Path::new("/a/ok.yaml")).unwrap().len(), 10);
        let e = fs.read(Path::new("/a/big.yaml")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            too_large(&e),
            Some(&FileTooLarge {
                path: PathBuf::from("/a/big.yaml"),
                size: 11,
                limit: 10
            })
        );
        let msg = e.to_string();
        assert!(
            msg.contains("/a/big.yaml: file of 11 bytes exceeds the limit of 10 bytes per file"),
            "{msg}"
        );
        // through the layers that combine trees
        let over = OverlayFs::new(fs.clone());
        assert!(too_large(&over.read(Path::new("/a/big.yaml")).unwrap_err()).is_some());
        // the default budget
        assert_eq!(DEFAULT_MAX_FILE_SIZE, 64 << 20);
        let big = vec![0u8; (DEFAULT_MAX_FILE_SIZE + 1) as usize];
        let fs = MemFs::new().with("/big", &big);
        if default_max_file_size() == DEFAULT_MAX_FILE_SIZE {
            assert!(too_large(&fs.read(Path::new("/big")).unwrap_err()).is_some());
        }
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64Ki"), Some(64 << 10));
        assert_eq!(parse_size("256Mi"), Some(256 << 20));
        assert_eq!(parse_size(" 2Gi "), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999999Gi"), None);
    }
}
