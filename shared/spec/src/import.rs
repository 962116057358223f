//! Importer: several toolkit templates (one per region) → one [`Deployment`] plus its [`Secrets`].
//!
//! Import runs in three passes and reports every problem it finds, never just the first:
//!
//! 1. each template is parsed ([`Template::parse`]) and read key by key: required keys, allowed values,
//!    numbers, flags, the VPC CIDR, provider credentials, the `|`-separated datastore lists and the
//!    DBaaS tuple; a bad value is reported at its line and replaced by a neutral default so the later
//!    passes can still run;
//! 2. the templates are compared: deployment-wide keys (`WEBSITE_URL`, `DNS_CHOICE`, `MULTI_REGION`, the
//!    database and archive choice, the application) must agree with the primary's template;
//! 3. the assembled deployment goes through the same rules as a TOML spec ([`Deployment::validate`]),
//!    each finding reported at the template key and line its field came from. A field already
//!    reported as an error in pass 1 is not reported again.
//!
//! Unknown keys are warned about once per key and file; keys of the toolkit that Flotilla does not need
//! (SSL, git identity, timezone, ...) are accepted silently.

use std::{
    fs,
    path::{Path, PathBuf},
    str::FromStr,
};

use ipnet::Ipv4Net;

use crate::{
    Diagnostic, Diagnostics, Severity, SpecError,
    model::{
        Application, ApplicationRepository, ApplicationSettings, ArchiveChoice, BuildOs, CloudProvider,
        DatabaseKind, DatastoreEndpoint, DatastoreProvider, DbInstallMode, Dbaas, DbaasMode, Deployment,
        DnsProvider, DnsSettings, EmailProvider, EmailSettings, FirewallMode, Language, MachineSpec,
        Machines, OsFamily, Region, RepositoryProvider, Role, Scaling, UnknownVariant, Vpc, WebServer,
        deployment_name_for, zone_for,
    },
    secrets::{
        CloudCredentials, DatastoreCredentials, DnsCredentials, EmailCredentials, RegionSecrets,
        RepositoryCredentials, Secret, Secrets, SecretsFile,
    },
    template::{Assignment, Template},
    validate::{self, Field},
};

/// One template to import: its text and the name diagnostics use for it (usually its path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    /// File name or path, used as `file` in diagnostics.
    pub name: String,
    /// The template text.
    pub text: String,
}

impl TemplateSource {
    /// A template source.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// A successful import: the spec, its secrets, and the warnings met on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The deployment, with no secrets in it.
    pub deployment: Deployment,
    /// The credentials, by region name.
    pub secrets: Secrets,
    /// Warnings (never errors), in file and line order.
    pub warnings: Vec<Diagnostic>,
}

impl Import {
    /// Writes `dir/<deployment>.toml` (the spec) and `dir/<deployment>.secrets.toml` (the secrets, mode
    /// 0600 on Unix), creating `dir` if needed and replacing existing files; returns both paths.
    ///
    /// The secrets file is a [`SecretsFile`] holding this one deployment, keyed by its name
    /// (`[deployments.<deployment>.regions.<region>…]`), so the files of several deployments can be
    /// concatenated into one for a service that serves them all.
    pub fn write_to_dir(&self, dir: impl AsRef<Path>) -> Result<(PathBuf, PathBuf), SpecError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| SpecError::io(dir, e))?;
        let spec_path = dir.join(format!("{}.toml", self.deployment.name));
        let secrets_path = dir.join(format!("{}.secrets.toml", self.deployment.name));
        fs::write(&spec_path, self.deployment.to_toml()?).map_err(|e| SpecError::io(&spec_path, e))?;
        self.secrets_file().write_to(&secrets_path)?;
        Ok((spec_path, secrets_path))
    }

    /// The secrets as a [`SecretsFile`] holding this one deployment, keyed by its name.
    pub fn secrets_file(&self) -> SecretsFile {
        SecretsFile::for_deployment(self.deployment.name.clone(), self.secrets.clone())
    }
}

/// Reads template files and imports them (see [`import_templates`]); the path as given names each file
/// in diagnostics. Files that cannot be read are reported (all of them) instead of importing anything.
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> Result<Import, Diagnostics> {
    let mut sources = Vec::with_capacity(paths.len());
    let mut unreadable = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        match fs::read_to_string(path) {
            Ok(text) => sources.push(TemplateSource::new(name, text)),
            Err(e) => unreadable.push(Diagnostic::error(name, format!("cannot read the template: {e}"))),
        }
    }
    if !unreadable.is_empty() {
        return Err(Diagnostics::new(unreadable));
    }
    import_templates(&sources)
}

/// Imports templates that together describe one deployment, one template per region.
///
/// All templates must share `WEBSITE_URL`; exactly one must be primary (`PRIMARY_REGION=1`, or the only
/// template of a single-region deployment). Returns every error and warning found when there is any
/// error.
pub fn import_templates(inputs: &[TemplateSource]) -> Result<Import, Diagnostics> {
    if inputs.is_empty() {
        return Err(Diagnostics::new(vec![Diagnostic::error(
            "(no templates)",
            "no templates were given",
        )]));
    }
    let mut report = Report::default();
    let templates: Vec<Template> = inputs
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let (template, diagnostics) = Template::parse(&source.name, &source.text);
            for d in diagnostics {
                report.push(i, d);
            }
            template
        })
        .collect();
    let mut drafts: Vec<Draft> = templates
        .iter()
        .enumerate()
        .map(|(i, template)| {
            read_template(&mut Reader {
                file: i,
                template,
                report: &mut report,
            })
        })
        .collect();

    // The primary's template speaks for the deployment (the first one if several claim to be primary).
    let source = drafts.iter().position(|d| d.region.primary).unwrap_or(0);
    check_agreement(&templates, &drafts, source, &mut report);
    let application = drafts[source].application.clone();
    if application.database == DatabaseKind::Dbaas {
        attach_dbaas(&templates, &mut drafts, source, &mut report);
    }

    let website_url = drafts[source].website_url.clone();
    let deployment = Deployment {
        name: deployment_name_for(&website_url),
        dns: DnsSettings {
            provider: drafts[source].dns_provider,
            zone: zone_for(&website_url),
        },
        website_url,
        multi_region: drafts[source].multi_region,
        application,
        email: drafts[source].email.clone(),
        regions: drafts.iter().map(|d| d.region.clone()).collect(),
    };
    let secrets = Secrets {
        regions: drafts.into_iter().map(|d| (d.region.name, d.secrets)).collect(),
    };

    for finding in validate::check(&deployment) {
        let file = finding.region.unwrap_or(source);
        let template = &templates[file];
        let (key, line) = locate(template, finding.field);
        let mut diagnostic =
            Diagnostic::new(finding.severity, template.name(), finding.message).at_line(line);
        if let Some(key) = key {
            diagnostic = diagnostic.with_key(key);
        }
        report.push(file, diagnostic);
    }

    let all = report.finish();
    if all.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics::new(all));
    }
    tracing::debug!(
        deployment = %deployment.name,
        regions = deployment.regions.len(),
        warnings = all.len(),
        "imported templates"
    );
    Ok(Import {
        deployment,
        secrets,
        warnings: all,
    })
}

