//! Compiles proto/echo.proto with protox (pure Rust, no protoc needed) and
//! generates the prost messages and the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["echo.proto"];
    println!("cargo:rerun-if-changed=proto/echo.proto");
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
