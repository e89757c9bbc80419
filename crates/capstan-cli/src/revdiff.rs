//! `capstan diff --base REV --target REV [REPO]`: the rendered diff between two
//! revisions for every cluster, with no cluster (the pull-request check). Kept apart
//! from the live `capstan diff REPO --cluster NAME`: `main` sends a `diff` here when
//! `--base`, `--target`, `--base-dir` or `--target-dir` is given.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use capstan_revdiff::memo::MemoRenderer;
use capstan_revdiff::render::{ClusterTarget, FluxReader, Revision};
use capstan_revdiff::tree::GitRepo;
use capstan_revdiff::{ignore, report, CompareOptions};
use clap::Parser;

pub const EXIT_CODES: &str = "\
Exit codes: 0 no change, 1 changes, 2 failures (a unit or cluster fails to render at the \
target, a revision that does not exist, a repository without clusters/).";

/// Render every cluster of the repository at two revisions and compare the rendered
/// objects, with no cluster: cluster -> unit -> object, added, removed (what prune
/// deletes), changed (a unified diff of the YAML), renamed units, and notes (image and
/// chart version changes, immutable fields that force a replacement, CRD changes, units
/// that newly fail, dependency edges). Secret values are always masked.
///
/// Revisions are read from the Git object database (the working tree is never
/// touched). Defaults: --base = the merge-base of HEAD and the default branch
/// (origin/HEAD, else main or master); --target = the working tree. `--base` alone
/// takes the default.
///
/// Renders are reused: a kustomize build or Helm render whose inputs (every file it
/// read, byte for byte, and every directory it listed) are identical at the other
/// revision, in another cluster or in the cache of an earlier run, is not done again.
#[derive(Parser, Debug)]
#[command(name = "capstan diff", after_help = EXIT_CODES)]
pub struct RevDiffArgs {
    /// The repository: a Git work tree or a directory inside one (the diff is about
    /// that directory).
    #[arg(default_value = ".")]
    pub repo: PathBuf,
    /// The base revision (branch, tag, commit, HEAD~1, ...).
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "REV")]
    pub base: Option<String>,
    /// The target revision (default: the working tree).
    #[arg(long, value_name = "REV")]
    pub target: Option<String>,
    /// Compare a directory as the base instead of a revision.
    #[arg(long, conflicts_with = "base", value_name = "DIR")]
    pub base_dir: Option<PathBuf>,
    /// Compare a directory as the target instead of a revision.
    #[arg(long, conflicts_with = "target", value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Only this cluster (clusters/NAME); repeatable. Default: every clusters/* directory.
    #[arg(long, short = 'c', value_name = "NAME")]
    pub cluster: Vec<String>,
    /// A cluster directory instead of clusters/NAME; repeatable.
    #[arg(long, value_name = "DIR")]
    pub path: Vec<String>,
    /// Show only changed clusters and units.
    #[arg(long)]
    pub changed_only: bool,
    /// Output format: text (coloured on a terminal), markdown (pull-request comments),
    /// json.
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "markdown", "json"])]
    pub output: String,
    /// Markdown: split into numbered parts at object boundaries, each under this many
    /// bytes.
    #[arg(long, default_value_t = report::DEFAULT_MAX_COMMENT_BYTES, value_name = "BYTES")]
    pub max_comment_bytes: usize,
    /// Write the output as files into DIR (markdown: part-1.md, part-2.md, ...; text:
    /// diff.txt; json: diff.json) instead of printing it.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Leave a field out of the comparison, e.g. metadata.labels.helm.sh/chart
    /// (`*` in a key, a leading `**.` for any depth); repeatable.
    #[arg(long, value_name = "PATH")]
    pub ignore_field: Vec<String>,
    /// Do not ignore chart-version labels (helm.sh/chart, chart) and checksum/*
    /// annotations.
    #[arg(long)]
    pub no_default_ignores: bool,
    /// Colours in text output.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Render threads (default: the number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Where renders are cached between runs (default: ~/.cache/capstan/diff).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the render cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print timings and reuse counts on stderr.
    #[arg(long)]
    pub stats: bool,
}

