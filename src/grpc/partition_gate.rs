//! Cluster mode: the tower layer that answers a call in flight UNAVAILABLE (`PARTITION_NOT_SERVED`, with a retry
//! hint) the moment this node is deposed, instead of leaving it waiting on a partition log that will never confirm it.
//! A call whose change was appended may or may not be stored then: the client retries with the same request id, and
//! the new owner answers it from the log. Single-node servers do not have this layer (`server.rs` leaves it out).

use super::status::partition_not_served_status;
use crate::call_layer::{AroundCall, CallFuture, CallLayer, Next};
use crate::engine::partition::ServingGate;
use std::sync::Arc;
use tonic::body::Body;

/// Races every call against the node's deposition, in cluster mode.
#[derive(Clone)]
pub struct PartitionGate {
    gate: Arc<ServingGate>,
}

impl PartitionGate {
    /// The tower layer for `gate`.
    #[must_use]
    pub fn layer(gate: Arc<ServingGate>) -> CallLayer<PartitionGate> {
        CallLayer(PartitionGate { gate })
    }
}

impl AroundCall for PartitionGate {
    fn call<S: Next>(&self, request: http::Request<Body>, mut next: S) -> CallFuture<S::Error> {
        let deposed = self.gate.wait_deposed();
        Box::pin(async move {
            tokio::select! {
                response = next.call(request) => response,
                () = deposed => Ok(partition_not_served_status().into_http()),
            }
        })
    }
}