/// Diagnostics tagged with the index of their file, for ordering.
#[derive(Default)]
struct Report {
    items: Vec<(usize, Diagnostic)>,
    /// Keys of files whose errors would only follow from an error already reported elsewhere.
    suppressed: Vec<(usize, &'static str)>,
}

impl Report {
    /// Adds a diagnostic unless it repeats one already there, or is an error about a key of a file that
    /// already has an error: one error per key is enough, and a bad value replaced by a default must not
    /// be reported again by the rules that look at the default.
    fn push(&mut self, file: usize, diagnostic: Diagnostic) {
        let suppressed = diagnostic.is_error()
            && self
                .suppressed
                .iter()
                .any(|(f, key)| *f == file && diagnostic.key.as_deref() == Some(*key));
        let duplicate = suppressed
            || self.items.iter().any(|(f, d)| {
                *f == file
                    && (d == &diagnostic
                        || (diagnostic.is_error()
                            && d.is_error()
                            && d.key.is_some()
                            && d.key == diagnostic.key))
            });
        if !duplicate {
            self.items.push((file, diagnostic));
        }
    }

    /// Drops later errors about `key` of `file`.
    fn suppress(&mut self, file: usize, key: &'static str) {
        self.suppressed.push((file, key));
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|(file, d)| (*file, d.line.unwrap_or(0)));
        self.items.into_iter().map(|(_, d)| d).collect()
    }
}

/// The template key (and its line) a model field came from.
fn locate(template: &Template, field: Field) -> (Option<&'static str>, Option<usize>) {
    let candidates = template_keys(field);
    let present = candidates
        .iter()
        .find_map(|&key| template.get(key).map(|a| (key, a.line)));
    match present {
        Some((key, line)) => (Some(key), Some(line)),
        None => (candidates.first().copied(), None),
    }
}

fn template_keys(field: Field) -> &'static [&'static str] {
    match field {
        Field::DeploymentName | Field::WebsiteUrl | Field::DnsZone => &["WEBSITE_URL"],
        Field::DnsProvider => &["DNS_CHOICE"],
        Field::MultiRegion => &["MULTI_REGION"],
        Field::Archive => &["BUILD_ARCHIVE_CHOICE"],
        Field::Database => &["DATABASE_INSTALLATION_TYPE"],
        Field::ReverseProxyWebserver => &["REVERSE_PROXY_WEBSERVER"],
        Field::Regions | Field::ExtraPorts => &[],
        Field::RegionName | Field::ProviderRegion => &["REGION"],
        Field::BuildIdentifier => &["BUILD_IDENTIFIER"],
        Field::Primary => &["PRIMARY_REGION"],
        Field::SshUser => &["USER"],
        Field::VpcName => &["VPC_NAME"],
        Field::VpcCidr => &["VPC_IP_RANGE"],
        Field::Datastores => &["S3_HOST_BASE"],
        Field::MachineCount(Role::Webserver) | Field::ScalingInitial | Field::ScalingMin => {
            &["NO_WEBSERVERS"]
        }
        Field::MachineCount(Role::Autoscaler) => &["NO_AUTOSCALERS"],
        Field::MachineCount(Role::ReverseProxy) => &["NO_REVERSE_PROXY"],
        Field::MachineCount(Role::Authenticator) => &["NO_AUTHENTICATORS", "AUTHENTICATION_SERVER"],
        Field::MachineCount(Role::Database) | Field::DbInstall => &["DB_INSTALL_MODE", "BYPASS_DB_LAYER"],
        Field::MachineSize(role) => match role {
            Role::Autoscaler => &["AS_SERVER_TYPE"],
            Role::Webserver => &["WS_SERVER_TYPE"],
            Role::Database => &["DB_SERVER_TYPE"],
            Role::Authenticator => &["AUTH_SERVER_TYPE"],
            Role::ReverseProxy => &["RP_SERVER_TYPE"],
        },
        Field::ScalingMax => &["MAX_WEBSERVERS"],
        Field::SshPort => &["SSH_PORT"],
        Field::DbPort => &["DB_PORT"],
        Field::DirectoriesToMount => &["DIRECTORIES_TO_MOUNT"],
        Field::Dbaas => &["DATABASE_DBaaS_INSTALLATION_TYPE"],
        Field::DbaasPublicEndpoint => &["DBaaS_PUBLIC_ENDPOINT"],
    }
}

