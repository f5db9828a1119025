//! Compiles `proto/pubsub_api.proto` without `protoc`: `protox` (pure Rust) parses it into a
//! `FileDescriptorSet`, which `tonic-prost-build` turns into messages, client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/pubsub_api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
