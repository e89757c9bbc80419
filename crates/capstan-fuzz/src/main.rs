//! `capstan-fuzz TARGET [--seconds N | --iterations N] [--seed N] [--seeds DIR]... [--crashes DIR]`
//!
//! Runs a fuzz target (see the library docs) in a child process with a memory limit and a
//! stack of the size capstan renders with, watches it, and saves every input that panicked,
//! aborted (stack overflow, out of memory) or ran past `--timeout` into the crashes directory.
//! Prints one summary line and exits 1 when anything crashed.
//!
//! `capstan-fuzz TARGET --replay FILE...` runs saved inputs once each (regression checks).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_fuzz::{mutate, target, Rng, Target, TARGETS};

struct Args {
    target: &'static Target,
    seconds: Option<f64>,
    iterations: Option<u64>,
    seed: u64,
    seeds: Vec<PathBuf>,
    crashes: PathBuf,
    timeout: f64,
    memory_mib: u64,
    stack_mib: usize,
    worker: bool,
    current: Option<PathBuf>,
    replay: Vec<PathBuf>,
}

const USAGE: &str = "usage: capstan-fuzz TARGET [--seconds N | --iterations N] [--seed N] \
[--seeds DIR]... [--crashes DIR] [--timeout SECS] [--memory-mib N] [--stack-mib N]\n       \
capstan-fuzz TARGET --replay FILE...\n       capstan-fuzz list";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let name = it.next().ok_or(USAGE)?;
    if name == "list" {
        for t in TARGETS {
            println!("{}", t.name);
        }
        std::process::exit(0);
    }
    let target = target(&name).ok_or_else(|| {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        format!("unknown target {name:?} (targets: {})", names.join(", "))
    })?;
    let mut a = Args {
        target,
        seconds: None,
        iterations: None,
        seed: 1,
        seeds: Vec::new(),
        crashes: PathBuf::from("fuzz-crashes").join(target.name),
        timeout: 10.0,
        memory_mib: 1024,
        stack_mib: capstan_engine::RENDER_STACK_SIZE >> 20,
        worker: false,
        current: None,
        replay: Vec::new(),
    };
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        v.as_deref()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} takes a number"))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => a.seconds = Some(num(&flag, it.next())?),
            "--iterations" => a.iterations = Some(num(&flag, it.next())?),
            "--seed" => a.seed = num(&flag, it.next())?,
            "--seeds" => a
                .seeds
                .push(it.next().ok_or("--seeds takes a directory")?.into()),
            "--crashes" => a.crashes = it.next().ok_or("--crashes takes a directory")?.into(),
            "--timeout" => a.timeout = num(&flag, it.next())?,
            "--memory-mib" => a.memory_mib = num(&flag, it.next())?,
            "--stack-mib" => a.stack_mib = num(&flag, it.next())?,
            "--worker" => a.worker = true,
            "--current" => a.current = Some(it.next().ok_or("--current takes a file")?.into()),
            "--replay" => a.replay.extend(it.by_ref().map(PathBuf::from)),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.seconds.is_none() && a.iterations.is_none() && a.replay.is_empty() {
        a.seconds = Some(60.0);
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("capstan-fuzz: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.replay.is_empty() {
        return on_stack(args.stack_mib, move || replay(&args));
    }
    if args.worker {
        limit_memory(args.memory_mib);
        return on_stack(args.stack_mib, move || worker(&args));
    }
    supervise(&args)
}

/// Runs `f` on a thread with a stack of `mib` MiB (by default the size capstan's render
/// threads have, `capstan_engine::RENDER_STACK_SIZE`),
/// so that a stack overflow found here is one production would hit.
fn on_stack(mib: usize, f: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
    std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(mib << 20)
        .spawn(f)
        .expect("spawn the fuzzing thread")
        .join()
        .unwrap_or(ExitCode::from(3))
}

fn limit_memory(mib: u64) {
    let bytes = mib << 20;
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit with a valid, initialised rlimit struct has no memory-safety
    // preconditions; failure only leaves the limit unset.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_DATA, &lim) };
    if rc != 0 {
        eprintln!("capstan-fuzz: could not limit memory to {mib} MiB");
    }
}

