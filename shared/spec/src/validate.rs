//! The rules a deployment must satisfy, checked all at once.
//!
//! Rules are written once, against the model, and report [`Finding`]s about a [`Field`]. A finding
//! becomes a [`Diagnostic`](crate::Diagnostic) located by spec path for a TOML spec
//! ([`Deployment::validate`]) or by template file, line and key for imported templates (the importer
//! knows which key and line each field came from).

use crate::Severity;
use crate::model::{
    ArchiveChoice, DatabaseKind, Dbaas, Deployment, DnsProvider, Region, Role, WebServer, is_subject_safe,
};

/// A part of the model a rule can complain about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    DeploymentName,
    WebsiteUrl,
    DnsZone,
    DnsProvider,
    MultiRegion,
    Archive,
    Database,
    ReverseProxyWebserver,
    Regions,
    RegionName,
    ProviderRegion,
    BuildIdentifier,
    Primary,
    SshUser,
    VpcName,
    VpcCidr,
    Datastores,
    MachineCount(Role),
    MachineSize(Role),
    DbInstall,
    ScalingInitial,
    ScalingMin,
    ScalingMax,
    SshPort,
    DbPort,
    DirectoriesToMount,
    Dbaas,
    DbaasPublicEndpoint,
    ExtraPorts,
}

impl Field {
    /// The dotted path of the field in the TOML spec; region fields are prefixed `regions[<name>]`
    /// (`regions[*]` when the finding is about no region in particular).
    pub(crate) fn spec_path(self, region: Option<&str>) -> String {
        let deployment_level = match self {
            Self::DeploymentName => Some("name"),
            Self::WebsiteUrl => Some("website_url"),
            Self::DnsZone => Some("dns.zone"),
            Self::DnsProvider => Some("dns.provider"),
            Self::MultiRegion => Some("multi_region"),
            Self::Archive => Some("application.archive"),
            Self::Database => Some("application.database"),
            Self::ReverseProxyWebserver => Some("application.reverse_proxy_webserver"),
            Self::Regions => Some("regions"),
            _ => None,
        };
        if let Some(path) = deployment_level {
            return path.to_owned();
        }
        let suffix = match self {
            Self::MachineCount(role) => format!("machines.{}.count", role_field(role)),
            Self::MachineSize(role) => format!("machines.{}.size", role_field(role)),
            other => other.region_suffix().to_owned(),
        };
        format!("regions[{}].{suffix}", region.unwrap_or("*"))
    }

    fn region_suffix(self) -> &'static str {
        match self {
            Self::RegionName => "name",
            Self::ProviderRegion => "provider_region",
            Self::BuildIdentifier => "build_identifier",
            Self::Primary => "primary",
            Self::SshUser => "ssh_user",
            Self::VpcName => "vpc.name",
            Self::VpcCidr => "vpc.cidr",
            Self::Datastores => "datastores",
            Self::DbInstall => "database_install",
            Self::ScalingInitial => "scaling.initial",
            Self::ScalingMin => "scaling.min",
            Self::ScalingMax => "scaling.max",
            Self::SshPort => "ssh_port",
            Self::DbPort => "db_port",
            Self::DirectoriesToMount => "directories_to_mount",
            Self::Dbaas => "dbaas",
            Self::DbaasPublicEndpoint => "dbaas.public_endpoint",
            Self::ExtraPorts => "extra_ports",
            _ => "",
        }
    }
}

fn role_field(role: Role) -> &'static str {
    match role {
        Role::ReverseProxy => "reverse_proxy",
        other => other.as_str(),
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    /// Index into `Deployment::regions`, for region fields.
    pub(crate) region: Option<usize>,
    pub(crate) field: Field,
    pub(crate) message: String,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, region: Option<usize>, field: Field, message: impl Into<String>) {
        self.0.push(Finding {
            severity: Severity::Error,
            region,
            field,
            message: message.into(),
        });
    }

    fn warning(&mut self, region: Option<usize>, field: Field, message: impl Into<String>) {
        self.0.push(Finding {
            severity: Severity::Warning,
            region,
            field,
            message: message.into(),
        });
    }
}

/// Allowed machine counts per role (from the toolkit's quick specification).
pub(crate) const fn count_range(role: Role) -> (u32, u32) {
    match role {
        Role::Webserver => (1, 5),
        Role::Database => (0, 1),
        Role::Autoscaler | Role::Authenticator | Role::ReverseProxy => (0, 5),
    }
}

