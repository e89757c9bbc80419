//! Push webhooks with the semantics of Flux's notification-controller
//! `Receiver` (`notification.toolkit.fluxcd.io/v1`).
//!
//! A Receiver object names a webhook sender type (`spec.type`), the events it
//! accepts (`spec.events`), the objects to reconcile when a hook arrives
//! (`spec.resources`) and a Secret (`spec.secretRef`) whose `token` key both
//! authenticates the sender and makes the webhook path secret:
//! `/hook/` + hex(sha256(token + name + namespace)).
//!
//! - [`ReceiverSpec::from_object`] reads a Receiver (as JSON) plus its token.
//! - [`verify`] is the pure check of one request against a receiver: the
//!   signature or token of its type (constant-time compares), the payload, and
//!   the event filter. It answers [`Accepted`] (the resources to reconcile) or
//!   a [`Rejection`] carrying the HTTP status to answer.
//! - [`router`] serves `POST /hook/{digest}` for the receivers a [`HookSink`]
//!   lists and calls [`HookSink::trigger`] for accepted hooks.
//!
//! Supported types and how they verify:
//!
//! | type | authentication | event |
//! | --- | --- | --- |
//! | `generic` | path secrecy only | none |
//! | `generic-hmac` | `X-Signature: <algo>=<hex hmac of body>` (sha1, sha256, sha512) | none |
//! | `github` | `X-Hub-Signature-256: sha256=<hex>` (or legacy `X-Hub-Signature: sha1=<hex>`) | `X-GitHub-Event` (`ping` answered 200, no trigger) |
//! | `gitlab` | `X-Gitlab-Token` equal to the token | `X-Gitlab-Event` |
//! | `bitbucket` | `X-Hub-Signature: sha256=<hex>` (Bitbucket Server) | `X-Event-Key` (`diagnostics:ping` answered 200) |
//! | `harbor` | `Authorization` equal to the token | none |
//! | `nexus` | `X-Nexus-Webhook-Signature: <hex hmac-sha1>`, JSON body | none |
//! | `quay`, `dockerhub`, `acr` | path secrecy, JSON body | none |
//! | `cdevents` | path secrecy, JSON body | `Ce-Type` |
//!
//! `gcr` is refused by [`ReceiverSpec::from_object`]: Flux verifies those
//! requests against Google's token endpoint, which capstan does not call.
//!
//! Differences from Flux, on purpose: a bad signature or token answers 401
//! (Flux: 400), and an event outside `spec.events` answers 200 without
//! triggering anything (Flux: 400), so senders do not show failed deliveries
//! for events nobody asked for.
//!
//! The token never appears in `Debug` output, errors, rejections or logs.
//!
//! ```
//! use std::sync::Arc;
//! use capstan_receiver::{router, verify, HookSink, ReceiverSpec, ResourceRef};
//!
//! let object = serde_json::json!({
//!     "apiVersion": "notification.toolkit.fluxcd.io/v1",
//!     "kind": "Receiver",
//!     "metadata": {"name": "generic", "namespace": "flux-system"},
//!     "spec": {
//!         "type": "generic",
//!         "secretRef": {"name": "webhook-token"},
//!         "resources": [{"kind": "GitRepository", "name": "flux-system"}]
//!     }
//! });
//! let spec = ReceiverSpec::from_object(&object, b"token from the Secret").unwrap();
//! assert!(spec.webhook_path().starts_with("/hook/"));
//! let accepted = verify(&spec, &http::HeaderMap::new(), b"{}").unwrap();
//! assert_eq!(accepted.resources[0].namespace, "flux-system");
//!
//! struct Sink(Vec<ReceiverSpec>);
//! impl HookSink for Sink {
//!     fn receivers(&self) -> Vec<ReceiverSpec> { self.0.clone() }
//!     fn trigger(&self, _receiver: &ReceiverSpec, resources: &[ResourceRef]) {
//!         // request reconciliation of `resources` (resolve `*` + matchLabels)
//!     }
//! }
//! let app: axum::Router = router(Arc::new(Sink(vec![spec])));
//! # drop(app);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, StatusCode};
use sha2::Digest;
use subtle::ConstantTimeEq;

/// Prefix of every webhook path.
pub const WEBHOOK_PATH_PREFIX: &str = "/hook/";

/// Largest request body read (GitHub caps its payloads at 25 MB).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The webhook sender type of a Receiver (`spec.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiverType {
    Generic,
    GenericHmac,
    GitHub,
    GitLab,
    Bitbucket,
    Harbor,
    Nexus,
    Quay,
    DockerHub,
    Acr,
    CdEvents,
}

