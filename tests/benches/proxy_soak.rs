//! Load and soak benchmark: one `ghapp proxy` holding 1,000 idle authenticated tunnels while
//! 100 clones and 20 pushes run through it at once; the added latency of `git ls-remote`
//! through the proxy against going direct, measured in the same run.
//!
//! Run: `cargo bench -p ghapp-e2e --bench proxy_soak` (builds the release binaries first).
//! `GHAPP_SOAK_TUNNELS` sets the idle tunnels (default 1000). Reports peak RSS, RSS per idle
//! tunnel, ls-remote p50/p99 direct and via the proxy, and failures. Goals: under 64 MiB for
//! the whole run, p99 added latency under 20 ms, no failure.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use ghapp_e2e::{Run, Sandbox, World};

const SECRET: &str = "soak-sandbox-secret-0123456789";
const IDLE_SECRET: &str = "soak-idle-secret-0123456789";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    ghapp_e2e::build_release_bins(&[]);
    let tunnels: usize = std::env::var("GHAPP_SOAK_TUNNELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut w = World::new();
    w.limit = Duration::from_secs(300);
    let p = w.start_proxy(
        &format!(
            "[[sandbox]]\nname = \"bench\"\nsecret = \"{SECRET}\"\nrepos = [\"octo-org/widgets\"]\npush = [\"refs/heads/agent/*\"]\n\n[[sandbox]]\nname = \"idle\"\nsecret = \"{IDLE_SECRET}\"\nrepos = [\"octo-org/gadgets\"]\n"
        ),
        &format!(
            "[limits]\nmax_connections = {c}\nmax_connections_per_source = {c}\nmax_tunnels_per_sandbox = {c}\nidle_timeout = \"30m\"\n",
            c = tunnels + 2000
        ),
    );
    let sb = Sandbox::new(&w, &p, "bench", SECRET);
    // Warm: the token minted and cached, the leaf certificate made.
    sb.clone("octo-org", "widgets", "warm", &[]).ok();
    let rss_start = p.rss_kib();

    // 1. Idle authenticated tunnels: CONNECT, TLS handshake, then nothing.
    let start = Instant::now();
    let held: Vec<_> = (0..tunnels)
        .map(|_| p.tunnel("idle", IDLE_SECRET, &w.hub.git_host()))
        .collect();
    let opened_in = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = p.rss_kib();
    let per_tunnel = (rss_idle.saturating_sub(rss_start)) as f64 / tunnels as f64;

    // 2. ls-remote latency, direct (the token in a header, as the proxy sends it) and through
    // the proxy (git sends no credentials at all), alternating.
    let url = w.hub.repo_url("octo-org", "widgets");
    let token = w.token_for("octo-org/widgets");
    let header = format!("http.extraHeader={}", ghapp_e2e::basic_auth(&token));
    let direct_ls = ["-c", "credential.helper=", "-c", &header, "ls-remote", &url];
    w.git(w.root.path(), &direct_ls).ok();
    let mut direct = Vec::new();
    let mut proxied = Vec::new();
    let timed = |f: &dyn Fn() -> Run| {
        let s = Instant::now();
        f().ok();
        s.elapsed()
    };
    for i in 0..60 {
        let d = || timed(&|| w.git(w.root.path(), &direct_ls));
        let q = || timed(&|| sb.git(w.root.path(), &["ls-remote", &url]));
        if i % 2 == 0 {
            direct.push(d());
            proxied.push(q());
        } else {
            proxied.push(q());
            direct.push(d());
        }
    }
    direct.sort();
    proxied.sort();

    // 3. 100 clones and 20 pushes at once, with the idle tunnels still held.
    for i in 0..20 {
        sb.clone("octo-org", "widgets", &format!("push{i}"), &[])
            .ok();
        let dir = w.path(&format!("push{i}"));
        sb.git(
            &dir,
            &["switch", "--quiet", "-c", &format!("agent/soak-{i}")],
        )
        .ok();
        sb.commit(&dir, "soak.txt", format!("push {i}\n").as_bytes());
    }
    let start = Instant::now();
    let results: Vec<Run> = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for i in 0..100 {
            let sb = &sb;
            hs.push(s.spawn(move || sb.clone("octo-org", "widgets", &format!("c{i}"), &[])));
        }
        for i in 0..20 {
            let (sb, w) = (&sb, &w);
            hs.push(s.spawn(move || {
                let dir = w.path(&format!("push{i}"));
                sb.git(
                    &dir,
                    &["push", "--quiet", "origin", &format!("agent/soak-{i}")],
                )
            }));
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let load_in = start.elapsed();
    let failures = results.iter().filter(|r| !r.success()).count();
    let rss_peak = p.peak_rss_kib();
    // The idle tunnels are still there: the proxy holds a socket for each.
    let fds_end = p.open_fds();
    drop(held);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
    let (p50, p99) = (percentile(&proxied, 0.5), percentile(&proxied, 0.99));
    println!("proxy soak, one run:");
    println!(
        "  {tunnels} idle authenticated tunnels opened in {:.1} s; RSS {:.1} MiB -> {:.1} MiB, {:.1} KiB per idle tunnel",
        opened_in.as_secs_f64(),
        rss_start as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        per_tunnel
    );
    println!(
        "  git ls-remote x60: direct p50 {:.1} ms p99 {:.1} ms; via proxy p50 {:.1} ms p99 {:.1} ms; added p50 {:.1} ms p99 {:.1} ms (goal p99 < 20 ms); ratio p50 {:.2}x",
        ms(d50),
        ms(d99),
        ms(p50),
        ms(p99),
        ms(p50) - ms(d50),
        ms(p99) - ms(d99),
        p50.as_secs_f64() / d50.as_secs_f64()
    );
    println!(
        "  100 clones + 20 pushes at once (tunnels held): {:.1} s, {failures} failures (goal 0)",
        load_in.as_secs_f64()
    );
    println!(
        "  proxy peak RSS over the whole run: {:.1} MiB (goal < 64 MiB); {fds_end} descriptors open at the end of the load ({tunnels} tunnels held)",
        rss_peak as f64 / 1024.0
    );
    if let Some(r) = results.iter().find(|r| !r.success()) {
        println!("  first failure: {r:#?}");
    }
}
