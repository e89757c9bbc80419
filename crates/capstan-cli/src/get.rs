//! `capstan get units|ks|hr|sources|clusters`: what the agent reconciles and how it went,
//! like `flux get`. Units show `status.lastAppliedRevision`, `spec.suspend` and the
//! Ready condition (its message says why a unit is blocked: which dependency, which
//! health check, which error); sources show `status.artifact.revision`. `-w` polls
//! every 2 seconds and prints a row whenever one changes, until interrupted.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use kube::api::ListParams;
use serde_json::{json, Value};

use crate::ops::{ready_condition, ClusterArgs, FluxKind, SOURCE_KINDS, UNIT_KINDS};
use crate::EXIT_FAILURE;

const WATCH_EVERY: Duration = Duration::from_secs(2);

#[derive(Subcommand)]
pub enum GetCommand {
    /// Kustomizations and HelmReleases.
    #[command(alias = "unit")]
    Units(GetArgs),
    /// Kustomizations.
    #[command(name = "ks", aliases = ["kustomization", "kustomizations"])]
    Ks(GetArgs),
    /// HelmReleases.
    #[command(name = "hr", aliases = ["helmrelease", "helmreleases"])]
    Hr(GetArgs),
    /// GitRepositories, OCIRepositories and HelmRepositories, with their artifact revision.
    #[command(alias = "source")]
    Sources(GetArgs),
    /// The clusters the agent would register: kubeconfig Secrets labelled
    /// capstan.io/cluster, Cluster API `<cluster>-kubeconfig` Secrets, Crossplane
    /// connection Secrets (default: all namespaces).
    #[command(alias = "cluster")]
    Clusters(GetArgs),
}

#[derive(Args)]
pub struct GetArgs {
    /// Only the object with this name (`get sources git|oci|helm [NAME]` picks one source kind).
    pub name: Option<String>,
    /// The name after `get sources git|oci|helm`.
    #[arg(hide = true)]
    pub source_name: Option<String>,
    /// The namespace to list (default: flux-system).
    #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// List every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Keep watching and print a row whenever one changes (Ctrl-C to stop).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Output format.
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "yaml", "json"])]
    pub output: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl GetArgs {
    fn scope(&self, default: Option<&str>) -> Option<String> {
        if self.all_namespaces {
            None
        } else {
            self.namespace.clone().or_else(|| default.map(String::from))
        }
    }
}

/// One line of `get units` / `get sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub revision: String,
    pub suspended: bool,
    /// The Ready condition's status (`True`, `False`, `Unknown`), `Unknown` when absent.
    pub ready: String,
    pub reason: String,
    pub message: String,
}

impl Row {
    /// The row of a Flux object.
    pub fn of(kind: &FluxKind, obj: &Value) -> Row {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(String::from);
        let revision = if SOURCE_KINDS.contains(&kind) {
            s("/status/artifact/revision")
        } else {
            s("/status/lastAppliedRevision")
                .or_else(|| s("/status/history/0/chartVersion"))
                .or_else(|| s("/status/lastAttemptedRevision"))
        };
        let (ready, reason, message) = ready_condition(obj).unwrap_or_else(|| {
            (
                "Unknown".into(),
                String::new(),
                "waiting to be reconciled".into(),
            )
        });
        Row {
            kind: kind.kind,
            namespace: s("/metadata/namespace").unwrap_or_default(),
            name: s("/metadata/name").unwrap_or_default(),
            revision: revision.unwrap_or_default(),
            suspended: crate::ops::is_suspended(obj),
            ready: if ready.is_empty() {
                "Unknown".into()
            } else {
                ready
            },
            reason,
            message,
        }
    }

    fn key(&self) -> (String, String, String) {
        (
            self.kind.to_string(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }

    fn json(&self) -> Value {
        json!({
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "revision": self.revision,
            "suspended": self.suspended,
            "ready": self.ready,
            "reason": self.reason,
            "message": self.message,
        })
    }

    fn cells(&self, qualified: bool) -> Vec<String> {
        vec![
            self.namespace.clone(),
            if qualified {
                format!("{}/{}", self.kind, self.name)
            } else {
                self.name.clone()
            },
            self.revision.clone(),
            self.suspended.to_string(),
            self.ready.clone(),
            one_line(&self.message),
        ]
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

const HEADERS: [&str; 6] = [
    "NAMESPACE",
    "NAME",
    "REVISION",
    "SUSPENDED",
    "READY",
    "MESSAGE",
];

/// Column widths for `rows` (the last column is not padded).
fn widths(headers: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    w
}

fn format_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line.push_str(c);
        } else {
            line.push_str(c);
            let pad = widths[i].saturating_sub(c.chars().count()) + 3;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line.trim_end().to_string()
}

/// A table: headers and rows, columns separated by three spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let w = widths(headers, rows);
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = format_line(&head, &w);
    out.push('\n');
    for r in rows {
        out.push_str(&format_line(r, &w));
        out.push('\n');
    }
    out
}

fn print_values(values: Vec<Value>, output: &str) {
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(values)).unwrap_or_default()
        );
    } else {
        print!(
            "{}",
            capstan_yaml::emit_document(&capstan_yaml::from_json(&Value::Array(values)))
        );
    }
}

