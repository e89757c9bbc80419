//! Strategic merge patches on built-in kinds with lists, compared byte for byte with
//! `kubectl kustomize` (kustomize v5.5). The tree is generated in a temp dir: one
//! kustomization with one resource file and one patch file per case, so kubectl runs once.
//! Skipped (with a message) when kubectl is not installed.

use std::path::Path;
use std::process::Command;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};

fn kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// (name, resources, patch): each case's objects are named after the case.
const CASES: &[(&str, &str, &str)] = &[
    (
        "hpa-v2-metrics",
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: hpa-v2
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  - type: Pods
    pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: "10"}}
"#,
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: hpa-v2
  finalizers: [x]
spec:
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 90}}
  - type: Resource
    resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}
"#,
    ),
    (
        "hpa-v2beta2-metrics",
        r#"apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata:
  name: hpa-v2beta2
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#,
        r#"apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata:
  name: hpa-v2beta2
spec:
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}
"#,
    ),
    (
        "networkpolicy",
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: b}}
    ports:
    - {protocol: TCP, port: 80}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8}
"#,
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: x}}
  egress:
  - ports:
    - {protocol: UDP, port: 53}
"#,
    ),
    (
        "rbac",
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: role
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: crole
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {a: b}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: role}
subjects:
- {kind: ServiceAccount, name: a, namespace: x}
- {kind: User, name: bob}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: crb
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: crole}
subjects:
- {kind: Group, name: devs}
"#,
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: role
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: crole
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {c: d}
rules:
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb
subjects:
- {kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: crb
subjects:
- {kind: Group, name: ops}
"#,
    ),
    (
        "service-ports",
        r#"apiVersion: v1
kind: Service
metadata:
  name: svc
spec:
  selector: {app: a}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, protocol: TCP, targetPort: 8443}
  - {name: dns, port: 53, protocol: UDP}
"#,
        r#"apiVersion: v1
kind: Service
metadata:
  name: svc
spec:
  ports:
  - {port: 80, targetPort: 9090}
  - {port: 53, protocol: TCP, name: dns-tcp}
  - {port: 8000, name: extra}
"#,
    ),
    (
        "pod",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: pod
spec:
  imagePullSecrets:
  - name: reg1
  tolerations:
  - {key: a, operator: Exists}
  volumes:
  - name: data
    emptyDir: {}
  - name: cfg
    configMap: {name: cfg}
  containers:
  - name: app
    image: app:1
    command: [run]
    args: [--a, --b]
    env:
    - {name: A, value: "1"}
    - {name: B, value: "2"}
    ports:
    - {containerPort: 80, name: http}
    - {containerPort: 9090, protocol: TCP, name: metrics}
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: cfg, mountPath: /etc/cfg, readOnly: true}
  - name: sidecar
    image: side:1
"#,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: pod
spec:
  imagePullSecrets:
  - name: reg2
  tolerations:
  - {key: b, operator: Equal, value: x, effect: NoSchedule}
  volumes:
  - name: data
    $patch: delete
  - name: extra
    secret: {secretName: s}
  containers:
  - name: app
    args: [--c]
    env:
    - {name: B, value: "3"}
    - name: C
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    ports:
    - {containerPort: 80, protocol: TCP, name: web}
    - {containerPort: 8080, name: alt}
    volumeMounts:
    - {name: data, mountPath: /data, $patch: delete}
    - {name: extra, mountPath: /extra}
  - name: init-like
    image: other:2
"#,
    ),
    (
        "deployment",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: deploy
  finalizers: [a.example.com/f]
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: u1}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: d}
    spec:
      hostAliases:
      - ip: 10.0.0.1
        hostnames: [a.local]
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}
      initContainers:
      - name: init
        image: busybox
      containers:
      - name: app
        image: app:1
        env:
        - {name: A, value: "1"}
        resources:
          limits: {cpu: "1", memory: 1Gi}
      volumes:
      - name: data
        emptyDir: {}
"#,
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: deploy
  finalizers: [b.example.com/f]
  ownerReferences:
  - {apiVersion: v1, kind: Secret, name: owner2, uid: u2}
