//! The three endpoints served on loopback.

use std::time::Duration;

use capstan_metrics::{router, Metrics, Probes, OPENMETRICS_CONTENT_TYPE};

#[tokio::test]
async fn metrics_healthz_readyz_on_loopback() {
    let metrics = Metrics::new();
    let probes = Probes::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(metrics.clone(), probes.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    metrics.observe_reconcile(
        "Kustomization",
        "flux-system",
        "apps",
        "local",
        Duration::from_millis(12),
        true,
    );
    let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        OPENMETRICS_CONTENT_TYPE
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("capstan_unit_ready{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",cluster=\"local\"} 1"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"));

    let status = |path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 503);
    probes.set_ready(true);
    assert_eq!(status("/readyz").await, 200);
    probes.set_live(false);
    assert_eq!(status("/healthz").await, 503);
    assert_eq!(status("/nope").await, 404);
}
