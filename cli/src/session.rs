//! Reaching Flotilla: the NATS connection (from the flags, `NATS_URL`, or the `flotilla dev` running in this
//! directory), the provisioner's API, and the deployment files a command is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};
use flotilla_bus::api::{self, ApiError};
use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_proto::{
    AcceptDeployment, Accepted, Fleet, ListMachines, PlanView, ServiceStatus, ServiceStatusRequest, ShowPlan,
    WithdrawRegions,
};
use flotilla_spec::Deployment;
use futures::StreamExt;

/// Where `flotilla dev` records how to reach it, relative to the directory it runs in.
pub const DEV_STATE: &str = ".flotilla/dev.json";

/// The URL of the `flotilla dev` running from `dir`, if any.
pub fn dev_nats_url(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(DEV_STATE)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("nats_url")?.as_str().map(str::to_owned)
}

/// Exit codes shared by the commands.
pub mod exit {
    /// The fleet did not reach the wanted state (a region failed, a command was refused).
    pub const FAILED: u8 = 1;
    /// The files given are not a valid deployment.
    pub const INVALID: u8 = 2;
    /// NATS or the provisioner cannot be reached.
    pub const UNREACHABLE: u8 = 3;
}

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The exit code.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Exit {
    /// An error exiting with `code`.
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        Self {
            code,
            message: message.into(),
        }
        .into()
    }
}

/// What became of a command, as [`Session::send`] saw it.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The check found it done.
    Done(T),
    /// Its service refused it: the `CommandRejected`'s reason.
    Rejected(String),
    /// Neither within the time given.
    TimedOut,
}

/// A connection to Flotilla's NATS.
pub struct Session {
    /// The client.
    pub client: async_nats::Client,
    /// Where it is connected.
    pub url: String,
    /// How long a request may take.
    pub timeout: Duration,
}

