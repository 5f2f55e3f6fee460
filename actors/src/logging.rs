//! Log output through `tracing`: `RUST_LOG` selects what is shown (default `info`).
//!
//! Logs go to stderr, so stdout carries only a program's own output. They are coloured only
//! when stderr is a terminal (and `NO_COLOR` is unset or empty): piped or redirected logs carry
//! no ANSI escape codes.

use std::io::IsTerminal;

/// Installs a formatting subscriber once, showing `info` and above unless `RUST_LOG` says
/// otherwise; later calls do nothing.
pub fn init() {
    init_with_default("info");
}

/// As [`init`], with `directives` (an `EnvFilter`, e.g. `warn`) when `RUST_LOG` is unset or
/// invalid.
pub fn init_with_default(directives: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .try_init();
}

/// Whether log lines may carry ANSI colour: stderr is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>; `with_ansi` would otherwise override it).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
