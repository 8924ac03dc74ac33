//! The thin gRPC layer: tonic services for `antrean.v1`, the standard health and reflection services, and the tower
//! layer that sheds overload and records per-RPC metrics.
//!
//! Architecture invariant: handlers convert and delegate; they hold no business rules, and every refusal becomes a
//! `Status` in [`status`] only.

pub mod admin;
pub mod amendment;
pub mod booking;
pub mod check;
pub mod codec;
pub mod convert;
pub mod draw;
pub mod hold;
pub mod overload;
pub mod status;
pub mod waiting_room;

use crate::engine::Engine;
use std::sync::{Arc, OnceLock};
use tonic::Status;

/// The engine, once recovery has finished. Until then every call is UNAVAILABLE (health says NOT_SERVING).
#[derive(Clone, Default)]
pub struct EngineHandle(Arc<OnceLock<Arc<Engine>>>);

impl EngineHandle {
    /// The engine, or UNAVAILABLE while recovering.
    pub fn get(&self) -> Result<&Arc<Engine>, Status> {
        self.0.get().ok_or_else(|| Status::unavailable("recovering the write-ahead log; retry shortly"))
    }

    /// Makes the engine available to every handler.
    pub fn set(&self, engine: Arc<Engine>) {
        if self.0.set(engine).is_err() {
            panic!("the engine is set once, after recovery");
        }
    }
}
