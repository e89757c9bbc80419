//! Budgets that keep hostile templates from crashing the process.
//!
//! A stack overflow aborts the whole process (every cluster an agent serves), so every
//! recursion in the template engine and in Sprig is bounded twice:
//!
//! * **Stack**: each recursive step (walking a node, a parenthesised pipeline, parsing a
//!   nested control, printing or encoding a nested value, dropping a nested tree) runs
//!   through [`with_stack`], which continues on a fresh heap-allocated stack segment of
//!   [`STACK_SEGMENT`] bytes when less than [`STACK_RED_ZONE`] bytes are left on the
//!   current one. Rendering is therefore safe on threads of any stack size (the agent's
//!   small-stack threads included): no caller needs a big-stack thread.
//! * **Depth**: a counted limit with a clear error, Go's where Go has one:
//!   [`MAX_EXEC_DEPTH`] nested `{{template}}` calls (Go's `maxExecDepth`: `exceeded maximum
//!   template depth (100000)`), [`MAX_PAREN_DEPTH`] nested parentheses (Go's parser
//!   `maxStackDepth`: `max expression depth exceeded`), and capstan's own
//!   [`MAX_NESTING_DEPTH`] for nested `if`/`with`/`range`/`define` bodies (Go has no limit
//!   but its 1 GB goroutine stack) and [`MAX_VALUE_DEPTH`] for nested lists and maps when
//!   printing or encoding them (Go's `encoding/json` reports a cycle as `json: unsupported
//!   value: encountered a cycle via map[string]interface {}`; its `fmt` recurses forever).
//!
//! Sizes are bounded too: one string value (a function result, a `printf`) may not exceed
//! [`MAX_STRING_BYTES`], and one template's output may not exceed
//! [`crate::Options::max_output_bytes`] (default [`MAX_OUTPUT_BYTES`]).
//!
//! Memory use at the depth limits: each nesting level costs some hundreds of bytes of
//! stack in release builds (a few KiB in debug builds), so the 100,000 template levels Go
//! allows use tens of MiB (a few hundred MiB in debug), on heap segments that are freed
//! when the recursion returns.

/// Go's `maxExecDepth`: nested `{{template}}` invocations (default of
/// [`crate::Options::max_exec_depth`]).
pub const MAX_EXEC_DEPTH: usize = 100_000;

/// Go's parser `maxStackDepth`: nested parenthesised pipelines.
pub const MAX_PAREN_DEPTH: usize = 10_000;

/// Nested `if`/`with`/`range`/`block` bodies in one template source (capstan's bound; Go's
/// parser only has its goroutine stack).
pub const MAX_NESTING_DEPTH: usize = 10_000;

/// Nested lists and maps walked when printing, encoding (`toJson`, `toYaml`...) or copying
/// a value. Deeper (or cyclic) values are an error.
pub const MAX_VALUE_DEPTH: usize = 10_000;

/// The largest string one function (or `printf`) may produce: 64 MiB.
pub const MAX_STRING_BYTES: usize = 64 << 20;

/// The default bound on one template's output ([`crate::Options::max_output_bytes`]):
/// 256 MiB.
pub const MAX_OUTPUT_BYTES: usize = 256 << 20;

/// Stack left below which [`with_stack`] switches to a new segment.
pub const STACK_RED_ZONE: usize = 256 << 10;

/// Size of each new stack segment [`with_stack`] allocates.
pub const STACK_SEGMENT: usize = 4 << 20;

/// Runs `f`, first moving to a fresh stack segment when the current stack is nearly
/// exhausted (see the module docs). Wrap every recursive step in it.
#[inline]
pub fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, f)
}

/// The error for a string result longer than [`MAX_STRING_BYTES`].
pub fn string_too_long(what: &str, len: u128) -> String {
    format!(
        "{what}: result of {len} bytes exceeds the limit of {MAX_STRING_BYTES} bytes per string"
    )
}

/// Checks that a string of `len` bytes (computed without overflow) fits
/// [`MAX_STRING_BYTES`].
pub fn check_string_len(what: &str, len: u128) -> Result<(), String> {
    if len > MAX_STRING_BYTES as u128 {
        return Err(string_too_long(what, len));
    }
    Ok(())
}

/// The longest list one function may produce (`until`, `untilStep`, `seq`...): 2^20.
pub const MAX_LIST_LEN: usize = 1 << 20;

/// Checks that a list of `len` elements fits [`MAX_LIST_LEN`].
pub fn check_list_len(what: &str, len: u128) -> Result<(), String> {
    if len > MAX_LIST_LEN as u128 {
        return Err(format!(
            "{what}: {len} elements exceed the limit of {MAX_LIST_LEN} per list"
        ));
    }
    Ok(())
}
