//! Fleet discovery, clients and watching against real API servers (capstan-testbed).

use std::collections::BTreeMap;
use std::time::Duration;

use capstan_fleet::{
    client_for, client_for_with, discover, discover_lenient, kubeconfig_client, watch_every,
    ClusterSpec, FleetError, FleetEvent, KubeconfigPolicy, Origin,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, PostParams};

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn namespace(client: &kube::Client, prefix: &str) -> String {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("{prefix}-{}-{n}", std::process::id());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

fn map(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!kv.is_empty()).then(|| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

async fn put_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    type_: Option<&str>,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    data: &[(&str, &[u8])],
) {
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        },
        type_: type_.map(str::to_string),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    match api.get_opt(name).await.unwrap() {
        Some(old) => {
            let mut s = s;
            s.metadata.resource_version = old.metadata.resource_version;
            api.replace(name, &PostParams::default(), &s).await.unwrap();
        }
        None => {
            api.create(&PostParams::default(), &s).await.unwrap();
        }
    }
}

async fn namespaces(client: &kube::Client) -> Vec<String> {
    Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_three_shapes_and_reaches_cluster_b() {
    let Some(a) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let Some(b) = capstan_testbed::TestCluster::start("fleet-b") else {
        return;
    };
    let ca = a.client().await;
    let cb = b.client().await;
    // The test bed's kubeconfig refers to its CA file; kubeconfigs in Secrets must be
    // self-contained, so embed it (as Cluster API and Crossplane do).
    let on_disk = std::fs::read(b.kubeconfig_path()).unwrap();
    let kubeconfig_b = b.self_contained_kubeconfig().into_bytes();
    let ns = namespace(&ca, "fleet-shapes").await;
    let marker = namespace(&cb, "only-on-b").await;

    put_secret(
        &ca,
        &ns,
        "by-label",
        None,
        &[("capstan.io/cluster", "labelled")],
        &[],
        &[("value.yaml", &kubeconfig_b)],
    )
    .await;
    put_secret(
        &ca,
        &ns,
        "annotated",
        None,
        &[("capstan.io/cluster", "annotated")],
        &[("capstan.io/kubeconfig-key", "admin.conf")],
        &[("value", b"not this one"), ("admin.conf", &kubeconfig_b)],
    )
    .await;
    put_secret(
        &ca,
        &ns,
        "workload-kubeconfig",
        Some("cluster.x-k8s.io/secret"),
        &[("cluster.x-k8s.io/cluster-name", "workload")],
        &[],
        &[("value", &kubeconfig_b)],
    )
    .await;
    // Other Cluster API secrets of that cluster are not clusters.
    put_secret(
        &ca,
        &ns,
        "workload-ca",
        Some("cluster.x-k8s.io/secret"),
        &[("cluster.x-k8s.io/cluster-name", "workload")],
        &[],
        &[("tls.crt", b"x")],
    )
    .await;
    put_secret(
        &ca,
        &ns,
        "xp-conn",
        Some("connection.crossplane.io/v1alpha1"),
        &[("capstan.io/cluster", "crossplane")],
        &[],
        &[("kubeconfig", &kubeconfig_b), ("endpoint", b"x")],
    )
    .await;
    // An unlabelled Crossplane connection secret and an unrelated Secret are ignored.
    put_secret(
        &ca,
        &ns,
        "xp-other",
        Some("connection.crossplane.io/v1alpha1"),
        &[],
        &[],
        &[("kubeconfig", &kubeconfig_b)],
    )
    .await;
    put_secret(
        &ca,
        &ns,
        "noise",
        None,
        &[],
        &[],
        &[("value", &kubeconfig_b)],
    )
    .await;

    let found = discover(&ca, Some(&ns)).await.unwrap();
    let summary: Vec<(&str, Origin, String)> = found
        .iter()
        .map(|c| {
            let (sns, sname) = c.secret.clone().unwrap();
            assert_eq!(sns, ns);
            (c.name.as_str(), c.origin, sname)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("annotated", Origin::Label, "annotated".to_string()),
            ("crossplane", Origin::Crossplane, "xp-conn".to_string()),
            ("labelled", Origin::Label, "by-label".to_string()),
            (
                "workload",
                Origin::ClusterApi,
                "workload-kubeconfig".to_string()
            ),
        ]
    );
    // All namespaces: ours are among them (lenient: other tests leave broken Secrets around).
    let all = discover_lenient(&ca, None).await.unwrap();
    assert!(found.iter().all(|c| all.clusters.contains(c)));

    for spec in &found {
        assert_eq!(spec.kubeconfig(), &kubeconfig_b[..]);
        let client = client_for(spec).await.unwrap();
        let names = namespaces(&client).await;
        assert!(
            names.contains(&marker),
            "{} reaches cluster B",
            spec.describe()
        );
    }
    assert!(!namespaces(&ca).await.contains(&marker));

    // Flux's spec.kubeConfig.secretRef: default keys value / value.yaml, or the named key.
    let via_flux = kubeconfig_client(&ca, &ns, "by-label", None).await.unwrap();
    assert!(namespaces(&via_flux).await.contains(&marker));
    let via_key = kubeconfig_client(&ca, &ns, "xp-conn", Some("kubeconfig"))
        .await
        .unwrap();
    assert!(namespaces(&via_key).await.contains(&marker));
    let err = kubeconfig_client(&ca, &ns, "xp-conn", None)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("value, value.yaml") && err.contains(&format!("{ns}/xp-conn")),
        "{err}"
    );
    // The file-referencing original is refused unless the policy allows files.
    let file_spec = ClusterSpec::with_kubeconfig("b", Origin::Label, None, on_disk);
    let err = client_for(&file_spec)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate-authority file"), "{err}");
    let lax = KubeconfigPolicy {
        allow_files: true,
        ..KubeconfigPolicy::default()
    };
    let direct = client_for_with(&file_spec, &lax).await.unwrap();
    assert!(namespaces(&direct).await.contains(&marker));

    let err = kubeconfig_client(&ca, &ns, "absent", None)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, FleetError::SecretNotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_malformed_kubeconfigs() {
    let Some(a) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let ca = a.client().await;
    let ns = namespace(&ca, "fleet-bad").await;
    let garbage: &[u8] =
        b"users:\n- name: u\n  user:\n    token: hunter2-secret-token\n  - ]] not yaml";
    put_secret(
        &ca,
        &ns,
        "broken",
        None,
        &[("capstan.io/cluster", "broken")],
        &[],
        &[("value", garbage)],
    )
    .await;

    let found = discover(&ca, Some(&ns)).await.unwrap();
    assert_eq!(found.len(), 1);
    let err = client_for(&found[0])
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken") && err.contains(&ns), "{err}");
    assert!(
        !err.contains("hunter2"),
        "error leaks the kubeconfig: {err}"
    );
    let err = kubeconfig_client(&ca, &ns, "broken", None)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("hunter2"),
        "error leaks the kubeconfig: {err}"
    );
    assert!(!format!("{found:?}").contains("hunter2"));

    put_secret(
        &ca,
        &ns,
        "broken-too",
        None,
        &[("capstan.io/cluster", "broken")],
        &[],
        &[("value", garbage)],
    )
    .await;
    let err = discover(&ca, Some(&ns))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{ns}/broken")) && err.contains(&format!("{ns}/broken-too")),
        "{err}"
    );
    let lenient = discover_lenient(&ca, Some(&ns)).await.unwrap();
    assert_eq!(lenient.clusters.len(), 1);
    assert_eq!(lenient.problems.len(), 1);

    put_secret(
        &ca,
        &ns,
        "keyless",
        None,
        &[("capstan.io/cluster", "keyless")],
        &[],
        &[("token", b"hunter2")],
    )
    .await;
    let lenient = discover_lenient(&ca, Some(&ns)).await.unwrap();
    assert_eq!(lenient.problems.len(), 2);
    let msgs: Vec<String> = lenient.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("keyless") && m.contains("token")),
        "{msgs:?}"
    );
    assert!(msgs.iter().all(|m| !m.contains("hunter2")), "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_added_changed_removed() {
    let Some(a) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let ca = a.client().await;
    let ns = namespace(&ca, "fleet-watch").await;
    put_secret(
        &ca,
        &ns,
        "one",
        None,
        &[("capstan.io/cluster", "one")],
        &[],
        &[("value", b"kc-1")],
    )
    .await;
    put_secret(
        &ca,
        &ns,
        "two",
        None,
        &[("capstan.io/cluster", "two")],
        &[],
        &[("value", b"kc-2")],
    )
    .await;

    let mut events = Box::pin(watch_every(
        ca.clone(),
        Some(ns.clone()),
        Duration::from_millis(300),
    ));
    let names = |e: &FleetEvent| match e {
        FleetEvent::Added(c) => format!("added {}", c.name),
        FleetEvent::Changed(c) => format!("changed {}", c.name),
        FleetEvent::Removed(n) => format!("removed {n}"),
    };
    assert_eq!(names(&next(&mut events).await), "added one");
    assert_eq!(names(&next(&mut events).await), "added two");

    put_secret(
        &ca,
        &ns,
        "two",
        None,
        &[("capstan.io/cluster", "two")],
        &[],
        &[("value", b"kc-2b")],
    )
    .await;
    let ev = next(&mut events).await;
    assert_eq!(names(&ev), "changed two");
    let FleetEvent::Changed(spec) = ev else {
        unreachable!()
    };
    assert_eq!(spec.kubeconfig(), b"kc-2b");

    Api::<Secret>::namespaced(ca.clone(), &ns)
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(names(&next(&mut events).await), "removed one");
}

async fn next<S: futures::Stream<Item = FleetEvent> + Unpin>(events: &mut S) -> FleetEvent {
    tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("a fleet event")
        .expect("the stream does not end")
}