/// Checks every rule; the findings come in a stable order (deployment, then region by region).
pub(crate) fn check(d: &Deployment) -> Vec<Finding> {
    let mut out = Findings::default();
    check_deployment(d, &mut out);
    let mut seen: Vec<&str> = Vec::new();
    for (i, region) in d.regions.iter().enumerate() {
        if seen.contains(&region.name.as_str()) {
            out.error(
                Some(i),
                Field::RegionName,
                format!("region \"{}\" is defined more than once", region.name),
            );
        }
        seen.push(&region.name);
        check_region(d, i, region, &mut out);
    }
    out.0
}

fn check_deployment(d: &Deployment, out: &mut Findings) {
    if !is_host_name(&d.website_url) {
        out.error(
            None,
            Field::WebsiteUrl,
            format!(
                "must be a host name such as www.example.com (found \"{}\")",
                d.website_url
            ),
        );
    } else {
        let url = d.website_url.trim_end_matches('.').to_ascii_lowercase();
        let zone = d.dns.zone.trim_end_matches('.').to_ascii_lowercase();
        if zone.is_empty() || !(url == zone || url.ends_with(&format!(".{zone}"))) {
            out.error(
                None,
                Field::DnsZone,
                format!(
                    "the DNS zone \"{}\" does not contain the site \"{}\"",
                    d.dns.zone, d.website_url
                ),
            );
        }
    }
    if !is_subject_safe(&d.name) {
        out.error(
            None,
            Field::DeploymentName,
            format!(
                "the deployment name must be a subject token of a-z, 0-9, '-' and '_' (found \"{}\")",
                d.name
            ),
        );
    }
    if d.application.reverse_proxy_webserver == WebServer::Lighttpd {
        out.error(
            None,
            Field::ReverseProxyWebserver,
            "lighttpd cannot run a reverse proxy (found \"lighttpd\")",
        );
    }
    if d.regions.is_empty() {
        out.error(None, Field::Regions, "a deployment needs at least one region");
    }
    if d.regions.len() > 1 && !d.multi_region {
        out.error(
            None,
            Field::MultiRegion,
            format!("a deployment of {} regions must be multi-region", d.regions.len()),
        );
    }
    if d.multi_region {
        if d.application.database != DatabaseKind::Dbaas {
            out.error(
                None,
                Field::Database,
                format!(
                    "multi-region deployments need a DBaaS database (found \"{}\")",
                    d.application.database
                ),
            );
        }
        if !d.application.archive.is_backup() {
            out.error(
                None,
                Field::Archive,
                format!(
                    "multi-region deployments must build from a periodic backup, not a {} or {} install (found \"{}\")",
                    ArchiveChoice::Virgin,
                    ArchiveChoice::Baseline,
                    d.application.archive
                ),
            );
        }
        if d.dns.provider != DnsProvider::Cloudflare {
            out.warning(
                None,
                Field::DnsProvider,
                format!(
                    "Cloudflare is recommended for multi-region DNS (found \"{}\")",
                    d.dns.provider
                ),
            );
        }
    }
    let primaries: Vec<&Region> = d.regions.iter().filter(|r| r.primary).collect();
    if primaries.is_empty() && !d.regions.is_empty() {
        out.error(
            None,
            Field::Primary,
            "no region is primary; exactly one region must be",
        );
    }
    if let Some(first) = primaries.first() {
        for (i, region) in d.regions.iter().enumerate().filter(|(_, r)| r.primary).skip(1) {
            out.error(
                Some(i),
                Field::Primary,
                format!(
                    "region \"{}\" is primary, but so is \"{}\"; exactly one region must be",
                    region.name, first.name
                ),
            );
        }
    }
}

fn check_region(d: &Deployment, i: usize, r: &Region, out: &mut Findings) {
    let at = Some(i);
    for (n, p) in r.extra_ports.iter().enumerate() {
        if !matches!(p.protocol.as_str(), "tcp" | "udp") {
            out.error(
                at,
                Field::ExtraPorts,
                format!(
                    "extra port {n}: the protocol must be tcp or udp (found \"{}\")",
                    p.protocol
                ),
            );
        }
        if p.port == 0 || p.to_port.is_some_and(|to| to < p.port) {
            out.error(
                at,
                Field::ExtraPorts,
                format!(
                    "extra port {n}: ports must be 1-65535 with to_port not below port (found {}..{:?})",
                    p.port, p.to_port
                ),
            );
        }
    }
    if !is_subject_safe(&r.name) {
        out.error(
            at,
            Field::RegionName,
            format!(
                "the region name must be a subject token of a-z, 0-9, '-' and '_' (found \"{}\")",
                r.name
            ),
        );
    }
    if !is_region_id(&r.provider_region) {
        out.error(
            at,
            Field::ProviderRegion,
            format!(
                "must be a provider region id of lowercase letters, digits and hyphens such as gb-lon, ch-gva-2 or ams3 (found \"{}\")",
                r.provider_region
            ),
        );
    }
    if r.build_identifier.is_empty()
        || !r
            .build_identifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        out.error(
            at,
            Field::BuildIdentifier,
            format!(
                "must be letters, digits and hyphens (found \"{}\")",
                r.build_identifier
            ),
        );
    }
    if r.ssh_user.trim().is_empty() {
        out.error(at, Field::SshUser, "the login user must not be empty");
    }
    check_network(i, r, out);
    check_machines(d, i, r, out);
    check_dbaas(d, i, r, out);
}

