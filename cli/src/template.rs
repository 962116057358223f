//! `flotilla template check|import`: the original toolkit's templates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::out::{self, say};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check templates (several = one deployment); print every problem; exit 1 on errors.
    #[command(after_help = "Example:\n  flotilla template check examples/*.tmpl")]
    Check {
        /// Template files, one per region.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Import templates into a TOML spec and a separate secrets file (mode 0600), keyed by deployment:
    /// the secrets files of several deployments can be concatenated into one for the services.
    #[command(after_help = "Example:\n  flotilla template import examples/*.tmpl --dir deployments/")]
    Import {
        /// Template files, one per region.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Directory to write `<deployment>.toml` and `<deployment>.secrets.toml` (its credentials under
        /// `[deployments.<deployment>]`) into.
        #[arg(long = "dir", short = 'd', visible_alias = "out")]
        out: PathBuf,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let (files, out) = match cmd {
        Command::Check { files } => (files, None),
        Command::Import { files, out } => (files, Some(out)),
    };
    let import = match flotilla_spec::check_files(&files) {
        Ok(import) => import,
        Err(diagnostics) => {
            for d in diagnostics.iter() {
                eprintln!("{d}");
            }
            let errors = diagnostics.errors().count();
            eprintln!("{errors} error(s), {} warning(s)", diagnostics.len() - errors);
            out::result(&serde_json::json!({
                "ok": false,
                "problems": diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))?;
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &import.warnings {
        eprintln!("{w}");
    }
    let d = &import.deployment;
    let regions: Vec<String> = d
        .regions
        .iter()
        .map(|r| {
            format!(
                "{} ({}{})",
                r.name,
                r.provider,
                if r.primary { ", primary" } else { "" }
            )
        })
        .collect();
    let mut result = serde_json::json!({
        "ok": true,
        "deployment": d.name,
        "regions": regions,
        "warnings": import.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    match out {
        None => say!(
            "OK: {} template(s) form deployment {} with {} region(s): {}",
            files.len(),
            d.name,
            regions.len(),
            regions.join(", ")
        ),
        Some(dir) => {
            let (spec, secrets) = import.write_to_dir(&dir)?;
            say!("deployment {}: {}", d.name, regions.join(", "));
            say!("wrote {}", spec.display());
            say!(
                "wrote {} (mode 0600, under [deployments.{}]; keep it off the bus and out of version control)",
                secrets.display(),
                d.name
            );
            result["spec"] = spec.display().to_string().into();
            result["secrets"] = secrets.display().to_string().into();
        }
    }
    out::result(&result)?;
    Ok(ExitCode::SUCCESS)
}