impl ReceiverType {
    /// Parses `spec.type` (the Flux spelling).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "generic" => Self::Generic,
            "generic-hmac" => Self::GenericHmac,
            "github" => Self::GitHub,
            "gitlab" => Self::GitLab,
            "bitbucket" => Self::Bitbucket,
            "harbor" => Self::Harbor,
            "nexus" => Self::Nexus,
            "quay" => Self::Quay,
            "dockerhub" => Self::DockerHub,
            "acr" => Self::Acr,
            "cdevents" => Self::CdEvents,
            _ => return None,
        })
    }

    /// The Flux spelling of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::GenericHmac => "generic-hmac",
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Bitbucket => "bitbucket",
            Self::Harbor => "harbor",
            Self::Nexus => "nexus",
            Self::Quay => "quay",
            Self::DockerHub => "dockerhub",
            Self::Acr => "acr",
            Self::CdEvents => "cdevents",
        }
    }
}

impl fmt::Display for ReceiverType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `spec.resources` (Flux's `CrossNamespaceObjectReference`),
/// with `namespace` defaulted to the Receiver's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// `apiVersion`, when given (Flux defaults it per kind).
    pub api_version: Option<String>,
    pub kind: String,
    /// An object name, or `*` to select by `match_labels`.
    pub name: String,
    pub namespace: String,
    /// Label selector used when `name` is `*`.
    pub match_labels: BTreeMap<String, String>,
}

impl ResourceRef {
    /// Whether this reference selects objects by labels (`name: "*"`).
    pub fn is_wildcard(&self) -> bool {
        self.name == "*"
    }
}

/// Secret bytes (the Receiver token). `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Token(bytes.into())
    }

    /// The secret bytes; do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // Best-effort wipe; black_box keeps the write from being elided.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// A Receiver with its token, ready to verify requests.
#[derive(Clone, Debug)]
pub struct ReceiverSpec {
    pub name: String,
    pub namespace: String,
    pub kind: ReceiverType,
    /// `spec.events`; empty accepts every event.
    pub events: Vec<String>,
    pub resources: Vec<ResourceRef>,
    /// `spec.suspend`: a suspended receiver answers 503.
    pub suspend: bool,
    /// `spec.secretRef.name`, the Secret holding `token`.
    pub secret_name: String,
    pub token: Token,
    /// Fields of the object that capstan reads but does not honour (today:
    /// `spec.resourceFilter`, Flux's CEL filter, so every listed resource is
    /// triggered). The agent surfaces them in the Receiver's status/events.
    pub warnings: Vec<String>,
}

/// A Receiver object that cannot be used; names the field.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("Receiver {object}: {field}: {message}")]
    Field {
        object: String,
        field: String,
        message: String,
    },
}

fn field_err(object: &str, field: impl Into<String>, message: impl Into<String>) -> ReceiverError {
    ReceiverError::Field {
        object: object.to_string(),
        field: field.into(),
        message: message.into(),
    }
}

fn opt_str<'a>(
    v: &'a serde_json::Value,
    key: &str,
    object: &str,
    path: &str,
) -> Result<Option<&'a str>, ReceiverError> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_err(
            object,
            format!("{path}{key}"),
            "must be a string",
        )),
    }
}

fn req_str<'a>(
    v: &'a serde_json::Value,
    key: &str,
    object: &str,
    path: &str,
) -> Result<&'a str, ReceiverError> {
    match opt_str(v, key, object, path)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(field_err(object, format!("{path}{key}"), "required")),
    }
}

/// `spec.secretRef.name` of a Receiver object: the Secret whose `token` key
/// the caller reads before [`ReceiverSpec::from_object`].
pub fn secret_ref_name(receiver: &serde_json::Value) -> Result<String, ReceiverError> {
    let object = object_label(receiver);
    let secret_ref = receiver
        .get("spec")
        .and_then(|s| s.get("secretRef"))
        .ok_or_else(|| {
            field_err(
                &object,
                "spec.secretRef",
                "required (a Secret with a `token` key)",
            )
        })?;
    Ok(req_str(secret_ref, "name", &object, "spec.secretRef.")?.to_string())
}

fn object_label(receiver: &serde_json::Value) -> String {
    let meta = receiver.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
    };
    format!("{}/{}", get("namespace"), get("name"))
}

