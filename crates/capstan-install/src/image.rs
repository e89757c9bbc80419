//! Container image references, parsed as the distribution project's reference grammar
//! (`docker pull`, kubelet) reads them:
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component ( "/" path-component )*
//! domain     := host [ ":" port ]         (first component with "." or ":", or "localhost")
//! path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex          (sha256: 64 hex digits; others: 32 or more)
//! ```
//!
//! The name is at most 255 characters.

use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (and port), when the reference names one.
    pub domain: Option<String>,
    /// Repository path (`library/nginx`, `team/capstan`).
    pub path: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest (`sha256:...`), when given.
    pub digest: Option<String>,
}

/// Why an image reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason} (expected [registry[:port]/]path[:tag][@sha256:digest], e.g. registry.example.com/capstan:0.1.0)")]
pub struct ImageRefError {
    /// The reference as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

impl ImageRef {
    /// Parses `reference`; see the module documentation for the grammar.
    pub fn parse(reference: &str) -> Result<ImageRef, ImageRefError> {
        let err = |reason: String| ImageRefError {
            reference: reference.to_string(),
            reason,
        };
        if reference.is_empty() {
            return Err(err("it is empty".into()));
        }
        if let Some(c) = reference
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err(format!("it contains {c:?}")));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((n, d)) => {
                check_digest(d).map_err(err)?;
                (n, Some(d.to_string()))
            }
            None => (reference, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(&rest[i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(err)?;
        }
        if name.is_empty() {
            return Err(err("the repository name is empty".into()));
        }
        if name.len() > MAX_NAME {
            return Err(err(format!(
                "the repository name is longer than {MAX_NAME} characters"
            )));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                check_domain(first).map_err(err)?;
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        for component in path.split('/') {
            check_path_component(component).map_err(err)?;
        }
        Ok(ImageRef {
            domain,
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.domain {
            write!(f, "{d}/")?;
        }
        f.write_str(&self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn check_path_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("a path component is empty (\"//\" or a trailing \"/\")".into());
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name component {c:?} must be lowercase"));
    }
    let b = c.as_bytes();
    if !alnum_lower(b[0]) || !alnum_lower(b[b.len() - 1]) {
        return Err(format!(
            "repository name component {c:?} must start and end with a lowercase letter or digit"
        ));
    }
    let mut i = 0;
    while i < b.len() {
        if alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or one or more "-".
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            other => {
                return Err(format!(
                    "repository name component {c:?} contains {:?}",
                    other as char
                ))
            }
        }
        if i >= b.len() || !alnum_lower(b[i]) {
            return Err(format!(
                "repository name component {c:?} has the separator {:?} not between letters or digits",
                &c[start..i.min(b.len())]
            ));
        }
    }
    Ok(())
}

fn check_domain(d: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("registry {d:?} has an unclosed '['"));
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("registry {d:?} is not an IPv6 address"));
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(format!("registry {d:?}: unexpected {p:?} after ']'")),
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(host) = host {
        for label in host.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
            if !ok {
                return Err(format!("registry host {host:?} is not a valid host name"));
            }
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port {port:?} is not a number"));
        }
    }
    Ok(())
}

fn check_tag(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    if b.is_empty() {
        return Err("the tag after ':' is empty".into());
    }
    if b.len() > MAX_TAG {
        return Err(format!("the tag is longer than {MAX_TAG} characters"));
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if !word(b[0]) {
        return Err(format!(
            "tag {t:?} must start with a letter, a digit or '_'"
        ));
    }
    if let Some(c) = b
        .iter()
        .find(|c| !(word(**c) || **c == b'.' || **c == b'-'))
    {
        return Err(format!("tag {t:?} contains {:?}", *c as char));
    }
    Ok(())
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(format!(
            "digest {d:?} must be algorithm:hex (e.g. sha256:<64 hex digits>)"
        ));
    };
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b));
    if !alg_ok {
        return Err(format!("digest algorithm {alg:?} is not valid"));
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() < 32 {
        return Err(format!(
            "digest {d:?} must end in at least 32 hexadecimal digits"
        ));
    }
    if alg == "sha256" && hex.len() != 64 {
        return Err(format!(
            "sha256 digest has {} hexadecimal digits, not 64",
            hex.len()
        ));
    }
    if alg == "sha512" && hex.len() != 128 {
        return Err(format!(
            "sha512 digest has {} hexadecimal digits, not 128",
            hex.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        ImageRef::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn image_reference_name_tag_digest_and_domain() {
        let r = ok("capstan");
        assert_eq!(
            (r.domain.as_deref(), r.path.as_str(), r.tag.as_deref()),
            (None, "capstan", None)
        );
        let r = ok("localhost:5000/team/capstan:v0.1.0-rc.1");
        assert_eq!(r.domain.as_deref(), Some("localhost:5000"));
        assert_eq!(r.path, "team/capstan");
        assert_eq!(r.tag.as_deref(), Some("v0.1.0-rc.1"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ok(&format!("registry.example.com/capstan:1@{digest}"));
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(
            r.to_string(),
            format!("registry.example.com/capstan:1@{digest}")
        );
        // The first component is a path when it has no '.' or ':' and is not localhost.
        let r = ok("team/app__x.y-z--w");
        assert_eq!(r.domain, None);
        ok("[::1]:5000/capstan");
        ok("localhost/capstan:0.1.0");
    }

    #[test]
    fn image_reference_errors_name_the_rule() {
        assert!(bad("").contains("empty"));
        assert!(bad("Capstan").contains("lowercase"));
        assert!(bad("capstan:").contains("tag after ':' is empty"));
        assert!(bad("capstan:-x").contains("must start with"));
        // "capstan:a" before a '/' is a registry with a port, as Docker reads it.
        assert!(bad("capstan:a/b").contains("port"));
        assert!(bad("capstan:v1+x").contains("contains '+'"));
        assert!(bad("cap stan").contains("' '"));
        assert!(bad("team//capstan").contains("empty"));
        assert!(bad("team/capstan/").contains("empty"));
        assert!(bad("capstan@sha256:abc").contains("32 hexadecimal"));
        assert!(bad(&format!("capstan@sha256:{}", "a".repeat(40))).contains("not 64"));
        assert!(bad("capstan@nodigest").contains("algorithm:hex"));
        assert!(bad("reg.example.com:port/capstan").contains("port"));
        assert!(bad("-reg.example.com/capstan").contains("host"));
        assert!(bad("a._b").contains("separator"));
        assert!(bad(&"a".repeat(256)).contains("255"));
        assert!(bad(&format!("capstan:{}", "t".repeat(129))).contains("128"));
    }
}
