//! The typed deployment model and its TOML form.
//!
//! A [`Deployment`] is one web application (one `website_url`) deployed to one or more [`Region`]s, each on
//! one cloud provider. The model holds no secrets: credentials live in [`Secrets`](crate::Secrets), keyed
//! by region name.

use std::{fmt, str::FromStr};

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Diagnostic, Diagnostics, SpecError};

/// Error of the `FromStr` implementations of the model's enumerations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{value}\" (expected one of: {expected})")]
pub struct UnknownVariant {
    /// What was being parsed, e.g. "cloud provider".
    pub kind: &'static str,
    /// The text that matched no variant.
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

/// Defines a fieldless enum whose TOML/JSON form is a fixed lowercase string, with `as_str`, `ALL`,
/// `Display` and a case-insensitive `FromStr`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The canonical spelling, as used in TOML.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            /// Parses the canonical spelling, ignoring ASCII case and surrounding whitespace.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
                    UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                    }
                })
            }
        }
    };
}

string_enum! {
    /// A cloud provider that machines run on (template key `CLOUDHOST`).
    pub enum CloudProvider ("cloud provider") {
        /// Linode (Akamai).
        Linode = "linode",
        /// DigitalOcean.
        DigitalOcean = "digitalocean",
        /// Vultr.
        Vultr = "vultr",
        /// Exoscale.
        Exoscale = "exoscale",
    }
}

impl CloudProvider {
    /// Whether this provider authenticates with one API token (`TOKEN`) rather than an access/secret
    /// key pair (`ACCESS_KEY`/`SECRET_KEY`, Exoscale).
    pub const fn uses_token(self) -> bool {
        !matches!(self, Self::Exoscale)
    }

    /// The original toolkit's `MACHINE_TYPE` for this provider.
    pub const fn adt_machine_type(self) -> &'static str {
        match self {
            Self::Linode => "LINODE",
            Self::DigitalOcean => "DROPLET",
            Self::Vultr => "VULTR",
            Self::Exoscale => "EXOSCALE",
        }
    }
}

string_enum! {
    /// The service that hosts the deployment's DNS zone (template key `DNS_CHOICE`).
    pub enum DnsProvider ("DNS provider") {
        /// Cloudflare (recommended for multi-region deployments).
        Cloudflare = "cloudflare",
        /// DigitalOcean DNS.
        DigitalOcean = "digitalocean",
        /// Exoscale DNS.
        Exoscale = "exoscale",
        /// Linode DNS manager.
        Linode = "linode",
        /// Vultr DNS.
        Vultr = "vultr",
    }
}

string_enum! {
    /// Who runs an S3-compatible datastore endpoint.
    pub enum DatastoreProvider ("datastore provider") {
        /// Linode object storage (`*.linodeobjects.com`).
        Linode = "linode",
        /// DigitalOcean Spaces (`*.digitaloceanspaces.com`).
        DigitalOcean = "digitalocean",
        /// Vultr object storage (`*.vultrobjects.com`).
        Vultr = "vultr",
        /// Exoscale SOS (`sos-*.exo.io`).
        Exoscale = "exoscale",
        /// Any other S3-compatible service (AWS S3, MinIO, ...).
        Generic = "s3",
    }
}

impl DatastoreProvider {
    /// Recognises the provider from an endpoint host name such as `nl-ams-1.linodeobjects.com`;
    /// `Generic` when the host is not one of the four providers'.
    pub fn from_host_base(host: &str) -> Self {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.ends_with(".linodeobjects.com") {
            Self::Linode
        } else if host.ends_with(".digitaloceanspaces.com") {
            Self::DigitalOcean
        } else if host.ends_with(".vultrobjects.com") {
            Self::Vultr
        } else if host.ends_with(".exo.io") {
            Self::Exoscale
        } else {
            Self::Generic
        }
    }
}

string_enum! {
    /// The application deployed (template key `APPLICATION`).
    pub enum Application ("application") {
        /// No CMS: a plain site.
        None = "none",
        /// Joomla.
        Joomla = "joomla",
        /// WordPress.
        Wordpress = "wordpress",
        /// Drupal.
        Drupal = "drupal",
        /// Moodle.
        Moodle = "moodle",
    }
}

