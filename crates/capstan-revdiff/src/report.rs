//! Reports: text (coloured on a terminal), markdown for pull-request comments (split into
//! parts at object boundaries), JSON.

use crate::compare::{Change, ClusterDiff, ObjectDiff, Report, Summary, UnitDiff};

/// The default size limit of one markdown part (GitHub refuses comments over 65,536
/// characters).
pub const DEFAULT_MAX_COMMENT_BYTES: usize = 60_000;

/// The smallest `--max-comment-bytes` accepted: room for the headers of a part.
pub const MIN_COMMENT_BYTES: usize = 2_000;

/// `-o json`.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
    s.push('\n');
    s
}

fn sign(c: Change) -> &'static str {
    match c {
        Change::Added => "+",
        Change::Removed => "-",
        Change::Changed => "~",
        Change::Renamed => ">",
        Change::Failed => "!",
        Change::Unchanged => "=",
    }
}

fn counts(s: &Summary) -> String {
    let mut parts = vec![
        format!("{} added", s.objects_added),
        format!("{} changed", s.objects_changed),
        format!("{} removed", s.objects_removed),
    ];
    if s.failures > 0 {
        parts.push(format!("{} failing", s.failures));
    }
    parts.join(", ")
}

fn unit_counts(u: &UnitDiff) -> String {
    let n = |c: Change| u.objects.iter().filter(|o| o.change == c).count();
    format!(
        "{} added, {} changed, {} removed",
        n(Change::Added),
        n(Change::Changed),
        n(Change::Removed)
    )
}

/// `-o text`; `colour` adds ANSI colours (a terminal, no `NO_COLOR`).
pub fn text(report: &Report, colour: bool) -> String {
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    out.push_str(&format!(
        "capstan diff {} -> {}: {} of {} cluster(s) changed; objects {}\n",
        report.base,
        report.target,
        report.summary.clusters_changed,
        report.summary.clusters,
        counts(&report.summary)
    ));
    for c in &report.clusters {
        out.push_str(&paint(
            "1",
            &format!("\ncluster {} ({}): {}\n", c.name, c.path, c.change.word()),
        ));
        for e in &c.errors {
            out.push_str(&paint("31", &format!("  ! {e}\n")));
        }
        for u in &c.units {
            let line = format!(
                "  {} {} [{}]: {}\n",
                sign(u.change),
                u.id,
                u.source,
                u.change.word()
            );
            out.push_str(&match u.change {
                Change::Failed => paint("31", &line),
                _ => line,
            });
            for n in &u.notes {
                let l = format!("      note: {n}\n");
                out.push_str(&if n.is_warning() { paint("33", &l) } else { l });
            }
            for o in &u.objects {
                out.push_str(&format!("    {} {}\n", sign(o.change), o.key));
                for n in &o.notes {
                    let l = format!("        note: {n}\n");
                    out.push_str(&if n.is_warning() { paint("33", &l) } else { l });
                }
                if o.change == Change::Changed {
                    for line in o.diff.lines() {
                        let l = format!("        {line}\n");
                        out.push_str(&if line.starts_with("+++") || line.starts_with("---") {
                            paint("1", &l)
                        } else if line.starts_with('+') {
                            paint("32", &l)
                        } else if line.starts_with('-') {
                            paint("31", &l)
                        } else if line.starts_with("@@") {
                            paint("36", &l)
                        } else {
                            l
                        });
                    }
                }
            }
        }
    }
    out
}

/// Escape text for markdown table cells and summaries; at most 600 bytes of it.
fn md(s: &str) -> String {
    let mut s = s;
    let clipped = s.len() > 600;
    if clipped {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s = &s[..cut];
    }
    let out = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('\n', " ");
    if clipped {
        out + "…"
    } else {
        out
    }
}

/// A code fence longer than any backtick run in `body`.
fn fence(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

fn header(report: &Report) -> String {
    let s = &report.summary;
    let mut h = String::new();
    h.push_str(&format!(
        "### capstan diff: `{}` → `{}`\n\n",
        md(&report.base),
        md(&report.target)
    ));
    h.push_str(&format!(
        "**{}** of {} cluster(s) changed · units {} added, {} changed, {} removed, {} renamed · objects {} · **{}** failure(s)\n\n",
        s.clusters_changed, s.clusters, s.units_added, s.units_changed, s.units_removed, s.units_renamed,
        counts(s), s.failures
    ));
    h.push_str("| cluster | change | units changed | objects added | objects changed | objects removed | failures |\n");
    h.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    for c in &report.clusters {
        let cs = &c.summary;
        h.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            md(&c.name),
            c.change.word(),
            cs.units_added + cs.units_changed + cs.units_removed + cs.units_renamed,
            cs.objects_added,
            cs.objects_changed,
            cs.objects_removed,
            cs.failures
        ));
    }
    h.push('\n');
    h
}