fn replay(args: &Args) -> ExitCode {
    let mut failed = 0;
    for f in &args.replay {
        let input = match std::fs::read(f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("capstan-fuzz: {}: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        let started = Instant::now();
        match std::panic::catch_unwind(|| (args.target.run)(&input)) {
            Ok(sig) => println!(
                "{}: {sig} ({:.2} s)",
                f.display(),
                started.elapsed().as_secs_f64()
            ),
            Err(_) => {
                println!("{}: PANIC", f.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn hash(s: &str) -> String {
    // FNV-1a: stable file names for saved inputs
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

fn save(dir: &Path, prefix: &str, input: &str) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("{prefix}-{}", hash(input)));
    let _ = std::fs::write(&path, input);
    path
}

/// The child: mutates and runs inputs until its budget is spent, reporting progress on
/// stdout (`progress EXECS CORPUS`), panics as `crash PATH`, and `done EXECS CORPUS`.
fn worker(args: &Args) -> ExitCode {
    let t = args.target;
    let known: HashSet<String> = std::fs::read_dir(&args.crashes)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .rsplit('-')
                .next()
                .map(str::to_string)
        })
        .collect();
    let mut corpus: Vec<String> = (t.seeds)();
    for dir in &args.seeds {
        corpus.extend((t.collect)(dir));
    }
    corpus.retain(|s| !known.contains(&hash(s)));
    if corpus.is_empty() {
        corpus.push(String::new());
    }
    // Panics are caught and saved; keep their reports to one line each.
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| l.to_string()).unwrap_or_default();
        eprintln!("capstan-fuzz: panic at {loc}");
    }));
    let mut rng = Rng::new(args.seed);
    let mut seen: HashSet<String> = HashSet::new();
    let out = std::io::stdout();
    let mut out = out.lock();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut execs: u64 = 0;
    let seeds = corpus.len();
    let budget_over = |execs: u64| {
        args.iterations.is_some_and(|n| execs >= n)
            || args
                .seconds
                .is_some_and(|s| started.elapsed().as_secs_f64() >= s)
    };
    while !budget_over(execs) {
        // Seeds run as they are first, then mutants of the corpus.
        let input = if (execs as usize) < seeds {
            corpus[execs as usize].clone()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, t, base, other)
        };
        if let Some(cur) = &args.current {
            let _ = std::fs::write(cur, &input);
        }
        execs += 1;
        match std::panic::catch_unwind(|| (t.run)(&input)) {
            Ok(sig) => {
                if seen.insert(sig) && corpus.len() < 20_000 && (execs as usize) > seeds {
                    corpus.push(input);
                }
            }
            Err(_) => {
                let path = save(&args.crashes, "panic", &input);
                let _ = writeln!(out, "crash {}", path.display());
            }
        }
        if last_report.elapsed() >= Duration::from_millis(100) {
            let _ = writeln!(out, "progress {execs} {}", corpus.len());
            let _ = out.flush();
            last_report = Instant::now();
        }
    }
    let _ = writeln!(out, "done {execs} {}", corpus.len());
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// The parent: runs workers until the budget is spent, restarting one that died and saving
/// the input it died on.
fn supervise(args: &Args) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("capstan-fuzz: cannot find my own executable: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.crashes) {
        eprintln!("capstan-fuzz: {}: {e}", args.crashes.display());
        return ExitCode::from(2);
    }
    let current = args.crashes.join(".current");
    let started = Instant::now();
    let mut total_execs: u64 = 0;
    let mut corpus = 0;
    let mut crashes: Vec<PathBuf> = Vec::new();
    // at most 100 workers: a crash on every start must not restart forever
    for seed in (args.seed..).take(100) {
        let remaining_iters = args.iterations.map(|n| n.saturating_sub(total_execs));
        let remaining_secs = args.seconds.map(|s| s - started.elapsed().as_secs_f64());
        if remaining_iters == Some(0) || remaining_secs.is_some_and(|s| s <= 0.0) {
            break;
        }
        let mut cmd = Command::new(&exe);
        cmd.arg(args.target.name)
            .arg("--worker")
            .args(["--seed", &seed.to_string()])
            .args(["--crashes", &args.crashes.to_string_lossy()])
            .args(["--current", &current.to_string_lossy()])
            .args(["--memory-mib", &args.memory_mib.to_string()])
            .args(["--stack-mib", &args.stack_mib.to_string()]);
        if let Some(n) = remaining_iters {
            cmd.args(["--iterations", &n.to_string()]);
        }
        if let Some(s) = remaining_secs {
            cmd.args(["--seconds", &format!("{s:.3}")]);
        }
        for d in &args.seeds {
            cmd.arg("--seeds").arg(d);
        }
        let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("capstan-fuzz: cannot start a worker: {e}");
                return ExitCode::from(2);
            }
        };
        let last_beat = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("piped stdout");
        let beat = last_beat.clone();
        let t0 = Instant::now();
        let reader = std::thread::spawn(move || {
            let mut execs = 0;
            let mut corpus = 0;
            let mut crashes = Vec::new();
            let mut done = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                beat.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
                let mut words = line.split(' ');
                match words.next() {
                    Some("progress" | "done") => {
                        done = line.starts_with("done");
                        execs = words.next().and_then(|w| w.parse().ok()).unwrap_or(execs);
                        corpus = words.next().and_then(|w| w.parse().ok()).unwrap_or(corpus);
                    }
                    Some("crash") => crashes.push(PathBuf::from(&line[6..])),
                    _ => {}
                }
            }
            (execs, corpus, crashes, done)
        });
        // Watch for a hang: no progress line for longer than the timeout.
        let timed_out = loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break false,
                Ok(None) => {}
            }
            let since = t0.elapsed().as_millis() as u64 - last_beat.load(Ordering::Relaxed);
            if since as f64 > args.timeout * 1000.0 {
                let _ = child.kill();
                break true;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let status = child.wait();
        let (execs, c, mut found, done) = reader.join().unwrap_or_default();
        total_execs += execs.max(1);
        corpus = corpus.max(c);
        crashes.append(&mut found);
        if done && !timed_out {
            break;
        }
        // The worker died (or hung) on the input it last wrote.
        let input = std::fs::read(&current)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let kind = if timed_out { "timeout" } else { "abort" };
        let path = save(&args.crashes, kind, &input);
        eprintln!(
            "capstan-fuzz: {}: worker {} ({:?}); input saved as {}",
            args.target.name,
            if timed_out { "hung" } else { "died" },
            status.ok(),
            path.display()
        );
        crashes.push(path);
    }
    let _ = std::fs::remove_file(&current);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {total_execs} execs in {secs:.1} s ({:.0} exec/s), corpus {corpus}, crashes {}",
        args.target.name,
        total_execs as f64 / secs.max(1e-9),
        crashes.len()
    );
    for c in &crashes {
        println!("  {}", c.display());
    }
    if crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
