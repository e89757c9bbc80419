//! The executor: walks a parsed template (Go's text/template exec.go).

use std::collections::HashMap;
use std::sync::Arc;

use crate::parse::{self, Arg, ArgKind, Branch, Cmd, Node, Pipe, Template};
use crate::value::Value;
use crate::{Ctx, Error, ErrorKind, ExecState, MissingKey, TemplateSet};

type Overlay = HashMap<String, Arc<Template>>;

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    set: &'a TemplateSet,
    overlay: Option<&'a Overlay>,
    state: &'a mut ExecState,
    tmpl: Arc<Template>,
    vars: Vec<(Arc<str>, Value)>,
    depth: usize,
}

fn lookup<'a>(
    set: &'a TemplateSet,
    overlay: Option<&'a Overlay>,
    name: &str,
) -> Option<&'a Arc<Template>> {
    if let Some(o) = overlay {
        if let Some(t) = o.get(name) {
            return Some(t);
        }
    }
    set.templates.get(name)
}

pub(crate) fn execute(
    set: &TemplateSet,
    overlay: Option<&Overlay>,
    t: &Arc<Template>,
    data: &Value,
    out: &mut String,
    state: &mut ExecState,
) -> Result<(), Error> {
    let mut ex = Exec {
        set,
        overlay,
        state,
        tmpl: t.clone(),
        vars: vec![(Arc::from("$"), data.clone())],
        depth: 0,
    };
    ex.walk_list(data, &t.root, out)?;
    Ok(())
}

pub(crate) fn include(
    set: &TemplateSet,
    overlay: Option<&Overlay>,
    name: &str,
    data: &Value,
    state: &mut ExecState,
) -> Result<String, Error> {
    check_nesting(set, state)?;
    let depth = state.include_depth.get(name).copied();
    if let Some(v) = depth {
        if v > set.options.max_include_depth {
            return Err(Error::other(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            )));
        }
    }
    let t = lookup(set, overlay, name).ok_or_else(|| {
        Error::other(format!(
            "template: no template {} associated with template {}",
            crate::fmt::quote(name),
            crate::fmt::quote(&set.options.root_name)
        ))
    })?;
    let t = t.clone();
    *state.include_depth.entry(name.to_string()).or_insert(0) += 1;
    state.nesting += 1;
    let mut out = String::new();
    let r = crate::limits::with_stack(|| execute(set, overlay, &t, data, &mut out, state));
    state.nesting -= 1;
    if let Some(v) = state.include_depth.get_mut(name) {
        *v = v.saturating_sub(1);
    }
    r.map(|_| out)
}

pub(crate) fn tpl(
    set: &TemplateSet,
    overlay: Option<&Overlay>,
    src: &str,
    data: &Value,
    state: &mut ExecState,
) -> Result<String, Error> {
    let cached = set
        .tpl_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(src)
        .cloned();
    let parsed = match cached {
        Some(p) => p,
        None => {
            let p = parse::parse(&set.options.root_name, src, &set.funcs).map_err(|e| {
                Error::other(format!(
                    "cannot parse template {}: {}",
                    crate::fmt::quote(src),
                    e
                ))
            })?;
            let p = Arc::new(p);
            let mut cache = set.tpl_cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(src.to_string(), p.clone());
            p
        }
    };
    check_nesting(set, state)?;
    let main = parsed.templates[0].clone();
    let mut out = String::new();
    state.nesting += 1;
    let r = if parsed.templates.len() > 1 {
        let mut ov: Overlay = overlay.cloned().unwrap_or_default();
        for t in &parsed.templates[1..] {
            if let Some(old) = lookup(set, Some(&ov), &t.name) {
                if t.is_empty() && !old.is_empty() {
                    continue;
                }
            }
            ov.insert(t.name.clone(), t.clone());
        }
        crate::limits::with_stack(|| execute(set, Some(&ov), &main, data, &mut out, state))
    } else {
        crate::limits::with_stack(|| execute(set, overlay, &main, data, &mut out, state))
    };
    state.nesting -= 1;
    r.map_err(|e| {
        Error::other(format!(
            "error during tpl function execution for {}: {}",
            crate::fmt::quote(src),
            e
        ))
    })?;
    if set.options.tpl_strip_no_value && out.contains("<no value>") {
        out = out.replace("<no value>", "");
    }
    Ok(out)
}

