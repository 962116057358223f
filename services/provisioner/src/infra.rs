//! A region's shared infrastructure: its VPC, and in the primary region the managed database (DBaaS); on
//! a destroy, also the provider firewalls the firewall service made for the region.
//!
//! The VPC and the DBaaS are found by name before anything is created, so an apply redelivered or resumed
//! after a crash never makes a second one. Whether Flotilla created them is recorded, so that a region's
//! destroy removes what it created and leaves what it only adopted. The firewalls are removed by name when
//! nothing is applied to them any more ([`remove_firewalls`]).

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_cloud::{CloudError, DatabaseRequest, ManagedDatabase, VpcRequest};
use flotilla_spec::{Dbaas, DbaasMode, Region, Role};

use crate::apply::{ApplyError, Placement};
use crate::clouds::RegionCloud;
use crate::store::{DbaasRow, MachineStore};

/// Finds the region's VPC by name, or creates it; records it. Returns where machines go.
pub async fn ensure_vpc(
    cloud: &RegionCloud,
    store: &MachineStore,
    deployment: &str,
    region: &Region,
) -> Result<Placement, ApplyError> {
    let record = store
        .regions(Some(deployment), Some(&region.name))
        .await?
        .into_iter()
        .next();
    let (vpc, created) = match cloud
        .network
        .find_vpc(&region.provider_region, &region.vpc.name)
        .await?
    {
        // Ours if we created it: recorded as ours with this id, or marked as being created by us (a crash
        // came between the create call and the record).
        Some(vpc) => {
            let ours = record
                .as_ref()
                .is_some_and(|r| r.vpc_created && r.vpc_id.as_deref().is_none_or(|id| id == vpc.id));
            (vpc, ours)
        }
        None => {
            store.mark_vpc_pending(deployment, &region.name).await?;
            tracing::info!(region = %region.name, vpc = %region.vpc.name, "creating the region's VPC");
            let request = VpcRequest {
                name: region.vpc.name.clone(),
                region: region.provider_region.clone(),
                cidr: region.vpc.cidr,
            };
            match cloud.network.create_vpc(&request).await {
                Ok(vpc) => (vpc, true),
                // Created meanwhile — by another deployment sharing the name (the region's own attempts
                // are serialised by its lease): found again and shared, never ours to delete.
                Err(CloudError::Conflict { .. }) => (
                    cloud
                        .network
                        .find_vpc(&region.provider_region, &region.vpc.name)
                        .await?
                        .ok_or_else(|| CloudError::Conflict {
                            provider: cloud.provider,
                            message: format!(
                                "VPC {} is refused as taken but cannot be found",
                                region.vpc.name
                            ),
                        })?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    store
        .set_region_vpc(
            deployment,
            &region.name,
            &vpc.id,
            vpc.subnet_id.as_deref(),
            created,
        )
        .await?;
    Ok(Placement {
        vpc_id: Some(vpc.id),
        subnet_id: vpc.subnet_id,
    })
}

/// How long to wait for a managed database, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct DbaasWait {
    /// Give up after this long (the apply is retried).
    pub timeout: Duration,
    /// Look this often.
    pub poll: Duration,
}

/// In the primary region, creates or adopts the managed database and waits until it is ready. Returns
/// `None` when the region has no DBaaS of its own (a secondary, or a database machine). The row returned
/// is ready but recorded as `creating`: the caller tells the fleet, then records it ready with
/// [`MachineStore::save_dbaas`] — secondary regions wait for that record, so nobody builds on a DBaaS the
/// fleet has not heard of.
pub async fn ensure_dbaas(
    cloud: &RegionCloud,
    store: &MachineStore,
    deployment: &str,
    region: &Region,
    placement: &Placement,
    wait: DbaasWait,
) -> Result<Option<DbaasRow>, ApplyError> {
    let Some(Dbaas::Primary {
        mode,
        version,
        provider_region,
        size,
        nodes,
        label,
        vpc_id,
        subnet_id,
        ..
    }) = &region.dbaas
    else {
        return Ok(None);
    };
    let mut row = DbaasRow {
        deployment: deployment.to_owned(),
        region: region.name.clone(),
        provider: cloud.provider.as_str().to_owned(),
        id: None,
        name: label.clone(),
        engine: version.clone(),
        state: "create-pending".into(),
        host: None,
        port: None,
        created: *mode == DbaasMode::Create,
    };
    let recorded = store.dbaas(deployment, &region.name).await?;
    let found = cloud.databases.find_database(label).await?;
    let db = match (found, recorded, mode) {
        // Known and there: ours if we recorded creating this one (a label changed in the spec names another
        // cluster, which is adopted).
        (Some(db), Some(rec), _) => {
            row.created = rec.created && rec.name == *label;
            db
        }
        // There but not recorded: it was there before us (adopted), whatever the mode.
        (Some(db), None, _) => {
            row.created = false;
            store.record_dbaas_pending(&row).await?;
            db
        }
        (None, _, DbaasMode::Adopt) => {
            return Err(ApplyError::Dbaas(format!(
                "the DBaaS {label:?} to adopt does not exist in region {}",
                region.name
            )));
        }
        // Recorded as ready, now gone: deleted behind our back. Create it again (ours now).
        (None, recorded, DbaasMode::Create) => {
            if recorded.is_none() {
                store.record_dbaas_pending(&row).await?;
            } else {
                tracing::warn!(region = %region.name, dbaas = %label, "recorded DBaaS not found; creating it");
            }
            row.created = true;
            let request = DatabaseRequest {
                name: label.clone(),
                engine: version.clone(),
                region: provider_region.clone(),
                size: size.clone(),
                nodes: *nodes,
                vpc_id: vpc_id.clone().or_else(|| placement.vpc_id.clone()),
                subnet_id: subnet_id.clone().or_else(|| placement.subnet_id.clone()),
                // The primary region reaches it over its VPC; the firewall service adds the other
                // regions' machines as they come.
                allow_list: vec![region.vpc.cidr],
            };
            tracing::info!(region = %region.name, dbaas = %label, "creating the managed database");
            match cloud.databases.create_database(&request).await {
                Ok(db) => db,
                Err(CloudError::Conflict { .. }) => {
                    cloud.databases.find_database(label).await?.ok_or_else(|| {
                        ApplyError::Dbaas(format!("DBaaS {label:?} refused as taken but not found"))
                    })?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    fill(&mut row, &db, "creating");
    store.save_dbaas(&row).await?;
    let ready = wait_ready(cloud, label, db, wait).await?;
    fill(&mut row, &ready, "ready");
    Ok(Some(row))
}

fn fill(row: &mut DbaasRow, db: &ManagedDatabase, state: &str) {
    row.id = Some(db.id.clone());
    row.host = db.host.clone().or(row.host.take());
    row.port = db.port.or(row.port);
    // Never "ready" here before the caller has told the fleet (see `ensure_dbaas`).
    row.state = state.to_owned();
}

async fn wait_ready(
    cloud: &RegionCloud,
    label: &str,
    mut db: ManagedDatabase,
    wait: DbaasWait,
) -> Result<ManagedDatabase, ApplyError> {
    let deadline = tokio::time::Instant::now() + wait.timeout;
    while !db.is_ready() {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::DbaasNotReady(format!(
                "DBaaS {label:?} is still {} after {:?}",
                db.status, wait.timeout
            )));
        }
        tokio::time::sleep(wait.poll).await;
        db = cloud.databases.find_database(label).await?.ok_or_else(|| {
            ApplyError::Dbaas(format!("DBaaS {label:?} vanished while it was being created"))
        })?;
    }
    Ok(db)
}

/// Removes the region's managed database if Flotilla created it, waiting (up to `wait.timeout`) until the
/// provider no longer lists it — it may hold the region's VPC until then; forgets it either way. Returns
/// whether one was deleted.
pub async fn remove_dbaas(
    cloud: &RegionCloud,
    store: &MachineStore,
    deployment: &str,
    region: &str,
    wait: DbaasWait,
) -> Result<bool, ApplyError> {
    let Some(row) = store.dbaas(deployment, region).await? else {
        return Ok(false);
    };
    let mut deleted = false;
    if row.created {
        let id = match &row.id {
            Some(id) => Some(id.clone()),
            None => cloud.databases.find_database(&row.name).await?.map(|d| d.id),
        };
        if let Some(id) = id {
            match cloud.databases.delete_database(&id).await {
                Ok(()) => deleted = true,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            let deadline = tokio::time::Instant::now() + wait.timeout;
            while cloud.databases.find_database(&row.name).await?.is_some() {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(dbaas = %row.name, "the DBaaS is still listed after its deletion");
                    break;
                }
                tokio::time::sleep(wait.poll).await;
            }
        }
    }
    store.forget_dbaas(deployment, region).await?;
    Ok(deleted)
}

/// Removes the region's provider firewalls once its machines are gone, where the region uses them
/// (`ACTIVE_FIREWALLS` 2 or 3): each `adt-<role>-<BUILD_IDENTIFIER>` ([`Region::firewall_name`]) that
/// applies to no machine any more. The firewall service made them for the region's machines (or adopted the
/// original toolkit's, whose machines are the region's too), and nothing applies them once the region is
/// withdrawn; they are found by name, as the firewall service finds them.
///
/// - One still applied to a machine (the provider letting go of a deleted one, or a machine that is not
///   this region's: another deployment with the same build identifier), or one the provider refuses to
///   delete as in use (Exoscale), is read again for `patience`, then left in place and said so.
/// - Names need not be unique (DigitalOcean, Vultr): the names are read again until none is left.
///
/// Returns why a firewall was left, if one was.
pub async fn remove_firewalls(
    cloud: &RegionCloud,
    region: &Region,
    patience: Duration,
    poll: Duration,
) -> Result<Option<String>, ApplyError> {
    if !region.firewall.native() {
        return Ok(None);
    }
    let names: Vec<String> = Role::ALL.iter().map(|r| region.firewall_name(*r)).collect();
    let deadline = tokio::time::Instant::now() + patience;
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    loop {
        let found = cloud.network.find_firewalls(&names).await?;
        let mut held = None;
        for firewall in found.iter().flatten() {
            let (name, id) = (&firewall.name, &firewall.id);
            if deleted.contains(id) {
                held = Some(format!("firewall {name} ({id}) still listed after its deletion"));
                continue;
            }
            if !firewall.machine_ids.is_empty() {
                held = Some(format!(
                    "firewall {name} ({id}) left in place: still applied to {}",
                    firewall.machine_ids.join(", ")
                ));
                continue;
            }
            match cloud.network.delete_firewall(id).await {
                Ok(()) => {
                    deleted.insert(id.clone());
                }
                Err(e) if e.is_not_found() => {
                    deleted.insert(id.clone());
                }
                Err(CloudError::Conflict { message, .. }) => {
                    held = Some(format!(
                        "firewall {name} ({id}) left in place: still in use ({message})"
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if found.iter().all(Option::is_none) {
            return Ok(None);
        }
        // Held: wait and read again. Otherwise everything found was deleted: read again at once, for another
        // of the same name.
        if let Some(why) = held {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(region = %region.name, %why, "a firewall of the destroyed region is left in place");
                return Ok(Some(why));
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// Removes the region's VPC if Flotilla created it (after its machines and DBaaS are gone). A VPC still in
/// use by something that is not ours is left, and said so; the provider may take a moment to let go of
/// deleted machines, so an in-use refusal is retried for `patience`. Returns why the VPC was left, if it
/// was.
pub async fn remove_vpc(
    cloud: &RegionCloud,
    record: &crate::store::RegionRecord,
    patience: Duration,
    poll: Duration,
) -> Result<Option<String>, ApplyError> {
    let (Some(id), true) = (&record.vpc_id, record.vpc_created) else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match cloud.network.delete_vpc(id).await {
            Ok(()) => return Ok(None),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(CloudError::Conflict { message, .. }) => {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(vpc = %id, %message, "the region's VPC is still in use; left in place");
                    return Ok(Some(format!(
                        "VPC {} ({id}) left in place: still in use ({message})",
                        record.spec.vpc.name
                    )));
                }
                tokio::time::sleep(poll).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
