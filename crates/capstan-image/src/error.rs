//! Typed errors. Each kind maps to what Flux's image-reflector-controller does with it
//! (`Stalled` for an invalid policy, `Ready=False` for the others).

use std::fmt;

/// What went wrong, by kind (callers branch on this, never on message text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageErrorKind {
    /// A field of an ImagePolicy/ImageRepository/ImageUpdateAutomation is missing or
    /// malformed (Flux: the API server or the controller refuses it; `Stalled`).
    InvalidSpec,
    /// The policy cannot be built: a bad semver range, an unknown order, a regular
    /// expression that does not compile (Flux: `Stalled`, reason `InvalidPolicy`).
    InvalidPolicy,
    /// The repository has no tags at all (Flux: `DependencyNotReady`).
    NoTags,
    /// The policy saw an empty list (every tag was filtered out).
    EmptyVersionList,
    /// No tag satisfies the semver range.
    NoMatchingVersion,
    /// A tag is not a number for a `numerical` policy (Flux's `strconv.ParseFloat`).
    InvalidNumber,
    /// The registry could not be listed (unreachable, refused credentials, ...).
    Scan,
    /// The digest of the elected tag could not be looked up.
    Digest,
    /// A setter comment names a malformed policy reference.
    InvalidSetter,
}

/// An error with its kind, the object/field it concerns and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageError {
    pub kind: ImageErrorKind,
    /// `ImagePolicy ns/name`, a file name, ...: where the error is (may be empty).
    pub context: String,
    /// The field, e.g. `spec.policy.semver.range` (may be empty).
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ImageError {
    pub fn new(kind: ImageErrorKind, message: impl Into<String>) -> Self {
        ImageError {
            kind,
            context: String::new(),
            field: String::new(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// Sets the context unless one is already set.
    pub fn or_context(mut self, context: impl Into<String>) -> Self {
        if self.context.is_empty() {
            self.context = context.into();
        }
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImageError {}
