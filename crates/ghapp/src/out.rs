//! stdout, for the commands that write their output there. A reader that went away
//! (`ghapp installations | head -1`) ends the process quietly with status 141, as a process
//! killed by SIGPIPE reports it: never a panic, never a message.

use std::io::Write;

/// `println!` for command output: `outln!("{x}")`.
macro_rules! outln {
    () => {
        $crate::out::bytes(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::out::bytes(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use outln;

/// Writes `b` to stdout and flushes it.
pub(crate) fn bytes(b: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(b).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        let _ = writeln!(std::io::stderr(), "ghapp: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
