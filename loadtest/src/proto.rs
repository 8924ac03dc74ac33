//! The generated client of the gRPC API (`antrean.v1`), compiled by this crate's `build.rs`.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("antrean.v1");
