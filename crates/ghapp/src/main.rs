//! `ghapp`: the operator's CLI. A thin `main` over [`ghapp::run`]; when invoked under the name
//! `git-credential-ghapp` (a link made by `ghapp demo`), it is the credential helper.

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
        );
    }
    ghapp::main()
}
