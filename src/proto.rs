//! The generated gRPC API (`antrean.v1`), for the server and its tests (the load generator compiles its own client from
//! the same `.proto` files).
//!
//! The generated services and clients encode and decode with `grpc::codec::ProtoCodec` (`codec_path` in
//! `build.rs`): the one place the generated code reaches up into the gRPC layer.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("antrean.v1");

/// Serialized file descriptors of `antrean.v1`, served by gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("antrean_v1_descriptor");
