//! Render reuse: a [`Renderer`] that remembers every kustomize build and Helm render
//! with the exact file-system observations it made (each file read, with a SHA-256 of
//! its bytes; each directory listing, file type and resolved path asked). A later call
//! for the same directory (or the same Helm request) whose observations all hold again,
//! at the other revision or in another cluster, gets the remembered objects without
//! rendering. Nothing else is an input of capstan's engines (they do no other I/O), so
//! reuse is exact. Helm's `now` and random functions are the exception: a reused render
//! keeps the values of the render it reuses.
//!
//! The memo can be saved to and loaded from a file (the warm cache of `capstan diff`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use capstan_units::{HelmRequest, Renderer};
use capstan_vfs::{FileSystem, FileType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One observation: what was asked (`op`, `path`) and a digest of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Obs {
    op: u8,
    path: String,
    answer: String,
}

const READ: u8 = 0;
const TYPE: u8 = 1;
const LIST: u8 = 2;
const REAL: u8 = 3;
const STAT: u8 = 4;

fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn answer_read(r: &io::Result<Vec<u8>>) -> String {
    match r {
        Ok(b) => digest(b),
        Err(e) => format!("err:{:?}:{e}", e.kind()),
    }
}

fn answer_type(t: Option<FileType>) -> String {
    format!("{t:?}")
}

fn answer_list(r: &io::Result<Vec<String>>) -> String {
    match r {
        Ok(names) => digest(names.join("\0").as_bytes()),
        Err(e) => format!("err:{:?}:{e}", e.kind()),
    }
}

fn answer_real(r: &io::Result<PathBuf>) -> String {
    match r {
        Ok(p) => p.display().to_string(),
        Err(e) => format!("err:{:?}:{e}", e.kind()),
    }
}

fn answer_stat(r: &io::Result<Option<FileType>>) -> String {
    match r {
        Ok(t) => format!("{t:?}"),
        Err(e) => format!("err:{:?}:{e}", e.kind()),
    }
}

fn observe(fs: &dyn FileSystem, op: u8, path: &Path) -> String {
    match op {
        READ => answer_read(&fs.read(path)),
        TYPE => answer_type(fs.file_type(path)),
        LIST => answer_list(&fs.read_dir(path)),
        REAL => answer_real(&fs.real_path(path)),
        _ => answer_stat(&fs.stat(path)),
    }
}

/// The questions asked so far (kind of question, path) and their answers.
type Seen = (HashSet<(u8, PathBuf)>, Vec<Obs>);

/// A file system that records what is asked of it.
struct Recording<'a> {
    fs: &'a dyn FileSystem,
    seen: Mutex<Seen>,
}

impl<'a> Recording<'a> {
    fn new(fs: &'a dyn FileSystem) -> Self {
        Recording {
            fs,
            seen: Mutex::new((HashSet::new(), Vec::new())),
        }
    }
    fn record(&self, op: u8, path: &Path, answer: impl FnOnce() -> String) {
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.insert((op, path.to_path_buf())) {
            let answer = answer();
            g.1.push(Obs {
                op,
                path: path.display().to_string(),
                answer,
            });
        }
    }
    fn into_obs(self) -> Vec<Obs> {
        self.seen.into_inner().unwrap_or_else(|p| p.into_inner()).1
    }
}

impl FileSystem for Recording<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let r = self.fs.read(path);
        self.record(READ, path, || answer_read(&r));
        r
    }
    fn file_type(&self, path: &Path) -> Option<FileType> {
        let r = self.fs.file_type(path);
        self.record(TYPE, path, || answer_type(r));
        r
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let r = self.fs.read_dir(path);
        self.record(LIST, path, || answer_list(&r));
        r
    }
    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        let r = self.fs.real_path(path);
        self.record(REAL, path, || answer_real(&r));
        r
    }
    fn stat(&self, path: &Path) -> io::Result<Option<FileType>> {
        let r = self.fs.stat(path);
        self.record(STAT, path, || answer_stat(&r));
        r
    }
}

/// A remembered render.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    obs: Vec<Obs>,
    output: Result<Vec<Value>, String>,
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Renders reused.
    pub hits: usize,
    /// Renders done.
    pub misses: usize,
}

