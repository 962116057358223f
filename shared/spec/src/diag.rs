//! Diagnostics: the problems found while reading templates or checking a deployment.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input cannot be used as it stands.
    Error,
    /// The input is usable, but something looks wrong or was ignored.
    Warning,
}

/// One problem, located as precisely as the input allows.
///
/// `file` is the template name (or path) for imported templates, and `<deployment>.toml` for problems
/// found in a deployment spec; `key` is the template key (`NO_REVERSE_PROXY`) or the spec path
/// (`regions[gb-lon].machines.reverse_proxy.count`) the problem is about.
///
/// Displays as `file:line: KEY: message`, with `warning: ` after the location for warnings and the
/// missing parts left out, e.g.
/// `gb-lon.tmpl:87: NO_REVERSE_PROXY: multi-region deployments need at least one reverse proxy per region (found "0")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file (template name, path, or spec file name) the problem is in.
    pub file: String,
    /// The 1-based line within `file`, when the problem is tied to one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The template key or spec path concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong, in one sentence. Never contains a secret value.
    pub message: String,
}

impl Diagnostic {
    /// A new error in `file`.
    pub fn error(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, message)
    }

    /// A new warning in `file`.
    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, message)
    }

    /// A new diagnostic of the given severity.
    pub fn new(severity: Severity, file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            file: file.into(),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    /// Sets the line.
    #[must_use]
    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A list of diagnostics, displayed one per line; the error type of the importer and of
/// [`Deployment::check`](crate::Deployment::check), where it holds every problem found (errors and
/// warnings, at least one error).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.items))]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

fn render(items: &[Diagnostic]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Diagnostics {
    /// Wraps a list of diagnostics.
    pub fn new(items: Vec<Diagnostic>) -> Self {
        Self { items }
    }

    /// All diagnostics, in report order.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.items
    }

    /// All diagnostics, in report order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no diagnostics at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The diagnostics as a vector.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(items: Vec<Diagnostic>) -> Self {
        Self::new(items)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_full_and_partial() {
        let d = Diagnostic::error("gb-lon.tmpl", "needs one (found \"0\")")
            .at_line(Some(87))
            .with_key("NO_REVERSE_PROXY");
        assert_eq!(
            d.to_string(),
            "gb-lon.tmpl:87: NO_REVERSE_PROXY: needs one (found \"0\")"
        );
        let w = Diagnostic::warning("a.tmpl", "odd");
        assert_eq!(w.to_string(), "a.tmpl: warning: odd");
        let all = Diagnostics::new(vec![d, w]);
        assert_eq!(all.to_string().lines().count(), 2);
        assert!(all.has_errors());
        assert_eq!(all.warnings().count(), 1);
    }
}