spec:
  replicas: null
  strategy:
    $retainKeys: [type]
    type: Recreate
  template:
    spec:
      hostAliases:
      - ip: 10.0.0.2
        hostnames: [b.local]
      topologySpreadConstraints:
      - {maxSkew: 2, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway}
      initContainers:
      - name: init
        image: busybox:2
      containers:
      - name: app
        env:
        - {name: A, $patch: delete}
        - {name: B, value: "2"}
        resources:
          limits:
            memory: null
      volumes:
      - name: data
        $patch: replace
        persistentVolumeClaim: {claimName: pvc}
"#,
    ),
    (
        "statefulset",
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: sts
spec:
  serviceName: sts
  selector: {matchLabels: {app: s}}
  template:
    spec:
      containers:
      - name: db
        image: db:1
        volumeMounts:
        - {name: data, mountPath: /var/lib/db}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: sts
spec:
  template:
    spec:
      containers:
      - name: db
        volumeMounts:
        - {name: logs, mountPath: /var/log}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      resources: {requests: {storage: 5Gi}}
"#,
    ),
    (
        "daemonset",
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ds
spec:
  selector: {matchLabels: {app: ds}}
  template:
    spec:
      tolerations:
      - {operator: Exists}
      containers:
      - name: agent
        image: agent:1
        ports:
        - {containerPort: 9100, hostPort: 9100, name: metrics}
        - {containerPort: 53, protocol: UDP, name: dns}
"#,
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ds
spec:
  template:
    spec:
      tolerations:
      - $patch: replace
      - {key: node-role, operator: Exists}
      containers:
      - name: agent
        ports:
        - {containerPort: 53, protocol: TCP, name: dns-tcp}
        - {containerPort: 9100, name: prom}
"#,
    ),
    (
        "job-and-cronjobs",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: job
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: work:1
        command: [a, b]
        env:
        - {name: X, value: "1"}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: cron
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: tick
            image: tick:1
            env:
            - {name: X, value: "1"}
---
apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: cron-beta
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: tick
            image: tick:1
"#,
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: job
spec:
  template:
    spec:
      containers:
      - name: work
        command: [c]
        env:
        - {name: Y, value: "2"}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: cron
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: tock
            image: tock:1
          - name: tick
            env:
            - {name: Y, value: "2"}
---
apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: cron-beta
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: tock
            image: tock:1
"#,
    ),
    (
        "webhooks",
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: vwc
webhooks:
- name: a.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {name: svc, namespace: ns}}
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
- name: b.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {url: "https://b"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mwc
webhooks:
- name: m.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {name: svc, namespace: ns}}
"#,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: vwc
webhooks:
- name: a.example.com
  failurePolicy: Ignore
  rules:
  - {apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], resources: [deployments]}
- name: c.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {url: "https://c"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mwc
webhooks:
- name: m.example.com
  $patch: delete
- name: n.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {url: "https://n"}
"#,
    ),
    (
        "crd-versions",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
  - name: v1beta1
    served: true
    storage: false
"#,
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  names: {shortNames: [w]}
  versions:
  - name: v1
    served: false
"#,
    ),
    (
        "ingress",
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ing
spec:
  tls:
  - hosts: [a.example.com]
    secretName: a-tls
  rules:
  - host: a.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: a, port: {number: 80}}}
"#,
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ing
spec:
  tls:
  - hosts: [b.example.com]
    secretName: b-tls
  rules:
  - host: b.example.com
    http:
      paths:
      - path: /b
        pathType: Prefix
        backend: {service: {name: b, port: {number: 80}}}
"#,
    ),
    (
        "pdb",
        r#"apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: pdb
  finalizers: [a]
spec:
  minAvailable: 1
  selector:
    matchExpressions:
    - {key: app, operator: In, values: [a]}
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: pdb-beta
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: b}}
"#,
        r#"apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: pdb
  finalizers: [b]
spec:
  selector:
    matchExpressions:
    - {key: tier, operator: Exists}
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: pdb-beta
spec:
  maxUnavailable: null
  minAvailable: 2
