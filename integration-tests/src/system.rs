//! The whole system as operators run it, for the chaos runs and the secrets sweep: a NATS server with
//! JetStream, a PostgreSQL server of its own, the cloud simulator, every service as a process (by default
//! two replicas of each, each with its own database connection and data directory) and a sync agent per
//! region with a local webroot. Everything a test needs to break it (SIGKILL a replica, restart
//! PostgreSQL, inject provider faults) and to judge it against the simulator's own state
//! ([`System::violations`]), never against the services' word.
//!
//! Every secret slot holds a distinct, known value ([`System::secrets`]): the simulator's API tokens and
//! S3 secret keys, the database password, and every value of the secrets file, so that a sweep can search
//! everything the system wrote for each of them ([`System::sweep_secrets`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig, api, subject};
use flotilla_cloudsim::{Fault, Provider, RunningSim, S3EndpointConfig, Token};
use flotilla_proto::{AcceptDeployment, Accepted, CommandMeta, WithdrawRegions};
use flotilla_spec::{Deployment, Role};
use rand::Rng as _;
use tokio::net::UnixDatagram;
use tokio::process::Child;

use crate::pgserver::PgServer;

/// The five services, in the order they start.
pub const SERVICES: [&str; 5] = ["provisioner", "dns", "firewall", "sync", "autoscaler"];

/// How a [`System`] is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Replicas of every service.
    pub replicas: usize,
    /// How long a simulated machine takes to boot.
    pub boot: Duration,
    /// How long a managed database takes to become ready.
    pub database: Duration,
    /// DNS zones the simulator's DNS providers hold from the start (the deployments' `dns.zone`).
    pub zones: Vec<String>,
    /// NATS nodes: 1 is a single server; 3 is a cluster with streams and KV buckets at three replicas.
    pub nats_nodes: usize,
    /// The `flotilla-service` binary (`env!("CARGO_BIN_EXE_flotilla-service")` in this package's tests).
    pub bin: PathBuf,
}

/// A secret and where it was put.
#[derive(Debug, Clone)]
pub struct KnownSecret {
    /// The slot (`linode token`, `S3 secret key of nl-ams-1` …).
    pub slot: String,
    /// The value.
    pub value: String,
}

/// The running system.
pub struct System {
    /// Everything on disk: configuration, data directories, logs, webroots.
    pub dir: tempfile::TempDir,
    /// NATS.
    pub nats: Nats,
    /// PostgreSQL.
    pub pg: PgServer,
    /// The cloud simulator.
    pub sim: RunningSim,
    /// A client of the test's own.
    pub client: async_nats::Client,
    /// The topology (desired states, fleet view, health view).
    pub topology: Topology,
    /// Publishes commands as the CLI does.
    pub publisher: Publisher,
    /// Every known secret value.
    pub secrets: Vec<KnownSecret>,
    options: Options,
    clouds_toml: String,
    notify_path: PathBuf,
    notify: UnixDatagram,
    running: BTreeMap<(String, usize), Child>,
    agents: BTreeMap<(String, String), Child>,
    starts: u64,
    /// `[service]` sections that replace the harness's own, per service.
    settings: BTreeMap<String, String>,
}

/// The NATS a [`System`] runs on.
pub enum Nats {
    /// One server.
    Single(crate::TestNats),
    /// A cluster.
    Cluster(crate::TestCluster),
}

impl Nats {
    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        match self {
            Nats::Single(n) => vec![n.url().to_owned()],
            Nats::Cluster(c) => c.urls(),
        }
    }

    /// The topology the services are given: three replicas on a cluster.
    pub fn topology(&self) -> TopologyConfig {
        TopologyConfig {
            replicas: match self {
                Nats::Single(_) => 1,
                Nats::Cluster(c) => c.urls().len().min(3),
            },
            ..TopologyConfig::default()
        }
    }
}

/// A random value for a secret slot: recognisable, and long enough never to occur by chance.
fn secret_value(slot: &str) -> String {
    let mut rng = rand::rng();
    let tail: String = (0..24)
        .map(|_| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rng.random_range(0..32)]))
        .collect();
    format!("{slot}{tail}")
}

