//! `.helmignore` rules (Helm's `internal/ignore`).

/// Parsed `.helmignore` rules.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    raw: String,
    negate: bool,
    must_dir: bool,
}

impl Rules {
    /// The default rules (`templates/.?*`) plus the file's.
    pub fn parse(text: &str) -> Rules {
        let mut r = Rules::default();
        r.add("templates/.?*");
        for line in text.lines() {
            r.add(line);
        }
        r
    }

    fn add(&mut self, line: &str) {
        let mut rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            return;
        }
        if rule.contains("**") {
            // Helm rejects "**"; ignore the rule rather than failing the load
            return;
        }
        let mut negate = false;
        if let Some(r) = rule.strip_prefix('!') {
            negate = true;
            rule = r;
        }
        let mut must_dir = false;
        if let Some(r) = rule.strip_suffix('/') {
            must_dir = true;
            rule = r;
        }
        let rule = rule.strip_prefix('/').unwrap_or(rule);
        self.patterns.push(Pattern {
            raw: rule.to_string(),
            negate,
            must_dir,
        });
    }

    /// True if `path` (relative, `/`-separated) is ignored.
    pub fn ignore(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        for p in &self.patterns {
            let matched = || {
                if p.raw.contains('/') {
                    glob_match(&p.raw, path)
                } else {
                    let base = path.rsplit('/').next().unwrap_or(path);
                    glob_match(&p.raw, base)
                }
            };
            // Helm's quirk, kept: a negated rule that does not match ignores the path.
            if p.negate {
                if p.must_dir && !is_dir {
                    return true;
                }
                if !matched() {
                    return true;
                }
                continue;
            }
            if p.must_dir && !is_dir {
                continue;
            }
            if matched() {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.Match` (`*` and `?` do not cross `/`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn m(p: &[char], n: &[char]) -> bool {
        if p.is_empty() {
            return n.is_empty();
        }
        match p[0] {
            '*' => {
                for i in 0..=n.len() {
                    if i > 0 && n[i - 1] == '/' {
                        break;
                    }
                    if m(&p[1..], &n[i..]) {
                        return true;
                    }
                }
                false
            }
            '?' => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            '[' => {
                if n.is_empty() || n[0] == '/' {
                    return false;
                }
                let mut i = 1;
                let negate = i < p.len() && (p[i] == '^' || p[i] == '!');
                if negate {
                    i += 1;
                }
                let mut ok = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let lo = p[i];
                    let mut hi = lo;
                    if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        hi = p[i + 2];
                        i += 2;
                    }
                    if lo <= n[0] && n[0] <= hi {
                        ok = true;
                    }
                    i += 1;
                }
                if i >= p.len() {
                    return false;
                }
                ok != negate && m(&p[i + 1..], &n[1..])
            }
            '\\' if p.len() > 1 => !n.is_empty() && n[0] == p[1] && m(&p[2..], &n[1..]),
            c => !n.is_empty() && n[0] == c && m(&p[1..], &n[1..]),
        }
    }
    m(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rules() {
        let r = Rules::parse("*.tgz\n.git/\n# c\nsecret*\ndocs/*.md\n");
        assert!(r.ignore("charts/x.tgz", false));
        assert!(r.ignore(".git", true));
        assert!(!r.ignore(".git", false));
        assert!(r.ignore("secret1", false));
        assert!(r.ignore("docs/a.md", false));
        assert!(r.ignore("templates/.hidden", false));
        assert!(!r.ignore("templates/a.yaml", false));
    }
}
