//! `flotilla-service`: any of the five services, chosen by `FLOTILLA_SERVICE` (`provisioner`, `dns`,
//! `firewall`, `sync`, `autoscaler`), started exactly as its own binary's `main` starts it
//! (`flotilla_runtime::host::main` with the service's definition and routes, the same arguments).
//!
//! The whole-system tests run every service as a process they can SIGKILL; Cargo gives a package's tests
//! only its own binaries, so this one stands in for the five `main.rs` files, which are one line each.

use std::process::ExitCode;

fn main() -> ExitCode {
    let service = std::env::var("FLOTILLA_SERVICE").unwrap_or_default();
    match service.as_str() {
        "provisioner" => {
            flotilla_runtime::host::main(flotilla_provisioner::DEF, flotilla_provisioner::routes)
        }
        "dns" => flotilla_runtime::host::main(flotilla_dns::DEF, flotilla_dns::routes),
        "firewall" => flotilla_runtime::host::main(flotilla_firewall::DEF, flotilla_firewall::routes),
        "sync" => flotilla_runtime::host::main(flotilla_sync::DEF, flotilla_sync::routes),
        "autoscaler" => flotilla_runtime::host::main(flotilla_autoscaler::DEF, flotilla_autoscaler::routes),
        other => {
            eprintln!(
                "flotilla-service: FLOTILLA_SERVICE is {other:?}; set it to provisioner, dns, firewall, sync or autoscaler"
            );
            ExitCode::from(2)
        }
    }
}
