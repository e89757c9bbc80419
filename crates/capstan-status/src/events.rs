//! Kubernetes Events about Flux objects, aggregated like client-go's event correlator.

use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::conditions::truncate_bytes;
use crate::{now_rfc3339, ObjectKey, StatusError};

/// Longest event message sent (longer ones are cut on a character boundary).
pub const MAX_EVENT_MESSAGE_BYTES: usize = 1024;

/// Identical events within this window bump `count` on the existing Event object.
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Publishes core/v1 Events about objects (what `kubectl describe` and `flux events` show).
///
/// Messages are sent as given: callers must redact them (no secret values, no credentials in
/// URLs). An event identical (same object, type, reason, message and component) to one whose
/// `lastTimestamp` is within [`AGGREGATION_WINDOW`] increments that Event's `count` and
/// `lastTimestamp` instead of creating a new object. The previous event is looked up in the
/// cluster (a narrow list by field selector), so aggregation holds across recorder instances
/// and agent restarts; the recorder is cheap to create. Needs `create`, `list` and `patch` on
/// `events`.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    component: String,
    instance: String,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

fn events_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Event"), "events");
    Api::namespaced_with(client.clone(), namespace, &ar)
}

/// `<object name>.<hex nanoseconds>`, as client-go names events (at most 253 characters).
fn event_name(object: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix = format!(".{nanos:x}");
    let base = truncate_bytes(object, 253 - suffix.len());
    format!("{base}{suffix}")
}

/// Seconds since the epoch of an RFC 3339 time, if it parses.
fn epoch_seconds(t: &str) -> Option<i64> {
    t.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The newest event in `events` that `publish` would aggregate into: same involved object
/// (apiVersion, kind, name), type, reason, message and source component, last seen within
/// the aggregation window before `now`.
fn aggregation_target<'a>(
    events: &'a [DynamicObject],
    key: &ObjectKey,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
    now: &str,
) -> Option<&'a DynamicObject> {
    let now_s = epoch_seconds(now)?;
    let window = AGGREGATION_WINDOW.as_secs() as i64;
    events
        .iter()
        .filter(|e| {
            let d = &e.data;
            d["involvedObject"]["apiVersion"] == key.api_version.as_str()
                && d["involvedObject"]["kind"] == key.kind.as_str()
                && d["involvedObject"]["name"] == key.name.as_str()
                && d["type"] == event_type
                && d["reason"] == reason
                && d["message"] == message
                && d["source"]["component"] == component
        })
        .filter_map(|e| {
            let last = e.data["lastTimestamp"].as_str().and_then(epoch_seconds)?;
            (now_s - last < window && last <= now_s + window).then_some((last, e))
        })
        .max_by_key(|(last, _)| *last)
        .map(|(_, e)| e)
}

impl EventRecorder {
    /// A recorder that reports as `component` (`source.component`, `reportingComponent`).
    pub fn new(client: kube::Client, component: &str) -> EventRecorder {
        let instance = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| component.to_string());
        EventRecorder {
            client,
            component: component.to_string(),
            instance,
        }
    }

    async fn uid_of(&self, key: &ObjectKey) -> Option<(String, Option<String>)> {
        let ar = key.api_resource().ok()?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &ar);
        let meta = api.get_metadata_opt(&key.name).await.ok()??;
        Some((meta.metadata.uid?, meta.metadata.resource_version))
    }

    /// Publishes a `Normal` (or `Warning`) event with `reason` and `message` about `key`.
    /// The message must already be redacted; it is cut to 1024 bytes.
    pub async fn publish(
        &self,
        key: &ObjectKey,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), StatusError> {
        let message = truncate_bytes(message, MAX_EVENT_MESSAGE_BYTES);
        let event_type = if warning { "Warning" } else { "Normal" };
        let now = now_rfc3339();
        let err = |action: &'static str, source: kube::Error| StatusError::Kube {
            object: key.to_string(),
            action,
            source,
        };
        let api = events_api(&self.client, &key.namespace);

        let selector = format!(
            "involvedObject.kind={},involvedObject.name={},reason={},type={}",
            key.kind, key.name, reason, event_type
        );
        let existing = api
            .list(&ListParams::default().fields(&selector))
            .await
            .map_err(|e| err("listing events about", e))?;
        if let Some(prev) = aggregation_target(
            &existing.items,
            key,
            event_type,
            reason,
            &message,
            &self.component,
            &now,
        ) {
            let count = prev.data["count"].as_i64().unwrap_or(1) + 1;
            let mut patch = json!({ "count": count, "lastTimestamp": now });
            if let Some(rv) = &prev.metadata.resource_version {
                patch["metadata"] = json!({ "resourceVersion": rv });
            }
            let name = prev.metadata.name.clone().unwrap_or_default();
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Expired (event TTL), deleted or bumped concurrently: record a new one.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(err("updating an event about", e)),
            }
        }

        let mut involved = json!({
            "apiVersion": key.api_version,
            "kind": key.kind,
            "namespace": key.namespace,
            "name": key.name,
        });
        if let Some((uid, rv)) = self.uid_of(key).await {
            involved["uid"] = json!(uid);
            if let Some(rv) = rv {
                involved["resourceVersion"] = json!(rv);
            }
        }
        let event: Value = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": { "name": event_name(&key.name), "namespace": key.namespace },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": { "component": self.component },
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        let obj: DynamicObject =
            serde_json::from_value(event).map_err(|e| StatusError::Invalid {
                object: key.to_string(),
                message: format!("building event: {e}"),
            })?;
        api.create(&PostParams::default(), &obj)
            .await
            .map_err(|e| err("creating an event about", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_bounded_and_unique_per_call() {
        let long = "a".repeat(300);
        let n = event_name(&long);
        assert!(n.len() <= 253);
        assert!(event_name("web").starts_with("web."));
    }

    fn ev(name: &str, message: &str, last: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "ns"},
            "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization", "name": "apps", "namespace": "ns"},
            "type": "Normal", "reason": "ReconciliationSucceeded", "message": message,
            "source": {"component": "capstan"}, "count": 1,
            "firstTimestamp": last, "lastTimestamp": last
        }))
        .unwrap()
    }

    #[test]
    fn aggregation_picks_newest_identical_event_within_window() {
        let key = ObjectKey::kustomization("ns", "apps");
        let events = vec![
            ev("old", "m", "2026-01-01T00:00:00Z"),
            ev("recent", "m", "2026-01-01T00:08:00Z"),
            ev("other", "different", "2026-01-01T00:09:00Z"),
        ];
        let pick = |now: &str, msg: &str, component: &str| {
            aggregation_target(
                &events,
                &key,
                "Normal",
                "ReconciliationSucceeded",
                msg,
                component,
                now,
            )
            .and_then(|e| e.metadata.name.clone())
        };
        assert_eq!(
            pick("2026-01-01T00:09:00Z", "m", "capstan").as_deref(),
            Some("recent")
        );
        assert_eq!(
            pick("2026-01-01T00:14:00Z", "m", "capstan"),
            None,
            "outside the window"
        );
        assert_eq!(
            pick("2026-01-01T00:09:00Z", "m", "flux"),
            None,
            "other component"
        );
        assert_eq!(
            pick("2026-01-01T00:09:30Z", "different", "capstan").as_deref(),
            Some("other")
        );
    }
}
