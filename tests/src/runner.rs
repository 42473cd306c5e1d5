#![expect(
    clippy::print_stdout,
    reason = "the runner reports on stdout, as libtest does"
)]

//! The end-to-end suite's test runner (`harness = false`): libtest's usual arguments and
//! output, plus skipped tests. A test that needs a tool the machine lacks unwinds with
//! [`Skip`](crate::Skip) and is reported `skipped (needs TOOL)`; the summary counts them by
//! tool (`120 passed, 14 skipped: needs chromium, postgresql`), so nothing is left out silently.
//!
//! Arguments: filters (a test runs when its name holds one; `--exact`: equals one), `--skip
//! PATTERN`, `--test-threads N` (default: three per core), `--list`; libtest's others (`-q`, `--nocapture`, ...) are
//! accepted and change nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::Skip;

/// One test: its name (`module::function`) and body.
pub type Test = (String, fn());

/// One area's tests, as each module lists them: `(name, test)`.
pub type Area = &'static [(&'static str, fn())];

thread_local! {
    /// What a failing test's panic said (message, place, backtrace when asked for).
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

enum Outcome {
    Passed,
    Failed(String),
    Skipped(&'static str),
}

struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    threads: usize,
}

fn args() -> Args {
    let mut a = Args {
        filters: Vec::new(),
        skip: Vec::new(),
        exact: false,
        list: false,
        threads: std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            // Three per core: these tests mostly wait on git, servers and child processes
            // (on 2 cores the whole suite: 2 threads 150 s, 4 threads 135 s, 6 threads 118 s,
            // 8 threads 117 s: past 6 the cores are busy).
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(6, |n| (n.get() * 3).min(16))
            }),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--exact" => a.exact = true,
            "--list" => a.list = true,
            "--skip" => a.skip.extend(it.next()),
            "--test-threads" => {
                if let Some(n) = it.next().and_then(|n| n.parse().ok()) {
                    a.threads = n;
                }
            }
            s if s.starts_with("--test-threads=") => {
                if let Ok(n) = s["--test-threads=".len()..].parse() {
                    a.threads = n;
                }
            }
            s if s.starts_with('-') => {} // -q, --nocapture, --color=..., --format=...
            s => a.filters.push(s.to_owned()),
        }
    }
    a.threads = a.threads.max(1);
    a
}

/// Runs `tests` as the arguments say, those named in `first` before the others (in that
/// order: a long test that starts last keeps the whole run waiting); the exit status libtest
/// would give.
pub fn run(tests: Vec<Test>, first: &[&str]) -> ExitCode {
    let a = args();
    if let Some(unknown) = first.iter().find(|f| !tests.iter().any(|(n, _)| n == *f)) {
        println!("e2e runner: {unknown:?} is listed to start first but is no test: fix the list");
        return ExitCode::FAILURE;
    }
    let mut tests = tests;
    tests.sort_by_key(|(name, _)| first.iter().position(|f| f == name).unwrap_or(first.len()));
    let chosen: Vec<Test> = tests
        .into_iter()
        .filter(|(name, _)| {
            (a.filters.is_empty()
                || a.filters.iter().any(|f| {
                    if a.exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                }))
                && !a.skip.iter().any(|s| name.contains(s.as_str()))
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if a.list {
        for (name, _) in &chosen {
            let _ = writeln!(out, "{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    drop(out);
    // Panics are kept per test and shown at the end, not interleaved as tests run.
    std::panic::set_hook(Box::new(|info| {
        if info.payload().downcast_ref::<Skip>().is_some() {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
            })
            .unwrap_or_else(|| "(a panic without a message)".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let bt = std::backtrace::Backtrace::capture();
        let text = format!(
            "thread '{}' panicked{place}:\n{msg}\n{}",
            thread.name().unwrap_or("?"),
            if bt.status() == std::backtrace::BacktraceStatus::Captured {
                format!("stack backtrace:\n{bt}")
            } else {
                String::new()
            }
        );
        PANIC.with(|p| *p.borrow_mut() = Some(text));
    }));

    let start = Instant::now();
    println!(
        "\nrunning {} test{}",
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" }
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(String, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..a.threads.min(chosen.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((name, f)) = chosen.get(i) else {
                        break;
                    };
                    let f = *f;
                    let began = Instant::now();
                    // Its own thread, named as libtest names it, so a panic is this test's.
                    let joined = std::thread::Builder::new()
                        .name(name.clone())
                        .spawn(move || {
                            let r = std::panic::catch_unwind(f);
                            (r, PANIC.with(|p| p.borrow_mut().take()))
                        })
                        .map(|h| h.join());
                    let outcome = match joined {
                        Ok(Ok((Ok(()), _))) => Outcome::Passed,
                        Ok(Ok((Err(payload), said))) => match payload.downcast_ref::<Skip>() {
                            Some(Skip(tool)) => Outcome::Skipped(tool),
                            None => Outcome::Failed(said.unwrap_or_default()),
                        },
                        Ok(Err(_)) => Outcome::Failed("the test's thread died".into()),
                        Err(e) => Outcome::Failed(format!("cannot start a thread: {e}")),
                    };
                    let took = began.elapsed().as_secs_f64();
                    let line = match &outcome {
                        Outcome::Passed => format!("ok ({took:.1} s)"),
                        Outcome::Failed(_) => format!("FAILED ({took:.1} s)"),
                        Outcome::Skipped(tool) => format!(
                            "skipped (needs {tool}; Debian: {})",
                            crate::Tool::named(tool).map_or("?", |t| t.package)
                        ),
                    };
                    println!("test {name} ... {line}");
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((name.clone(), outcome));
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let passed = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Passed))
        .count();
    let mut failed: Vec<(&String, &String)> = results
        .iter()
        .filter_map(|(n, o)| match o {
            Outcome::Failed(why) => Some((n, why)),
            _ => None,
        })
        .collect();
    failed.sort();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, o) in &results {
        if let Outcome::Skipped(tool) = o {
            *skipped.entry(tool).or_default() += 1;
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:\n");
        for (name, why) in &failed {
            println!("---- {name} ----\n{why}");
        }
        println!("failures:");
        for (name, _) in &failed {
            println!("    {name}");
        }
    }
    let n_skipped: usize = skipped.values().sum();
    let needs = if skipped.is_empty() {
        String::new()
    } else {
        format!(
            ": needs {}",
            skipped.keys().copied().collect::<Vec<_>>().join(", ")
        )
    };
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {n_skipped} skipped{needs}; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    if n_skipped > 0 {
        println!(
            "{passed} passed, {n_skipped} skipped{needs} (install them to run every test: see the README; CI and GHAPP_TEST_ALL=1 make a missing tool a failure)\n"
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
