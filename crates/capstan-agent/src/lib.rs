//! # capstan-agent
//!
//! Keeps every registered cluster converged on its state in the repository.

pub mod schedule;
