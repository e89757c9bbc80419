//! The lexer: splits a template into text and action tokens (Go's text/template/parse lexer,
//! with `{{`/`}}` delimiters, trim markers and comments).

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Text between actions (trim markers already applied).
    Text(String),
    /// `{{`
    Open,
    /// `}}`
    Close,
    /// `.Name`
    Field(String),
    /// `.`
    Dot,
    /// `$name` or `$`
    Var(String),
    /// identifier or keyword
    Ident(String),
    /// `true`/`false`
    Bool(bool),
    /// quoted string: (value, source text)
    Str(String, String),
    /// char constant: (value, source text)
    Char(i64, String),
    /// number: source text
    Number(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub tok: Tok,
    pub pos: usize,
    /// Whitespace precedes this token inside an action.
    pub space: bool,
}

pub(crate) struct LexError {
    pub pos: usize,
    pub msg: String,
    /// Where the action (`{{`) holding the error starts, for errors inside an action.
    pub action: Option<usize>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(src: &str) -> Result<Vec<Item>, LexError> {
    let mut action = None;
    lex_items(src, &mut action).map_err(|mut e| {
        if e.action.is_none() {
            e.action = action;
        }
        e
    })
}

/// Lexes `src`; `action` holds the start of the action being lexed (`None` in text).
fn lex_items(src: &str, action: &mut Option<usize>) -> Result<Vec<Item>, LexError> {
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let mut trim_next_text = false;
    while i <= b.len() {
        *action = None;
        // text
        let start = i;
        let next_open = src[i..].find("{{").map(|p| p + i);
        let end = next_open.unwrap_or(b.len());
        let mut text = &src[start..end];
        if trim_next_text {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(open) = next_open else {
            if !text.is_empty() {
                items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    pos: start,
                    space: false,
                });
            }
            break;
        };
        // left trim marker: "{{- " (dash followed by a space)
        let mut j = open + 2;
        if j + 1 < b.len() && b[j] == b'-' && is_space(b[j + 1]) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            j += 1;
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                pos: start,
                space: false,
            });
        }
        // comment?
        let mut k = j;
        while k < b.len() && is_space(b[k]) {
            k += 1;
        }
        if src[k..].starts_with("/*") {
            let Some(cend) = src[k + 2..].find("*/") else {
                return Err(LexError {
                    pos: open,
                    msg: "unclosed comment".into(),
                    action: None,
                });
            };
            let mut m = k + 2 + cend + 2;
            // optional " -}}" or "}}"
            let mut trim = false;
            let mut p = m;
            while p < b.len() && is_space(b[p]) {
                p += 1;
            }
            if p > m && src[p..].starts_with("-}}") {
                trim = true;
                m = p + 3;
            } else if src[m..].starts_with("}}") {
                m += 2;
            } else {
                return Err(LexError {
                    pos: open,
                    msg: "comment ends before closing delimiter".into(),
                    action: None,
                });
            }
            trim_next_text = trim;
            i = m;
            continue;
        }
        items.push(Item {
            tok: Tok::Open,
            pos: open,
            space: false,
        });
        *action = Some(open);
        // action tokens
        let mut p = j;
        let mut paren = 0i32;
        loop {
            let mut space = false;
            while p < b.len() && is_space(b[p]) {
                p += 1;
                space = true;
            }
            if p >= b.len() {
                return Err(LexError {
                    pos: b.len(),
                    msg: "unclosed action".into(),
                    action: None,
                });
            }
            // right trim marker " -}}"
            if space && src[p..].starts_with("-}}") {
                items.push(Item {
                    tok: Tok::Close,
                    pos: p,
                    space,
                });
                trim_next_text = true;
                p += 3;
                break;
            }
            if src[p..].starts_with("}}") {
                if paren > 0 {
                    return Err(LexError {
                        pos: p,
                        msg: "unclosed left paren".into(),
                        action: None,
                    });
                }
                items.push(Item {
                    tok: Tok::Close,
                    pos: p,
                    space,
                });
                trim_next_text = false;
                p += 2;
                break;
            }
            let c = src[p..].chars().next().unwrap();
            let tpos = p;
            let tok = match c {
                '|' => {
                    p += 1;
                    Tok::Pipe
                }
                '(' => {
                    p += 1;
                    paren += 1;
                    Tok::LParen
                }
                ')' => {
                    p += 1;
                    paren -= 1;
                    if paren < 0 {
                        return Err(LexError {
                            pos: tpos,
                            msg: "unexpected right paren".into(),
                            action: None,
                        });
                    }
                    Tok::RParen
                }
                ',' => {
                    p += 1;
                    Tok::Comma
                }
                ':' => {
                    if b.get(p + 1) == Some(&b'=') {
                        p += 2;
                        Tok::Declare
                    } else {
                        return Err(LexError {
                            pos: tpos,
                            msg: "expected :=".into(),
                            action: None,
                        });
                    }
                }
                '=' => {
                    p += 1;
                    Tok::Assign
                }
                '"' => {
                    let (s, e) = lex_quote(src, p)?;
                    let text = src[p..e].to_string();
                    p = e;
                    Tok::Str(s, text)
                }
                '`' => {
                    let Some(e) = src[p + 1..].find('`') else {
                        return Err(LexError {
                            pos: tpos,
                            msg: "unterminated raw quoted string".into(),
                            action: None,
                        });
                    };
                    let raw = &src[p + 1..p + 1 + e];
                    let text = src[p..p + e + 2].to_string();
                    p = p + e + 2;
                    Tok::Str(raw.replace('\r', ""), text)
                }
                '\'' => {
                    let (v, e) = lex_char(src, p)?;
                    let text = src[p..e].to_string();
                    p = e;
                    Tok::Char(v, text)
                }
                '$' => {
                    let mut e = p + 1;
                    for ch in src[e..].chars() {
                        if is_alnum(ch) {
                            e += ch.len_utf8();
                        } else {
                            break;
                        }
                    }
                    let name = src[p..e].to_string();
                    p = e;
                    Tok::Var(name)
                }
                '.' => {
                    let nb = b.get(p + 1).copied().unwrap_or(b' ');
                    if nb.is_ascii_digit() {
                        let e = scan_number(src, p);
                        let t = src[p..e].to_string();
                        p = e;
                        Tok::Number(t)
                    } else {
                        let mut e = p + 1;
                        for ch in src[e..].chars() {
                            if is_alnum(ch) {
                                e += ch.len_utf8();
                            } else {
                                break;
                            }
                        }
                        if e == p + 1 {
                            p += 1;
                            Tok::Dot
                        } else {
                            let name = src[p + 1..e].to_string();
                            p = e;
                            Tok::Field(name)
                        }
                    }
                }
                '+' | '-' | '0'..='9' => {
                    let e = scan_number(src, p);
                    if e == p || (e == p + 1 && !c.is_ascii_digit()) {
                        return Err(LexError {
                            pos: tpos,
                            msg: format!("bad number syntax: {:?}", &src[p..e.max(p + 1)]),
                            action: None,
                        });
                    }
                    let t = src[p..e].to_string();
                    p = e;
                    Tok::Number(t)
                }
                c if is_alnum(c) => {
                    let mut e = p;
                    for ch in src[e..].chars() {
                        if is_alnum(ch) {
                            e += ch.len_utf8();
                        } else {
                            break;
                        }
                    }
                    let w = &src[p..e];
                    p = e;
                    match w {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        _ => Tok::Ident(w.to_string()),
                    }
                }
                _ => {
                    return Err(LexError {
                        pos: tpos,
                        msg: format!("unrecognized character in action: {c:?}"),
                        action: None,
                    })
                }
            };
            items.push(Item {
                tok,
                pos: tpos,
                space,
            });
        }
        i = p;
    }
    Ok(items)
}