/// List `kinds` in `ns` (all namespaces when `None`). Kinds whose CRD is missing are
/// skipped; when all are missing, the error says so.
async fn list(
    client: &kube::Client,
    kinds: &[&'static FluxKind],
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for kind in kinds {
        match kind.api(client, ns).list(&ListParams::default()).await {
            Ok(list) => {
                for obj in list.items {
                    let v = serde_json::to_value(&obj).unwrap_or_default();
                    let row = Row::of(kind, &v);
                    if name.is_none_or(|n| n == row.name) {
                        rows.push(row);
                    }
                }
            }
            Err(e) if crate::ops::is_not_found(&e) => missing.push(*kind),
            Err(e) => {
                return Err(format!(
                    "listing {}: {}",
                    kind.plural,
                    match e {
                        kube::Error::Api(s) => s.message,
                        e => e.to_string(),
                    }
                ))
            }
        }
    }
    if missing.len() == kinds.len() {
        let names: Vec<&str> = missing.iter().map(|k| k.kind).collect();
        return Err(if missing.len() == 1 {
            missing[0].missing_crd()
        } else {
            let (last, rest) = names.split_last().expect("several kinds");
            format!(
                "no {} or {last} CRDs on this cluster: is the capstan agent or Flux installed?",
                rest.join(", ")
            )
        });
    }
    rows.sort_by(|a, b| {
        let order = |k: &str| kinds.iter().position(|x| x.kind == k);
        (order(a.kind), &a.namespace, &a.name).cmp(&(order(b.kind), &b.namespace, &b.name))
    });
    Ok(rows)
}

fn nothing_found(what: &str, ns: Option<&str>, name: Option<&str>) -> String {
    let place = match ns {
        Some(ns) => format!("in the {ns} namespace"),
        None => "in any namespace".into(),
    };
    match name {
        Some(n) => format!("no {what} named {n} {place}"),
        None => format!("no {what} found {place}"),
    }
}

pub async fn run(command: GetCommand) -> Result<u8, String> {
    let (mut args, kinds, what): (GetArgs, &[&'static FluxKind], &str) = match command {
        GetCommand::Units(a) => (a, &UNIT_KINDS, "units"),
        GetCommand::Ks(a) => (a, &UNIT_KINDS[..1], "Kustomizations"),
        GetCommand::Hr(a) => (a, &UNIT_KINDS[1..], "HelmReleases"),
        GetCommand::Sources(mut a) => {
            // Flux's `get sources git|oci|helm|all [NAME]`
            let (kinds, what): (&[&'static FluxKind], &str) = match a.name.as_deref() {
                Some("git") => (&SOURCE_KINDS[..1], "GitRepositories"),
                Some("oci") => (&SOURCE_KINDS[1..2], "OCIRepositories"),
                Some("helm") => (&SOURCE_KINDS[2..], "HelmRepositories"),
                Some("all") => (&SOURCE_KINDS, "sources"),
                _ => (&SOURCE_KINDS, "sources"),
            };
            if matches!(a.name.as_deref(), Some("git" | "oci" | "helm" | "all")) {
                a.name = a.source_name.take();
            }
            (a, kinds, what)
        }
        GetCommand::Clusters(a) => return clusters(a).await,
    };
    if let Some(extra) = args.source_name.take() {
        return Err(format!(
            "unexpected argument {extra:?}: give one name (or `get sources git|oci|helm NAME`)"
        ));
    }
    let client = args.cluster.client().await?;
    let ns = args.scope(Some("flux-system"));
    let name = args.name.as_deref();
    let qualified = kinds.len() > 1;
    let rows = list(&client, kinds, ns.as_deref(), name).await?;
    if rows.is_empty() && !args.watch {
        eprintln!("{}", nothing_found(what, ns.as_deref(), name));
        return Ok(if name.is_some() { EXIT_FAILURE } else { 0 });
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells(qualified)).collect();
    if !args.watch {
        match args.output.as_str() {
            "table" => print!("{}", table(&HEADERS, &cells)),
            o => print_values(rows.iter().map(Row::json).collect(), o),
        }
        return Ok(0);
    }

    // -w: the current rows, then every change.
    let mut w = widths(&HEADERS, &cells);
    // leave room for later rows
    w[2] = w[2].max(20);
    w[1] = w[1].max(20);
    let print_row = |row: &Row| match args.output.as_str() {
        "table" => println!("{}", format_line(&row.cells(qualified), &w)),
        "json" => println!("{}", row.json()),
        _ => print!(
            "---\n{}",
            capstan_yaml::emit_document(&capstan_yaml::from_json(&row.json()))
        ),
    };
    if args.output == "table" {
        let head: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
        println!("{}", format_line(&head, &w));
    }
    let mut seen: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    for r in rows {
        print_row(&r);
        seen.insert(r.key(), r);
    }
    loop {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(WATCH_EVERY).await;
        let rows = match list(&client, kinds, ns.as_deref(), name).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e} (retrying)");
                continue;
            }
        };
        let mut now: BTreeMap<(String, String, String), Row> = BTreeMap::new();
        for r in rows {
            if seen.get(&r.key()) != Some(&r) {
                print_row(&r);
            }
            now.insert(r.key(), r);
        }
        for (k, r) in &seen {
            if !now.contains_key(k) {
                let mut gone = r.clone();
                gone.ready = "Deleted".into();
                gone.message = "deleted".into();
                print_row(&gone);
            }
        }
        seen = now;
    }
}

