//! `flotilla`: the command-line tool. Parses flags and hands each subcommand to its module.

mod deploy;
mod destroy;
mod dev;
mod dlq;
mod dns;
mod events;
mod firewall;
mod machine;
mod out;
mod ping;
mod scale;
mod session;
mod status;
mod sync;
mod template;
mod why;

#[cfg(test)]
mod readme;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Flotilla: one web application across several regions and cloud providers.
#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about,
    after_help = "Examples:\n  flotilla dev --demo\n  flotilla status\n  flotilla --nats-url nats://nats.example:4222 \
                  --nats-creds ops.creds status -o json\n  flotilla completions bash > /etc/bash_completion.d/flotilla"
)]
struct Cli {
    #[command(flatten)]
    nats: NatsArgs,
    /// Output format: `table` for people, `json` for scripts (one JSON document on stdout; the lines for
    /// people then go to stderr).
    #[arg(long, short, value_enum, global = true, default_value = "table")]
    output: out::Output,
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
    /// A NATS `.creds` file (JWT and NKey seed).
    #[arg(long = "nats-creds", env = "NATS_CREDS", global = true)]
    creds: Option<std::path::PathBuf>,
    /// A file holding the NATS token.
    #[arg(long = "nats-token-file", env = "NATS_TOKEN_FILE", global = true)]
    token_file: Option<std::path::PathBuf>,
    /// NATS user name (with `--nats-password-file` or `NATS_PASSWORD`).
    #[arg(long = "nats-user", env = "NATS_USER", global = true)]
    user: Option<String>,
    /// A file holding the NATS password (never give a password on the command line: `ps` shows it).
    #[arg(long = "nats-password-file", env = "NATS_PASSWORD_FILE", global = true)]
    password_file: Option<std::path::PathBuf>,
    /// A file holding an NKey seed (`SU…`).
    #[arg(long = "nats-nkey", env = "NATS_NKEY", global = true)]
    nkey: Option<std::path::PathBuf>,
    /// CA certificate(s) to trust for TLS, PEM (TLS is then required).
    #[arg(long = "nats-tls-ca", env = "NATS_CA", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Client certificate for TLS, PEM (with `--nats-tls-key`).
    #[arg(long = "nats-tls-cert", env = "NATS_CERT", global = true)]
    tls_cert: Option<std::path::PathBuf>,
    /// Client key for TLS, PEM.
    #[arg(long = "nats-tls-key", env = "NATS_KEY", global = true)]
    tls_key: Option<std::path::PathBuf>,
}