string_enum! {
    /// The application's language (template key `APPLICATION_LANGUAGE`).
    pub enum Language ("application language") {
        /// PHP.
        Php = "php",
        /// Static HTML.
        Html = "html",
    }
}

string_enum! {
    /// A web server program (template keys `WEBSERVER_CHOICE`, `REVERSE_PROXY_WEBSERVER`).
    pub enum WebServer ("web server") {
        /// Apache httpd.
        Apache = "apache",
        /// nginx.
        Nginx = "nginx",
        /// lighttpd (not usable as a reverse proxy).
        Lighttpd = "lighttpd",
    }
}

string_enum! {
    /// The operating system family of every machine (template key `BUILDOS`).
    pub enum OsFamily ("operating system") {
        /// Debian.
        Debian = "debian",
        /// Ubuntu.
        Ubuntu = "ubuntu",
    }
}

string_enum! {
    /// What the application is built from (template key `BUILD_ARCHIVE_CHOICE`).
    pub enum ArchiveChoice ("archive choice") {
        /// A fresh install of the application.
        Virgin = "virgin",
        /// A baseline snapshot of the application.
        Baseline = "baseline",
        /// The hourly backup.
        Hourly = "hourly",
        /// The daily backup.
        Daily = "daily",
        /// The weekly backup.
        Weekly = "weekly",
        /// The monthly backup.
        Monthly = "monthly",
        /// The bimonthly backup.
        Bimonthly = "bimonthly",
    }
}

impl ArchiveChoice {
    /// Whether this is a periodic backup (anything but virgin and baseline); multi-region deployments
    /// need one.
    pub const fn is_backup(self) -> bool {
        !matches!(self, Self::Virgin | Self::Baseline)
    }
}

string_enum! {
    /// Where the application database lives (template key `DATABASE_INSTALLATION_TYPE`).
    pub enum DatabaseKind ("database installation type") {
        /// MariaDB on the region's database machine.
        Maria = "maria",
        /// MySQL on the region's database machine.
        Mysql = "mysql",
        /// PostgreSQL on the region's database machine.
        Postgres = "postgres",
        /// A managed database (see [`Dbaas`]); required for multi-region deployments.
        Dbaas = "dbaas",
    }
}

string_enum! {
    /// A machine role within a region.
    pub enum Role ("machine role") {
        /// Autoscaler: keeps the webserver fleet at the desired size.
        Autoscaler = "autoscaler",
        /// Webserver running the application.
        Webserver = "webserver",
        /// Database machine (hosts the database, or manages a DBaaS and its backups).
        Database = "database",
        /// Authenticator.
        Authenticator = "authenticator",
        /// Reverse proxy in front of the webservers; its public IPs are in DNS.
        ReverseProxy = "reverse-proxy",
    }
}

impl Role {
    /// The original toolkit's short name, used in machine names (`as`, `ws`, `db`, `auth`, `rp`).
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::Autoscaler => "as",
            Self::Webserver => "ws",
            Self::Database => "db",
            Self::Authenticator => "auth",
            Self::ReverseProxy => "rp",
        }
    }
}

string_enum! {
    /// Which firewalls protect the machines (template key `ACTIVE_FIREWALLS`, 0-3).
    pub enum FirewallMode ("firewall mode") {
        /// No firewall (0).
        None = "none",
        /// On-machine firewall only, ufw/iptables (1).
        OnMachine = "on-machine",
        /// Provider-native firewall only (2).
        Native = "native",
        /// Both (3).
        Both = "both",
    }
}

impl FirewallMode {
    /// From the template's `ACTIVE_FIREWALLS` number.
    pub const fn from_adt(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::OnMachine),
            2 => Some(Self::Native),
            3 => Some(Self::Both),
            _ => None,
        }
    }

    /// The template's `ACTIVE_FIREWALLS` number.
    pub const fn adt_code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::OnMachine => 1,
            Self::Native => 2,
            Self::Both => 3,
        }
    }

    /// Whether the provider's own firewall is managed.
    pub const fn native(self) -> bool {
        matches!(self, Self::Native | Self::Both)
    }

    /// Whether a firewall runs on every machine.
    pub const fn on_machine(self) -> bool {
        matches!(self, Self::OnMachine | Self::Both)
    }
}

