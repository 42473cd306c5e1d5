//! Benchmark: clone and push throughput through `ghapp proxy` against going straight to the
//! emulator, in one run, and the proxy's peak RSS while a large push streams through.
//!
//! Run: `cargo bench -p ghapp-e2e --bench proxy_throughput` (builds the release binaries first).
//! `GHAPP_BENCH_MIB` sets the push size (default 256). Goals: throughput ratio >= 0.9x, proxy
//! peak RSS flat in the push size (under 64 MiB).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::Write;
use std::time::{Duration, Instant};

use ghapp_e2e::World;

fn main() {
    ghapp_e2e::build_release_bins(&[
        ("ghapp", "ghapp"),
        ("git-credential-ghapp", "git-credential-ghapp"),
        ("gh-pr", "gh-pr"),
    ]);
    let mib: usize = std::env::var("GHAPP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);

    let w = World::new();
    let secret = "bench-sandbox-secret-0123456789";
    let p = w.start_proxy(
        &format!("[[sandbox]]\nname = \"bench\"\nsecret = \"{secret}\"\nrepos = [\"octo-org/widgets\", \"octo-org/gadgets\"]\npush = [\"refs/heads/agent/*\"]\n"),
        "",
    );
    let rss_idle = p.peak_rss_kib();
    let sandbox = w.sandbox_env(&p, "bench", secret);

    // Per round, one new commit holding `mib` MiB of incompressible data, pushed to two
    // repositories with the same content: widgets directly (through the helper), gadgets
    // through the proxy. Each round's blob is new to both, so each push carries it all.
    w.clone_repo("octo-org", "widgets", "src").ok();
    let src = w.path("src");
    w.git(&src, &["switch", "--quiet", "-c", "agent/bench"])
        .ok();
    let gadgets = w.hub.repo_url("octo-org", "gadgets");
    w.git(&src, &["remote", "add", "gadgets", &gadgets]).ok();
    let time = |f: &dyn Fn() -> ghapp_e2e::Run| -> Duration {
        let start = Instant::now();
        f().ok();
        start.elapsed()
    };
    let mut push_direct = Duration::MAX;
    let mut push_proxy = Duration::MAX;
    for round in 0..2u64 {
        let mut f = std::fs::File::create(src.join(format!("blob{round}.bin"))).unwrap();
        let mut x: u64 = 0x9E3779B97F4A7C15 ^ (round + 1).wrapping_mul(0xD1B54A32D192ED03);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&buf).unwrap();
        }
        drop(f);
        w.git(&src, &["add", "."]).ok();
        w.git(&src, &["commit", "--quiet", "-m", &format!("big {round}")])
            .ok();
        // Alternate the order, so neither path always runs on a warmer machine.
        let d = || time(&|| w.git(&src, &["push", "--quiet", "origin", "agent/bench"]));
        let p = || {
            time(&|| {
                w.cmd("git")
                    .env(&sandbox)
                    .args(&["push", "--quiet", "gadgets", "agent/bench"])
                    .dir(&src)
                    .carries_secrets()
                    .run()
            })
        };
        if round % 2 == 0 {
            push_direct = push_direct.min(d());
            push_proxy = push_proxy.min(p());
        } else {
            push_proxy = push_proxy.min(p());
            push_direct = push_direct.min(d());
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
                &["clone", "--quiet", "--branch", "agent/bench", &url, &d],
            )
        }));
        let d = format!("cp{i}");
        clone_proxy = clone_proxy.min(time(&|| {
            w.cmd("git")
                .env(&sandbox)
                .args(&["clone", "--quiet", "--branch", "agent/bench", &gadgets, &d])
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
        "  push  direct {:6.2} s ({:6.1} MiB/s)   via proxy {:6.2} s ({:6.1} MiB/s)   ratio {:.2}x (goal >= 0.90)",
        push_direct.as_secs_f64(),
        rate(push_direct),
        push_proxy.as_secs_f64(),
        rate(push_proxy),
        push_direct.as_secs_f64() / push_proxy.as_secs_f64()
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
        w.hub_ref("octo-org", "gadgets", "refs/heads/agent/bench")
            .is_some()
    );
}
