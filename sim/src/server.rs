//! Starting and stopping a simulator.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Provider, SimConfig};
use crate::error::SimError;
use crate::faults::Fault;
use crate::health::{self, Health};
use crate::limits::Counters;
use crate::persist::Persister;
use crate::s3::{self, S3Endpoint};
use crate::sim::{MachineInfo, Sim};
use crate::world::World;
use crate::{admin, providers};

/// How often machines' boot and health are brought in line with their state.
const HEALTH_TICK: Duration = Duration::from_millis(50);

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

/// A running simulator; dropping it stops everything (without the final state save that
/// [`RunningSim::shutdown`] does).
pub struct RunningSim {
    sim: Arc<Sim>,
    admin_url: String,
    s3: Vec<S3Endpoint>,
    root: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    startup: Duration,
    _s3_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("urls", &self.sim.urls)
            .field("admin_url", &self.admin_url)
            .field("s3", &self.s3)
            .finish_non_exhaustive()
    }
}

/// The URL path each API lives under.
fn base_path(p: Provider) -> &'static str {
    match p {
        Provider::Linode => "/v4",
        Provider::DigitalOcean | Provider::Vultr | Provider::Exoscale => "/v2",
        Provider::Cloudflare => "/client/v4",
    }
}

async fn bind(ip: IpAddr, port: u16, what: &str) -> Result<TcpListener, SimError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr).await.map_err(|e| SimError::Bind {
        what: what.to_owned(),
        addr: addr.to_string(),
        source: e,
    })
}

fn serve(listener: TcpListener, router: Router, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "API server failed");
        }
    })
}

impl Simulator {
    /// Binds every API, the admin API and the S3 endpoints, loads persisted state (re-opening its
    /// machines' addresses) and starts serving.
    pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
        let started = Instant::now();
        if config.health_port == 0 {
            return Err(SimError::Config(
                "health_port must be a fixed port: every machine answers on it at its own address".into(),
            ));
        }
        let persister = config.state_dir.as_deref().map(Persister::new).transpose()?;
        let mut world = match &persister {
            Some(p) => p.load()?,
            None => World::default(),
        };
        providers::seed(&mut world, &config);
        let url_host = if config.bind.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            config.bind
        };
        let mut listeners = Vec::new();
        let mut urls = BTreeMap::new();
        for p in Provider::ALL {
            let listener = bind(config.bind, config.ports.of(p), &format!("the {p} API")).await?;
            let port = listener
                .local_addr()
                .map_err(|e| SimError::Config(e.to_string()))?
                .port();
            urls.insert(
                p,
                format!("http://{}{}", SocketAddr::new(url_host, port), base_path(p)),
            );
            listeners.push((p, listener));
        }
        let admin = bind(config.bind, config.ports.admin, "the admin API").await?;
        let admin_url = format!(
            "http://{}",
            SocketAddr::new(
                url_host,
                admin
                    .local_addr()
                    .map_err(|e| SimError::Config(e.to_string()))?
                    .port()
            )
        );

        let root = CancellationToken::new();
        let health = Health::new(config.health_port, root.child_token());
        let sim = Arc::new(Sim::new(config.clone(), urls, world, health, persister));
        {
            let world = sim.world();
            for m in &world.machines {
                let identity = health::Identity {
                    provider: m.provider,
                    id: m.id.clone(),
                    label: m.label.clone(),
                };
                if !sim
                    .health
                    .reserve(&health::key(m.provider, &m.id), m.public_ip, &identity)
                {
                    tracing::warn!(provider = %m.provider, id = %m.id, ip = %m.public_ip, "a restored machine's address is in use");
                }
            }
        }
        sim.reconcile_health();

        let mut tasks = Vec::new();
        for (p, listener) in listeners {
            tasks.push(serve(listener, providers::router(sim.clone(), p), root.clone()));
        }
        tasks.push(serve(admin, admin::router(sim.clone()), root.clone()));

        let (s3_root, s3_dir) = match &config.state_dir {
            Some(d) => (d.join("s3"), None),
            None => {
                let dir = tempfile::tempdir().map_err(|e| SimError::State {
                    path: std::env::temp_dir().display().to_string(),
                    message: e.to_string(),
                })?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let mut s3_endpoints = Vec::new();
        for cfg in &config.s3 {
            let weak = Arc::downgrade(&sim);
            let (provider, region) = (cfg.provider, cfg.region.clone());
            let down: s3::Down = Arc::new(move || {
                weak.upgrade()
                    .is_some_and(|sim| sim.faults().datastore_down(provider, &region))
            });
            let (endpoint, task) =
                s3::start(cfg, config.bind, url_host, &s3_root, root.clone(), down).await?;
            s3_endpoints.push(endpoint);
            tasks.push(task);
        }

        let weak = Arc::downgrade(&sim);
        let stop = root.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEALTH_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => match weak.upgrade() {
                        Some(sim) => sim.reconcile_health(),
                        None => return,
                    },
                }
            }
        }));
        if sim.persister.is_some() {
            tasks.push(tokio::spawn(Persister::run(Arc::downgrade(&sim), root.clone())));
        }

        let startup = started.elapsed();
        tracing::info!(?startup, "cloud simulator started");
        Ok(RunningSim {
            sim,
            admin_url,
            s3: s3_endpoints,
            root,
            tasks,
            startup,
            _s3_dir: s3_dir,
        })
    }
}

