//! Mutations and the operations they return.

use reqwest::Method;
use tokio::time::{Instant, sleep};

use flotilla_cloud::{CloudError, Result};

use crate::wire::{Operation, OperationState};
use crate::{Exoscale, P, errors};

impl Exoscale {
    /// Sends a mutation and waits for its operation to succeed.
    pub(crate) async fn mutate(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Operation> {
        let op: Operation = self.api.request(method, path, &[], body, &[]).await?.json(P)?;
        self.wait(op).await
    }

    /// [`Exoscale::mutate`], returning the id of the resource the operation acted on (a create's new id).
    pub(crate) async fn mutate_for_id(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<String> {
        let op = self.mutate(method, path, Some(body)).await?;
        resource_id(op)
    }

    /// `DELETE path` and its operation; what is already gone (404, or an operation failing as not found)
    /// counts as deleted.
    pub(crate) async fn delete_gone_ok(&self, path: &str) -> Result<()> {
        let deleted = async {
            let op: Operation = self
                .api
                .request(Method::DELETE, path, &[], None, &[])
                .await?
                .json(P)?;
            self.wait(op).await
        };
        match deleted.await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Polls `op` until it settles: success is returned, failure and timeout become errors, and an
    /// operation still pending when [`crate::OperationPolling::timeout`] has passed is a retryable error.
    pub(crate) async fn wait(&self, mut op: Operation) -> Result<Operation> {
        let deadline = Instant::now() + self.polling.timeout;
        let mut delay = self.polling.first_delay;
        loop {
            match outcome(&op) {
                Some(Ok(())) => return Ok(op),
                Some(Err(e)) => return Err(e),
                None => {}
            }
            if Instant::now() + delay > deadline {
                return Err(CloudError::Retryable {
                    provider: P,
                    message: format!(
                        "operation {} still pending after {:?}",
                        op.id, self.polling.timeout
                    ),
                });
            }
            sleep(delay).await;
            delay = (delay * 3 / 2).min(self.polling.max_delay);
            let path = format!("operation/{}", op.id);
            op = self.api.get(&path, &[]).await?;
        }
    }
}

/// The id of the resource a successful operation acted on (a create's new id).
pub(crate) fn resource_id(op: Operation) -> Result<String> {
    op.reference
        .and_then(|r| r.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| CloudError::protocol(P, format!("operation {} names no resource", op.id)))
}

/// How `op` ended: `None` while it is pending, the error a failure or a timeout stands for.
pub(crate) fn outcome(op: &Operation) -> Option<Result<()>> {
    match op.state {
        OperationState::Success => Some(Ok(())),
        OperationState::Failure => Some(Err(errors::operation_failed(op))),
        OperationState::Timeout => Some(Err(CloudError::Retryable {
            provider: P,
            message: flotilla_redact::redact(&format!(
                "operation {} timed out at Exoscale{}",
                op.id,
                op.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )),
        })),
        OperationState::Pending => None,
    }
}
