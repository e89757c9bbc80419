//! Dependencies: enabled processing (conditions, tags, aliases) and import-values, as
//! Helm's pkg/chart/v2/util/dependencies.go does them.

use crate::chart::{Chart, Dependency};
use crate::coalesce::{coalesce_tables, coalesce_values, merge_tables, merge_values, Warnings};
use crate::error::HelmError;
use crate::semver::is_compatible_range;
use crate::value::{path_value, table, Map, Val};
use std::collections::HashSet;

/// `action.CheckDependencies`: every Chart.yaml dependency must be in charts/.
pub fn check_dependencies(c: &Chart) -> Result<(), HelmError> {
    let missing: Vec<&str> = c
        .metadata
        .dependencies
        .iter()
        .filter(|r| !c.dependencies.iter().any(|d| d.name() == r.name))
        .map(|r| r.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HelmError::Chart(format!(
            "chart dependencies are missing; run dependency update/build first: found in Chart.yaml, but missing in charts/ directory: {}",
            missing.join(", ")
        )))
    }
}

/// `ProcessDependencies`: drops disabled subcharts, applies aliases, imports values.
pub fn process_dependencies(c: &mut Chart, v: &Map, warn: &mut Warnings) -> Result<(), HelmError> {
    process_dependency_enabled(c, v, "", warn)
        .and_then(|_| process_dependency_import_values(c, true, warn))
        .map_err(|e| {
            HelmError::Values(format!(
                "chart dependencies processing failed: {}",
                e.inner()
            ))
        })
}

fn get_alias_dependency(charts: &[Chart], dep: &Dependency) -> Option<Chart> {
    for c in charts {
        if c.name() != dep.name {
            continue;
        }
        if !is_compatible_range(&dep.version, &c.metadata.version) {
            continue;
        }
        let mut out = c.clone();
        if !dep.alias.is_empty() {
            out.metadata.name = dep.alias.clone();
        }
        return Some(out);
    }
    None
}

