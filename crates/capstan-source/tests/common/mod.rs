//! The loopback servers live in capstan-testbed, shared with other crates' tests.
#![allow(unused_imports)]
pub use capstan_testbed::servers::*;