/// Keys read by the importer.
#[rustfmt::skip]
const USED_KEYS: &[&str] = &[
    "CLOUDHOST", "REGION", "BUILD_IDENTIFIER", "WEBSITE_URL", "DNS_CHOICE", "DNS_USERNAME",
    "DNS_SECURITY_KEY", "MULTI_REGION", "PRIMARY_REGION", "TOKEN", "ACCESS_KEY", "SECRET_KEY",
    "CLOUDHOST_ACCOUNT_ID", "VPC_IP_RANGE", "VPC_NAME", "BUILD_MACHINE_VPC", "S3_ACCESS_KEY", "S3_SECRET_KEY",
    "S3_HOST_BASE", "S3_LOCATION", "DATASTORE_CHOICE", "NO_WEBSERVERS", "MAX_WEBSERVERS", "NO_AUTOSCALERS",
    "NO_REVERSE_PROXY", "NO_AUTHENTICATORS", "AUTHENTICATION_SERVER", "DB_INSTALL_MODE", "BYPASS_DB_LAYER",
    "WS_SERVER_TYPE", "AS_SERVER_TYPE", "DB_SERVER_TYPE", "AUTH_SERVER_TYPE", "RP_SERVER_TYPE",
    "ACTIVE_FIREWALLS", "IN_PARALLEL", "INPARALLEL", "SSH_PORT", "DB_PORT", "USER", "SYNC_WEBROOTS",
    "PERSIST_ASSETS_TO_DATASTORE", "DIRECTORIES_TO_MOUNT", "MACHINE_TYPE", "APPLICATION", "APPLICATION_NAME",
    "WEBSITE_DISPLAY_NAME", "APPLICATION_LANGUAGE", "PHP_VERSION", "WEBSERVER_CHOICE",
    "REVERSE_PROXY_WEBSERVER", "BUILD_ARCHIVE_CHOICE", "DATABASE_INSTALLATION_TYPE",
    "DATABASE_DBaaS_INSTALLATION_TYPE", "DBaaS_PUBLIC_ENDPOINT", "MOD_SECURITY", "BUILDOS", "BUILDOS_VERSION",
    "APPLICATION_REPOSITORY_PROVIDER", "APPLICATION_REPOSITORY_OWNER", "APPLICATION_REPOSITORY_USERNAME",
    "APPLICATION_REPOSITORY_PASSWORD", "APPLICATION_REPOSITORY_TOKEN", "INFRASTRUCTURE_REPOSITORY_PASSWORD",
    "SYSTEM_EMAIL_PROVIDER", "SYSTEM_TOEMAIL_ADDRESS", "SYSTEM_FROMEMAIL_ADDRESS", "SYSTEM_EMAIL_USERNAME",
    "SYSTEM_EMAIL_PASSWORD", "EMAIL_NOTIFICATION_LEVEL", "AUTH_DNS_USERNAME", "AUTH_DNS_SECURITY_KEY",
];

/// Toolkit keys Flotilla does not need; accepted without a warning.
#[rustfmt::skip]
const IGNORED_KEYS: &[&str] = &[
    "JOOMLA_VERSION", "DRUPAL_VERSION", "APPLICATION_BASELINE_SOURCECODE_REPOSITORY",
    "BASELINE_DB_REPOSITORY", "APPLICATION_IDENTIFIER", "GIT_USER", "GIT_EMAIL_ADDRESS",
    "INFRASTRUCTURE_REPOSITORY_PROVIDER", "INFRASTRUCTURE_REPOSITORY_OWNER",
    "INFRASTRUCTURE_REPOSITORY_USERNAME", "SERVER_TIMEZONE_CONTINENT", "SERVER_TIMEZONE_CITY",
    "USER_EMAIL_DOMAIN", "PRODUCTION", "DEVELOPMENT", "BUILD_FROM_SNAPSHOT", "BUILD_FROM_BACKUP",
    "PUBLIC_KEY_NAME", "SSL_GENERATION_METHOD", "SSL_GENERATION_SERVICE", "SSL_LIVE_CERT", "ALGORITHM",
    "AUTHENTICATOR_TYPE", "AUTH_SERVER_URL", "AUTH_DNS_CHOICE", "WEBSITE_NAME", "DNS_REGION",
    "SELECTED_TEMPLATE", "PREVIOUS_BUILD_CONFIG", "SSH", "DEFAULT_USER",
];

/// Keys whose values are secret, so never quoted in diagnostics.
#[rustfmt::skip]
const SECRET_KEYS: &[&str] = &[
    "TOKEN", "ACCESS_KEY", "SECRET_KEY", "S3_ACCESS_KEY", "S3_SECRET_KEY", "DNS_SECURITY_KEY",
    "AUTH_DNS_SECURITY_KEY", "DATABASE_DBaaS_INSTALLATION_TYPE", "APPLICATION_REPOSITORY_PASSWORD",
    "APPLICATION_REPOSITORY_TOKEN", "INFRASTRUCTURE_REPOSITORY_PASSWORD", "SYSTEM_EMAIL_USERNAME",
    "SYSTEM_EMAIL_PASSWORD",
];

/// Deployment-wide keys that must agree with the primary's template (error) ...
#[rustfmt::skip]
const MUST_AGREE: &[&str] = &[
    "WEBSITE_URL", "DNS_CHOICE", "DATABASE_INSTALLATION_TYPE", "BUILD_ARCHIVE_CHOICE", "APPLICATION",
];

/// ... and those where the primary's value is used when they differ (warning).
#[rustfmt::skip]
const SHOULD_AGREE: &[&str] = &[
    "APPLICATION_NAME", "WEBSITE_DISPLAY_NAME", "APPLICATION_LANGUAGE", "PHP_VERSION", "WEBSERVER_CHOICE",
    "REVERSE_PROXY_WEBSERVER", "MOD_SECURITY", "BUILDOS", "BUILDOS_VERSION",
    "APPLICATION_REPOSITORY_PROVIDER", "APPLICATION_REPOSITORY_OWNER", "APPLICATION_REPOSITORY_USERNAME",
    "SYSTEM_EMAIL_PROVIDER", "SYSTEM_TOEMAIL_ADDRESS", "SYSTEM_FROMEMAIL_ADDRESS", "EMAIL_NOTIFICATION_LEVEL",
];

/// What one template says, before the templates are put together.
struct Draft {
    website_url: String,
    dns_provider: DnsProvider,
    multi_region: bool,
    provider: Option<CloudProvider>,
    application: ApplicationSettings,
    email: Option<EmailSettings>,
    region: Region,
    secrets: RegionSecrets,
}

/// Reads typed values out of one template, reporting problems at their line.
struct Reader<'a> {
    file: usize,
    template: &'a Template,
    report: &'a mut Report,
}

impl<'a> Reader<'a> {
    fn diagnostic(&mut self, severity: Severity, key: &str, line: Option<usize>, message: impl Into<String>) {
        let d = Diagnostic::new(severity, self.template.name(), message)
            .at_line(line)
            .with_key(key);
        self.report.push(self.file, d);
    }

    fn error(&mut self, key: &str, line: Option<usize>, message: impl Into<String>) {
        self.diagnostic(Severity::Error, key, line, message);
    }

