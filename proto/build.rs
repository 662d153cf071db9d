//! Compiles the protos with `protox` (a pure-Rust protobuf compiler), so no system `protoc` is
//! needed on a fresh machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "apache/rocketmq/v2/definition.proto",
        "apache/rocketmq/v2/service.proto",
        "raftmq/v1/raft.proto",
        "raftmq/v1/admin.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        // Message bodies and Raft entries: `Bytes` so decoding slices instead of copying.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
