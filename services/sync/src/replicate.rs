//! One replication pass of a bucket between two endpoints (two regions' datastores, on any providers),
//! a chunk of keys at a time ([`crate::chunks`]): both sides listed page by page (no HEAD per object),
//! each chunk planned ([`crate::plan::plan`]) against its rows of the base and applied — losers of
//! conflicts kept first, then copies (part by part, so memory stays at one part whatever the size), each
//! object about to be overwritten or deleted kept under the backup prefix first when there is one — and
//! the deletions last, once every chunk was listed and the max-delete guard agrees. What failed keeps its
//! old base and is planned again the same way next pass.

use chrono::{DateTime, Utc};
use flotilla_datastore::{Datastore, DatastoreError, Listing, Moved, ObjectInfo};

use crate::chunks::{self, Done, Options, Sides, origin_of};
use crate::plan::{Action, Base, Entry, Manifest, Rules, Side};
use crate::store::{PairKey, SyncStore};

pub use crate::chunks::PassReport;

/// How many objects a pass copies or deletes at once unless `transfers` says otherwise (32 copied 10,000
/// small objects in 19.6 s where 16 took 33.9 s against the simulator; see BENCHMARKS.md).
pub const TRANSFERS: usize = 32;

/// What went wrong with a pass as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A side could not be listed, or the base read or written: what was applied before stays applied
    /// (and recorded), no deletion was made.
    #[error("bucket {bucket}: {message}")]
    Failed {
        /// The bucket.
        bucket: String,
        /// Why.
        message: String,
    },
}

/// One bucket between two endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// Side `a`.
    pub a: &'a Datastore,
    /// Side `b`.
    pub b: &'a Datastore,
    /// The bucket (the same name on both).
    pub bucket: &'a str,
}

/// Which sides are known unchanged (by their stamps, [`crate::stamps`]): their base is their manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Known {
    /// Side `a`.
    pub a: bool,
    /// Side `b`.
    pub b: bool,
}

impl<'a> Pair<'a> {
    fn side(&self, s: Side) -> &'a Datastore {
        match s {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// Runs one pass recorded in `store` under `key`, listing the sides not `known`, with `rules` —
    /// planned only, with `dry_run` (then nothing is written, the base included).
    pub async fn pass(
        &self,
        store: &SyncStore,
        key: &PairKey,
        known: Known,
        rules: &Rules,
        part_size: u64,
        dry_run: bool,
    ) -> Result<PassReport, PassError> {
        let sides = PairSides {
            pair: *self,
            rules,
            part_size,
            listings: [
                std::sync::Mutex::new(Some(self.a.listing(self.bucket, "", None))),
                std::sync::Mutex::new(Some(self.b.listing(self.bucket, "", None))),
            ],
        };
        let options = Options {
            rules,
            known_a: known.a,
            known_b: known.b,
            dry_run,
            base_page: self.a.list_page_size().min(self.b.list_page_size()),
        };
        Box::pin(chunks::pass(&sides, store, key, &options))
            .await
            .map_err(|message| PassError::Failed {
                bucket: self.bucket.to_owned(),
                message,
            })
    }
}

/// A pair as the sides of a chunked pass: each side's listing read page by page (taken out while a page
/// is read, put back after; gone once read to its end).
struct PairSides<'a, 'r> {
    pair: Pair<'a>,
    rules: &'r Rules,
    part_size: u64,
    listings: [std::sync::Mutex<Option<Listing<'a>>>; 2],
}

impl PairSides<'_, '_> {
    async fn copy(
        &self,
        from: Side,
        key: &str,
        to: Side,
        to_key: &str,
        size: u64,
    ) -> Result<Moved, DatastoreError> {
        // Boxed: a copy's future is large (retries, parts), and a pass awaits many.
        Box::pin(self.pair.side(from).copy_to(
            self.pair.bucket,
            key,
            self.pair.side(to),
            self.pair.bucket,
            to_key,
            size,
            self.part_size,
        ))
        .await
    }
}

impl Sides for PairSides<'_, '_> {
    async fn page(&self, side: Side) -> Result<Option<Vec<(String, Entry)>>, String> {
        let slot = &self.listings[usize::from(side == Side::B)];
        let Some(mut listing) = slot.lock().ok().and_then(|mut l| l.take()) else {
            return Ok(None);
        };
        let page = Box::pin(listing.next_page()).await;
        if let Ok(Some(_)) = &page
            && let Ok(mut l) = slot.lock()
        {
            *l = Some(listing);
        }
        match page {
            Ok(Some(objects)) => Ok(Some(manifest(&objects, self.rules).into_iter().collect())),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("side {side} could not be listed: {e}")),
        }
    }