    fn warning(&mut self, key: &str, line: Option<usize>, message: impl Into<String>) {
        self.diagnostic(Severity::Warning, key, line, message);
    }

    /// The assignment of `key` when its value is not blank.
    fn get(&self, key: &str) -> Option<&'a Assignment> {
        self.template.get(key).filter(|a| !a.value.trim().is_empty())
    }

    /// The trimmed value of `key`, if not blank.
    fn text(&self, key: &str) -> Option<&'a str> {
        self.get(key).map(|a| a.value.trim())
    }

    fn owned(&self, key: &str) -> Option<String> {
        self.text(key).map(str::to_owned)
    }

    fn secret(&self, key: &str) -> Option<Secret> {
        self.text(key)
            .filter(|v| !v.eq_ignore_ascii_case("none"))
            .map(Secret::new)
    }

    /// Reports `key` as missing or blank, giving `why` it is needed.
    fn report_absent(&mut self, key: &str, why: &str) {
        match self.template.get(key) {
            Some(a) => {
                let line = a.line;
                self.error(key, Some(line), format!("{why} but empty"));
            }
            None => self.error(key, None, format!("{why} but missing")),
        }
    }

    fn required(&mut self, key: &str) -> Option<&'a str> {
        let value = self.text(key);
        if value.is_none() {
            self.report_absent(key, "required");
        }
        value
    }

    /// Shows a value in a message, unless it is secret.
    fn found(key: &str, value: &str) -> String {
        if SECRET_KEYS.contains(&key) {
            String::new()
        } else {
            format!(" (found \"{value}\")")
        }
    }

    fn choice<E: FromStr<Err = UnknownVariant>>(&mut self, key: &str) -> Option<E> {
        let a = self.get(key)?;
        match a.value.trim().parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(
                    key,
                    Some(a.line),
                    format!("unknown value \"{}\" (expected one of: {})", e.value, e.expected),
                );
                None
            }
        }
    }

    fn required_choice<E: FromStr<Err = UnknownVariant>>(&mut self, key: &str) -> Option<E> {
        if self.required(key).is_some() {
            self.choice(key)
        } else {
            None
        }
    }

    fn flag(&mut self, key: &str, default: bool) -> bool {
        let Some(a) = self.get(key) else { return default };
        match a.value.trim() {
            "0" => false,
            "1" => true,
            other => {
                let message = format!("must be 0 or 1{}", Self::found(key, other));
                self.error(key, Some(a.line), message);
                default
            }
        }
    }

    fn number(&mut self, key: &str, default: u32) -> u32 {
        let Some(a) = self.get(key) else { return default };
        match a.value.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let message = format!("must be a whole number{}", Self::found(key, a.value.trim()));
                self.error(key, Some(a.line), message);
                default
            }
        }
    }

    /// A number from 0 to `max`, or `None` (reported) when out of range.
    fn code(&mut self, key: &str, max: u8) -> Option<u8> {
        let a = self.get(key)?;
        match a.value.trim().parse::<u8>() {
            Ok(n) if n <= max => Some(n),
            _ => {
                let message = format!(
                    "must be a number from 0 to {max}{}",
                    Self::found(key, a.value.trim())
                );
                self.error(key, Some(a.line), message);
                None
            }
        }
    }

    fn port(&mut self, key: &str, default: u16) -> u16 {
        let Some(a) = self.get(key) else { return default };
        match a.value.trim().parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                let message = format!(
                    "must be a port number from 1 to 65535{}",
                    Self::found(key, a.value.trim())
                );
                self.error(key, Some(a.line), message);
                default
            }
        }
    }

    /// The newer of two names for one setting when it is set, else the older; warns when both are set
    /// to different values.
    fn alias(&mut self, newer: &'static str, older: &'static str) -> &'static str {
        match (self.get(newer), self.get(older)) {
            (Some(new), Some(old)) => {
                if new.value.trim() != old.value.trim() {
                    let (new_line, old_line) = (new.line, old.line);
                    self.warning(
                        older,
                        Some(old_line),
                        format!("superseded by {newer} on line {new_line}, whose value is used"),
                    );
                }
                newer
            }
            (None, Some(_)) => older,
            _ => newer,
        }
    }
}

