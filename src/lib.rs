//! antrean hands out passport-appointment slots from immigration-office quotas, fairly and without losing a booking,
//! over gRPC.
//!
//! Layout (dependencies point down the list, never up):
//! - `main.rs`: the binary (flags, configuration, tracing, metrics exporter, signals).
//! - [`server`]: wiring the services onto a listener and `run` (start, recover, serve, drain, final snapshot);
//!   [`demo`]: the `--demo-release-in` schedule.
//! - [`grpc`]: thin tonic layer: conversions, one status mapping, handlers without business logic.
//! - [`auth`]: caller authentication, the role table, office scoping, NIK masking, anti-hoarding limits; [`tls`]:
//!   transport security.
//! - [`engine`]: validate -> apply -> log -> await durability -> reply; the background ticker, snapshots and gauges.
//! - [`storage`]: the write-ahead log with group commit, snapshots and recovery, over opaque bytes.
//! - [`domain`]: the deterministic allocation state machine (no I/O, no clock).
//! - [`config`], [`limits`]: settings and named maxima.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod grpc;
pub mod limits;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod storage;
pub mod tls;