string_enum! {
    /// What the region's database machine does (template keys `DB_INSTALL_MODE`, older `BYPASS_DB_LAYER`).
    pub enum DbInstallMode ("database install mode") {
        /// No database machine in this region (`DB_INSTALL_MODE=0`, `BYPASS_DB_LAYER=2`).
        None = "none",
        /// A database machine that installs the application database from scratch (`DB_INSTALL_MODE=1`,
        /// `BYPASS_DB_LAYER=0`).
        Install = "install",
        /// A database machine that reuses an application database that already exists in the DBaaS and
        /// makes backups of it (`DB_INSTALL_MODE=2`, `BYPASS_DB_LAYER=1`).
        Reuse = "reuse",
    }
}

impl DbInstallMode {
    /// From the newer `DB_INSTALL_MODE` number.
    pub const fn from_db_install_mode(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Install),
            2 => Some(Self::Reuse),
            _ => None,
        }
    }

    /// From the older `BYPASS_DB_LAYER` number.
    pub const fn from_bypass_db_layer(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Install),
            1 => Some(Self::Reuse),
            2 => Some(Self::None),
            _ => None,
        }
    }

    /// Number of database machines this mode implies (0 or 1).
    pub const fn machine_count(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Install | Self::Reuse => 1,
        }
    }
}

string_enum! {
    /// Whether the primary region creates its managed database or takes over an existing one.
    pub enum DbaasMode ("DBaaS mode") {
        /// Create the cluster (or use it if one with the same label already exists).
        Create = "create",
        /// The cluster and its application database already exist; use them as they are.
        Adopt = "adopt",
    }
}

string_enum! {
    /// The SMTP service for system emails (template key `SYSTEM_EMAIL_PROVIDER`, 1-3).
    pub enum EmailProvider ("email provider") {
        /// Sendpulse (1).
        Sendpulse = "sendpulse",
        /// Mailjet (2).
        Mailjet = "mailjet",
        /// Amazon SES (3).
        Ses = "ses",
    }
}

impl EmailProvider {
    /// From the template's `SYSTEM_EMAIL_PROVIDER` number.
    pub const fn from_adt(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Sendpulse),
            2 => Some(Self::Mailjet),
            3 => Some(Self::Ses),
            _ => None,
        }
    }
}

string_enum! {
    /// A git hosting service (template key `APPLICATION_REPOSITORY_PROVIDER`).
    pub enum RepositoryProvider ("repository provider") {
        /// GitHub.
        Github = "github",
        /// GitLab.
        Gitlab = "gitlab",
        /// Bitbucket.
        Bitbucket = "bitbucket",
    }
}

/// One web application deployed to one or more regions: the unit Flotilla manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Deployment {
    /// The deployment id used in NATS subject tokens and bucket names: `website_url` lowercased with
    /// dots replaced by `-` (see [`deployment_name_for`]). Must match `[a-z0-9_-]+`.
    pub name: String,
    /// Host name of the site, e.g. `www.codetesters.uk` (template key `WEBSITE_URL`).
    pub website_url: String,
    /// Whether the deployment spans (or may span) several regions (template key `MULTI_REGION`). A
    /// deployment with more than one region must set it; one region with it set is the first region of a
    /// multi-region deployment and already obeys the multi-region rules.
    pub multi_region: bool,
    /// DNS settings.
    pub dns: DnsSettings,
    /// What is deployed.
    pub application: ApplicationSettings,
    /// System emails, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// The regions, primary first by convention (not required).
    pub regions: Vec<Region>,
}

/// Where and how the site's DNS records are managed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DnsSettings {
    /// The DNS service (template key `DNS_CHOICE`).
    pub provider: DnsProvider,
    /// The zone that holds the site's records, e.g. `codetesters.uk`. Imported as
    /// [`zone_for`]`(website_url)`; edit it in the TOML when that rule guesses wrong.
    pub zone: String,
}