    async fn prepare(&self, a: Manifest, _b: &Manifest, _base: Option<&Base>) -> Manifest {
        a
    }

    async fn apply(&self, action: &Action, a: &Manifest, b: &Manifest) -> Result<Done, String> {
        let sides = |s: Side| if s == Side::A { a } else { b };
        let done = match action {
            Action::KeepLoser { key, on, as_key } => {
                let size = sides(*on).get(key).map_or(0, |e| e.size);
                self.copy(*on, key, *on, as_key, size)
                    .await
                    .map(|_| Done::default())
            }
            Action::Copy { key, from, backup } => {
                let to = from.other();
                if let (Some(backup), Some(old)) = (backup, sides(to).get(key)) {
                    self.copy(to, key, to, backup, old.size)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let size = sides(*from).get(key).map_or(0, |e| e.size);
                self.copy(*from, key, to, key, size).await.map(|moved| Done {
                    entry: None,
                    origin: origin_of(&moved.metadata),
                })
            }
            Action::Delete { key, on, backup } => {
                if let (Some(backup), Some(old)) = (backup, sides(*on).get(key)) {
                    self.copy(*on, key, *on, backup, old.size)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Box::pin(self.pair.side(*on).delete(self.pair.bucket, key))
                    .await
                    .map(|()| Done::default())
            }
        };
        done.map_err(|e| e.to_string())
    }

    async fn relist(&self, side: Side, after: Option<&str>, upto: &str) -> Result<Manifest, String> {
        relist(self.pair.side(side), self.pair.bucket, after, upto, self.rules).await
    }
}

/// The entries of `bucket` on `store` for the keys in `(after, upto]`, as it holds them now.
pub async fn relist(
    store: &Datastore,
    bucket: &str,
    after: Option<&str>,
    upto: &str,
    rules: &Rules,
) -> Result<Manifest, String> {
    let mut out = Manifest::new();
    let mut listing = store.listing(bucket, "", after);
    while let Some(objects) = Box::pin(listing.next_page())
        .await
        .map_err(|e| format!("listing {bucket}: {e}"))?
    {
        let past = objects.last().is_none_or(|o| o.key.as_str() > upto);
        out.extend(
            manifest(&objects, rules)
                .into_iter()
                .filter(|(k, _)| k.as_str() <= upto),
        );
        if past {
            break;
        }
    }
    Ok(out)
}

/// A listing as a manifest, without the objects under the backup prefix, with each object's entity tag as
/// its checksum (the MD5 of a single-part object, the MD5 of the parts' MD5s for a multipart one: equal
/// for equal content written with the same part size, which every Flotilla writer uses). It is free with
/// the listing, so it is kept whatever `rules` compare by: it tells two equal writes from a conflict.
pub fn manifest(objects: &[ObjectInfo], rules: &Rules) -> Manifest {
    let skip = rules.backup_prefix.as_deref();
    objects
        .iter()
        .filter(|o| skip.is_none_or(|p| !o.key.starts_with(p)))
        .map(|o| {
            let modified: DateTime<Utc> = o
                .last_modified
                .map(DateTime::<Utc>::from)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            (
                o.key.clone(),
                Entry {
                    size: o.size,
                    modified,
                    checksum: o.etag.as_deref().map(flotilla_datastore::normal_etag),
                },
            )
        })
        .collect()
}
