//! `flotilla-sync`: see the library crate.

fn main() -> std::process::ExitCode {
    flotilla_runtime::host::main(flotilla_sync::DEF, flotilla_sync::routes)
}
