//! The parser: tokens to an AST (Go's text/template/parse).

use std::fmt;
use std::sync::Arc;

use crate::lex::{lex, Item, Tok};
use crate::value::Value;
use crate::{Error, ErrorKind, Func, FuncMap};

/// A parsed template (a file or a `define`).
pub(crate) struct Template {
    pub name: String,
    /// Name of the file it was parsed from, and its source (for line/column).
    pub parse_name: Arc<str>,
    pub src: Arc<str>,
    pub root: Vec<Node>,
}

impl Template {
    /// Go's `parse.IsEmptyTree`: only whitespace text.
    pub fn is_empty(&self) -> bool {
        self.root.iter().all(|n| match n {
            Node::Text(t) => t.trim().is_empty(),
            _ => false,
        })
    }

    /// `NAME:LINE:COL` of byte offset `pos` (Go's ErrorContext: 0-based column).
    pub fn location(&self, pos: usize) -> (usize, usize) {
        location(&self.src, pos)
    }
}

pub(crate) fn location(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = 1 + before.bytes().filter(|&b| b == b'\n').count();
    let col = match before.rfind('\n') {
        Some(i) => pos - i - 1,
        None => pos,
    };
    (line, col)
}

pub(crate) struct Parsed {
    pub templates: Vec<Arc<Template>>,
}

