//! Cluster mode: the tower layer that answers a call in flight UNAVAILABLE (`PARTITION_NOT_SERVED`, with a retry
//! hint) the moment this node is deposed, instead of leaving it waiting on a partition log that will never confirm it.
//! A call whose change was appended may or may not be stored then: the client retries with the same request id, and
//! the new owner answers it from the log. Single-node servers pass calls straight through.

use super::status::partition_not_served_status;
use crate::engine::partition::ServingGate;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Races every call against the node's deposition, in cluster mode.
#[derive(Clone, Default)]
pub struct PartitionGateLayer {
    gate: Option<Arc<ServingGate>>,
}

impl PartitionGateLayer {
    /// The layer for `gate`; `None` (single node) passes every call through.
    #[must_use]
    pub fn new(gate: Option<Arc<ServingGate>>) -> PartitionGateLayer {
        PartitionGateLayer { gate }
    }
}

impl<S> Layer<S> for PartitionGateLayer {
    type Service = PartitionGate<S>;

    fn layer(&self, inner: S) -> PartitionGate<S> {
        PartitionGate { inner, gate: self.gate.clone() }
    }
}

/// The service [`PartitionGateLayer`] wraps around the router.
#[derive(Clone)]
pub struct PartitionGate<S> {
    inner: S,
    gate: Option<Arc<ServingGate>>,
}

impl<S, B> Service<http::Request<B>> for PartitionGate<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The router is always ready; take the ready clone and leave a fresh one behind (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(gate) = &self.gate else { return Box::pin(async move { inner.call(request).await }) };
        let deposed = gate.wait_deposed();
        Box::pin(async move {
            tokio::select! {
                response = inner.call(request) => response,
                () = deposed => Ok(partition_not_served_status().into_http()),
            }
        })
    }
}
