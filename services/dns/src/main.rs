//! `flotilla-dns`: see the library crate.

fn main() -> std::process::ExitCode {
    flotilla_runtime::host::main(flotilla_dns::DEF, flotilla_dns::routes)
}
