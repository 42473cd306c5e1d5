//! The end-to-end harness: a [`World`] is one fakehub plus a throwaway HOME, git config and
//! token cache, and runs the real `git` and ghapp's built binaries in it, recording every output
//! so that a test can finish with [`World::assert_no_secrets`].
//!
//! Every command is isolated the same way: the environment is cleared, then `PATH` (ghapp's
//! target dir first), `HOME`, `GIT_CONFIG_GLOBAL` to the world's file, `GIT_CONFIG_NOSYSTEM=1`,
//! `GIT_TERMINAL_PROMPT=0`, fixed author dates, the emulator's CA, and the `GHAPP_*` variables.

pub mod openapi;

mod http;
mod postgres;
mod process;
mod proxy;
mod receiver;
mod sandbox;
mod tools;
mod world;

pub mod runner;

pub use http::{HttpAnswer, Tunnel, read_answer, read_head};
pub use postgres::Postgres;
pub use process::{Cmd, Run, basic_auth, bin_dir, build_release_bins, curl_local, wait_bounded};
pub use proxy::{GH_PLACEHOLDER, ProxyProc, SECRET_A, SECRET_B, two_sandboxes};
pub use receiver::{Received, Receiver, Rule};
pub use sandbox::Sandbox;
pub use tools::{Skip, Tool, needs, strict};
pub use world::{FakeHub, Options, World};