"#,
    ),
    (
        "core-misc",
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
secrets:
- name: s1
imagePullSecrets:
- name: p1
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ep
subsets:
- addresses: [{ip: 10.0.0.1}]
  ports: [{port: 80}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: pvc
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: LimitRange
metadata:
  name: lr
spec:
  limits:
  - type: Container
    max: {cpu: "2"}
---
apiVersion: v1
kind: Node
metadata:
  name: node
spec:
  podCIDRs: [10.0.0.0/24]
  taints:
  - {key: a, effect: NoSchedule}
"#,
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
secrets:
- name: s2
imagePullSecrets:
- name: p2
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ep
subsets:
- addresses: [{ip: 10.0.0.2}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: pvc
spec:
  accessModes: [ReadOnlyMany]
---
apiVersion: v1
kind: LimitRange
metadata:
  name: lr
spec:
  limits:
  - type: Pod
    max: {cpu: "4"}
---
apiVersion: v1
kind: Node
metadata:
  name: node
spec:
  podCIDRs: [10.0.1.0/24]
  taints:
  - {key: b, effect: NoExecute}
"#,
    ),
    (
        "replicasets-and-slices",
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
spec:
  selector: {matchLabels: {app: rs}}
  template:
    spec:
      containers:
      - name: a
        image: a
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: rc
spec:
  template:
    spec:
      containers:
      - name: a
        image: a
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: slice
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
ports:
- {name: http, port: 80}
"#,
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
spec:
  template:
    spec:
      containers:
      - name: b
        image: b
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: rc
spec:
  template:
    spec:
      containers:
      - name: b
        image: b
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: slice
endpoints:
- addresses: [10.0.0.2]
ports:
- {name: https, port: 443}
"#,
    ),
    (
        "custom-resource",
        r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: widget
  finalizers: [a]
spec:
  containers:
  - name: a
    image: x
  items:
  - {type: t1, v: 1}
  inner:
    apiVersion: apps/v1
    kind: Deployment
    spec:
      template:
        spec:
          containers:
          - name: a
            image: x
"#,
        r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: widget
  finalizers: [b]
spec:
  containers:
  - name: b
    image: y
  items:
  - {type: t2, v: 2}
  inner:
    spec:
      template:
        spec:
          containers:
          - name: b
            image: y
"#,
    ),
    (
        "directives",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: directives
  finalizers: [a, b]
spec:
  selector: {matchLabels: {app: x}}
  template:
    spec:
      containers:
      - name: a
        image: a
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
        volumeMounts:
        - {name: v, mountPath: /v}
      - name: b
        image: b
"#,
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: directives
  $deleteFromPrimitiveList/finalizers: [a]
spec:
  selector:
    $patch: replace
    matchLabels: {app: y}
  template:
    spec:
      $setElementOrder/containers:
      - name: b
      - name: a
      containers:
      - name: a
        env:
        - $patch: replace
        - {name: C, value: "3"}
        volumeMounts:
        - $patch: delete
      - name: b
        $patch: delete
"#,
    ),
];

fn docs(s: &str) -> Vec<&str> {
    s.split("\n---\n").collect()
}

#[test]
fn strategic_merge_matches_kubectl_kustomize() {
    if !kubectl() {
        eprintln!("kubectl not found: strategic merge differential test skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("capstan-smpdiff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut kus = String::from("resources:\n");
    for (name, res, _) in CASES {
        std::fs::write(dir.join(format!("{name}.yaml")), res).unwrap();
        kus.push_str(&format!("- {name}.yaml\n"));
    }
    kus.push_str("patches:\n");
    for (name, _, patch) in CASES {
        for (i, p) in docs(patch).into_iter().enumerate() {
            std::fs::write(dir.join(format!("{name}-patch{i}.yaml")), p).unwrap();
            kus.push_str(&format!("- path: {name}-patch{i}.yaml\n"));
        }
    }
    std::fs::write(dir.join("kustomization.yaml"), kus).unwrap();

    let want = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        want.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&want.stderr)
    );
    let want = String::from_utf8(want.stdout).unwrap();
    let fs = capstan_vfs::DiskFs::new("/").unwrap();
    let got = build_to_string(
        &fs,
        Path::new(&dir),
        &BuildOptions {
            reorder: Reorder::Legacy,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("capstan failed: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    // Objects are compared byte for byte; their order is the ordering transformer's
    // business (kustomize's legacy order), checked elsewhere, so both sides are sorted here.
    let (mut w, mut g) = (docs(&want), docs(&got));
    if w != g {
        eprintln!("note: capstan orders the objects differently from kubectl");
    }
    w.sort_unstable();
    g.sort_unstable();
    for (a, b) in w.iter().zip(g.iter()) {
        assert_eq!(
            b, a,
            "first differing object (left: capstan, right: kubectl)"
        );
    }
    assert_eq!(g.len(), w.len(), "object count differs");
    assert!(
        w.len() >= 30,
        "expected every case's objects, got {}",
        w.len()
    );
    assert!(CASES.len() >= 18);
}
