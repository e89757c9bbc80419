use std::fmt;

/// A build error. The message keeps kustomize's own phrases (`must resolve to a file`,
/// `may not add resource with an already registered id`, ...) and names the file and
/// field involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeError {
    pub message: String,
}

impl KustomizeError {
    pub fn new(message: impl Into<String>) -> Self {
        KustomizeError {
            message: message.into(),
        }
    }
    /// Prefix the message with context (`accumulating resources: ...`).
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        KustomizeError {
            message: format!("{ctx}: {}", self.message),
        }
    }
}

impl fmt::Display for KustomizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KustomizeError {}

impl From<capstan_yaml::YamlError> for KustomizeError {
    fn from(e: capstan_yaml::YamlError) -> Self {
        KustomizeError::new(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, KustomizeError>;

macro_rules! kerr {
    ($($arg:tt)*) => { $crate::error::KustomizeError::new(format!($($arg)*)) };
}
pub(crate) use kerr;
