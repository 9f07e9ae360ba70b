//! Embeds the stock socket.io-client bundle (public/node_modules/socket.io-client/dist) into the
//! binary, so `sio-server` serves /socket.io/socket.io.js from any directory and in a container.
//! Without it (no `npm ci --prefix public`), the binary still builds, warns, and answers 404.

use std::fmt::Write as _;
use std::path::Path;

const FILES: [&str; 8] = [
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
    "socket.io.msgpack.min.js",
    "socket.io.msgpack.min.js.map",
];

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let pkg = Path::new(&root).join("public/node_modules/socket.io-client");
    let dist = pkg.join("dist");
    println!("cargo:rerun-if-changed=public/node_modules/socket.io-client/package.json");
    println!("cargo:rerun-if-changed=public/package-lock.json");
    let version = std::fs::read_to_string(pkg.join("package.json"))
        .ok()
        .and_then(|s| {
            let i = s.find("\"version\"")?;
            let rest = &s[i + 9..];
            let start = rest.find('"')? + 1;
            let end = start + rest[start..].find('"')?;
            Some(rest[start..end].to_owned())
        })
        .unwrap_or_default();
    let mut code =
        String::from("/// The embedded client files: (name, bytes).\npub static FILES: &[(&str, &[u8])] = &[\n");
    let mut found = 0;
    for f in FILES {
        let path = dist.join(f);
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            let _ = writeln!(code, "    ({f:?}, include_bytes!({:?})),", path.display().to_string());
            found += 1;
        }
    }
    code.push_str("];\n");
    let _ = writeln!(
        code,
        "/// The embedded client's version (empty when not embedded).\npub const VERSION: &str = {version:?};"
    );
    if found == 0 {
        println!(
            "cargo:warning=socket.io-client bundle not found in public/node_modules; run `npm ci --prefix public` \
             before building to serve /socket.io/socket.io.js"
        );
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("client_bundle.rs");
    std::fs::write(out, code).expect("write generated file");
}
