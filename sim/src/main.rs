//! `flotilla-cloudsim`: runs the cloud simulator until Ctrl-C, printing where each API listens.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use flotilla_cloudsim::{
    ExoscaleKey, Fault, FaultKind, Provider, RateLimits, S3EndpointConfig, SimConfig, Simulator, Token,
};
use ipnet::Ipv4Net;

/// A local stand-in for the Linode, DigitalOcean, Vultr, Exoscale and Cloudflare APIs and their S3
/// endpoints, with machines that answer health checks and injectable faults.
#[derive(Debug, Parser)]
#[command(name = "flotilla-cloudsim", version)]
struct Args {
    /// Address every API listens on.
    #[arg(long, env = "CLOUDSIM_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Linode API port (0 = any free port).
    #[arg(long, env = "CLOUDSIM_LINODE_PORT", default_value_t = 0)]
    linode_port: u16,
    /// DigitalOcean API port.
    #[arg(long, env = "CLOUDSIM_DIGITALOCEAN_PORT", default_value_t = 0)]
    digitalocean_port: u16,
    /// Vultr API port.
    #[arg(long, env = "CLOUDSIM_VULTR_PORT", default_value_t = 0)]
    vultr_port: u16,
    /// Exoscale API port (every zone: /<zone>/v2).
    #[arg(long, env = "CLOUDSIM_EXOSCALE_PORT", default_value_t = 0)]
    exoscale_port: u16,
    /// Cloudflare API port.
    #[arg(long, env = "CLOUDSIM_CLOUDFLARE_PORT", default_value_t = 0)]
    cloudflare_port: u16,
    /// Admin API port (faults, counters, machines).
    #[arg(long, env = "CLOUDSIM_ADMIN_PORT", default_value_t = 0)]
    admin_port: u16,
    /// How long a machine provisions before it runs (e.g. 2s, 500ms).
    #[arg(long, env = "CLOUDSIM_BOOT_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    boot_delay: Duration,
    /// How long a managed database provisions before it is active.
    #[arg(long, env = "CLOUDSIM_DATABASE_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    database_delay: Duration,
    /// The port machines answer health checks on, at their own 127.x.y.z address.
    #[arg(long, env = "CLOUDSIM_HEALTH_PORT", default_value_t = 8080)]
    health_port: u16,
    /// Where machines' public IPs come from.
    #[arg(long, env = "CLOUDSIM_PUBLIC_IPS", default_value = "127.10.0.0/16")]
    public_ips: Ipv4Net,
    /// Keep state here across restarts.
    #[arg(long, env = "CLOUDSIM_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// A start-up fault as JSON, e.g. '{"provider":"linode","kind":"fail_creates","count":2}' (repeatable).
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<Fault>,
    /// Fail the next N creates: PROVIDER=N (repeatable).
    #[arg(long, value_parser = parse_fail_creates)]
    fail_creates: Vec<Fault>,
    /// A region (zone) down from the start: PROVIDER=REGION (repeatable).
    #[arg(long, value_parser = parse_region_down)]
    region_down: Vec<Fault>,
    /// Added latency: PROVIDER=MILLIS (repeatable).
    #[arg(long, value_parser = parse_latency)]
    latency: Vec<Fault>,
    /// A rate-limit storm from the start: PROVIDER=RETRY_AFTER_SECS (repeatable).
    #[arg(long, value_parser = parse_storm)]
    rate_limit_storm: Vec<Fault>,
    /// Do not enforce the providers' rate limits.
    #[arg(long)]
    no_rate_limits: bool,
    /// An extra accepted bearer token: PROVIDER=NAME:TOKEN (repeatable).
    #[arg(long = "token", value_parser = parse_token)]
    tokens: Vec<(Provider, Token)>,
    /// An extra accepted Exoscale key pair: NAME:KEY:SECRET (repeatable).
    #[arg(long = "exoscale-key", value_parser = parse_exoscale_key)]
    exoscale_keys: Vec<ExoscaleKey>,
    /// Cloudflare zones that exist from the start (repeatable; default example.com).
    #[arg(long = "cloudflare-zone")]
    cloudflare_zones: Vec<String>,
    /// Zones the DNS of Linode, DigitalOcean, Vultr and Exoscale hold from the start (repeatable; default
    /// example.com).
    #[arg(long = "provider-zone")]
    provider_zones: Vec<String>,
    /// S3 endpoints: PROVIDER=REGION or PROVIDER=REGION@PORT (repeatable; replaces the defaults).
    #[arg(long = "s3", value_parser = parse_s3)]
    s3: Vec<S3EndpointConfig>,
    /// Serve no S3 endpoints.
    #[arg(long)]
    no_s3: bool,
}

