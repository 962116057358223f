//! Bucket stamps: how a pass knows a side unchanged without listing it.
//!
//! Stamps are used for the webroot-sync bucket only: Flotilla alone writes it. Asset buckets (written
//! through the webservers' mounts) and the multi-region bucket (the original toolkit's scripts, the
//! firewall's markers) have writers that leave no stamp, so they are listed on every pass.
//!
//! Every writer of the webroot-sync bucket — the replicator, an agent pushing its webroot, a restore — leaves
//! a stamp after it changed the bucket on an endpoint: a new random id in the sync service's KV bucket
//! (`flotilla_sync_stamps`, key [`flotilla_bus::subject::stamp_key`]). A pass reads each side's stamp
//! *before* it lists that side, and records with its base, per side, the stamp at which the base is
//! exactly what the side holds. A later pass that finds the same stamp uses the base as that side's
//! manifest and lists nothing: a no-change run costs two KV reads, not a listing of every object.
//!
//! Why this is safe: a writer stamps only after its write, and the reader reads the stamp before it lists,
//! so a write the listing missed always comes with a stamp the reader has not seen. A writer that records
//! its own pass as exact stamps by compare-and-set on the stamp it read, so a stamp somebody else left in
//! between is never taken for its own. What leaves no stamp — a writer killed between its write and its
//! stamp, a tool outside Flotilla writing to the bucket — is found by the full comparison every
//! `full_compare_interval`, which lists every side whatever the stamps say.

use chrono::Utc;
use flotilla_bus::BusError;
use flotilla_bus::state::Bucket;
use flotilla_proto::BucketStamp;

use crate::plan::{Rules, Side};
use crate::replicate::{Known, Pair, PassReport};
use crate::store::{Exact, PairKey, SyncStore};

/// An endpoint's name in stamps, bases and events: `<provider>:<host>` (stable across restarts).
pub fn endpoint_name(e: &flotilla_spec::DatastoreEndpoint) -> String {
    format!("{}:{}", e.provider, e.host_base)
}

/// The KV bucket of stamps.
pub const STAMP_BUCKET: &str = "flotilla_sync_stamps";

/// A bucket on an endpoint, as stamps know it.
#[derive(Debug, Clone, Copy)]
pub struct Spot<'a> {
    /// The deployment.
    pub deployment: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The endpoint (`<provider>:<host>`).
    pub endpoint: &'a str,
}

/// A stamp as read: its id and the KV revision it was read at (for compare-and-set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The stamp's id.
    pub id: String,
    /// Its KV revision.
    pub revision: u64,
}

/// The stamps of every replicated bucket.
#[derive(Clone)]
pub struct Stamps {
    bucket: Bucket<BucketStamp>,
    writer: String,
}

impl Stamps {
    /// Stamps in `bucket`, left as `writer` (`replicator`, `agent:<machine>`, …).
    pub fn new(bucket: Bucket<BucketStamp>, writer: impl Into<String>) -> Self {
        Self {
            bucket,
            writer: writer.into(),
        }
    }

    fn stamp(&self) -> BucketStamp {
        BucketStamp {
            id: uuid::Uuid::new_v4().to_string(),
            writer: self.writer.clone(),
            at: Utc::now(),
        }
    }

    /// The current stamp of `spot`; one is left first when there is none yet, so that every read names a
    /// stamp a later write will change.
    pub async fn read(&self, spot: Spot<'_>) -> Result<Seen, BusError> {
        let key = flotilla_bus::subject::stamp_key(spot.deployment, spot.bucket, spot.endpoint)?;
        for _ in 0..3 {
            if let Some(v) = self.bucket.get(&key).await? {
                return Ok(Seen {
                    id: v.value.id,
                    revision: v.revision,
                });
            }
            let stamp = self.stamp();
            if let Ok(revision) = self.bucket.put_if(&key, &stamp, None).await? {
                return Ok(Seen {
                    id: stamp.id,
                    revision,
                });
            }
            // Somebody created it first: read theirs.
        }
        Err(BusError::JetStream {
            op: "read a bucket stamp",
            reason: format!("{key} was created and deleted three times while it was read"),
        })
    }

    /// Leaves a stamp on `spot` after a write: by compare-and-set on `seen` when given, returning the new
    /// stamp's id when nobody stamped in between (the caller may then record its pass as exact at it);
    /// otherwise (or when somebody did) a plain stamp, and `None`.
    pub async fn left(&self, spot: Spot<'_>, seen: Option<&Seen>) -> Result<Option<String>, BusError> {
        let key = flotilla_bus::subject::stamp_key(spot.deployment, spot.bucket, spot.endpoint)?;
        let stamp = self.stamp();
        if let Some(seen) = seen
            && self
                .bucket
                .put_if(&key, &stamp, Some(seen.revision))
                .await?
                .is_ok()
        {
            return Ok(Some(stamp.id));
        }
        self.bucket.put(&key, &self.stamp()).await?;
        Ok(None)
    }
}

/// The stamp bucket, opened (created when needed) on first use and again after a failure.
pub struct StampSource {
    topology: flotilla_bus::Topology,
    config: flotilla_bus::TopologyConfig,
    writer: String,
    stamps: tokio::sync::OnceCell<Stamps>,
}

impl StampSource {
    /// The stamps of `topology` (buckets replicated as `config` says), left as `writer`.
    pub fn new(
        topology: flotilla_bus::Topology,
        config: flotilla_bus::TopologyConfig,
        writer: impl Into<String>,
    ) -> Self {
        Self {
            topology,
            config,
            writer: writer.into(),
            stamps: tokio::sync::OnceCell::new(),
        }
    }

