//! Errors of the source layer.
//!
//! Every error names the source object (`kind namespace/name`), the URL
//! (credentials stripped), the cause and a hint. Secret values never appear.

use std::fmt;

/// What went wrong, coarse enough for a caller to decide on retry/backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object could not be parsed (missing url, bad ref, bad constraint).
    InvalidSpec,
    /// The server could not be reached (connection refused, DNS, timeout).
    Unreachable,
    /// The server rejected the credentials, or requires some.
    AuthFailed,
    /// The branch, tag, commit, semver range, chart version or digest does not exist.
    NotFound,
    /// The secret lacks the fields needed for the URL's scheme.
    InvalidAuth,
    /// Local cache I/O failed.
    Io,
    /// Anything else reported by the protocol implementation.
    Other,
}

/// An error while fetching a source.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceError {
    /// Coarse classification.
    pub kind: ErrorKind,
    /// `GitRepository flux-system/podinfo`, or empty when not known.
    pub source: String,
    /// URL with any userinfo removed.
    pub url: String,
    /// The cause, secret values removed.
    pub cause: String,
    /// What the user may do about it.
    pub hint: String,
}

impl SourceError {
    pub(crate) fn new(
        kind: ErrorKind,
        source: &str,
        url: &str,
        cause: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        SourceError {
            kind,
            source: source.to_string(),
            url: redact_url(url),
            cause: cause.into(),
            hint: hint.into(),
        }
    }

    /// Remove every occurrence of each of `secrets` from the cause and hint.
    pub(crate) fn scrub(mut self, secrets: &[String]) -> Self {
        for s in secrets.iter().filter(|s| s.len() >= 3) {
            self.cause = self.cause.replace(s.as_str(), "<redacted>");
            self.hint = self.hint.replace(s.as_str(), "<redacted>");
        }
        self
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::InvalidSpec => "invalid spec",
            ErrorKind::Unreachable => "source unreachable",
            ErrorKind::AuthFailed => "authentication failed",
            ErrorKind::NotFound => "reference not found",
            ErrorKind::InvalidAuth => "invalid credentials secret",
            ErrorKind::Io => "cache I/O error",
            ErrorKind::Other => "fetch failed",
        };
        if self.source.is_empty() {
            write!(f, "{what}")?;
        } else {
            write!(f, "{}: {what}", self.source)?;
        }
        if !self.url.is_empty() {
            write!(f, " ({})", self.url)?;
        }
        write!(f, ": {}", self.cause)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceError({:?}: {self})", self.kind)
    }
}

impl std::error::Error for SourceError {}

/// Remove `user:password@` from a URL (`scheme://user:pass@host/...`).
/// scp-like ssh URLs (`git@host:path`) keep their user, which is no secret.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            let kept = if url.starts_with("ssh") {
                // keep the user name, drop a password if any
                userinfo.split(':').next().unwrap_or("").to_string() + "@"
            } else {
                String::new()
            };
            return format!("{}{}{}", &url[..scheme_end + 3], kept, &rest[at + 1..]);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(redact_url("https://u:p@h/x"), "https://h/x");
        assert_eq!(redact_url("ssh://git:p@h/x"), "ssh://git@h/x");
        assert_eq!(redact_url("git@github.com:a/b"), "git@github.com:a/b");
        assert_eq!(redact_url("https://h/a@b"), "https://h/a@b");
    }
}