fn pair(s: &str) -> Result<(Provider, &str), String> {
    let (p, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected PROVIDER=VALUE, got {s:?}"))?;
    Ok((p.parse()?, v))
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    serde_json::from_str(s).map_err(|e| format!("not a fault: {e}"))
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{v:?} is not a number"))
}

fn parse_fail_creates(s: &str) -> Result<Fault, String> {
    let (provider, v) = pair(s)?;
    Ok(Fault {
        provider,
        kind: FaultKind::FailCreates { count: number(v)? },
    })
}

fn parse_region_down(s: &str) -> Result<Fault, String> {
    let (provider, v) = pair(s)?;
    Ok(Fault {
        provider,
        kind: FaultKind::RegionDown { region: v.to_owned() },
    })
}

fn parse_latency(s: &str) -> Result<Fault, String> {
    let (provider, v) = pair(s)?;
    Ok(Fault {
        provider,
        kind: FaultKind::Latency { millis: number(v)? },
    })
}

fn parse_storm(s: &str) -> Result<Fault, String> {
    let (provider, v) = pair(s)?;
    Ok(Fault {
        provider,
        kind: FaultKind::RateLimitStorm {
            retry_after_secs: number(v)?,
            duration_secs: None,
            count: None,
        },
    })
}

fn parse_token(s: &str) -> Result<(Provider, Token), String> {
    let (provider, v) = pair(s)?;
    if provider == Provider::Exoscale {
        return Err("Exoscale signs requests: use --exoscale-key NAME:KEY:SECRET".into());
    }
    let (name, token) = v.split_once(':').ok_or("expected PROVIDER=NAME:TOKEN")?;
    Ok((provider, Token::new(name, token)))
}

fn parse_exoscale_key(s: &str) -> Result<ExoscaleKey, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(key), Some(secret)) => Ok(ExoscaleKey {
            name: name.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
        }),
        _ => Err("expected NAME:KEY:SECRET".into()),
    }
}

fn parse_s3(s: &str) -> Result<S3EndpointConfig, String> {
    let (provider, rest) = pair(s)?;
    let (region, port) = match rest.split_once('@') {
        Some((region, port)) => (
            region,
            port.parse()
                .map_err(|_| format!("{port:?} is not a port (expected PROVIDER=REGION@PORT)"))?,
        ),
        None => (rest, 0),
    };
    let mut endpoint = S3EndpointConfig::new(provider, region);
    endpoint.port = port;
    Ok(endpoint)
}

fn config(args: Args) -> SimConfig {
    let mut config = SimConfig {
        bind: args.bind,
        boot_delay: args.boot_delay,
        database_delay: args.database_delay,
        health_port: args.health_port,
        public_ips: args.public_ips,
        state_dir: args.state_dir,
        ..SimConfig::default()
    };
    config.ports.linode = args.linode_port;
    config.ports.digitalocean = args.digitalocean_port;
    config.ports.vultr = args.vultr_port;
    config.ports.exoscale = args.exoscale_port;
    config.ports.cloudflare = args.cloudflare_port;
    config.ports.admin = args.admin_port;
    config.faults = [
        args.faults,
        args.fail_creates,
        args.region_down,
        args.latency,
        args.rate_limit_storm,
    ]
    .concat();
    if args.no_rate_limits {
        for limits in config.rate_limits.values_mut() {
            *limits = RateLimits::default();
        }
    }
    for (provider, token) in args.tokens {
        match provider {
            Provider::Linode => config.credentials.linode.push(token),
            Provider::DigitalOcean => config.credentials.digitalocean.push(token),
            Provider::Vultr => config.credentials.vultr.push(token),
            Provider::Cloudflare => config.credentials.cloudflare.push(token),
            Provider::Exoscale => {} // refused by the parser
        }
    }
    config.credentials.exoscale.extend(args.exoscale_keys);
    if !args.cloudflare_zones.is_empty() {
        config.cloudflare_zones = args.cloudflare_zones;
    }
    if !args.provider_zones.is_empty() {
        config.provider_zones = args.provider_zones;
    }
    if args.no_s3 {
        config.s3.clear();
    } else if !args.s3.is_empty() {
        config.s3 = args.s3;
    }
    config
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let sim = Simulator::start(config(args))
        .await
        .context("starting the cloud simulator")?;
    println!("flotilla-cloudsim started in {:?}", sim.startup_time());
    for p in Provider::ALL {
        println!("  {:<13} {}", p.as_str(), sim.url(p));
    }
    println!(
        "  {:<13} {}/<zone>/v2",
        "exoscale zone",
        sim.exoscale_url().trim_end_matches("/v2")
    );
    println!("  {:<13} {}", "admin", sim.admin_url());
    for e in sim.s3_endpoints() {
        println!(
            "  s3 {:<10} {} (region {}, access key {})",
            e.provider.as_str(),
            e.url,
            e.region,
            e.access_key
        );
    }
    println!(
        "  machines answer on http://<public ip>:{}/health",
        sim.health_port()
    );
    stopped().await?;
    sim.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C (or, on Unix, SIGTERM as `docker stop` sends).
async fn stopped() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_endpoint_takes_a_fixed_port_or_any() {
        let e = parse_s3("linode=gb-lon-1@9001").unwrap();
        assert_eq!(
            (e.provider, e.region.as_str(), e.port),
            (Provider::Linode, "gb-lon-1", 9001)
        );
        assert_eq!(parse_s3("exoscale=ch-gva-2").unwrap().port, 0);
        assert!(
            parse_s3("linode=gb-lon-1@http")
                .unwrap_err()
                .contains("not a port")
        );
    }
}