fn cluster_open(c: &ClusterDiff, continued: bool) -> String {
    let mut s = format!(
        "<details><summary><b>cluster {}</b> ({}): {}{}</summary>\n\n",
        md(&c.name),
        c.change.word(),
        counts(&c.summary),
        if continued { " (continued)" } else { "" }
    );
    if !continued {
        for e in c.errors.iter().take(3) {
            s.push_str(&format!("- :x: {}\n", md(e)));
        }
        if c.errors.len() > 3 {
            s.push_str(&format!(
                "- :x: … {} more error(s): see -o json\n",
                c.errors.len() - 3
            ));
        }
        if !c.errors.is_empty() {
            s.push('\n');
        }
    }
    s
}

fn unit_open(u: &UnitDiff, continued: bool, budget: usize) -> String {
    let mut s = format!(
        "<details><summary>{} <code>{}</code> ({}): {}{}{}</summary>\n\n",
        sign(u.change),
        md(&u.id),
        md(&u.source),
        u.change.word(),
        if u.objects.is_empty() {
            String::new()
        } else {
            format!(", {}", unit_counts(u))
        },
        if continued { " (continued)" } else { "" }
    );
    if !continued {
        for (i, n) in u.notes.iter().enumerate() {
            let icon = if n.is_warning() {
                ":warning:"
            } else {
                ":information_source:"
            };
            let line = format!("- {icon} {}\n", md(&n.to_string()));
            if s.len() + line.len() + 80 > budget {
                s.push_str(&format!(
                    "- … {} more note(s): see -o json\n",
                    u.notes.len() - i
                ));
                break;
            }
            s.push_str(&line);
        }
        if !u.notes.is_empty() {
            s.push('\n');
        }
    }
    s
}

const CLOSE: &str = "</details>\n\n";

/// One object's section; `budget` bounds its size (a diff over it is cut, saying so).
fn object_block(o: &ObjectDiff, budget: usize) -> String {
    let mut s = format!(
        "**{}** `{}` {}",
        o.change.word(),
        md(&o.key.to_string()),
        o.api_version
    );
    if o.pruned == Some(true) {
        s.push_str(" (deleted by prune)");
    } else if o.pruned == Some(false) {
        s.push_str(" (left in the cluster: prune is off)");
    }
    s.push('\n');
    for n in &o.notes {
        let icon = if n.is_warning() {
            ":warning:"
        } else {
            ":information_source:"
        };
        s.push_str(&format!("- {icon} {}\n", md(&n.to_string())));
    }
    if !o.diff.is_empty() {
        let mut body = o.diff.clone();
        let f = fence(&body);
        let overhead = s.len() + 2 * f.len() + 16;
        if body.len() + overhead > budget {
            let keep = budget.saturating_sub(overhead + 120);
            let mut cut = keep.min(body.len());
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            let cut = body[..cut].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let total = body.len();
            body.truncate(cut);
            body.push_str(&format!(
                "... diff cut here: {total} bytes in all (see -o json or -o text)\n"
            ));
        }
        s.push_str(&format!("\n{f}diff\n{body}{f}\n"));
    }
    s.push('\n');
    s
}

