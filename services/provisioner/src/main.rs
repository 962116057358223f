//! `flotilla-provisioner`: see the library crate.

fn main() -> std::process::ExitCode {
    flotilla_runtime::host::main(flotilla_provisioner::DEF, flotilla_provisioner::routes)
}