fn check_network(i: usize, r: &Region, out: &mut Findings) {
    let at = Some(i);
    if r.vpc.name.trim().is_empty() {
        out.error(at, Field::VpcName, "the VPC name must not be empty");
    }
    let cidr = r.vpc.cidr;
    if cidr.trunc() != cidr {
        out.error(
            at,
            Field::VpcCidr,
            format!(
                "has host bits set; the network is {} (found \"{cidr}\")",
                cidr.trunc()
            ),
        );
    } else if !(cidr.network().is_private() && cidr.broadcast().is_private()) {
        out.error(
            at,
            Field::VpcCidr,
            format!(
                "must be a private range within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (found \"{cidr}\")"
            ),
        );
    }
    if r.datastores.is_empty() {
        out.error(at, Field::Datastores, "at least one datastore endpoint is needed");
    }
    for (n, endpoint) in r.datastores.iter().enumerate() {
        if !is_host_name(&endpoint.host_base) {
            out.error(
                at,
                Field::Datastores,
                format!(
                    "datastore endpoint {} must be a host name (found \"{}\")",
                    n + 1,
                    endpoint.host_base
                ),
            );
        }
    }
    for (field, port) in [(Field::SshPort, r.ssh_port), (Field::DbPort, r.db_port)] {
        if port == 0 {
            out.error(at, field, "must be between 1 and 65535 (found \"0\")");
        }
    }
    for dir in &r.directories_to_mount {
        if dir.trim().is_empty() || dir.split('/').any(|part| part == "..") {
            out.error(
                at,
                Field::DirectoriesToMount,
                format!("directories must be non-empty paths without '..' (found \"{dir}\")"),
            );
        }
    }
}

fn check_machines(d: &Deployment, i: usize, r: &Region, out: &mut Findings) {
    let at = Some(i);
    for (role, spec) in r.machines.iter() {
        let (low, high) = count_range(role);
        if spec.count < low || spec.count > high {
            out.error(
                at,
                Field::MachineCount(role),
                format!(
                    "the number of {role} machines must be {low} to {high} (found \"{}\")",
                    spec.count
                ),
            );
        } else if role == Role::ReverseProxy && d.multi_region && spec.count == 0 {
            out.error(
                at,
                Field::MachineCount(role),
                "multi-region deployments need at least one reverse proxy per region (found \"0\")",
            );
        }
        if spec.count > 0 && spec.size.trim().is_empty() {
            out.error(
                at,
                Field::MachineSize(role),
                format!(
                    "a machine size is needed for the {} {role} machine(s)",
                    spec.count
                ),
            );
        }
    }
    let database = &r.machines.database;
    let expected = r.database_install.machine_count();
    if database.count != expected && database.count <= 1 {
        out.error(
            at,
            Field::MachineCount(Role::Database),
            format!(
                "database install mode \"{}\" means {expected} database machine(s) (found \"{}\")",
                r.database_install, database.count
            ),
        );
    }
    if expected == 0 && d.application.database != DatabaseKind::Dbaas {
        out.error(
            at,
            Field::DbInstall,
            format!(
                "the region has no database machine, so the database must be DBaaS (found \"{}\")",
                d.application.database
            ),
        );
    }
    let scaling = r.scaling;
    if scaling.initial != r.machines.webserver.count {
        out.error(
            at,
            Field::ScalingInitial,
            format!(
                "the initial number of webservers must equal the webserver count {} (found \"{}\")",
                r.machines.webserver.count, scaling.initial
            ),
        );
    }
    if scaling.min < 1 {
        out.error(
            at,
            Field::ScalingMin,
            "the minimum number of webservers must be at least 1 (found \"0\")",
        );
    } else if scaling.min > scaling.initial {
        out.error(
            at,
            Field::ScalingMin,
            format!(
                "the minimum number of webservers must not exceed the initial number {} (found \"{}\")",
                scaling.initial, scaling.min
            ),
        );
    }
    if scaling.max < scaling.initial {
        out.error(
            at,
            Field::ScalingMax,
            format!(
                "the maximum number of webservers must be at least the initial number {} (found \"{}\")",
                scaling.initial, scaling.max
            ),
        );
    }
}

