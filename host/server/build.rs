//! Generates the `distlog.v1` Rust types, clients and servers from
//! `proto/distlog/v1/*.proto` with protox (a pure-Rust protobuf compiler), so
//! a fresh machine needs cargo alone: no system `protoc`.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../../proto");
    // Paths relative to the include root, as `import` statements name them.
    let files = ["distlog/v1/distlog.proto"];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let fds = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The encoded descriptor set backs gRPC server reflection.
    std::fs::write(out_dir.join("distlog_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, plus the server-side checks of `src/codec.rs`: produce requests
        // counted on the wire before they are decoded, malformed requests INVALID_ARGUMENT.
        .codec_path("crate::codec::WireCodec")
        // Fetched keys and values, and raw fetches' stored batches, as `bytes::Bytes`: the
        // broker hands over slices of the read buffer without a copy per record or batch,
        // and a client decodes them as slices of the received message instead of one
        // allocation and copy each.
        .bytes(".distlog.v1.StoredRecord.key")
        .bytes(".distlog.v1.StoredRecord.value")
        .bytes(".distlog.v1.StoredBatch.data")
        .compile_fds(fds)?;
    Ok(())
}
