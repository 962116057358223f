//! A webroot on the local disk as one side of a pass: its manifest (one walk, no file read), and the
//! writes an agent makes — each atomic (a temporary file in the same directory, flushed, then renamed
//! over the old one), so that a web server never serves half a file and an agent killed mid-transfer
//! leaves only a temporary file, removed at its next start.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::plan::{Entry, Manifest};

/// The name prefix of the agent's temporary files (never pushed, removed when found at start).
pub const TEMP_PREFIX: &str = ".flotilla-part-";

/// What goes wrong with the local side.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// An exclude pattern does not parse.
    #[error("exclude pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// A key that cannot be a path below the webroot (absolute, `..`, empty parts): refused, so that a
    /// bucket can never make an agent write outside its webroot.
    #[error("key {0:?} is not a relative path below the webroot")]
    UnsafeKey(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The paths an agent leaves alone.
#[derive(Debug, Clone)]
pub struct Excludes(GlobSet);

impl Excludes {
    /// From glob patterns relative to the webroot (`wp-config.php`, `wp-content/uploads/**`, `**/*.tmp`).
    pub fn new(patterns: &[String]) -> Result<Self, LocalError> {
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = Glob::new(pattern).map_err(|e| LocalError::Pattern {
                pattern: pattern.clone(),
                message: e.kind().to_string(),
            })?;
            set.add(glob);
            // `dir/**` leaves the directory itself alone too.
            if let Some(dir) = pattern.strip_suffix("/**")
                && let Ok(glob) = Glob::new(dir)
            {
                set.add(glob);
            }
        }
        let set = set.build().map_err(|e| LocalError::Pattern {
            pattern: patterns.join(", "),
            message: e.to_string(),
        })?;
        Ok(Self(set))
    }

    /// Whether `key` (a relative path with `/`) is left alone; the agent's own temporary files always are.
    pub fn excluded(&self, key: &str) -> bool {
        let name = key.rsplit('/').next().unwrap_or(key);
        name.starts_with(TEMP_PREFIX) || self.0.is_match(key)
    }
}

/// The local path of `key` below `root`, refusing any key that would leave it.
pub fn path_of(root: &Path, key: &str) -> Result<PathBuf, LocalError> {
    let relative = Path::new(key);
    let safe = !key.is_empty()
        && !key.contains('\\')
        && relative.components().all(|c| matches!(c, Component::Normal(_)))
        && !key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if !safe {
        return Err(LocalError::UnsafeKey(key.to_owned()));
    }
    Ok(root.join(relative))
}

/// The key of `path` below `root` (`/`-separated), if it is a UTF-8 path below it.
pub fn key_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
    let key = parts?.join("/");
    (!key.is_empty()).then_some(key)
}

/// When the file at `path` last changed here in any way — written, or moved or unpacked into the webroot
/// with an older modification time — as far as the file system tells: its status-change time (`ctime`)
/// where there is one, else its modification time, never later than now. `None` when it cannot be read.
pub fn changed_at(path: &Path) -> Option<DateTime<Utc>> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let changed = {
        use std::os::unix::fs::MetadataExt;
        u32::try_from(meta.ctime_nsec())
            .ok()
            .and_then(|ns| DateTime::from_timestamp(meta.ctime(), ns))
    };
    #[cfg(not(unix))]
    let changed = meta.modified().ok().map(DateTime::<Utc>::from);
    changed.map(|t| t.min(Utc::now()))
}

/// The entry of a file's metadata: its size and modification time, as precise as the file system keeps
/// it (comparisons with an object store's coarser times are made at the coarser precision:
/// [`crate::plan::same_time`]).
pub fn entry_of(meta: &std::fs::Metadata) -> Entry {
    let modified = meta
        .modified()
        .ok()
        .map(DateTime::<Utc>::from)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    Entry {
        size: meta.len(),
        modified,
        checksum: None,
    }
}

/// The manifest of the files below `root` that are not excluded (see [`walk_sorted`]), whole.
pub fn manifest(root: &Path, excludes: &Excludes) -> Result<Manifest, LocalError> {
    let mut out = Manifest::new();
    walk_sorted(root, excludes, 1024, |batch| {
        out.extend(batch);
        true
    })?;
    Ok(out)
}

