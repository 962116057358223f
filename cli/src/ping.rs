//! `flotilla ping`: which Flotilla services answer on NATS (the NATS service API's `$SRV.PING`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

/// Every service Flotilla has; `ping` says which of them did not answer.
const SERVICES: [&str; 5] = ["provisioner", "dns", "firewall", "sync", "autoscaler"];

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla ping\n  flotilla ping --timeout 3s -o json")]
pub struct Args {
    /// How long to collect answers.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Pong {
    name: String,
    id: String,
    version: String,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let client = crate::session::Session::connect(nats).await?.client;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client.publish_with_reply("$SRV.PING", inbox, "".into()).await?;
    client.flush().await?;
    let mut pongs = Vec::new();
    let deadline = tokio::time::sleep(args.timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            msg = replies.next() => match msg {
                Some(msg) => {
                    // Other NATS services may answer too: keep ours, and skip what does not parse.
                    if let Ok(p) = serde_json::from_slice::<Pong>(&msg.payload)
                        && p.name.starts_with("flotilla-")
                    {
                        pongs.push(p);
                    }
                }
                None => break,
            },
        }
    }
    pongs.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    let missing: Vec<&str> = SERVICES
        .iter()
        .copied()
        .filter(|s| !pongs.iter().any(|p| p.name == format!("flotilla-{s}")))
        .collect();
    if crate::out::json() {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "services": pongs, "missing": missing }))?
        );
    } else if pongs.is_empty() {
        eprintln!(
            "no Flotilla service answered on {} within {:?}",
            nats.urls.join(","),
            args.timeout
        );
    } else {
        let mut by_name: BTreeMap<&str, Vec<&Pong>> = BTreeMap::new();
        for p in &pongs {
            by_name.entry(p.name.as_str()).or_default().push(p);
        }
        println!("{:<22} {:<10} {:<9} INSTANCES", "SERVICE", "VERSION", "REPLICAS");
        for (name, instances) in by_name {
            let ids: Vec<&str> = instances.iter().map(|p| p.id.as_str()).collect();
            println!(
                "{name:<22} {:<10} {:<9} {}",
                instances[0].version,
                instances.len(),
                ids.join(",")
            );
        }
        if !missing.is_empty() {
            println!("not answering: {}", missing.join(", "));
        }
    }
    Ok(if pongs.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
