//! Helm's `CoalesceValues` / `MergeValues` (pkg/chart/common/util/coalesce.go), ported
//! rule for rule: null deletes a chart default when coalescing, globals flow down to
//! subcharts, subchart values live under the subchart's name.

use crate::chart::Chart;
use crate::value::{Map, Val};

/// Collects the warnings Helm logs while coalescing.
pub type Warnings = Vec<String>;

/// Go's `%t` of a value (`%!t(string=x)` for non-bools).
pub fn go_fmt_t(v: &Val) -> String {
    match v {
        Val::Bool(b) => b.to_string(),
        Val::Null => "%!t(<nil>)".into(),
        Val::Str(s) => format!("%!t(string={s})"),
        Val::Int(i) => format!("%!t(int64={i})"),
        Val::Float(f) => format!("%!t(float64={})", crate::value::format_float_g(*f)),
        Val::List(l) => format!(
            "[{}]",
            l.iter()
                .map(|e| capstan_gotemplate::with_stack(|| go_fmt_t(e)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Val::Map(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", capstan_gotemplate::with_stack(|| go_fmt_t(v))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn concat_prefix(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// `CoalesceValues(chart, vals)`.
pub fn coalesce_values(chart: &Chart, vals: &Map, warn: &mut Warnings) -> Result<Map, String> {
    let mut dest = vals.clone();
    coalesce(chart, &mut dest, "", false, warn)?;
    Ok(dest)
}

/// `MergeValues(chart, vals)` (nulls kept).
pub fn merge_values(chart: &Chart, vals: &Map, warn: &mut Warnings) -> Result<Map, String> {
    let mut dest = vals.clone();
    coalesce(chart, &mut dest, "", true, warn)?;
    Ok(dest)
}

fn coalesce(
    ch: &Chart,
    dest: &mut Map,
    prefix: &str,
    merge: bool,
    warn: &mut Warnings,
) -> Result<(), String> {
    coalesce_chart_values(ch, dest, prefix, merge, warn);
    coalesce_deps(ch, dest, prefix, merge, warn)
}

fn coalesce_deps(
    ch: &Chart,
    dest: &mut Map,
    prefix: &str,
    merge: bool,
    warn: &mut Warnings,
) -> Result<(), String> {
    for sub in &ch.dependencies {
        let name = sub.name().to_string();
        match dest.get(&name) {
            None => {
                dest.insert(name.clone(), Val::Map(Map::new()));
            }
            Some(v) if !v.is_table() => {
                return Err(format!("type mismatch on {}: {}", name, go_fmt_t(v)));
            }
            _ => {}
        }
        let sub_prefix = concat_prefix(prefix, ch.name());
        let mut dvmap = match dest.remove(&name) {
            Some(Val::Map(m)) => m,
            _ => Map::new(),
        };
        coalesce_globals(&mut dvmap, dest, &sub_prefix, warn);
        capstan_gotemplate::with_stack(|| coalesce(sub, &mut dvmap, &sub_prefix, merge, warn))?;
        dest.insert(name, Val::Map(dvmap));
    }
    Ok(())
}

/// Copies the globals of `src` into `dest["global"]`.
fn coalesce_globals(dest: &mut Map, src: &Map, prefix: &str, warn: &mut Warnings) {
    let mut dg = match dest.get("global") {
        None => Map::new(),
        Some(Val::Map(m)) => m.clone(),
        Some(_) => {
            warn.push(
                "warning: skipping globals because destination global is not a table.".into(),
            );
            return;
        }
    };
    let sg = match src.get("global") {
        None => Map::new(),
        Some(Val::Map(m)) => m.clone(),
        Some(_) => {
            warn.push("warning: skipping globals because source global is not a table.".into());
            return;
        }
    };
    for (key, val) in sg {
        if let Val::Map(vv) = &val {
            let mut vv = vv.clone();
            match dg.get_mut(&key) {
                None => {
                    dg.insert(key, Val::Map(vv));
                }
                Some(Val::Map(destvmap)) => {
                    let sub_prefix = concat_prefix(prefix, &key);
                    let mut dv = destvmap.clone();
                    coalesce_tables_full_key(&mut vv, &mut dv, &sub_prefix, true, warn);
                    dg.insert(key, Val::Map(vv));
                }
                Some(_) => {
                    warn.push(format!(
                        "Conflict: cannot merge map onto non-map for {key:?}. Skipping."
                    ));
                }
            }
        } else if dg.get(&key).is_some_and(Val::is_table) {
            warn.push(format!("key {key} is table. Skipping"));
        } else {
            dg.insert(key, val);
        }
    }
    dest.insert("global".into(), Val::Map(dg));
}

fn is_child_chart(ch: &Chart, key: &str) -> bool {
    ch.dependencies.iter().any(|d| d.name() == key)
}

fn clean_nil_values(m: &mut Map) {
    m.retain(|_, v| !v.is_null());
    for v in m.values_mut() {
        if let Val::Map(sub) = v {
            capstan_gotemplate::with_stack(|| clean_nil_values(sub));
        }
    }
}

/// `coalesceValues`: the chart's defaults under the values in `v`.
fn coalesce_chart_values(ch: &Chart, v: &mut Map, prefix: &str, merge: bool, warn: &mut Warnings) {
    let sub_prefix = concat_prefix(prefix, ch.name());
    for (key, val) in ch.values.clone() {
        if let Some(value) = v.get_mut(&key) {
            if value.is_null() && !merge {
                v.remove(&key);
            } else if let Val::Map(dest) = value {
                match val {
                    Val::Map(mut src) => {
                        let merge = merge || is_child_chart(ch, &key);
                        if !merge {
                            clean_nil_values(&mut src);
                        }
                        coalesce_tables_full_key(
                            dest,
                            &mut src,
                            &concat_prefix(&sub_prefix, &key),
                            merge,
                            warn,
                        );
                    }
                    Val::Null => {}
                    _ => warn.push(format!(
                        "warning: skipped value for {sub_prefix}.{key}: Not a table."
                    )),
                }
            }
        } else {
            let mut val = val;
            if !merge {
                if val.is_null() {
                    continue;
                }
                if let Val::Map(sub) = &mut val {
                    clean_nil_values(sub);
                }
            }
            v.insert(key, val);
        }
    }
}

/// `CoalesceTables(dst, src)`: dst wins.
pub fn coalesce_tables(dst: &mut Map, src: &mut Map, warn: &mut Warnings) {
    coalesce_tables_full_key(dst, src, "", false, warn)
}

/// `MergeTables(dst, src)`: dst wins, nulls kept.
pub fn merge_tables(dst: &mut Map, src: &mut Map, warn: &mut Warnings) {
    coalesce_tables_full_key(dst, src, "", true, warn)
}

fn coalesce_tables_full_key(
    dst: &mut Map,
    src: &mut Map,
    prefix: &str,
    merge: bool,
    warn: &mut Warnings,
) {
    let src_non_nil: std::collections::HashSet<String> = src
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for (key, val) in dst.iter() {
        if val.is_null() {
            src.insert(key.clone(), Val::Null);
        }
    }
    for (key, val) in src.iter_mut() {
        let fullkey = concat_prefix(prefix, key);
        let dst_nil = match dst.get(key) {
            None => {
                dst.insert(key.clone(), val.clone());
                continue;
            }
            Some(dv) => dv.is_null(),
        };
        if !merge && dst_nil && src_non_nil.contains(key) {
            dst.remove(key);
            continue;
        }
        let dv = dst.get_mut(key).expect("present");
        if let Val::Map(sv) = val {
            if let Val::Map(dm) = dv {
                capstan_gotemplate::with_stack(|| {
                    coalesce_tables_full_key(dm, sv, &fullkey, merge, warn)
                });
            } else {
                warn.push(format!(
                    "warning: cannot overwrite table with non table for {fullkey} ({})",
                    val.go_fmt()
                ));
            }
        } else if dv.is_table() && !val.is_null() {
            warn.push(format!(
                "warning: destination for {fullkey} is a table. Ignoring non-table value ({})",
                val.go_fmt()
            ));
        }
    }
}
