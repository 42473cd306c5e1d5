//! The binary as `ghapp emulator` and `ghapp demo` run it: both commands, and the helper under
//! its name (what the demo puts on git's PATH).

use std::process::Command;

#[test]
fn it_has_both_commands_and_is_the_helper_under_its_name() {
    let exe = env!("CARGO_BIN_EXE_ghapp-emulator");
    let help = Command::new(exe).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{text}");
    for c in ["emulator", "demo"] {
        assert!(text.contains(c), "{c} in {text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("git-credential-ghapp");
    std::os::unix::fs::symlink(exe, &helper).unwrap();
    // The helper's own usage, not clap's: it dispatched on its name.
    let out = Command::new(&helper).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("usage: git-credential-ghapp <get|store|erase>"),
        "{err}"
    );
}
