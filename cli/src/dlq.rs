//! `flotilla dlq list|show|replay`: the dead letters — commands and events a service gave up on (it could
//! not decode them, refused them, or failed on them every time it tried), kept in the `FLOTILLA_DLQ`
//! stream with the original's subject, headers and body and the service's reason.
//!
//! `replay` publishes a dead letter again on its original subject with its original headers (its kind,
//! its encoding) under the message id `replay-<sequence>`, then removes it from the queue. Replaying the
//! same letter twice — a retry after a lost answer — is de-duplicated by the command stream; the command
//! handlers are idempotent besides. A letter that fails again comes back as a new dead letter. A letter
//! whose body was cut to fit the queue (`truncated_from`) is not replayed: it would publish a cut message.

use std::process::ExitCode;

use anyhow::Context as _;
use async_nats::jetstream;
use flotilla_bus::{
    DLQ_DELIVERIES_HEADER, DLQ_ERROR_HEADER, DLQ_MSG_ID_HEADER, DLQ_SUBJECT_HEADER, DLQ_TRUNCATED_HEADER,
    PublishConfig, Publisher, subject,
};

use crate::out::{self, say};
use crate::session::{Exit, Session, exit};

/// `flotilla dlq`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every dead letter (of one service): its number, when, the service, the original subject, the reason.
    #[command(after_help = "Examples:\n  flotilla dlq list\n  flotilla dlq list provisioner -o json")]
    List {
        /// Only this service's (`provisioner`, `dns`, `firewall`, `sync`, `autoscaler`).
        service: Option<String>,
    },
    /// One dead letter in full: headers, reason and body.
    #[command(after_help = "Example:\n  flotilla dlq show 12")]
    Show {
        /// Its number (from `dlq list`).
        sequence: u64,
    },
    /// Publish dead letters again on their original subjects and take them off the queue.
    #[command(
        after_help = "Examples:\n  flotilla dlq replay 12\n  flotilla dlq replay 12 13 14\n  \
                            flotilla dlq replay --all provisioner"
    )]
    Replay {
        /// Their numbers (from `dlq list`).
        #[arg(required_unless_present = "all")]
        sequences: Vec<u64>,
        /// Every dead letter of this service.
        #[arg(long, value_name = "SERVICE", conflicts_with = "sequences")]
        all: Option<String>,
    },
}

/// A dead letter as `dlq` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    /// Its number in the dead-letter stream.
    pub sequence: u64,
    /// When it was dead-lettered.
    pub time: chrono::DateTime<chrono::Utc>,
    /// The service that gave up on it.
    pub service: String,
    /// Where it was published.
    pub original_subject: String,
    /// Its kind header.
    pub kind: Option<String>,
    /// The service's reason.
    pub error: String,
    /// How many times it was delivered.
    pub deliveries: Option<u64>,
    /// The original's message id.
    pub original_msg_id: Option<String>,
    /// The size in bytes of the original body when the letter keeps only its beginning (it was over the
    /// message limit).
    pub truncated_from: Option<u64>,
    /// Its body (decoded; the raw text when it does not decode).
    pub body: serde_json::Value,
}

fn letter(raw: &jetstream::message::StreamMessage) -> DeadLetter {
    let headers = Some(&raw.headers);
    let get = |name: &str| flotilla_bus::header(headers, name);
    let content_type = get(flotilla_proto::CONTENT_TYPE_HEADER);
    let body = flotilla_proto::decode_value(content_type.as_deref(), &raw.payload)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&raw.payload).into_owned()));
    DeadLetter {
        sequence: raw.sequence,
        time: chrono::DateTime::from_timestamp(raw.time.unix_timestamp(), raw.time.nanosecond())
            .unwrap_or_default(),
        service: raw
            .subject
            .rsplit_once('.')
            .map_or_else(|| raw.subject.to_string(), |(_, s)| s.to_owned()),
        original_subject: get(DLQ_SUBJECT_HEADER).unwrap_or_default(),
        kind: get(flotilla_proto::KIND_HEADER),
        error: get(DLQ_ERROR_HEADER).unwrap_or_default(),
        deliveries: get(DLQ_DELIVERIES_HEADER).and_then(|d| d.parse().ok()),
        original_msg_id: get(DLQ_MSG_ID_HEADER),
        truncated_from: get(DLQ_TRUNCATED_HEADER).and_then(|d| d.parse().ok()),
        body,
    }
}

async fn stream(session: &Session) -> anyhow::Result<jetstream::stream::Stream> {
    jetstream::new(session.client.clone())
        .get_stream(flotilla_bus::topology::DLQ_STREAM)
        .await
        .context("the dead-letter stream (has a Flotilla service ever run on this NATS?)")
}