impl System {
    /// Starts NATS, PostgreSQL and the simulator (accepting the generated secrets besides its defaults);
    /// the services start with [`System::start_all`]. `None` where PostgreSQL's programs
    /// are missing outside CI.
    pub async fn start(options: Options) -> Option<Self> {
        let pg = PgServer::start()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let nats = if options.nats_nodes > 1 {
            Nats::Cluster(crate::TestCluster::start(options.nats_nodes).await)
        } else {
            Nats::Single(crate::TestNats::private().await)
        };
        let mut secrets = Vec::new();
        let mut known = |slot: &str, prefix: &str| {
            let value = secret_value(prefix);
            secrets.push(KnownSecret {
                slot: slot.to_owned(),
                value: value.clone(),
            });
            value
        };
        let linode = known("linode token", "lin");
        let digitalocean = known("digitalocean token", "dop");
        let vultr = known("vultr api key", "vul");
        let cloudflare = known("cloudflare token", "cft");
        let exoscale_key = format!("EXO{}", &secret_value("k")[1..]);
        let exoscale_secret = known("exoscale secret", "exs");
        let database_password = known("database password", "pgp");
        let mut sim_config = crate::sim::simulator_config(options.boot, options.database);
        sim_config.cloudflare_zones.extend(options.zones.iter().cloned());
        sim_config.provider_zones.extend(options.zones.iter().cloned());
        sim_config
            .credentials
            .linode
            .push(Token::new("flotilla", &linode));
        sim_config
            .credentials
            .digitalocean
            .push(Token::new("flotilla", &digitalocean));
        sim_config.credentials.vultr.push(Token::new("flotilla", &vultr));
        sim_config
            .credentials
            .cloudflare
            .push(Token::new("flotilla", &cloudflare));
        sim_config
            .credentials
            .exoscale
            .push(flotilla_cloudsim::ExoscaleKey {
                name: "flotilla".into(),
                key: exoscale_key.clone(),
                secret: exoscale_secret.clone(),
            });
        sim_config.s3 = S3EndpointConfig::defaults()
            .into_iter()
            .map(|mut e| {
                e.secret_key = known(&format!("S3 secret key of {}", e.region), "s3s");
                e
            })
            .collect();
        let sim = flotilla_cloudsim::Simulator::start(sim_config)
            .await
            .expect("the simulator starts");

        let mut clouds_toml = format!(
            "[clouds.endpoints]\nlinode = {:?}\ndigitalocean = {:?}\nvultr = {:?}\nexoscale = {:?}\ncloudflare = {:?}\n\n\
             [clouds.simulator]\nlinode_token = {linode:?}\ndigitalocean_token = {digitalocean:?}\nvultr_token = {vultr:?}\n\
             exoscale_key = {exoscale_key:?}\nexoscale_secret = {exoscale_secret:?}\ncloudflare_token = {cloudflare:?}\n",
            sim.linode_url(),
            sim.digitalocean_url(),
            sim.vultr_url(),
            sim.exoscale_zone_url("{zone}"),
            sim.cloudflare_url(),
        );
        for e in sim.s3_endpoints() {
            if let Some(host) = e.host_base() {
                clouds_toml.push_str(&format!(
                    "\n[clouds.simulator.s3.{host:?}]\nurl = {:?}\naccess_key = {:?}\nsecret_key = {:?}\n",
                    e.url, e.access_key, e.secret_key
                ));
            }
        }
        let password_file = dir.path().join("database-password");
        std::fs::write(&password_file, &database_password).expect("password file");
        for service in SERVICES {
            pg.create_database(&format!("flotilla_{service}")).await;
        }

        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(nats.urls())
            .await
            .expect("connect to NATS");
        // A new cluster answers JetStream once it elected its meta leader.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let topology = loop {
            match Topology::ensure(&client, &nats.topology()).await {
                Ok(t) => break t,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, "JetStream not answering yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("the topology: {e}"),
            }
        };
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("the notify socket");
        Some(Self {
            dir,
            nats,
            pg,
            sim,
            client,
            topology,
            publisher,
            secrets,
            options,
            clouds_toml,
            notify_path,
            notify,
            running: BTreeMap::new(),
            agents: BTreeMap::new(),
            starts: 0,
            settings: BTreeMap::new(),
        })
    }

    /// Starts every service's replicas (after [`System::write_secrets_file`], when there is one).
    pub async fn start_all(&mut self) {
        for service in SERVICES {
            for replica in 0..self.options.replicas {
                self.start_service(service, replica).await;
            }
        }
    }

    /// Writes the secrets file the services read: every slot of every region of `deployments` holds a
    /// distinct known value. The services prefer the simulator's credentials for the providers; the file
    /// still carries what operators keep there (DNS keys, the DBaaS password, repository and mail
    /// credentials), and nothing of it may leak either.
    pub fn write_secrets_file(&mut self, deployments: &[&Deployment]) -> PathBuf {
        use flotilla_spec::{
            CloudCredentials, DatastoreCredentials, DnsCredentials, EmailCredentials, RegionSecrets,
            RepositoryCredentials, Secret, Secrets,
        };
        let mut text = String::new();
        for d in deployments {
            let mut regions = BTreeMap::new();
            for r in &d.regions {
                let mut k = |slot: &str, prefix: &str| {
                    let value = secret_value(prefix);
                    self.secrets.push(KnownSecret {
                        slot: format!("{slot} of {}/{}", d.name, r.name),
                        value: value.clone(),
                    });
                    Secret::new(value)
                };
                let region = RegionSecrets {
                    cloud: CloudCredentials {
                        token: Some(k("secrets-file cloud token", "sft")),
                        access_key: None,
                        secret_key: None,
                    },
                    datastores: r
                        .datastores
                        .iter()
                        .map(|_| DatastoreCredentials {
                            access_key: k("secrets-file datastore access key", "sfa"),
                            secret_key: k("secrets-file datastore secret key", "sfs"),
                        })
                        .collect(),
                    dns: Some(DnsCredentials {
                        username: Some("ops@example.com".into()),
                        security_key: k("secrets-file DNS key", "sfd"),
                    }),
                    auth_dns: None,
                    dbaas_password: r.primary.then(|| k("secrets-file DBaaS password", "sfp")),
                    repositories: RepositoryCredentials {
                        application_password: Some(k("secrets-file repository password", "sfr")),
                        application_token: Some(k("secrets-file repository token", "sfg")),
                        infrastructure_password: Some(k("secrets-file infrastructure password", "sfi")),
                    },
                    email: Some(EmailCredentials {
                        username: Some(k("secrets-file SMTP user", "sfu")),
                        password: k("secrets-file SMTP password", "sfm"),
                    }),
                };
                regions.insert(r.name.clone(), region);
            }
            let file = flotilla_spec::SecretsFile::for_deployment(d.name.clone(), Secrets { regions });
            text.push_str(&file.to_toml().expect("the secrets file as TOML"));
            text.push('\n');
        }
        let path = self.dir.path().join("secrets.toml");
        std::fs::write(&path, text).expect("the secrets file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
        path
    }

    /// Where the logs go: `<dir>/logs`.
    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn service_config(&self, service: &str, replica: usize) -> PathBuf {
        let data = self.dir.path().join("data").join(format!("{service}-{replica}"));
        let secrets = self.dir.path().join("secrets.toml");
        let specific = match service {
            "provisioner" => format!(
                "health_port = {}\nhealth_path = \"/health\"\nboot_timeout = \"20s\"\npoll_interval = \"100ms\"\n\
                 reconcile_interval = \"10s\"\nprimary_wait = \"90s\"\ndbaas_timeout = \"90s\"\nregion_lease_ttl = \"5s\"\n",
                self.sim.health_port()
            ),
            "dns" | "firewall" => {
                "resync_interval = \"10s\"\ndebounce = \"50ms\"\nlease_ttl = \"5s\"\n".to_owned()
            }
            "sync" => "resync_interval = \"10s\"\nlease_ttl = \"5s\"\n".to_owned(),
            "autoscaler" => {
                let mut probes = String::new();
                for role in ["webserver", "reverse_proxy", "authenticator"] {
                    probes.push_str(&format!(
                        "\n[service.probe.{role}]\nport = {}\npath = \"/health\"\ninterval = \"250ms\"\ntimeout = \"200ms\"\n\
                         healthy_threshold = 1\nunhealthy_threshold = 2\ngrace = \"10s\"\nreplace_after = 3\n",
                        self.sim.health_port()
                    ));
                }
                format!(
                    "lease_ttl = \"5s\"\nresync_interval = \"2s\"\ndrain_delay = \"500ms\"\naction_timeout = \"60s\"\n\
                     backoff_base = \"1s\"\n{probes}"
                )
            }
            _ => String::new(),
        };
        let specific = self.settings.get(service).cloned().unwrap_or(specific);
        let text = format!(
            "data_dir = {data:?}\ndatabase_url = {url:?}\ndatabase_password_file = {password:?}\n{secrets_line}\n\
             [nats]\nurls = {nats:?}\n\n[bus]\nreplicas = {replicas}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[service]\n{specific}\n{clouds}",
            data = data.display().to_string(),
            url = self.pg.url(&format!("flotilla_{service}")),
            password = self.dir.path().join("database-password").display().to_string(),
            secrets_line = if secrets.exists() {
                format!("secrets_file = {:?}\n", secrets.display().to_string())
            } else {
                String::new()
            },
            nats = self.nats.urls(),
            replicas = self.nats.topology().replicas,
            clouds = self.clouds_toml,
        );
        let path = self.dir.path().join(format!("{service}-{replica}.toml"));
        std::fs::write(&path, text).expect("a configuration file");
        path
    }

    /// Replaces the `[service]` section the harness writes for `service` (short intervals for the chaos
    /// runs) with `toml`, for the replicas started from now on: a benchmark that needs other settings.
    pub fn set_service_settings(&mut self, service: &str, toml: impl Into<String>) {
        self.settings.insert(service.to_owned(), toml.into());
    }

    /// The process id of replica `replica` of `service` while it runs (its memory is in `/proc/<pid>`).
    pub fn pid(&self, service: &str, replica: usize) -> Option<u32> {
        self.running
            .get(&(service.to_owned(), replica))
            .and_then(Child::id)
    }

    /// The process id of `region`'s sync agent while it runs.
    pub fn agent_pid(&self, deployment: &str, region: &str) -> Option<u32> {
        self.agents
            .get(&(deployment.to_owned(), region.to_owned()))
            .and_then(Child::id)
    }

    /// Starts (or starts again) replica `replica` of `service` and waits for its `READY=1`.
    pub async fn start_service(&mut self, service: &str, replica: usize) {
        let config = self.service_config(service, replica);
        std::fs::create_dir_all(self.logs()).expect("the log directory");
        self.starts += 1;
        let (child, _log) = crate::process::start_binary_with(
            &self.options.bin.display().to_string(),
            &config,
            &self.notify_path,
            &self.notify,
            &self.logs(),
            &format!("{service}-{replica}"),
            self.starts,
            &[("FLOTILLA_SERVICE", service)],
        )
        .await;
        self.running.insert((service.to_owned(), replica), child);
    }

    /// SIGKILLs replica `replica` of `service` (nothing when it is not running).
    pub async fn kill_service(&mut self, service: &str, replica: usize) {
        if let Some(mut child) = self.running.remove(&(service.to_owned(), replica)) {
            let _ = child.kill().await;
        }
    }

    /// The replicas that are not running, or have exited on their own (which a chaos run reports).
    pub fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for ((service, replica), child) in &mut self.running {
            if let Ok(Some(status)) = child.try_wait() {
                out.push(format!("{service} replica {replica} exited by itself: {status}"));
            }
        }
        out
    }

    /// The webroot of `region`'s agent.
    pub fn webroot(&self, deployment: &str, region: &str) -> PathBuf {
        self.dir.path().join("webroots").join(deployment).join(region)
    }

    /// Starts the sync agent of `region` (its webroot under [`System::webroot`]) and waits for `READY=1`
    /// (it says so once it caught up with its datastore).
    pub async fn start_agent(&mut self, deployment: &str, region: &str) {
        let webroot = self.webroot(deployment, region);
        std::fs::create_dir_all(&webroot).expect("a webroot");
        let text = format!(
            "data_dir = {data:?}\n\n[nats]\nurls = {nats:?}\n\n[bus]\nreplicas = {replicas}\n\n[admin]\ndisabled = true\n\n[service]\nrole = \"agent\"\n\
             debounce = \"50ms\"\n\n[service.agent]\ndeployment = {deployment:?}\nregion = {region:?}\nmachine = {machine:?}\n\
             webroot = {webroot:?}\n\n{clouds}",
            data = self
                .dir
                .path()
                .join("data")
                .join(format!("agent-{deployment}-{region}"))
                .display()
                .to_string(),
            nats = self.nats.urls(),
            replicas = self.nats.topology().replicas,
            machine = format!("agent-{region}"),
            webroot = webroot.display().to_string(),
            clouds = self.clouds_toml,
        );
        let config = self.dir.path().join(format!("agent-{deployment}-{region}.toml"));
        std::fs::write(&config, text).expect("an agent configuration");
        std::fs::create_dir_all(self.logs()).expect("the log directory");
        self.starts += 1;
        let (child, _log) = crate::process::start_binary_with(
            &self.options.bin.display().to_string(),
            &config,
            &self.notify_path,
            &self.notify,
            &self.logs(),
            &format!("agent-{region}"),
            self.starts,
            &[("FLOTILLA_SERVICE", "sync")],
        )
        .await;
        self.agents
            .insert((deployment.to_owned(), region.to_owned()), child);
    }

    /// SIGKILLs the agent of `region`.
    pub async fn kill_agent(&mut self, deployment: &str, region: &str) {
        if let Some(mut child) = self.agents.remove(&(deployment.to_owned(), region.to_owned())) {
            let _ = child.kill().await;
        }
    }

    /// Asks a provisioner API until one answers (replicas may be down), for up to two minutes.
    async fn ask<Q: flotilla_proto::Message, A: flotilla_proto::Message>(&self, verb: &str, req: &Q) -> A {
        let subject = subject::api("provisioner", verb).expect("an API subject");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match api::request::<Q, A>(&self.client, &subject, req, Duration::from_secs(5)).await {
                Ok(a) => return a,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, verb, "the provisioner API did not answer; asking again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("the provisioner's {verb} API: {e}"),
            }
        }
    }

    /// Deploys `d` as `flotilla deploy` does: the spec accepted as the desired state, then an apply per
    /// region, the primary first. Returns the generation.
    pub async fn deploy(&self, d: &Deployment) -> u64 {
        let accepted: Accepted = self
            .ask(
                "accept",
                &AcceptDeployment {
                    deployment: d.clone(),
                    issued_by: "chaos".into(),
                },
            )
            .await;
        let mut regions: Vec<_> = d.regions.iter().collect();
        regions.sort_by_key(|r| (!r.primary, r.name.clone()));
        for r in regions {
            let cmd = flotilla_proto::ApplyRegion {
                meta: CommandMeta::new("chaos"),
                deployment: d.clone(),
                region: r.name.clone(),
                generation: accepted.generation,
            };
            self.publisher
                .publish_command(&cmd)
                .await
                .expect("publish an apply");
        }
        accepted.generation
    }

    /// Destroys `region` of `d` as `flotilla destroy` does: withdrawn from the desired state, then the
    /// destroy for that generation.
    pub async fn destroy_region(&self, d: &Deployment, region: &str) {
        let accepted: Accepted = self
            .ask(
                "withdraw",
                &WithdrawRegions {
                    deployment: d.name.clone(),
                    regions: vec![region.to_owned()],
                    issued_by: "chaos".into(),
                },
            )
            .await;
        let cmd = flotilla_proto::DestroyRegion {
            meta: CommandMeta::new("chaos"),
            deployment: d.name.clone(),
            region: region.to_owned(),
            generation: accepted.generation,
        };
        self.publisher
            .publish_command(&cmd)
            .await
            .expect("publish a destroy");
    }

    /// Sets `region`'s desired webserver count, as `flotilla scale` does.
    pub async fn scale(&self, d: &Deployment, region: &str, desired: u32) {
        let cmd = flotilla_proto::ScaleRegion {
            meta: CommandMeta::new("chaos"),
            deployment: d.name.clone(),
            region: region.to_owned(),
            desired,
        };
        self.publisher
            .publish_command(&cmd)
            .await
            .expect("publish a scale");
    }

    /// Injects a provider fault.
    pub fn fault(&self, fault: &Fault) {
        self.sim.add_fault(fault);
    }

    /// Every machine of `deployment` the simulator holds.
    pub fn machines(&self, deployment: &str) -> Vec<SimMachine> {
        self.sim
            .machines()
            .iter()
            .filter_map(|m| SimMachine::ours(m, deployment))
            .collect()
    }

    /// What is wrong with the system, judged by the simulator's state and the files on disk, when
    /// `expected` is what it should hold. Empty when everything holds.
    pub async fn violations(&self, expected: &[Expected]) -> Vec<String> {
        let mut out = Vec::new();
        let observer = flotilla_clouds::Clouds::new(crate::sim::observer_settings(&self.sim), None);
        for e in expected {
            let d = &e.deployment;
            let machines = self.machines(&d.name);
            // Exactly the machines wanted: per live region and role the count, none twice, none elsewhere.
            let mut ids = BTreeSet::new();
            for m in &machines {
                if !ids.insert(m.resource_id.clone()) {
                    out.push(format!("{}: resource {} exists twice", d.name, m.resource_id));
                }
                if d.region(&m.fl_region).is_none() {
                    out.push(format!(
                        "{}: machine {} ({}) is in region {}, which is not deployed: orphaned",
                        d.name, m.name, m.id, m.fl_region
                    ));
                }
                if m.status != "running" || !m.answering {
                    out.push(format!(
                        "{}: machine {} is {}{}",
                        d.name,
                        m.name,
                        m.status,
                        if m.answering { "" } else { " and does not answer" }
                    ));
                }
            }
            for r in &d.regions {
                for (role, spec) in r.machines.iter() {
                    let want = if role == Role::Webserver {
                        e.webservers.get(&r.name).copied().unwrap_or(spec.count)
                    } else {
                        spec.count
                    };
                    let have = machines
                        .iter()
                        .filter(|m| m.fl_region == r.name && m.role == Some(role))
                        .count();
                    if have != want as usize {
                        out.push(format!(
                            "{}/{}: {have} {} machine(s), wanted {want}",
                            d.name,
                            r.name,
                            role.as_str()
                        ));
                    }
                }
            }
            // DNS: the site name holds exactly the reverse proxies (answering), the authenticator name one
            // authenticator.
            let Some(primary) = d.primary_region() else {
                out.push(format!("{}: no primary region", d.name));
                continue;
            };
            match observer.dns(&d.name, d.dns.provider, primary) {
                Ok(dns) => match dns.find_zone(&d.dns.zone).await {
                    Ok(Some(zone)) => match dns.list_records(&zone, None, Some("A")).await {
                        Ok(records) => {
                            let site = d.website_url.trim().trim_end_matches('.').to_ascii_lowercase();
                            let mut have: Vec<String> = records
                                .iter()
                                .filter(|r| r.name.eq_ignore_ascii_case(&site))
                                .map(|r| r.content.clone())
                                .collect();
                            have.sort();
                            let mut want: Vec<String> = machines
                                .iter()
                                .filter(|m| m.role == Some(Role::ReverseProxy))
                                .map(|m| m.public_ip.to_string())
                                .collect();
                            want.sort();
                            if have != want {
                                out.push(format!(
                                    "{}: DNS {site} holds {have:?}, the reverse proxies are {want:?}",
                                    d.name
                                ));
                            }
                            let auth = format!("auth.{site}");
                            let auths: Vec<&str> = records
                                .iter()
                                .filter(|r| r.name.eq_ignore_ascii_case(&auth))
                                .map(|r| r.content.as_str())
                                .collect();
                            let authenticators: BTreeSet<String> = machines
                                .iter()
                                .filter(|m| m.role == Some(Role::Authenticator))
                                .map(|m| m.public_ip.to_string())
                                .collect();
                            if !authenticators.is_empty()
                                && (auths.len() != 1 || !authenticators.contains(auths[0]))
                            {
                                out.push(format!(
                                    "{}: DNS {auth} holds {auths:?}, wanted one of {authenticators:?}",
                                    d.name
                                ));
                            }
                        }
                        Err(err) => out.push(format!("{}: listing DNS records: {err}", d.name)),
                    },
                    Ok(None) => out.push(format!("{}: no DNS zone {}", d.name, d.dns.zone)),
                    Err(err) => out.push(format!("{}: finding the DNS zone: {err}", d.name)),
                },
                Err(err) => out.push(format!("{}: DNS adapter: {err}", d.name)),
            }
            // The managed database's allow-list: the home region's VPC and the public address of every
            // webserver and database machine of the other regions, nothing else.
            if let Some((home, label)) = flotilla_firewall::plan::database_home(d) {
                match observer.region(&d.name, home) {
                    Ok(cloud) => match cloud.databases.find_database(label).await {
                        Ok(Some(db)) => {
                            let have: BTreeSet<String> = flotilla_firewall::plan::normalized(&db.allow_list)
                                .iter()
                                .map(ToString::to_string)
                                .collect();
                            let mut want: BTreeSet<String> = BTreeSet::from([home.vpc.cidr.to_string()]);
                            want.extend(
                                machines
                                    .iter()
                                    .filter(|m| m.fl_region != home.name)
                                    .filter(|m| matches!(m.role, Some(Role::Webserver | Role::Database)))
                                    .map(|m| format!("{}/32", m.public_ip)),
                            );
                            if have != want {
                                out.push(format!(
                                    "{}: the allow-list holds {:?} it should not and lacks {:?}",
                                    d.name,
                                    have.difference(&want).collect::<Vec<_>>(),
                                    want.difference(&have).collect::<Vec<_>>()
                                ));
                            }
                        }
                        Ok(None) => out.push(format!("{}: no managed database {label}", d.name)),
                        Err(err) => out.push(format!("{}: reading the managed database: {err}", d.name)),
                    },
                    Err(err) => out.push(format!("{}: cloud adapter of {}: {err}", d.name, home.name)),
                }
            }
            // Boxed: the callers' futures stay shallow enough for the compiler's layout depth.
            out.extend(Box::pin(self.firewall_violations(&observer, d, &machines)).await);
            out.extend(Box::pin(left_behind(&observer, d, &e.gone)).await);
            if let Some(id) = &e.backup {
                out.extend(Box::pin(backup_violations(&observer, d, id)).await);
            }
            // Webroots: every agent's the same, and what the scenario left.
            if let Some(files) = &e.webroot {
                for r in &e.agents {
                    let tree = tree(&self.webroot(&d.name, r));
                    if &tree != files {
                        let have: BTreeSet<&String> = tree.keys().collect();
                        let want: BTreeSet<&String> = files.keys().collect();
                        out.push(format!(
                            "{}/{r}: webroot has {:?} it should not, lacks {:?}, or differs in content",
                            d.name,
                            have.difference(&want).collect::<Vec<_>>(),
                            want.difference(&have).collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
        out
    }

    /// Provider firewalls: in every region that uses them (`ACTIVE_FIREWALLS` 2 or 3), each role with
    /// machines (or given machines by the spec) has its firewall, applied to exactly that role's machines of
    /// the region.
    async fn firewall_violations(
        &self,
        observer: &flotilla_clouds::Clouds,
        d: &Deployment,
        machines: &[SimMachine],
    ) -> Vec<String> {
        let mut out = Vec::new();
        for r in d.regions.iter().filter(|r| r.firewall.native()) {
            let roles: Vec<Role> = Role::ALL
                .iter()
                .copied()
                .filter(|role| {
                    r.machines.get(*role).count > 0
                        || machines
                            .iter()
                            .any(|m| m.fl_region == r.name && m.role == Some(*role))
                })
                .collect();
            let names: Vec<String> = roles
                .iter()
                .map(|role| flotilla_firewall::plan::firewall_name(r, *role))
                .collect();
            let found = match observer.region(&d.name, r) {
                Ok(cloud) => cloud.network.find_firewalls(&names).await,
                Err(err) => {
                    out.push(format!("{}/{}: cloud adapter: {err}", d.name, r.name));
                    continue;
                }
            };
            let found = match found {
                Ok(found) => found,
                Err(err) => {
                    out.push(format!("{}/{}: reading the firewalls: {err}", d.name, r.name));
                    continue;
                }
            };
            for ((role, name), firewall) in roles.iter().zip(&names).zip(found) {
                let want: BTreeSet<&str> = machines
                    .iter()
                    .filter(|m| m.fl_region == r.name && m.role == Some(*role))
                    .map(|m| m.id.as_str())
                    .collect();
                match firewall {
                    None => out.push(format!("{}/{}: no firewall {name}", d.name, r.name)),
                    Some(f) => {
                        let have: BTreeSet<&str> = f.machine_ids.iter().map(String::as_str).collect();
                        if have != want {
                            out.push(format!(
                                "{}/{}: firewall {name} is applied to {:?} it should not be, and not to {:?}",
                                d.name,
                                r.name,
                                have.difference(&want).collect::<Vec<_>>(),
                                want.difference(&have).collect::<Vec<_>>()
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// Asks for a backup of `region`'s webroot, as `flotilla backup` does (period `manual`), and publishes
    /// the same command again under another message id, so that JetStream's duplicate window does not drop
    /// it: the service sees the command twice, as after a redelivery, and must not write a second archive.
    /// Returns the backup's id.
    pub async fn take_backup(&self, d: &Deployment, region: &str) -> String {
        let cmd = flotilla_proto::TakeBackup {
            meta: CommandMeta::new("chaos"),
            deployment: d.name.clone(),
            region: region.to_owned(),
            period: "manual".into(),
        };
        self.publisher
            .publish_command(&cmd)
            .await
            .expect("publish a backup");
        let subject = subject::command_for(&cmd).expect("a command subject");
        self.publisher
            .publish(&subject, &format!("{}-again", cmd.meta.id), &cmd)
            .await
            .expect("publish the backup again");
        cmd.meta.id.to_string()
    }

    /// Dead letters in every service's queue, as `(service subject, message id, reason)`.
    pub async fn dead_letters(&self) -> Vec<(String, String, String)> {
        let js = async_nats::jetstream::new(self.client.clone());
        let mut out = Vec::new();
        let Ok(dlq) = js.get_stream(flotilla_bus::topology::DLQ_STREAM).await else {
            return out;
        };
        let mut at = 1;
        while let Ok(m) = dlq
            .raw_message_builder()
            .sequence(at)
            .next_by_subject(subject::DLQ_WILDCARD.to_owned())
            .send()
            .await
        {
            at = m.sequence + 1;
            let id =
                flotilla_bus::header(Some(&m.headers), flotilla_bus::DLQ_MSG_ID_HEADER).unwrap_or_default();
            let error =
                flotilla_bus::header(Some(&m.headers), flotilla_bus::DLQ_ERROR_HEADER).unwrap_or_default();
            out.push((m.subject.to_string(), id, error));
        }
        out
    }

    /// Stops everything the test started (the services first, SIGTERM, then the rest).
    pub async fn shutdown(mut self) {
        for child in self.running.values_mut().chain(self.agents.values_mut()) {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        let children: Vec<Child> = std::mem::take(&mut self.running)
            .into_values()
            .chain(std::mem::take(&mut self.agents).into_values())
            .collect();
        for mut child in children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.sim.shutdown().await;
    }

    /// Every place a secret could leak to, searched for every known secret value: the services' logs,
    /// every message of every stream, every key of every KV bucket (all revisions kept), the services' API
    /// answers (`status` and `why` of every service), every row of every table of every service database,
    /// and every file under the data directories. Returns where each was found.
    ///
    /// The sweep proves it can find a leak: before it searches, it plants a canary value in a data file, in
    /// a message of the events stream and in a row of the sync database, and it fails unless it finds the
    /// canary in exactly those three places (the canary's finds are not returned).
    pub async fn sweep_secrets(&self, deployments: &[&Deployment]) -> Vec<String> {
        let canary = KnownSecret {
            slot: "the canary".into(),
            value: secret_value("canary"),
        };
        self.plant(&canary.value).await;
        let mut needles: Vec<&KnownSecret> = self.secrets.iter().collect();
        needles.push(&canary);
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        let mut look = |place: &str, haystack: &[u8]| {
            let text = String::from_utf8_lossy(haystack);
            for s in &needles {
                if text.contains(&s.value) {
                    found.push(format!("{} found in {place}", s.slot));
                }
            }
        };
        // Files: logs, data directories, configuration aside (configuration files hold secrets by design;
        // the secrets file too).
        for dir in [
            self.logs(),
            self.dir.path().join("data"),
            self.dir.path().join("webroots"),
        ] {
            for entry in walkdir(&dir) {
                if let Ok(bytes) = std::fs::read(&entry) {
                    look(&entry.display().to_string(), &bytes);
                }
            }
        }
        // Streams and KV buckets (a KV bucket is a stream too: `KV_<bucket>`, every revision kept there).
        let js = async_nats::jetstream::new(self.client.clone());
        let mut names = js.stream_names();
        let mut streams = Vec::new();
        use futures::StreamExt;
        while let Some(Ok(name)) = names.next().await {
            streams.push(name);
        }
        for name in streams {
            let Ok(stream) = js.get_stream(&name).await else {
                continue;
            };
            let mut at = 1;
            while let Ok(m) = stream
                .raw_message_builder()
                .sequence(at)
                .next_by_subject(">".to_owned())
                .send()
                .await
            {
                at = m.sequence + 1;
                let mut all = m.payload.to_vec();
                for (k, vs) in m.headers.iter() {
                    all.extend_from_slice(k.to_string().as_bytes());
                    for v in vs {
                        all.extend_from_slice(v.as_str().as_bytes());
                    }
                }
                look(
                    &format!("stream {name} message {} ({})", m.sequence, m.subject),
                    &all,
                );
            }
        }
        // API answers.
        for service in SERVICES {
            for verb in ["status", "why"] {
                let Ok(subject) = subject::api(service, verb) else {
                    continue;
                };
                for d in deployments {
                    for r in &d.regions {
                        let body = serde_json::json!({"deployment": d.name, "region": r.name});
                        if let Ok(Ok(reply)) = tokio::time::timeout(
                            Duration::from_secs(5),
                            self.client.request(
                                subject.clone(),
                                serde_json::to_vec(&body).unwrap_or_default().into(),
                            ),
                        )
                        .await
                        {
                            look(&format!("the {service} {verb} API answer"), &reply.payload);
                        }
                    }
                }
            }
        }
        // Database rows: every text cast of every row of every table.
        for service in SERVICES {
            let url = self.pg.url(&format!("flotilla_{service}"));
            let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
            else {
                unreadable.push(format!("the {service} database could not be read"));
                continue;
            };
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            for (table,) in tables {
                let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                for (row,) in rows {
                    look(
                        &format!("a row of {table} in the {service} database"),
                        row.as_bytes(),
                    );
                }
            }
            pool.close().await;
        }
        found.extend(unreadable);
        let (canaries, found): (Vec<String>, Vec<String>) =
            found.into_iter().partition(|f| f.starts_with("the canary "));
        let places = [
            "canary.txt",
            "stream FLOTILLA_EVENTS",
            "a row of public.sweep_canary",
        ];
        for place in places {
            assert!(
                canaries.iter().any(|c| c.contains(place)),
                "the secrets sweep did not find the canary planted in {place}: it would miss a leak there ({canaries:?})"
            );
        }
        assert_eq!(
            canaries.len(),
            places.len(),
            "the canary where it was not planted: {canaries:?}"
        );
        found
    }

    /// Plants `value` where [`System::sweep_secrets`] must find it.
    async fn plant(&self, value: &str) {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("the data directory");
        std::fs::write(data.join("canary.txt"), value).expect("the canary file");
        let js = async_nats::jetstream::new(self.client.clone());
        js.publish("flotilla.evt.sweep.canary.none.planted", value.to_owned().into())
            .await
            .expect("publish the canary")
            .await
            .expect("the canary stored");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.pg.url("flotilla_sync"))
            .await
            .expect("the sync database");
        sqlx::query("CREATE TABLE sweep_canary (value text)")
            .execute(&pool)
            .await
            .expect("the canary table");
        sqlx::query("INSERT INTO sweep_canary VALUES ($1)")
            .bind(value)
            .execute(&pool)
            .await
            .expect("the canary row");
        pool.close().await;
    }
}

/// Every file under `root`.
fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// A webroot's files and contents, by path relative to it (temporary files of a transfer included: a
/// settled webroot has none).
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir(root)
        .into_iter()
        .filter_map(|p| {
            let key = p.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            Some((key, std::fs::read(&p).ok()?))
        })
        .collect()
}

/// What a destroy left in the regions `gone` of `d`: firewalls or a VPC (machines are judged with the
/// others).
async fn left_behind(
    observer: &flotilla_clouds::Clouds,
    d: &Deployment,
    gone: &[flotilla_spec::Region],
) -> Vec<String> {
    let mut out = Vec::new();
    for r in gone {
        let cloud = match observer.region(&d.name, r) {
            Ok(cloud) => cloud,
            Err(err) => {
                out.push(format!("{}/{} (destroyed): cloud adapter: {err}", d.name, r.name));
                continue;
            }
        };
        let names: Vec<String> = Role::ALL.iter().map(|role| r.firewall_name(*role)).collect();
        match cloud.network.find_firewalls(&names).await {
            Ok(found) => {
                for f in found.into_iter().flatten() {
                    out.push(format!(
                        "{}/{} (destroyed): firewall {} ({}) left behind",
                        d.name, r.name, f.name, f.id
                    ));
                }
            }
            Err(err) => out.push(format!(
                "{}/{} (destroyed): reading the firewalls: {err}",
                d.name, r.name
            )),
        }
        match cloud.network.find_vpc(&r.provider_region, &r.vpc.name).await {
            Ok(Some(vpc)) => out.push(format!(
                "{}/{} (destroyed): VPC {} ({}) left behind",
                d.name, r.name, r.vpc.name, vpc.id
            )),
            Ok(None) => {}
            Err(err) => out.push(format!(
                "{}/{} (destroyed): reading the VPC: {err}",
                d.name, r.name
            )),
        }
    }
    out
}

/// Backups: the archive of backup `id` once on every datastore endpoint of `d` (in the bucket of manual
/// backups), its `.sha256` beside it matching its bytes, and the same bytes on every endpoint.
async fn backup_violations(observer: &flotilla_clouds::Clouds, d: &Deployment, id: &str) -> Vec<String> {
    use sha2::Digest as _;
    let mut out = Vec::new();
    // The service names an archive by its time and the command's id (prefixed, hyphens dropped).
    let short: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    let suffix = format!("{short}.tar.gz");
    let bucket = d.bucket("manual");
    let mut seen = BTreeSet::new();
    let mut sums = BTreeSet::new();
    for r in &d.regions {
        let set = match observer.datastores(&d.name, r) {
            Ok(set) => set,
            Err(err) => {
                out.push(format!("{}/{}: datastores: {err}", d.name, r.name));
                continue;
            }
        };
        for (endpoint, store) in r.datastores.iter().zip(set.endpoints()) {
            let name = flotilla_sync::stamps::endpoint_name(endpoint);
            if !seen.insert(name.clone()) {
                continue;
            }
            let listed = match store.list(&bucket, "webroot-").await {
                Ok(listed) => listed,
                Err(err) => {
                    out.push(format!(
                        "{}: backup {id}: listing {bucket} on {name}: {err}",
                        d.name
                    ));
                    continue;
                }
            };
            let archives: Vec<&str> = listed
                .iter()
                .map(|o| o.key.as_str())
                .filter(|k| k.ends_with(&suffix))
                .collect();
            let [key] = archives[..] else {
                out.push(format!(
                    "{}: backup {id}: {} archive(s) in {bucket} on {name}, wanted one",
                    d.name,
                    archives.len()
                ));
                continue;
            };
            let (body, sum) = match (
                store.get(&bucket, key).await,
                store.get(&bucket, &format!("{key}.sha256")).await,
            ) {
                (Ok(Some(body)), Ok(Some(sum))) => (body, sum),
                (body, sum) => {
                    out.push(format!(
                        "{}: backup {id} on {name}: archive {}, checksum {}",
                        d.name,
                        if matches!(body, Ok(Some(_))) {
                            "read"
                        } else {
                            "unreadable or missing"
                        },
                        if matches!(sum, Ok(Some(_))) {
                            "read"
                        } else {
                            "unreadable or missing"
                        },
                    ));
                    continue;
                }
            };
            let got = hex::encode(sha2::Sha256::digest(&body));
            if String::from_utf8_lossy(&sum).trim() != got {
                out.push(format!(
                    "{}: backup {id} on {name}: the archive's SHA-256 is {got}, its .sha256 says {:?}",
                    d.name,
                    String::from_utf8_lossy(&sum).trim()
                ));
            }
            sums.insert(got);
        }
    }
    if sums.len() > 1 {
        out.push(format!(
            "{}: backup {id} differs between datastores ({} different archives)",
            d.name,
            sums.len()
        ));
    }
    out
}

/// What one deployment should look like once the system settled.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The deployment as last deployed (destroyed regions removed).
    pub deployment: Deployment,
    /// Webservers wanted per region where a scale changed them.
    pub webservers: BTreeMap<String, u32>,
    /// The regions with an agent.
    pub agents: Vec<String>,
    /// The files every agent's webroot must hold, when checked.
    pub webroot: Option<BTreeMap<String, Vec<u8>>>,
    /// The id of a backup asked for ([`System::take_backup`]), when checked: every datastore endpoint of
    /// the deployment must hold its archive once, with a `.sha256` beside it that the archive matches,
    /// the same archive everywhere.
    pub backup: Option<String>,
    /// Regions destroyed: nothing of ours may be left there (no machine, firewall or VPC).
    pub gone: Vec<flotilla_spec::Region>,
}

/// One of our machines as the simulator holds it.
#[derive(Debug, Clone)]
pub struct SimMachine {
    /// Provider.
    pub provider: Provider,
    /// The provider's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `fl-reg`: our region name.
    pub fl_region: String,
    /// `fl-role`.
    pub role: Option<Role>,
    /// `fl-id`: our resource id.
    pub resource_id: String,
    /// `provisioning` or `running`.
    pub status: String,
    /// Whether it answers health checks.
    pub answering: bool,
    /// Public address.
    pub public_ip: std::net::Ipv4Addr,
}

impl SimMachine {
    fn ours(info: &flotilla_cloudsim::MachineInfo, deployment: &str) -> Option<Self> {
        let tag = |key: &str| {
            let prefix = format!("{key}:");
            info.tags
                .iter()
                .find_map(|t| t.strip_prefix(&prefix).map(str::to_owned))
        };
        let owned = info.tags.iter().any(|t| t == "flotilla" || t == "flotilla:true");
        if !owned || tag("fl-dep").as_deref() != Some(deployment) {
            return None;
        }
        Some(Self {
            provider: info.provider,
            id: info.id.clone(),
            name: info.name.clone(),
            fl_region: tag("fl-reg").unwrap_or_default(),
            role: tag("fl-role").and_then(|r| r.parse().ok()),
            resource_id: tag("fl-id").unwrap_or_default(),
            status: info.status.clone(),
            answering: info.answering,
            public_ip: info.public_ip,
        })
    }
}
