//! Errors of the Argo CD reader: each keeps its kind and where it comes from (the file,
//! the document in it, the Application or ApplicationSet and the field).

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An Application without `spec.source` or `spec.sources`.
    MissingSource,
    /// `spec.source` names more than one source type (helm and kustomize...).
    MultipleSourceTypes,
    /// A config management plugin source (`source.plugin`) or a jsonnet directory.
    UnsupportedSource,
    /// A source on another repository or a chart from a Helm/OCI repository, and no
    /// fetcher for it.
    RemoteSource,
    /// The source path is not a directory of the repository.
    PathNotFound,
    /// A value file, parameter file or other input that cannot be read or parsed.
    BadInput,
    /// Helm failed.
    Helm,
    /// kustomize failed.
    Kustomize,
    /// A template failed to parse or execute (`missingkey=error` included).
    Template,
    /// A generator Argo CD does not know.
    UnknownGenerator,
    /// A generator that needs live APIs (pullRequest, scmProvider, clusterDecisionResource,
    /// plugin).
    UnsupportedGenerator,
    /// A generator that is malformed (matrix without two children...).
    BadGenerator,
    /// One ApplicationSet generates two Applications with one name.
    DuplicateName,
    /// App of apps: an Application generates itself (the cycle is named).
    Cycle,
    /// App of apps: more Applications or deeper nesting than the budget.
    Budget,
}

/// An error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoError {
    pub kind: ErrorKind,
    /// The file (relative to the repository root) or `parent: NAME` for app-of-apps children.
    pub file: String,
    /// 1-based document index in the file (0 when unknown).
    pub document: u32,
    /// `Application/NAME` or `ApplicationSet/NAME`.
    pub object: String,
    /// The field (`spec.source`, `spec.generators[0].list`...).
    pub field: String,
    pub message: String,
    /// A hint, when there is one.
    pub hint: Option<Box<str>>,
}

impl ArgoError {
    pub fn new(kind: ErrorKind, field: impl Into<String>, message: impl Into<String>) -> Self {
        ArgoError {
            kind,
            file: String::new(),
            document: 0,
            object: String::new(),
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into().into_boxed_str());
        self
    }

    /// Fill in where, unless already known.
    pub fn at(mut self, file: &str, document: usize, object: &str) -> Self {
        if self.file.is_empty() {
            self.file = file.to_string();
            self.document = u32::try_from(document).unwrap_or(u32::MAX);
        }
        if self.object.is_empty() {
            self.object = object.to_string();
        }
        self
    }
}

impl fmt::Display for ArgoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}", self.file)?;
            if self.document > 0 {
                write!(f, " (document {})", self.document)?;
            }
            write!(f, ": ")?;
        }
        if !self.object.is_empty() {
            write!(f, "{}: ", self.object)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ArgoError {}
