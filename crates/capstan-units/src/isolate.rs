//! Confining a panic to the unit it happened in.
//!
//! A panic while rendering (or applying) one unit is a bug in one of capstan's engines,
//! never the repository's fault, and it must not take the other units, the cluster or
//! the process down with it. [`catch`] runs a closure and turns a panic into a
//! [`Panicked`] value: the panic's message and where in capstan's code it happened.
//!
//! A program's panic hook calls [`capture`] first (see `capstan_engine::install_panic_hook`):
//! while a [`catch`] runs on the panicking thread, the hook hands the message and
//! location to it and prints nothing, so the panic is reported exactly once, by the code
//! that caught it and knows which unit it belongs to. Without such a hook, [`catch`]
//! still works (the message comes from the panic's payload; the location is unknown).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::PanicHookInfo;

/// Longest panic message kept, in bytes (cut at a character boundary): messages go to
/// statuses, Events and logs.
pub const MAX_PANIC_MESSAGE: usize = 512;

thread_local! {
    /// How many [`catch`]es are running on this thread.
    static CATCHING: Cell<usize> = const { Cell::new(0) };
    /// What the panic hook captured for the innermost [`catch`].
    static CAUGHT: RefCell<Option<Panicked>> = const { RefCell::new(None) };
}

/// A panic caught by [`catch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    /// The panic's message (at most [`MAX_PANIC_MESSAGE`] bytes).
    pub message: String,
    /// `file:line:column` in capstan's code, when a hook calling [`capture`] saw it.
    pub location: Option<String>,
}

impl Panicked {
    /// The message and location of a panic, as a panic hook sees it.
    pub fn from_hook(info: &PanicHookInfo<'_>) -> Panicked {
        Panicked {
            message: payload_message(info.payload()),
            location: info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
        }
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "panicked at {at}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`),
/// shortened to [`MAX_PANIC_MESSAGE`] bytes.
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.as_str()
    } else {
        "(a panic without a message)"
    };
    shorten(text, MAX_PANIC_MESSAGE)
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Runs `f`; a panic inside it becomes `Err`. The caller owns the report: a hook that
/// calls [`capture`] prints nothing for it.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    // Taken in any case: a panic `f` caught itself leaves nothing behind for the next one.
    let captured = CAUGHT.with(|c| c.borrow_mut().take());
    result.map_err(|payload| {
        let message = payload_message(payload.as_ref());
        // The payload's own drop may panic; never let it out of here.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
        captured.unwrap_or(Panicked {
            message,
            location: None,
        })
    })
}

/// For panic hooks: when a [`catch`] runs on this thread, keep the panic's message and
/// location for it and return true (the hook then prints nothing); false otherwise.
pub fn capture(info: &PanicHookInfo<'_>) -> bool {
    let catching = CATCHING.try_with(Cell::get).unwrap_or(0) > 0;
    if !catching {
        return false;
    }
    let p = Panicked::from_hook(info);
    CAUGHT
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut slot) => {
                *slot = Some(p);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_value_with_its_message() {
        let p = catch(|| -> u8 { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(p.message, "boom 7");
        let p = catch(|| -> u8 { std::panic::panic_any(42u32) }).unwrap_err();
        assert_eq!(p.message, "(a panic without a message)");
        assert_eq!(catch(|| 5).unwrap(), 5);
    }

    #[test]
    fn a_str_slice_panic_at_a_multibyte_boundary_is_caught() {
        let s = String::from("aé");
        let p = catch(|| s[..2].to_string()).unwrap_err();
        assert!(p.message.contains("char boundary"), "{}", p.message);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_PANIC_MESSAGE);
        let p = catch(|| -> u8 { panic!("{long}") }).unwrap_err();
        assert!(p.message.len() <= MAX_PANIC_MESSAGE + 3);
        assert!(p.message.ends_with("..."));
    }

    #[test]
    fn nested_catches_each_get_their_own_panic() {
        let outer = catch(|| {
            let inner = catch(|| -> u8 { panic!("inner") }).unwrap_err();
            assert_eq!(inner.message, "inner");
            panic!("outer")
        })
        .unwrap_err();
        assert_eq!(outer.message, "outer");
    }
}
