//! A service binary run as a process, for the tests that SIGKILL it: started with systemd's notify
//! socket and waited for until it says `READY=1`; and a seeded, replayable random sequence for where the
//! kills land.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};

/// Starts `bin --config config` (killed when dropped), its log in `dir/<name>-<n>.log`, and waits for
/// its `READY=1` on `notify` (bound at `notify_path`). Panics with the log when it never comes.
pub async fn start_binary(
    bin: &str,
    config: &Path,
    notify_path: &Path,
    notify: &UnixDatagram,
    dir: &Path,
    name: &str,
    n: u64,
) -> (Child, PathBuf) {
    start_binary_with(bin, config, notify_path, notify, dir, name, n, &[]).await
}

/// As [`start_binary`], with `envs` set (`WATCHDOG_USEC`, say).
#[allow(clippy::too_many_arguments)]
pub async fn start_binary_with(
    bin: &str,
    config: &Path,
    notify_path: &Path,
    notify: &UnixDatagram,
    dir: &Path,
    name: &str,
    n: u64,
    envs: &[(&str, &str)],
) -> (Child, PathBuf) {
    let log = dir.join(format!("{name}-{n}.log"));
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .envs(envs.iter().copied())
        .env("NOTIFY_SOCKET", notify_path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("the service binary starts");
    let mut buf = [0u8; 256];
    loop {
        let got = tokio::time::timeout(Duration::from_secs(30), notify.recv(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no READY=1:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .expect("the notify socket");
        if String::from_utf8_lossy(&buf[..got]).contains("READY=1") {
            break;
        }
    }
    (child, log)
}

/// SplitMix64: a seeded, replayable sequence.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}
