//! The webhook router served on loopback, driven by an HTTP client.

use std::sync::{Arc, Mutex};

use capstan_receiver::{router, HookSink, ReceiverSpec, ResourceRef};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;

struct Sink {
    receivers: Vec<ReceiverSpec>,
    triggered: Mutex<Vec<(String, Vec<ResourceRef>)>>,
}

impl HookSink for Sink {
    fn receivers(&self) -> Vec<ReceiverSpec> {
        self.receivers.clone()
    }
    fn trigger(&self, receiver: &ReceiverSpec, resources: &[ResourceRef]) {
        self.triggered
            .lock()
            .unwrap()
            .push((receiver.name.clone(), resources.to_vec()));
    }
}

fn spec(name: &str, kind: &str, suspend: bool, token: &[u8]) -> ReceiverSpec {
    let obj = json!({
        "apiVersion": "notification.toolkit.fluxcd.io/v1",
        "kind": "Receiver",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "type": kind,
            "events": ["push"],
            "suspend": suspend,
            "secretRef": {"name": "webhook-token"},
            "resources": [{"kind": "GitRepository", "name": "flux-system"}]
        }
    });
    ReceiverSpec::from_object(&obj, token).unwrap()
}

fn sign(token: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(token).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn github_hooks_over_http() {
    let token = b"0123456789abcdef-token";
    let github = spec("github-receiver", "github", false, token);
    let suspended = spec("suspended", "github", true, token);
    let sink = Arc::new(Sink {
        receivers: vec![github.clone(), suspended.clone()],
        triggered: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = |path: &str| format!("http://{addr}{path}");
    let client = reqwest::Client::new();
    let body = br#"{"ref":"refs/heads/main","after":"abc"}"#.to_vec();

    let post = |path: String, event: &'static str, sig: String| {
        client
            .post(url(&path))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-hub-signature-256", sig)
            .body(body.clone())
            .send()
    };

    // A signed push triggers the receiver's resources.
    let resp = post(github.webhook_path(), "push", sign(token, &body))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    {
        let triggered = sink.triggered.lock().unwrap();
        assert_eq!(triggered.len(), 1);
        assert_eq!(triggered[0].0, "github-receiver");
        assert_eq!(triggered[0].1, github.resources);
    }

    // Wrong signature: 401, nothing triggered, token not echoed.
    let resp = post(github.webhook_path(), "push", sign(b"other", &body))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("0123456789abcdef-token"), "{text}");

    // Ping and filtered events: 200, nothing triggered.
    assert_eq!(
        post(github.webhook_path(), "ping", sign(token, &body))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(github.webhook_path(), "issues", sign(token, &body))
            .await
            .unwrap()
            .status(),
        200
    );

    // Unknown path: 404; suspended receiver: 503.
    let unknown = format!("/hook/{}", "0".repeat(64));
    assert_eq!(
        post(unknown, "push", sign(token, &body))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        post(suspended.webhook_path(), "push", sign(token, &body))
            .await
            .unwrap()
            .status(),
        503
    );

    // Only POST is served.
    let resp = client
        .get(url(&github.webhook_path()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);

    assert_eq!(sink.triggered.lock().unwrap().len(), 1);
}
