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

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

mod disk;
pub use disk::{confinement, Confinement, DiskFs, MAX_LINKS};

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
    /// Every file, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.files.iter().map(|(p, c)| (p.as_path(), &**c))
    }
}

impl FileSystem for MemFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let p = normalize(path);
        match self.files.get(&p) {
            Some(c) => Ok(c.to_vec()),
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
}
