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
//! and the render runs on a thread whose stack holds that many levels ([`RENDER_STACK`]).
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

/// Stack bytes one level of `include`/`tpl` nesting takes: measured in a debug build
/// (`stacker::remaining_stack` 100 levels apart) at 15 KiB for a bare
/// `{{ include "x" . }}`, 16 KiB for `tpl`, 18-20 KiB with the call inside `if`/`with`
/// blocks and `sub`/`int` pipelines; doubled for deeper block nesting between two calls.
/// (`capstan-gotemplate` bounds the nesting inside one template on its own.)
pub const STACK_PER_LEVEL: usize = 40 * 1024;

/// The stack of a template's own execution outside any `include` (its blocks, pipelines,
/// `template` calls, sprig functions, the error formatting) and of the engine around it.
pub const STACK_BASE: usize = 64 * 1024 * 1024;

/// The render thread's stack: `STACK_BASE + MAX_NESTING × STACK_PER_LEVEL` (= 263 MiB of
/// address space; only the pages a render touches are ever backed by memory).
pub const RENDER_STACK: usize = STACK_BASE + MAX_NESTING * STACK_PER_LEVEL;

/// Stack that must remain before another level is entered; below it, the next level runs
/// on a fresh stack segment (`stacker`), so that no input can overflow the thread's stack
/// even where the per-level estimate is exceeded.
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

thread_local! {
    static ON_RENDER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on a thread with a [`RENDER_STACK`] stack (or directly, when already on one):
/// values nested thousands deep (go-yaml allows 10000 levels) and templates nested
/// [`MAX_NESTING`] deep recurse that deep through loading, coalescing and rendering.
pub fn on_render_thread<T: Send>(
    what: &str,
    f: impl FnOnce() -> Result<T, crate::HelmError> + Send,
) -> Result<T, crate::HelmError> {
    if ON_RENDER_THREAD.with(|c| c.get()) {
        return f();
    }
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("helm-render".into())
            .stack_size(RENDER_STACK)
            .spawn_scoped(s, || {
                ON_RENDER_THREAD.with(|c| c.set(true));
                f()
            });
        match worker {
            Ok(h) => h.join().unwrap_or_else(|p| {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(crate::HelmError::Render(format!(
                    "rendering template failed: {why}"
                )))
            }),
            Err(e) => Err(crate::HelmError::Render(format!(
                "{what}: cannot start the render thread ({} MiB stack): {e}",
                RENDER_STACK >> 20
            ))),
        }
    })
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
