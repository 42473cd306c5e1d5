//! `ghapp`: the operator's CLI. A thin `main` over [`ghapp::run`]. Invoked under the name
//! `git-credential-ghapp` it is the credential helper with in-process minting: the lean helper
//! binary delegates its cache misses here.

use std::process::ExitCode;

fn main() -> ExitCode {
    ghapp::helper_if_so_named().unwrap_or_else(ghapp::main)
}