/// What application is deployed and how it is built; the same in every region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationSettings {
    /// The CMS (template key `APPLICATION`).
    pub kind: Application,
    /// Free-text application name (template key `APPLICATION_NAME`).
    #[serde(default)]
    pub name: String,
    /// Display name of the site (template key `WEBSITE_DISPLAY_NAME`).
    #[serde(default)]
    pub display_name: String,
    /// Language (template key `APPLICATION_LANGUAGE`).
    pub language: Language,
    /// PHP version, e.g. `8.4` (template key `PHP_VERSION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub php_version: Option<String>,
    /// Web server on the webservers (template key `WEBSERVER_CHOICE`).
    pub webserver: WebServer,
    /// Web server on the reverse proxies (template key `REVERSE_PROXY_WEBSERVER`).
    pub reverse_proxy_webserver: WebServer,
    /// What the application is built from (template key `BUILD_ARCHIVE_CHOICE`).
    pub archive: ArchiveChoice,
    /// Where the database lives (template key `DATABASE_INSTALLATION_TYPE`).
    pub database: DatabaseKind,
    /// Whether ModSecurity is enabled on the web servers (template key `MOD_SECURITY`).
    #[serde(default)]
    pub mod_security: bool,
    /// Operating system of every machine.
    pub build_os: BuildOs,
    /// Where the application's code is kept (credentials are in the secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<ApplicationRepository>,
}

/// Operating system of the machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BuildOs {
    /// Debian or Ubuntu (template key `BUILDOS`).
    pub family: OsFamily,
    /// Release, e.g. `12` or `24.04` (template key `BUILDOS_VERSION`).
    pub version: String,
}

/// The git repository of the application (template keys `APPLICATION_REPOSITORY_*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationRepository {
    /// Hosting service.
    pub provider: RepositoryProvider,
    /// Account that owns the repositories.
    pub owner: String,
    /// Account used to access them.
    pub username: String,
}

/// System email settings (template keys `SYSTEM_EMAIL_*`, `EMAIL_NOTIFICATION_LEVEL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmailSettings {
    /// SMTP service.
    pub provider: EmailProvider,
    /// Recipient of system emails.
    pub to_address: String,
    /// Sender of system emails.
    pub from_address: String,
    /// `ERROR`, `INFO` or `MANDATORY`.
    pub notification_level: String,
}

/// One region of a deployment: a fleet of machines in one provider region, with its own VPC, DNS
/// records and autoscaling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Region {
    /// Subject-safe key of the region within the deployment (`[a-z0-9_-]+`); imported as the provider
    /// region id, e.g. `gb-lon`.
    pub name: String,
    /// Cloud provider (template key `CLOUDHOST`).
    pub provider: CloudProvider,
    /// The provider's region id, e.g. `gb-lon`, `ch-gva-2`, `ams3` (template key `REGION`).
    pub provider_region: String,
    /// Identifier of this region's build, used in machine and firewall names (template key
    /// `BUILD_IDENTIFIER`).
    pub build_identifier: String,
    /// Whether this is the primary region: the one with the DBaaS and the authenticator in DNS
    /// (template key `PRIMARY_REGION`; always true for a single-region template).
    pub primary: bool,
    /// Provider account name; not a secret (template key `CLOUDHOST_ACCOUNT_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Whether the control plane reaches the machines over the VPC (template key `BUILD_MACHINE_VPC`).
    pub build_machine_vpc: bool,
    /// What the database machine does (template keys `DB_INSTALL_MODE` / `BYPASS_DB_LAYER`).
    pub database_install: DbInstallMode,
    /// Which firewalls are active (template key `ACTIVE_FIREWALLS`).
    pub firewall: FirewallMode,
    /// Whether machines are built in parallel (template keys `IN_PARALLEL` / `INPARALLEL`).
    pub in_parallel: bool,
    /// SSH port of every machine (template key `SSH_PORT`).
    pub ssh_port: u16,
    /// Database port (template key `DB_PORT`).
    pub db_port: u16,
    /// Login user on the machines (template key `USER`).
    pub ssh_user: String,
    /// Whether webroots are synchronised between webservers and regions (template key `SYNC_WEBROOTS`).
    pub sync_webroots: bool,
    /// Whether asset directories are mounted from the datastore (template key
    /// `PERSIST_ASSETS_TO_DATASTORE`).
    pub persist_assets: bool,
    /// Asset directories to mount; relative paths are below the webroot (template key
    /// `DIRECTORIES_TO_MOUNT`, a colon-separated list).
    #[serde(default)]
    pub directories_to_mount: Vec<String>,
    /// The region's private network.
    pub vpc: Vpc,
    /// Webserver scaling bounds.
    pub scaling: Scaling,
    /// Machine counts and sizes per role.
    pub machines: Machines,
    /// The managed database: created/adopted by the primary, reached over its public endpoint by
    /// secondaries. `None` when the database is on a database machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbaas: Option<Dbaas>,
    /// S3-compatible datastore endpoints; endpoint 1 (index 0) is the region's own, the one reads use.
    /// Writes fan out to all of them.
    pub datastores: Vec<DatastoreEndpoint>,
    /// Inbound ports opened on a role's firewalls beyond the original toolkit's rules (no template key:
    /// written in the TOML).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<ExtraPort>,
}