impl RunningSim {
    /// The API base URL of `provider` (`http://127.0.0.1:PORT/v4` for Linode …).
    pub fn url(&self, provider: Provider) -> &str {
        self.sim.url(provider)
    }

    /// `http://127.0.0.1:PORT/v4`.
    pub fn linode_url(&self) -> &str {
        self.url(Provider::Linode)
    }

    /// `http://127.0.0.1:PORT/v2`.
    pub fn digitalocean_url(&self) -> &str {
        self.url(Provider::DigitalOcean)
    }

    /// `http://127.0.0.1:PORT/v2`.
    pub fn vultr_url(&self) -> &str {
        self.url(Provider::Vultr)
    }

    /// `http://127.0.0.1:PORT/v2`: the default Exoscale zone (or the zone named by an `api-<zone>.…`
    /// `Host` header).
    pub fn exoscale_url(&self) -> &str {
        self.url(Provider::Exoscale)
    }

    /// `http://127.0.0.1:PORT/<zone>/v2`: one Exoscale zone's endpoint (the stand-in for
    /// `https://api-<zone>.exoscale.com/v2`).
    pub fn exoscale_zone_url(&self, zone: &str) -> String {
        let base = self.exoscale_url();
        let root = base.strip_suffix("/v2").unwrap_or(base);
        format!("{root}/{zone}/v2")
    }

    /// `http://127.0.0.1:PORT/client/v4`.
    pub fn cloudflare_url(&self) -> &str {
        self.url(Provider::Cloudflare)
    }

    /// The admin API (`http://127.0.0.1:PORT`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Every S3 endpoint.
    pub fn s3_endpoints(&self) -> &[S3Endpoint] {
        &self.s3
    }

    /// The S3 endpoint of `provider` in `region`.
    pub fn s3_endpoint(&self, provider: Provider, region: &str) -> Option<&S3Endpoint> {
        self.s3
            .iter()
            .find(|e| e.provider == provider && e.region == region)
    }

    /// The `[clouds]` settings that point every service at this simulator with its credentials (what
    /// `flotilla dev` and the test harness give the services): provider endpoints, tokens, and each S3
    /// endpoint keyed by the host base it stands in for (`nl-ams-1.linodeobjects.com` …).
    pub fn cloud_settings(&self) -> flotilla_cloud::settings::CloudSettings {
        use flotilla_cloud::settings::{CloudSettings, Endpoints, SimulatedS3, SimulatorCredentials};
        use flotilla_spec::Secret;
        let s3 = self
            .s3
            .iter()
            .filter_map(|e| {
                let host = e.host_base()?;
                Some((
                    host,
                    SimulatedS3 {
                        url: e.url.clone(),
                        access_key: Secret::new(e.access_key.clone()),
                        secret_key: Secret::new(e.secret_key.clone()),
                    },
                ))
            })
            .collect();
        CloudSettings {
            endpoints: Endpoints {
                linode: Some(self.linode_url().to_owned()),
                digitalocean: Some(self.digitalocean_url().to_owned()),
                vultr: Some(self.vultr_url().to_owned()),
                exoscale: Some(self.exoscale_zone_url("{zone}")),
                cloudflare: Some(self.cloudflare_url().to_owned()),
            },
            simulator: Some(SimulatorCredentials {
                linode_token: Some(Secret::new(crate::config::defaults::LINODE_TOKEN)),
                digitalocean_token: Some(Secret::new(crate::config::defaults::DIGITALOCEAN_TOKEN)),
                vultr_token: Some(Secret::new(crate::config::defaults::VULTR_TOKEN)),
                exoscale_key: Some(Secret::new(crate::config::defaults::EXOSCALE_KEY)),
                exoscale_secret: Some(Secret::new(crate::config::defaults::EXOSCALE_SECRET)),
                cloudflare_token: Some(Secret::new(crate::config::defaults::CLOUDFLARE_TOKEN)),
                s3,
            }),
        }
    }

    /// The port machines answer health checks on.
    pub fn health_port(&self) -> u16 {
        self.sim.config.health_port
    }

    /// Every machine.
    pub fn machines(&self) -> Vec<MachineInfo> {
        self.sim.machines()
    }

    /// Puts a fault in force (as `POST /faults` does).
    pub fn add_fault(&self, fault: &Fault) {
        self.sim.faults().add(fault, Instant::now());
        self.sim.reconcile_health();
    }

    /// Clears the faults of `provider`, or all (as `DELETE /faults` does).
    pub fn clear_faults(&self, provider: Option<Provider>) {
        self.sim.faults().clear(provider);
        self.sim.reconcile_health();
    }

    /// The API requests received since the last call, oldest first (recorded only when
    /// `SimConfig::record_requests` is on).
    pub fn take_requests(&self) -> Vec<crate::RecordedRequest> {
        self.sim.take_recorded()
    }

    /// The request counters (as `GET /counters` shows them).
    pub fn counters(&self) -> Counters {
        self.sim.counters().clone()
    }

    /// How long [`Simulator::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Stops every API and machine, waits (briefly) for in-flight requests and saves the state.
    pub async fn shutdown(mut self) {
        self.root.cancel();
        self.sim.health.close_all();
        let tasks = std::mem::take(&mut self.tasks);
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
        self.sim.save_now();
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.root.cancel();
        self.sim.health.close_all();
        for task in &self.tasks {
            task.abort();
        }
    }
}
