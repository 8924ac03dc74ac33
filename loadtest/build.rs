//! Compiles the client side of the gRPC API in `../proto/antrean/v1` with the protoc shipped by
//! `protoc-bin-vendored`, so the load generator does not depend on the server crate.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known_types = protoc_bin_vendored::include_path()?;
    // The protoc to run is given to prost-build directly rather than through the PROTOC variable, which only an
    // `unsafe` set_var could set: the workspace forbids unsafe code, build scripts included.
    let mut prost_config = tonic_prost_build::Config::new();
    prost_config.protoc_executable(protoc);
    let proto_root = PathBuf::from("../proto");
    // Every file of the package, so services added later are compiled without touching this script.
    let mut protos: Vec<PathBuf> = std::fs::read_dir(proto_root.join("antrean/v1"))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    protos.retain(|path| path.extension().is_some_and(|extension| extension == "proto"));
    protos.sort();
    tonic_prost_build::configure().build_server(false).build_client(true).compile_with_config(
        prost_config,
        &protos,
        &[proto_root.clone(), well_known_types],
    )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