impl ReceiverSpec {
    /// Reads a Receiver object (any `notification.toolkit.fluxcd.io`
    /// version, as JSON) and the `token` of its Secret.
    pub fn from_object(receiver: &serde_json::Value, token: &[u8]) -> Result<Self, ReceiverError> {
        let object = object_label(receiver);
        let meta = receiver
            .get("metadata")
            .ok_or_else(|| field_err(&object, "metadata", "required"))?;
        let name = req_str(meta, "name", &object, "metadata.")?.to_string();
        let namespace = req_str(meta, "namespace", &object, "metadata.")?.to_string();
        let spec = receiver
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| field_err(&object, "spec", "required"))?;
        let type_str = req_str(spec, "type", &object, "spec.")?;
        let kind = match type_str {
            "gcr" => {
                return Err(field_err(
                    &object,
                    "spec.type",
                    "'gcr' is not supported (its requests are verified against Google's token endpoint); use 'generic' or 'generic-hmac'",
                ))
            }
            other => ReceiverType::parse(other).ok_or_else(|| {
                field_err(
                    &object,
                    "spec.type",
                    format!(
                        "unknown receiver type {other:?} (one of generic, generic-hmac, github, gitlab, bitbucket, harbor, nexus, quay, dockerhub, acr, cdevents)"
                    ),
                )
            })?,
        };
        let events = match spec.get("events") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    e.as_str().map(str::to_string).ok_or_else(|| {
                        field_err(&object, format!("spec.events[{i}]"), "must be a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(field_err(
                    &object,
                    "spec.events",
                    "must be a list of strings",
                ))
            }
        };
        let suspend = match spec.get("suspend") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(field_err(&object, "spec.suspend", "must be a boolean")),
        };
        let secret_name = secret_ref_name(receiver)?;
        let items = match spec.get("resources") {
            Some(serde_json::Value::Array(items)) if !items.is_empty() => items,
            Some(serde_json::Value::Array(_)) | None | Some(serde_json::Value::Null) => {
                return Err(field_err(
                    &object,
                    "spec.resources",
                    "at least one resource is required",
                ))
            }
            Some(_) => return Err(field_err(&object, "spec.resources", "must be a list")),
        };
        let mut resources = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("spec.resources[{i}].");
            if !item.is_object() {
                return Err(field_err(
                    &object,
                    format!("spec.resources[{i}]"),
                    "must be an object",
                ));
            }
            let kind = req_str(item, "kind", &object, &path)?.to_string();
            let rname = req_str(item, "name", &object, &path)?.to_string();
            let api_version = opt_str(item, "apiVersion", &object, &path)?
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let rns = opt_str(item, "namespace", &object, &path)?
                .filter(|s| !s.is_empty())
                .unwrap_or(&namespace)
                .to_string();
            let mut match_labels = BTreeMap::new();
            match item.get("matchLabels") {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Object(m)) => {
                    for (k, v) in m {
                        let v = v.as_str().ok_or_else(|| {
                            field_err(
                                &object,
                                format!("{path}matchLabels.{k}"),
                                "must be a string",
                            )
                        })?;
                        match_labels.insert(k.clone(), v.to_string());
                    }
                }
                Some(_) => {
                    return Err(field_err(
                        &object,
                        format!("{path}matchLabels"),
                        "must be a map of strings",
                    ))
                }
            }
            if rname == "*" && match_labels.is_empty() {
                return Err(field_err(
                    &object,
                    format!("{path}matchLabels"),
                    "required when name is '*' (the wildcard selects objects by labels)",
                ));
            }
            resources.push(ResourceRef {
                api_version,
                kind,
                name: rname,
                namespace: rns,
                match_labels,
            });
        }
        if token.is_empty() {
            return Err(field_err(
                &object,
                format!("Secret {namespace}/{secret_name} key token"),
                "empty (the token authenticates senders and makes the webhook path secret)",
            ));
        }
        let mut warnings = Vec::new();
        if spec
            .get("resourceFilter")
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.trim().is_empty())
        {
            warnings.push(
                "spec.resourceFilter: CEL resource filters are not supported; every resource in spec.resources is reconciled"
                    .to_string(),
            );
        }
        Ok(ReceiverSpec {
            name,
            namespace,
            kind,
            events,
            resources,
            suspend,
            secret_name,
            token: Token::new(token),
            warnings,
        })
    }

    /// `/hook/` + hex(sha256(token + name + namespace)), as Flux's
    /// `status.webhookPath`.
    pub fn webhook_path(&self) -> String {
        webhook_path(self.token.expose(), &self.name, &self.namespace)
    }
}

/// `/hook/` + hex(sha256(token + name + namespace)).
pub fn webhook_path(token: &[u8], name: &str, namespace: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(token);
    h.update(name.as_bytes());
    h.update(namespace.as_bytes());
    format!("{WEBHOOK_PATH_PREFIX}{}", hex::encode(h.finalize()))
}