/// Every dead letter (of `service`), oldest first.
async fn letters(
    stream: &jetstream::stream::Stream,
    service: Option<&str>,
) -> anyhow::Result<Vec<DeadLetter>> {
    let filter = match service {
        Some(s) => subject::dlq(s)?,
        None => subject::DLQ_WILDCARD.to_owned(),
    };
    let mut found = Vec::new();
    let mut at = 1u64;
    // Read one by one from the first sequence at or after `at` that matches: a dead-letter queue is short.
    loop {
        let next = stream
            .raw_message_builder()
            .sequence(at)
            .next_by_subject(filter.clone())
            .send()
            .await;
        match next {
            Ok(raw) => {
                at = raw.sequence + 1;
                found.push(letter(&raw));
            }
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(anyhow::anyhow!("reading the dead-letter stream: {e}")),
        }
    }
    Ok(found)
}

async fn one(
    stream: &jetstream::stream::Stream,
    sequence: u64,
) -> anyhow::Result<jetstream::message::StreamMessage> {
    stream.get_raw_message(sequence).await.map_err(|e| {
        Exit::error(
            exit::FAILED,
            format!("no dead letter {sequence} ({e}); `flotilla dlq list` shows them"),
        )
    })
}

pub async fn run(nats: &flotilla_bus::BusConfig, cmd: Command) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let stream = stream(&session).await?;
    match cmd {
        Command::List { service } => {
            let found = letters(&stream, service.as_deref()).await?;
            out::answer(&found, || render(&found))?;
        }
        Command::Show { sequence } => {
            let raw = one(&stream, sequence).await?;
            let l = letter(&raw);
            out::answer(&l, || {
                let mut text = render(std::slice::from_ref(&l));
                for (name, values) in raw.headers.iter() {
                    for v in values {
                        text.push_str(&format!("  {name}: {}\n", v.as_str()));
                    }
                }
                text.push_str(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&l.body).unwrap_or_default()
                ));
                text
            })?;
        }
        Command::Replay { sequences, all } => {
            let every = all.is_some();
            let sequences = match all {
                Some(service) => letters(&stream, Some(&service))
                    .await?
                    .into_iter()
                    .map(|l| l.sequence)
                    .collect(),
                None => sequences,
            };
            let publisher = Publisher::new(session.client.clone(), PublishConfig::default());
            let mut replayed = Vec::new();
            for sequence in sequences {
                let raw = one(&stream, sequence).await?;
                let l = letter(&raw);
                if l.original_subject.is_empty() {
                    return Err(Exit::error(
                        exit::FAILED,
                        format!("dead letter {sequence} does not say where it was published"),
                    ));
                }
                if let Some(size) = l.truncated_from {
                    let why = format!(
                        "dead letter {sequence} keeps only the first {} of its {size} bytes (it was over the \
                         message limit): replaying it would publish a cut message; publish a corrected one \
                         instead",
                        raw.payload.len()
                    );
                    if every {
                        say!("{why}; left in the queue");
                        continue;
                    }
                    return Err(Exit::error(exit::FAILED, why));
                }
                // The original's headers, without what the dead-letter queue added.
                let mut headers = async_nats::HeaderMap::new();
                for (name, values) in raw.headers.iter() {
                    let n: &str = name.as_ref();
                    let added = [
                        DLQ_ERROR_HEADER,
                        DLQ_SUBJECT_HEADER,
                        DLQ_DELIVERIES_HEADER,
                        DLQ_MSG_ID_HEADER,
                        flotilla_bus::DLQ_HEADERS_DROPPED_HEADER,
                    ];
                    if added.iter().any(|a| a.eq_ignore_ascii_case(n))
                        || n.to_ascii_lowercase().starts_with("nats-")
                    {
                        continue;
                    }
                    for v in values {
                        headers.append(name.clone(), v.clone());
                    }
                }
                publisher
                    .publish_raw(
                        &l.original_subject,
                        &format!("replay-{sequence}"),
                        headers,
                        raw.payload.clone(),
                    )
                    .await
                    .with_context(|| format!("publishing dead letter {sequence} again"))?;
                stream.delete_message(sequence).await.with_context(|| {
                    format!("dead letter {sequence} was published again, but stays listed")
                })?;
                say!("dead letter {sequence} published again on {}", l.original_subject);
                replayed.push(l);
            }
            out::result(&replayed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render(letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let mut text = String::new();
    for l in letters {
        text.push_str(&format!(
            "{:>6}  {}  {:<12} {}\n        {} (delivered {} time(s))\n",
            l.sequence,
            l.time.format("%Y-%m-%d %H:%M:%S"),
            l.service,
            l.original_subject,
            l.error,
            l.deliveries.map_or_else(|| "?".to_owned(), |d| d.to_string()),
        ));
    }
    text
}
