//! Benchmark: clone and push throughput through `ghapp proxy` against going straight to the
//! emulator, in one run, and the proxy's peak RSS while a large push streams through.
//!
//! Run: `cargo bench -p ghapp-e2e --bench proxy_throughput` (builds the release binaries first).
//! `GHAPP_BENCH_MIB` sets the push size (default 256). Goals: push throughput with inspection,
//! without it, and clone at least 0.9x direct, proxy peak RSS flat in
//! the push size, under 64 MiB (`git index-pack`, a child of the proxy's, is not counted).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::Write;
use std::time::{Duration, Instant};

use ghapp_e2e::World;

fn main() {
    ghapp_e2e::build_release_bins(&[]);
    let mib: usize = std::env::var("GHAPP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);

    let w = World::new();
    let secret = "bench-sandbox-secret-0123456789";
    let raw_secret = "bench-uninspected-secret-0123456789";
    let p = w.start_proxy(
        &format!(
            "[[sandbox]]\nname = \"bench\"\nsecret = \"{secret}\"\nrepos = [\"octo-org/gadgets\"]\npush = [\"refs/heads/agent/*\"]\n\n[[sandbox]]\nname = \"bench-raw\"\nsecret = \"{raw_secret}\"\nrepos = [\"octo-org/widgets\"]\npush = [\"refs/heads/agent/*\"]\ninspect = false\n"
        ),
        "",
    );
    let rss_idle = p.peak_rss_kib();
    let sandbox = w.sandbox_env(&p, "bench", secret);
    let raw = w.sandbox_env(&p, "bench-raw", raw_secret);

    // Per round and path, one new commit holding `mib` MiB of incompressible data (files of
    // 32 MiB, under GitHub's 100 MiB) on the path's own branch: agent/bench-d pushed to widgets
    // directly (through the helper), agent/bench-p to gadgets through the proxy with push
    // inspection (the default), agent/bench-r to widgets through the proxy with
    // `inspect = false`. Every file is new, so each push carries all of it.
    w.clone_repo("octo-org", "widgets", "src").ok();
    let src = w.path("src");
    // No delta search among the big random files (git skips it past 512 MiB on its own), on
    // either side: the paths are compared on what they carry, not on pack-objects' CPU.
    w.git(&src, &["config", "core.bigFileThreshold", "1m"]).ok();
    for repo in ["widgets", "gadgets"] {
        let bare = w.hub.repo_dir("octo-org", repo);
        w.git(&bare, &["config", "core.bigFileThreshold", "1m"])
            .ok();
    }
    let gadgets = w.hub.repo_url("octo-org", "gadgets");
    w.git(&src, &["remote", "add", "gadgets", &gadgets]).ok();
    for b in ["agent/bench-d", "agent/bench-p", "agent/bench-r"] {
        w.git(&src, &["branch", b, "origin/main"]).ok();
    }
    let time = |f: &dyn Fn() -> ghapp_e2e::Run| -> Duration {
        let start = Instant::now();
        f().ok();
        start.elapsed()
    };
    let commit = |branch: &str, seed: u64| {
        w.git(&src, &["switch", "--quiet", branch]).ok();
        let mut x: u64 = 0x9E3779B97F4A7C15 ^ seed.wrapping_mul(0xD1B54A32D192ED03);
        let mut buf = vec![0u8; 1 << 20];
        for part in 0..mib.div_ceil(32) {
            let name = format!("blob{seed}-{part}.bin");
            let mut f = std::fs::File::create(src.join(name)).unwrap();
            for _ in 0..32.min(mib - part * 32) {
                for chunk in buf.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes());
                }
                f.write_all(&buf).unwrap();
            }
        }
        w.git(&src, &["add", "."]).ok();
        w.git(&src, &["commit", "--quiet", "-m", &format!("big {seed}")])
            .ok();
    };
    let mut push_direct = Duration::MAX;
    let mut push_proxy = Duration::MAX;
    let mut push_raw = Duration::MAX;
    for round in 0..2u64 {
        commit("agent/bench-d", round * 3 + 1);
        commit("agent/bench-p", round * 3 + 2);
        commit("agent/bench-r", round * 3 + 3);
        let d = || time(&|| w.git(&src, &["push", "--quiet", "origin", "agent/bench-d"]));
        let via = |env: &[(String, String)], remote: &str, branch: &str| {
            time(&|| {
                w.cmd("git")
                    .env(env)
                    .args(&["push", "--quiet", remote, branch])
                    .dir(&src)
                    .carries_secrets()
                    .run()
            })
        };
        // Rotate the order, so no path always runs on a warmer machine.
        for step in 0..3 {
            match (step + round) % 3 {
                0 => push_direct = push_direct.min(d()),
                1 => push_proxy = push_proxy.min(via(&sandbox, "gadgets", "agent/bench-p")),
                _ => push_raw = push_raw.min(via(&raw, "origin", "agent/bench-r")),
            }
        }
    }
    let rss_push = p.peak_rss_kib();

    let mut clone_direct = Duration::MAX;
    let mut clone_proxy = Duration::MAX;
    for i in 0..2 {
        let d = format!("cd{i}");
        let url = w.hub.repo_url("octo-org", "widgets");
        clone_direct = clone_direct.min(time(&|| {
            w.git(
                w.root.path(),
                &[
                    "clone",
                    "--quiet",
                    "--single-branch",
                    "--branch",
                    "agent/bench-d",
                    &url,
                    &d,
                ],
            )
        }));
        let d = format!("cp{i}");
        clone_proxy = clone_proxy.min(time(&|| {
            w.cmd("git")
                .env(&sandbox)
                .args(&[
                    "clone",
                    "--quiet",
                    "--single-branch",
                    "--branch",
                    "agent/bench-p",
                    &gadgets,
                    &d,
                ])
                .carries_secrets()
                .run()
        }));
    }
    let rss_all = p.peak_rss_kib();

    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    // A clone carries both rounds' blobs.
    let clone_rate = |d: Duration| (2 * mib) as f64 / d.as_secs_f64();
    println!(
        "{mib} MiB of incompressible data per push ({} MiB per clone), best of 2 per path, one run:",
        2 * mib
    );
    println!(
        "  push  direct {:6.2} s ({:6.1} MiB/s)   via proxy, inspected {:6.2} s ({:6.1} MiB/s)   ratio {:.2}x (goal >= 0.90)",
        push_direct.as_secs_f64(),
        rate(push_direct),
        push_proxy.as_secs_f64(),
        rate(push_proxy),
        push_direct.as_secs_f64() / push_proxy.as_secs_f64()
    );
    println!(
        "  push  direct {:6.2} s ({:6.1} MiB/s)   via proxy, inspect = false {:6.2} s ({:6.1} MiB/s)   ratio {:.2}x (goal >= 0.90)",
        push_direct.as_secs_f64(),
        rate(push_direct),
        push_raw.as_secs_f64(),
        rate(push_raw),
        push_direct.as_secs_f64() / push_raw.as_secs_f64()
    );
    println!(
        "  clone direct {:6.2} s ({:6.1} MiB/s)   via proxy {:6.2} s ({:6.1} MiB/s)   ratio {:.2}x (goal >= 0.90)",
        clone_direct.as_secs_f64(),
        clone_rate(clone_direct),
        clone_proxy.as_secs_f64(),
        clone_rate(clone_proxy),
        clone_direct.as_secs_f64() / clone_proxy.as_secs_f64()
    );
    println!(
        "  proxy peak RSS: idle {:.1} MiB, after the push {:.1} MiB, after the clones {:.1} MiB (goal < 64 MiB)",
        rss_idle as f64 / 1024.0,
        rss_push as f64 / 1024.0,
        rss_all as f64 / 1024.0
    );
    assert!(
        w.hub_ref("octo-org", "gadgets", "refs/heads/agent/bench-p")
            .is_some()
    );
}