fn process_dependency_enabled(
    c: &mut Chart,
    v: &Map,
    path: &str,
    warn: &mut Warnings,
) -> Result<(), HelmError> {
    if c.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let existing = std::mem::take(&mut c.dependencies);
    let mut chart_deps: Vec<Chart> = Vec::new();
    for e in &existing {
        let listed = c.metadata.dependencies.iter().any(|req| {
            e.name() == req.name && is_compatible_range(&req.version, &e.metadata.version)
        });
        if !listed {
            chart_deps.push(e.clone());
        }
    }
    for req in c.metadata.dependencies.iter_mut() {
        if let Some(d) = get_alias_dependency(&existing, req) {
            chart_deps.push(d);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    c.dependencies = chart_deps;
    for lr in c.metadata.dependencies.iter_mut() {
        lr.enabled = true;
    }
    let cvals = coalesce_values(c, v, warn).map_err(HelmError::Values)?;
    process_dependency_tags(&mut c.metadata.dependencies, &cvals, warn);
    process_dependency_conditions(&mut c.metadata.dependencies, &cvals, path, warn);
    let rm: HashSet<String> = c
        .metadata
        .dependencies
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    c.dependencies.retain(|n| !rm.contains(n.name()));
    c.metadata.dependencies.retain(|n| !rm.contains(&n.name));
    for t in c.dependencies.iter_mut() {
        let subpath = format!("{path}{}.", t.name());
        capstan_gotemplate::with_stack(|| process_dependency_enabled(t, &cvals, &subpath, warn))?;
    }
    Ok(())
}

fn process_dependency_tags(reqs: &mut [Dependency], cvals: &Map, warn: &mut Warnings) {
    let Some(vt) = table(cvals, "tags") else {
        return;
    };
    for r in reqs.iter_mut() {
        let (mut has_true, mut has_false) = (false, false);
        for k in &r.tags {
            if let Some(b) = vt.get(k) {
                match b {
                    Val::Bool(true) => has_true = true,
                    Val::Bool(false) => has_false = true,
                    _ => warn.push(format!("returned non-bool value tag={k} chart={}", r.name)),
                }
            }
        }
        if !has_true && has_false {
            r.enabled = false;
        } else if has_true || !has_false {
            r.enabled = true;
        }
    }
}

fn process_dependency_conditions(
    reqs: &mut [Dependency],
    cvals: &Map,
    cpath: &str,
    warn: &mut Warnings,
) {
    for r in reqs.iter_mut() {
        let cond = r.condition.trim().to_string();
        for c in cond.split(',') {
            if c.is_empty() {
                continue;
            }
            if let Some(vv) = path_value(cvals, &format!("{cpath}{c}")) {
                if let Val::Bool(b) = vv {
                    r.enabled = *b;
                    break;
                }
                warn.push(format!("returned non-bool value path={c} chart={}", r.name));
            }
        }
    }
}

fn path_to_map(path: &str, data: Map) -> Map {
    if path == "." {
        return data;
    }
    let mut cur = data;
    for p in path.split('.').rev() {
        let mut m = Map::new();
        m.insert(p.to_string(), Val::Map(cur));
        cur = m;
    }
    cur
}

fn process_import_values(c: &mut Chart, merge: bool, warn: &mut Warnings) -> Result<(), HelmError> {
    if c.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let empty = Map::new();
    let mut cvals = if merge {
        merge_values(c, &empty, warn)
    } else {
        coalesce_values(c, &empty, warn)
    }
    .map_err(HelmError::Values)?;
    let mut b = Map::new();
    for r in c.metadata.dependencies.iter_mut() {
        let mut outiv = Vec::new();
        for riv in &r.import_values {
            match riv {
                Val::Map(iv) => {
                    let child = iv
                        .get("child")
                        .map(|v| v.go_fmt())
                        .unwrap_or_else(|| "<nil>".into());
                    let parent = iv
                        .get("parent")
                        .map(|v| v.go_fmt())
                        .unwrap_or_else(|| "<nil>".into());
                    let mut m = Map::new();
                    m.insert("child".into(), Val::Str(child.clone()));
                    m.insert("parent".into(), Val::Str(parent.clone()));
                    outiv.push(Val::Map(m));
                    let Some(vv) = table(&cvals, &format!("{}.{}", r.name, child)) else {
                        warn.push(format!("ImportValues missing table from chart {}", r.name));
                        continue;
                    };
                    let mut pm = path_to_map(&parent, vv.clone());
                    if merge {
                        merge_tables(&mut b, &mut pm, warn);
                    } else {
                        coalesce_tables(&mut b, &mut pm, warn);
                    }
                }
                Val::Str(iv) => {
                    let child = format!("exports.{iv}");
                    let mut m = Map::new();
                    m.insert("child".into(), Val::Str(child.clone()));
                    m.insert("parent".into(), Val::Str(".".into()));
                    outiv.push(Val::Map(m));
                    let Some(vm) = table(&cvals, &format!("{}.{}", r.name, child)) else {
                        warn.push("ImportValues missing table".to_string());
                        continue;
                    };
                    let mut vm = vm.clone();
                    if merge {
                        merge_tables(&mut b, &mut vm, warn);
                    } else {
                        coalesce_tables(&mut b, &mut vm, warn);
                    }
                }
                _ => {}
            }
        }
        r.import_values = outiv;
    }
    if merge {
        merge_tables(&mut cvals, &mut b, warn);
    } else {
        trim_nil_values(&mut cvals);
        coalesce_tables(&mut cvals, &mut b, warn);
    }
    c.values = cvals;
    Ok(())
}

fn trim_nil_values(m: &mut Map) {
    m.retain(|_, v| !v.is_null());
    for v in m.values_mut() {
        if let Val::Map(sub) = v {
            capstan_gotemplate::with_stack(|| trim_nil_values(sub));
        }
    }
}

fn process_dependency_import_values(
    c: &mut Chart,
    merge: bool,
    warn: &mut Warnings,
) -> Result<(), HelmError> {
    for d in c.dependencies.iter_mut() {
        capstan_gotemplate::with_stack(|| process_dependency_import_values(d, merge, warn))?;
    }
    process_import_values(c, merge, warn)
}
