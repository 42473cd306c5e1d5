//! `ghapp revoke`: revoke the cached tokens that are still live (`DELETE /installation/token`)
//! and clear the cache.

#![expect(
    clippy::print_stderr,
    reason = "a command: stderr carries its warnings"
)]

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::AppFlags;
use crate::context::AppContext;
use crate::out::outln;

pub(crate) fn run(app: &AppFlags, all: bool) -> Result<ExitCode> {
    let AppContext { broker, rt } = AppContext::load(app, false)?;
    let tokens = broker.cache().drain()?;
    let (mut revoked, mut skipped) = (0, 0);
    for t in &tokens {
        match rt.block_on(broker.revoke(t)) {
            Ok(true) => revoked += 1,
            Ok(false) => skipped += 1,
            Err(e) => {
                skipped += 1;
                eprintln!(
                    "ghapp: warning: {} was not revoked: {e}",
                    t.token.fingerprint()
                );
            }
        }
    }
    if all && let Ok(entries) = std::fs::read_dir(broker.cache().dir()) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    outln!(
        "revoked {revoked} live token(s); {skipped} expired or already invalid; cache {} cleared",
        broker.cache().dir().display()
    );
    Ok(ExitCode::SUCCESS)
}