/// `-o markdown`: parts that each stay under `max_bytes` (at least
/// [`MIN_COMMENT_BYTES`]), split at object boundaries; every part opens with the
/// part number and re-opens the cluster and unit it continues.
pub fn markdown(report: &Report, max_bytes: usize) -> Vec<String> {
    let max = max_bytes.max(MIN_COMMENT_BYTES);
    // Room for the part line ("Part NN of NN") and the closing tags.
    let part_line = |i: usize, n: usize| format!("<sub>part {i} of {n}</sub>\n\n");
    let reserve = part_line(999, 999).len() + 2 * CLOSE.len() + 8;
    let limit = max - reserve;
    let head = header(report);
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    // The summary table alone may be too long: cut it into rows.
    for line in head.split_inclusive('\n') {
        if cur.len() + line.len() > limit {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push_str(line);
    }
    for c in &report.clusters {
        if c.change == Change::Unchanged {
            continue;
        }
        let copen = cluster_open(c, false);
        if cur.len() + copen.len() + CLOSE.len() > limit {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push_str(&copen);
        for u in &c.units {
            if u.change == Change::Unchanged {
                continue;
            }
            let uopen = unit_open(u, false, limit / 2);
            if cur.len() + uopen.len() + 2 * CLOSE.len() > limit {
                cur.push_str(CLOSE);
                parts.push(std::mem::take(&mut cur));
                cur.push_str(&cluster_open(c, true));
            }
            cur.push_str(&uopen);
            for o in &u.objects {
                let reopen = cluster_open(c, true).len() + unit_open(u, true, limit).len();
                let block = object_block(o, limit - reopen - 2 * CLOSE.len());
                if cur.len() + block.len() + 2 * CLOSE.len() > limit {
                    cur.push_str(CLOSE);
                    cur.push_str(CLOSE);
                    parts.push(std::mem::take(&mut cur));
                    cur.push_str(&cluster_open(c, true));
                    cur.push_str(&unit_open(u, true, limit));
                }
                cur.push_str(&block);
            }
            cur.push_str(CLOSE);
        }
        cur.push_str(CLOSE);
    }
    if report.summary.clusters_changed == 0 {
        cur.push_str("No rendered object changes.\n");
    }
    parts.push(cur);
    parts.retain(|p| !p.is_empty());
    let n = parts.len();
    if n > 1 {
        for (i, p) in parts.iter_mut().enumerate() {
            p.insert_str(0, &part_line(i + 1, n));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, CompareOptions};
    use crate::model::{ClusterSnapshot, RevisionSnapshot, UnitSnapshot};
    use serde_json::json;

    fn rev(n: usize, v: &str) -> RevisionSnapshot {
        let objects: Vec<_> = (0..n)
            .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"k": format!("{v}-{}", "x".repeat(200))}}))
            .collect();
        RevisionSnapshot {
            label: v.into(),
            clusters: vec![ClusterSnapshot {
                name: "c".into(),
                path: "clusters/c".into(),
                units: vec![UnitSnapshot {
                    id: "Kustomization/flux-system/apps".into(),
                    kind: "Kustomization".into(),
                    objects,
                    prune: true,
                    ..Default::default()
                }],
                errors: vec![],
            }],
        }
    }

    #[test]
    fn markdown_splits_at_object_boundaries_under_the_limit() {
        let r = compare(&rev(200, "a"), &rev(200, "b"), &CompareOptions::default());
        let parts = markdown(&r, 5_000);
        assert!(parts.len() > 5);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() <= 5_000, "part {i} is {} bytes", p.len());
            assert_eq!(
                p.matches("<details>").count(),
                p.matches("</details>").count(),
                "{p}"
            );
            assert!(p.starts_with(&format!("<sub>part {} of {}</sub>", i + 1, parts.len())));
        }
        let all = parts.concat();
        for i in 0..200 {
            assert!(
                all.contains(&format!("`ConfigMap cm-{i}`")),
                "cm-{i} missing"
            );
        }
    }

    #[test]
    fn a_single_part_has_no_part_line_and_a_table() {
        let r = compare(&rev(2, "a"), &rev(2, "b"), &CompareOptions::default());
        let parts = markdown(&r, DEFAULT_MAX_COMMENT_BYTES);
        assert_eq!(parts.len(), 1);
        assert!(
            parts[0].contains("| `c` | changed | 1 | 0 | 2 | 0 | 0 |"),
            "{}",
            parts[0]
        );
        assert!(parts[0].contains("```diff\n"));
    }

    #[test]
    fn oversized_object_diff_is_cut() {
        let r = compare(
            &rev(1, &"a".repeat(9_000)),
            &rev(1, "b"),
            &CompareOptions::default(),
        );
        let parts = markdown(&r, 3_000);
        for p in &parts {
            assert!(p.len() <= 3_000, "{} bytes:\n{p}", p.len());
        }
        assert!(parts.concat().contains("diff cut here"));
    }

    #[test]
    fn fences_outgrow_backticks_in_content() {
        assert_eq!(fence("a ``` b"), "````");
        assert_eq!(fence("plain"), "```");
    }

    #[test]
    fn text_colours_only_when_asked() {
        let r = compare(&rev(1, "a"), &rev(1, "b"), &CompareOptions::default());
        assert!(!text(&r, false).contains('\x1b'));
        assert!(text(&r, true).contains("\x1b[32m"));
    }
}
