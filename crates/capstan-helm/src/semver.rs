//! Masterminds/semver v3 versions and constraints (what Helm uses for `kubeVersion`,
//! dependency version ranges and chart versions), from [`capstan_semver`].

pub use capstan_semver::{Constraints, Error, Version};

/// Helm's `IsCompatibleRange(constraint, version)`: false when either does not parse.
/// An empty (or blank) constraint accepts every release, as capstan always has for
/// dependencies that give no version.
pub fn is_compatible_range(constraint: &str, version: &str) -> bool {
    let Ok(v) = Version::parse(version) else {
        return false;
    };
    let constraint = if constraint.trim().is_empty() {
        "*"
    } else {
        constraint
    };
    Constraints::parse(constraint).is_ok_and(|c| c.check(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_version_and_dependency_ranges() {
        assert!(is_compatible_range(">=1.19.0-0", "v1.36.0"));
        assert!(is_compatible_range(">= 1.22.0-0", "1.36.0"));
        assert!(!is_compatible_range("<1.20", "v1.36.0"));
        assert!(is_compatible_range("~1.2", "1.2.9"));
        assert!(is_compatible_range("^2.x", "2.31.0"));
        assert!(is_compatible_range("*", "0.1.0"));
        assert!(is_compatible_range("", "0.1.0"));
        assert!(is_compatible_range(">=1.0.0, <2.0.0", "1.5.0"));
        assert!(is_compatible_range("1.0.0 - 2.0.0", "1.5.0"));
        assert!(!is_compatible_range(">=1.0.0", "1.5.0-rc1"));
        assert!(!is_compatible_range("foo", "1.0.0"));
        assert!(!is_compatible_range("*", "latest"));
    }
}