impl Session {
    /// Asks `flotilla.api.<service>.<verb>`, waiting up to `timeout`.
    pub async fn ask<Req: flotilla_proto::Message, Resp: flotilla_proto::Message>(
        &self,
        service: &str,
        verb: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, flotilla_bus::api::ApiError> {
        let subject = flotilla_bus::subject::api(service, verb).map_err(|e| {
            flotilla_bus::api::ApiError::Transport {
                subject: format!("flotilla.api.{service}.{verb}"),
                reason: e.to_string(),
            }
        })?;
        flotilla_bus::api::request(&self.client, &subject, req, timeout).await
    }

    /// [`Session::ask`] within the session's timeout, a failure said as the exit codes want
    /// ([`service_error`]).
    pub async fn call<Req: flotilla_proto::Message, Resp: flotilla_proto::Message>(
        &self,
        service: &str,
        verb: &str,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        self.ask(service, verb, req, self.timeout)
            .await
            .map_err(|e| service_error(service, &self.url, e))
    }

    /// Connects, saying clearly when NATS is not there.
    pub async fn connect(cfg: &flotilla_bus::BusConfig) -> anyhow::Result<Self> {
        let url = cfg.urls.join(",");
        let client = flotilla_bus::connect(cfg).await.map_err(|e| {
            Exit::error(
                exit::UNREACHABLE,
                format!(
                    "cannot reach NATS at {url}: {e}\n\
                     (start everything locally with `flotilla dev`, or point --nats-url / NATS_URL at your NATS)"
                ),
            )
        })?;
        Ok(Self {
            client,
            url,
            timeout: cfg.request_timeout.max(Duration::from_secs(5)),
        })
    }

    /// Checks that the provisioner answers.
    pub async fn require_provisioner(&self) -> anyhow::Result<ServiceStatus> {
        let subject = flotilla_bus::subject::api("provisioner", "status")?;
        api::request::<ServiceStatusRequest, ServiceStatus>(
            &self.client,
            &subject,
            &ServiceStatusRequest {},
            self.timeout,
        )
        .await
        .map_err(|e| unreachable_provisioner(&self.url, e))
    }

    /// The fleet as the provisioner records it.
    pub async fn fleet(&self, deployment: Option<&str>, region: Option<&str>) -> anyhow::Result<Fleet> {
        let subject = flotilla_bus::subject::api("provisioner", "machines")?;
        let req = ListMachines {
            deployment: deployment.map(str::to_owned),
            region: region.map(str::to_owned),
        };
        api::request::<ListMachines, Fleet>(&self.client, &subject, &req, self.timeout)
            .await
            .map_err(|e| unreachable_provisioner(&self.url, e))
    }

    /// A deployment's desired state, read from the desired-state bucket (the provisioner need not be
    /// running); exit 1 when it is not deployed.
    pub async fn desired(&self, deployment: &str) -> anyhow::Result<Deployment> {
        let unreadable = |e: &dyn std::fmt::Display| {
            Exit::error(
                exit::UNREACHABLE,
                format!("the desired-state bucket cannot be read: {e}"),
            )
        };
        let js = async_nats::jetstream::new(self.client.clone());
        let store = js
            .get_key_value(flotilla_bus::topology::DESIRED_BUCKET)
            .await
            .map_err(|e| unreadable(&e))?;
        let desired = flotilla_bus::state::DesiredStates::new(store, self.client.clone())
            .get(deployment)
            .await
            .map_err(|e| unreadable(&e))?
            .ok_or_else(|| Exit::error(exit::FAILED, format!("deployment {deployment} is not deployed")))?;
        Ok(desired.value.deployment)
    }

    /// What applying `req`'s region would change, as the provisioner plans it (nothing is changed).
    /// Has the provisioner accept `deployment` as the desired state; its answer carries the generation the
    /// applies must be issued for. A spec the provisioner refuses exits 2 with its reason.
    pub async fn accept(&self, deployment: &flotilla_spec::Deployment) -> anyhow::Result<Accepted> {
        let subject = flotilla_bus::subject::api("provisioner", "accept")?;
        let req = AcceptDeployment {
            deployment: deployment.clone(),
            issued_by: issuer(),
        };
        api::request::<AcceptDeployment, Accepted>(&self.client, &subject, &req, self.timeout)
            .await
            .map_err(|e| refused_or_unreachable(&self.url, e))
    }

    /// Has the provisioner withdraw `regions` from the deployment's desired state; its answer carries the
    /// generation the destroys must be issued for.
    pub async fn withdraw(&self, deployment: &str, regions: &[String]) -> anyhow::Result<Accepted> {
        let subject = flotilla_bus::subject::api("provisioner", "withdraw")?;
        let req = WithdrawRegions {
            deployment: deployment.to_owned(),
            regions: regions.to_vec(),
            issued_by: issuer(),
        };
        api::request::<WithdrawRegions, Accepted>(&self.client, &subject, &req, self.timeout)
            .await
            .map_err(|e| refused_or_unreachable(&self.url, e))
    }

    /// Publishes `cmd` and waits up to `wait` for its outcome: the `CommandRejected` of its service, or what
    /// `done` finds. `done` is given each event published on `watch` (subscribed to before `cmd` is sent, so
    /// nothing is missed), and `None` every `poll`, to ask a service.
    pub async fn send<C: flotilla_proto::Command, T>(
        &self,
        cmd: &C,
        watch: Option<&str>,
        poll: Option<Duration>,
        wait: Duration,
        mut done: impl AsyncFnMut(Option<&FleetEvent>) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<Outcome<T>> {
        let rejections = subject::event("command", cmd.deployment(), cmd.region(), "rejected")?;
        let mut rejected = Some(self.client.subscribe(rejections).await?);
        let mut watched = match watch {
            Some(s) => Some(self.client.subscribe(s.to_owned()).await?),
            None => None,
        };
        Publisher::new(self.client.clone(), PublishConfig::default())
            .publish_command(cmd)
            .await?;
        let id = cmd.meta().id.to_string();
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let every = poll.unwrap_or(Duration::MAX);
        let tick = tokio::time::sleep(every);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut deadline => return Ok(Outcome::TimedOut),
                m = async { rejected.as_mut()?.next().await }, if rejected.is_some() => match m {
                    Some(m) => {
                        if let Some(FleetEvent::Rejected(r)) = flotilla_bus::decode_event(&m)
                            && r.command_id.as_deref() == Some(id.as_str())
                        {
                            return Ok(Outcome::Rejected(r.error));
                        }
                    }
                    // The subscription ended (the connection closed): keep to `done` and the deadline.
                    None => rejected = None,
                },
                m = async { watched.as_mut()?.next().await }, if watched.is_some() => match m {
                    Some(m) => {
                        if let Some(e) = flotilla_bus::decode_event(&m)
                            && let Some(t) = done(Some(&e)).await?
                        {
                            return Ok(Outcome::Done(t));
                        }
                    }
                    None => watched = None,
                },
                _ = &mut tick, if poll.is_some() => {
                    tick.as_mut().reset(tokio::time::Instant::now() + every);
                    if let Some(t) = done(None).await? {
                        return Ok(Outcome::Done(t));
                    }
                }
            }
        }
    }

    pub async fn plan(&self, req: &ShowPlan) -> anyhow::Result<PlanView> {
        let subject = flotilla_bus::subject::api("provisioner", "plan")?;
        api::request::<ShowPlan, PlanView>(&self.client, &subject, req, self.timeout)
            .await
            .map_err(|e| unreachable_provisioner(&self.url, e))
    }
}

/// Who issues the CLI's commands: `cli:<user>@<host>`, for the audit trail.
pub fn issuer() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    format!("cli:{user}@{host}")
}

