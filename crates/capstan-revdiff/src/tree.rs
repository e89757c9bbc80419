//! A revision of a Git repository as a read-only file system, read with gix from the
//! object database: the working tree, the index and HEAD are never touched.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_vfs::{Confinement, FileSystem, FileType, MAX_LINKS};
use gix::bstr::ByteSlice;

#[derive(Debug, Clone)]
enum Node {
    File(Arc<[u8]>),
    Dir(Vec<String>),
    Link(String),
}

/// The files of one tree, in memory. Symlinks are followed as [`capstan_vfs::DiskFs`]
/// follows them: only while they stay beneath the root.
#[derive(Debug, Clone)]
pub struct TreeFs {
    /// Keyed by the path from the root without a leading `/` (`""` is the root).
    nodes: HashMap<String, Node>,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

impl TreeFs {
    /// An empty tree (a root directory with nothing in it).
    pub fn empty() -> TreeFs {
        let mut nodes = HashMap::new();
        nodes.insert(String::new(), Node::Dir(Vec::new()));
        TreeFs { nodes }
    }

    /// Add a file (parents are created); for tests and generated trees.
    pub fn add_file(&mut self, path: &str, data: &[u8]) {
        self.add(path, Node::File(data.into()));
    }

    /// Add a symlink to `target` (as written in the link).
    pub fn add_link(&mut self, path: &str, target: &str) {
        self.add(path, Node::Link(target.to_string()));
    }

    fn add(&mut self, path: &str, node: Node) {
        let path = path.trim_matches('/');
        let mut parent = String::new();
        for comp in path.split('/') {
            let here = join(&parent, comp);
            if let Some(Node::Dir(entries)) = self.nodes.get_mut(&parent) {
                if !entries.iter().any(|e| e == comp) {
                    entries.push(comp.to_string());
                    entries.sort();
                }
            }
            if here != path && !self.nodes.contains_key(&here) {
                self.nodes.insert(here.clone(), Node::Dir(Vec::new()));
            }
            parent = here;
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| matches!(n, Node::File(_)))
            .count()
    }

