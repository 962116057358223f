//! The state every API shares: resources, faults, counters, rate limits and machines' health endpoints.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Provider, SimConfig};
use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::health::{self, Health, Identity};
use crate::limits::{Counters, Limiter};
use crate::persist::Persister;
use crate::world::{Machine, World};

/// A machine as the admin API and [`crate::RunningSim::machines`] show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Provider.
    pub provider: Provider,
    /// The provider's id.
    pub id: String,
    /// Label / name.
    pub name: String,
    /// Region (zone).
    pub region: String,
    /// Size / plan / type.
    pub size: String,
    /// `provisioning` or `running`.
    pub status: String,
    /// Public IPv4 (a loopback address).
    pub public_ip: Ipv4Addr,
    /// Private (VPC) IPv4, if attached.
    pub private_ip: Option<Ipv4Addr>,
    /// Tags (Exoscale labels as `key:value`).
    pub tags: Vec<String>,
    /// The URL its health check answers on.
    pub health_url: String,
    /// Whether it answers health checks right now.
    pub answering: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One API request as the simulator received it (kept when [`SimConfig::record_requests`] is on), for tests
/// that hold the adapters' requests against the providers' published schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Provider.
    pub provider: Provider,
    /// `GET`, `POST` …
    pub method: String,
    /// The path as sent (with the API's prefix: `/v2/firewalls`, `/ch-gva-2/v2/instance`).
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The JSON body, if there was one (a body that is not JSON is kept as a string).
    pub body: Option<serde_json::Value>,
}

/// Most requests kept; the oldest go first.
const MAX_RECORDED: usize = 100_000;

