//! The test tiers, as a newcomer meets them: with the optional tools hidden
//! (`GHAPP_TEST_BARE=1`, as on a machine with only Rust, a C compiler and git) a test that
//! needs one is skipped and the summary names it; with `GHAPP_TEST_ALL=1` the same test fails,
//! naming the tool and its Debian package. This suite's own binary is run, for one test.

use std::process::Command;

fn run_one(test: &str, all: bool) -> (Option<i32>, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test])
        .env_remove("CI")
        .env("GHAPP_TEST_BARE", "1");
    if all {
        cmd.env("GHAPP_TEST_ALL", "1");
    } else {
        cmd.env_remove("GHAPP_TEST_ALL");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn a_missing_tool_is_skipped_and_counted_or_with_all_a_failure() {
    let test = "lfs::lfs_push_and_clone_on_a_host_through_the_helper";
    let (code, out) = run_one(test, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "test {test} ... skipped (needs git-lfs; Debian: git-lfs)"
        )),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 skipped: needs git-lfs"), "{out}");

    let (code, out) = run_one(test, true);
    assert_eq!(code, Some(101), "{out}");
    assert!(out.contains(&format!("test {test} ... FAILED")), "{out}");
    assert!(
        out.contains("this test needs git-lfs (Debian: git-lfs), which this machine lacks"),
        "{out}"
    );
}

pub(crate) const TESTS: &[(&str, fn())] = &[(
    "a_missing_tool_is_skipped_and_counted_or_with_all_a_failure",
    a_missing_tool_is_skipped_and_counted_or_with_all_a_failure,
)];
