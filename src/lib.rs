//! antrean hands out passport-appointment slots from immigration-office quotas, fairly and without losing a booking,
//! over gRPC.
//!
//! Layout, from the top layer down: a module may import its own files and any module listed below it, never one above
//! it or beside it (`tests/architecture.rs` reads every file to check this and that no two files import each other
//! in a circle):
//! - `main.rs`: the binary (flags, configuration, tracing, metrics exporter, signals).
//! - [`server`]: wiring the services onto a listener and `run` (start, recover, serve, drain, final snapshot).
//! - [`grpc`]: thin tonic layer: conversions, one status mapping, the codec the generated API uses, the tower layers
//!   (overload, per-caller rate, message size, cluster routing), handlers without business logic; [`demo`]: the `--demo-release-in`
//!   schedule; [`draw_file`]: a published draw as a JSON file (fetch it, verify it), for `antrean get-draw` and
//!   `antrean verify-draw`.
//! - [`config`]: the TOML settings, validated field by field (it names the types of the layers below to check them);
//!   [`proto`]: the generated API.
//! - [`auth`]: caller authentication, the role table, office scoping and booking ownership, NIK masking,
//!   anti-hoarding limits; [`tls`]: transport security and the rules for listeners other hosts can reach.
//! - [`engine`]: validate -> apply -> log -> await durability -> reply; the background ticker, snapshots and gauges.
//! - [`metrics`]: metric names and the exporter; [`cluster`]: a partition's log on NATS JetStream (fenced appends,
//!   replay), its lease, the directory of owners and the NIK claims, for running past one machine (`[cluster]`).
//! - [`domain`]: the deterministic allocation state machine (no I/O, no clock); [`storage`]: the write-ahead log with
//!   group commit, snapshots and recovery, over opaque bytes. Neither knows the other.
//! - [`limits`]: named maxima, importable by all; [`call_layer`]: the tower plumbing every layer of the server shares.

// One audited `unsafe` call remains in the library (`engine::waiting_room::release_freed_memory`, glibc
// `malloc_trim`), allowed there alone; ARCHITECTURE.md names it (and the bench allocator outside the library).
#![deny(unsafe_code)]

pub mod auth;
pub mod call_layer;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod domain;
pub mod draw_file;
pub mod engine;
pub mod grpc;
pub mod limits;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod storage;
pub mod tls;
