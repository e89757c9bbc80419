//! [`DiskFs`]: a directory on disk, with every read confined beneath it.
//!
//! The confinement rule (one rule for every read of a repository, a chart or an
//! artifact):
//!
//! * a path is resolved one component at a time beneath the root; `..` in the path
//!   asked for is lexical and cannot climb above the root ([`Confinement::AboveRoot`]);
//! * a symlink is followed only while its target stays beneath the root: a relative
//!   target is taken from the link's (real) directory, an absolute target must name a
//!   place under the root's own disk path; a target anywhere else, or one whose `..`
//!   climbs above the root, is refused ([`Confinement::Escapes`], naming the link and its
//!   target), even when it would come back in afterwards;
//! * a symlink whose resolution reaches itself again is a loop ([`Confinement::Loop`]);
//!   more than [`MAX_LINKS`] symlinks in one resolution are refused as well
//!   ([`Confinement::TooManyLinks`]);
//! * only regular files and directories are read: a FIFO, socket or device in the tree is
//!   refused ([`Confinement::NotRegular`]) instead of blocking or reading a device.
//!
//! Refused paths are reported by [`FileSystem::file_type`] as files, so that nothing that
//! walks a tree silently skips them: reading one fails with the reason, and
//! [`FileSystem::stat`] gives the reason without reading.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::{normalize, FileSystem, FileTooLarge, FileType};

/// At most this many symlinks are followed while resolving one path (Linux's limit).
pub const MAX_LINKS: usize = 40;

/// Why a path of a [`DiskFs`] is not read. Carried inside the [`io::Error`]s of
/// [`DiskFs`]; get it back with [`confinement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// The symlink `link` (a path inside the file system) points at `target` (as written
    /// in the link), which lies outside the root.
    Escapes {
        link: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },
    /// Following the symlink `link` leads back to it.
    Loop { link: PathBuf },
    /// More than [`MAX_LINKS`] symlinks followed while resolving `path`.
    TooManyLinks { path: PathBuf },
    /// `path` climbs above the root with `..`.
    AboveRoot { path: PathBuf },
    /// `path` is neither a regular file nor a directory (a FIFO, socket or device).
    NotRegular { path: PathBuf },
}

