//! Embeds the stock socket.io-client bundle (public/node_modules/socket.io-client/dist) into the
//! binary, so `sio-server` serves /socket.io/socket.io.js from any directory and in a container.
//! Without it (no `npm ci --prefix public`), the binary still builds, warns, and answers 404.
//! Likewise the Admin UI (`@socket.io/admin-ui`'s `ui/dist`, with `@mdi/font` for its icons) is
//! embedded for `/admin/`, its index rewritten to load nothing from CDNs.

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
    admin_ui(Path::new(&root));
}

/// The CDN stylesheets of the Admin UI's index.html: Roboto is dropped (the system font is
/// used), the icon font is served from the embedded `@mdi/font`.
const ADMIN_CDN_ROBOTO: &str =
    r#"<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto:100,300,400,500,700,900">"#;
const ADMIN_CDN_MDI: &str =
    r#"<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css">"#;
const ADMIN_LOCAL_MDI: &str = r#"<link rel="stylesheet" href="mdi/css/materialdesignicons.min.css">"#;

/// Lists the files under `dir` (relative paths with `/`), source maps left out.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, std::path::PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() {
            walk(&path, &format!("{prefix}{name}/"), out);
        } else if !name.ends_with(".map") {
            out.push((format!("{prefix}{name}"), path));
        }
    }
}

/// Generates `admin_ui.rs`: the UI's files as `(path, bytes)`, empty when not installed.
fn admin_ui(root: &Path) {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let dist = root.join("public/node_modules/@socket.io/admin-ui/ui/dist");
    let mdi = root.join("public/node_modules/@mdi/font");
    println!("cargo:rerun-if-changed=public/node_modules/@socket.io/admin-ui/package.json");
    println!("cargo:rerun-if-changed=public/node_modules/@mdi/font/package.json");
    let mut files = Vec::new();
    walk(&dist, "", &mut files);
    let mut code = String::from(
        "/// The embedded Admin UI files: (path under /admin/, bytes).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    let index = std::fs::read_to_string(dist.join("index.html")).unwrap_or_default();
    if files.is_empty() || !index.contains(ADMIN_CDN_MDI) {
        println!(
            "cargo:warning=@socket.io/admin-ui not found in public/node_modules (or not the pinned version); run \
             `npm ci --prefix public` before building to serve the Admin UI at /admin/"
        );
        code.push_str("];\n");
    } else {
        let local = index
            .replace(ADMIN_CDN_ROBOTO, "")
            .replace(ADMIN_CDN_MDI, ADMIN_LOCAL_MDI);
        let index_path = out_dir.join("admin-index.html");
        std::fs::write(&index_path, local).expect("write the admin index");
        for (name, path) in &files {
            let path = if name == "index.html" { &index_path } else { path };
            let _ = writeln!(
                code,
                "    ({name:?}, include_bytes!({:?})),",
                path.display().to_string()
            );
        }
        for name in [
            "css/materialdesignicons.min.css",
            "fonts/materialdesignicons-webfont.woff2",
            "fonts/materialdesignicons-webfont.woff",
        ] {
            let path = mdi.join(name);
            if path.is_file() {
                let _ = writeln!(
                    code,
                    "    (\"mdi/{name}\", include_bytes!({:?})),",
                    path.display().to_string()
                );
            } else {
                println!("cargo:warning=@mdi/font file {name} not found: the Admin UI's icons will be missing");
            }
        }
        code.push_str("];\n");
    }
    std::fs::write(out_dir.join("admin_ui.rs"), code).expect("write generated file");
}