/// Walks the files below `root` that are not excluded in the order of their keys, byte by byte (the order
/// of S3 listings), handing them to `emit` `batch` at a time until it returns `false`: only one batch and
/// one directory's names are held at a time. Symbolic links and special files are left out; a file or
/// directory that vanishes while walked is simply not listed; the agent's temporary files left by a
/// process killed mid-transfer are removed. A missing `root` is created.
pub fn walk_sorted(
    root: &Path,
    excludes: &Excludes,
    batch: usize,
    mut emit: impl FnMut(Vec<(String, Entry)>) -> bool,
) -> Result<(), LocalError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    // Each directory's entries sorted by name, a directory's name followed by `/`: then a depth-first
    // walk visits keys in byte order (`a-b` before `a/x`, since `-` sorts before `/`).
    let read = |dir: &Path| -> Result<Vec<(String, PathBuf, bool)>, LocalError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != root => return Ok(Vec::new()),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let Ok(entry) = entry else {
                continue;
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if kind.is_dir() {
                out.push((format!("{name}/"), entry.path(), true));
            } else if kind.is_file() {
                out.push((name, entry.path(), false));
            }
        }
        out.sort_unstable_by(|x, y| x.0.cmp(&y.0));
        Ok(out)
    };
    let mut stack = vec![read(root)?.into_iter()];
    let mut out = Vec::with_capacity(batch);
    while let Some(top) = stack.last_mut() {
        let Some((name, path, is_dir)) = top.next() else {
            stack.pop();
            continue;
        };
        if is_dir {
            stack.push(read(&path)?.into_iter());
            continue;
        }
        if name.starts_with(TEMP_PREFIX) {
            // Left by a transfer that never finished: never served, never pushed.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Some(key) = key_of(root, &path) else {
            continue;
        };
        if excludes.excluded(&key) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        out.push((key, entry_of(&meta)));
        if out.len() >= batch && !emit(std::mem::replace(&mut out, Vec::with_capacity(batch))) {
            return Ok(());
        }
    }
    if !out.is_empty() {
        emit(out);
    }
    Ok(())
}

/// Fills in the checksum of every entry of `manifest` (files below `root`): the entity tag its object has
/// once written with `part_size` ([`flotilla_datastore::etag_of_file`]), so that it compares with the
/// bucket's listing. A file whose size and modification time are those of its entry in `known` (the
/// last base) keeps that entry's checksum: only new and changed files are read. A file that cannot be read
/// keeps none (it compares by size and time).
pub fn checksums(root: &Path, manifest: &mut Manifest, known: Option<&Manifest>, part_size: u64) {
    for (key, entry) in manifest.iter_mut() {
        if let Some(was) = known.and_then(|k| k.get(key))
            && was.size == entry.size
            && was.modified == entry.modified
            && was.checksum.is_some()
        {
            entry.checksum.clone_from(&was.checksum);
            continue;
        }
        let Ok(path) = path_of(root, key) else {
            continue;
        };
        entry.checksum = flotilla_datastore::etag_of_file(&path, entry.size, part_size).ok();
    }
}

/// Fills in the checksum of the entries of `manifest` named in `keys` (files below `root`), as
/// [`checksums`] does; a file that cannot be read keeps none.
pub fn checksums_of(root: &Path, manifest: &mut Manifest, keys: &[String], part_size: u64) {
    for key in keys {
        let (Some(entry), Ok(path)) = (manifest.get_mut(key), path_of(root, key)) else {
            continue;
        };
        entry.checksum = flotilla_datastore::etag_of_file(&path, entry.size, part_size).ok();
    }
}

/// A temporary path beside `path` (same directory, so the rename is atomic), its parents created.
pub fn temp_beside(path: &Path) -> Result<PathBuf, LocalError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    Ok(dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple())))
}

/// Puts `temp` in place of `path` (atomic on one filesystem), and gives its entry.
pub fn commit(temp: &Path, path: &Path) -> Result<Entry, LocalError> {
    std::fs::rename(temp, path).map_err(io(path))?;
    let meta = std::fs::metadata(path).map_err(io(path))?;
    Ok(entry_of(&meta))
}

/// Copies `from` to `to` atomically (a conflict's loser kept beside the winner).
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), LocalError> {
    let temp = temp_beside(to)?;
    std::fs::copy(from, &temp).map_err(io(from))?;
    commit(&temp, to).map(drop)
}

