//! What a command prints, in the one format chosen by the global `--output` (`-o`) flag: text for people
//! (`table`, the default), or JSON for scripts (`json`): then stdout carries exactly one JSON document —
//! a command's answer or result — and the lines written for people go to stderr.

use std::sync::OnceLock;

use serde::Serialize;

/// Output formats (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Text for people.
    #[default]
    Table,
    /// The services' answers as JSON, for scripts.
    Json,
}

static FORMAT: OnceLock<Output> = OnceLock::new();

/// Sets the format for the rest of the process (the first call wins).
pub fn set(format: Output) {
    let _ = FORMAT.set(format);
}

/// The format chosen.
pub fn format() -> Output {
    FORMAT.get().copied().unwrap_or_default()
}

/// Whether JSON was asked for.
pub fn json() -> bool {
    format() == Output::Json
}

/// A line for people: on stdout, or on stderr when stdout carries JSON.
pub fn line(text: &str) {
    if json() {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// Text for people (already ending in a line break, as a rendered table does), where [`line`] puts it.
pub fn text(text: &str) {
    if json() {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// A command's answer or result: as JSON on stdout when JSON was asked for, else `table` (rendered text).
pub fn answer<T: Serialize>(value: &T, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json() {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", table());
    }
    Ok(())
}

/// A command's result as JSON on stdout when JSON was asked for (its text was said line by line).
pub fn result<T: Serialize>(value: &T) -> anyhow::Result<()> {
    if json() {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

/// `say!("…", args)`: [`line`] with `format!`'s arguments.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(&format!($($arg)*))
    };
}
pub(crate) use say;