/// An inbound port (or range) opened on the firewalls of one role, e.g.
/// `{ role = "webserver", port = 8080, sources = ["203.0.113.0/24"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraPort {
    /// The role whose firewalls open it.
    pub role: Role,
    /// `tcp` (the default) or `udp`.
    #[serde(default = "ExtraPort::tcp")]
    pub protocol: String,
    /// The port, or the first of the range.
    pub port: u16,
    /// The last port of the range (inclusive); the one port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<u16>,
    /// Who may connect; anywhere (`0.0.0.0/0`) when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub sources: Vec<Ipv4Net>,
}

impl ExtraPort {
    fn tcp() -> String {
        "tcp".to_owned()
    }
}

/// A region's private network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Vpc {
    /// Name of the VPC, created if missing (template key `VPC_NAME`).
    pub name: String,
    /// Its private IPv4 range (template key `VPC_IP_RANGE`).
    #[schemars(with = "String")]
    pub cidr: Ipv4Net,
}

/// One S3-compatible datastore endpoint (position N of the `|`-separated `S3_*` lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatastoreEndpoint {
    /// Who runs it; recognised from `host_base`.
    pub provider: DatastoreProvider,
    /// Endpoint host, e.g. `nl-ams-1.linodeobjects.com` (template key `S3_HOST_BASE`).
    pub host_base: String,
    /// Location/region string passed to the S3 client (template key `S3_LOCATION`).
    pub location: String,
}

/// Webserver scaling bounds of a region: `1 <= min <= initial <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Scaling {
    /// Webservers built with the region (template key `NO_WEBSERVERS`, 1-5).
    pub initial: u32,
    /// Fewest webservers the autoscaler keeps; imported as `initial` (the toolkit never scaled its
    /// initial webservers in).
    pub min: u32,
    /// Most webservers the autoscaler may run (template key `MAX_WEBSERVERS`; defaults to `initial`).
    pub max: u32,
}

/// Count and size of the machines of one role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MachineSpec {
    /// How many machines of this role the region runs (for webservers: the initial number).
    pub count: u32,
    /// Provider plan/size id, e.g. `g6-nanode-1` or `tiny` (template keys `*_SERVER_TYPE`).
    #[serde(default)]
    pub size: String,
}

/// Machines per role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Machines {
    /// Autoscalers (template keys `NO_AUTOSCALERS`, `AS_SERVER_TYPE`; 0-5).
    pub autoscaler: MachineSpec,
    /// Webservers (template keys `NO_WEBSERVERS`, `WS_SERVER_TYPE`; equals `scaling.initial`).
    pub webserver: MachineSpec,
    /// Database machine (template keys `DB_INSTALL_MODE`, `DB_SERVER_TYPE`; 0 or 1).
    pub database: MachineSpec,
    /// Authenticators (template keys `NO_AUTHENTICATORS`/`AUTHENTICATION_SERVER`, `AUTH_SERVER_TYPE`; 0-5).
    pub authenticator: MachineSpec,
    /// Reverse proxies (template keys `NO_REVERSE_PROXY`, `RP_SERVER_TYPE`; 0-5, at least 1 when
    /// multi-region).
    pub reverse_proxy: MachineSpec,
}

