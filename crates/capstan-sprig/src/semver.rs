//! Masterminds/semver v3 for Sprig's `semverCompare` and `semver`, from [`capstan_semver`].

pub use capstan_semver::{Constraints, Error, Version};

/// Sprig's `semverCompare`: `NewConstraint(constraint).Check(NewVersion(version))`; the
/// error text is Masterminds' (`improper constraint: …`, `Invalid Semantic Version`).
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    capstan_semver::compare(constraint, version).map_err(|e| e.to_string())
}