fn check_dbaas(d: &Deployment, i: usize, r: &Region, out: &mut Findings) {
    let at = Some(i);
    if d.application.database != DatabaseKind::Dbaas {
        if r.dbaas.is_some() {
            out.error(
                at,
                Field::Dbaas,
                format!(
                    "DBaaS settings are given but the database is \"{}\"",
                    d.application.database
                ),
            );
        }
        return;
    }
    match (&r.dbaas, r.primary) {
        (
            Some(Dbaas::Primary {
                engine,
                version,
                provider_region,
                size,
                nodes,
                label,
                database,
                user,
                ..
            }),
            true,
        ) => {
            if !["mysql", "postgres"].contains(&engine.to_ascii_lowercase().as_str()) {
                out.error(
                    at,
                    Field::Dbaas,
                    format!("the DBaaS engine must be MySQL or Postgres (found \"{engine}\")"),
                );
            }
            for (what, value) in [
                ("engine version", version),
                ("region", provider_region),
                ("size", size),
                ("label", label),
                ("database name", database),
                ("database user", user),
            ] {
                if value.trim().is_empty() {
                    out.error(at, Field::Dbaas, format!("the DBaaS {what} must not be empty"));
                }
            }
            if *nodes == 0 {
                out.error(
                    at,
                    Field::Dbaas,
                    "the DBaaS needs at least one node (found \"0\")",
                );
            }
            if !provider_region.is_empty() && !is_region_id(provider_region) {
                out.error(
                    at,
                    Field::Dbaas,
                    format!("the DBaaS region must be a provider region id (found \"{provider_region}\")"),
                );
            } else if !provider_region.is_empty() && *provider_region != r.provider_region {
                out.warning(
                    at,
                    Field::Dbaas,
                    format!(
                        "the DBaaS is in \"{provider_region}\" but the primary region is \"{}\"; its webservers will reach it across regions",
                        r.provider_region
                    ),
                );
            }
        }
        (Some(Dbaas::Secondary { .. }), true) => {
            out.error(
                at,
                Field::Dbaas,
                "the primary region must hold the DBaaS cluster settings, not a public endpoint",
            );
        }
        (None, true) => out.error(
            at,
            Field::Dbaas,
            "the primary region needs the DBaaS cluster settings",
        ),
        (Some(Dbaas::Primary { .. }), false) => {
            out.error(
                at,
                Field::Dbaas,
                "only the primary region can create or adopt the DBaaS cluster",
            );
        }
        (Some(Dbaas::Secondary { public_endpoint }), false) if is_host_name(public_endpoint) => {}
        (Some(Dbaas::Secondary { public_endpoint }), false) if !public_endpoint.trim().is_empty() => {
            out.error(
                at,
                Field::DbaasPublicEndpoint,
                format!("the DBaaS public endpoint must be a host name (found \"{public_endpoint}\")"),
            );
        }
        (_, false) => out.error(
            at,
            Field::DbaasPublicEndpoint,
            "a secondary region needs the public endpoint of the primary region's DBaaS",
        ),
    }
}

/// A DNS host name: two or more dot-separated labels of letters, digits and inner hyphens.
pub(crate) fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A provider region id: lowercase letters and digits in hyphen-separated groups (`gb-lon`, `ch-gva-2`,
/// `ams3`).
pub(crate) fn is_region_id(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_region_ids() {
        assert!(is_host_name("www.codetesters.uk"));
        assert!(is_host_name(
            "a47568393-akamai-prod-6748387-default.g2a.akamaidb.net"
        ));
        assert!(!is_host_name("localhost"));
        assert!(!is_host_name("https://www.example.com"));
        assert!(!is_host_name("a..b"));
        for ok in ["gb-lon", "ch-gva-2", "ams3", "ams"] {
            assert!(is_region_id(ok), "{ok}");
        }
        for bad in ["", "GB-LON", "gb--lon", "-gb", "gb_lon", "gb lon"] {
            assert!(!is_region_id(bad), "{bad}");
        }
    }

    #[test]
    fn spec_paths() {
        assert_eq!(
            Field::MachineCount(Role::ReverseProxy).spec_path(Some("gb-lon")),
            "regions[gb-lon].machines.reverse_proxy.count"
        );
        assert_eq!(Field::Primary.spec_path(None), "regions[*].primary");
        assert_eq!(Field::Archive.spec_path(Some("x")), "application.archive");
    }
}