/// Shared simulator state.
pub(crate) struct Sim {
    pub config: SimConfig,
    /// API base URLs per provider (`http://127.0.0.1:PORT/v4` …).
    pub urls: BTreeMap<Provider, String>,
    world: Mutex<World>,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
    limiter: Mutex<Limiter>,
    recorded: Mutex<std::collections::VecDeque<RecordedRequest>>,
    pub health: Health,
    pub persister: Option<Persister>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sim {
    pub fn new(
        config: SimConfig,
        urls: BTreeMap<Provider, String>,
        world: World,
        health: Health,
        persister: Option<Persister>,
    ) -> Self {
        let mut faults = Faults::default();
        let now = Instant::now();
        for f in &config.faults {
            faults.add(f, now);
        }
        Self {
            config,
            urls,
            world: Mutex::new(world),
            faults: Mutex::new(faults),
            counters: Mutex::new(Counters::default()),
            limiter: Mutex::new(Limiter::default()),
            recorded: Mutex::new(std::collections::VecDeque::new()),
            health,
            persister,
        }
    }

    /// Keeps a request (when recording is on).
    pub fn record(&self, request: RecordedRequest) {
        let mut recorded = lock(&self.recorded);
        if recorded.len() >= MAX_RECORDED {
            recorded.pop_front();
        }
        recorded.push_back(request);
    }

    /// The requests kept, oldest first; and forgets them.
    pub fn take_recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded).drain(..).collect()
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn counters(&self) -> MutexGuard<'_, Counters> {
        lock(&self.counters)
    }

    pub fn limiter(&self) -> MutexGuard<'_, Limiter> {
        lock(&self.limiter)
    }

    /// The API base URL of `provider`.
    pub fn url(&self, provider: Provider) -> &str {
        self.urls.get(&provider).map(String::as_str).unwrap_or("")
    }

    /// After a change: persist (soon) and bring machines' health endpoints in line.
    pub fn changed(&self) {
        if let Some(p) = &self.persister {
            p.poke();
        }
        self.reconcile_health();
    }

    /// Finds a free public IP for a new machine and reserves its health address.
    pub fn allocate_public_ip(
        &self,
        world: &mut World,
        provider: Provider,
        id: &str,
        label: &str,
    ) -> Option<Ipv4Addr> {
        let net = self.config.public_ips;
        let base = u32::from(net.network());
        let size = 1u32
            .checked_shl(32 - u32::from(net.prefix_len()))
            .unwrap_or(u32::MAX);
        let key = health::key(provider, id);
        let identity = Identity {
            provider,
            id: id.to_owned(),
            label: label.to_owned(),
        };
        for _ in 0..size.min(8192) {
            let offset = world.ip_cursor % size;
            world.ip_cursor = world.ip_cursor.wrapping_add(1);
            let ip = Ipv4Addr::from(base.wrapping_add(offset));
            let last = ip.octets()[3];
            if last == 0 || last == 255 || ip == net.network() || ip == net.broadcast() {
                continue;
            }
            if world.public_ip_taken(ip) {
                continue;
            }
            if self.health.reserve(&key, ip, &identity) {
                return Some(ip);
            }
        }
        None
    }

    /// Opens the health endpoint of every booted, healthy machine in a region that is up, and closes the
    /// rest.
    pub fn reconcile_health(&self) {
        let now = Utc::now();
        let desired: Vec<(String, Ipv4Addr, bool, Identity)> = {
            let world = self.world();
            let faults = self.faults();
            world
                .machines
                .iter()
                .map(|m| {
                    let serve = m.booted(now)
                        && !m.stopped
                        && !faults.unhealthy(m.provider, &m.id)
                        && !faults.region_down(m.provider, &m.region);
                    (
                        health::key(m.provider, &m.id),
                        m.public_ip,
                        serve,
                        Identity {
                            provider: m.provider,
                            id: m.id.clone(),
                            label: m.label.clone(),
                        },
                    )
                })
                .collect()
        };
        let keep: HashSet<String> = desired.iter().map(|d| d.0.clone()).collect();
        self.health.retain(&keep);
        for (key, ip, serve, identity) in &desired {
            self.health.set(key, *ip, *serve, identity);
        }
    }

    /// 503 when `region` of `provider` is down.
    pub fn check_region(&self, provider: Provider, region: &str) -> ApiResult<()> {
        if self.faults().region_down(provider, region) {
            self.counters().of(provider).region_down += 1;
            return Err(ApiError::region_down(provider, region));
        }
        Ok(())
    }

    /// When a machine of `provider` created at `now` boots: after the boot delay, or never (a century on)
    /// when the `never_boots` fault takes it. Called with the world locked (the world before the faults, as
    /// everywhere).
    pub fn boots_at(&self, provider: Provider, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.faults().take_never_boots(provider) {
            return now + chrono::Duration::days(36_500);
        }
        now + chrono::Duration::from_std(self.config.boot_delay).unwrap_or_default()
    }

    /// A 500 when the `fail_creates` fault says this create fails.
    pub fn check_create(&self, provider: Provider, credential: &str) -> ApiResult<()> {
        if self.faults().take_fail_create(provider) {
            self.counters().credential(provider, credential).failed_creates += 1;
            return Err(ApiError::server(
                provider,
                500,
                "An internal error occurred while creating the resource (simulated)",
            ));
        }
        Ok(())
    }

    /// The admin view of a machine.
    pub fn machine_info(&self, m: &Machine, now: DateTime<Utc>) -> MachineInfo {
        let mut tags = m.tags.clone();
        tags.extend(m.labels.iter().map(|(k, v)| format!("{k}:{v}")));
        MachineInfo {
            provider: m.provider,
            id: m.id.clone(),
            name: m.label.clone(),
            region: m.region.clone(),
            size: m.size.clone(),
            status: if m.booted(now) { "running" } else { "provisioning" }.into(),
            public_ip: m.public_ip,
            private_ip: m.private_ip(),
            tags,
            health_url: format!("http://{}:{}/health", m.public_ip, self.config.health_port),
            answering: self.health.serving(&health::key(m.provider, &m.id)),
            created_at: m.created,
        }
    }

    /// Every machine.
    pub fn machines(&self) -> Vec<MachineInfo> {
        let now = Utc::now();
        let machines: Vec<Machine> = self.world().machines.clone();
        machines.iter().map(|m| self.machine_info(m, now)).collect()
    }

    /// Writes the state now (when persistence is on).
    pub fn save_now(&self) {
        if let Some(p) = &self.persister {
            let snapshot = self.world().clone();
            if let Err(e) = p.save(&snapshot) {
                tracing::warn!(error = %e, "cannot save the simulator state");
            }
        }
    }
}
