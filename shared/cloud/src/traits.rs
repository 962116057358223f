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

    /// Creates a VPC; a [`CloudError::Conflict`] when one of that name is in the region already (another
    /// deployment's, or created meanwhile).
    async fn create_vpc(&self, request: &VpcRequest) -> Result<Vpc>;

    /// Deletes a VPC by its id (as [`Vpc::id`] gives it). A VPC already gone is
    /// [`crate::CloudError::NotFound`]; one still in use (machines or a database attached) is
    /// [`crate::CloudError::Conflict`] with the provider's reason.
    async fn delete_vpc(&self, id: &str) -> Result<()>;

    /// The firewall named `name`, if it exists.
    async fn find_firewall(&self, name: &str) -> Result<Option<Firewall>>;

    /// The firewalls named `names`, in the same order: [`Network::find_firewall`] for each, unless the
    /// provider reads them together (one listing for all, not one per name).
    async fn find_firewalls(&self, names: &[String]) -> Result<Vec<Option<Firewall>>> {
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            found.push(self.find_firewall(name).await?);
        }
        Ok(found)
    }

    /// Creates a firewall with `rules`, marked as ours.
    async fn create_firewall(&self, name: &str, rules: &[FirewallRule], marks: &Marks) -> Result<Firewall>;

    /// Replaces all inbound rules of a firewall.
    async fn replace_firewall_rules(&self, firewall_id: &str, rules: &[FirewallRule]) -> Result<()>;

    /// Applies a firewall to a machine; applying it twice succeeds.
    async fn attach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()>;

    /// Removes a firewall from a machine; removing it when it is not applied succeeds.
    async fn detach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()>;

    /// Deletes a firewall by its id (as [`Firewall::id`] gives it); one already gone succeeds. Where the
    /// provider refuses to delete a firewall still applied to machines (Exoscale), that refusal is a
    /// [`crate::CloudError::Conflict`] with the provider's reason.
    async fn delete_firewall(&self, firewall_id: &str) -> Result<()>;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;
    use crate::CloudError;

    /// A zone in memory that refuses the address `refused` as invalid and answers 429 for `limited`.
    struct Zone1 {
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Dns for Zone1 {
        fn provider(&self) -> ProviderKind {
            ProviderKind::Linode
        }
        async fn find_zone(&self, _: &str) -> Result<Option<Zone>> {
            Ok(None)
        }
        async fn list_records(&self, _: &Zone, _: Option<&str>, _: Option<&str>) -> Result<Vec<DnsRecord>> {
            Ok(Vec::new())
        }
        async fn create_record(&self, _: &Zone, r: &NewDnsRecord) -> Result<DnsRecord> {
            self.calls.lock().unwrap().push(format!("create {}", r.content));
            match r.content.as_str() {
                "refused" => Err(CloudError::Invalid {
                    provider: ProviderKind::Linode,
                    field: Some("target".into()),
                    message: "not an address".into(),
                }),
                "limited" => Err(CloudError::RateLimited {
                    provider: ProviderKind::Linode,
                    retry_after: None,
                }),
                _ => Ok(DnsRecord {
                    id: r.content.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    content: r.content.clone(),
                    ttl: r.ttl,
                    proxied: None,
                    comment: None,
                }),
            }
        }
        async fn update_record(&self, _: &Zone, r: &DnsRecord) -> Result<DnsRecord> {
            Ok(r.clone())
        }
        async fn delete_record(&self, _: &Zone, id: &str) -> Result<()> {
            self.calls.lock().unwrap().push(format!("delete {id}"));
            Ok(())
        }
    }

    fn create(content: &str) -> NewDnsRecord {
        NewDnsRecord {
            kind: "A".into(),
            name: "www.example.com".into(),
            content: content.into(),
            ttl: 60,
            proxied: None,
            comment: None,
        }
    }

    #[tokio::test]
    async fn the_default_batch_reports_a_refused_change_applies_the_others_and_stops_at_a_rate_limit() {
        let zone = Zone {
            id: "1".into(),
            name: "example.com".into(),
        };
        let dns = Zone1 {
            calls: Mutex::new(Vec::new()),
        };
        let batch = DnsBatch {
            deletes: vec!["old".into()],
            updates: Vec::new(),
            creates: vec![create("a"), create("refused"), create("b")],
        };
        let report = dns.apply_batch(&zone, &batch).await.unwrap();
        assert_eq!(report.calls, 4);
        assert_eq!(report.refused.len(), 1);
        assert!(matches!(&report.refused[0].0, DnsChange::Create(r) if r.content == "refused"));
        assert_eq!(
            *dns.calls.lock().unwrap(),
            ["delete old", "create a", "create refused", "create b"]
        );

        // A rate limit may hide nothing certain: the batch stops and says so.
        dns.calls.lock().unwrap().clear();
        let batch = DnsBatch {
            creates: vec![create("limited"), create("c")],
            ..DnsBatch::default()
        };
        let err = dns.apply_batch(&zone, &batch).await.unwrap_err();
        assert!(matches!(err, CloudError::RateLimited { .. }), "{err}");
        assert_eq!(*dns.calls.lock().unwrap(), ["create limited"]);
    }
}
