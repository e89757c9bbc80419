//! Errors, worded as Helm words them.

/// A failure to load, check or render a chart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HelmError {
    /// Loading the chart (files, Chart.yaml, values.yaml, archives).
    #[error("{0}")]
    Load(String),
    /// Values given by the user (`-f`, `--set`).
    #[error("{0}")]
    Values(String),
    /// Dependencies, kubeVersion, chart type.
    #[error("{0}")]
    Chart(String),
    /// values.schema.json violations.
    #[error("{0}")]
    Schema(String),
    /// Template parse or execution errors.
    #[error("{0}")]
    Render(String),
    /// The rendered output is not valid YAML.
    #[error("{0}")]
    Manifest(String),
}

impl HelmError {
    /// The message without its kind.
    pub fn inner(&self) -> &str {
        match self {
            HelmError::Load(s)
            | HelmError::Values(s)
            | HelmError::Chart(s)
            | HelmError::Schema(s)
            | HelmError::Render(s)
            | HelmError::Manifest(s) => s,
        }
    }
}
