//! Bounds on `include` and `tpl` nesting, kept by the Helm engine itself (independently of
//! whatever budgets `capstan-gotemplate` keeps), and the stack the render thread gets.
//!
//! Helm's `include` counts how often each template name is being included
//! (`includedNames`); including a name that is already `recursionMaxNums` (1000) deep fails
//! with `rendering template has a nested reference name: NAME: unable to execute template`.
//! That per-name count does not bound the total depth: a cycle through many templates
//! (`a → b → c → a`) nests 1001 times per name, and `tpl` (a value that renders itself with
//! `tpl`) has no count at all; Go only stops those when a goroutine stack reaches 1 GB. Here
//! the total nesting of `include` and `tpl` calls is bounded by [`MAX_NESTING`] as well,
//! and each level continues on a fresh stack segment when the current one runs low, so a
//! render needs no big-stack thread ([`on_render_thread`]).
//!
//! When a limit fires, the error is handed up through every enclosing `include`/`tpl`
//! unchanged, instead of being wrapped once per level as Go's `text/template` does (which
//! would make an error of a thousand nested traces, built in quadratic time): the message
//! names the template being executed, the included name and the limit.

use capstan_gotemplate::{Ctx, Func, FuncMap, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Helm's `recursionMaxNums`: including a name already this deep fails.
pub const INCLUDE_MAX_PER_NAME: usize = 1000;

/// The total nesting of `include` and `tpl` calls a render may reach. Helm's per-name
/// limit lets a cycle of three templates nest 3 × 1001 deep; this allows cycles of up to
/// five names to fail with Helm's own error before this one fires.
pub const MAX_NESTING: usize = 5_100;

/// Stack that must remain before another level of `include`/`tpl` is entered; below it,
/// the level runs on a fresh stack segment (`stacker`), so that no input can overflow the
/// thread's stack, whatever its size.
const RED_ZONE: usize = 4 * 1024 * 1024;
/// The size of such a segment.
const SEGMENT: usize = 64 * 1024 * 1024;

#[derive(Default)]
struct Nesting {
    /// Helm's `includedNames`.
    names: HashMap<String, usize>,
    /// Current `include` + `tpl` depth.
    depth: usize,
    /// The error of a limit that fired, handed up unchanged.
    limit: Option<String>,
}

thread_local! {
    static NESTING: RefCell<Nesting> = RefCell::new(Nesting::default());
}

/// Clears the counters before a render (a failed render may leave them set).
pub(crate) fn reset() {
    NESTING.with(|n| *n.borrow_mut() = Nesting::default());
}

enum Enter {
    Ok,
    Limit(String),
}

fn enter(name: Option<&str>) -> Enter {
    NESTING.with(|n| {
        let mut n = n.borrow_mut();
        if n.depth >= MAX_NESTING {
            let what = match name {
                Some(name) => format!("include {name:?}"),
                None => "tpl".to_string(),
            };
            let msg = format!(
                "rendering template has a nested reference name: {what} would nest deeper than {MAX_NESTING} include/tpl calls: unable to execute template"
            );
            n.limit = Some(msg.clone());
            return Enter::Limit(msg);
        }
        if let Some(name) = name {
            match n.names.get_mut(name) {
                Some(v) if *v > INCLUDE_MAX_PER_NAME => {
                    let msg = format!(
                        "rendering template has a nested reference name: {name}: unable to execute template"
                    );
                    n.limit = Some(msg.clone());
                    return Enter::Limit(msg);
                }
                Some(v) => *v += 1,
                None => {
                    n.names.insert(name.to_string(), 1);
                }
            }
        }
        n.depth += 1;
        Enter::Ok
    })
}

fn leave(name: Option<&str>) {
    NESTING.with(|n| {
        let mut n = n.borrow_mut();
        n.depth = n.depth.saturating_sub(1);
        if let Some(name) = name {
            if let Some(v) = n.names.get_mut(name) {
                *v = v.saturating_sub(1);
            }
        }
    })
}

/// The error of a limit that fired below; the outermost call takes it (so that a later
/// template of the same render starts clean).
fn fired_limit() -> Option<String> {
    NESTING.with(|n| {
        let mut n = n.borrow_mut();
        if n.depth == 0 {
            n.limit.take()
        } else {
            n.limit.clone()
        }
    })
}

fn guarded(inner: Func, is_include: bool) -> Func {
    Arc::new(move |ctx: &mut Ctx<'_>, args: &[Value]| {
        // argument errors are the inner function's own
        let name = if is_include {
            match args.first() {
                Some(Value::String(s)) if args.len() == 2 => Some(s.to_string()),
                _ => return inner(ctx, args),
            }
        } else {
            None
        };
        if let Enter::Limit(msg) = enter(name.as_deref()) {
            return Err(msg);
        }
        let r = stacker::maybe_grow(RED_ZONE, SEGMENT, || inner(ctx, args));
        leave(name.as_deref());
        match r {
            Err(e) => Err(fired_limit().unwrap_or(e)),
            ok => ok,
        }
    })
}