    /// The stamps; `None` (and a warning) when the bucket cannot be opened now: passes then list.
    pub async fn get(&self) -> Option<&Stamps> {
        let opened = self
            .stamps
            .get_or_try_init(|| async {
                let bucket = self
                    .topology
                    .service_bucket(
                        &self.config,
                        STAMP_BUCKET,
                        "Flotilla sync: who last wrote each replicated bucket on each endpoint",
                    )
                    .await?;
                Ok::<_, BusError>(Stamps::new(bucket, self.writer.clone()))
            })
            .await;
        match opened {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "sync: the stamp bucket cannot be opened; listing every side");
                None
            }
        }
    }
}

/// What a stamped pass needs besides the pair.
pub struct Stamped<'a> {
    /// The stamps (`None`: none to read — every side is listed, nothing is recorded exact).
    pub stamps: Option<&'a Stamps>,
    /// Where the base is kept.
    pub store: &'a SyncStore,
    /// The pair's key (its deployment, bucket and sides' endpoints).
    pub key: &'a PairKey,
    /// List every side whatever its stamp says (the full comparison).
    pub full: bool,
}

impl Stamped<'_> {
    fn spot(&self, side: Side) -> Spot<'_> {
        Spot {
            deployment: &self.key.deployment,
            bucket: &self.key.bucket,
            endpoint: match side {
                Side::A => &self.key.side_a,
                Side::B => &self.key.side_b,
            },
        }
    }

    async fn read(&self, side: Side, stamped: bool) -> Option<Seen> {
        let stamps = self.stamps.filter(|_| stamped)?;
        match stamps.read(self.spot(side)).await {
            Ok(seen) => Some(seen),
            Err(e) => {
                tracing::warn!(error = %e, bucket = %self.key.bucket, "sync: a bucket stamp could not be read; listing");
                None
            }
        }
    }

    /// After a pass that wrote to `side`: its stamp, and the id the base is exact at (if it is).
    async fn after(
        &self,
        side: Side,
        stamped: bool,
        seen: Option<Seen>,
        wrote: bool,
        exact: bool,
    ) -> Option<String> {
        let stamps = self.stamps.filter(|_| stamped)?;
        if !wrote {
            return seen.filter(|_| exact).map(|s| s.id);
        }
        let expected = seen.as_ref().filter(|_| exact);
        match stamps.left(self.spot(side), expected).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, bucket = %self.key.bucket, "sync: a bucket stamp could not be left");
                None
            }
        }
    }

    /// Before a pass: the stamps of the sides that are `stamped` buckets (an agent's webroot is not), read
    /// before anything is listed, and which sides they show unchanged since the base was recorded exact
    /// (none when `full`).
    pub async fn begin(&self, stamped: Known) -> Result<Begun, String> {
        let (seen_a, seen_b) = futures::join!(self.read(Side::A, stamped.a), self.read(Side::B, stamped.b));
        let exact = self
            .store
            .pair(self.key)
            .await
            .map_err(|e| e.to_string())?
            .filter(|p| p.complete)
            .map(|p| p.exact)
            .unwrap_or_default();
        let unchanged = |seen: &Option<Seen>, at: &Option<String>| {
            !self.full && seen.as_ref().is_some_and(|s| Some(&s.id) == at.as_ref())
        };
        let known = Known {
            a: unchanged(&seen_a, &exact.a),
            b: unchanged(&seen_b, &exact.b),
        };
        Ok(Begun {
            stamped,
            seen: (seen_a, seen_b),
            known,
        })
    }

    /// After a pass begun with `begun`: a stamp left on every stamped side written to (a plain one on
    /// each when the pass failed: it may have written before it did), and, when the pass recorded its
    /// base, the stamps that base is exact at.
    pub async fn end(&self, begun: Begun, done: Result<PassReport, String>) -> Result<PassReport, String> {
        let Begun {
            stamped,
            seen: (seen_a, seen_b),
            ..
        } = begun;
        let report = match done {
            Ok(r) => r,
            Err(e) => {
                self.after(Side::A, stamped.a, None, true, false).await;
                self.after(Side::B, stamped.b, None, true, false).await;
                return Err(e);
            }
        };
        let exact = Exact {
            a: self
                .after(Side::A, stamped.a, seen_a, report.wrote.0, report.exact)
                .await,
            b: self
                .after(Side::B, stamped.b, seen_b, report.wrote.1, report.exact)
                .await,
        };
        if report.based {
            crate::chunks::finish(self.store, self.key, &exact).await?;
        }
        Ok(report)
    }

    /// One pass of `pair` (both sides stamped buckets): each side's stamp read first; a side whose stamp is
    /// the one the recorded base is exact at is not listed (unless `full`); the new base recorded with,
    /// per side, the stamp it is exact at; a stamp left on every side written to. A pass with both sides
    /// known unchanged does nothing else (its report lists nothing and applies nothing).
    pub async fn pass(&self, pair: &Pair<'_>, rules: &Rules, part_size: u64) -> Result<PassReport, String> {
        let begun = self.begin(Known { a: true, b: true }).await?;
        let known = begun.known;
        if known.a && known.b {
            // Both sides exactly as the base: in step, nothing to list or do.
            return Ok(PassReport {
                exact: true,
                ..PassReport::default()
            });
        }
        let done = Box::pin(pair.pass(self.store, self.key, known, rules, part_size, false))
            .await
            .map_err(|e| e.to_string());
        self.end(begun, done).await
    }
}

/// A stamped pass under way (see [`Stamped::begin`]).
#[derive(Debug)]
pub struct Begun {
    /// The sides that are stamped buckets.
    stamped: Known,
    /// Their stamps as read before the pass.
    seen: (Option<Seen>, Option<Seen>),
    /// The sides known unchanged: their base is their manifest.
    pub known: Known,
}
