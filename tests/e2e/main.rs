//! The end-to-end suite, one binary: a module per area, each listing its tests in `TESTS`, run
//! by [`ghapp_e2e::runner`] (libtest's arguments; a test that needs a tool the machine lacks
//! is skipped and counted, see [`ghapp_e2e::needs`]).
//!
//! Run: `cargo test --workspace` (everything), `cargo test -p ghapp-e2e --test e2e -- proxy::`
//! (one area), `-- --exact cli::demo_passes_with_no_configuration` (one test).

mod attacks;
mod budget;
mod cli;
mod control;
mod deploy;
mod docs;
mod exchange;
mod faults;
mod helper;
mod inspect;
mod install;
mod lfs;
mod notify;
mod operator;
mod pr;
mod proxy;
mod review;
mod schema;
mod setup;
mod telemetry;
mod tiers;
mod writes;

fn main() -> std::process::ExitCode {
    let areas: [(&str, ghapp_e2e::runner::Area); 22] = [
        ("attacks", attacks::TESTS),
        ("budget", budget::TESTS),
        ("cli", cli::TESTS),
        ("control", control::TESTS),
        ("deploy", deploy::TESTS),
        ("docs", docs::TESTS),
        ("exchange", exchange::TESTS),
        ("faults", faults::TESTS),
        ("helper", helper::TESTS),
        ("inspect", inspect::TESTS),
        ("install", install::TESTS),
        ("lfs", lfs::TESTS),
        ("notify", notify::TESTS),
        ("operator", operator::TESTS),
        ("pr", pr::TESTS),
        ("proxy", proxy::TESTS),
        ("review", review::TESTS),
        ("schema", schema::TESTS),
        ("setup", setup::TESTS),
        ("telemetry", telemetry::TESTS),
        ("tiers", tiers::TESTS),
        ("writes", writes::TESTS),
    ];
    let tests = areas
        .iter()
        .flat_map(|(area, tests)| {
            tests
                .iter()
                .map(move |(name, f)| (format!("{area}::{name}"), *f))
        })
        .collect();
    ghapp_e2e::runner::run(tests, START_FIRST)
}

/// Started before the others, longest first: a long test that starts late keeps the whole run
/// waiting for it. On 2 cores: install builds the three binaries (~90 s), minting_failing waits
/// out GitHub's outage and the backoff (~35 s), upstream_faults its stalls (~30 s).
const START_FIRST: &[&str] = &[
    "install::install_clone_reinstall_and_uninstall",
    "faults::minting_failing_for_a_while_gives_503_with_retry_after_then_recovers",
    "proxy::upstream_faults_are_named_and_one_sandbox_cannot_stall_another",
    "inspect::large_files_and_pushes_are_refused_before_the_upload_completes",
    "writes::every_channel_decides_a_change_the_same_way",
];