/// Stack a render needs on the thread it starts on, beyond what its recursive steps grow
/// on their own: values nest at most [`crate::yaml::MAX_DEPTH`] levels (Helm's YAML limit;
/// `--set` names at most [`crate::strvals::MAX_NESTED_NAME_LEVEL`]), and copying, comparing
/// or dropping such a value (derived `Clone`/`PartialEq`/`Drop`), and validating it against
/// a JSON schema, recurse that deep without [`capstan_gotemplate::with_stack`] (a few KiB a
/// level in debug builds, some hundred bytes in release builds). Every other recursion of
/// loading, coalescing and rendering grows the stack itself, in segments, when it runs low.
pub const ENTRY_STACK: usize = 4 * 1024 * 1024;

/// The segment a render starts on when the calling thread has less than [`ENTRY_STACK`]
/// left (a small-stack thread): allocated once per render, and only then.
const ENTRY_SEGMENT: usize = 16 * 1024 * 1024;

/// Runs a render (`f`) on the calling thread, first moving to a fresh stack segment of
/// [`ENTRY_SEGMENT`] bytes when less than [`ENTRY_STACK`] bytes of stack are left, and
/// turns a panic into Helm's `rendering template failed: ...` error (Helm's engine
/// recovers panics the same way).
///
/// No thread is started: values nested thousands deep and templates nested
/// [`MAX_NESTING`] deep grow the stack in segments at every recursive step (`include`/`tpl`
/// here, template execution and parsing in `capstan-gotemplate`, values in this crate), so
/// that a render is safe on any thread, while an ordinary render on a thread with stack to
/// spare (the CLI's, the agent's, a benchmark's main thread) allocates nothing.
pub fn on_render_thread<T: Send>(
    what: &str,
    f: impl FnOnce() -> Result<T, crate::HelmError> + Send,
) -> Result<T, crate::HelmError> {
    let _ = what;
    let run = std::panic::AssertUnwindSafe(|| stacker::maybe_grow(ENTRY_STACK, ENTRY_SEGMENT, f));
    match std::panic::catch_unwind(run) {
        Ok(r) => r,
        Err(p) => {
            // a panic may leave the nesting counters set
            reset();
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(crate::HelmError::Render(format!(
                "rendering template failed: {why}"
            )))
        }
    }
}

/// `funcs` with `include` and `tpl` counted as above.
pub fn bounded(funcs: &FuncMap) -> FuncMap {
    let mut out = funcs.clone();
    if let Some(f) = funcs.get("include") {
        out.insert("include", guarded(f.clone(), true));
    }
    if let Some(f) = funcs.get("tpl") {
        out.insert("tpl", guarded(f.clone(), false));
    }
    out
}