pub(crate) enum Node {
    Text(Arc<str>),
    Action(Pipe),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(#[allow(dead_code)] usize),
    Continue(#[allow(dead_code)] usize),
}

pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

// Dropping a deeply nested tree recurses: give each level the stack it needs.
impl Drop for Branch {
    fn drop(&mut self) {
        if self.list.is_empty() && self.else_list.is_none() {
            return;
        }
        let list = std::mem::take(&mut self.list);
        let else_list = self.else_list.take();
        crate::limits::with_stack(move || drop((list, else_list)));
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.cmds.is_empty() {
            return;
        }
        let cmds = std::mem::take(&mut self.cmds);
        crate::limits::with_stack(move || drop(cmds));
    }
}

pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<Arc<str>>,
    pub cmds: Vec<Cmd>,
}

pub(crate) struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

pub(crate) struct Arg {
    pub pos: usize,
    pub kind: ArgKind,
}

pub(crate) enum ArgKind {
    Dot,
    Nil,
    Bool(bool),
    /// A number, string or char constant: its value and source text.
    Const(Value, Arc<str>),
    /// `.a.b`
    Field(Vec<Arc<str>>),
    /// `$x.a.b`
    Var(Arc<str>, Vec<Arc<str>>),
    /// A function identifier.
    Func(Arc<str>, Func),
    /// `(pipeline)`
    Pipe(Box<Pipe>),
    /// `(pipeline).a.b`
    Chain(Box<Arg>, Vec<Arc<str>>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ArgKind::Dot => write!(f, "."),
            ArgKind::Nil => write!(f, "nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Const(_, t) => write!(f, "{t}"),
            ArgKind::Field(fs) => {
                for x in fs {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
            ArgKind::Var(v, fs) => {
                write!(f, "{v}")?;
                for x in fs {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
            ArgKind::Func(n, _) => write!(f, "{n}"),
            ArgKind::Pipe(p) => write!(f, "({p})"),
            ArgKind::Chain(a, fs) => {
                write!(f, "{a}")?;
                for x in fs {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(f, "{}", self.decl.join(", "))?;
            write!(f, "{}", if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                write!(f, " | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

struct Parser<'a> {
    items: Vec<Item>,
    i: usize,
    name: &'a str,
    src: &'a str,
    funcs: &'a FuncMap,
    vars: Vec<Arc<str>>,
    range_depth: usize,
    /// Nested parenthesised pipelines (Go's `stackDepth`).
    paren_depth: usize,
    /// Nested control bodies.
    nesting: usize,
    defs: Vec<Arc<Template>>,
    parse_name: Arc<str>,
    src_arc: Arc<str>,
}

#[allow(clippy::enum_variant_names)]
enum End {
    Eof,
    End,
    /// `{{else}}` or `{{else if ...`/`{{else with ...`: the keyword pending
    Else(Option<String>),
}

type PResult<T> = Result<T, Error>;

pub(crate) fn parse(name: &str, src: &str, funcs: &FuncMap) -> Result<Parsed, Error> {
    let items = lex(src).map_err(|e| {
        let (line, _) = location(src, e.pos);
        let mut msg = e.msg;
        // Go's parser: an error in an action that started on another line names it.
        if let Some(a) = e.action {
            let (aline, _) = location(src, a);
            if aline != line {
                let what = if msg.ends_with(" action") {
                    ""
                } else {
                    " in action"
                };
                msg = format!("{msg}{what} started at {name}:{aline}");
            }
        }
        perr(name, line, msg)
    })?;
    let src_arc: Arc<str> = Arc::from(src);
    let mut p = Parser {
        items,
        i: 0,
        name,
        src,
        funcs,
        vars: vec![Arc::from("$")],
        range_depth: 0,
        paren_depth: 0,
        nesting: 0,
        defs: Vec::new(),
        parse_name: Arc::from(name),
        src_arc,
    };
    let (root, end) = p.list(true)?;
    match end {
        End::Eof => {}
        End::End => return Err(p.err_at(p.prev_pos(), "unexpected {{end}}")),
        End::Else(_) => return Err(p.err_at(p.prev_pos(), "unexpected {{else}}")),
    }
    let main = Arc::new(Template {
        name: name.to_string(),
        parse_name: p.parse_name.clone(),
        src: p.src_arc.clone(),
        root,
    });
    let mut templates = vec![main];
    templates.append(&mut p.defs);
    Ok(Parsed { templates })
}

fn perr(name: &str, line: usize, msg: impl Into<String>) -> Error {
    Error {
        kind: ErrorKind::Parse,
        template: name.to_string(),
        line,
        col: 0,
        executing: String::new(),
        context: String::new(),
        message: msg.into(),
    }
}

impl Parser<'_> {
    fn err_at(&self, pos: usize, msg: impl Into<String>) -> Error {
        let (line, _) = location(self.src, pos);
        perr(self.name, line, msg)
    }
    fn prev_pos(&self) -> usize {
        self.items
            .get(self.i.saturating_sub(1))
            .map(|i| i.pos)
            .unwrap_or(0)
    }
    fn peek(&self) -> Option<&Item> {
        self.items.get(self.i)
    }
    fn next(&mut self) -> PResult<Item> {
        match self.items.get(self.i) {
            Some(it) => {
                self.i += 1;
                Ok(it.clone())
            }
            None => Err(self.err_at(self.src.len(), "unexpected EOF")),
        }
    }
    fn expect_close(&mut self, context: &str) -> PResult<()> {
        let it = self.next()?;
        if it.tok != Tok::Close {
            return Err(self.err_at(
                it.pos,
                format!("unexpected {} in {}", tok_desc(&it.tok), context),
            ));
        }
        Ok(())
    }

    /// Parses nodes until EOF, `{{end}}` or `{{else}}`.
    fn list(&mut self, top: bool) -> PResult<(Vec<Node>, End)> {
        crate::limits::with_stack(|| self.list_inner(top))
    }

    fn list_inner(&mut self, top: bool) -> PResult<(Vec<Node>, End)> {
        let mut nodes = Vec::new();
        loop {
            let Some(it) = self.peek().cloned() else {
                return Ok((nodes, End::Eof));
            };
            match it.tok {
                Tok::Text(t) => {
                    self.i += 1;
                    nodes.push(Node::Text(Arc::from(t)));
                }
                Tok::Open => {
                    self.i += 1;
                    let kw = match self.peek() {
                        Some(Item {
                            tok: Tok::Ident(w), ..
                        }) => Some(w.clone()),
                        _ => None,
                    };
                    match kw.as_deref() {
                        Some("end") => {
                            self.i += 1;
                            self.expect_close("end")?;
                            return Ok((nodes, End::End));
                        }
                        Some("else") => {
                            self.i += 1;
                            if let Some(Item {
                                tok: Tok::Ident(w), ..
                            }) = self.peek()
                            {
                                if w == "if" || w == "with" {
                                    let w = w.clone();
                                    self.i += 1;
                                    return Ok((nodes, End::Else(Some(w))));
                                }
                            }
                            self.expect_close("else")?;
                            return Ok((nodes, End::Else(None)));
                        }
                        Some("define") => {
                            if !top {
                                return Err(self.err_at(it.pos, "unexpected <define> in command"));
                            }
                            self.i += 1;
                            self.define(it.pos)?;
                        }
                        Some("block") => {
                            self.i += 1;
                            nodes.push(self.block()?);
                        }
                        Some("if") => {
                            self.i += 1;
                            nodes.push(Node::If(Box::new(self.control("if")?)));
                        }
                        Some("with") => {
                            self.i += 1;
                            nodes.push(Node::With(Box::new(self.control("with")?)));
                        }
                        Some("range") => {
                            self.i += 1;
                            self.range_depth += 1;
                            let b = self.control("range");
                            self.range_depth -= 1;
                            nodes.push(Node::Range(Box::new(b?)));
                        }
                        Some("template") => {
                            self.i += 1;
                            nodes.push(self.template_node()?);
                        }
                        Some("break") | Some("continue") => {
                            let w = kw.unwrap();
                            self.i += 1;
                            if self.range_depth == 0 {
                                return Err(self
                                    .err_at(it.pos, format!("{{{{{w}}}}} outside {{{{range}}}}")));
                            }
                            self.expect_close(&w)?;
                            nodes.push(if w == "break" {
                                Node::Break(it.pos)
                            } else {
                                Node::Continue(it.pos)
                            });
                        }
                        _ => {
                            let pipe = self.pipeline("command", false)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                _ => return Err(self.err_at(it.pos, "unexpected token")),
            }
        }
    }

    fn string_const(&mut self, context: &str) -> PResult<String> {
        let it = self.next()?;
        match it.tok {
            Tok::Str(s, _) => Ok(s),
            t => Err(self.err_at(
                it.pos,
                format!("unexpected {} in {}", tok_desc(&t), context),
            )),
        }
    }

    fn define(&mut self, _pos: usize) -> PResult<()> {
        let name = self.string_const("define clause")?;
        self.expect_close("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec![Arc::from("$")]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let r = self.list(false);
        self.vars = saved_vars;
        self.range_depth = saved_range;
        let (body, end) = r?;
        if !matches!(end, End::End) {
            return Err(self.err_at(self.prev_pos(), "unexpected EOF"));
        }
        self.defs.push(Arc::new(Template {
            name,
            parse_name: self.parse_name.clone(),
            src: self.src_arc.clone(),
            root: body,
        }));
        Ok(())
    }

    fn block(&mut self) -> PResult<Node> {
        if self.nesting >= crate::limits::MAX_NESTING_DEPTH {
            return Err(self.nesting_error());
        }
        self.nesting += 1;
        let r = self.block_inner();
        self.nesting -= 1;
        r
    }

    fn block_inner(&mut self) -> PResult<Node> {
        let pos = self.peek().map(|it| it.pos).unwrap_or(self.src.len());
        let name = self.string_const("block clause")?;
        let pipe = self.pipeline("block clause", false)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec![Arc::from("$")]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let r = self.list(false);
        self.vars = saved_vars;
        self.range_depth = saved_range;
        let (body, end) = r?;
        if !matches!(end, End::End) {
            return Err(self.err_at(self.prev_pos(), "unexpected EOF"));
        }
        self.defs.push(Arc::new(Template {
            name: name.clone(),
            parse_name: self.parse_name.clone(),
            src: self.src_arc.clone(),
            root: body,
        }));
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_node(&mut self) -> PResult<Node> {
        // Go positions a template node at its name (the string constant).
        let pos = self.peek().map(|it| it.pos).unwrap_or(self.src.len());
        let name = self.string_const("template clause")?;
        let pipe = if matches!(
            self.peek(),
            Some(Item {
                tok: Tok::Close,
                ..
            })
        ) {
            self.i += 1;
            None
        } else {
            Some(self.pipeline("template clause", false)?)
        };
        Ok(Node::Template { pos, name, pipe })
    }

    fn control(&mut self, context: &str) -> PResult<Branch> {
        // `{{else if}}` chains nest controls without an intervening list
        if self.nesting >= crate::limits::MAX_NESTING_DEPTH {
            return Err(self.nesting_error());
        }
        self.nesting += 1;
        let r = crate::limits::with_stack(|| self.control_inner(context));
        self.nesting -= 1;
        r
    }

    fn nesting_error(&self) -> Error {
        self.err_at(
            self.items.get(self.i).map_or(self.src.len(), |i| i.pos),
            format!(
                "max nesting depth exceeded: more than {} nested if/with/range/block actions",
                crate::limits::MAX_NESTING_DEPTH
            ),
        )
    }

    fn control_inner(&mut self, context: &str) -> PResult<Branch> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, false)?;
        let r = self.control_rest(context);
        self.vars.truncate(mark);
        let (list, else_list) = r?;
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn control_rest(&mut self, context: &str) -> PResult<(Vec<Node>, Option<Vec<Node>>)> {
        let (list, end) = self.list(false)?;
        match end {
            End::Eof => Err(self.err_at(self.src.len(), "unexpected EOF")),
            End::End => Ok((list, None)),
            End::Else(None) => {
                let (else_list, end2) = self.list(false)?;
                match end2 {
                    End::End => Ok((list, Some(else_list))),
                    End::Else(_) => {
                        Err(self.err_at(self.prev_pos(), "expected end; found {{else}}"))
                    }
                    End::Eof => Err(self.err_at(self.src.len(), "unexpected EOF")),
                }
            }
            End::Else(Some(kw)) => {
                if kw != context {
                    return Err(self.err_at(
                        self.prev_pos(),
                        format!("unexpected \"{kw}\" in else clause of {context}"),
                    ));
                }
                // {{else if x}} == {{else}}{{if x}}...{{end}}{{end}}: the nested control
                // consumes the single {{end}}.
                let nested = self.control(context)?;
                let node = if kw == "if" {
                    Node::If(Box::new(nested))
                } else {
                    Node::With(Box::new(nested))
                };
                Ok((list, Some(vec![node])))
            }
        }
    }

    /// A pipeline up to `}}` (or `)` when `paren`).
    fn pipeline(&mut self, context: &str, paren: bool) -> PResult<Pipe> {
        let pos = self.peek().map(|i| i.pos).unwrap_or(0);
        let mut decl = Vec::new();
        let mut is_assign = false;
        // declarations
        if let Some(Item {
            tok: Tok::Var(_), ..
        }) = self.peek()
        {
            let save = self.i;
            let mut names = Vec::new();
            while let Some(Item {
                tok: Tok::Var(v), ..
            }) = self.peek().cloned()
            {
                match self.items.get(self.i + 1).map(|i| &i.tok) {
                    Some(Tok::Declare) | Some(Tok::Assign) => {
                        is_assign = matches!(self.items[self.i + 1].tok, Tok::Assign);
                        names.push(v);
                        self.i += 2;
                        decl = names;
                        break;
                    }
                    Some(Tok::Comma) if context == "range" && names.is_empty() => {
                        names.push(v);
                        self.i += 2;
                        continue;
                    }
                    Some(Tok::Comma) => {
                        return Err(self.err_at(
                            self.items[self.i].pos,
                            format!("too many declarations in {context}"),
                        ));
                    }
                    _ => {
                        if !names.is_empty() {
                            return Err(self.err_at(
                                self.items[self.i].pos,
                                format!("missing := or = in {context}"),
                            ));
                        }
                        self.i = save;
                        break;
                    }
                }
            }
            for d in &decl {
                if is_assign {
                    if !self.vars.iter().any(|v| **v == **d) {
                        return Err(self.err_at(pos, format!("undefined variable \"{d}\"")));
                    }
                } else {
                    self.vars.push(Arc::from(d.as_str()));
                }
            }
        }
        let decl: Vec<Arc<str>> = decl.into_iter().map(Arc::from).collect();
        let mut cmds = Vec::new();
        loop {
            let Some(it) = self.peek().cloned() else {
                return Err(self.err_at(self.src.len(), "unclosed action"));
            };
            match it.tok {
                Tok::Close if !paren => {
                    self.i += 1;
                    break;
                }
                Tok::RParen if paren => {
                    self.i += 1;
                    break;
                }
                Tok::Close | Tok::RParen => {
                    return Err(self.err_at(
                        it.pos,
                        format!("unexpected {} in {}", tok_desc(&it.tok), context),
                    ))
                }
                Tok::Pipe if !cmds.is_empty() => {
                    self.i += 1;
                    cmds.push(self.command()?);
                }
                _ if cmds.is_empty() => cmds.push(self.command()?),
                _ => {
                    return Err(self.err_at(
                        it.pos,
                        format!("unexpected {} in operand", tok_desc(&it.tok)),
                    ))
                }
            }
        }
        if cmds.is_empty() {
            return Err(self.err_at(pos, format!("missing value for {context}")));
        }
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0].kind,
                ArgKind::Bool(_) | ArgKind::Dot | ArgKind::Nil | ArgKind::Const(..)
            ) {
                return Err(self.err_at(
                    c.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        Ok(Pipe {
            pos,
            is_assign,
            decl,
            cmds,
        })
    }

    fn command(&mut self) -> PResult<Cmd> {
        let pos = self.peek().map(|i| i.pos).unwrap_or(0);
        let mut args = Vec::new();
        loop {
            let a = self.operand()?;
            args.push(a);
            match self.peek() {
                Some(Item {
                    tok: Tok::Close | Tok::RParen | Tok::Pipe,
                    ..
                }) => break,
                Some(it) if it.space => continue,
                Some(it) => {
                    let it = it.clone();
                    return Err(self.err_at(
                        it.pos,
                        format!("unexpected {} in operand", tok_desc(&it.tok)),
                    ));
                }
                None => return Err(self.err_at(self.src.len(), "unclosed action")),
            }
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> PResult<Arg> {
        let term = self.term()?;
        let mut fields: Vec<Arc<str>> = Vec::new();
        // Go positions a chained node at its first chained field.
        let chain_pos = self.peek().map(|i| i.pos).unwrap_or(term.pos);
        while let Some(Item {
            tok: Tok::Field(f),
            space: false,
            ..
        }) = self.peek()
        {
            fields.push(Arc::from(f.as_str()));
            self.i += 1;
        }
        if fields.is_empty() {
            return Ok(term);
        }
        let pos = chain_pos;
        Ok(match term.kind {
            ArgKind::Field(mut fs) => {
                fs.extend(fields);
                Arg {
                    pos,
                    kind: ArgKind::Field(fs),
                }
            }
            ArgKind::Var(v, mut fs) => {
                fs.extend(fields);
                Arg {
                    pos,
                    kind: ArgKind::Var(v, fs),
                }
            }
            ArgKind::Bool(_) | ArgKind::Const(..) | ArgKind::Nil | ArgKind::Dot => {
                return Err(self.err_at(
                    pos,
                    format!("unexpected . after term {:?}", term.to_string()),
                ))
            }
            _ => Arg {
                pos,
                kind: ArgKind::Chain(Box::new(term), fields),
            },
        })
    }

    fn term(&mut self) -> PResult<Arg> {
        let it = self.next()?;
        let pos = it.pos;
        let kind = match it.tok {
            Tok::Ident(name) => {
                if name == "nil" {
                    ArgKind::Nil
                } else if let Some(f) = self.funcs.get(&name) {
                    ArgKind::Func(Arc::from(name.as_str()), f.clone())
                } else if is_keyword(&name) {
                    return Err(self.err_at(pos, format!("unexpected <{name}> in command")));
                } else {
                    return Err(self.err_at(pos, format!("function \"{name}\" not defined")));
                }
            }
            Tok::Dot => ArgKind::Dot,
            Tok::Var(v) => {
                if !self.vars.iter().any(|x| **x == *v) {
                    return Err(self.err_at(pos, format!("undefined variable \"{v}\"")));
                }
                ArgKind::Var(Arc::from(v.as_str()), Vec::new())
            }
            Tok::Field(f) => ArgKind::Field(vec![Arc::from(f.as_str())]),
            Tok::Bool(b) => ArgKind::Bool(b),
            Tok::Str(s, text) => ArgKind::Const(Value::from(s), Arc::from(text)),
            Tok::Char(c, text) => ArgKind::Const(Value::Int(c), Arc::from(text)),
            Tok::Number(text) => match parse_number(&text) {
                Some(v) => ArgKind::Const(v, Arc::from(text)),
                None => return Err(self.err_at(pos, format!("illegal number syntax: {text:?}"))),
            },
            Tok::LParen => {
                if self.paren_depth >= crate::limits::MAX_PAREN_DEPTH {
                    return Err(self.err_at(pos, "max expression depth exceeded"));
                }
                self.paren_depth += 1;
                let p = crate::limits::with_stack(|| self.pipeline("parenthesized pipeline", true));
                self.paren_depth -= 1;
                ArgKind::Pipe(Box::new(p?))
            }
            t => return Err(self.err_at(pos, format!("unexpected {} in operand", tok_desc(&t)))),
        };
        Ok(Arg { pos, kind })
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "if" | "else"
            | "end"
            | "range"
            | "with"
            | "define"
            | "template"
            | "block"
            | "break"
            | "continue"
    )
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::Close => "\"}}\"".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Dot => "<.>".into(),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Str(_, t) | Tok::Char(_, t) | Tok::Number(t) => format!("{t:?}"),
        Tok::Pipe => "<|>".into(),
        Tok::LParen => "<(>".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}

/// Go's number constant rules: a float (float64) when the text has `.`, `e` or `p` (and is
/// not hex), else an int (Go `int`).
pub(crate) fn parse_number(text: &str) -> Option<Value> {
    let t: String = text.chars().filter(|&c| c != '_').collect();
    if t.ends_with('i') {
        return None;
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = body.to_ascii_lowercase();
    let is_hex = lower.starts_with("0x");
    let floaty = if is_hex {
        lower.contains('p') || lower.contains('.')
    } else {
        lower.contains('.') || lower.contains('e')
    };
    if !floaty {
        let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
            (16, d)
        } else if let Some(d) = lower.strip_prefix("0o") {
            (8, d)
        } else if let Some(d) = lower.strip_prefix("0b") {
            (2, d)
        } else if lower.len() > 1 && lower.starts_with('0') {
            (8, &lower[1..])
        } else {
            (10, lower.as_str())
        };
        let v = i128::from_str_radix(digits, radix).ok()?;
        let v = if neg { -v } else { v };
        return i64::try_from(v)
            .ok()
            .map(Value::Int)
            .or(Some(Value::Float(v as f64)));
    }
    if is_hex {
        return None;
    }
    let f: f64 = body.parse().ok()?;
    Some(Value::Float(if neg { -f } else { f }))
}
