//! The crate's error type.

use std::path::{Path, PathBuf};

use crate::Diagnostics;

/// Everything that can go wrong reading, checking or writing specs and secrets.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The TOML text does not describe a deployment (or secrets).
    #[error("invalid TOML: {0}")]
    TomlParse(#[from] toml::de::Error),
    /// The value could not be written as TOML.
    #[error("cannot write TOML: {0}")]
    TomlWrite(#[from] toml::ser::Error),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A secrets file (or secrets text) that cannot be used: it does not parse, or has the wrong layout.
    /// The message never quotes the text, which may hold credentials.
    #[error("{origin}: {message}")]
    Secrets {
        /// The file, or `secrets TOML` for text not read from a file.
        origin: String,
        /// What is wrong, with the line and column when known.
        message: String,
    },
    /// The deployment breaks the rules; every problem is listed.
    #[error("invalid deployment:\n{0}")]
    Invalid(#[from] Diagnostics),
}

impl SpecError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
