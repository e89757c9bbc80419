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
    /// Offline ([`crate::SourceCache::offline`]): this URL and reference were never
    /// fetched into the cache (or their artifact has been removed from it).
    NotCached,
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
            cause: strip_userinfo(cause.into(), url),
            hint: strip_userinfo(hint.into(), url),
        }
    }

    /// Offline, `what` (a reference of the source at `url`) is not in the cache at `root`.
    pub(crate) fn not_cached(source: &str, url: &str, what: &str, root: &std::path::Path) -> Self {
        SourceError::new(
            ErrorKind::NotCached,
            source,
            url,
            format!(
                "{what} was never fetched into the cache {} (offline: the network is not used)",
                root.display()
            ),
            "fetch it once with the network (the same command without --offline) or point --cache-dir at a cache that has it",
        )
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
            ErrorKind::NotCached => "not in the cache",
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

/// `text` without the userinfo of `url` (a protocol library's message may quote the URL
/// as given, credentials included): `user:password@` goes, an ssh user name stays.
fn strip_userinfo(text: String, url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return text;
    };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return text;
    };
    let userinfo = &authority[..=at];
    let kept = if url.starts_with("ssh") {
        format!(
            "{}@",
            userinfo[..userinfo.len() - 1]
                .split(':')
                .next()
                .unwrap_or("")
        )
    } else {
        String::new()
    };
    if userinfo.len() <= 1 || userinfo == kept {
        return text;
    }
    text.replace(userinfo, &kept)
}

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

    /// A cause quoting the URL with its credentials (as protocol libraries do) loses them
    /// too; the source, the URL without userinfo and the cause stay.
    #[test]
    fn causes_lose_the_urls_credentials() {
        let e = SourceError::new(
            ErrorKind::Unreachable,
            "GitRepository flux-system/apps",
            "https://bot:s3cr3t@git.example.com/apps.git",
            "error sending request for url (https://bot:s3cr3t@git.example.com/apps.git/info/refs)",
            "",
        );
        let shown = e.to_string();
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("bot"),
            "{shown}"
        );
        assert!(
            shown.starts_with("GitRepository flux-system/apps: source unreachable (https://git.example.com/apps.git)")
                && shown.contains("git.example.com/apps.git/info/refs"),
            "{shown}"
        );
        let e = SourceError::new(
            ErrorKind::Other,
            "",
            "ssh://git:pw@h/x",
            "ssh://git:pw@h/x failed",
            "",
        );
        assert_eq!(e.cause, "ssh://git@h/x failed");
    }
}
