//! The operations, by concern. Each provider adapter implements the ones it supports.

use async_trait::async_trait;
use ipnet::Ipv4Net;

use crate::{
    BatchReport, DatabaseRequest, DnsBatch, DnsChange, DnsRecord, Firewall, FirewallRule, Machine,
    MachineRequest, ManagedDatabase, MarkFilter, Marks, NewDnsRecord, ProviderKind, Result, Vpc, VpcRequest,
    Zone,
};

/// Machines.
#[async_trait]
pub trait Compute: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> ProviderKind;

    /// Creates a machine carrying `request.marks`. Returns at once: the machine may still be provisioning
    /// and may not have its addresses yet.
    async fn create_machine(&self, request: &MachineRequest) -> Result<Machine>;

    /// One machine by provider id; [`crate::CloudError::NotFound`] when it is gone.
    async fn get_machine(&self, id: &str) -> Result<Machine>;

    /// Every machine Flotilla owns that matches `filter`, across all pages, in as few calls as the
    /// provider allows (filtered by tag server-side).
    async fn list_machines(&self, filter: &MarkFilter) -> Result<Vec<Machine>>;

    /// Deletes a machine; deleting one that is already gone succeeds.
    async fn delete_machine(&self, id: &str) -> Result<()>;
}

/// VPCs and native firewalls.
#[async_trait]
pub trait Network: Send + Sync {
    /// The VPC named `name` in `region`, if it exists.
    async fn find_vpc(&self, region: &str, name: &str) -> Result<Option<Vpc>>;

    /// Creates a VPC.
    async fn create_vpc(&self, request: &VpcRequest) -> Result<Vpc>;

    /// Deletes a VPC by its id (as [`Vpc::id`] gives it). A VPC already gone is
    /// [`crate::CloudError::NotFound`]; one still in use (machines or a database attached) is
    /// [`crate::CloudError::Conflict`] with the provider's reason.
    async fn delete_vpc(&self, id: &str) -> Result<()>;

    /// The firewall named `name`, if it exists.
    async fn find_firewall(&self, name: &str) -> Result<Option<Firewall>>;

    /// Creates a firewall with `rules`, marked as ours.
    async fn create_firewall(&self, name: &str, rules: &[FirewallRule], marks: &Marks) -> Result<Firewall>;

    /// Replaces all inbound rules of a firewall.
    async fn replace_firewall_rules(&self, firewall_id: &str, rules: &[FirewallRule]) -> Result<()>;

    /// Applies a firewall to a machine; applying it twice succeeds.
    async fn attach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()>;

    /// Removes a firewall from a machine; removing it when it is not applied succeeds.
    async fn detach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()>;
}

/// Managed databases (DBaaS).
#[async_trait]
pub trait ManagedDatabases: Send + Sync {
    /// The database named `name` (label / service name), if it exists.
    async fn find_database(&self, name: &str) -> Result<Option<ManagedDatabase>>;

    /// Replaces the whole allow-list of a database.
    async fn replace_allow_list(&self, id: &str, allow: &[Ipv4Net]) -> Result<()>;

    /// Creates a cluster. It is not ready at once: poll [`ManagedDatabases::find_database`] until
    /// [`ManagedDatabase::is_ready`]. A name already taken is a [`crate::CloudError::Conflict`].
    async fn create_database(&self, request: &DatabaseRequest) -> Result<ManagedDatabase>;

    /// Deletes a cluster by its id (as [`ManagedDatabase::id`] gives it). A cluster already gone is
    /// [`crate::CloudError::NotFound`].
    async fn delete_database(&self, id: &str) -> Result<()>;
}

/// DNS zones and records.
#[async_trait]
pub trait Dns: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> ProviderKind;

    /// The zone for `name` (e.g. `codetesters.uk`), if the account has it.
    async fn find_zone(&self, name: &str) -> Result<Option<Zone>>;

    /// The records of a zone, optionally only those of one name and type, across all pages.
    async fn list_records(
        &self,
        zone: &Zone,
        name: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<DnsRecord>>;

    /// Creates a record.
    async fn create_record(&self, zone: &Zone, record: &NewDnsRecord) -> Result<DnsRecord>;

    /// Updates a record in place (matched by id).
    async fn update_record(&self, zone: &Zone, record: &DnsRecord) -> Result<DnsRecord>;

    /// Deletes a record; deleting one that is already gone succeeds.
    async fn delete_record(&self, zone: &Zone, id: &str) -> Result<()>;

    /// Applies several changes, deletes → updates → creates. Providers with a batch endpoint override this
    /// to make few calls; the default makes one call per change.
    ///
    /// A change the provider certainly refuses ([`crate::CloudError::is_refusal`]) is reported in the
    /// [`BatchReport`] and the others are still applied. Any other failure (a rate limit after the
    /// adapter's retries, a 5xx, a lost connection) stops the batch with that error: the change may or may
    /// not have been made, so the caller lists the records again before planning anew.
    async fn apply_batch(&self, zone: &Zone, batch: &DnsBatch) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        for change in batch.changes() {
            report.calls += 1;
            let result = match &change {
                DnsChange::Delete(id) => self.delete_record(zone, id).await,
                DnsChange::Update(record) => self.update_record(zone, record).await.map(drop),
                DnsChange::Create(record) => self.create_record(zone, record).await.map(drop),
            };
            match result {
                Ok(()) => {}
                Err(e) if e.is_refusal() => report.refused.push((change, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
