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
    ghapp_e2e::runner::run(tests)
}
