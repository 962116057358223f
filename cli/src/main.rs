//! `flotilla`: the command-line tool. Parses flags and hands each subcommand to its module.

mod deploy;
mod destroy;
mod dev;
mod dns;
mod firewall;
mod ping;
mod scale;
mod session;
mod status;
mod sync;
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
    /// NATS server URL(s), comma-separated [default: the `flotilla dev` running from this directory, else
    /// nats://127.0.0.1:4222].
    #[arg(long = "nats-url", env = "NATS_URL", value_delimiter = ',', global = true)]
    urls: Vec<String>,
    /// A NATS `.creds` file.
    #[arg(long = "nats-creds", env = "NATS_CREDS", global = true)]
    creds: Option<std::path::PathBuf>,
    /// A file holding the NATS token.
    #[arg(long = "nats-token-file", env = "NATS_TOKEN_FILE", global = true)]
    token_file: Option<std::path::PathBuf>,
}

impl NatsArgs {
    /// Whether a URL was given (flag or `NATS_URL`).
    fn explicit(&self) -> bool {
        !self.urls.is_empty()
    }

    fn config(&self) -> anyhow::Result<flotilla_bus::BusConfig> {
        let urls = if self.explicit() {
            self.urls.clone()
        } else {
            let here = std::env::current_dir()?;
            vec![session::dev_nats_url(&here).unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())]
        };
        let mut cfg = flotilla_bus::BusConfig::for_urls(urls);
        cfg.creds_file = self.creds.clone();
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading the NATS token file {}: {e}", path.display()))?;
            cfg.token = Some(token.trim().into());
        }
        cfg.name = Some("flotilla-cli".into());
        Ok(cfg)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine against the cloud simulator (state in ./.flotilla/).
    Dev(dev::Args),
    /// Deploy (or update) a deployment from TOML specs or the original toolkit's templates.
    ///
    /// Exit codes: 0 when every region is applied and healthy, 1 when a region failed or a command was
    /// refused, 2 when the files are not a valid deployment, 3 when NATS or the provisioner cannot be reached.
    Deploy(deploy::Args),
    /// Show the fleet: per region its machines and DBaaS, per deployment its DNS records.
    Status(status::Args),
    /// Remove everything Flotilla created in a deployment (or one of its regions).
    Destroy(destroy::Args),
    /// List the Flotilla services answering on NATS.
    Ping(ping::Args),
    /// Set the desired number of webservers of a region (within its min and max).
    ///
    /// Exit codes: 0 when the autoscaler took it (with --wait: once the region is there, all healthy), 1
    /// when it was refused or did not converge in time, 3 when NATS or the autoscaler cannot be reached.
    Scale(scale::ScaleArgs),
    /// What the autoscaler does with a deployment's regions (and pause, resume, protect).
    #[command(subcommand)]
    Scaling(scale::ScalingCommand),
    /// Point a deployment's authenticator name at another region's authenticator.
    ///
    /// The name stays there until the next fail-over (this command, or the dns service's own when that
    /// region's authenticators are known down); it never moves back by itself.
    ///
    /// Exit codes: 0 once the name points at the region (or already did), 1 when the dns service refused it
    /// (deployment or region not deployed, no authenticator there) or did not move it in time, 3 when NATS
    /// or the dns service cannot be reached.
    Failover(dns::FailoverArgs),
    /// A deployment's DNS records: what the dns service would do, and taking records over.
    #[command(subcommand)]
    Dns(dns::DnsCommand),
    /// A deployment's firewalls and DBaaS allow-list: what the firewall service would do, and why an
    /// address is (not) allowed.
    #[command(subcommand)]
    Firewall(firewall::FirewallCommand),
    /// A deployment's webroots and buckets across regions: replication, agents, backups.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Take a backup of a deployment's webroot now, on every datastore of every region.
    ///
    /// Exit codes: 0 once the archive is written (on every datastore, or with the ones still missing it
    /// listed: they are filled in as soon as they answer), 1 when refused or not done in time, 3 when NATS or
    /// the sync service cannot be reached.
    Backup(sync::BackupArgs),
    /// Put the newest good backup (checksum verified, from any provider) back into a deployment's webroot.
    ///
    /// Exit codes: 0 once restored, 1 when there is no good backup or it was refused, 3 when NATS or the
    /// sync service cannot be reached.
    Restore(sync::RestoreArgs),
    /// Check and import the original toolkit's templates.
    #[command(subcommand)]
    Template(template::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(async {
            match cli.command {
                Command::Template(cmd) => template::run(cmd),
                Command::Ping(args) => ping::run(&cli.nats.config()?, args).await,
                Command::Scale(args) => scale::scale(&cli.nats.config()?, args).await,
                Command::Scaling(cmd) => scale::scaling(&cli.nats.config()?, cmd).await,
                Command::Failover(args) => dns::failover(&cli.nats.config()?, args).await,
                Command::Dns(cmd) => dns::run(&cli.nats.config()?, cmd).await,
                Command::Firewall(cmd) => firewall::run(&cli.nats.config()?, cmd).await,
                Command::Sync(cmd) => sync::run(&cli.nats.config()?, cmd).await,
                Command::Backup(args) => sync::backup(&cli.nats.config()?, args).await,
                Command::Restore(args) => sync::restore(&cli.nats.config()?, args).await,
                Command::Deploy(args) => deploy::run(&cli.nats.config()?, args).await,
                Command::Status(args) => status::run(&cli.nats.config()?, args).await,
                Command::Destroy(args) => destroy::run(&cli.nats.config()?, args).await,
                Command::Dev(args) => {
                    let explicit = if cli.nats.explicit() {
                        Some(cli.nats.config()?)
                    } else {
                        None
                    };
                    dev::run(explicit, args).await
                }
            }
        }),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flotilla: {e:#}");
            match e.downcast_ref::<session::Exit>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};
    use crate::dns::DnsCommand;
    use crate::session::Output;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("flotilla").chain(args.iter().copied()))
    }

    #[test]
    fn the_commands_are_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn failover_needs_the_region_to_move_to() {
        let cli = parse(&["failover", "shop", "--to", "nl-ams"]).unwrap();
        assert!(matches!(&cli.command, Command::Failover(_)), "{:?}", cli.command);
        let debug = format!("{:?}", cli.command);
        assert!(
            debug.contains("deployment: \"shop\"") && debug.contains("to: \"nl-ams\""),
            "{debug}"
        );
        let e = parse(&["failover", "shop"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--to <REGION>"), "{e}");
    }

    #[test]
    fn dns_show_takes_the_output_format() {
        match parse(&["dns", "show", "shop", "--output", "json"])
            .unwrap()
            .command
        {
            Command::Dns(DnsCommand::Show { deployment, output }) => {
                assert_eq!(deployment, "shop");
                assert_eq!(output, Output::Json);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["dns", "show", "shop"]).unwrap().command {
            Command::Dns(DnsCommand::Show { output, .. }) => assert_eq!(output, Output::Table),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["dns", "show", "shop", "-o", "yaml"]).is_err());
    }

    #[test]
    fn hand_over_takes_the_owner_names_and_dry_run() {
        match parse(&[
            "dns",
            "hand-over",
            "shop",
            "--from",
            "old-shop",
            "--name",
            "www.example.com",
            "--name",
            "auth.example.com",
            "--dry-run",
        ])
        .unwrap()
        .command
        {
            Command::Dns(DnsCommand::HandOver {
                deployment,
                from,
                names,
                dry_run,
            }) => {
                assert_eq!(deployment, "shop");
                assert_eq!(from, "old-shop");
                assert_eq!(names, ["www.example.com", "auth.example.com"]);
                assert!(dry_run);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["dns", "hand-over", "shop", "--from", "flotilla:shop"])
            .unwrap()
            .command
        {
            Command::Dns(DnsCommand::HandOver { names, dry_run, .. }) => {
                assert!(names.is_empty());
                assert!(!dry_run);
            }
            other => panic!("{other:?}"),
        }
        let e = parse(&["dns", "hand-over", "shop"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn adopt_takes_dry_run() {
        match parse(&["dns", "adopt", "shop", "--dry-run"]).unwrap().command {
            Command::Dns(DnsCommand::Adopt { deployment, dry_run }) => {
                assert_eq!(deployment, "shop");
                assert!(dry_run);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_new_command_has_an_example_in_its_help() {
        let mut cli = Cli::command();
        for path in [
            &["failover"][..],
            &["dns", "show"],
            &["dns", "hand-over"],
            &["dns", "adopt"],
            &["status"],
        ] {
            let mut cmd = &mut cli;
            for name in path {
                cmd = cmd.find_subcommand_mut(name).unwrap();
            }
            let help = cmd.render_help().to_string();
            assert!(help.contains("flotilla "), "{path:?}: {help}");
            assert!(help.contains("Example"), "{path:?}: {help}");
        }
    }
}