/// The first line of `path`'s content, trimmed: a token or a password kept in a file.
fn secret_file(what: &str, path: &std::path::Path) -> anyhow::Result<secrecy::SecretString> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        session::Exit::error(
            session::exit::INVALID,
            format!("reading the NATS {what} file {}: {e}", path.display()),
        )
    })?;
    Ok(text.trim().to_owned().into())
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
            cfg.token = Some(secret_file("token", path)?);
        }
        cfg.user = self.user.clone();
        cfg.password = match (&self.password_file, std::env::var("NATS_PASSWORD")) {
            (Some(path), _) => Some(secret_file("password", path)?),
            (None, Ok(p)) if !p.is_empty() => Some(p.into()),
            _ => None,
        };
        cfg.nkey_seed_file = self.nkey.clone();
        cfg.tls.ca_file = self.tls_ca.clone();
        cfg.tls.cert_file = self.tls_cert.clone();
        cfg.tls.key_file = self.tls_key.clone();
        cfg.tls.required = self.tls_ca.is_some() || self.tls_cert.is_some();
        cfg.name = Some("flotilla-cli".into());
        cfg.validate().map_err(|e| {
            session::Exit::error(session::exit::INVALID, format!("NATS connection options: {e}"))
        })?;
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
    /// Deploy the three example regions and show the system at work, against a Flotilla running on the
    /// cloud simulator (what `dev --demo` does once everything is up; the compose demo's one-shot container).
    Demo(dev::DemoArgs),
    /// Each service's account of a region: what it would do next and why, or why it does nothing.
    Why(why::Args),
    /// What the services did, from the event stream (`--follow` for what they do next).
    Events(events::Args),
    /// Dead letters: commands and events a service gave up on (list, show, replay).
    #[command(subcommand)]
    Dlq(dlq::Command),
    /// Stop the autoscaler scaling a region (health is still watched, unhealthy machines still replaced).
    Pause(machine::PauseArgs),
    /// Let the autoscaler scale a paused region again.
    Resume(machine::ResumeArgs),
    /// Never pick a machine for scale-in (`--off` lifts it).
    Protect(machine::ProtectArgs),
    /// Replace a machine: a new one of its role is made, then the old one destroyed once it is healthy.
    Replace(machine::ReplaceArgs),
    /// Have every service compare a deployment with the providers now instead of at its next resync.
    Reconcile(machine::ReconcileArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    #[command(
        after_help = "Examples:\n  flotilla completions bash > ~/.local/share/bash-completion/completions/flotilla\n  \
                            flotilla completions zsh > ~/.zfunc/_flotilla\n  \
                            flotilla completions fish > ~/.config/fish/completions/flotilla.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Check and import the original toolkit's templates.
    #[command(subcommand)]
    Template(template::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    out::set(cli.output);
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "flotilla", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(async {
            match cli.command {
                Command::Template(cmd) => template::run(cmd),
                Command::Completions { .. } => Ok(ExitCode::SUCCESS),
                Command::Demo(args) => dev::run_demo(&cli.nats.config()?, args).await,
                Command::Why(args) => why::run(&cli.nats.config()?, args).await,
                Command::Events(args) => events::run(&cli.nats.config()?, args).await,
                Command::Dlq(cmd) => dlq::run(&cli.nats.config()?, cmd).await,
                Command::Pause(args) => machine::pause(&cli.nats.config()?, args).await,
                Command::Resume(args) => machine::resume(&cli.nats.config()?, args).await,
                Command::Protect(args) => machine::protect(&cli.nats.config()?, args).await,
                Command::Replace(args) => machine::replace(&cli.nats.config()?, args).await,
                Command::Reconcile(args) => machine::reconcile(&cli.nats.config()?, args).await,
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
    use crate::out::Output;

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
    fn the_output_format_is_one_global_flag() {
        let cli = parse(&["dns", "show", "shop", "--output", "json"]).unwrap();
        assert_eq!(cli.output, Output::Json);
        match cli.command {
            Command::Dns(DnsCommand::Show { deployment }) => assert_eq!(deployment, "shop"),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(&["dns", "show", "shop"]).unwrap().output, Output::Table);
        // Anywhere on the line, with one spelling.
        assert_eq!(parse(&["-o", "json", "ping"]).unwrap().output, Output::Json);
        assert_eq!(parse(&["ping", "-o", "json"]).unwrap().output, Output::Json);
        assert_eq!(
            parse(&["scaling", "show", "shop", "--output", "json"])
                .unwrap()
                .output,
            Output::Json
        );
        assert!(parse(&["dns", "show", "shop", "-o", "yaml"]).is_err());
        assert!(parse(&["ping", "--json"]).is_err());
    }

    #[test]
    fn connection_options_reach_the_bus_config() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let cli = parse(&[
            "--nats-url",
            "tls://a:4222,tls://b:4222",
            "--nats-user",
            "ops",
            "--nats-password-file",
            password.to_str().unwrap(),
            "--nats-tls-ca",
            ca.to_str().unwrap(),
            "ping",
        ])
        .unwrap();
        let cfg = cli.nats.config().unwrap();
        assert_eq!(cfg.urls, ["tls://a:4222", "tls://b:4222"]);
        assert_eq!(cfg.user.as_deref(), Some("ops"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(cfg.password.as_ref().unwrap()),
            "s3cret"
        );
        assert_eq!(cfg.tls.ca_file.as_deref(), Some(ca.as_path()));
        assert!(cfg.tls.required);
        // Never in what a debug print shows.
        assert!(!format!("{cfg:?}").contains("s3cret"));
        // Two ways of authenticating at once are refused before anything is tried.
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        let both = parse(&[
            "--nats-url",
            "nats://a:4222",
            "--nats-user",
            "ops",
            "--nats-password-file",
            password.to_str().unwrap(),
            "--nats-token-file",
            token.to_str().unwrap(),
            "ping",
        ])
        .unwrap();
        let e = both.nats.config().unwrap_err().to_string();
        assert!(e.contains("not several"), "{e}");
        // A user without a password is refused with the reason.
        let e = parse(&["--nats-url", "nats://a:4222", "--nats-user", "ops", "ping"])
            .unwrap()
            .nats
            .config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("together"), "{e}");
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

    /// Every command a user can run (those without subcommands of their own), by path.
    fn leaves(cmd: &clap::Command, path: Vec<String>, found: &mut Vec<Vec<String>>) {
        let subs: Vec<_> = cmd.get_subcommands().filter(|c| c.get_name() != "help").collect();
        if subs.is_empty() {
            found.push(path.clone());
        }
        for sub in subs {
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            leaves(sub, p, found);
        }
    }

    #[test]
    fn every_command_has_an_example_in_its_help() {
        let cli = Cli::command();
        let mut found = Vec::new();
        leaves(&cli, Vec::new(), &mut found);
        assert!(found.len() > 30, "{found:?}");
        let mut missing = Vec::new();
        for path in &found {
            let mut cmd = Cli::command();
            let mut at = &mut cmd;
            for name in path {
                at = at.find_subcommand_mut(name).unwrap();
            }
            let help = at.render_long_help().to_string();
            let example = format!("flotilla {}", path.join(" "));
            if !(help.contains("Example") && help.contains(&example)) {
                missing.push(path.join(" "));
            }
        }
        assert!(
            missing.is_empty(),
            "commands without an example of themselves in --help: {missing:?}"
        );
    }

    #[test]
    fn completions_cover_the_commands() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "flotilla",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        for word in [
            "status",
            "why",
            "events",
            "dlq",
            "replay",
            "--output",
            "--nats-creds",
        ] {
            assert!(script.contains(word), "{word} not completed");
        }
    }
}
