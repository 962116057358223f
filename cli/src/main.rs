//! `flotilla`: the command-line tool. Parses flags and hands each subcommand to its module.

mod ping;
mod template;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Flotilla: one web application across several regions and cloud providers.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about)]
struct Cli {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    command: Command,
}

/// How to reach NATS.
#[derive(Debug, clap::Args)]
struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        value_delimiter = ',',
        global = true
    )]
    urls: Vec<String>,
    /// A NATS `.creds` file.
    #[arg(long = "nats-creds", env = "NATS_CREDS", global = true)]
    creds: Option<std::path::PathBuf>,
    /// A file holding the NATS token.
    #[arg(long = "nats-token-file", env = "NATS_TOKEN_FILE", global = true)]
    token_file: Option<std::path::PathBuf>,
}

impl NatsArgs {
    fn config(&self) -> anyhow::Result<flotilla_bus::BusConfig> {
        let mut cfg = flotilla_bus::BusConfig::for_urls(self.urls.clone());
        cfg.creds_file = self.creds.clone();
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading the NATS token file {}: {e}", path.display()))?;
            cfg.token = Some(token.trim().to_owned());
        }
        cfg.name = Some("flotilla-cli".into());
        Ok(cfg)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the Flotilla services answering on NATS.
    Ping(ping::Args),
    /// Check and import the original toolkit's templates.
    #[command(subcommand)]
    Template(template::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Template(cmd) => template::run(cmd),
        Command::Ping(args) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(async { ping::run(&cli.nats.config()?, args).await }),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flotilla: {e:#}");
            ExitCode::FAILURE
        }
    }
}
