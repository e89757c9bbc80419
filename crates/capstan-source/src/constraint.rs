//! Flux's semver constraints (`spec.ref.semver`, HelmRepository chart versions):
//! Masterminds/semver v3, from [`capstan_semver`].

pub use capstan_semver::{Constraints as Constraint, Version};

/// Parse a tag or chart version as Flux does (`semver.NewVersion`): optional leading `v`,
/// missing minor/patch default to 0 (`v1.2` → `1.2.0`). Surrounding blanks are ignored.
pub fn parse_version(s: &str) -> Option<Version> {
    Version::parse(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_loosely() {
        assert_eq!(parse_version("v1.2").unwrap(), Version::new(1, 2, 0));
        assert!(parse_version("latest").is_none());
        let c = Constraint::parse(">=1.0.0 <2.0.0").unwrap();
        assert!(c.check(&parse_version("v1.1.0").unwrap()));
    }
}