/// A [`Renderer`] that reuses renders whose inputs are identical (see the module docs).
pub struct MemoRenderer<R> {
    inner: R,
    entries: Mutex<HashMap<String, Vec<Arc<Entry>>>>,
    /// Entries hit or made in this run (what [`MemoRenderer::save`] keeps).
    used: Mutex<HashSet<usize>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

/// Version of the saved format and of what renders mean; bump when either changes.
const FORMAT: &str = "capstan-revdiff-memo-1";

#[derive(Serialize, Deserialize)]
struct Saved {
    format: String,
    /// Who wrote it (the binary's identity): another binary renders differently.
    writer: String,
    entries: Vec<Entry>,
}

impl<R: Renderer> MemoRenderer<R> {
    pub fn new(inner: R) -> Self {
        MemoRenderer {
            inner,
            entries: Mutex::new(HashMap::new()),
            used: Mutex::new(HashSet::new()),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    pub fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Would [`MemoRenderer::save`] write anything new: a render was done, or a loaded
    /// entry went unused (and is dropped)?
    pub fn needs_save(&self) -> bool {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner()).len();
        let total: usize = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum();
        self.misses.load(Ordering::Relaxed) > 0 || used < total
    }

    /// Load a saved memo; a missing, unreadable or foreign file is an empty memo.
    pub fn load(&self, path: &Path, writer: &str) {
        let Ok(data) = std::fs::read(path) else {
            return;
        };
        let Ok(saved) = serde_json::from_slice::<Saved>(&data) else {
            return;
        };
        if saved.format != FORMAT || saved.writer != writer {
            return;
        }
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for e in saved.entries {
            g.entry(e.key.clone()).or_default().push(Arc::new(e));
        }
    }

    /// Save the entries used in this run (atomically: a temporary file renamed).
    pub fn save(&self, path: &Path, writer: &str) -> io::Result<()> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entries: Vec<Entry> = g
            .values()
            .flatten()
            .filter(|e| used.contains(&(Arc::as_ptr(e) as usize)))
            .map(|e| (**e).clone())
            .collect();
        drop(g);
        let saved = Saved {
            format: FORMAT.into(),
            writer: writer.into(),
            entries,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&saved).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }

    fn cached(
        &self,
        key: String,
        fs: &dyn FileSystem,
        keep_errors: bool,
        render: impl FnOnce(&dyn FileSystem) -> Result<Vec<Value>, String>,
    ) -> Result<Vec<Value>, String> {
        let candidates: Vec<Arc<Entry>> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
            .unwrap_or_default();
        for e in candidates {
            if e.obs
                .iter()
                .all(|o| observe(fs, o.op, Path::new(&o.path)) == o.answer)
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.used
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(Arc::as_ptr(&e) as usize);
                return e.output.clone();
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let rec = Recording::new(fs);
        let output = render(&rec);
        if output.is_err() && !keep_errors {
            return output;
        }
        let entry = Arc::new(Entry {
            key: key.clone(),
            obs: rec.into_obs(),
            output: output.clone(),
        });
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Arc::as_ptr(&entry) as usize);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .push(entry);
        output
    }
}

impl<R: Renderer> Renderer for MemoRenderer<R> {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        self.cached(format!("build:{}", dir.display()), fs, true, |fs| {
            self.inner.build(fs, dir)
        })
    }

    fn helm(&self, fs: &dyn FileSystem, req: &HelmRequest) -> Result<Vec<Value>, String> {
        self.cached(format!("helm:{req:?}"), fs, true, |fs| {
            self.inner.helm(fs, req)
        })
    }
}

/// A render done under [`Reuse::reuse`].
pub type RenderFn<'a> = dyn FnMut(&dyn FileSystem) -> Result<Vec<Value>, String> + 'a;

/// Reuse of other renders than kustomize builds and Helm renders (an Argo CD
/// Application's): `render` is done, or its remembered output returned, under the same
/// rule as [`MemoRenderer`]'s (every observation of the file system holds again).
/// Failures are not remembered (they keep their typed errors by rendering again).
pub trait Reuse: Send + Sync {
    /// `key` names everything the render depends on besides the file system.
    fn reuse(
        &self,
        key: String,
        fs: &dyn FileSystem,
        render: &mut RenderFn<'_>,
    ) -> Result<Vec<Value>, String>;
}

