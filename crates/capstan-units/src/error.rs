use std::fmt;
use std::path::PathBuf;

use capstan_graph::UnitId;

/// Where something was declared: a file of the repository, which document in it, and
/// which field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Path inside the repository (e.g. `/clusters/staging/apps.yaml`).
    pub file: Option<PathBuf>,
    /// 1-based document index within the file.
    pub document: Option<usize>,
    /// The object the document declares, e.g. `Kustomization flux-system/apps`.
    pub object: Option<String>,
    /// A dotted field path, e.g. `spec.dependsOn[0].name`.
    pub field: Option<String>,
}

/// An error about one unit, shaped like a compiler diagnostic: what, where, and a hint.
/// (Boxed, so that `Result`s carrying it stay small; fields are reached through `Deref`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError(Box<UnitErrorData>);

/// The contents of a [`UnitError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitErrorData {
    /// The unit at fault, if known.
    pub unit: Option<UnitId>,
    pub message: String,
    pub location: Location,
    pub hint: Option<String>,
    /// Set when rendering the unit panicked (a bug in capstan, caught at the unit's
    /// boundary, see [`crate::isolate`]), not when the repository is at fault.
    pub panicked: Option<crate::isolate::Panicked>,
    /// What failed: callers classify by this, never by the message.
    pub kind: ErrorKind,
}

/// The kind of a unit's failure, across the seams of a round (render, source fetch,
/// lookup, target cluster, apply). The agent maps kinds to Flux's reasons
/// (`ArtifactFailed`, `BuildFailed`, `HealthCheckFailed`, `DependencyNotReady`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Reading or rendering the unit (kustomize, Helm, substitution, the unit's spec).
    #[default]
    Render,
    /// The unit's source has no artifact (not fetched, or fetching failed).
    Source,
    /// Reading objects the unit refers to from the cluster (`substituteFrom`, `valuesFrom`).
    Lookup,
    /// Something the unit depends on did not succeed, or does not exist.
    Dependency,
    /// The unit's target cluster cannot be reached (`spec.kubeConfig`).
    Target,
    /// Applying failed.
    Apply,
    /// Applied, but not healthy in time.
    HealthCheck,
    /// A bug in capstan (a caught panic).
    Panic,
    /// The round stopped before the unit ran.
    Cancelled,
}

impl ErrorKind {
    /// Flux's condition reason for a unit that failed this way.
    pub fn flux_reason(self) -> &'static str {
        match self {
            ErrorKind::Render => "BuildFailed",
            ErrorKind::Source => "ArtifactFailed",
            ErrorKind::Lookup => "BuildFailed",
            ErrorKind::Dependency => "DependencyNotReady",
            ErrorKind::HealthCheck => "HealthCheckFailed",
            ErrorKind::Target | ErrorKind::Apply | ErrorKind::Panic | ErrorKind::Cancelled => {
                "ReconciliationFailed"
            }
        }
    }
}

impl UnitError {
    pub fn new(unit: Option<UnitId>, message: impl Into<String>) -> Self {
        UnitError(Box::new(UnitErrorData {
            unit,
            message: message.into(),
            location: Location::default(),
            hint: None,
            panicked: None,
            kind: ErrorKind::Render,
        }))
    }
    /// A unit whose rendering panicked, while doing `what` (e.g. "rendering").
    pub fn from_panic(
        unit: Option<UnitId>,
        what: &str,
        panicked: crate::isolate::Panicked,
    ) -> Self {
        let mut e = UnitError::new(unit, format!("{what} {panicked}")).hint(
            "this is a bug in capstan, not an error in the repository (please report it); only this unit is affected",
        );
        e.panicked = Some(panicked);
        e.0.kind = ErrorKind::Panic;
        e
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.location.field = Some(field.into());
        self
    }
    /// The error's [`ErrorKind`].
    pub fn kind(mut self, kind: ErrorKind) -> Self {
        self.0.kind = kind;
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn at(mut self, location: Location) -> Self {
        let field = self.location.field.take();
        self.location = location;
        if self.location.field.is_none() {
            self.location.field = field;
        }
        self
    }
}

impl std::ops::Deref for UnitError {
    type Target = UnitErrorData;
    fn deref(&self) -> &UnitErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for UnitError {
    fn deref_mut(&mut self) -> &mut UnitErrorData {
        &mut self.0
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.unit, &self.location.field) {
            (Some(u), Some(field)) => write!(
                f,
                "{} {}/{}: {}: {}",
                u.kind, u.namespace, u.name, field, self.message
            )?,
            (Some(u), None) => {
                write!(f, "{} {}/{}: {}", u.kind, u.namespace, u.name, self.message)?
            }
            (None, Some(field)) => write!(f, "{}: {}", field, self.message)?,
            (None, None) => write!(f, "{}", self.message)?,
        }
        if let Some(file) = &self.location.file {
            write!(f, "\n  --> {}", file.display())?;
            if let Some(doc) = self.location.document {
                write!(f, " (document {doc}")?;
                if let Some(obj) = &self.location.object {
                    write!(f, ", {obj}")?;
                }
                write!(f, ")")?;
            }
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnitError {}

/// "did you mean" among candidates, by edit distance.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (capstan_graph::distance(wrong, c), c))
        .filter(|(d, c)| *d <= 2.max(wrong.len().min(c.len()) / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
