//! Diagnostics on stderr. `SEAKEEPER_LOG=debug` shows debug lines (events skipped, retries);
//! warnings always show.

use std::sync::OnceLock;

fn debug_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("SEAKEEPER_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug"))
    })
}

/// A debug line (only with `SEAKEEPER_LOG=debug`).
pub fn debug(message: &str) {
    if debug_enabled() {
        eprintln!("debug: {message}");
    }
}

/// A warning.
pub fn warn(message: &str) {
    eprintln!("warning: {message}");
}