impl<R: Renderer> Reuse for MemoRenderer<R> {
    fn reuse(
        &self,
        key: String,
        fs: &dyn FileSystem,
        render: &mut RenderFn<'_>,
    ) -> Result<Vec<Value>, String> {
        self.cached(key, fs, false, render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_vfs::MemFs;

    /// Counts builds; renders the file names it lists.
    struct Counting(AtomicUsize);
    impl Renderer for Counting {
        fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            let names = fs.read_dir(dir).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for n in names {
                let data = fs
                    .read_to_string(&dir.join(&n))
                    .map_err(|e| e.to_string())?;
                out.push(serde_json::json!({"name": n, "data": data}));
            }
            Ok(out)
        }
    }

    #[test]
    fn identical_reads_reuse_a_render_and_a_changed_file_renders_again() {
        let m = MemoRenderer::new(Counting(AtomicUsize::new(0)));
        let a = MemFs::new()
            .with("/u/a.yaml", "1")
            .with("/u/b.yaml", "2")
            .with("/other", "x");
        let b = MemFs::new()
            .with("/u/a.yaml", "1")
            .with("/u/b.yaml", "2")
            .with("/other", "y");
        let c = MemFs::new().with("/u/a.yaml", "1").with("/u/b.yaml", "3");
        let ra = m.build(&a, Path::new("/u")).unwrap();
        assert_eq!(m.build(&b, Path::new("/u")).unwrap(), ra);
        assert_eq!(m.stats(), MemoStats { hits: 1, misses: 1 });
        let rc = m.build(&c, Path::new("/u")).unwrap();
        assert_ne!(rc, ra);
        assert_eq!(m.inner.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn reuse_remembers_outputs_but_not_failures() {
        let m = MemoRenderer::new(Counting(AtomicUsize::new(0)));
        let fs = MemFs::new().with("/a", "1");
        let calls = AtomicUsize::new(0);
        let mut ok = |fs: &dyn FileSystem| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(vec![serde_json::json!(fs
                .read_to_string(Path::new("/a"))
                .unwrap())])
        };
        assert_eq!(
            m.reuse("k".into(), &fs, &mut ok).unwrap(),
            vec![serde_json::json!("1")]
        );
        m.reuse("k".into(), &fs, &mut ok).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let mut fail = |_: &dyn FileSystem| Err("boom".to_string());
        assert!(m.reuse("f".into(), &fs, &mut fail).is_err());
        assert!(m.reuse("f".into(), &fs, &mut fail).is_err());
        assert_eq!(m.stats(), MemoStats { hits: 1, misses: 3 });
    }

    #[test]
    fn a_new_file_in_a_listed_directory_renders_again() {
        let m = MemoRenderer::new(Counting(AtomicUsize::new(0)));
        let a = MemFs::new().with("/u/a.yaml", "1");
        let b = MemFs::new().with("/u/a.yaml", "1").with("/u/new.yaml", "2");
        m.build(&a, Path::new("/u")).unwrap();
        assert_eq!(m.build(&b, Path::new("/u")).unwrap().len(), 2);
        assert_eq!(m.stats().misses, 2);
    }

    #[test]
    fn saved_memo_warms_another_run_of_the_same_writer_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memo.json");
        let fs = MemFs::new().with("/u/a.yaml", "1");
        let m = MemoRenderer::new(Counting(AtomicUsize::new(0)));
        m.build(&fs, Path::new("/u")).unwrap();
        m.save(&file, "w1").unwrap();
        let warm = MemoRenderer::new(Counting(AtomicUsize::new(0)));
        warm.load(&file, "w1");
        warm.build(&fs, Path::new("/u")).unwrap();
        assert_eq!(warm.stats(), MemoStats { hits: 1, misses: 0 });
        assert!(!warm.needs_save());
        let other = MemoRenderer::new(Counting(AtomicUsize::new(0)));
        other.load(&file, "w2");
        other.build(&fs, Path::new("/u")).unwrap();
        assert_eq!(other.stats().misses, 1);
    }
}
