//! `ghapp-emulator`: the GitHub emulator (fakehub) in the foreground, and the demo against it.
//! `ghapp emulator` and `ghapp demo` run this binary (see `ghapp::emulator`), so the deployed
//! `ghapp` carries neither fakehub nor its GraphQL schema. Invoked under the name
//! `git-credential-ghapp` it is the credential helper with in-process minting, as `ghapp` is:
//! the demo puts it on git's `PATH` under that name, so the helper is always this build's.

mod demo;
mod emulator;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for command output, ending quietly when the reader went away (as `ghapp` does).
macro_rules! outln {
    () => {
        ghapp::out::bytes(b"\n")
    };
    ($($arg:tt)*) => {
        ghapp::out::bytes(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use outln;

#[derive(Parser, Debug)]
#[command(
    name = "ghapp-emulator",
    version,
    about = "ghapp's GitHub emulator and demo (run as `ghapp emulator` and `ghapp demo`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the GitHub emulator (fakehub) in the foreground.
    Emulator(ghapp::EmulatorArgs),
    /// Show the whole flow against the built-in emulator: clone, commit, push.
    Demo,
}

fn main() -> ExitCode {
    if let Some(code) = ghapp::helper_if_so_named() {
        return code;
    }
    let cli = Cli::parse();
    let done = match &cli.command {
        Command::Emulator(args) => emulator::run(args),
        Command::Demo => demo::run(),
    };
    done.unwrap_or_else(ghapp::report)
}
