//! The benchmark's floor: a trivial Rust program that prints two lines, as the helper does.

use std::io::Write;

fn main() {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"username=x-access-token\npassword=baseline\n");
}
