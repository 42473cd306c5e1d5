//! `ghapp`: the operator's CLI. A thin `main` over [`ghapp::run`]. Invoked under the name
//! `git-credential-ghapp` it is the credential helper with in-process minting: the lean helper
//! binary delegates its cache misses here.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == git_credential_ghapp::PROGRAM)
    {
        let rest: Vec<String> = args.collect();
        return git_credential_ghapp::run(
            &rest,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
            &mut ghapp::mint_in_process,
        );
    }
    ghapp::main()
}
