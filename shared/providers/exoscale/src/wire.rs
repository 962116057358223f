//! The parts of Exoscale's JSON (kebab-case keys) this adapter reads. Unknown fields are ignored; fields
//! the spec marks optional are optional here.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What every mutation returns, and `GET /operation/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Operation {
    pub id: String,
    pub state: OperationState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reference: Option<Reference>,
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OperationState {
    Pending,
    Success,
    Failure,
    Timeout,
}

/// The resource an operation acted on.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Reference {
    #[serde(default)]
    pub id: Option<String>,
}

/// A reference by id (`{"id": …}`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdRef {
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct InstanceList {
    #[serde(default)]
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Instance {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub instance_type: Option<InstanceType>,
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub private_networks: Vec<IdRef>,
    #[serde(default)]
    pub security_groups: Vec<IdRef>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct InstanceTypeList {
    #[serde(default)]
    pub instance_types: Vec<InstanceType>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InstanceType {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub size: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TemplateList {
    #[serde(default)]
    pub templates: Vec<Template>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Template {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PrivateNetworkList {
    #[serde(default)]
    pub private_networks: Vec<PrivateNetwork>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PrivateNetwork {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub start_ip: Option<String>,
    #[serde(default)]
    pub netmask: Option<String>,
    #[serde(default)]
    pub leases: Vec<Lease>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Lease {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SecurityGroupList {
    #[serde(default)]
    pub security_groups: Vec<SecurityGroup>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub rules: Vec<SecurityGroupRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SecurityGroupRule {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub flow_direction: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub start_port: Option<u16>,
    #[serde(default)]
    pub end_port: Option<u16>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DbaasServiceList {
    #[serde(default)]
    pub dbaas_services: Vec<DbaasService>,
}

/// A DBaaS service: the common listing, or an engine's full view (which adds the filter and components).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DbaasService {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub ip_filter: Vec<String>,
    #[serde(default)]
    pub components: Vec<DbaasComponent>,
    #[serde(default)]
    pub uri_params: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DbaasComponent {
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub usage: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DnsDomainList {
    #[serde(default)]
    pub dns_domains: Vec<DnsDomain>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DnsDomain {
    pub id: String,
    #[serde(default)]
    pub unicode_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DnsRecordList {
    #[serde(default)]
    pub dns_domain_records: Vec<DnsDomainRecord>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DnsDomainRecord {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub ttl: Option<u32>,
}