fn read_template(r: &mut Reader<'_>) -> Draft {
    let provider: Option<CloudProvider> = r.required_choice("CLOUDHOST");
    let provider_region = r.required("REGION").unwrap_or_default().to_owned();
    let build_identifier = r.required("BUILD_IDENTIFIER").unwrap_or_default().to_owned();
    let website_url = r.required("WEBSITE_URL").unwrap_or_default().to_owned();
    let dns_provider = r.required_choice("DNS_CHOICE").unwrap_or(DnsProvider::Cloudflare);
    let multi_region = r.flag("MULTI_REGION", false);
    let primary = r.flag("PRIMARY_REGION", false) || !multi_region;
    if let (Some(p), Some(a)) = (provider, r.get("MACHINE_TYPE"))
        && !a.value.trim().eq_ignore_ascii_case(p.adt_machine_type())
    {
        let line = a.line;
        r.warning(
            "MACHINE_TYPE",
            Some(line),
            format!(
                "does not match CLOUDHOST \"{p}\", which expects \"{}\"; ignored{}",
                p.adt_machine_type(),
                Reader::found("MACHINE_TYPE", a.value.trim())
            ),
        );
    }

    let cloud = read_cloud_credentials(r, provider);
    let (datastores, datastore_secrets) = read_datastores(r);
    let dns = read_dns_credentials(r, dns_provider);
    let machines_and_scaling = read_machines(r);
    let vpc = read_vpc(r);
    let in_parallel_key = r.alias("IN_PARALLEL", "INPARALLEL");

    let region = Region {
        name: provider_region.clone(),
        provider: provider.unwrap_or(CloudProvider::Linode),
        provider_region,
        build_identifier,
        primary,
        account_id: r.owned("CLOUDHOST_ACCOUNT_ID"),
        build_machine_vpc: r.flag("BUILD_MACHINE_VPC", false),
        database_install: machines_and_scaling.database_install,
        firewall: r
            .code("ACTIVE_FIREWALLS", 3)
            .and_then(FirewallMode::from_adt)
            .unwrap_or(FirewallMode::Both),
        in_parallel: r.flag(in_parallel_key, false),
        ssh_port: r.port("SSH_PORT", 1035),
        db_port: r.port("DB_PORT", 2035),
        ssh_user: r.owned("USER").unwrap_or_else(|| "root".to_owned()),
        sync_webroots: r.flag("SYNC_WEBROOTS", false),
        persist_assets: r.flag("PERSIST_ASSETS_TO_DATASTORE", false),
        directories_to_mount: r
            .text("DIRECTORIES_TO_MOUNT")
            .map(|v| {
                v.split(':')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        vpc,
        scaling: machines_and_scaling.scaling,
        machines: machines_and_scaling.machines,
        dbaas: None,
        datastores,
        extra_ports: Vec::new(),
    };
    let secrets = RegionSecrets {
        cloud,
        datastores: datastore_secrets,
        dns,
        auth_dns: r
            .secret("AUTH_DNS_SECURITY_KEY")
            .map(|security_key| DnsCredentials {
                username: r.owned("AUTH_DNS_USERNAME"),
                security_key,
            }),
        dbaas_password: None,
        repositories: RepositoryCredentials {
            application_password: r.secret("APPLICATION_REPOSITORY_PASSWORD"),
            application_token: r.secret("APPLICATION_REPOSITORY_TOKEN"),
            infrastructure_password: r.secret("INFRASTRUCTURE_REPOSITORY_PASSWORD"),
        },
        email: r
            .secret("SYSTEM_EMAIL_PASSWORD")
            .map(|password| EmailCredentials {
                username: r.secret("SYSTEM_EMAIL_USERNAME"),
                password,
            }),
    };
    let application = read_application(r);
    let email = read_email(r);
    warn_unknown_keys(r);
    Draft {
        website_url,
        dns_provider,
        multi_region,
        provider,
        application,
        email,
        region,
        secrets,
    }
}

fn read_cloud_credentials(r: &mut Reader<'_>, provider: Option<CloudProvider>) -> CloudCredentials {
    if let Some(p) = provider {
        let needed: &[&str] = if p.uses_token() {
            &["TOKEN"]
        } else {
            &["ACCESS_KEY", "SECRET_KEY"]
        };
        for key in needed {
            if r.text(key).is_none() {
                r.report_absent(key, &format!("required for {p}"));
            }
        }
    }
    CloudCredentials {
        token: r.secret("TOKEN"),
        access_key: r.secret("ACCESS_KEY"),
        secret_key: r.secret("SECRET_KEY"),
    }
}

fn read_dns_credentials(r: &mut Reader<'_>, dns_provider: DnsProvider) -> Option<DnsCredentials> {
    let security_key = r.required("DNS_SECURITY_KEY").map(Secret::new)?;
    let username = r.owned("DNS_USERNAME");
    if dns_provider == DnsProvider::Cloudflare && !security_key.expose().contains(":::") && username.is_none()
    {
        r.report_absent(
            "DNS_USERNAME",
            "required with a Cloudflare global API key (an API token is written <account-id>:::<token>)",
        );
    }
    Some(DnsCredentials {
        username,
        security_key,
    })
}

fn read_vpc(r: &mut Reader<'_>) -> Vpc {
    let name = r.owned("VPC_NAME").unwrap_or_else(|| "adt-vpc".to_owned());
    let cidr = match r.required("VPC_IP_RANGE") {
        Some(text) => text.parse::<Ipv4Net>().unwrap_or_else(|_| {
            let line = r.get("VPC_IP_RANGE").map(|a| a.line);
            r.error(
                "VPC_IP_RANGE",
                line,
                format!("must be an IPv4 network such as 10.0.1.0/24 (found \"{text}\")"),
            );
            placeholder_network()
        }),
        None => placeholder_network(),
    };
    Vpc { name, cidr }
}

/// Stands in for a missing or malformed VPC range (already reported), so that checking can go on.
fn placeholder_network() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 24).unwrap_or_default()
}

/// Reads the `|`-separated `S3_*` lists: position N of each list forms endpoint N.
fn read_datastores(r: &mut Reader<'_>) -> (Vec<DatastoreEndpoint>, Vec<DatastoreCredentials>) {
    let hosts = r.required("S3_HOST_BASE").map(split_list);
    let access = r.required("S3_ACCESS_KEY").map(split_list);
    let secret = r.required("S3_SECRET_KEY").map(split_list);
    let locations = r.text("S3_LOCATION").map(split_list);
    let Some(hosts) = hosts else {
        return (Vec::new(), Vec::new());
    };
    let n = hosts.len();
    let mut lists_ok = true;
    for (key, list) in [
        ("S3_HOST_BASE", Some(&hosts)),
        ("S3_ACCESS_KEY", access.as_ref()),
        ("S3_SECRET_KEY", secret.as_ref()),
        ("S3_LOCATION", locations.as_ref()),
    ] {
        let Some(list) = list else { continue };
        let line = r.get(key).map(|a| a.line);
        if list.len() != n {
            lists_ok = false;
            r.error(
                key,
                line,
                format!(
                    "has {} `|`-separated entries but S3_HOST_BASE has {n}; entry N of each list belongs to datastore endpoint N",
                    list.len()
                ),
            );
        } else if let Some(empty) = list.iter().position(|entry| entry.is_empty()) {
            lists_ok = false;
            r.error(
                key,
                line,
                format!("entry {} of the `|`-separated list is empty", empty + 1),
            );
        }
    }
    let mut endpoints: Vec<DatastoreEndpoint> = hosts
        .iter()
        .enumerate()
        .map(|(k, host)| DatastoreEndpoint {
            provider: DatastoreProvider::from_host_base(host),
            host_base: (*host).to_owned(),
            location: locations
                .as_ref()
                .and_then(|l| l.get(k))
                .map_or("US", |l| l)
                .to_owned(),
        })
        .collect();
    if let (Some(a), Some(first)) = (r.get("DATASTORE_CHOICE"), endpoints.first_mut()) {
        let value = a.value.trim();
        match value.parse::<DatastoreProvider>() {
            Err(_) => r.warning(
                "DATASTORE_CHOICE",
                Some(a.line),
                format!("unknown datastore provider; S3_HOST_BASE tells which it is (found \"{value}\")"),
            ),
            Ok(chosen) if first.provider == DatastoreProvider::Generic => first.provider = chosen,
            Ok(chosen) if chosen != first.provider => r.warning(
                "DATASTORE_CHOICE",
                Some(a.line),
                format!(
                    "datastore endpoint 1 ({}) is a {} endpoint, which is used (found \"{value}\")",
                    first.host_base, first.provider
                ),
            ),
            Ok(_) => {}
        }
    }
    let credentials = match (access, secret) {
        (Some(access), Some(secret)) if lists_ok => access
            .iter()
            .zip(&secret)
            .map(|(a, s)| DatastoreCredentials {
                access_key: Secret::new(*a),
                secret_key: Secret::new(*s),
            })
            .collect(),
        _ => Vec::new(),
    };
    (endpoints, credentials)
}

