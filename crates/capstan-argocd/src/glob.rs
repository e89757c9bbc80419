//! The glob flavours Argo CD uses.
//!
//! * [`path_match`]: Go's `path.Match` (git directory generator): `*` and `?` stop at `/`.
//! * [`glob_match`]: `util/glob.Match` (gobwas/glob without separators: directory
//!   `include`/`exclude`): `*` matches `/` too, `{a,b}` alternatives.
//! * [`git_files_match`]: git's pathspec as `git ls-files` applies it (git files
//!   generator): `*` matches `/` too.

use regex::Regex;

fn to_regex(pattern: &str, star_crosses: bool, braces: bool) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut depth = 0usize;
    let any = if star_crosses { "." } else { "[^/]" };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                while i + 1 < chars.len() && chars[i + 1] == '*' {
                    i += 1;
                }
                re.push_str(any);
                re.push('*');
            }
            '?' => re.push_str(any),
            '[' => {
                let mut j = i + 1;
                let mut class = String::from("[");
                if j < chars.len() && (chars[j] == '^' || chars[j] == '!') {
                    class.push('^');
                    j += 1;
                }
                let start = j;
                while j < chars.len() && (chars[j] != ']' || j == start) {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    if matches!(chars[j], '[' | '\\' | '^' | '&' | '~') {
                        class.push('\\');
                    }
                    class.push(chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!("syntax error in pattern {pattern:?}: unclosed ["));
                }
                class.push(']');
                re.push_str(&class);
                i = j;
            }
            '{' if braces => {
                depth += 1;
                re.push_str("(?:");
            }
            ',' if braces && depth > 0 => re.push('|'),
            '}' if braces && depth > 0 => {
                depth -= 1;
                re.push(')');
            }
            '\\' if i + 1 < chars.len() => {
                i += 1;
                re.push_str(&regex::escape(&chars[i].to_string()));
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    if depth > 0 {
        return Err(format!("syntax error in pattern {pattern:?}: unclosed {{"));
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("bad pattern {pattern:?}: {e}"))
}

/// Go's `path.Match`.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, String> {
    Ok(to_regex(pattern, false, false)?.is_match(name))
}

/// Argo CD's `glob.Match` (no separators, `{a,b}`).
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, String> {
    Ok(to_regex(pattern, true, true)?.is_match(name))
}

/// git pathspec wildcard matching (`git ls-files -- PATTERN`).
pub fn git_files_match(pattern: &str, name: &str) -> Result<bool, String> {
    Ok(to_regex(pattern, true, false)?.is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_match_stops_at_slash() {
        assert!(path_match("apps/*", "apps/a").unwrap());
        assert!(!path_match("apps/*", "apps/a/b").unwrap());
        assert!(path_match("apps/[ab]?", "apps/bx").unwrap());
        assert!(path_match("apps/[^a]", "apps/b").unwrap());
        assert!(path_match("apps/[a", "x").is_err());
    }

    #[test]
    fn glob_match_crosses_slash_and_has_braces() {
        assert!(glob_match("*.yaml", "sub/x.yaml").unwrap());
        assert!(glob_match("{a,b}.yaml", "b.yaml").unwrap());
        assert!(!glob_match("{a,b}.yaml", "c.yaml").unwrap());
    }

    #[test]
    fn git_files_star_crosses_slash() {
        assert!(git_files_match("clusters/*/config.json", "clusters/a/b/config.json").unwrap());
        assert!(git_files_match("clusters/**/config.json", "clusters/a/config.json").unwrap());
    }
}