    /// Resolve `path` (following symlinks beneath the root) to a key, `Ok(None)` when
    /// nothing is there.
    fn resolve(&self, path: &Path) -> io::Result<Option<String>> {
        let mut pending: VecDeque<String> = VecDeque::new();
        for c in path.components() {
            match c {
                std::path::Component::Normal(s) => {
                    pending.push_back(s.to_string_lossy().into_owned())
                }
                std::path::Component::ParentDir => pending.push_back("..".into()),
                _ => {}
            }
        }
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                if cur.pop().is_none() {
                    return Err(Confinement::AboveRoot {
                        path: path.to_path_buf(),
                    }
                    .into());
                }
                continue;
            }
            if c == "." || c.is_empty() {
                continue;
            }
            cur.push(c);
            let key = cur.join("/");
            match self.nodes.get(&key) {
                None => return Ok(None),
                Some(Node::Link(target)) => {
                    hops += 1;
                    let link = PathBuf::from(format!("/{key}"));
                    if hops > MAX_LINKS {
                        return Err(Confinement::TooManyLinks {
                            path: path.to_path_buf(),
                        }
                        .into());
                    }
                    cur.pop();
                    // Does the target leave the root?
                    let mut depth = cur.len() as isize;
                    let escapes = target.starts_with('/')
                        || target.split('/').any(|t| {
                            match t {
                                ".." => depth -= 1,
                                "" | "." => {}
                                _ => depth += 1,
                            }
                            depth < 0
                        });
                    if escapes {
                        return Err(Confinement::Escapes {
                            link,
                            target: PathBuf::from(target),
                            root: PathBuf::from("/"),
                        }
                        .into());
                    }
                    for t in target.split('/').rev() {
                        pending.push_front(t.to_string());
                    }
                }
                Some(Node::File(_)) if !pending.is_empty() => return Ok(None),
                Some(_) => {}
            }
        }
        Ok(Some(cur.join("/")))
    }

    fn node(&self, path: &Path) -> io::Result<Option<&Node>> {
        Ok(self.resolve(path)?.and_then(|k| self.nodes.get(&k)))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl FileSystem for TreeFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.node(path)? {
            Some(Node::File(d)) => Ok(d.to_vec()),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn file_type(&self, path: &Path) -> Option<FileType> {
        match self.node(path) {
            Ok(Some(Node::Dir(_))) => Some(FileType::Dir),
            Ok(Some(_)) => Some(FileType::File),
            Ok(None) => None,
            // As DiskFs: a refused path is "a file", whose read says why.
            Err(_) => Some(FileType::File),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        match self.node(path)? {
            Some(Node::Dir(e)) => Ok(e.clone()),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        match self.resolve(path)? {
            Some(k) => Ok(PathBuf::from(format!("/{k}"))),
            None => Err(not_found(path)),
        }
    }

    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        Ok(match self.node(path)? {
            Some(Node::Dir(_)) => Some(FileType::Dir),
            Some(_) => Some(FileType::File),
            None => None,
        })
    }
}

/// A Git repository opened for reading revisions.
pub struct GitRepo {
    repo: gix::Repository,
    /// The directory the diff is about, relative to the work tree's root (`""`: all).
    prefix: String,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

impl GitRepo {
    /// Open the repository holding `dir` (a work tree or a directory in one).
    pub fn discover(dir: &Path) -> Result<GitRepo, String> {
        let abs = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let repo = gix::discover(&abs).map_err(|e| {
            format!(
                "{}: not in a Git repository ({}); compare two directories with --base-dir and --target-dir",
                dir.display(),
                chain(&e)
            )
        })?;
        let top = repo
            .workdir()
            .map(|w| std::fs::canonicalize(w).unwrap_or_else(|_| w.to_path_buf()))
            .unwrap_or_else(|| abs.clone());
        let prefix = abs
            .strip_prefix(&top)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(GitRepo { repo, prefix })
    }

    /// A revision (branch, tag, commit, `HEAD~1`, ...) to its commit id.
    pub fn resolve(&self, rev: &str) -> Result<gix::ObjectId, String> {
        let id = self.repo.rev_parse_single(rev).map_err(|e| {
            format!(
                "revision {rev:?} does not exist in the repository: {}",
                chain(&e)
            )
        })?;
        let commit = id
            .object()
            .map_err(|e| format!("revision {rev:?}: {}", chain(&e)))?
            .peel_to_commit()
            .map_err(|e| format!("revision {rev:?} is not a commit: {}", chain(&e)))?;
        Ok(commit.id)
    }

    /// The URL of the `origin` remote, if configured.
    pub fn origin_url(&self) -> Option<String> {
        let cfg = self.repo.config_snapshot();
        let url = cfg.string("remote.origin.url")?;
        let url = url.to_string();
        (!url.trim().is_empty()).then(|| url.trim().to_string())
    }

    /// The default branch: what `origin/HEAD` points to, else `main`, `master`,
    /// `origin/main`, `origin/master`, whichever exists first.
    pub fn default_branch(&self) -> Result<String, String> {
        if let Ok(r) = self.repo.find_reference("refs/remotes/origin/HEAD") {
            if let Some(name) = r.target().try_name() {
                return Ok(name.as_bstr().to_str_lossy().into_owned());
            }
        }
        for c in ["main", "master", "origin/main", "origin/master"] {
            if self.repo.rev_parse_single(c).is_ok() {
                return Ok(c.to_string());
            }
        }
        Err(
            "no default branch found (origin/HEAD, main, master): name the base with --base REV"
                .into(),
        )
    }

    /// `git merge-base HEAD <default branch>`, with the branch's name.
    pub fn default_base(&self) -> Result<(gix::ObjectId, String), String> {
        let branch = self.default_branch()?;
        let b = self.resolve(&branch)?;
        let head = self.resolve("HEAD")?;
        let mb = self
            .repo
            .merge_base(head, b)
            .map_err(|e| format!("merge-base of HEAD and {branch}: {}", chain(&e)))?
            .ok_or_else(|| {
                format!("HEAD and {branch} have no common ancestor: name the base with --base REV")
            })?;
        Ok((mb.detach(), format!("merge-base with {branch}")))
    }

    /// The tree of `commit` (beneath the directory the diff is about) in memory.
    pub fn tree_fs(&self, commit: gix::ObjectId) -> Result<TreeFs, String> {
        let c = self
            .repo
            .find_commit(commit)
            .map_err(|e| format!("reading commit {commit}: {}", chain(&e)))?;
        let mut tree = c
            .tree()
            .map_err(|e| format!("reading the tree of {commit}: {}", chain(&e)))?;
        if !self.prefix.is_empty() {
            let entry = tree
                .peel_to_entry_by_path(&self.prefix)
                .map_err(|e| format!("{}: {}", self.prefix, chain(&e)))?
                .ok_or_else(|| format!("{} does not exist at {commit}", self.prefix))?;
            tree = entry
                .object()
                .map_err(|e| format!("{}: {}", self.prefix, chain(&e)))?
                .peel_to_tree()
                .map_err(|e| {
                    format!(
                        "{} is not a directory at {commit}: {}",
                        self.prefix,
                        chain(&e)
                    )
                })?;
        }
        let mut fs = TreeFs::empty();
        self.walk(tree.id, "", &mut fs)?;
        Ok(fs)
    }

    fn walk(&self, tree: gix::ObjectId, prefix: &str, fs: &mut TreeFs) -> Result<(), String> {
        let t = self
            .repo
            .find_tree(tree)
            .map_err(|e| format!("reading tree {tree}: {}", chain(&e)))?;
        let decoded = t
            .decode()
            .map_err(|e| format!("decoding tree {tree}: {}", chain(&e)))?;
        let entries: Vec<(String, gix::object::tree::EntryMode, gix::ObjectId)> = decoded
            .entries
            .iter()
            .map(|e| {
                (
                    e.filename.to_str_lossy().into_owned(),
                    e.mode,
                    e.oid.to_owned(),
                )
            })
            .collect();
        for (name, mode, oid) in entries {
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(format!("unsafe file name {name:?} in tree {tree}"));
            }
            let rel = join(prefix, &name);
            if mode.is_tree() {
                fs.add(&rel, Node::Dir(Vec::new()));
                self.walk(oid, &rel, fs)?;
            } else if mode.is_commit() {
                // a submodule: not part of this repository's tree
                continue;
            } else {
                let blob = self
                    .repo
                    .find_blob(oid)
                    .map_err(|e| format!("reading {rel}: {}", chain(&e)))?;
                if mode.is_link() {
                    fs.add_link(&rel, &String::from_utf8_lossy(&blob.data));
                } else {
                    fs.add_file(&rel, &blob.data);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_dirs_and_links_inside_the_root() {
        let mut fs = TreeFs::empty();
        fs.add_file("a/b/c.yaml", b"x");
        fs.add_link("a/l", "b");
        fs.add_link("top", "a/b/c.yaml");
        assert_eq!(fs.read(Path::new("/a/l/c.yaml")).unwrap(), b"x");
        assert_eq!(fs.read(Path::new("/top")).unwrap(), b"x");
        assert_eq!(fs.read_dir(Path::new("/a")).unwrap(), vec!["b", "l"]);
        assert!(fs.is_dir(Path::new("/a/l")));
        assert_eq!(
            fs.real_path(Path::new("/a/l/c.yaml")).unwrap(),
            PathBuf::from("/a/b/c.yaml")
        );
        assert!(fs.read(Path::new("/a/missing")).unwrap_err().kind() == io::ErrorKind::NotFound);
    }

    #[test]
    fn links_leaving_the_root_or_looping_are_refused() {
        let mut fs = TreeFs::empty();
        fs.add_link("out", "../../etc/passwd");
        fs.add_link("abs", "/etc/passwd");
        fs.add_link("loop", "loop");
        for p in ["/out", "/abs"] {
            let e = fs.read(Path::new(p)).unwrap_err();
            assert!(
                matches!(
                    capstan_vfs::confinement(&e),
                    Some(Confinement::Escapes { .. })
                ),
                "{p}: {e}"
            );
        }
        let e = fs.read(Path::new("/loop")).unwrap_err();
        assert!(matches!(
            capstan_vfs::confinement(&e),
            Some(Confinement::TooManyLinks { .. })
        ));
        assert!(fs.read(Path::new("/../x")).is_err());
    }
}
