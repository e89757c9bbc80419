//! Leader election against a real API server (capstan-testbed).

use std::time::Duration;

use capstan_lease::{LeaderElector, LeaseConfig};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

fn cfg(name: &str, identity: &str, lease: u64, renew_ms: u64, retry_ms: u64) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(lease),
        renew_deadline: Duration::from_millis(renew_ms),
        retry_period: Duration::from_millis(retry_ms),
        ..LeaseConfig::new("default", name, identity)
    }
}

async fn lease(client: &kube::Client, name: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_leads_and_release_hands_over() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    // A long lease: a quick hand-over can only come from the release, not from expiry.
    let a = LeaderElector::new(client.clone(), cfg("handover", "a", 60, 40_000, 300));
    let b = LeaderElector::new(client.clone(), cfg("handover", "b", 60, 40_000, 300));
    a.acquire().await.unwrap();
    let a = a.run();
    assert!(a.is_leader());

    // B keeps trying while A renews: it must not get the Lease.
    let b_wait = tokio::time::timeout(Duration::from_secs(3), b.acquire()).await;
    assert!(b_wait.is_err(), "b acquired a Lease held by a");
    assert!(!b.is_leader());
    assert!(a.is_leader());
    let l = lease(&client, "handover").await;
    let spec = l.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(60));
    assert_eq!(spec.lease_transitions, Some(0));

    a.release().await;
    let l = lease(&client, "handover").await.spec.unwrap();
    assert_eq!(l.holder_identity, None);
    assert_eq!(l.lease_duration_seconds, Some(1));

    // Well below the 60 s lease duration.
    tokio::time::timeout(Duration::from_secs(30), b.acquire())
        .await
        .expect("b takes over after release, without waiting for expiry")
        .unwrap();
    let b = b.run();
    assert!(b.is_leader());
    let spec = lease(&client, "handover").await.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_leader_is_taken_over_after_expiry() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let a = LeaderElector::new(client.clone(), cfg("expiry", "a", 2, 1500, 300));
    a.acquire().await.unwrap();
    let a = a.run();
    assert!(a.is_leader());
    // Several renewals happen while a holds the Lease.
    let mut renewals = a.renewals();
    tokio::time::timeout(Duration::from_secs(30), renewals.wait_for(|n| *n >= 3))
        .await
        .expect("a renews")
        .unwrap();
    let before = lease(&client, "expiry").await.spec.unwrap();
    assert_eq!(before.holder_identity.as_deref(), Some("a"));
    drop(a); // stops renewing without releasing

    let b = LeaderElector::new(client.clone(), cfg("expiry", "b", 2, 1500, 300));
    tokio::time::timeout(Duration::from_secs(60), b.acquire())
        .await
        .expect("b takes the expired Lease")
        .unwrap();
    let after = lease(&client, "expiry").await.spec.unwrap();
    assert_eq!(after.holder_identity.as_deref(), Some("b"));
    assert_eq!(after.lease_transitions, Some(1));
    assert!(after.acquire_time > before.acquire_time);
    let b = b.run();
    assert!(b.is_leader());
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_resolves_when_another_takes_the_lease() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let a = LeaderElector::new(client.clone(), cfg("stolen", "a", 30, 20_000, 300));
    let a = a.run(); // run without acquire: acquires in the background
    tokio::time::timeout(Duration::from_secs(30), async {
        while !a.is_leader() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("run acquires the free Lease");
    let lost = a.lost();

    // Another writer takes the Lease behind a's back.
    let api = Api::<Lease>::namespaced(client.clone(), "default");
    let mut l = api.get("stolen").await.unwrap();
    let spec = l.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    api.replace("stolen", &PostParams::default(), &l)
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(30), lost)
        .await
        .expect("lost() resolves");
    assert!(!a.is_leader());
    // Releasing after the loss leaves the intruder's Lease alone.
    a.release().await;
    let spec = lease(&client, "stolen").await.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("intruder"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_namespace_is_a_clear_error() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let c = LeaseConfig {
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new("no-such-ns", "x", "a")
    };
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        LeaderElector::new(client, c).acquire(),
    )
    .await
    .expect("permanent errors are returned")
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no-such-ns/x"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_keeps_a_short_lease() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let client = cluster.client().await;
    let a = LeaderElector::new(client.clone(), cfg("renewed", "a", 3, 2500, 300));
    a.acquire().await.unwrap();
    let first = lease(&client, "renewed").await.spec.unwrap();
    let a = a.run();
    // Well past the 3 s lease duration (renewals every 300 ms): only renewals keep it.
    let mut renewals = a.renewals();
    tokio::time::timeout(Duration::from_secs(60), renewals.wait_for(|n| *n >= 16))
        .await
        .expect("a renews")
        .unwrap();
    assert!(a.is_leader());
    let later = lease(&client, "renewed").await.spec.unwrap();
    assert_eq!(later.holder_identity.as_deref(), Some("a"));
    assert!(later.renew_time > first.renew_time, "renewTime advances");
    assert_eq!(later.acquire_time, first.acquire_time);
    assert_eq!(later.lease_transitions, Some(0));
    let b = LeaderElector::new(client.clone(), cfg("renewed", "b", 3, 2500, 300));
    let tried = tokio::time::timeout(Duration::from_secs(3), b.acquire()).await;
    assert!(tried.is_err(), "b took a Lease that a keeps renewing");
    assert!(a.is_leader());
    a.release().await;
}