fn scan_number(src: &str, start: usize) -> usize {
    let b = src.as_bytes();
    let mut p = start;
    if p < b.len() && (b[p] == b'+' || b[p] == b'-') {
        p += 1;
    }
    let mut hex = false;
    if p + 1 < b.len()
        && b[p] == b'0'
        && matches!(b[p + 1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
    {
        hex = matches!(b[p + 1], b'x' | b'X');
        p += 2;
    }
    let digit = |c: u8| c.is_ascii_digit() || c == b'_' || (hex && c.is_ascii_hexdigit());
    while p < b.len() && digit(b[p]) {
        p += 1;
    }
    if p < b.len() && b[p] == b'.' {
        p += 1;
        while p < b.len() && digit(b[p]) {
            p += 1;
        }
    }
    if p < b.len()
        && ((!hex && matches!(b[p], b'e' | b'E')) || (hex && matches!(b[p], b'p' | b'P')))
    {
        p += 1;
        if p < b.len() && (b[p] == b'+' || b[p] == b'-') {
            p += 1;
        }
        while p < b.len() && (b[p].is_ascii_digit() || b[p] == b'_') {
            p += 1;
        }
    }
    if p < b.len() && b[p] == b'i' {
        p += 1;
    }
    p
}

fn lex_quote(src: &str, start: usize) -> Result<(String, usize), LexError> {
    let mut out = String::new();
    let mut it = src[start + 1..].char_indices().peekable();
    let base = start + 1;
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, base + i + 1)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = it.next() else { break };
                match e {
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\x0b'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            let Some((_, h)) = it.next() else { break };
                            v = v * 16 + h.to_digit(16).unwrap_or(0);
                        }
                        if e == 'x' {
                            // a byte; only valid UTF-8 when ASCII (good enough)
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        } else {
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap();
                        for _ in 0..2 {
                            if let Some((_, h)) = it.next() {
                                v = v * 8 + h.to_digit(8).unwrap_or(0);
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    _ => {
                        return Err(LexError {
                            pos: start,
                            msg: format!("invalid syntax: {}", &src[start..]),
                            action: None,
                        })
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(LexError {
        pos: start,
        msg: "unterminated quoted string".into(),
        action: None,
    })
}

fn lex_char(src: &str, start: usize) -> Result<(i64, usize), LexError> {
    let rest = &src[start + 1..];
    let mut it = rest.char_indices();
    let err = || LexError {
        pos: start,
        msg: "unterminated character constant".into(),
        action: None,
    };
    let (_, c) = it.next().ok_or_else(err)?;
    let v = if c == '\\' {
        let (_, e) = it.next().ok_or_else(err)?;
        match e {
            'n' => 10,
            't' => 9,
            'r' => 13,
            'a' => 7,
            'b' => 8,
            'f' => 12,
            'v' => 11,
            '\\' => 92,
            '\'' => 39,
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v = 0i64;
                for _ in 0..n {
                    let (_, h) = it.next().ok_or_else(err)?;
                    v = v * 16 + h.to_digit(16).unwrap_or(0) as i64;
                }
                v
            }
            _ => return Err(err()),
        }
    } else {
        c as i64
    };
    let (i, q) = it.next().ok_or_else(err)?;
    if q != '\'' {
        return Err(err());
    }
    Ok((v, start + 1 + i + 1))
}
