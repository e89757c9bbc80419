//! Native Helm chart rendering, byte-for-byte what `helm template` (Helm v4) prints.
//!
//! [`template`] loads a chart through a [`capstan_vfs::FileSystem`], coalesces values,
//! processes dependencies, validates values against `values.schema.json`, renders every
//! template, splits and sorts the documents in Helm's install order and prints them with
//! `# Source:` headers, hooks last.

pub mod chart;
pub mod coalesce;
pub mod deps;
pub mod error;
pub mod ignore;
pub mod manifest;
pub mod schema;
pub mod semver;
pub mod strvals;
pub mod value;
pub mod yaml;

pub use chart::{load, load_archive, load_dir, Chart, ChartFile, Dependency, Metadata};
pub use error::HelmError;
pub use value::{Map, Val};