impl Machines {
    /// The spec of one role.
    pub fn get(&self, role: Role) -> &MachineSpec {
        match role {
            Role::Autoscaler => &self.autoscaler,
            Role::Webserver => &self.webserver,
            Role::Database => &self.database,
            Role::Authenticator => &self.authenticator,
            Role::ReverseProxy => &self.reverse_proxy,
        }
    }

    /// The spec of one role, mutably.
    pub fn get_mut(&mut self, role: Role) -> &mut MachineSpec {
        match role {
            Role::Autoscaler => &mut self.autoscaler,
            Role::Webserver => &mut self.webserver,
            Role::Database => &mut self.database,
            Role::Authenticator => &mut self.authenticator,
            Role::ReverseProxy => &mut self.reverse_proxy,
        }
    }

    /// Every role with its spec, in build order (autoscalers, webservers, database, authenticators,
    /// reverse proxies).
    pub fn iter(&self) -> impl Iterator<Item = (Role, &MachineSpec)> {
        Role::ALL.iter().map(move |&role| (role, self.get(role)))
    }
}

/// The managed database (DBaaS) as seen from one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Dbaas {
    /// The primary region's cluster, hosted by the primary region's provider (template key
    /// `DATABASE_DBaaS_INSTALLATION_TYPE`). The password is in the secrets.
    Primary {
        /// Create the cluster, or adopt an existing one.
        mode: DbaasMode,
        /// Database flavour as the toolkit names it: `MySQL` or `Postgres`.
        engine: String,
        /// The provider's engine id, `<engine>[/<version>]`, e.g. `mysql/8` (Linode's form; the engine and
        /// version fields of other providers are joined the same way; Exoscale has no version).
        version: String,
        /// Provider region of the cluster, e.g. `gb-lon`.
        provider_region: String,
        /// Provider plan of the cluster nodes, e.g. `g6-nanode-1`.
        size: String,
        /// Number of cluster nodes (1 where the provider's plan implies it).
        nodes: u32,
        /// Cluster label/name by which it is found again (Exoscale: the database name).
        label: String,
        /// Application database name.
        database: String,
        /// Application database user.
        user: String,
        /// Provider VPC id the cluster joins, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vpc_id: Option<String>,
        /// Provider subnet id the cluster joins, when given (Linode).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_id: Option<String>,
    },
    /// A secondary region reaching the primary's cluster across the Internet.
    Secondary {
        /// Public host name of the primary's cluster (template key `DBaaS_PUBLIC_ENDPOINT`).
        public_endpoint: String,
    },
}

impl Region {
    /// The name of `role`'s provider firewall in this region: the original toolkit's
    /// `adt-<role>-<BUILD_IDENTIFIER>`, so a deployment moved from the scripts keeps its firewalls. The
    /// firewall service creates them; a region's destroy removes them.
    pub fn firewall_name(&self, role: Role) -> String {
        format!("adt-{}-{}", role.as_str(), self.build_identifier)
    }
}

