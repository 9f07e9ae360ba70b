//! `sio-webhook`: the standalone webhook service (a thin main over the root library's webhook
//! module, which arrives with the webhook issue). For now it says so and exits non-zero.

fn main() -> std::process::ExitCode {
    eprintln!("sio-webhook: not built yet; the webhook runs in-process once the webhook issue lands");
    std::process::ExitCode::from(2)
}