fn split_list(value: &str) -> Vec<&str> {
    value.split('|').map(str::trim).collect()
}

struct MachinesAndScaling {
    machines: Machines,
    scaling: Scaling,
    database_install: DbInstallMode,
}

fn read_machines(r: &mut Reader<'_>) -> MachinesAndScaling {
    let webservers = r.number("NO_WEBSERVERS", 1);
    let max = r.number("MAX_WEBSERVERS", webservers);
    let autoscalers = r.number("NO_AUTOSCALERS", 1);
    let reverse_proxies = r.number("NO_REVERSE_PROXY", 0);
    let authenticators_key = r.alias("NO_AUTHENTICATORS", "AUTHENTICATION_SERVER");
    let authenticators = r.number(authenticators_key, 0);
    let database_install = read_db_install_mode(r);
    let size = |r: &Reader<'_>, key: &str| r.owned(key).unwrap_or_default();
    let machines = Machines {
        autoscaler: MachineSpec {
            count: autoscalers,
            size: size(r, "AS_SERVER_TYPE"),
        },
        webserver: MachineSpec {
            count: webservers,
            size: size(r, "WS_SERVER_TYPE"),
        },
        database: MachineSpec {
            count: database_install.machine_count(),
            size: size(r, "DB_SERVER_TYPE"),
        },
        authenticator: MachineSpec {
            count: authenticators,
            size: size(r, "AUTH_SERVER_TYPE"),
        },
        reverse_proxy: MachineSpec {
            count: reverse_proxies,
            size: size(r, "RP_SERVER_TYPE"),
        },
    };
    MachinesAndScaling {
        machines,
        scaling: Scaling {
            initial: webservers,
            min: webservers,
            max,
        },
        database_install,
    }
}

/// `DB_INSTALL_MODE` (0 none, 1 install, 2 reuse) wins over the older `BYPASS_DB_LAYER` (0 install,
/// 1 reuse, 2 none); default: install.
fn read_db_install_mode(r: &mut Reader<'_>) -> DbInstallMode {
    let newer = r
        .code("DB_INSTALL_MODE", 2)
        .and_then(DbInstallMode::from_db_install_mode);
    let older = r
        .code("BYPASS_DB_LAYER", 2)
        .and_then(DbInstallMode::from_bypass_db_layer);
    match (newer, older) {
        (Some(new), Some(old)) => {
            if new != old {
                let (new_line, old_line) = (
                    r.get("DB_INSTALL_MODE").map(|a| a.line),
                    r.get("BYPASS_DB_LAYER").map(|a| a.line),
                );
                r.warning(
                    "BYPASS_DB_LAYER",
                    old_line,
                    format!(
                        "means \"{old}\" but DB_INSTALL_MODE on line {} means \"{new}\", which is used",
                        new_line.unwrap_or_default()
                    ),
                );
            }
            new
        }
        (Some(mode), None) | (None, Some(mode)) => mode,
        (None, None) => DbInstallMode::Install,
    }
}

fn read_application(r: &mut Reader<'_>) -> ApplicationSettings {
    let repository = r
        .choice::<RepositoryProvider>("APPLICATION_REPOSITORY_PROVIDER")
        .map(|provider| ApplicationRepository {
            provider,
            owner: r.owned("APPLICATION_REPOSITORY_OWNER").unwrap_or_default(),
            username: r.owned("APPLICATION_REPOSITORY_USERNAME").unwrap_or_default(),
        });
    ApplicationSettings {
        kind: r.choice("APPLICATION").unwrap_or(Application::None),
        name: r.owned("APPLICATION_NAME").unwrap_or_default(),
        display_name: r.owned("WEBSITE_DISPLAY_NAME").unwrap_or_default(),
        language: r.choice("APPLICATION_LANGUAGE").unwrap_or(Language::Php),
        php_version: r.owned("PHP_VERSION"),
        webserver: r.choice("WEBSERVER_CHOICE").unwrap_or(WebServer::Apache),
        reverse_proxy_webserver: r.choice("REVERSE_PROXY_WEBSERVER").unwrap_or(WebServer::Apache),
        archive: r
            .required_choice("BUILD_ARCHIVE_CHOICE")
            .unwrap_or(ArchiveChoice::Hourly),
        database: r
            .required_choice("DATABASE_INSTALLATION_TYPE")
            .unwrap_or(DatabaseKind::Maria),
        mod_security: r.flag("MOD_SECURITY", false),
        build_os: BuildOs {
            family: r.choice("BUILDOS").unwrap_or(OsFamily::Debian),
            version: r.owned("BUILDOS_VERSION").unwrap_or_else(|| "12".to_owned()),
        },
        repository,
    }
}

fn read_email(r: &mut Reader<'_>) -> Option<EmailSettings> {
    let a = r.get("SYSTEM_EMAIL_PROVIDER")?;
    let Some(provider) = a
        .value
        .trim()
        .parse::<u8>()
        .ok()
        .and_then(EmailProvider::from_adt)
    else {
        let line = a.line;
        r.error(
            "SYSTEM_EMAIL_PROVIDER",
            Some(line),
            format!(
                "must be 1 (Sendpulse), 2 (Mailjet) or 3 (SES) (found \"{}\")",
                a.value.trim()
            ),
        );
        return None;
    };
    Some(EmailSettings {
        provider,
        to_address: r.owned("SYSTEM_TOEMAIL_ADDRESS").unwrap_or_default(),
        from_address: r.owned("SYSTEM_FROMEMAIL_ADDRESS").unwrap_or_default(),
        notification_level: r
            .owned("EMAIL_NOTIFICATION_LEVEL")
            .unwrap_or_else(|| "ERROR".to_owned()),
    })
}