/// Removes the file at `path` (already gone is success), then its parent directories below `root` that
/// are left empty.
pub fn remove(root: &Path, path: &Path) -> Result<(), LocalError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_gives_keys_in_byte_order_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let keys = ["a-b", "a/x", "a/y/z", "a.txt", "b", "a/y-1", "A", "a/y.d/q", "é"];
        for k in keys {
            let path = root.join(k);
            std::fs::create_dir_all(path.parent().unwrap_or(root)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, k).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(root.join(format!("a/{TEMP_PREFIX}1")), b"half").unwrap_or_else(|e| panic!("{e}"));
        let excludes = Excludes::new(&["b".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
        let mut batches = Vec::new();
        walk_sorted(root, &excludes, 3, |batch| {
            batches.push(batch.into_iter().map(|(k, _)| k).collect::<Vec<_>>());
            true
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(batches.iter().all(|b| b.len() <= 3), "{batches:?}");
        let walked: Vec<String> = batches.concat();
        let mut expected: Vec<String> = keys
            .iter()
            .filter(|k| **k != "b")
            .map(|k| (*k).to_owned())
            .collect();
        expected.sort();
        assert_eq!(walked, expected);
        assert!(
            !root.join(format!("a/{TEMP_PREFIX}1")).exists(),
            "the temporary file was left"
        );
        // Stopped when asked.
        let mut seen = 0;
        walk_sorted(root, &excludes, 2, |_| {
            seen += 1;
            false
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, 1);
    }

    #[test]
    fn checksums_are_read_only_for_new_and_changed_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::write(root.join("a.html"), b"aaaa").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("b.html"), b"bbbb").unwrap_or_else(|e| panic!("{e}"));
        let excludes = Excludes::new(&[]).unwrap_or_else(|e| panic!("{e}"));
        let mut m = manifest(root, &excludes).unwrap_or_else(|e| panic!("{e}"));
        // `a.html` as the base knew it (same size and time): its checksum is taken, not read.
        let mut known = m.clone();
        if let Some(e) = known.get_mut("a.html") {
            e.checksum = Some("from-the-base".into());
        }
        known.remove("b.html");
        checksums(root, &mut m, Some(&known), 5 << 20);
        assert_eq!(m["a.html"].checksum.as_deref(), Some("from-the-base"));
        // `b.html` is new: read (the MD5 of its bytes, as S3 tags a one-part object).
        assert_eq!(
            m["b.html"].checksum.as_deref(),
            Some("65ba841e01d6db7733e90a5b7f9e6f80")
        );
        // Changed since the base (another size): read again.
        std::fs::write(root.join("a.html"), b"aaaaa").unwrap_or_else(|e| panic!("{e}"));
        let mut m = manifest(root, &excludes).unwrap_or_else(|e| panic!("{e}"));
        checksums(root, &mut m, Some(&known), 5 << 20);
        assert_eq!(
            m["a.html"].checksum.as_deref(),
            Some("594f803b380a41396ed63dca39503542")
        );
    }

    #[test]
    fn keys_never_leave_the_webroot() {
        let root = Path::new("/srv/www");
        assert_eq!(
            path_of(root, "a/b.php").ok(),
            Some(PathBuf::from("/srv/www/a/b.php"))
        );
        for bad in [
            "",
            "../etc/passwd",
            "/etc/passwd",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\b",
            "a/",
        ] {
            assert!(path_of(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excludes_match_relative_paths_and_the_agents_temporary_files() {
        let ex = Excludes::new(&[
            "wp-config.php".into(),
            "wp-content/uploads/**".into(),
            "**/*.tmp".into(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(ex.excluded("wp-config.php"));
        assert!(ex.excluded("wp-content/uploads/2026/a.png"));
        assert!(ex.excluded("a/b/c.tmp"));
        assert!(ex.excluded(&format!("x/{TEMP_PREFIX}123")));
        assert!(!ex.excluded("index.php"));
        assert!(!ex.excluded("sub/wp-config.php.bak"));
        assert!(Excludes::new(&["a/[".into()]).is_err());
    }

    #[test]
    fn the_manifest_lists_files_leaves_out_excluded_and_removes_temporaries() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("index.php"), "hi").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("a/b/c.css"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("a/skip.tmp"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join(format!("a/{TEMP_PREFIX}1")), "half").unwrap_or_else(|e| panic!("{e}"));
        let ex = Excludes::new(&["**/*.tmp".into()]).unwrap_or_else(|e| panic!("{e}"));
        let m = manifest(root, &ex).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a/b/c.css", "index.php"]);
        assert_eq!(m["index.php"].size, 2);
        assert!(!root.join(format!("a/{TEMP_PREFIX}1")).exists());
        remove(root, &root.join("a/b/c.css")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!root.join("a/b").exists() && root.join("a").exists());
    }
}
