//! The helper binary: a thin `main` over [`git_credential_ghapp::run`]. It holds no HTTP, TLS or
//! async code; on a cache miss it delegates to the `ghapp` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    git_credential_ghapp::run(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        &mut git_credential_ghapp::delegate_to_ghapp,
    )
}