fn warn_unknown_keys(r: &mut Reader<'_>) {
    let unknown: Vec<(String, usize)> = r
        .template
        .assignments()
        .iter()
        .filter(|a| !USED_KEYS.contains(&a.key.as_str()) && !IGNORED_KEYS.contains(&a.key.as_str()))
        .map(|a| (a.key.clone(), a.line))
        .collect();
    for (key, line) in unknown {
        r.warning(&key, Some(line), "unknown key; ignored");
    }
}

/// Deployment-wide keys must say the same in every template as in the primary's (`source`).
fn check_agreement(templates: &[Template], drafts: &[Draft], source: usize, report: &mut Report) {
    let reference = &templates[source];
    for (i, template) in templates.iter().enumerate().filter(|(i, _)| *i != source) {
        if drafts[i].multi_region != drafts[source].multi_region {
            let line = template.get("MULTI_REGION").map(|a| a.line);
            let flag = |on: bool| if on { "1" } else { "0" };
            report.push(
                i,
                Diagnostic::error(
                    template.name(),
                    format!(
                        "must be the same in every template; {} has \"{}\" (found \"{}\")",
                        reference.name(),
                        flag(drafts[source].multi_region),
                        flag(drafts[i].multi_region)
                    ),
                )
                .at_line(line)
                .with_key("MULTI_REGION"),
            );
        }
        for (keys, severity) in [(MUST_AGREE, Severity::Error), (SHOULD_AGREE, Severity::Warning)] {
            for &key in keys {
                let value = |t: &Template| {
                    t.get(key)
                        .map(|a| (a.value.trim().to_owned(), a.line))
                        .filter(|(v, _)| !v.is_empty())
                };
                let (Some((expected, _)), Some((found, line))) = (value(reference), value(template)) else {
                    continue;
                };
                if expected.eq_ignore_ascii_case(&found) {
                    continue;
                }
                let message = match severity {
                    Severity::Error => format!(
                        "must be the same in every template; {} has \"{expected}\" (found \"{found}\")",
                        reference.name()
                    ),
                    Severity::Warning => format!(
                        "differs from {} (\"{expected}\"), whose value is used (found \"{found}\")",
                        reference.name()
                    ),
                };
                report.push(
                    i,
                    Diagnostic::new(severity, template.name(), message)
                        .at_line(Some(line))
                        .with_key(key),
                );
            }
        }
    }
}

/// With a DBaaS database: the primary (`source`) gets the cluster from its
/// `DATABASE_DBaaS_INSTALLATION_TYPE` tuple (its password goes to the secrets), every secondary the public
/// endpoint. Other regions marked primary are already reported and get nothing.
fn attach_dbaas(templates: &[Template], drafts: &mut [Draft], source: usize, report: &mut Report) {
    const KEY: &str = "DATABASE_DBaaS_INSTALLATION_TYPE";
    let tuple_of = |t: &Template| {
        t.get(KEY)
            .filter(|a| !a.value.trim().is_empty())
            .map(|a| (a.value.trim().to_owned(), a.line))
    };
    let primary_tuple = drafts[source]
        .region
        .primary
        .then(|| tuple_of(&templates[source]))
        .flatten()
        .map(|(value, _)| value);
    for (i, draft) in drafts.iter_mut().enumerate() {
        let template = &templates[i];
        if !draft.region.primary {
            let public_endpoint = template
                .get("DBaaS_PUBLIC_ENDPOINT")
                .map(|a| a.value.trim().to_owned())
                .unwrap_or_default();
            draft.region.dbaas = Some(Dbaas::Secondary { public_endpoint });
            if let (Some((own, line)), Some(primary)) = (tuple_of(template), &primary_tuple)
                && own != *primary
            {
                let message = format!(
                    "differs from the primary's in {}, whose DBaaS settings are used",
                    templates[source].name()
                );
                report.push(
                    i,
                    Diagnostic::warning(template.name(), message)
                        .at_line(Some(line))
                        .with_key(KEY),
                );
            }
            continue;
        }
        if i != source {
            report.suppress(i, KEY);
            continue;
        }
        if let Some(a) = template
            .get("DBaaS_PUBLIC_ENDPOINT")
            .filter(|a| !a.value.trim().is_empty())
        {
            let warning = Diagnostic::warning(
                template.name(),
                "ignored for the primary region, which hosts the DBaaS",
            );
            report.push(i, warning.at_line(Some(a.line)).with_key("DBaaS_PUBLIC_ENDPOINT"));
        }
        let Some((tuple, line)) = tuple_of(template) else {
            continue;
        };
        let Some(provider) = draft.provider else {
            // The layout depends on CLOUDHOST, which is already reported as wrong.
            report.suppress(i, KEY);
            continue;
        };
        match parse_dbaas_tuple(provider, &tuple) {
            Ok(parsed) => {
                let mode = if draft.region.database_install == DbInstallMode::Reuse {
                    DbaasMode::Adopt
                } else {
                    DbaasMode::Create
                };
                draft.region.dbaas = Some(parsed.cluster(mode));
                draft.secrets.dbaas_password = Some(parsed.password);
            }
            Err(message) => {
                report.push(
                    i,
                    Diagnostic::error(template.name(), message)
                        .at_line(Some(line))
                        .with_key(KEY),
                );
            }
        }
    }
}

/// The fields of a `DATABASE_DBaaS_INSTALLATION_TYPE` tuple.
struct DbaasTuple {
    engine: String,
    version: String,
    region: String,
    size: String,
    nodes: u32,
    label: String,
    database: String,
    user: String,
    password: Secret,
    vpc_id: Option<String>,
    subnet_id: Option<String>,
}

impl DbaasTuple {
    fn cluster(&self, mode: DbaasMode) -> Dbaas {
        Dbaas::Primary {
            mode,
            engine: self.engine.clone(),
            version: self.version.clone(),
            provider_region: self.region.clone(),
            size: self.size.clone(),
            nodes: self.nodes,
            label: self.label.clone(),
            database: self.database.clone(),
            user: self.user.clone(),
            vpc_id: self.vpc_id.clone(),
            subnet_id: self.subnet_id.clone(),
        }
    }
}

