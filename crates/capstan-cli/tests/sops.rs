//! SOPS end to end on the test bed: a Flux Kustomization with `spec.decryption` whose age
//! key is a Secret in the cluster applies its decrypted Secret and the Secret a
//! `secretGenerator` makes from an encrypted env file; `capstan diff` (live, and between
//! two trees) shows a changed encrypted value as a changed Secret key and never its
//! plaintext; a wrong key, a tampered value and a missing key Secret fail the unit naming
//! the file or object and the recipient tried, never the plaintext.

use std::path::Path;
use std::process::{Command, Output};

use capstan_testbed::TestCluster;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::{json, Value};

fn capstan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        // Keys come from the cluster (and --decryption-key) only.
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .output()
        .expect("run capstan")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(root: &Path, path: &str, content: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn res(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

async fn create(api: &Api<DynamicObject>, obj: Value) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("creating {:?}: {e}", obj.metadata.name),
    }
}

/// The decryption Secret `flux-system/sops-age` holding `identity` as `identity.agekey`
/// (replacing any earlier one).
async fn key_secret(client: &kube::Client, identity: &str) {
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "flux-system",
        &res("", "v1", "Secret", "secrets"),
    );
    let _ = secrets.delete("sops-age", &DeleteParams::default()).await;
    let mut tries = 0;
    loop {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sops-age", "namespace": "flux-system"},
            "stringData": {"identity.agekey": identity}
        }))
        .unwrap();
        match secrets.create(&PostParams::default(), &obj).await {
            Ok(_) => break,
            // Deletion is asynchronous; retried until the old one is gone.
            Err(kube::Error::Api(s)) if s.is_already_exists() && tries < 600 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("creating the key Secret: {e}"),
        }
    }
}

async fn secret_data(client: &kube::Client, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &res("", "v1", "Secret", "secrets"),
    );
    let s = api.get_opt(name).await.unwrap()?;
    use base64::Engine;
    let mut out = serde_json::Map::new();
    for (k, v) in s.data["data"].as_object().cloned().unwrap_or_default() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        out.insert(k, Value::String(String::from_utf8(raw).unwrap()));
    }
    Some(Value::Object(out))
}

fn encrypted_secret(recipient: &str, password: &str) -> Vec<u8> {
    let plain = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: db\n    namespace: default\nstringData:\n    password: {password}\n    user: app\n"
    );
    let opts = capstan_sops::EncryptOptions {
        encrypted_regex: Some("^(data|stringData)$".into()),
        ..Default::default()
    };
    capstan_sops::encrypt(
        plain.as_bytes(),
        capstan_sops::Format::Yaml,
        &[recipient],
        &opts,
    )
    .unwrap()
}

fn encrypted_env(recipient: &str, token: &str) -> Vec<u8> {
    capstan_sops::encrypt(
        format!("API_TOKEN={token}\n").as_bytes(),
        capstan_sops::Format::Dotenv,
        &[recipient],
        &Default::default(),
    )
    .unwrap()
}

/// The repository: `clusters/dev/secrets.yaml` (a Kustomization with
/// `spec.decryption.secretRef: sops-age`) and `secrets/` (an encrypted Secret and a
/// secretGenerator reading an encrypted env file).
fn repo(root: &Path, recipient: &str, password: &str, token: &str) {
    write(
        root,
        "clusters/dev/secrets.yaml",
        b"apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: secrets\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./secrets\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n",
    );
    write(
        root,
        "secrets/kustomization.yaml",
        b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: default\nresources:\n  - db.enc.yaml\nsecretGenerator:\n  - name: app-env\n    envs:\n      - app.enc.env\ngeneratorOptions:\n  disableNameSuffixHash: true\n",
    );
    write(
        root,
        "secrets/db.enc.yaml",
        &encrypted_secret(recipient, password),
    );
    write(
        root,
        "secrets/app.enc.env",
        &encrypted_env(recipient, token),
    );
}