impl fmt::Display for Confinement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Confinement::Escapes { link, target, root } => write!(
                f,
                "symlink {} -> {} leads outside the root ({}); only files beneath the root are read",
                link.display(),
                target.display(),
                root.display()
            ),
            Confinement::Loop { link } => {
                write!(f, "symlink loop: {} leads back to itself", link.display())
            }
            Confinement::TooManyLinks { path } => write!(
                f,
                "{}: more than {MAX_LINKS} symlinks to follow (a symlink loop?)",
                path.display()
            ),
            Confinement::AboveRoot { path } => {
                write!(f, "{}: `..` climbs above the root", path.display())
            }
            Confinement::NotRegular { path } => write!(
                f,
                "{}: not a regular file or directory (a FIFO, socket or device); refused",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Confinement {}

impl Confinement {
    fn kind(&self) -> io::ErrorKind {
        match self {
            Confinement::Escapes { .. } | Confinement::AboveRoot { .. } => {
                io::ErrorKind::PermissionDenied
            }
            // `FilesystemLoop` is unstable; the variant tells loops apart.
            Confinement::Loop { .. }
            | Confinement::TooManyLinks { .. }
            | Confinement::NotRegular { .. } => io::ErrorKind::InvalidInput,
        }
    }
}

impl From<Confinement> for io::Error {
    fn from(c: Confinement) -> io::Error {
        io::Error::new(c.kind(), c)
    }
}

/// The confinement rule an I/O error of a [`DiskFs`] stems from, if any.
pub fn confinement(e: &io::Error) -> Option<&Confinement> {
    e.get_ref()?.downcast_ref::<Confinement>()
}

/// The real disk, seen through a root directory. Paths given to it are absolute paths
/// *inside* the root (`/` is the root itself); every read is confined beneath the root
/// (see the [module docs](self)), and [`FileSystem::real_path`] reports where symlinks
/// lead, as a path inside the root.
#[derive(Debug, Clone)]
pub struct DiskFs {
    /// Canonical.
    root: PathBuf,
    /// As given (made absolute), when it differs from the canonical path: absolute
    /// symlinks may name the root either way.
    given: Option<PathBuf>,
    /// Per-file size budget; `None`: [`crate::default_max_file_size`].
    max_file_size: Option<u64>,
}

impl DiskFs {
    /// A file system rooted at `root` (canonicalised).
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref();
        let canon = std::fs::canonicalize(root)?;
        let given = std::path::absolute(root)
            .ok()
            .map(|p| normalize_host(&p))
            .filter(|p| p != &canon);
        Ok(DiskFs {
            root: canon,
            given,
            max_file_size: None,
        })
    }
    /// Sets the per-file size budget of reads (default [`crate::default_max_file_size`]).
    pub fn with_max_file_size(mut self, limit: u64) -> Self {
        self.max_file_size = Some(limit);
        self
    }
    /// The per-file size budget of reads.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size
            .unwrap_or_else(crate::default_max_file_size)
    }
    /// The root directory on disk.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The disk path of a path inside this file system, lexically (symlinks are not
    /// resolved: do not read through it, the file system's methods confine reads).
    pub fn host_path(&self, path: &Path) -> PathBuf {
        let n = normalize(path);
        self.root.join(n.strip_prefix("/").unwrap_or(&n))
    }
    /// The path inside this file system of a disk path, if it lies under the root.
    pub fn inner_path(&self, host: &Path) -> Option<PathBuf> {
        let canon = std::fs::canonicalize(host).ok()?;
        let rel = canon.strip_prefix(&self.root).ok()?;
        Some(normalize(&Path::new("/").join(rel)))
    }

    /// Resolves `path` beneath the root: its real path inside the file system and
    /// what is there (symlinks followed, the last one too).
    pub fn resolve(&self, path: &Path) -> io::Result<(PathBuf, std::fs::Metadata)> {
        let mut names: Vec<OsString> = Vec::new();
        for c in path.components() {
            match c {
                Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
                Component::ParentDir => {
                    if names.pop().is_none() {
                        return Err(Confinement::AboveRoot {
                            path: path.to_path_buf(),
                        }
                        .into());
                    }
                }
                Component::Normal(s) => names.push(s.to_os_string()),
            }
        }
        let steps: Vec<Step> = names.into_iter().map(Step::Name).collect();
        let mut w = Walker {
            fs: self,
            asked: path,
            followed: 0,
            stack: Vec::new(),
        };
        let real = w.walk(Vec::new(), &steps).map_err(|e| match e {
            WalkError::Io(e) => e,
            // Only link targets carry `..` here.
            WalkError::Above => Confinement::AboveRoot {
                path: path.to_path_buf(),
            }
            .into(),
        })?;
        let host = self.host_of(&real);
        let md = std::fs::symlink_metadata(&host)?;
        Ok((inner_of(&real), md))
    }

    fn host_of(&self, names: &[OsString]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(names);
        p
    }

    /// The names beneath the root of an absolute link target, if it lies under the root.
    fn strip_root<'p>(&self, target: &'p Path) -> Option<&'p Path> {
        if let Ok(rest) = target.strip_prefix(&self.root) {
            return Some(rest);
        }
        self.given
            .as_deref()
            .and_then(|g| target.strip_prefix(g).ok())
    }

    /// A path that must be a regular file or a directory to be read.
    fn checked(&self, path: &Path) -> io::Result<(PathBuf, std::fs::Metadata)> {
        let (real, md) = self.resolve(path)?;
        if !md.is_file() && !md.is_dir() {
            return Err(Confinement::NotRegular { path: real }.into());
        }
        Ok((real, md))
    }
}

fn inner_of(names: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    p.extend(names);
    p
}

