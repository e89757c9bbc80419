//! Kubernetes Events about Flux objects, aggregated like client-go's event correlator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::conditions::truncate_bytes;
use crate::{now_rfc3339, ObjectKey, StatusError};

/// Longest event message sent (longer ones are cut on a character boundary).
pub const MAX_EVENT_MESSAGE_BYTES: usize = 1024;

/// Identical events within this window bump `count` on the existing Event object.
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    object: String,
    warning: bool,
    reason: String,
    message: String,
}

#[derive(Debug, Clone)]
struct Recorded {
    namespace: String,
    name: String,
    count: i64,
    last_seen: Instant,
}

/// Publishes core/v1 Events about objects (what `kubectl describe` and `flux events` show).
///
/// Messages are sent as given: callers must redact them (no secret values, no credentials in
/// URLs). An event identical to one published within [`AGGREGATION_WINDOW`] increments that
/// Event's `count` and `lastTimestamp` instead of creating a new object.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    component: String,
    instance: String,
    recent: Arc<Mutex<HashMap<EventKey, Recorded>>>,
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
            recent: Arc::new(Mutex::new(HashMap::new())),
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
        let ekey = EventKey {
            object: key.to_string(),
            warning,
            reason: reason.to_string(),
            message: message.clone(),
        };
        let now = now_rfc3339();
        let previous = {
            let mut recent = self.recent.lock().expect("event cache lock");
            recent.retain(|_, r| r.last_seen.elapsed() < AGGREGATION_WINDOW);
            recent.get(&ekey).cloned()
        };
        let err = |action: &'static str, source: kube::Error| StatusError::Kube {
            object: key.to_string(),
            action,
            source,
        };

        if let Some(prev) = previous {
            let api = events_api(&self.client, &prev.namespace);
            let count = prev.count + 1;
            let patch = json!({ "count": count, "lastTimestamp": now });
            match api
                .patch(&prev.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(ekey, prev.namespace, prev.name, count);
                    return Ok(());
                }
                // Expired (event TTL) or deleted: create a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
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
        let name = event_name(&key.name);
        let event: Value = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": { "name": name, "namespace": key.namespace },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": if warning { "Warning" } else { "Normal" },
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
        events_api(&self.client, &key.namespace)
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| err("creating an event about", e))?;
        self.remember(ekey, key.namespace.clone(), name, 1);
        Ok(())
    }

    fn remember(&self, key: EventKey, namespace: String, name: String, count: i64) {
        self.recent.lock().expect("event cache lock").insert(
            key,
            Recorded {
                namespace,
                name,
                count,
                last_seen: Instant::now(),
            },
        );
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
}
