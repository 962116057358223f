//! The Flotilla deployment model, its TOML format, and the importer for the Agile Deployment Toolkit's
//! templates.
//!
//! # The model
//!
//! A [`Deployment`] is one web application, named by its site (`website_url`), deployed to one or more
//! [`Region`]s. Its `name` (`www.codetesters.uk` → `www-codetesters-uk`) is the token that identifies it
//! in NATS subjects and bucket names. Deployment-wide settings are the DNS zone and provider
//! ([`DnsSettings`]), the application and how it is built ([`ApplicationSettings`]) and whether the
//! deployment is multi-region. Each region names its provider and provider region, its VPC, its datastore
//! endpoints (endpoint 1 is its own), its machines per [`Role`] (count and size), firewall mode, webserver
//! [`Scaling`] bounds, ports, sync and asset settings, and — with a managed database — its view of the
//! DBaaS: the primary region holds the cluster ([`Dbaas::Primary`]), the others its public endpoint
//! ([`Dbaas::Secondary`]). Every type is `serde` + [`schemars::JsonSchema`]; the native format is TOML
//! ([`Deployment::from_toml`], [`Deployment::to_toml`]).
//!
//! The model holds no credentials. They live in [`Secrets`], one deployment's per region name, and in a
//! [`SecretsFile`] keyed by deployment and region, written with mode 0600; every secret value is a
//! [`Secret`] whose `Debug` output is redacted and which cannot be serialized, so no credential reaches
//! the bus or a log line by accident.
//!
//! # Validation
//!
//! [`Deployment::validate`] checks every rule at once — names usable as subject tokens, provider region
//! ids, private VPC ranges, machine counts within the toolkit's ranges, `1 <= min <= initial <= max`
//! webservers, exactly one primary region, unique region names, and the multi-region rules (a reverse
//! proxy in every region, a DBaaS database, building from a periodic backup, a public DBaaS endpoint for
//! every secondary) — and returns every problem as a [`Diagnostic`]. [`Deployment::check`] turns that
//! into a `Result` whose error, [`Diagnostics`], prints one problem per line.
//!
//! # Importing toolkit templates
//!
//! [`import_templates`] turns a set of toolkit templates (shell files of `export KEY="value"` lines, one
//! per region, even when pasted out of markdown with `\#` comments and `<span>` wrappers; see
//! [`Template`]) into one [`Import`]: the deployment, its secrets, and the warnings met. The same rules
//! apply as for TOML specs, but problems are reported at the template file, line and key they came
//! from, e.g.
//!
//! ```text
//! gb-lon.tmpl:87: NO_REVERSE_PROXY: multi-region deployments need at least one reverse proxy per region (found "0")
//! ```
//!
//! [`check_files`] does the same from file paths (for `flotilla template check`), and
//! [`Import::write_to_dir`] writes `<deployment>.toml` and `<deployment>.secrets.toml`, a [`SecretsFile`]
//! holding that one deployment (for `flotilla template import --out DIR`).
//!
//! ## Template mapping
//!
//! - `CLOUDHOST` → [`Region::provider`]; `REGION` → [`Region::provider_region`] and the region's name;
//!   `BUILD_IDENTIFIER`, `CLOUDHOST_ACCOUNT_ID`, `VPC_NAME` (default `adt-vpc`), `VPC_IP_RANGE`,
//!   `BUILD_MACHINE_VPC` → the fields of the same meaning.
//! - `WEBSITE_URL` → `website_url`, the deployment `name` ([`deployment_name_for`]) and the DNS zone
//!   ([`zone_for`]: the host without its first label when it has three or more; edit `dns.zone` in the
//!   TOML when that is wrong). `DNS_CHOICE` → the DNS provider.
//! - `NO_WEBSERVERS` (default 1) → the webserver count and `scaling.initial`; `scaling.min` is set to the
//!   same number (the toolkit never scaled its initial webservers in); `MAX_WEBSERVERS` → `scaling.max`
//!   (default: the initial number). `NO_AUTOSCALERS` (default 1), `NO_REVERSE_PROXY` (default 0),
//!   `NO_AUTHENTICATORS` or older `AUTHENTICATION_SERVER` (default 0) → counts; `WS_`, `AS_`, `DB_`,
//!   `AUTH_`, `RP_SERVER_TYPE` → sizes.
//! - `DB_INSTALL_MODE` (0 no database machine, 1 install the application database, 2 reuse the one
//!   already in the DBaaS) or the older `BYPASS_DB_LAYER` (0 install, 1 reuse, 2 no machine), default
//!   install → [`Region::database_install`]; the database machine count is 0 for "no machine", else 1.
//!   So the seed's secondaries (`BYPASS_DB_LAYER=1`) each run a database machine that backs the DBaaS up
//!   without installing anything.
//! - With `DATABASE_INSTALLATION_TYPE=DBaaS`, the primary's `DATABASE_DBaaS_INSTALLATION_TYPE` tuple
//!   (layout per provider, e.g. Linode's `engine:DBAAS:version:region:size:nodes:label:db:user:password`)
//!   → [`Dbaas::Primary`] (mode `adopt` when the database install mode is "reuse", else `create`), its
//!   password → the secrets; each secondary's `DBaaS_PUBLIC_ENDPOINT` → [`Dbaas::Secondary`].
//! - `ACTIVE_FIREWALLS` 0-3 (default 3) → [`FirewallMode`]; `IN_PARALLEL` or older `INPARALLEL`,
//!   `SSH_PORT` (default 1035), `DB_PORT` (default 2035), `USER` (default root), `SYNC_WEBROOTS`,
//!   `PERSIST_ASSETS_TO_DATASTORE`, `DIRECTORIES_TO_MOUNT` (colon list) → region fields.
//! - `S3_HOST_BASE`, `S3_LOCATION` (default `US`), `S3_ACCESS_KEY`, `S3_SECRET_KEY` are `|`-separated
//!   lists: entry N of each forms datastore endpoint N (keys → secrets); lists of unequal length are an
//!   error. The endpoint's provider is recognised from its host (`DATASTORE_CHOICE` only fills in for an
//!   unrecognised first host).
//! - `MULTI_REGION`, `PRIMARY_REGION`: a template with `MULTI_REGION=0` is the primary of a
//!   single-region deployment whatever `PRIMARY_REGION` says.
//! - `TOKEN`, `ACCESS_KEY`, `SECRET_KEY`, `DNS_USERNAME`, `DNS_SECURITY_KEY`, `AUTH_DNS_*`, repository
//!   passwords and tokens (`none` means absent), `SYSTEM_EMAIL_USERNAME`/`PASSWORD` → [`Secrets`].
//!
//! Required keys: `CLOUDHOST`, `REGION`, `WEBSITE_URL`, `BUILD_IDENTIFIER`, `DNS_CHOICE`,
//! `DNS_SECURITY_KEY`, `VPC_IP_RANGE`, `BUILD_ARCHIVE_CHOICE`, `DATABASE_INSTALLATION_TYPE`, the three
//! `S3_HOST_BASE`/`S3_ACCESS_KEY`/`S3_SECRET_KEY` lists, and the provider's credentials (`TOKEN` for
//! Linode, DigitalOcean and Vultr; `ACCESS_KEY` and `SECRET_KEY` for Exoscale). Other keys default to
//! the toolkit's template values as listed above.

mod diag;
mod error;
mod import;
mod model;
mod secrets;
mod template;
mod validate;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use error::SpecError;
pub use import::{Import, TemplateSource, check_files, import_templates};
pub use model::{
    Application, ApplicationRepository, ApplicationSettings, ArchiveChoice, BuildOs, CloudProvider,
    DatabaseKind, DatastoreEndpoint, DatastoreProvider, DbInstallMode, Dbaas, DbaasMode, Deployment,
    DnsProvider, DnsSettings, EmailProvider, EmailSettings, ExtraPort, FirewallMode, Language, MachineSpec,
    Machines, OsFamily, Region, RepositoryProvider, Role, Scaling, UnknownVariant, Vpc, WebServer,
    deployment_name_for, is_subject_safe, zone_for,
};
pub use secrets::{
    CloudCredentials, CloudflareAuth, DatastoreCredentials, DnsCredentials, EmailCredentials, RegionSecrets,
    RepositoryCredentials, Secret, Secrets, SecretsFile,
};
pub use template::{Assignment, Template};