/// Lexical normalisation of an absolute host path (`..` and `.` removed).
fn normalize_host(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

enum Step {
    Name(OsString),
    Up,
}

enum WalkError {
    Io(io::Error),
    /// `..` above the root, in a link target (the caller names the link).
    Above,
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

impl From<Confinement> for WalkError {
    fn from(c: Confinement) -> Self {
        WalkError::Io(c.into())
    }
}

struct Walker<'a> {
    fs: &'a DiskFs,
    asked: &'a Path,
    followed: usize,
    /// Links being resolved (inner paths), to tell loops.
    stack: Vec<PathBuf>,
}

impl Walker<'_> {
    /// Resolves `steps` from the real directory `cur` (names beneath the root, no
    /// symlinks among them). Every symlink met is followed.
    fn walk(&mut self, mut cur: Vec<OsString>, steps: &[Step]) -> Result<Vec<OsString>, WalkError> {
        let last = steps.len();
        for (i, step) in steps.iter().enumerate() {
            let name = match step {
                Step::Up => {
                    if cur.pop().is_none() {
                        return Err(WalkError::Above);
                    }
                    continue;
                }
                Step::Name(n) => n,
            };
            cur.push(name.clone());
            let host = self.fs.host_of(&cur);
            let md = std::fs::symlink_metadata(&host).map_err(|e| {
                // Callers name the path they asked for; name the component only when it
                // is another one (a directory on the way, a symlink's target).
                let at = inner_of(&cur);
                if at == normalize(self.asked) {
                    io::Error::new(e.kind(), plain_io(&e))
                } else {
                    io::Error::new(e.kind(), format!("{}: {}", at.display(), plain_io(&e)))
                }
            })?;
            if md.file_type().is_symlink() {
                let link = inner_of(&cur);
                if self.stack.contains(&link) {
                    return Err(Confinement::Loop { link }.into());
                }
                self.followed += 1;
                if self.followed > MAX_LINKS {
                    return Err(Confinement::TooManyLinks {
                        path: self.asked.to_path_buf(),
                    }
                    .into());
                }
                let target = std::fs::read_link(&host)?;
                cur.pop();
                let escapes = || Confinement::Escapes {
                    link: link.clone(),
                    target: target.clone(),
                    root: self.fs.root.clone(),
                };
                let (start, rel) = if target.is_absolute() {
                    match self.fs.strip_root(&target) {
                        Some(rest) => (Vec::new(), rest.to_path_buf()),
                        None => return Err(escapes().into()),
                    }
                } else {
                    (cur.clone(), target.clone())
                };
                let mut tsteps = Vec::new();
                for c in rel.components() {
                    match c {
                        Component::ParentDir => tsteps.push(Step::Up),
                        Component::Normal(s) => tsteps.push(Step::Name(s.to_os_string())),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
                self.stack.push(link.clone());
                let res = self.walk(start, &tsteps);
                self.stack.pop();
                cur = match res {
                    Ok(c) => c,
                    Err(WalkError::Above) => return Err(escapes().into()),
                    Err(e) => return Err(e),
                };
                if i + 1 < last && !self.fs.host_of(&cur).is_dir() {
                    return Err(not_a_dir(&cur).into());
                }
            } else if i + 1 < last && !md.is_dir() {
                return Err(not_a_dir(&cur).into());
            }
        }
        Ok(cur)
    }
}

fn not_a_dir(cur: &[OsString]) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{}: not a directory", inner_of(cur).display()),
    )
}

/// An OS error's text without the "(os error N)" suffix.
fn plain_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

