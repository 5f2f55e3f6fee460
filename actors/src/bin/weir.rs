//! The `weir` command line: `weir run JOB_FILE`, `weir savepoint`, `weir stop`, ... (see
//! `weir --help` and `weir_actors::cli`). The built-in operators only; a program with its own
//! operators calls `weir_actors::cli::main` with its registry.

fn main() -> std::process::ExitCode {
    weir_actors::cli::main(
        std::env::args_os(),
        &weir_actors::weir::jobfile::Registry::new(),
    )
}