fn assert_no_plaintext(out: &str, secrets: &[&str]) {
    use base64::Engine;
    for s in secrets {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s);
        assert!(
            !out.contains(s) && !out.contains(&b64),
            "plaintext {s} in the output:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_decryption_applies_diffs_masked_and_names_failures() {
    let Some(cluster) = TestCluster::start("sops-e2e") else {
        return;
    };
    let client = cluster.client().await;
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &res("", "v1", "Namespace", "namespaces"));
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
    )
    .await;
    let (identity, recipient) = capstan_sops::generate_age_identity();
    key_secret(&client, &identity).await;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    repo(&root, &recipient, "pw-first-7f3a", "tok-first-91c2");
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let repo_arg = root.to_str().unwrap().to_string();
    let run = |cmd: &str| capstan(&[cmd, &repo_arg, "--cluster", "dev", "--kubeconfig", &kc]);

    // Apply: the Secrets are decrypted with the cluster's key Secret; nothing printed
    // holds a plaintext.
    let out = run("apply");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_no_plaintext(&all, &["pw-first-7f3a", "tok-first-91c2"]);
    let db = secret_data(&client, "db").await.expect("Secret db applied");
    assert_eq!(db["password"], "pw-first-7f3a");
    assert_eq!(db["user"], "app");
    let env = secret_data(&client, "app-env")
        .await
        .expect("Secret app-env applied");
    assert_eq!(env["API_TOKEN"], "tok-first-91c2");
    assert_eq!(env.as_object().unwrap().len(), 1, "no sops_ keys: {env}");

    // Live diff of a changed encrypted value: the key shows as changed, no plaintext.
    let before = tmp.path().join("before");
    std::fs::create_dir_all(&before).unwrap();
    repo(&before, &recipient, "pw-first-7f3a", "tok-first-91c2");
    write(
        &root,
        "secrets/db.enc.yaml",
        &encrypted_secret(&recipient, "pw-second-c0d4"),
    );
    let out = run("diff");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("Secret") && all.contains("db"), "{all}");
    assert!(all.contains("password"), "{all}");
    assert_no_plaintext(&all, &["pw-first-7f3a", "pw-second-c0d4", "tok-first-91c2"]);

    // The revision diff between the two trees: the same, with no cluster.
    let out = capstan(&[
        "diff",
        "--base-dir",
        before.to_str().unwrap(),
        "--target-dir",
        root.to_str().unwrap(),
        "--path",
        "clusters/dev",
        "--color",
        "never",
        "--no-cache",
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("password"), "{all}");
    assert_no_plaintext(&all, &["pw-first-7f3a", "pw-second-c0d4", "tok-first-91c2"]);

    // A wrong key: the unit fails naming the file's recipient and the key tried.
    let (other, other_recipient) = capstan_sops::generate_age_identity();
    key_secret(&client, &other).await;
    let out = run("apply");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("no-key"), "{all}");
    assert!(
        all.contains(&recipient) && all.contains(&other_recipient),
        "{all}"
    );
    assert!(all.contains("app.enc.env") || all.contains("db"), "{all}");
    assert_no_plaintext(&all, &["pw-second-c0d4", "tok-first-91c2"]);
    assert!(!all.contains("AGE-SECRET-KEY"), "{all}");

    // A tampered value (Flux never checks the MAC; each value is authenticated): the
    // env file is named.
    key_secret(&client, &identity).await;
    let env = String::from_utf8(encrypted_env(&recipient, "tok-first-91c2")).unwrap();
    let tampered = env.replacen("data:", "data:AA", 1);
    write(&root, "secrets/app.enc.env", tampered.as_bytes());
    let out = run("apply");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("app.enc.env") && all.contains("value-auth"),
        "{all}"
    );
    assert_no_plaintext(&all, &["pw-second-c0d4", "tok-first-91c2"]);

    // A missing key Secret names it.
    write(
        &root,
        "secrets/app.enc.env",
        &encrypted_env(&recipient, "tok-first-91c2"),
    );
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "flux-system",
        &res("", "v1", "Secret", "secrets"),
    );
    secrets
        .delete("sops-age", &DeleteParams::default())
        .await
        .unwrap();
    let out = run("apply");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("flux-system/sops-age") && all.contains("not found"),
        "{all}"
    );

    // Keys given on the command line stand in for the missing Secret.
    let key_file = tmp.path().join("key.agekey");
    std::fs::write(&key_file, &identity).unwrap();
    let out = capstan(&[
        "apply",
        &repo_arg,
        "--cluster",
        "dev",
        "--kubeconfig",
        &kc,
        "--decryption-key",
        key_file.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let db = secret_data(&client, "db").await.unwrap();
    assert_eq!(db["password"], "pw-second-c0d4");
}