/// A verified hook: reconcile `resources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub resources: Vec<ResourceRef>,
    /// The sender's event name, for types that carry one.
    pub event: Option<String>,
}

/// A hook that triggers nothing, with the HTTP status to answer. 2xx statuses
/// mean "ignored" (pings, filtered events); the message never holds secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn ignored(message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, message)
    }

    /// True for pings and filtered events (answered with 2xx, no trigger).
    pub fn is_ignored(&self) -> bool {
        self.status.is_success()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for Rejection {}

/// A header value as text, if present and valid.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// An attacker-controlled value made safe for messages: escaped, bounded.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(100).collect();
    format!("{cut:?}")
}

fn hmac_hex_matches<M: Mac + KeyInit>(key: &[u8], body: &[u8], hex_sig: &str) -> bool {
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given).is_ok()
}

/// Checks `<algo>=<hex>` (go-github's ValidateSignature format).
fn check_prefixed_signature(
    key: &[u8],
    body: &[u8],
    value: &str,
    header_name: &str,
) -> Result<(), Rejection> {
    let Some((algo, hex_sig)) = value.split_once('=') else {
        return Err(Rejection::unauthorized(format!(
            "{header_name} is malformed (expected sha1=, sha256= or sha512= followed by a hex HMAC)"
        )));
    };
    let ok = match algo {
        "sha1" => hmac_hex_matches::<Hmac<sha1::Sha1>>(key, body, hex_sig),
        "sha256" => hmac_hex_matches::<Hmac<sha2::Sha256>>(key, body, hex_sig),
        "sha512" => hmac_hex_matches::<Hmac<sha2::Sha512>>(key, body, hex_sig),
        other => {
            return Err(Rejection::unauthorized(format!(
                "{header_name} uses unsupported algorithm {} (sha1, sha256 or sha512)",
                shown(other)
            )))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::unauthorized(format!(
            "{header_name} does not match the HMAC of the payload with the receiver token"
        )))
    }
}

fn equals_token(given: Option<&str>, token: &Token) -> bool {
    match given {
        Some(v) => bool::from(v.as_bytes().ct_eq(token.expose())),
        None => false,
    }
}

fn event_allowed(spec: &ReceiverSpec, event: &str) -> bool {
    spec.events.is_empty()
        || spec
            .events
            .iter()
            .any(|e| e.to_lowercase() == event.to_lowercase())
}

fn filter_event(spec: &ReceiverSpec, sender: &str, event: &str) -> Result<(), Rejection> {
    if event_allowed(spec, event) {
        Ok(())
    } else {
        Err(Rejection::ignored(format!(
            "{sender} event {} is not in spec.events; ignored",
            shown(event)
        )))
    }
}

fn require_json(body: &[u8], sender: &str) -> Result<serde_json::Value, Rejection> {
    serde_json::from_slice(body).map_err(|e| {
        Rejection::bad_request(format!(
            "cannot decode {sender} webhook payload as JSON: {e}"
        ))
    })
}

/// GitHub sends JSON, or a form with the JSON in its `payload` field.
fn github_payload(headers: &HeaderMap, body: &[u8]) -> Result<(), Rejection> {
    let content_type = header(headers, "content-type").unwrap_or("application/json");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => {
            let payload = form_urlencoded::parse(body)
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v.into_owned())
                .ok_or_else(|| Rejection::bad_request("GitHub form payload has no `payload` field"))?;
            require_json(payload.as_bytes(), "GitHub").map(|_| ())
        }
        "application/json" | "" => require_json(body, "GitHub").map(|_| ()),
        other => Err(Rejection::bad_request(format!(
            "GitHub webhook content type {} is not supported (application/json or application/x-www-form-urlencoded)",
            shown(other)
        ))),
    }
}

