//! Optional persistence: the whole state as one JSON file, rewritten (atomically) shortly after each
//! change and on shutdown, and read back at start-up.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::SimError;
use crate::sim::Sim;
use crate::world::World;

/// The file in the state directory.
const FILE: &str = "state.json";

/// Writes the state to a directory.
pub(crate) struct Persister {
    path: PathBuf,
    notify: Notify,
}

impl Persister {
    /// Persistence into `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self, SimError> {
        std::fs::create_dir_all(dir).map_err(|e| SimError::State {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            path: dir.join(FILE),
            notify: Notify::new(),
        })
    }

    /// The state saved in `dir`, or an empty one.
    pub fn load(&self) -> Result<World, SimError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SimError::State {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(World::default()),
            Err(e) => Err(SimError::State {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Asks for a save soon.
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    /// Saves `world` now.
    pub fn save(&self, world: &World) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(world).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Saves after every poke (coalescing bursts) until `stop`.
    pub async fn run(sim: Weak<Sim>, stop: CancellationToken) {
        loop {
            let notified = match sim.upgrade() {
                Some(s) => {
                    let Some(p) = &s.persister else { return };
                    // Register interest before dropping the strong reference.
                    let fut = p.notify.notified();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = fut => true,
                    }
                }
                None => return,
            };
            if notified {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match sim.upgrade() {
                    Some(s) => s.save_now(),
                    None => return,
                }
            }
        }
    }
}
