//! `flotilla events [DEPLOYMENT]`: what the services did, from the event stream. Without `--follow` the
//! events of the last `--since` and exit; with it, then every new one until Ctrl-C. The stream is read by
//! an ordered consumer, which after a lost connection starts again after the last event it delivered: a
//! reconnect (a NATS restart, a fail-over to another node) loses nothing and shows nothing twice.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use flotilla_bus::subject;
use futures::StreamExt;

use crate::out;
use crate::session::Session;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla events\n  flotilla events www-codetesters-uk --since 10m\n  \
                        flotilla events www-codetesters-uk --topic machine --follow\n  \
                        flotilla events --follow -o json   # one JSON object per line"
)]
pub struct Args {
    /// Only this deployment's events.
    deployment: Option<String>,
    /// Only this topic: `machine`, `region`, `dbaas`, `health`, `activity`, `metric`, `records`,
    /// `dns-alarm`, `authenticator`, `allow-list`, `firewall`, `rules`, `sync`, `backup`, or `command` (refused
    /// commands).
    #[arg(long)]
    topic: Option<String>,
    /// Start this far back.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    since: Duration,
    /// Keep printing new events until interrupted.
    #[arg(long, short)]
    follow: bool,
}

/// One event as `events` shows it.
#[derive(Debug, serde::Serialize)]
pub struct Shown {
    /// Its position in the event stream.
    pub sequence: u64,
    /// When the stream stored it.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Its subject.
    pub subject: String,
    /// Its kind (`provisioner.machine-changed.v1` …).
    pub kind: Option<String>,
    /// Its body.
    pub body: serde_json::Value,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let filter = subject::events_filter(args.topic.as_deref(), args.deployment.as_deref())?;
    let js = async_nats::jetstream::new(session.client.clone());
    let stream = js
        .get_stream(flotilla_bus::topology::EVENT_STREAM)
        .await
        .context("the event stream (has a Flotilla service ever run on this NATS?)")?;
    // A `--since` reaching before 1970 (or past what a date can hold) reads the whole stream.
    let start = chrono::Duration::from_std(args.since)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .map_or(time::OffsetDateTime::UNIX_EPOCH, |t| {
            time::OffsetDateTime::from_unix_timestamp(t.timestamp())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        });
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: session.client.new_inbox(),
            description: Some("flotilla events".into()),
            filter_subject: filter,
            deliver_policy: DeliverPolicy::ByStartTime { start_time: start },
            ..Default::default()
        })
        .await
        .context("reading the event stream")?;
    let mut waiting = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await.context("reading the event stream")?;
    let mut shown = Vec::new();
    loop {
        if waiting == 0 && !args.follow {
            break;
        }
        let next = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            m = messages.next() => m,
        };
        let Some(message) = next else { break };
        let message = match message {
            Ok(m) => m,
            // The ordered consumer starts again by itself after the last event delivered.
            Err(e) => {
                tracing::debug!(error = %e, "event stream: resuming");
                continue;
            }
        };
        let Ok(info) = message.info() else { continue };
        waiting = info.pending;
        let event = shown_of(&message, info.stream_sequence, info.published);
        if out::json() && args.follow {
            // A stream of events: JSON Lines, one object per event, printed as it comes.
            println!("{}", serde_json::to_string(&event)?);
        } else if out::json() {
            shown.push(event);
        } else {
            println!("{}", line(&event));
        }
    }
    if out::json() && !args.follow {
        out::result(&shown)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn shown_of(message: &async_nats::Message, sequence: u64, published: time::OffsetDateTime) -> Shown {
    let headers = message.headers.as_ref();
    let content_type = flotilla_bus::header(headers, flotilla_proto::CONTENT_TYPE_HEADER);
    let body = flotilla_proto::decode_value(content_type.as_deref(), &message.payload)
        .unwrap_or_else(|e| serde_json::Value::String(format!("(undecodable: {e})")));
    Shown {
        sequence,
        time: chrono::DateTime::from_timestamp(published.unix_timestamp(), published.nanosecond())
            .unwrap_or_default(),
        subject: message.subject.to_string(),
        kind: flotilla_bus::header(headers, flotilla_proto::KIND_HEADER),
        body,
    }
}

/// `time  deployment/region  topic.name  summary`.
pub fn line(e: &Shown) -> String {
    let (place, what) = match subject::parse_event(&e.subject) {
        Some(s) => (
            format!("{}/{}", s.deployment, s.region),
            format!("{}.{}", s.topic, s.name),
        ),
        None => (String::new(), e.subject.clone()),
    };
    format!(
        "{}  {place:<28} {what:<28} {}",
        e.time.format("%Y-%m-%d %H:%M:%S"),
        summary(&e.body)
    )
}

/// The telling fields of an event body, `key=value` (ids, metadata and long lists left out).
fn summary(body: &serde_json::Value) -> String {
    const SKIP: [&str; 4] = ["meta", "deployment", "region", "at"];
    let Some(fields) = body.as_object() else {
        return body.to_string();
    };
    fields
        .iter()
        .filter(|(k, v)| !SKIP.contains(&k.as_str()) && !v.is_null())
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) if a.is_empty() => return None,
                serde_json::Value::Array(a) if a.len() > 4 => format!("[{} items]", a.len()),
                other => other.to_string(),
            };
            Some(format!("{k}={text}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_where_what_and_the_telling_fields() {
        let e = Shown {
            sequence: 7,
            time: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            subject: "flotilla.evt.machine.shop.gb-lon.healthy".into(),
            kind: Some("provisioner.machine-changed.v1".into()),
            body: serde_json::json!({
                "meta": { "id": "x" }, "deployment": "shop", "region": "gb-lon",
                "resource_id": "ws-1", "state": "healthy", "ips": [], "error": null,
            }),
        };
        let l = line(&e);
        assert!(l.starts_with("2027-01-15 08:00:00  shop/gb-lon"), "{l}");
        assert!(l.contains("machine.healthy"), "{l}");
        assert!(l.contains("resource_id=ws-1 state=healthy"), "{l}");
        assert!(
            !l.contains("meta") && !l.contains("ips") && !l.contains("error"),
            "{l}"
        );
    }
}