/// Parses the provider-specific colon tuple (as the toolkit's `InitialiseDatabaseService.sh` reads it).
/// Errors never quote the value: it holds the password.
fn parse_dbaas_tuple(provider: CloudProvider, value: &str) -> Result<DbaasTuple, String> {
    let (layout, min, max) = match provider {
        CloudProvider::Linode => (
            "engine:DBAAS:version:region:size:nodes:label:database:user:password[:vpc_id[:subnet_id]]",
            10,
            12,
        ),
        CloudProvider::DigitalOcean => (
            "engine:DBAAS:cluster_engine:region:nodes:size:version:name:database:user:password[:vpc_id]",
            11,
            12,
        ),
        CloudProvider::Exoscale => (
            "engine:DBAAS:cluster_engine:region:plan:database:user:password",
            8,
            8,
        ),
        CloudProvider::Vultr => (
            "engine:DBAAS:cluster_engine:version:region:plan:database:user:password:label[:vpc_id]",
            10,
            11,
        ),
    };
    let f: Vec<&str> = value.split(':').map(str::trim).collect();
    if f.get(1)
        .is_none_or(|marker| !marker.eq_ignore_ascii_case("DBAAS"))
        || f.len() < min
        || f.len() > max
    {
        return Err(format!(
            "on {provider} the DBaaS is written {layout} ({min}{} colon-separated fields; found {}; \
             a password may not contain ':')",
            if max > min {
                format!(" to {max}")
            } else {
                String::new()
            },
            f.len()
        ));
    }
    let field = |i: usize| f.get(i).map(|s| (*s).to_owned()).unwrap_or_default();
    let optional = |i: usize| f.get(i).filter(|s| !s.is_empty()).map(|s| (*s).to_owned());
    let nodes = |text: &str| {
        text.parse::<u32>()
            .map_err(|_| format!("the DBaaS node count must be a whole number (found \"{text}\")"))
    };
    let tuple = match provider {
        CloudProvider::Linode => DbaasTuple {
            engine: field(0),
            version: field(2),
            region: field(3),
            size: field(4),
            nodes: nodes(f[5])?,
            label: field(6),
            database: field(7),
            user: field(8),
            password: Secret::new(field(9)),
            vpc_id: optional(10),
            subnet_id: optional(11),
        },
        CloudProvider::DigitalOcean => DbaasTuple {
            engine: field(0),
            version: format!("{}/{}", f[2], f[6]),
            region: field(3),
            size: field(5),
            nodes: nodes(f[4])?,
            label: field(7),
            database: field(8),
            user: field(9),
            password: Secret::new(field(10)),
            vpc_id: optional(11),
            subnet_id: None,
        },
        CloudProvider::Exoscale => DbaasTuple {
            engine: field(0),
            version: field(2),
            region: field(3),
            size: field(4),
            nodes: 1,
            label: field(5),
            database: field(5),
            user: field(6),
            password: Secret::new(field(7)),
            vpc_id: None,
            subnet_id: None,
        },
        CloudProvider::Vultr => DbaasTuple {
            engine: field(0),
            version: format!("{}/{}", f[2], f[3]),
            region: field(4),
            size: field(5),
            nodes: 1,
            label: field(9),
            database: field(6),
            user: field(7),
            password: Secret::new(field(8)),
            vpc_id: optional(10),
            subnet_id: None,
        },
    };
    if tuple.password.is_empty() {
        return Err("the DBaaS password (the last field) is empty".to_owned());
    }
    // A ':' inside the password shifts its tail into the optional id fields: refuse what cannot be an id
    // rather than put a piece of the password into the spec.
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_uuid = |s: &str| s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let ids_ok = match provider {
        CloudProvider::Linode => [&tuple.vpc_id, &tuple.subnet_id]
            .into_iter()
            .flatten()
            .all(|s| is_number(s)),
        CloudProvider::DigitalOcean | CloudProvider::Vultr => tuple.vpc_id.as_deref().is_none_or(is_uuid),
        CloudProvider::Exoscale => true,
    };
    if !ids_ok {
        return Err(format!(
            "the field after the DBaaS password is not a VPC id: a password may not contain ':' (layout on {provider}: {layout})"
        ));
    }
    Ok(tuple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbaas_tuples_per_provider() {
        let linode = parse_dbaas_tuple(
            CloudProvider::Linode,
            "MySQL:DBAAS:mysql/8:nl-ams:g6-nanode-1:1:test-cluster:testdb1:testdbuser:pw:266632:266052",
        )
        .unwrap();
        assert_eq!(
            (linode.version.as_str(), linode.nodes, linode.password.expose()),
            ("mysql/8", 1, "pw")
        );
        assert_eq!(linode.subnet_id.as_deref(), Some("266052"));

        let digitalocean = parse_dbaas_tuple(
            CloudProvider::DigitalOcean,
            "Postgres:DBAAS:pg:lon1:1:db-s-1vcpu-1gb:17:cluster1:db1:user1:pw:5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        )
        .unwrap();
        assert_eq!(
            (digitalocean.version.as_str(), digitalocean.size.as_str()),
            ("pg/17", "db-s-1vcpu-1gb")
        );

        let exoscale = parse_dbaas_tuple(
            CloudProvider::Exoscale,
            "MySQL:DBAAS:mysql:ch-gva-2:hobbyist-2:db1:user1:pw",
        )
        .unwrap();
        assert_eq!(
            (exoscale.label.as_str(), exoscale.size.as_str()),
            ("db1", "hobbyist-2")
        );

        let vultr = parse_dbaas_tuple(
            CloudProvider::Vultr,
            "MySQL:DBAAS:mysql:8:lhr:vultr-dbaas-hobbyist-cc-1-25-1:testdb:user1:pw:TestDatabase:2fb13fd1-0c6b-4f0a-9b2e-6f0d3c1e2a11",
        )
        .unwrap();
        assert_eq!(
            (vultr.version.as_str(), vultr.label.as_str()),
            ("mysql/8", "TestDatabase")
        );

        let err = parse_dbaas_tuple(CloudProvider::Linode, "MySQL:DBAAS:mysql/8:secretpw")
            .err()
            .unwrap();
        assert!(err.contains("found 4"), "{err}");
        assert!(!err.contains("secretpw"));
        assert!(parse_dbaas_tuple(CloudProvider::Exoscale, "MySQL").is_err());
    }
}
