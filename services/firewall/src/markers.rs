//! The original toolkit's allow-list markers, kept in step both ways: its secondary-region machines write
//! their public address as an empty object `dbaas_ips/<ip>` into the shared bucket `<site>-multi-region`,
//! and its cron job allows every marker. Here its (empty) markers are allowed until they are `expiry` old
//! ([`crate::plan::allow_list`]); a marker is written for each machine we allow — with a body
//! ([`OURS`]), so that we never take our own mirror for an announcement — and removed once its address is
//! no longer allowed: a deployment can move from the scripts to Flotilla and back, and no address stays
//! allowed forever.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use flotilla_clouds::Clouds;
use flotilla_spec::{Deployment, Region};

use crate::plan::{AllowList, Marker};

/// The key prefix of the markers.
pub const PREFIX: &str = "dbaas_ips/";

/// The body of the markers the service writes (the original toolkit's are empty).
pub const OURS: &[u8] = b"flotilla\n";

/// Reads and writes the markers of each deployment's shared bucket (on the datastores of the region
/// hosting its database).
pub struct Markers {
    clouds: Clouds,
    /// The last markers read per deployment: used when a read fails, so that a datastore outage never
    /// takes away the addresses the old toolkit's machines announced.
    last: std::sync::Mutex<BTreeMap<String, Vec<Marker>>>,
}

impl Markers {
    /// Markers on the datastores `clouds` gives.
    pub fn new(clouds: Clouds) -> Self {
        Self {
            clouds,
            last: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The markers of `deployment` (in `home`'s shared bucket). A bucket that does not exist holds none;
    /// a read that fails gives the last markers read, or an error when none were read yet.
    pub async fn read(&self, deployment: &Deployment, home: &Region) -> Result<Vec<Marker>, String> {
        if home.datastores.is_empty() {
            return Ok(Vec::new());
        }
        let bucket = deployment.bucket("multi-region");
        let read = async {
            let stores = self
                .clouds
                .datastores(&deployment.name, home)
                .map_err(|e| e.to_string())?;
            match stores.list(&bucket, PREFIX).await {
                Ok(objects) => Ok(objects
                    .iter()
                    .filter_map(|o| {
                        let ip: Ipv4Addr = o.key.strip_prefix(PREFIX)?.parse().ok()?;
                        let written = o
                            .last_modified
                            .map(chrono::DateTime::<chrono::Utc>::from)
                            .unwrap_or_else(chrono::Utc::now);
                        Some(Marker {
                            ip,
                            written,
                            ours: o.size > 0,
                        })
                    })
                    .collect()),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(e.to_string()),
            }
        };
        match read.await {
            Ok(markers) => {
                if let Ok(mut last) = self.last.lock() {
                    last.insert(deployment.name.clone(), Vec::clone(&markers));
                }
                Ok(markers)
            }
            Err(e) => {
                let cached = self
                    .last
                    .lock()
                    .ok()
                    .and_then(|l| l.get(&deployment.name).cloned());
                match cached {
                    Some(markers) => {
                        tracing::warn!(deployment = %deployment.name, error = %e,
                            "firewall: the old toolkit's markers were not read; using the last ones read");
                        Ok(markers)
                    }
                    None => Err(format!("the markers in bucket {bucket} were not read: {e}")),
                }
            }
        }
    }

    /// Brings the markers in step with `list` (given the `markers` read this run): one for each machine
    /// allowed, none for an address no longer allowed. Failures are logged and tried again next run.
    pub async fn write(&self, deployment: &Deployment, home: &Region, list: &AllowList, markers: &[Marker]) {
        if home.datastores.is_empty() {
            return;
        }
        let have: BTreeSet<Ipv4Addr> = markers.iter().map(|m| m.ip).collect();
        let machines: BTreeSet<Ipv4Addr> = list
            .entries
            .iter()
            .filter(|e| e.resource_id.is_some() && e.net.prefix_len() == 32)
            .map(|e| e.net.addr())
            .collect();
        let allowed: BTreeSet<Ipv4Addr> = list
            .entries
            .iter()
            .filter(|e| e.net.prefix_len() == 32)
            .map(|e| e.net.addr())
            .collect();
        let put: Vec<&Ipv4Addr> = machines.difference(&have).collect();
        let delete: Vec<&Ipv4Addr> = have.difference(&allowed).collect();
        if put.is_empty() && delete.is_empty() {
            return;
        }
        let bucket = deployment.bucket("multi-region");
        let stores = match self.clouds.datastores(&deployment.name, home) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(deployment = %deployment.name, error = %e, "firewall: no datastore for the markers");
                return;
            }
        };
        if !put.is_empty() {
            let report = stores.ensure_bucket_all(&bucket).await;
            if !report.failed.is_empty() {
                tracing::warn!(deployment = %deployment.name, bucket = %bucket, failed = report.failed.len(),
                    "firewall: the markers' bucket is missing on some datastores");
            }
        }
        for ip in put {
            let report = stores
                .put_all(&bucket, &format!("{PREFIX}{ip}"), bytes::Bytes::from_static(OURS))
                .await;
            for (index, e) in &report.failed {
                tracing::warn!(deployment = %deployment.name, %ip, endpoint = index, error = %e,
                    "firewall: a marker was not written; next run");
            }
        }
        for ip in delete {
            let report = stores.delete_all(&bucket, &format!("{PREFIX}{ip}")).await;
            for (index, e) in &report.failed {
                tracing::warn!(deployment = %deployment.name, %ip, endpoint = index, error = %e,
                    "firewall: a marker was not removed; next run");
            }
        }
    }
}