/// A 4xx answer is the provisioner refusing the request (exit 2 for a bad spec, 1 otherwise).
fn refused_or_unreachable(url: &str, e: ApiError) -> anyhow::Error {
    if let ApiError::Service { code, message, .. } = &e {
        let exit = if *code == 400 { exit::INVALID } else { exit::FAILED };
        if (400..500).contains(code) {
            return Exit::error(exit, format!("the provisioner refused: {message}"));
        }
    }
    unreachable_provisioner(url, e)
}

fn unreachable_provisioner(url: &str, e: ApiError) -> anyhow::Error {
    match e {
        ApiError::NoResponders { .. } => Exit::error(
            exit::UNREACHABLE,
            format!(
                "the provisioner is not running: nothing answers on NATS at {url} \
                 (start it with `flotilla dev`, `docker compose up` or its systemd unit)"
            ),
        ),
        ApiError::TimedOut { timeout, .. } => Exit::error(
            exit::UNREACHABLE,
            format!("the provisioner did not answer within {timeout:?} (NATS at {url})"),
        ),
        other => anyhow!(other),
    }
}

/// Loads the deployment described by `files`: TOML specs (`*.toml`, each a deployment; several are merged
/// region by region and must name the same deployment) or the original toolkit's templates (one per region).
/// Problems are printed, file:line first, and end in an [`exit::INVALID`] error; so does a file that cannot
/// be read, named.
pub fn load_deployment(files: &[PathBuf]) -> anyhow::Result<Deployment> {
    if files.is_empty() {
        bail!(Exit {
            code: exit::INVALID,
            message: "no deployment files given".into()
        });
    }
    let is_toml = |p: &PathBuf| p.extension().is_some_and(|e| e == "toml");
    let tomls = files.iter().filter(|p| is_toml(p)).count();
    if tomls != 0 && tomls != files.len() {
        return Err(Exit::error(
            exit::INVALID,
            "give either TOML specs or templates, not both",
        ));
    }
    if tomls == 0 {
        return match flotilla_spec::check_files(files) {
            Ok(import) => {
                for w in &import.warnings {
                    eprintln!("{w}");
                }
                Ok(import.deployment)
            }
            Err(diagnostics) => {
                for d in diagnostics.iter() {
                    eprintln!("{d}");
                }
                Err(Exit::error(
                    exit::INVALID,
                    format!(
                        "the templates are not a valid deployment ({} error(s))",
                        diagnostics.errors().count()
                    ),
                ))
            }
        };
    }
    let mut merged: Option<Deployment> = None;
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Exit::error(
                exit::INVALID,
                format!("{}: cannot read the spec: {e}", path.display()),
            )
        })?;
        let d = Deployment::from_toml(&text)
            .map_err(|e| Exit::error(exit::INVALID, format!("{}: {e}", path.display())))?;
        match &mut merged {
            None => merged = Some(d),
            Some(m) => {
                if m.name != d.name {
                    return Err(Exit::error(
                        exit::INVALID,
                        format!(
                            "{} is deployment {}, the others {}: several files must form one deployment",
                            path.display(),
                            d.name,
                            m.name
                        ),
                    ));
                }
                for r in d.regions {
                    if m.regions.iter().any(|x| x.name == r.name) {
                        return Err(Exit::error(
                            exit::INVALID,
                            format!("region {} is given twice", r.name),
                        ));
                    }
                    m.regions.push(r);
                }
            }
        }
    }
    let d = merged.ok_or_else(|| anyhow!("no deployment"))?;
    d.check().map_err(|e| Exit::error(exit::INVALID, e.to_string()))?;
    Ok(d)
}

/// The events the CLI follows: the one typed event decoder the services and the CLI share.
pub use flotilla_proto::AnyEvent as FleetEvent;

/// A failed request to `service`'s API: its refusal (4xx) with its reason and code, exit 2 for a request
/// it finds invalid (400) and 1 otherwise; exit 3 when it does not answer.
pub fn service_error(service: &str, url: &str, e: flotilla_bus::api::ApiError) -> anyhow::Error {
    use flotilla_bus::api::ApiError;
    match e {
        ApiError::Service { code, message, .. } if (400..500).contains(&code) => Exit::error(
            if code == 400 { exit::INVALID } else { exit::FAILED },
            format!("the {service} service refused ({code}): {message}"),
        ),
        ApiError::NoResponders { .. } => Exit::error(
            exit::UNREACHABLE,
            format!(
                "the {service} service is not running: nothing answers on NATS at {url} \
                 (start it with `flotilla dev`, `docker compose up` or its systemd unit)"
            ),
        ),
        ApiError::TimedOut { timeout, .. } => Exit::error(
            exit::UNREACHABLE,
            format!("the {service} service did not answer within {timeout:?} (NATS at {url})"),
        ),
        other => anyhow::anyhow!(other),
    }
}
