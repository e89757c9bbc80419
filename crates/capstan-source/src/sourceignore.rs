//! Flux's `.sourceignore` semantics (gitignore syntax) applied to artifacts.
//!
//! As in Flux's source-controller: patterns come from `.sourceignore` files
//! anywhere in the tree (scoped to their directory) and from `spec.ignore`.
//! If there are none, the VCS excludes plus Flux's default excludes apply;
//! otherwise the VCS excludes plus those patterns.

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".sourceignore";
/// Always excluded.
pub const EXCLUDE_VCS: &[&str] = &[".git/", ".gitignore", ".gitmodules", ".gitattributes"];
/// Excluded unless the user provides patterns.
pub const EXCLUDE_DEFAULT: &[&str] = &[
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
];

/// An ordered list of pattern groups, each scoped to a directory.
/// The last matching pattern over all groups decides, as in go-git's matcher.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    user: Vec<(String, Gitignore)>,
    base: Vec<Gitignore>,
}

fn build(lines: &[&str]) -> Gitignore {
    let mut b = GitignoreBuilder::new("/");
    for l in lines {
        let _ = b.add_line(None, l);
    }
    b.build().unwrap_or_else(|_| Gitignore::empty())
}

impl IgnoreRules {
    /// Add patterns (text of a `.sourceignore` or `spec.ignore`) scoped to
    /// `dir` (relative, `/`-separated, empty for the root).
    pub fn add(&mut self, dir: &str, text: &str) {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        if lines.is_empty() {
            return;
        }
        self.user
            .push((dir.trim_matches('/').to_string(), build(&lines)));
    }

    /// Freeze: decide between default excludes and user patterns.
    pub fn finish(mut self) -> Self {
        self.base = vec![build(EXCLUDE_VCS)];
        if self.user.is_empty() {
            self.base.push(build(EXCLUDE_DEFAULT));
        }
        self
    }

    /// Whether `path` (relative, `/`-separated) is excluded.
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let mut verdict = None;
        let root = std::path::Path::new("/");
        for g in &self.base {
            let m = g.matched(root.join(path), is_dir);
            if !m.is_none() {
                verdict = Some(m.is_ignore());
            }
        }
        for (dir, g) in &self.user {
            let rel = if dir.is_empty() {
                path
            } else if let Some(r) = path
                .strip_prefix(dir.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                r
            } else {
                continue;
            };
            let m = g.matched(root.join(rel), is_dir);
            if !m.is_none() {
                verdict = Some(m.is_ignore());
            }
        }
        verdict.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_user_patterns() {
        let r = IgnoreRules::default().finish();
        assert!(r.is_ignored(".git", true));
        assert!(r.is_ignored(".github", true));
        assert!(r.is_ignored("img/logo.png", false));
        assert!(r.is_ignored("a/b/.sops.yaml", false));
        assert!(!r.is_ignored("deploy/app.yaml", false));
    }

    #[test]
    fn user_patterns_replace_defaults_but_not_vcs() {
        let mut r = IgnoreRules::default();
        r.add("", "# comment\n/docs/\n*.md\n!keep.md\n");
        let r = r.finish();
        assert!(r.is_ignored(".git", true));
        assert!(r.is_ignored(".gitignore", false));
        assert!(!r.is_ignored("logo.png", false));
        assert!(r.is_ignored("docs", true));
        assert!(r.is_ignored("x/README.md", false));
        assert!(!r.is_ignored("keep.md", false));
    }

    #[test]
    fn nested_sourceignore_is_scoped() {
        let mut r = IgnoreRules::default();
        r.add("apps", "secret.yaml\n");
        let r = r.finish();
        assert!(r.is_ignored("apps/secret.yaml", false));
        assert!(r.is_ignored("apps/x/secret.yaml", false));
        assert!(!r.is_ignored("secret.yaml", false));
    }
}
