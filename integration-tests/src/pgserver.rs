//! A PostgreSQL server of a test's own (initdb in a temporary directory, on a free port, trust auth), for
//! the tests that kill and restart the database under the services. Run as the `postgres` user when the
//! test runs as root (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A private PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

impl PgServer {
    /// Initialises and starts a server; `None` (said on stderr) when PostgreSQL's programs are not
    /// installed outside CI. In CI their absence fails the test.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                !crate::in_ci(),
                "CI=true but PostgreSQL's initdb is not installed (apt-get install postgresql)"
            );
            eprintln!("SKIPPED: PostgreSQL's initdb is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = running_as_root();
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        if as_postgres {
            // The postgres user must reach and own its directory.
            let owner = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(owner.success(), "chown of the PostgreSQL directory failed");
        }
        let mut server = Self {
            bin,
            data,
            log,
            port: crate::free_port(),
            as_postgres,
            _dir: dir,
        };
        let init = server
            .command("initdb")
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(&server.data)
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // A port free when chosen may be taken before the server binds it (by another test's outgoing
        // connection: the kernel hands out the same range): another port then.
        for attempt in 1.. {
            match server.try_start() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {
                    server.port = crate::free_port();
                }
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        Some(server)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether the server runs (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .args(["status", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the server (after [`PgServer::kill`]) and waits until it takes connections; nothing when it
    /// runs already (two overlapping faults each start it again).
    pub fn start_again(&self) {
        if self.is_running() {
            return;
        }
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not start:\n{log}");
        }
    }

    /// Starts the server and waits until it takes connections; its log when it does not.
    fn try_start(&self) -> Result<(), String> {
        // What this attempt logs (the log goes on across restarts).
        let from = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.data.parent().unwrap_or(Path::new("/tmp")).display()
        );
        let status = self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-o", &options])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        if status.success() {
            Ok(())
        } else {
            let log = std::fs::read(&self.log).unwrap_or_default();
            let this = log.get(usize::try_from(from).unwrap_or(0)..).unwrap_or(&log);
            Err(String::from_utf8_lossy(this).into_owned())
        }
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`: every backend killed, crash recovery on
    /// the next start), as a crashed or restarted database host does.
    pub fn kill(&self) {
        // Stopped already (overlapping faults): pg_ctl says so on stderr, which is not worth showing.
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Creates `database`.
    pub async fn create_database(&self, database: &str) {
        let pool = tokio::time::timeout(
            Duration::from_secs(30),
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&self.url("postgres")),
        )
        .await
        .expect("PostgreSQL answers")
        .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&pool)
            .await
            .expect("create database");
        pool.close().await;
    }
}

/// Whether this process runs as root (the owner of `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
    }
}
