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

/// A usable `nats-server`, found or fetched as `flotilla dev` does it ([`flotilla_natsbin::ensure`]):
/// `NATS_SERVER_BIN`, else a new-enough one on `PATH`, else the pinned release in the workspace's
/// `target/flotilla-bin/` (fetched there once, checked by its SHA-256). A loud failure when none can be
/// had.
pub fn nats_server_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target")
            .join("flotilla-bin");
        // On a thread of its own: tests ask from inside their runtime.
        let fetched = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(flotilla_natsbin::ensure(&dir, |line| eprintln!("{line}")))
                .map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the fetch panicked".into()));
        fetched.unwrap_or_else(|why| panic!("no usable nats-server: {why}"))
    })
    .clone()
}

/// A `nats-server` older than 2.10 on `PATH`, if there is one (to test the refusal).
pub fn find_old_nats_server() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|c| {
            c.is_file() && flotilla_natsbin::version_of(c).is_some_and(|v| !flotilla_natsbin::new_enough(&v))
        })
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

/// A NATS cluster of `n` nodes with JetStream on loopback, each node restartable on its own ports and
/// store (for the tests that kill a node under the services).
pub struct TestCluster {
    bin: PathBuf,
    nodes: Vec<Option<Child>>,
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    cluster_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` nodes (3 for a quorum that survives one loss) and waits until each accepts connections.
    /// A new cluster elects its JetStream meta leader only once every node it was given is up.
    pub async fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Self {
            bin: nats_server_bin(),
            nodes: (0..n).map(|_| None).collect(),
            dirs: (0..n).map(|i| dir.path().join(format!("n{i}"))).collect(),
            ports: (0..n).map(|_| free_port()).collect(),
            cluster_ports: (0..n).map(|_| free_port()).collect(),
            _dir: dir,
        };
        for i in 0..n {
            cluster.start_node(i).await;
        }
        cluster
    }

    /// Every node's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect()
    }

    /// Starts node `i` (again): same name, ports and store.
    pub async fn start_node(&mut self, i: usize) {
        std::fs::create_dir_all(&self.dirs[i]).expect("node directory");
        let routes = self
            .cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let port = self.ports[i].to_string();
        let cluster = format!("nats://127.0.0.1:{}", self.cluster_ports[i]);
        let name = format!("n{i}");
        let (child, _) = start_server_with(
            &self.bin,
            &self.dirs[i],
            &[
                "-p",
                &port,
                "--server_name",
                &name,
                "--cluster_name",
                "flotilla",
                "--cluster",
                &cluster,
                "--routes",
                &routes,
            ],
        )
        .await;
        self.nodes[i] = Some(child);
    }

    /// SIGKILLs node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}
