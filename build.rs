//! Compiles the gRPC API in `proto/` with the protoc shipped by `protoc-bin-vendored`, so no system protoc is needed.
//! Also writes the file descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known_types = protoc_bin_vendored::include_path()?;
    // The protoc to run is given to prost-build directly rather than through the PROTOC variable, which only an
    // `unsafe` set_var could set: the workspace forbids unsafe code, build scripts included.
    let mut prost_config = tonic_prost_build::Config::new();
    prost_config.protoc_executable(protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos: Vec<PathBuf> = ["types", "booking_service", "admin_service", "waiting_room_service"]
        .iter()
        .map(|name| PathBuf::from(format!("proto/antrean/v1/{name}.proto")))
        .collect();
    tonic_prost_build::configure()
        // prost's codec, but a request that does not decode is INVALID_ARGUMENT rather than INTERNAL.
        .codec_path("crate::grpc::codec::ProtoCodec")
        .file_descriptor_set_path(out_dir.join("antrean_v1_descriptor.bin"))
        .compile_with_config(prost_config, &protos, &[PathBuf::from("proto"), well_known_types])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
