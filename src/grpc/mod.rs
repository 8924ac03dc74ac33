//! The thin gRPC layer: tonic services for `antrean.v1`, the standard health and reflection services, and the tower
//! layer that sheds overload and records per-RPC metrics.
//!
//! Architecture invariant: handlers convert and delegate; they hold no business rules, and every refusal becomes a
//! `Status` in [`status`] only.

pub mod admin;
pub mod amendment;
pub mod booking;
pub mod call_metrics;
pub mod check;
pub mod coalesced_writes;
pub mod codec;
pub mod convert;
pub mod draw;
pub mod hold;
pub mod overload;
pub mod partition_gate;
pub mod refusal_cache;
pub mod routing;
pub mod status;
pub mod waiting_room;

use crate::engine::Engine;
use crate::engine::partition::ServingGate;
use std::sync::{Arc, OnceLock};
use tonic::Status;

/// The engine, once recovery has finished. Until then every call is UNAVAILABLE (health says NOT_SERVING). In cluster
/// mode also the partition's [`ServingGate`]: while it is shut every call is UNAVAILABLE with a retry hint.
#[derive(Clone, Default)]
pub struct EngineHandle {
    engine: Arc<OnceLock<Arc<Engine>>>,
    gate: Arc<OnceLock<Arc<ServingGate>>>,
}

impl EngineHandle {
    /// The engine, or UNAVAILABLE while recovering or while the node does not serve its partition.
    pub fn get(&self) -> Result<&Arc<Engine>, Status> {
        let Some(engine) = self.engine.get() else {
            // In cluster mode a node without an engine stands by (or is taking over): say so, with a retry hint.
            if self.gate.get().is_some() {
                return Err(status::partition_not_served_status());
            }
            return Err(Status::unavailable("recovering the write-ahead log; retry shortly"));
        };
        if let Some(gate) = self.gate.get()
            && !gate.may_serve()
        {
            return Err(status::partition_not_served_status());
        }
        Ok(engine)
    }

    /// Whether the engine is set (recovery or the take-over finished).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.engine.get().is_some()
    }

    /// Makes the engine available to every handler.
    pub fn set(&self, engine: Arc<Engine>) {
        if self.engine.set(engine).is_err() {
            panic!("the engine is set once, after recovery");
        }
    }

    /// Cluster mode: every call first asks `gate` whether this node serves its partition. Set before the engine.
    pub fn set_gate(&self, gate: Arc<ServingGate>) {
        if self.gate.set(gate).is_err() {
            panic!("the serving gate is set once");
        }
    }
}
