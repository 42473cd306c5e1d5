//! Benchmark: a warm-cache `git-credential-ghapp get` against two baselines measured in the same
//! run: a trivial Rust binary that prints two lines, and `git credential-store get`.
//!
//! Run: `cargo bench -p ghapp-e2e --bench helper_warm_get` (it builds the release helper and
//! `ghapp`, which mints on the one cold call, first).
//! Reports the median per-call time of each and the ratios; the goal is helper <= credential-store.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 7;
const CALLS: usize = 200;

fn target_release() -> PathBuf {
    // target/release/deps/helper_warm_get-xxxx -> target/release
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn call(cmd: &mut Command, input: &[u8]) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The trivial baseline does not read its input: a broken pipe there is expected.
    let _ = child.stdin.take().unwrap().write_all(input);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.windows(9).any(|w| w == b"password="),
        "no password answered"
    );
}

/// The mean time per call of `CALLS` calls.
fn round(make: &mut dyn FnMut() -> Command, input: &[u8]) -> Duration {
    let start = Instant::now();
    for _ in 0..CALLS {
        call(&mut make(), input);
    }
    start.elapsed() / CALLS as u32
}

/// Per command, the median over `ROUNDS` rounds of the mean time per call. The rounds of the
/// commands alternate (A B C, A B C, ...), so drift on a shared machine hits all of them alike.
fn measure_interleaved(cmds: &mut [&mut dyn FnMut() -> Command], input: &[u8]) -> Vec<Duration> {
    let mut rounds = vec![Vec::new(); cmds.len()];
    for _ in 0..ROUNDS {
        for (i, make) in cmds.iter_mut().enumerate() {
            rounds[i].push(round(*make, input));
        }
    }
    rounds
        .into_iter()
        .map(|mut r| {
            r.sort();
            r[ROUNDS / 2]
        })
        .collect()
}

fn main() {
    ghapp_e2e::build_release_bins(&[("ghapp-e2e", "print-two-lines")]);
    let dir = target_release();
    let helper = dir.join("git-credential-ghapp");
    let trivial = dir.join("print-two-lines");

    let hub = fakehub::FakeHub::start(fakehub::Options::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut env = hub.app_env(&tmp.path().join("cache"));
    env.extend([
        ("HOME".into(), tmp.path().display().to_string()),
        ("SSL_CERT_FILE".into(), hub.ca_path().display().to_string()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
    ]);
    let input = format!(
        "protocol=https\nhost={}\npath=octo-org/widgets.git\n\n",
        hub.git_host()
    );
    let helper_cmd = || {
        let mut c = Command::new(&helper);
        c.arg("get").env_clear().envs(env.iter().cloned());
        c
    };
    // Warm the cache: one mint.
    call(&mut helper_cmd(), input.as_bytes());
    assert_eq!(hub.mint_count(), 1);

    // credential-store with one stored entry for the same URL.
    let store = tmp.path().join("git-credentials");
    std::fs::write(
        &store,
        format!(
            "https://x-access-token:baseline@{}/octo-org/widgets.git\n",
            hub.git_host()
        ),
    )
    .unwrap();
    let store_cmd = || {
        let mut c = Command::new("git");
        c.args(["credential-store", "--file"])
            .arg(&store)
            .arg("get")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", tmp.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        c
    };
    let trivial_cmd = || {
        let mut c = Command::new(&trivial);
        c.env_clear();
        c
    };

    let (mut trivial_cmd, mut helper_cmd, mut store_cmd) = (trivial_cmd, helper_cmd, store_cmd);
    let t = measure_interleaved(
        &mut [&mut trivial_cmd, &mut helper_cmd, &mut store_cmd],
        input.as_bytes(),
    );
    let (t_trivial, t_helper, t_store) = (t[0], t[1], t[2]);
    assert_eq!(hub.mint_count(), 1, "a warm get mints nothing");

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("warm-cache get, median of {ROUNDS} rounds x {CALLS} calls:");
    println!("  trivial Rust binary (2 lines): {:8.0} us", us(t_trivial));
    println!("  git credential-store get:      {:8.0} us", us(t_store));
    println!("  git-credential-ghapp get:      {:8.0} us", us(t_helper));
    println!(
        "  helper / trivial:          {:.2}x",
        us(t_helper) / us(t_trivial)
    );
    println!(
        "  helper / credential-store: {:.2}x (goal <= 1.00)",
        us(t_helper) / us(t_store)
    );
    println!(
        "  credential-store / trivial: {:.2}x",
        us(t_store) / us(t_trivial)
    );
}
