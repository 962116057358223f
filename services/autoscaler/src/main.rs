//! `flotilla-autoscaler`: see the library crate.

fn main() -> std::process::ExitCode {
    flotilla_runtime::host::main(flotilla_autoscaler::DEF, flotilla_autoscaler::routes)
}
