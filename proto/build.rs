//! Compiles proto/wso2 with protox (pure Rust, no protoc needed) and
//! generates prost messages and tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "wso2/discovery/config.proto",
        "wso2/discovery/api.proto",
        "wso2/discovery/throttle.proto",
        "wso2/discovery/service.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
