//! `flotilla-firewall`: see the library crate.

fn main() -> std::process::ExitCode {
    flotilla_runtime::host::main(flotilla_firewall::DEF, flotilla_firewall::routes)
}