/// Verifies one request against a receiver (pure: no I/O).
pub fn verify(
    spec: &ReceiverSpec,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, Rejection> {
    let key = spec.token.expose();
    let event = match spec.kind {
        ReceiverType::Generic => None,
        ReceiverType::GenericHmac => {
            let sig = header(headers, "x-signature").ok_or_else(|| {
                Rejection::unauthorized(
                    "missing X-Signature header (sha1=|sha256=|sha512=<hex HMAC>)",
                )
            })?;
            check_prefixed_signature(key, body, sig, "X-Signature")?;
            None
        }
        ReceiverType::GitHub => {
            if let Some(sig) = header(headers, "x-hub-signature-256") {
                check_prefixed_signature(key, body, sig, "X-Hub-Signature-256")?;
            } else if let Some(sig) = header(headers, "x-hub-signature") {
                check_prefixed_signature(key, body, sig, "X-Hub-Signature")?;
            } else {
                return Err(Rejection::unauthorized(
                    "missing X-Hub-Signature-256 header (set the webhook secret to the receiver token)",
                ));
            }
            let event = header(headers, "x-github-event")
                .filter(|e| !e.is_empty())
                .ok_or_else(|| Rejection::bad_request("missing X-GitHub-Event header"))?;
            github_payload(headers, body)?;
            if event.eq_ignore_ascii_case("ping") {
                return Err(Rejection::ignored(
                    "pong: GitHub ping verified; nothing to reconcile",
                ));
            }
            filter_event(spec, "GitHub", event)?;
            Some(event.to_string())
        }
        ReceiverType::GitLab => {
            if !equals_token(header(headers, "x-gitlab-token"), &spec.token) {
                return Err(Rejection::unauthorized(
                    "the X-Gitlab-Token header value does not match the receiver token",
                ));
            }
            let event = header(headers, "x-gitlab-event").unwrap_or("");
            filter_event(spec, "GitLab", event)?;
            Some(event.to_string())
        }
        ReceiverType::Bitbucket => {
            let sig = header(headers, "x-hub-signature")
                .ok_or_else(|| Rejection::unauthorized("missing X-Hub-Signature header"))?;
            check_prefixed_signature(key, body, sig, "X-Hub-Signature")?;
            let event = header(headers, "x-event-key").unwrap_or("");
            if event.eq_ignore_ascii_case("diagnostics:ping") {
                return Err(Rejection::ignored(
                    "pong: Bitbucket ping verified; nothing to reconcile",
                ));
            }
            filter_event(spec, "Bitbucket", event)?;
            Some(event.to_string())
        }
        ReceiverType::Harbor => {
            if !equals_token(header(headers, "authorization"), &spec.token) {
                return Err(Rejection::unauthorized(
                    "the Harbor Authorization header value does not match the receiver token",
                ));
            }
            None
        }
        ReceiverType::Nexus => {
            let sig = header(headers, "x-nexus-webhook-signature").ok_or_else(|| {
                Rejection::unauthorized("missing X-Nexus-Webhook-Signature header")
            })?;
            if !hmac_hex_matches::<Hmac<sha1::Sha1>>(key, body, sig) {
                return Err(Rejection::unauthorized("invalid X-Nexus-Webhook-Signature"));
            }
            require_json(body, "Nexus")?;
            None
        }
        ReceiverType::Quay => {
            require_json(body, "Quay")?;
            None
        }
        ReceiverType::DockerHub => {
            require_json(body, "DockerHub")?;
            None
        }
        ReceiverType::Acr => {
            require_json(body, "ACR")?;
            None
        }
        ReceiverType::CdEvents => {
            let event = header(headers, "ce-type").unwrap_or("");
            let payload = require_json(body, "CDEvents")?;
            if !payload.is_object() {
                return Err(Rejection::bad_request(
                    "CDEvents payload is not a JSON object",
                ));
            }
            filter_event(spec, "CDEvents", event)?;
            Some(event.to_string())
        }
    };
    Ok(Accepted {
        resources: spec.resources.clone(),
        event,
    })
}

/// Where the router finds receivers and sends accepted hooks.
pub trait HookSink: Send + Sync + 'static {
    /// The current receivers (with their tokens).
    fn receivers(&self) -> Vec<ReceiverSpec>;
    /// Request reconciliation of `resources` (called for accepted hooks).
    fn trigger(&self, receiver: &ReceiverSpec, resources: &[ResourceRef]);
}

/// Serves `POST /hook/{digest}` like Flux's receiver server: 404 for an
/// unknown path, 503 for a suspended receiver, the [`verify`] status
/// otherwise (200 once [`HookSink::trigger`] was called).
pub fn router(sink: Arc<dyn HookSink>) -> axum::Router {
    axum::Router::new()
        .route("/hook/{digest}", post(handle_hook))
        .with_state(sink)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    m.push('\n');
    (status, m).into_response()
}

