//! The parts of Go's `net/url` that Sprig's `urlParse` and `urlJoin` use.

use std::fmt;

#[derive(Default, Debug)]
pub(crate) struct Url {
    pub scheme: String,
    pub opaque: String,
    /// `user` or `user:password`, as `Userinfo.String()` prints it.
    pub userinfo: Option<String>,
    pub host: String,
    pub path: String,
    pub raw_query: String,
    pub fragment: String,
}

impl Url {
    pub(crate) fn hostname(&self) -> String {
        let h = &self.host;
        if let Some(r) = h.strip_prefix('[') {
            return r.split(']').next().unwrap_or("").to_string();
        }
        match h.rfind(':') {
            Some(i) => h[..i].to_string(),
            None => h.clone(),
        }
    }
}

fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "invalid URL escape {:?}",
                        s.get(i..(i + 3).min(s.len())).unwrap_or("%")
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `url.Parse`.
pub(crate) fn parse(raw: &str) -> Result<Url, String> {
    let mut u = Url::default();
    let (rest, frag) = match raw.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (raw, None),
    };
    if let Some(f) = frag {
        u.fragment = unescape(f)?;
    }
    let mut rest = rest;
    // scheme
    if let Some(i) = rest.find(':') {
        let sch = &rest[..i];
        if !sch.is_empty()
            && sch.as_bytes()[0].is_ascii_alphabetic()
            && sch
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            u.scheme = sch.to_ascii_lowercase();
            rest = &rest[i + 1..];
        } else if i == 0 {
            return Err(format!("parse {raw:?}: missing protocol scheme"));
        }
    }
    if let Some((r, q)) = rest.split_once('?') {
        u.raw_query = q.to_string();
        rest = r;
    }
    if !rest.starts_with('/') && !u.scheme.is_empty() {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    if let Some(r) = rest.strip_prefix("//") {
        let end = r.find('/').unwrap_or(r.len());
        let authority = &r[..end];
        rest = &r[end..];
        let host = match authority.rfind('@') {
            Some(i) => {
                u.userinfo = Some(unescape(&authority[..i])?);
                &authority[i + 1..]
            }
            None => authority,
        };
        u.host = unescape(host)?;
    }
    u.path = unescape(rest)?;
    Ok(u)
}

fn escape_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for Url {
    /// `URL.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if !self.scheme.is_empty() {
            s.push_str(&self.scheme);
            s.push(':');
        }
        if !self.opaque.is_empty() {
            s.push_str(&self.opaque);
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() || self.userinfo.is_some() {
                if !self.host.is_empty() || !self.path.is_empty() || self.userinfo.is_some() {
                    s.push_str("//");
                }
                if let Some(ui) = &self.userinfo {
                    s.push_str(ui);
                    s.push('@');
                }
                s.push_str(&self.host);
            }
            if !self.path.is_empty() && !self.path.starts_with('/') && !self.host.is_empty() {
                s.push('/');
            }
            s.push_str(&escape_path(&self.path));
        }
        if !self.raw_query.is_empty() {
            s.push('?');
            s.push_str(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            s.push('#');
            s.push_str(&escape_path(&self.fragment));
        }
        f.write_str(&s)
    }
}