impl Deployment {
    /// Parses a deployment from its TOML form and checks it (see [`Deployment::check`]); warnings are
    /// logged, errors returned as [`SpecError::Invalid`].
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let deployment: Self = toml::from_str(text)?;
        for warning in deployment.check()? {
            tracing::warn!(deployment = %deployment.name, "{warning}");
        }
        Ok(deployment)
    }

    /// The name of one of the deployment's shared buckets, as the original toolkit names them:
    /// `<site>-<suffix>`, the site being the website's host name with dashes for dots
    /// (`www.example.com` → `www-example-com-multi-region`).
    pub fn bucket(&self, suffix: &str) -> String {
        let site = self
            .website_url
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .replace('.', "-");
        format!("{site}-{suffix}")
    }

    /// The TOML form.
    pub fn to_toml(&self) -> Result<String, SpecError> {
        Ok(toml::to_string(self)?)
    }

    /// Every problem of this deployment, errors and warnings, located by spec path in the file
    /// `<name>.toml`. The same rules apply to imported templates.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let file = format!("{}.toml", self.name);
        crate::validate::check(self)
            .into_iter()
            .map(|finding| {
                let region = finding
                    .region
                    .and_then(|i| self.regions.get(i))
                    .map(|r| r.name.as_str());
                Diagnostic::new(finding.severity, file.clone(), finding.message)
                    .with_key(finding.field.spec_path(region))
            })
            .collect()
    }

    /// [`validate`](Self::validate), as a result: the warnings when there is no error, otherwise every
    /// diagnostic.
    pub fn check(&self) -> Result<Vec<Diagnostic>, Diagnostics> {
        let all = self.validate();
        if all.iter().any(Diagnostic::is_error) {
            Err(Diagnostics::new(all))
        } else {
            Ok(all)
        }
    }

    /// The primary region, if exactly one region is primary.
    pub fn primary_region(&self) -> Option<&Region> {
        let mut primaries = self.regions.iter().filter(|r| r.primary);
        match (primaries.next(), primaries.next()) {
            (Some(primary), None) => Some(primary),
            _ => None,
        }
    }

    /// The region with the given name.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The managed database cluster of the primary region, if any.
    pub fn dbaas_cluster(&self) -> Option<&Dbaas> {
        self.primary_region()
            .and_then(|r| r.dbaas.as_ref())
            .filter(|d| matches!(d, Dbaas::Primary { .. }))
    }
}

/// The deployment id for a site: the host lowercased, with dots replaced by `-`
/// (`www.codetesters.uk` → `www-codetesters-uk`), as the original toolkit names its buckets.
pub fn deployment_name_for(website_url: &str) -> String {
    host_of(website_url).replace('.', "-")
}

/// The DNS zone for a site, by a simple rule: the host lowercased, without its first label when it has
/// three or more labels (`www.codetesters.uk` → `codetesters.uk`, `codetesters.uk` → `codetesters.uk`).
/// The rule knows nothing of public suffixes (`www.example.co.uk` works, `a.b.example.com` gives
/// `b.example.com`); set `dns.zone` in the TOML when it guesses wrong.
pub fn zone_for(website_url: &str) -> String {
    let host = host_of(website_url);
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() >= 3 {
        labels[1..].join(".")
    } else {
        host
    }
}

/// Whether `s` can be one NATS subject token of ours: non-empty, only `a-z`, `0-9`, `-`, `_`.
pub fn is_subject_safe(s: &str) -> bool {
    // The same rule as the bus's subject tokens (`flotilla_bus::subject::check_token`).
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn host_of(website_url: &str) -> String {
    website_url.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_zones() {
        assert_eq!(deployment_name_for("www.codetesters.uk"), "www-codetesters-uk");
        assert_eq!(deployment_name_for("WWW.Example.COM."), "www-example-com");
        assert_eq!(zone_for("www.codetesters.uk"), "codetesters.uk");
        assert_eq!(zone_for("codetesters.uk"), "codetesters.uk");
        assert_eq!(zone_for("www.example.co.uk"), "example.co.uk");
        assert!(is_subject_safe("gb-lon"));
        assert!(is_subject_safe("ch_gva_2"));
        assert!(!is_subject_safe("gb.lon"));
        assert!(!is_subject_safe("GB-LON"));
        assert!(!is_subject_safe(""));
    }

    #[test]
    fn string_enums_parse_case_insensitively() {
        assert_eq!("APACHE".parse::<WebServer>(), Ok(WebServer::Apache));
        assert_eq!("DBaaS".parse::<DatabaseKind>(), Ok(DatabaseKind::Dbaas));
        let err = "aws".parse::<CloudProvider>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown cloud provider \"aws\" (expected one of: linode, digitalocean, vultr, exoscale)"
        );
        assert_eq!(FirewallMode::from_adt(3), Some(FirewallMode::Both));
        assert_eq!(DbInstallMode::from_bypass_db_layer(1), Some(DbInstallMode::Reuse));
        assert_eq!(
            DatastoreProvider::from_host_base("sos-ch-gva-2.exo.io"),
            DatastoreProvider::Exoscale
        );
        assert_eq!(
            DatastoreProvider::from_host_base("s3.amazonaws.com"),
            DatastoreProvider::Generic
        );
    }
}
