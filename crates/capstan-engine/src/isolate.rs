//! Keeping one unit's failure to itself.
//!
//! * Rendering runs on threads with [`RENDER_STACK_SIZE`] of stack ([`spawn_render`],
//!   [`render_thread`]), room for the template engines' depth budgets: a stack overflow
//!   cannot be caught (it aborts the process), so the budgets must run out first.
//! * A panic while rendering a unit fails that unit (the loader catches it, see
//!   [`capstan_units::isolate`]); [`catch_future`] does the same for a unit's apply.
//! * [`install_panic_hook`] logs a panic once, through `tracing`, with its location and
//!   message only, and stays silent for panics a [`catch`] reports itself (with the unit
//!   they belong to).

use std::future::Future;
use std::sync::Once;
use std::task::Poll;

pub use capstan_units::isolate::{catch, Panicked};

/// Stack size of every thread that renders (the agent's render threads, the `capstan`
/// command's threads and its runtime's workers): 64 MiB. The engines' recursion is
/// bounded by depth budgets (Go templates: `include` nesting and template depth; YAML
/// nesting; kustomize overlays), and the deepest of them must fit in this stack in a
/// debug build: Helm's 1,000 nested `include`s need between 12 and 32 MiB there. Only the
/// pages a render touches are committed.
pub const RENDER_STACK_SIZE: usize = 64 * 1024 * 1024;

/// Spawns a thread with [`RENDER_STACK_SIZE`] of stack.
pub fn spawn_render<T, F>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(RENDER_STACK_SIZE)
        .spawn(f)
}

/// Runs `f` on a thread of its own with [`RENDER_STACK_SIZE`] of stack, off the async
/// runtime, and waits for it without blocking the runtime. A panic in `f` is an `Err`.
/// The thread enters the caller's runtime, so `f` may block on it (live `lookup`).
pub async fn render_thread<T, F>(name: &str, f: F) -> Result<T, Panicked>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::try_current().ok();
    if let Err(e) = spawn_render(name, move || {
        let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
        let _ = tx.send(catch(f));
    }) {
        return Err(Panicked {
            message: format!("cannot start a render thread: {e}"),
            location: None,
        });
    }
    rx.await.unwrap_or_else(|_| {
        Err(Panicked {
            message: "the render thread ended without a result".into(),
            location: None,
        })
    })
}

/// Polls `fut` inside [`catch`]: a panic while it runs becomes `Err` (and the future is
/// not polled again).
pub async fn catch_future<F: Future>(fut: F) -> Result<F::Output, Panicked> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| match catch(|| fut.as_mut().poll(cx)) {
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(p) => Poll::Ready(Err(p)),
    })
    .await
}

/// Replaces the default panic hook (once per process): a panic that a [`catch`] on the
/// same thread handles is left to it (it reports the panic with the unit it belongs to);
/// any other is logged once through `tracing` (stderr when no subscriber is set) with
/// the thread's name, the location in capstan's code and the panic's message (and a
/// backtrace when `RUST_BACKTRACE` asks for one). Nothing else is printed: no values from
/// the repository reach the log beyond what the message itself says.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if capstan_units::isolate::capture(info) {
                return;
            }
            let p = Panicked::from_hook(info);
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("<unnamed>");
            let location = p.location.as_deref().unwrap_or("unknown");
            let backtrace = std::backtrace::Backtrace::capture();
            let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
                .then(|| backtrace.to_string());
            if tracing::dispatcher::has_been_set() {
                match &backtrace {
                    Some(bt) => {
                        tracing::error!(thread, location, backtrace = %bt, "panicked: {}", p.message)
                    }
                    None => tracing::error!(thread, location, "panicked: {}", p.message),
                }
            } else {
                eprintln!("thread '{thread}' {p}");
                if let Some(bt) = backtrace {
                    eprintln!("{bt}");
                }
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_on_a_render_thread_is_an_error_and_the_runtime_goes_on() {
        install_panic_hook();
        let p = render_thread("t", || -> u8 { panic!("engine bug") })
            .await
            .unwrap_err();
        assert_eq!(p.message, "engine bug");
        // The hook captured the location for the catch (and printed nothing).
        assert!(
            p.location
                .as_deref()
                .is_some_and(|l| l.contains("isolate.rs")),
            "{p:?}"
        );
        assert_eq!(render_thread("t", || 4).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_panicking_future_is_an_error() {
        install_panic_hook();
        let p = catch_future(async {
            tokio::task::yield_now().await;
            let s = String::from("é");
            s[..1].len()
        })
        .await
        .unwrap_err();
        assert!(p.message.contains("char boundary"), "{p}");
        assert_eq!(catch_future(async { 3 }).await.unwrap(), 3);
    }
}