async fn handle_hook(
    State(sink): State<Arc<dyn HookSink>>,
    Path(digest): Path<String>,
    request: Request<Body>,
) -> Response {
    let path = format!("{WEBHOOK_PATH_PREFIX}{digest}");
    let receivers = sink.receivers();
    // Compare every path in constant time so timing does not reveal digests.
    let mut found = None;
    for (i, r) in receivers.iter().enumerate() {
        if bool::from(r.webhook_path().as_bytes().ct_eq(path.as_bytes())) && found.is_none() {
            found = Some(i);
        }
    }
    let Some(receiver) = found.map(|i| &receivers[i]) else {
        return text(StatusCode::NOT_FOUND, "no receiver for this path");
    };
    if receiver.suspend {
        tracing::info!(receiver = %receiver.name, namespace = %receiver.namespace, "webhook for suspended receiver refused");
        return text(StatusCode::SERVICE_UNAVAILABLE, "receiver is suspended");
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the payload (at most {MAX_BODY_BYTES} bytes)"),
            )
        }
    };
    match verify(receiver, &parts.headers, &body) {
        Ok(accepted) => {
            tracing::info!(
                receiver = %receiver.name,
                namespace = %receiver.namespace,
                r#type = %receiver.kind,
                event = accepted.event.as_deref().unwrap_or(""),
                resources = accepted.resources.len(),
                "webhook accepted; requesting reconciliation"
            );
            sink.trigger(receiver, &accepted.resources);
            text(
                StatusCode::OK,
                format!(
                    "accepted: reconciliation requested for {} resource(s)",
                    accepted.resources.len()
                ),
            )
        }
        Err(rejection) => {
            if rejection.is_ignored() {
                tracing::debug!(receiver = %receiver.name, namespace = %receiver.namespace, reason = %rejection.message, "webhook ignored");
            } else {
                tracing::warn!(receiver = %receiver.name, namespace = %receiver.namespace, reason = %rejection.message, "webhook rejected");
            }
            text(rejection.status, rejection.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 2202 / RFC 4231 test case 2.
    const KEY: &[u8] = b"Jefe";
    const DATA: &[u8] = b"what do ya want for nothing?";
    const SHA1: &str = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";
    const SHA256: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const SHA512: &str = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
    /// A push payload and its HMACs with key "Jefe" (computed independently).
    const PUSH: &[u8] =
        br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}"#;
    const PUSH_SHA256: &str = "5c209bc79e84d451457d9d320bfcf4b0e818a0ee09729010b6f363545ed3a4bc";
    const PUSH_SHA1: &str = "0aa40993eaea23e264d594f50d3bdc6d63108e34";

    fn receiver(kind: &str, events: &[&str]) -> ReceiverSpec {
        let obj = json!({
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": {
                "type": kind,
                "events": events,
                "secretRef": {"name": "webhook-token"},
                "resources": [
                    {"kind": "GitRepository", "name": "flux-system"},
                    {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "*",
                     "namespace": "apps", "matchLabels": {"team": "a"}}
                ]
            }
        });
        ReceiverSpec::from_object(&obj, KEY).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn parses_receiver_and_defaults_namespaces() {
        let r = receiver("github", &["push"]);
        assert_eq!(r.kind, ReceiverType::GitHub);
        assert_eq!(r.secret_name, "webhook-token");
        assert_eq!(r.resources[0].namespace, "flux-system");
        assert_eq!(r.resources[0].api_version, None);
        assert_eq!(r.resources[1].namespace, "apps");
        assert!(r.resources[1].is_wildcard());
        assert_eq!(
            r.resources[1].match_labels.get("team").map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn webhook_path_is_sha256_of_token_name_namespace() {
        let r = receiver("generic", &[]);
        assert_eq!(
            r.webhook_path(),
            "/hook/53b373e5d103b3ee5ed0f15295bae374585e8f9588f75f3eb5bde4f43ad8573c"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let base = json!({
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"type": "github", "secretRef": {"name": "s"}, "resources": [{"kind": "GitRepository", "name": "x"}]}
        });
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut o = base.clone();
            f(&mut o);
            ReceiverSpec::from_object(&o, b"tok")
                .unwrap_err()
                .to_string()
        };
        assert!(with(&|o| o["spec"]["type"] = json!("gcr")).contains("spec.type"));
        assert!(with(&|o| o["spec"]["type"] = json!("carrier-pigeon")).contains("spec.type"));
        assert!(with(&|o| o["spec"]["resources"] = json!([])).contains("spec.resources"));
        assert!(with(&|o| o["spec"]["resources"][0]["name"] = json!("*"))
            .contains("spec.resources[0].matchLabels"));
        assert!(with(&|o| o["spec"]["resources"][0]["kind"] = json!(3))
            .contains("spec.resources[0].kind"));
        assert!(with(&|o| o["spec"]["secretRef"] = json!({})).contains("spec.secretRef.name"));
        assert!(with(&|o| o["spec"]["events"] = json!("push")).contains("spec.events"));
        assert!(with(&|o| o["metadata"]["namespace"] = json!(null)).contains("metadata.namespace"));
        let e = ReceiverSpec::from_object(&base, b"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key token"), "{e}");
        assert!(e.contains("ns/r"), "{e}");
    }

    #[test]
    fn token_never_in_debug_or_messages() {
        let obj = json!({
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"type": "gitlab", "secretRef": {"name": "s"}, "resources": [{"kind": "GitRepository", "name": "x"}]}
        });
        let r = ReceiverSpec::from_object(&obj, b"sup3r-s3cret-t0ken").unwrap();
        assert!(!format!("{r:?}").contains("sup3r"));
        let rej = verify(
            &r,
            &headers(&[("x-gitlab-token", "sup3r-s3cret-t0kem")]),
            b"{}",
        )
        .unwrap_err();
        assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
        assert!(!rej.message.contains("sup3r"), "{}", rej.message);
    }

    #[test]
    fn generic_accepts_anything() {
        let r = receiver("generic", &[]);
        let a = verify(&r, &HeaderMap::new(), b"not json").unwrap();
        assert_eq!(a.resources.len(), 2);
        assert_eq!(a.event, None);
    }

    #[test]
    fn generic_hmac_known_vectors() {
        let r = receiver("generic-hmac", &[]);
        for sig in [
            format!("sha1={SHA1}"),
            format!("sha256={SHA256}"),
            format!("sha512={SHA512}"),
        ] {
            verify(&r, &headers(&[("x-signature", &sig)]), DATA)
                .unwrap_or_else(|e| panic!("{sig}: {e}"));
        }
        let bad = verify(
            &r,
            &headers(&[("x-signature", &format!("sha256={SHA1}"))]),
            DATA,
        )
        .unwrap_err();
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        let tampered = verify(
            &r,
            &headers(&[("x-signature", &format!("sha256={SHA256}"))]),
            b"what do ya want for something?",
        )
        .unwrap_err();
        assert_eq!(tampered.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            verify(&r, &HeaderMap::new(), DATA).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            verify(&r, &headers(&[("x-signature", "md5=00")]), DATA)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            verify(&r, &headers(&[("x-signature", "sha256=zz")]), DATA)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn github_docs_vector_then_payload_check() {
        // The example of GitHub's "validating webhook deliveries" docs.
        let obj = json!({
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"type": "github", "secretRef": {"name": "s"}, "resources": [{"kind": "GitRepository", "name": "x"}]}
        });
        let r = ReceiverSpec::from_object(&obj, b"It's a Secret to Everybody").unwrap();
        let h = headers(&[
            (
                "x-hub-signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            ),
            ("x-github-event", "push"),
        ]);
        // Signature fine, but "Hello, World!" is not a JSON payload: 400.
        let rej = verify(&r, &h, b"Hello, World!").unwrap_err();
        assert_eq!(rej.status, StatusCode::BAD_REQUEST, "{rej}");
    }

    #[test]
    fn github_push_accepted_with_sha256_and_legacy_sha1() {
        let r = receiver("github", &["push"]);
        let a = verify(
            &r,
            &headers(&[
                ("x-hub-signature-256", &format!("sha256={PUSH_SHA256}")),
                ("x-github-event", "push"),
                ("content-type", "application/json"),
            ]),
            PUSH,
        )
        .unwrap();
        assert_eq!(a.event.as_deref(), Some("push"));
        assert_eq!(a.resources, r.resources);
        verify(
            &r,
            &headers(&[
                ("x-hub-signature", &format!("sha1={PUSH_SHA1}")),
                ("x-github-event", "Push"),
            ]),
            PUSH,
        )
        .unwrap();
    }

    #[test]
    fn github_form_encoded_payload() {
        let r = receiver("github", &[]);
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(PUSH).unwrap())
            .finish();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let h = headers(&[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        verify(&r, &h, body.as_bytes()).unwrap();
    }

    #[test]
    fn github_wrong_signature_is_401() {
        let r = receiver("github", &["push"]);
        let wrong = SHA256; // a valid HMAC, of other data
        let rej = verify(
            &r,
            &headers(&[
                ("x-hub-signature-256", &format!("sha256={wrong}")),
                ("x-github-event", "push"),
            ]),
            PUSH,
        )
        .unwrap_err();
        assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
        assert!(rej.message.contains("X-Hub-Signature-256"));
        let missing = verify(&r, &headers(&[("x-github-event", "push")]), PUSH).unwrap_err();
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn github_filtered_event_and_ping_are_ignored() {
        let r = receiver("github", &["push"]);
        let sig = format!("sha256={PUSH_SHA256}");
        let filtered = verify(
            &r,
            &headers(&[("x-hub-signature-256", &sig), ("x-github-event", "issues")]),
            PUSH,
        )
        .unwrap_err();
        assert_eq!(filtered.status, StatusCode::OK);
        assert!(filtered.is_ignored());
        assert!(filtered.message.contains("\"issues\""));
        let ping = verify(
            &r,
            &headers(&[("x-hub-signature-256", &sig), ("x-github-event", "ping")]),
            PUSH,
        )
        .unwrap_err();
        assert!(ping.is_ignored());
        assert!(ping.message.contains("pong"));
        // A ping with a wrong signature is still refused.
        let bad_ping = verify(
            &r,
            &headers(&[
                ("x-hub-signature-256", &format!("sha256={SHA256}")),
                ("x-github-event", "ping"),
            ]),
            PUSH,
        )
        .unwrap_err();
        assert_eq!(bad_ping.status, StatusCode::UNAUTHORIZED);
        let no_event = verify(&r, &headers(&[("x-hub-signature-256", &sig)]), PUSH).unwrap_err();
        assert_eq!(no_event.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn gitlab_token_and_events() {
        let r = receiver("gitlab", &["Push Hook", "Tag Push Hook"]);
        let a = verify(
            &r,
            &headers(&[("x-gitlab-token", "Jefe"), ("x-gitlab-event", "push hook")]),
            b"{}",
        )
        .unwrap();
        assert_eq!(a.event.as_deref(), Some("push hook"));
        let wrong = verify(
            &r,
            &headers(&[("x-gitlab-token", "jefe"), ("x-gitlab-event", "Push Hook")]),
            b"{}",
        )
        .unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let missing = verify(&r, &headers(&[("x-gitlab-event", "Push Hook")]), b"{}").unwrap_err();
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
        let filtered = verify(
            &r,
            &headers(&[("x-gitlab-token", "Jefe"), ("x-gitlab-event", "Issue Hook")]),
            b"{}",
        )
        .unwrap_err();
        assert!(filtered.is_ignored());
    }

    #[test]
    fn bitbucket_harbor_nexus_registry_types() {
        let bb = receiver("bitbucket", &["repo:refs_changed"]);
        let sig = format!("sha256={PUSH_SHA256}");
        verify(
            &bb,
            &headers(&[
                ("x-hub-signature", &sig),
                ("x-event-key", "repo:refs_changed"),
            ]),
            PUSH,
        )
        .unwrap();
        assert!(verify(
            &bb,
            &headers(&[
                ("x-hub-signature", &sig),
                ("x-event-key", "diagnostics:ping")
            ]),
            PUSH
        )
        .unwrap_err()
        .is_ignored());
        assert_eq!(
            verify(&bb, &headers(&[("x-event-key", "repo:refs_changed")]), PUSH)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );

        let harbor = receiver("harbor", &[]);
        verify(&harbor, &headers(&[("authorization", "Jefe")]), b"{}").unwrap();
        assert_eq!(
            verify(&harbor, &headers(&[("authorization", "Bearer x")]), b"{}")
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );

        let nexus = receiver("nexus", &[]);
        verify(
            &nexus,
            &headers(&[("x-nexus-webhook-signature", PUSH_SHA1)]),
            PUSH,
        )
        .unwrap();
        assert_eq!(
            verify(
                &nexus,
                &headers(&[("x-nexus-webhook-signature", SHA1)]),
                PUSH
            )
            .unwrap_err()
            .status,
            StatusCode::UNAUTHORIZED
        );

        for t in ["quay", "dockerhub", "acr"] {
            let r = receiver(t, &[]);
            verify(&r, &HeaderMap::new(), br#"{"docker_url":"quay.io/x/y"}"#).unwrap();
            assert_eq!(
                verify(&r, &HeaderMap::new(), b"<xml/>").unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{t}"
            );
        }

        let cde = receiver("cdevents", &["dev.cdevents.change.merged.0.1.2"]);
        verify(
            &cde,
            &headers(&[("ce-type", "dev.cdevents.change.merged.0.1.2")]),
            br#"{"context":{}}"#,
        )
        .unwrap();
        assert!(verify(
            &cde,
            &headers(&[("ce-type", "dev.cdevents.build.started.0.1.1")]),
            br#"{"context":{}}"#
        )
        .unwrap_err()
        .is_ignored());
    }
}