/// `get clusters`: [`capstan_fleet::discover_lenient`], the agent's own discovery, so the
/// list is exactly what the agent registers. Unusable Secrets and duplicate names are
/// printed as warnings (never the kubeconfigs).
async fn clusters(args: GetArgs) -> Result<u8, String> {
    if let Some(extra) = &args.source_name {
        return Err(format!(
            "unexpected argument {extra:?}: give one cluster name"
        ));
    }
    if args.watch {
        return Err("get clusters does not watch: run it again".into());
    }
    let client = args.cluster.client().await?;
    let ns = args.scope(None);
    let found = capstan_fleet::discover_lenient(&client, ns.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    for p in &found.problems {
        eprintln!("warning: {p}");
    }
    let rows: Vec<(String, String, String)> = found
        .clusters
        .iter()
        .filter(|c| args.name.as_deref().is_none_or(|n| n == c.name))
        .map(|c| {
            let secret = c
                .secret
                .as_ref()
                .map(|(ns, name)| format!("{ns}/{name}"))
                .unwrap_or_default();
            (c.name.clone(), c.origin.to_string(), secret)
        })
        .collect();
    if rows.is_empty() {
        eprintln!(
            "{}",
            nothing_found("cluster Secrets", ns.as_deref(), args.name.as_deref())
        );
        return Ok(if args.name.is_some() { EXIT_FAILURE } else { 0 });
    }
    match args.output.as_str() {
        "table" => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|(n, o, s)| vec![n.clone(), o.clone(), s.clone()])
                .collect();
            print!("{}", table(&["NAME", "SOURCE", "SECRET"], &cells));
        }
        o => print_values(
            rows.iter()
                .map(|(n, o, s)| json!({"name": n, "source": o, "secret": s}))
                .collect(),
            o,
        ),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{HELM_RELEASE, KUSTOMIZATION};

    #[test]
    fn rows_from_objects() {
        let ks = json!({
            "metadata": {"namespace": "flux-system", "name": "apps"},
            "spec": {"suspend": true},
            "status": {"lastAppliedRevision": "main@sha1:abc", "conditions": [
                {"type": "Ready", "status": "False", "reason": "DependencyNotReady",
                 "message": "dependency 'flux-system/infra' is not ready\nretrying"}
            ]}
        });
        let r = Row::of(&KUSTOMIZATION, &ks);
        assert_eq!(r.revision, "main@sha1:abc");
        assert!(r.suspended);
        assert_eq!(r.ready, "False");
        let cells = r.cells(true);
        assert_eq!(cells[1], "Kustomization/apps");
        assert_eq!(
            cells[5],
            "dependency 'flux-system/infra' is not ready retrying"
        );
        let hr = json!({"metadata": {"namespace": "a", "name": "b"},
            "status": {"history": [{"chartVersion": "1.2.3"}]}});
        let r = Row::of(&HELM_RELEASE, &hr);
        assert_eq!(
            (r.revision.as_str(), r.ready.as_str()),
            ("1.2.3", "Unknown")
        );
        let git = json!({"metadata": {"namespace": "a", "name": "g"},
            "status": {"artifact": {"revision": "main@sha1:def"}}});
        assert_eq!(
            Row::of(&crate::ops::GIT_REPOSITORY, &git).revision,
            "main@sha1:def"
        );
    }

    #[test]
    fn table_layout() {
        let t = table(
            &["A", "LONGER", "C"],
            &[vec!["x".into(), "y".into(), "z z".into()]],
        );
        assert_eq!(t, "A   LONGER   C\nx   y        z z\n");
    }
}
