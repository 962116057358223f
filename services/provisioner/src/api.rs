//! The provisioner's request/reply API: `flotilla.api.provisioner.machines` (the fleet as recorded) and
//! `flotilla.api.provisioner.plan` (what an apply would change). Both read the provisioner's own database
//! only: answering never calls a cloud.

use flotilla_proto::{
    DbaasView, Fleet, ListMachines, MachineView, PlanStepView, PlanView, RegionView, ShowPlan,
};
use flotilla_runtime::ApiFailure;
use flotilla_spec::{Dbaas, DbaasMode};
use uuid::Uuid;

use crate::handler::Provisioner;
use crate::plan::{DestroyReason, Step, plan};
use crate::store::{MachineRow, state_name};

impl Provisioner {
    /// `flotilla.api.provisioner.machines`: the recorded regions with their machines and DBaaS.
    pub async fn list(&self, req: ListMachines) -> Result<Fleet, ApiFailure> {
        let machines = self.machines().await.map_err(internal)?;
        let records = machines
            .regions(req.deployment.as_deref(), req.region.as_deref())
            .await
            .map_err(internal)?;
        let rows = machines
            .machines(req.deployment.as_deref(), req.region.as_deref())
            .await
            .map_err(internal)?;
        let mut regions = Vec::new();
        for record in records {
            let dbaas = machines
                .dbaas(&record.deployment, &record.spec.name)
                .await
                .map_err(internal)?
                .map(|d| DbaasView {
                    id: d.id.unwrap_or_default(),
                    name: d.name,
                    engine: d.engine,
                    status: d.state,
                    host: d.host,
                    port: d.port,
                    created: d.created,
                });
            regions.push(RegionView {
                machines: rows
                    .iter()
                    .filter(|r| r.deployment == record.deployment && r.region == record.spec.name)
                    .map(|r| MachineView {
                        resource_id: r.resource_id.clone(),
                        role: r.role.as_str().to_owned(),
                        name: r.name.clone(),
                        size: r.size.clone(),
                        state: state_name(r.state).to_owned(),
                        provider_id: r.provider_id.clone(),
                        public_ipv4: r.public_ipv4.clone(),
                        private_ipv4: r.private_ipv4.clone(),
                    })
                    .collect(),
                provider: record.spec.provider.as_str().to_owned(),
                primary: record.spec.primary,
                region: record.spec.name.clone(),
                deployment: record.deployment,
                status: record.status,
                detail: record.detail,
                vpc_id: record.vpc_id,
                dbaas,
            });
        }
        Ok(Fleet { regions })
    }

    /// `flotilla.api.provisioner.plan`: what an apply of a region would change, without changing it.
    pub async fn show_plan(&self, req: ShowPlan) -> Result<PlanView, ApiFailure> {
        let region = req.deployment.region(&req.region).ok_or_else(|| {
            ApiFailure::bad_request(format!(
                "deployment {} has no region {:?}",
                req.deployment.name, req.region
            ))
        })?;
        let machines = self.machines().await.map_err(internal)?;
        let name = &req.deployment.name;
        let record = machines
            .regions(Some(name), Some(&region.name))
            .await
            .map_err(internal)?
            .into_iter()
            .next();
        let known: Vec<_> = machines
            .region(name, &region.name)
            .await
            .map_err(internal)?
            .iter()
            .map(MachineRow::known)
            .collect();
        let dbaas = match &region.dbaas {
            Some(Dbaas::Primary { mode, .. }) => {
                if machines
                    .dbaas(name, &region.name)
                    .await
                    .map_err(internal)?
                    .is_some()
                {
                    "exists"
                } else if *mode == DbaasMode::Adopt {
                    "adopt"
                } else {
                    "create"
                }
            }
            _ => "none",
        };
        // As an apply would: the webserver count the autoscaler set is kept (within the spec's bounds).
        let (live, _) = crate::handler::live_region(region, record.as_ref());
        let steps = plan(&live, &known, Uuid::nil())
            .into_iter()
            .map(|step| match step {
                Step::Create {
                    role,
                    size,
                    resource_id,
                    ..
                } => PlanStepView {
                    action: "create".into(),
                    role: role.as_str().into(),
                    size,
                    resource_id,
                    reason: "missing".into(),
                },
                Step::Destroy { resource_id, reason } => {
                    let k = known.iter().find(|k| k.resource_id == resource_id);
                    PlanStepView {
                        action: "destroy".into(),
                        role: k.map(|k| k.role.as_str().to_owned()).unwrap_or_default(),
                        size: k.map(|k| k.size.clone()).unwrap_or_default(),
                        resource_id,
                        reason: match reason {
                            DestroyReason::Surplus => "surplus",
                            DestroyReason::WrongSize => "wrong-size",
                            DestroyReason::Failed => "failed",
                        }
                        .into(),
                    }
                }
            })
            .collect();
        Ok(PlanView {
            deployment: name.clone(),
            region: region.name.clone(),
            vpc: if record.and_then(|r| r.vpc_id).is_some() {
                "exists"
            } else {
                "create"
            }
            .into(),
            dbaas: dbaas.into(),
            steps,
        })
    }
}

fn internal(e: impl std::fmt::Display) -> ApiFailure {
    ApiFailure::internal(e)
}