/// Is this `capstan diff` invocation (arguments after `diff`) the revision mode?
pub fn wanted(args: &[String]) -> bool {
    args.iter().any(|a| {
        ["--base", "--target", "--base-dir", "--target-dir"]
            .iter()
            .any(|f| a == f || a.starts_with(&format!("{f}=")))
    })
}

/// Parse the arguments after `diff` and run.
pub fn run_args(args: Vec<String>) -> Result<u8, String> {
    let argv = std::iter::once("capstan diff".to_string()).chain(args);
    let parsed = match RevDiffArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() {
                crate::EXIT_FAILURE
            } else {
                0
            };
            let _ = e.print();
            return Ok(code);
        }
    };
    run(parsed)
}

fn cache_dir(args: &RevDiffArgs) -> Option<PathBuf> {
    if let Some(d) = &args.cache_dir {
        return Some(d.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("capstan").join("diff"))
}

/// Who renders: a cache written by another capstan binary is not used.
fn writer_identity() -> String {
    let exe = std::env::current_exe().ok();
    let meta = exe.as_ref().and_then(|e| std::fs::metadata(e).ok());
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}|{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        exe.map(|e| e.display().to_string()).unwrap_or_default(),
        meta.map(|m| m.len()).unwrap_or(0),
        mtime
    )
}

enum Tree {
    Disk(capstan_vfs::DiskFs),
    Git(capstan_revdiff::tree::TreeFs),
}

impl Tree {
    fn fs(&self) -> &dyn capstan_vfs::FileSystem {
        match self {
            Tree::Disk(d) => d,
            Tree::Git(t) => t,
        }
    }
}

fn disk(dir: &Path) -> Result<Tree, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    capstan_vfs::DiskFs::new(dir)
        .map(Tree::Disk)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