impl FileSystem for DiskFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let (real, md) = self.checked(path)?;
        if md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", path.display()),
            ));
        }
        // the size is checked before anything is read, and the read stops one byte past
        // the limit (a file that grows meanwhile, or reports no size, as under /proc)
        let limit = self.max_file_size();
        let too_large = |size: u64| FileTooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        };
        if md.len() > limit {
            return Err(too_large(md.len()).into());
        }
        let host = self.host_path(&real);
        let io_err = |e: io::Error| io::Error::new(e.kind(), plain_io(&e));
        let file = std::fs::File::open(&host).map_err(io_err)?;
        let mut buf = Vec::with_capacity(md.len() as usize);
        io::Read::read_to_end(&mut io::Read::take(file, limit.saturating_add(1)), &mut buf)
            .map_err(io_err)?;
        if buf.len() as u64 > limit {
            return Err(too_large(buf.len() as u64).into());
        }
        Ok(buf)
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        match self.resolve(path) {
            Ok((_, md)) if md.is_dir() => Some(FileType::Dir),
            Ok(_) => Some(FileType::File),
            // Refused: there is something, and reading it says why it is refused.
            Err(e) if confinement(&e).is_some() => Some(FileType::File),
            Err(_) => None,
        }
    }
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        match self.checked(path) {
            Ok((_, md)) if md.is_dir() => Ok(Some(FileType::Dir)),
            Ok(_) => Ok(Some(FileType::File)),
            Err(e) if confinement(&e).is_some() => Err(e),
            Err(_) => Ok(None),
        }
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let (real, md) = self.checked(path)?;
        if !md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", path.display()),
            ));
        }
        let mut names: Vec<String> = std::fs::read_dir(self.host_path(&real))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        self.resolve(path).map(|(real, _)| real)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory holding `root/` (the file system) and `outside/`.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new() -> Tmp {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "capstan-vfs-disk-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("root/sub")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            std::fs::write(dir.join("root/in.yaml"), "inside").unwrap();
            std::fs::write(dir.join("root/sub/deep.yaml"), "deep").unwrap();
            std::fs::write(dir.join("outside/secret.yaml"), "SECRET").unwrap();
            Tmp(dir)
        }
        fn root(&self) -> PathBuf {
            self.0.join("root")
        }
        fn link(&self, at: &str, target: impl AsRef<Path>) {
            symlink(target, self.root().join(at)).unwrap();
        }
        fn fs(&self) -> DiskFs {
            DiskFs::new(self.root()).unwrap()
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn refused(fs: &DiskFs, path: &str) -> Confinement {
        let e = fs.read(Path::new(path)).unwrap_err();
        assert!(
            !e.to_string().contains("SECRET"),
            "error leaks content: {e}"
        );
        confinement(&e)
            .unwrap_or_else(|| panic!("{path}: not a confinement error: {e}"))
            .clone()
    }

    #[test]
    fn plain_files_and_dirs_read() {
        let t = Tmp::new();
        let fs = t.fs();
        assert_eq!(fs.read_to_string(Path::new("/in.yaml")).unwrap(), "inside");
        assert_eq!(fs.read_dir(Path::new("/")).unwrap(), vec!["in.yaml", "sub"]);
        assert_eq!(fs.file_type(Path::new("/sub")), Some(FileType::Dir));
        assert_eq!(fs.file_type(Path::new("/nope")), None);
        assert_eq!(fs.stat(Path::new("/nope")).unwrap(), None);
        assert_eq!(
            fs.read(Path::new("/nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // The caller names the path; an error names only another component.
        assert_eq!(
            fs.read(Path::new("/sub/nope")).unwrap_err().to_string(),
            "no such file or directory"
        );
        assert_eq!(
            fs.read(Path::new("/gone/nope")).unwrap_err().to_string(),
            "/gone: no such file or directory"
        );
        assert!(fs.read(Path::new("/sub")).is_err());
        assert!(fs.read(Path::new("/in.yaml/x")).is_err());
    }

    #[test]
    fn relative_symlink_inside_the_root_is_followed() {
        let t = Tmp::new();
        t.link("alias.yaml", "sub/deep.yaml");
        t.link("sub/up.yaml", "../in.yaml");
        t.link("dirlink", "sub");
        let fs = t.fs();
        assert_eq!(fs.read_to_string(Path::new("/alias.yaml")).unwrap(), "deep");
        assert_eq!(
            fs.read_to_string(Path::new("/sub/up.yaml")).unwrap(),
            "inside"
        );
        assert_eq!(
            fs.read_to_string(Path::new("/dirlink/deep.yaml")).unwrap(),
            "deep"
        );
        assert_eq!(
            fs.real_path(Path::new("/dirlink/up.yaml")).unwrap(),
            PathBuf::from("/in.yaml")
        );
        assert_eq!(fs.file_type(Path::new("/dirlink")), Some(FileType::Dir));
    }

    #[test]
    fn symlink_to_a_file_outside_the_root_is_refused_naming_link_and_target() {
        let t = Tmp::new();
        t.link("sub/leak.yaml", "../../outside/secret.yaml");
        let fs = t.fs();
        let c = refused(&fs, "/sub/leak.yaml");
        assert_eq!(
            c,
            Confinement::Escapes {
                link: PathBuf::from("/sub/leak.yaml"),
                target: PathBuf::from("../../outside/secret.yaml"),
                root: fs.root().to_path_buf(),
            }
        );
        let msg = fs
            .read(Path::new("/sub/leak.yaml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/sub/leak.yaml") && msg.contains("../../outside/secret.yaml"));
        // Seen, not skipped: it looks like a file whose reading fails.
        assert_eq!(
            fs.file_type(Path::new("/sub/leak.yaml")),
            Some(FileType::File)
        );
        assert!(fs.stat(Path::new("/sub/leak.yaml")).is_err());
        assert!(fs.real_path(Path::new("/sub/leak.yaml")).is_err());
    }

    #[test]
    fn absolute_symlinks_are_followed_only_under_the_root() {
        let t = Tmp::new();
        t.link("environ", "/proc/self/environ");
        t.link("abs-out.yaml", t.0.join("outside/secret.yaml"));
        t.link("abs-in.yaml", t.root().join("sub/deep.yaml"));
        // Under the root by its path, but `..` leaves it: refused.
        t.link("abs-dotdot.yaml", t.root().join("../outside/secret.yaml"));
        let fs = t.fs();
        assert!(
            matches!(refused(&fs, "/environ"), Confinement::Escapes { link, .. } if link == Path::new("/environ"))
        );
        assert!(matches!(
            refused(&fs, "/abs-out.yaml"),
            Confinement::Escapes { .. }
        ));
        assert!(matches!(
            refused(&fs, "/abs-dotdot.yaml"),
            Confinement::Escapes { .. }
        ));
        assert_eq!(
            fs.read_to_string(Path::new("/abs-in.yaml")).unwrap(),
            "deep"
        );
    }

    #[test]
    fn a_link_that_leaves_and_comes_back_is_refused() {
        let t = Tmp::new();
        t.link("back.yaml", "../root/in.yaml");
        assert!(matches!(
            refused(&t.fs(), "/back.yaml"),
            Confinement::Escapes { .. }
        ));
    }

    /// `..` after a symlink is physical: `d/x -> ..` is the root, so `d/y -> x/../..`
    /// climbs out although it looks lexically like `d/..` (a check of each link's text
    /// alone, as a checkout may do, lets it through).
    #[test]
    fn dotdot_after_a_symlink_is_resolved_physically() {
        let t = Tmp::new();
        t.link("sub/x", "..");
        t.link("sub/y", "x/../outside/secret.yaml");
        let fs = t.fs();
        assert!(matches!(
            refused(&fs, "/sub/y"),
            Confinement::Escapes { link, .. } if link == Path::new("/sub/y")
        ));
        assert_eq!(
            fs.read_to_string(Path::new("/sub/x/in.yaml")).unwrap(),
            "inside"
        );
    }

    #[test]
    fn directory_symlink_outside_the_root_is_refused_below_it() {
        let t = Tmp::new();
        t.link("chart", t.0.join("outside"));
        let fs = t.fs();
        let c = refused(&fs, "/chart/secret.yaml");
        assert!(matches!(c, Confinement::Escapes { link, .. } if link == Path::new("/chart")));
        assert!(fs.read_dir(Path::new("/chart")).is_err());
        assert_eq!(
            fs.file_type(Path::new("/chart/secret.yaml")),
            Some(FileType::File)
        );
    }

    #[test]
    fn symlink_loops_are_reported_as_loops() {
        let t = Tmp::new();
        t.link("a", "b");
        t.link("b", "a");
        t.link("self", "self/x");
        let fs = t.fs();
        assert!(matches!(refused(&fs, "/a"), Confinement::Loop { .. }));
        assert!(matches!(refused(&fs, "/self"), Confinement::Loop { .. }));
        let e = fs.read(Path::new("/a")).unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
        // A link to its own directory is no loop: each use resolves.
        t.link("sub/here", ".");
        assert_eq!(
            fs.read_to_string(Path::new("/sub/here/here/deep.yaml"))
                .unwrap(),
            "deep"
        );
    }

    #[test]
    fn long_symlink_chains_are_bounded() {
        let t = Tmp::new();
        for i in 0..=MAX_LINKS {
            t.link(&format!("l{i}"), format!("l{}", i + 1));
        }
        t.link(&format!("l{}", MAX_LINKS + 1), "in.yaml");
        assert!(matches!(
            refused(&t.fs(), "/l0"),
            Confinement::TooManyLinks { .. }
        ));
    }

    #[test]
    fn dotdot_cannot_climb_above_the_root() {
        let t = Tmp::new();
        let fs = t.fs();
        assert!(matches!(
            refused(&fs, "/../outside/secret.yaml"),
            Confinement::AboveRoot { .. }
        ));
        assert!(matches!(
            refused(&fs, "sub/../../outside/secret.yaml"),
            Confinement::AboveRoot { .. }
        ));
        // Within the root `..` is fine.
        assert_eq!(
            fs.read_to_string(Path::new("/sub/../in.yaml")).unwrap(),
            "inside"
        );
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let t = Tmp::new();
        let fifo = t.root().join("pipe.yaml");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("mkfifo unavailable; skipped");
            return;
        }
        assert!(matches!(
            refused(&t.fs(), "/pipe.yaml"),
            Confinement::NotRegular { .. }
        ));
    }

    #[test]
    fn root_given_through_a_symlink_accepts_absolute_links_either_way() {
        let t = Tmp::new();
        symlink(t.root(), t.0.join("alias")).unwrap();
        t.link("via-alias.yaml", t.0.join("alias/in.yaml"));
        let fs = DiskFs::new(t.0.join("alias")).unwrap();
        assert_eq!(
            fs.read_to_string(Path::new("/via-alias.yaml")).unwrap(),
            "inside"
        );
    }

    #[test]
    fn files_over_the_size_budget_are_refused_naming_file_size_and_limit() {
        let t = Tmp::new();
        std::fs::write(t.root().join("small.yaml"), "a: 1\n").unwrap();
        std::fs::write(t.root().join("big.yaml"), vec![b'x'; 2000]).unwrap();
        t.link("big-link.yaml", "big.yaml");
        let fs = t.fs().with_max_file_size(1000);
        assert_eq!(fs.max_file_size(), 1000);
        assert_eq!(fs.read(Path::new("/small.yaml")).unwrap(), b"a: 1\n");
        for p in ["/big.yaml", "/big-link.yaml"] {
            let e = fs.read(Path::new(p)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
            assert_eq!(
                crate::too_large(&e),
                Some(&FileTooLarge {
                    path: PathBuf::from(p),
                    size: 2000,
                    limit: 1000
                })
            );
            let msg = e.to_string();
            assert!(
                msg.contains(p) && msg.contains("2000 bytes") && msg.contains("limit of 1000"),
                "{msg}"
            );
            assert!(fs.read_to_string(Path::new(p)).is_err());
        }
        // exactly at the limit is fine
        std::fs::write(t.root().join("edge.yaml"), vec![b'x'; 1000]).unwrap();
        assert_eq!(fs.read(Path::new("/edge.yaml")).unwrap().len(), 1000);
        // the default budget
        assert_eq!(t.fs().max_file_size(), crate::default_max_file_size());
    }

    #[test]
    fn a_huge_file_is_refused_before_it_is_read() {
        // a sparse file of 1 TiB: reading it into memory would never finish
        let t = Tmp::new();
        let f = std::fs::File::create(t.root().join("huge.bin")).unwrap();
        if f.set_len(1 << 40).is_err() {
            return; // a file system without sparse files
        }
        drop(f);
        let e = t.fs().read(Path::new("/huge.bin")).unwrap_err();
        let big = crate::too_large(&e).expect("a size error");
        assert_eq!(big.size, 1 << 40);
        assert_eq!(big.limit, crate::default_max_file_size());
    }
}