/// The total nesting of template executions (`template`, `include`, `tpl`) is bounded by
/// [`crate::Options::max_exec_depth`], so that no chain of them runs unbounded.
fn check_nesting(set: &TemplateSet, state: &ExecState) -> Result<(), Error> {
    if state.nesting >= set.options.max_exec_depth {
        return Err(Error::other(format!(
            "template: exceeded maximum template depth ({})",
            set.options.max_exec_depth
        )));
    }
    Ok(())
}

/// The node as the error context. Go's `ErrorContext` once cut it to 20 characters;
/// the Go Helm 4 is built with prints it whole (checked with the Helm oracle).
fn truncate_context(s: &str) -> String {
    s.to_string()
}

impl Exec<'_> {
    fn err(&self, pos: usize, context: &dyn std::fmt::Display, msg: impl Into<String>) -> Error {
        let (line, col) = self.tmpl.location(pos);
        Error {
            kind: ErrorKind::Exec,
            template: self.tmpl.parse_name.to_string(),
            line,
            col,
            executing: self.tmpl.name.clone(),
            context: truncate_context(&context.to_string()),
            message: msg.into(),
        }
    }

    fn walk_list(&mut self, dot: &Value, list: &[Node], out: &mut String) -> Result<Flow, Error> {
        for n in list {
            let flow = self.walk(dot, n, out)?;
            if out.len() > self.set.options.max_output_bytes {
                return Err(Error::other(format!(
                    "template: {}: output exceeds the limit of {} bytes",
                    self.tmpl.name, self.set.options.max_output_bytes
                )));
            }
            match flow {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &Node, out: &mut String) -> Result<Flow, Error> {
        crate::limits::with_stack(|| self.walk_node(dot, node, out))
    }

    fn walk_node(&mut self, dot: &Value, node: &Node, out: &mut String) -> Result<Flow, Error> {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(pipe) => {
                let v = self.eval_pipe(dot, pipe)?;
                if pipe.decl.is_empty() {
                    if let Err(l) = print_value(out, &v) {
                        return Err(self.err(pipe.pos, pipe, l.message("printing the value")));
                    }
                }
            }
            Node::If(b) => return self.walk_if_with(dot, b, false, out),
            Node::With(b) => return self.walk_if_with(dot, b, true, out),
            Node::Range(b) => return self.walk_range(dot, b, out),
            Node::Template { pos, name, pipe } => {
                let Some(t) = lookup(self.set, self.overlay, name).cloned() else {
                    let ctx = TemplateCtx(name, pipe.as_ref());
                    return Err(self.err(
                        *pos,
                        &ctx,
                        format!("template {} not defined", crate::fmt::quote(name)),
                    ));
                };
                // Go checks the depth before evaluating the pipeline
                let max = self.set.options.max_exec_depth;
                if self.depth >= max || self.state.nesting >= max {
                    let ctx = TemplateCtx(name, pipe.as_ref());
                    return Err(self.err(
                        *pos,
                        &ctx,
                        format!("exceeded maximum template depth ({max})"),
                    ));
                }
                let newdot = match pipe {
                    Some(p) => self.eval_pipe(dot, p)?,
                    None => Value::Nil,
                };
                let saved_vars =
                    std::mem::replace(&mut self.vars, vec![(Arc::from("$"), newdot.clone())]);
                let saved_tmpl = std::mem::replace(&mut self.tmpl, t.clone());
                self.depth += 1;
                self.state.nesting += 1;
                let r = self.walk_list(&newdot, &t.root, out);
                self.state.nesting -= 1;
                self.depth -= 1;
                self.tmpl = saved_tmpl;
                self.vars = saved_vars;
                r?;
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(
        &mut self,
        dot: &Value,
        b: &Branch,
        with: bool,
        out: &mut String,
    ) -> Result<Flow, Error> {
        let mark = self.vars.len();
        let r = (|| {
            let v = self.eval_pipe(dot, &b.pipe)?;
            if v.is_true() {
                if with {
                    self.walk_list(&v, &b.list, out)
                } else {
                    self.walk_list(dot, &b.list, out)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(dot, e, out)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, b: &Branch, out: &mut String) -> Result<Flow, Error> {
        let mark = self.vars.len();
        let r = self.walk_range_inner(dot, b, out);
        self.vars.truncate(mark);
        r
    }

    fn range_body(
        &mut self,
        b: &Branch,
        key: Value,
        elem: Value,
        out: &mut String,
    ) -> Result<Flow, Error> {
        let mark = self.vars.len();
        let decl = &b.pipe.decl;
        if b.pipe.is_assign {
            if decl.len() == 2 {
                self.set_var(&decl[0], key);
                self.set_var(&decl[1], elem.clone());
            } else if decl.len() == 1 {
                self.set_var(&decl[0], elem.clone());
            }
        } else if decl.len() == 2 {
            self.vars.push((decl[0].clone(), key));
            self.vars.push((decl[1].clone(), elem.clone()));
        } else if decl.len() == 1 {
            self.vars.push((decl[0].clone(), elem.clone()));
        }
        let r = self.walk_list(&elem, &b.list, out);
        self.vars.truncate(mark);
        r
    }

    fn walk_range_inner(
        &mut self,
        dot: &Value,
        b: &Branch,
        out: &mut String,
    ) -> Result<Flow, Error> {
        let mut val = self.eval_cmds(dot, &b.pipe)?;
        if let Some(items) = val.object_collection() {
            val = items;
        }
        let mut any = false;
        match &val {
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    any = true;
                    match self.range_body(b, Value::Int(i as i64), e.clone(), out)? {
                        Flow::Break => break,
                        _ => continue,
                    }
                }
            }
            Value::Map(m) => {
                let entries: Vec<(String, Value)> = m
                    .read()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, v) in entries {
                    any = true;
                    match self.range_body(b, Value::from(k), v, out)? {
                        Flow::Break => break,
                        _ => continue,
                    }
                }
            }
            Value::Int(n) | Value::Int64(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.err(
                        b.pipe.pos,
                        &b.pipe,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                for i in 0..*n {
                    any = true;
                    let iv = if matches!(val, Value::Int(_)) {
                        Value::Int(i)
                    } else {
                        Value::Int64(i)
                    };
                    match self.range_body(b, iv.clone(), iv, out)? {
                        Flow::Break => break,
                        _ => continue,
                    }
                }
            }
            Value::Nil => {}
            v => {
                return Err(self.err(
                    b.pipe.pos,
                    &b.pipe,
                    format!("range can't iterate over {}", v.to_go_string()),
                ))
            }
        }
        if !any {
            if let Some(e) = &b.else_list {
                return self.walk_list(dot, e, out).map(|_| Flow::Normal);
            }
        }
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, v: Value) {
        for (n, val) in self.vars.iter_mut().rev() {
            if **n == *name {
                *val = v;
                return;
            }
        }
    }

    fn var(&self, name: &str) -> Value {
        for (n, val) in self.vars.iter().rev() {
            if **n == *name {
                return val.clone();
            }
        }
        Value::Nil
    }

    fn eval_cmds(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, Error> {
        let mut val: Option<Value> = None;
        for cmd in &pipe.cmds {
            val = Some(self.eval_cmd(dot, cmd, val)?);
        }
        Ok(val.unwrap_or_default())
    }

    fn eval_pipe(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, Error> {
        let v = self.eval_cmds(dot, pipe)?;
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(d, v.clone());
            } else {
                self.vars.push((d.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_cmd(&mut self, dot: &Value, cmd: &Cmd, fin: Option<Value>) -> Result<Value, Error> {
        let first = &cmd.args[0];
        match &first.kind {
            ArgKind::Field(fs) => {
                let recv = dot.clone();
                self.eval_field_chain(dot, recv, first, fs, &cmd.args[1..], fin)
            }
            ArgKind::Var(name, fs) => {
                let v = self.var(name);
                if fs.is_empty() {
                    self.not_a_function(cmd, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, first, fs, &cmd.args[1..], fin)
            }
            ArgKind::Chain(term, fs) => {
                let v = self.eval_arg(dot, term)?;
                self.eval_field_chain(dot, v, first, fs, &cmd.args[1..], fin)
            }
            ArgKind::Func(name, f) => self.call_func(dot, cmd, name, f, &cmd.args[1..], fin),
            ArgKind::Pipe(p) => {
                self.not_a_function(cmd, &fin)?;
                let mark = self.vars.len();
                let r = crate::limits::with_stack(|| self.eval_pipe(dot, p));
                self.vars.truncate(mark);
                r
            }
            ArgKind::Nil => Err(self.err(first.pos, first, "nil is not a command")),
            _ => {
                self.not_a_function(cmd, &fin)?;
                self.eval_arg(dot, first)
            }
        }
    }

    fn not_a_function(&self, cmd: &Cmd, fin: &Option<Value>) -> Result<(), Error> {
        if cmd.args.len() > 1 || fin.is_some() {
            return Err(self.err(
                cmd.pos,
                cmd,
                format!("can't give argument to non-function {}", cmd.args[0]),
            ));
        }
        Ok(())
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> Result<Value, Error> {
        match &arg.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(Value::Nil),
            ArgKind::Bool(b) => Ok(Value::Bool(*b)),
            ArgKind::Const(v, _) => Ok(v.clone()),
            ArgKind::Field(fs) => self.eval_field_chain(dot, dot.clone(), arg, fs, &[], None),
            ArgKind::Var(name, fs) => {
                let v = self.var(name);
                if fs.is_empty() {
                    Ok(v)
                } else {
                    self.eval_field_chain(dot, v, arg, fs, &[], None)
                }
            }
            ArgKind::Chain(term, fs) => {
                let v = self.eval_arg(dot, term)?;
                self.eval_field_chain(dot, v, arg, fs, &[], None)
            }
            ArgKind::Func(name, f) => {
                let cmd = Cmd {
                    pos: arg.pos,
                    args: Vec::new(),
                };
                self.call_func_ctx(dot, &cmd, arg, name, f, &[], None)
            }
            ArgKind::Pipe(p) => {
                let mark = self.vars.len();
                let r = self.eval_pipe(dot, p);
                self.vars.truncate(mark);
                r
            }
        }
    }

    fn call_func(
        &mut self,
        dot: &Value,
        cmd: &Cmd,
        name: &str,
        f: &crate::Func,
        args: &[Arg],
        fin: Option<Value>,
    ) -> Result<Value, Error> {
        self.call_func_ctx(dot, cmd, cmd, name, f, args, fin)
    }

    #[allow(clippy::too_many_arguments)]
    fn call_func_ctx(
        &mut self,
        dot: &Value,
        cmd: &Cmd,
        ctx_node: &dyn std::fmt::Display,
        name: &str,
        f: &crate::Func,
        args: &[Arg],
        fin: Option<Value>,
    ) -> Result<Value, Error> {
        if name == "and" || name == "or" {
            let n = args.len() + fin.is_some() as usize;
            if n == 0 {
                return Err(self.err(
                    cmd.pos,
                    ctx_node,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, a)?;
                if v.is_true() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(fv) = fin {
                v = fv;
            }
            return Ok(v);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        let mut nil_fields = 0u64;
        for (i, a) in args.iter().enumerate() {
            let v = self.eval_arg(dot, a)?;
            if v.is_nil() && i < 64 && is_field_like(a) {
                nil_fields |= 1 << i;
            }
            vals.push(v);
        }
        if let Some(fv) = fin {
            vals.push(fv);
        }
        let tname = self.tmpl.name.clone();
        let mut ctx = Ctx {
            set: self.set,
            overlay: self.overlay,
            state: &mut *self.state,
            template: &tname,
            nil_fields,
        };
        match f(&mut ctx, &vals) {
            Ok(v) => Ok(v),
            Err(msg) => {
                if let Some((i, ty)) = crate::parse_arg_type_error(&msg) {
                    let typed = i < 64 && nil_fields & (1 << i) != 0;
                    return Err(self.arg_type_err(cmd, ctx_node, args, &vals, i, ty, typed));
                }
                // Go's reflect-level arity check happens before the call, at the function's
                // identifier and without `error calling NAME:`
                if msg
                    .strip_prefix("wrong number of args for ")
                    .and_then(|r| r.strip_prefix(name))
                    .is_some_and(|r| r.starts_with(": want "))
                {
                    return Err(match cmd.args.first() {
                        Some(ident) => self.err(ident.pos, ident, msg),
                        None => self.err(cmd.pos, ctx_node, msg),
                    });
                }
                Err(self.err(cmd.pos, ctx_node, format!("error calling {name}: {msg}")))
            }
        }
    }

    /// Go's reflect-level argument check: a constant of the wrong kind (`expected integer;
    /// found "a"`), nil (`invalid value; expected int`) or a value of another type
    /// (`wrong type for value; expected int; got float64`), at the argument's position.
    #[allow(clippy::too_many_arguments)]
    fn arg_type_err(
        &self,
        cmd: &Cmd,
        ctx_node: &dyn std::fmt::Display,
        args: &[Arg],
        vals: &[Value],
        i: usize,
        ty: &str,
        nil_interface: bool,
    ) -> Error {
        let v = vals.get(i).cloned().unwrap_or(Value::Nil);
        let node = args.get(i).or(args.last());
        let konst = args.get(i).and_then(|a| match &a.kind {
            ArgKind::Const(..) | ArgKind::Bool(_) | ArgKind::Nil => Some(a),
            _ => None,
        });
        let msg = if let Some(a) = konst {
            let what = match ty {
                "int" | "int8" | "int16" | "int32" | "int64" => Some("integer"),
                "uint" | "uint8" | "uint16" | "uint32" | "uint64" => Some("unsigned integer"),
                "float32" | "float64" => Some("float"),
                "string" => Some("string"),
                "bool" => Some("bool"),
                _ => None,
            };
            match (&a.kind, what) {
                (ArgKind::Nil, _) => format!("cannot assign nil to {ty}"),
                (_, Some(w)) => format!("expected {w}; found {a}"),
                (_, None) => format!("can't handle {a} for arg of type {ty}"),
            }
        } else if v.is_nil() && nil_interface {
            // a field holding nil is a (valid) nil interface{} value in Go
            format!("wrong type for value; expected {ty}; got interface {{}}")
        } else if v.is_nil() {
            format!("invalid value; expected {ty}")
        } else {
            format!("wrong type for value; expected {ty}; got {}", v.type_name())
        };
        // Go reports at the last node it evaluated: inside `(pipeline)`, the last command's
        // last argument, or its function name when it has none
        let mut node = node;
        while let Some(Arg {
            kind: ArgKind::Pipe(p),
            ..
        }) = node
        {
            match p.cmds.last() {
                Some(c) if !c.args.is_empty() => node = c.args.last(),
                _ => break,
            }
        }
        match node {
            Some(n) => self.err(n.pos, n, msg),
            None => self.err(cmd.pos, ctx_node, msg),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        node: &Arg,
        fields: &[Arc<str>],
        args: &[Arg],
        fin: Option<Value>,
    ) -> Result<Value, Error> {
        let n = fields.len();
        let mut fin = fin;
        for (i, f) in fields.iter().enumerate() {
            let last = i == n - 1;
            recv = if last {
                self.eval_field(dot, recv, f, node, args, fin.take(), i > 0)?
            } else {
                self.eval_field(dot, recv, f, node, &[], None, i > 0)?
            };
        }
        Ok(recv)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        recv: Value,
        name: &str,
        node: &Arg,
        args: &[Arg],
        fin: Option<Value>,
        chained: bool,
    ) -> Result<Value, Error> {
        let has_args = !args.is_empty() || fin.is_some();
        match &recv {
            Value::Nil => {
                let mk = self.set.options.missing_key;
                if chained && mk != MissingKey::Default {
                    return Err(self.err(
                        node.pos,
                        node,
                        format!("nil pointer evaluating interface {{}}.{name}"),
                    ));
                }
                if mk == MissingKey::Error {
                    return Err(self.err(
                        node.pos,
                        node,
                        format!("nil data; no entry for key {}", crate::fmt::quote(name)),
                    ));
                }
                Ok(Value::Nil)
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.err(
                        node.pos,
                        node,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                match m.get(name) {
                    Some(v) => Ok(v),
                    None => match self.set.options.missing_key {
                        MissingKey::Error => Err(self.err(
                            node.pos,
                            node,
                            format!("map has no entry for key {}", crate::fmt::quote(name)),
                        )),
                        _ => Ok(Value::Nil),
                    },
                }
            }
            Value::Object(o) => {
                if o.has_method(name) {
                    let mut vals = Vec::with_capacity(args.len() + 1);
                    for a in args {
                        vals.push(self.eval_arg(dot, a)?);
                    }
                    if let Some(fv) = fin {
                        vals.push(fv);
                    }
                    return match o.call_method(name, &vals) {
                        Some(Ok(v)) => Ok(v),
                        Some(Err(e)) => {
                            Err(self.err(node.pos, node, format!("error calling {name}: {e}")))
                        }
                        None => Err(self.err(
                            node.pos,
                            node,
                            format!("can't evaluate field {name} in type {}", o.type_name()),
                        )),
                    };
                }
                match o.field(name) {
                    Some(v) => {
                        if has_args {
                            return Err(self.err(
                                node.pos,
                                node,
                                format!("{name} has arguments but cannot be invoked as function"),
                            ));
                        }
                        Ok(v)
                    }
                    None => Err(self.err(
                        node.pos,
                        node,
                        format!("can't evaluate field {name} in type {}", o.type_name()),
                    )),
                }
            }
            v => {
                let tn = if chained {
                    "interface {}".to_string()
                } else {
                    v.type_name()
                };
                Err(self.err(
                    node.pos,
                    node,
                    format!("can't evaluate field {name} in type {tn}"),
                ))
            }
        }
    }
}

/// True for an argument Go evaluates to a field's value without digging into the
/// interface: `.a.b`, `$x.a`, `(pipeline).a`. When that value is nil it is a valid
/// `interface{}` holding nil, which Go does not convert to a map or slice parameter (a
/// variable or parenthesised pipeline holding nil converts to the parameter's zero value).
fn is_field_like(a: &Arg) -> bool {
    match &a.kind {
        ArgKind::Field(_) | ArgKind::Chain(..) => true,
        ArgKind::Var(_, fs) => !fs.is_empty(),
        _ => false,
    }
}

struct TemplateCtx<'a>(&'a str, Option<&'a Pipe>);

impl std::fmt::Display for TemplateCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(p) => write!(f, "{{{{template {} {}}}}}", crate::fmt::quote(self.0), p),
            None => write!(f, "{{{{template {}}}}}", crate::fmt::quote(self.0)),
        }
    }
}

/// Writes a pipeline's result the way text/template prints it: nil as `<no value>`.
fn print_value(out: &mut String, v: &Value) -> Result<(), crate::fmt::Limit> {
    match v {
        Value::Nil => out.push_str("<no value>"),
        Value::String(s) => out.push_str(s),
        Value::Object(o) => match o.template_string() {
            Some(s) => out.push_str(&s),
            None => out.push_str(&o.go_string()),
        },
        v => {
            // a fresh buffer: the size limit is per value, not per output
            let mut s = String::new();
            crate::fmt::try_write_value(&mut s, v)?;
            out.push_str(&s);
        }
    }
    Ok(())
}