pub fn run(args: RevDiffArgs) -> Result<u8, String> {
    let started = Instant::now();
    let needs_git = args.base_dir.is_none() || (args.target_dir.is_none() && args.target.is_some());
    let git: Option<GitRepo> = if needs_git {
        Some(GitRepo::discover(&args.repo)?)
    } else {
        None
    };
    let (base, base_label) = match &args.base_dir {
        Some(d) => (disk(d)?, d.display().to_string()),
        None => {
            let g = git.as_ref().expect("opened");
            let (id, label) = match args.base.as_deref() {
                None | Some("") => {
                    let (id, how) = g.default_base()?;
                    let hex = id.to_string();
                    (id, format!("{} ({how})", short(&hex)))
                }
                Some(rev) => {
                    let id = g.resolve(rev)?;
                    (id, format!("{rev} ({})", short(&id.to_string())))
                }
            };
            (Tree::Git(g.tree_fs(id)?), label)
        }
    };
    let (target, target_label) = match (&args.target_dir, &args.target) {
        (Some(d), _) => (disk(d)?, d.display().to_string()),
        (None, Some(rev)) => {
            let g = git.as_ref().expect("opened");
            let id = g.resolve(rev)?;
            (
                Tree::Git(g.tree_fs(id)?),
                format!("{rev} ({})", short(&id.to_string())),
            )
        }
        (None, None) => (disk(&args.repo)?, "working tree".to_string()),
    };
    let read_done = started.elapsed();

    let mut selected: Vec<ClusterTarget> = args
        .cluster
        .iter()
        .map(|c| ClusterTarget {
            name: c.clone(),
            path: format!("clusters/{c}"),
        })
        .collect();
    for p in &args.path {
        let path = p.trim_start_matches("./").trim_end_matches('/').to_string();
        selected.push(ClusterTarget {
            name: path.clone(),
            path,
        });
    }
    let reader = FluxReader { selected };

    let mut ignores = if args.no_default_ignores {
        Vec::new()
    } else {
        ignore::defaults()
    };
    for f in &args.ignore_field {
        ignores.push(ignore::FieldPath::parse(f)?);
    }

    let memo = MemoRenderer::new(capstan_engine::NativeRenderer);
    let writer = writer_identity();
    let cache_file = if args.no_cache {
        None
    } else {
        cache_dir(&args).map(|d| {
            let repo = std::fs::canonicalize(&args.repo).unwrap_or_else(|_| args.repo.clone());
            let key: u64 = repo
                .display()
                .to_string()
                .bytes()
                .fold(0xcbf29ce484222325, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100000001b3)
                });
            d.join(format!("memo-{key:016x}.json"))
        })
    };
    if let Some(f) = &cache_file {
        memo.load(f, &writer);
    }
    let loaded = started.elapsed();
    let threads = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let revisions = [
        Revision {
            label: base_label,
            fs: base.fs(),
        },
        Revision {
            label: target_label,
            fs: target.fs(),
        },
    ];
    let mut snaps = capstan_revdiff::render::render_revisions(&reader, &revisions, &memo, threads)?;
    let rendered = started.elapsed();
    let target_snap = snaps.pop().expect("two revisions");
    let base_snap = snaps.pop().expect("two revisions");
    let opts = CompareOptions {
        ignores,
        ..Default::default()
    };
    let mut rep = capstan_revdiff::compare(&base_snap, &target_snap, &opts);
    let code = rep.exit_code();
    if args.changed_only {
        rep = rep.changed_only();
    }
    let outputs: Vec<(String, String)> = match args.output.as_str() {
        "json" => vec![("diff.json".into(), report::json(&rep))],
        "markdown" => {
            let parts = report::markdown(&rep, args.max_comment_bytes);
            parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("part-{}.md", i + 1), p))
                .collect()
        }
        _ => {
            let colour = match args.color.as_str() {
                "always" => true,
                "never" => false,
                _ => {
                    args.output_dir.is_none()
                        && std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none()
                }
            };
            vec![("diff.txt".into(), report::text(&rep, colour))]
        }
    };
    match &args.output_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // Parts of an earlier run must not be posted again.
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with("part-") && n.ends_with(".md") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            for (name, text) in &outputs {
                let p = dir.join(name);
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
                eprintln!("wrote {}", p.display());
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let n = outputs.len();
            for (i, (_, text)) in outputs.iter().enumerate() {
                if n > 1 {
                    let _ = writeln!(out, "<!-- capstan diff: part {} of {n} -->", i + 1);
                }
                let _ = out.write_all(text.as_bytes());
            }
            let _ = out.flush();
        }
    }
    if let Some(f) = cache_file.as_ref().filter(|_| memo.needs_save()) {
        if let Err(e) = memo.save(f, &writer) {
            eprintln!(
                "warning: cannot write the render cache {}: {e}",
                f.display()
            );
        }
    }
    if args.stats {
        let s = memo.stats();
        eprintln!(
            "stats: read revisions {:.3}s, cache load {:.3}s, render {:.3}s, total {:.3}s; renders reused {}, rendered {}; threads {threads}",
            read_done.as_secs_f64(),
            (loaded - read_done).as_secs_f64(),
            (rendered - loaded).as_secs_f64(),
            started.elapsed().as_secs_f64(),
            s.hits,
            s.misses
        );
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_mode_is_chosen_by_its_flags() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(wanted(&v(&["--base", "main"])));
        assert!(wanted(&v(&["--target-dir=x"])));
        assert!(!wanted(&v(&["repo", "--cluster", "a"])));
    }

    #[test]
    fn base_alone_takes_the_default() {
        let a = RevDiffArgs::try_parse_from(["capstan diff", "--base"]).unwrap();
        assert_eq!(a.base.as_deref(), Some(""));
        let a = RevDiffArgs::try_parse_from([
            "capstan diff",
            "--base",
            "main",
            "repo",
            "-c",
            "a",
            "-c",
            "b",
        ])
        .unwrap();
        assert_eq!(a.base.as_deref(), Some("main"));
        assert_eq!(a.cluster, vec!["a", "b"]);
        assert_eq!(a.repo, PathBuf::from("repo"));
    }
}
