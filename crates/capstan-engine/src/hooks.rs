//! Helm hooks as apply phases (pure part): which hooks run in a phase, in which order,
//! and what to delete when. The live part is [`crate::live::apply_rendered`].
//!
//! Helm's rules: a hook runs in the events its `helm.sh/hook` annotation lists; hooks of
//! one event run one after the other, by `helm.sh/hook-weight` (an integer, default 0)
//! then by name, each waited for (Jobs until complete, Pods until they succeed) before the
//! next; `helm.sh/hook-delete-policy` lists `before-hook-creation` (the default when
//! none is given: the previous object is deleted before the hook is created again),
//! `hook-succeeded` and `hook-failed` (delete the hook after it succeeded / failed).

use serde_json::Value;

/// When in the release's life a set of hooks runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
}

impl Phase {
    /// The `helm.sh/hook` event name.
    pub fn event(self) -> &'static str {
        match self {
            Phase::PreInstall => "pre-install",
            Phase::PostInstall => "post-install",
            Phase::PreUpgrade => "pre-upgrade",
            Phase::PostUpgrade => "post-upgrade",
        }
    }

    /// The phases around an install (no inventory yet) or an upgrade.
    pub fn around(upgrade: bool) -> (Phase, Phase) {
        if upgrade {
            (Phase::PreUpgrade, Phase::PostUpgrade)
        } else {
            (Phase::PreInstall, Phase::PostInstall)
        }
    }
}

/// One hook object and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub object: Value,
    pub events: Vec<String>,
    pub weight: i64,
    pub delete_before_creation: bool,
    pub delete_on_success: bool,
    pub delete_on_failure: bool,
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect()
}

impl Hook {
    /// The hook settings of an object, `None` when it is not a hook.
    pub fn parse(obj: &Value) -> Option<Hook> {
        let events = list(annotation(obj, "helm.sh/hook")?);
        if events.is_empty() {
            return None;
        }
        let weight = annotation(obj, "helm.sh/hook-weight")
            .and_then(|w| w.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let mut policies = annotation(obj, "helm.sh/hook-delete-policy")
            .map(list)
            .unwrap_or_default();
        if policies.is_empty() {
            policies.push("before-hook-creation".into());
        }
        let has = |p: &str| policies.iter().any(|x| x == p);
        Some(Hook {
            object: obj.clone(),
            events,
            weight,
            delete_before_creation: has("before-hook-creation"),
            delete_on_success: has("hook-succeeded"),
            delete_on_failure: has("hook-failed"),
        })
    }

    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Helm waits for Jobs (complete) and Pods (succeeded); other hooks are done once
    /// created.
    pub fn waits(&self) -> bool {
        let api = self
            .object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        matches!((api, self.kind()), ("batch/v1", "Job") | ("v1", "Pod"))
    }
}

/// The hooks of `phase`, in the order they run: by weight, then by name (stable, so
/// otherwise in Helm's install order, which the renderer gives).
pub fn hooks_for(hooks: &[Value], phase: Phase) -> Vec<Hook> {
    let mut out: Vec<Hook> = hooks
        .iter()
        .filter_map(Hook::parse)
        .filter(|h| h.events.iter().any(|e| e == phase.event()))
        .collect();
    out.sort_by(|a, b| a.weight.cmp(&b.weight).then_with(|| a.name().cmp(b.name())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(name: &str, events: &str, weight: Option<&str>, policy: Option<&str>) -> Value {
        let mut ann = serde_json::Map::new();
        ann.insert("helm.sh/hook".into(), json!(events));
        if let Some(w) = weight {
            ann.insert("helm.sh/hook-weight".into(), json!(w));
        }
        if let Some(p) = policy {
            ann.insert("helm.sh/hook-delete-policy".into(), json!(p));
        }
        json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":name,"annotations":ann}})
    }

    #[test]
    fn phases_weights_and_policies() {
        let hooks = vec![
            hook("b", "pre-install, pre-upgrade", Some("5"), None),
            hook("a", "pre-install", Some("5"), Some("hook-succeeded")),
            hook(
                "first",
                "pre-install",
                Some("-3"),
                Some("hook-failed,before-hook-creation"),
            ),
            hook("post", "post-install,post-upgrade", None, None),
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"not-a-hook"}}),
        ];
        let pre: Vec<String> = hooks_for(&hooks, Phase::PreInstall)
            .iter()
            .map(|h| h.name().to_string())
            .collect();
        assert_eq!(pre, ["first", "a", "b"]);
        let up: Vec<String> = hooks_for(&hooks, Phase::PreUpgrade)
            .iter()
            .map(|h| h.name().to_string())
            .collect();
        assert_eq!(up, ["b"]);
        assert_eq!(hooks_for(&hooks, Phase::PostUpgrade).len(), 1);

        let b = Hook::parse(&hooks[0]).unwrap();
        assert!(b.delete_before_creation && !b.delete_on_success && !b.delete_on_failure);
        let a = Hook::parse(&hooks[1]).unwrap();
        assert!(!a.delete_before_creation && a.delete_on_success);
        let f = Hook::parse(&hooks[2]).unwrap();
        assert!(f.delete_before_creation && f.delete_on_failure && f.weight == -3);
        assert!(f.waits());
        assert!(Hook::parse(&hooks[4]).is_none());
        assert_eq!(Phase::around(true), (Phase::PreUpgrade, Phase::PostUpgrade));
        assert_eq!(Phase::around(false).0.event(), "pre-install");
    }
}
