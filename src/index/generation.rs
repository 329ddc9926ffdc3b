//! Index generations on disk: each build writes a fresh directory under `DATA/index/`, then the
//! `CURRENT` pointer file is replaced atomically (write a temporary file, fsync, rename, fsync
//! the directory), then older generation directories are removed.
//!
//! A crash before the rename leaves the previous generation current; its half-written directory
//! is ignored and removed by the next successful build. Only one writer runs at a time
//! (`DATA/index.lock`, taken by `pipeline`, serialises the index steps of `sync` and `index`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;

/// On-disk format of a generation; bump on any incompatible change (2: flat `graph.bin` and
/// `vectors.f32` read path; 3: no hnsw_rs dump, so `hnsw_basename` is `None` even when there
/// are vectors, which format-2 code would read as "no vectors"; 4: keyword analysis with
/// Unicode normalisation, accent folding and version bases, see `index::analysis`).
pub const FORMAT_VERSION: u32 = 4;
/// The oldest format this build still opens and updates. Format 4 changed what the keyword
/// index holds, and queries are analysed the new way: an older keyword index is rebuilt, never
/// searched or updated.
pub const OLDEST_READABLE_FORMAT: u32 = 4;
/// The oldest format whose vectors a rebuild still reuses (`VectorCache::add_current_generation`):
/// the vector files are those of format 4 (format 2 adds an hnsw_rs dump, which is ignored).
pub const OLDEST_REUSABLE_VECTORS_FORMAT: u32 = 2;
/// The pointer file naming the current generation directory.
pub const CURRENT: &str = "CURRENT";
/// Per-generation metadata file.
pub const META: &str = "meta.json";
/// Prefix of generation directory names.
const PREFIX: &str = "gen-";

/// What `meta.json` records about one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Store generation this index was built from.
    pub generation: u64,
    /// sha256 of the model file the vectors came from.
    pub model_sha256: String,
    /// Vector dimension.
    pub dimension: usize,
    /// Rows (live and tombstoned).
    pub rows: u64,
    /// Live candidates.
    pub candidates: u64,
    /// Vectors in the HNSW graph (live and tombstoned).
    pub vectors: u64,
    /// Tombstoned vectors.
    pub tombstones: u64,
    /// Basename of the hnsw_rs dump of a format-2 generation (ignored). Always `None` since
    /// format 3, which writes no dump: whether there are vectors is [`Meta::vectors`].
    #[serde(default)]
    pub hnsw_basename: Option<String>,
    /// When this generation was written, ms since the epoch.
    pub written_at: i64,
    /// Lever's pipeline stage ids, in order, when this generation was first built: rows hold
    /// positions in this list. `None` in generations written before it was recorded.
    #[serde(default)]
    pub stage_ids: Option<Vec<String>>,
    /// A checksum of the stage and archive reason names (and reason types) the rows and
    /// documents were built with; `None` in generations written before it was recorded.
    #[serde(default)]
    pub reference_names: Option<String>,
    /// [`Embedder::settings_sha256`](super::Embedder::settings_sha256) of the embedder that
    /// made the vectors; `None` in generations written before it was recorded.
    #[serde(default)]
    pub embedding_settings: Option<String>,
}

impl Meta {
    /// Whether these vectors were made by `embedder`'s model file, tokenizer and settings (a
    /// generation that did not record its settings is judged by the model file alone).
    pub fn made_by(&self, embedder: &super::Embedder) -> bool {
        self.model_sha256 == embedder.model_sha256()
            && self
                .embedding_settings
                .as_deref()
                .is_none_or(|settings| settings == embedder.settings_sha256())
    }
}

/// The index root under a data folder.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// The directory name `CURRENT` points at, if any.
pub fn current_dir_name(data_dir: &Path) -> Result<Option<String>, Error> {
    let path = root(data_dir).join(CURRENT);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let name = s.trim();
            if !name.starts_with(PREFIX) || name.contains(['/', '\\']) {
                Err(Error::Corrupt {
                    path,
                    reason: "does not name a generation directory".to_owned(),
                })
            } else {
                Ok(Some(name.to_owned()))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Error::Corrupt {
            path,
            reason: "is not text".to_owned(),
        }),
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// The directory of the generation `CURRENT` points at, if any, for opening it: a pointer to a
/// directory that is gone is damage, named with its remedy, rather than a bare "file not found"
/// on the first file read. ([`current_dir_name`] alone only reads the pointer, as a reload poll
/// does.)
pub fn current_dir(data_dir: &Path) -> Result<Option<PathBuf>, Error> {
    let Some(name) = current_dir_name(data_dir)? else {
        return Ok(None);
    };
    let dir = root(data_dir).join(&name);
    if dir.is_dir() {
        Ok(Some(dir))
    } else {
        Err(Error::Corrupt {
            path: root(data_dir).join(CURRENT),
            reason: format!("names the generation directory {name}, which is missing"),
        })
    }
}

/// Creates a new, empty generation directory (unique even when rebuilding the same store
/// generation) and returns its name and path.
pub fn create_dir(data_dir: &Path, generation: u64) -> Result<(String, PathBuf), Error> {
    let root = root(data_dir);
    std::fs::create_dir_all(&root).map_err(|source| Error::Io {
        path: root.clone(),
        source,
    })?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("{PREFIX}{generation:012}-{stamp:x}-{}", std::process::id());
    let path = root.join(&name);
    std::fs::create_dir(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok((name, path))
}

/// Makes `name` the current generation atomically, then removes every other generation
/// directory (failures to remove are logged, not returned: the switch already happened).
pub fn switch_to(data_dir: &Path, name: &str) -> Result<(), Error> {
    let root = root(data_dir);
    write_file(&root.join(CURRENT), format!("{name}\n").as_bytes())?;
    remove_others(&root, name);
    Ok(())
}

fn remove_others(root: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX)
            && name != keep
            && let Err(e) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(dir = %name, error = %e, "could not remove an old index generation");
        }
    }
}

/// Writes `meta.json` into a generation directory.
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(|e| Error::Encode(e.to_string()))?;
    write_file(&dir.join(META), &bytes)
}

/// Reads `meta.json` and checks that its format version is one this build reads.
pub fn read_meta(dir: &Path) -> Result<Meta, Error> {
    read_meta_since(dir, OLDEST_READABLE_FORMAT)
}

/// Reads `meta.json` of a generation whose format is at least `oldest` (and at most this
/// build's).
pub fn read_meta_since(dir: &Path, oldest: u32) -> Result<Meta, Error> {
    let path = dir.join(META);
    let bytes = read_file(&path)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as u32;
    if !(oldest..=FORMAT_VERSION).contains(&found) {
        return Err(Error::VersionMismatch {
            found,
            expected: FORMAT_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| Error::Corrupt {
        path,
        reason: e.to_string(),
    })
}

/// Writes a file durably: temporary file, fsync, rename, fsync of the directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Reads a whole file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The store generation encoded in a generation directory name (`gen-000000000042-...`).
pub fn generation_of(dir_name: &str) -> Option<u64> {
    dir_name
        .strip_prefix(PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_read_back_from_the_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (name, _) = create_dir(tmp.path(), 42).unwrap();
        assert_eq!(generation_of(&name), Some(42));
        assert_eq!(current_dir_name(tmp.path()).unwrap(), None);
        switch_to(tmp.path(), &name).unwrap();
        assert_eq!(current_dir_name(tmp.path()).unwrap(), Some(name));
    }

    #[test]
    fn a_pointer_to_a_missing_generation_is_damage_not_an_io_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (name, dir) = create_dir(tmp.path(), 3).unwrap();
        switch_to(tmp.path(), &name).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(current_dir_name(tmp.path()).unwrap(), Some(name.clone()));
        let error = current_dir(tmp.path()).unwrap_err();
        std::fs::write(tmp.path().join("index").join(CURRENT), b"\xfe\xfegen").unwrap();
        assert!(matches!(
            current_dir_name(tmp.path()),
            Err(Error::Corrupt { .. })
        ));
        assert!(
            matches!(&error, Error::Corrupt { reason, .. } if reason.contains(&name)),
            "{error}"
        );
    }

    #[test]
    fn formats_from_the_oldest_readable_to_the_current_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = |format_version: u32| Meta {
            format_version,
            generation: 7,
            model_sha256: "abc".to_owned(),
            dimension: 384,
            rows: 1,
            candidates: 1,
            vectors: 2,
            tombstones: 0,
            hnsw_basename: None,
            written_at: 0,
            stage_ids: Some(vec!["lead-new".to_owned()]),
            reference_names: None,
            embedding_settings: None,
        };
        for version in OLDEST_READABLE_FORMAT..=FORMAT_VERSION {
            write_meta(tmp.path(), &meta(version)).unwrap();
            assert_eq!(read_meta(tmp.path()).unwrap(), meta(version));
        }
        for version in [OLDEST_READABLE_FORMAT - 1, FORMAT_VERSION + 1] {
            write_meta(tmp.path(), &meta(version)).unwrap();
            assert!(matches!(
                read_meta(tmp.path()),
                Err(Error::VersionMismatch { found, expected: FORMAT_VERSION }) if found == version
            ));
        }
        // Vectors are reused from older formats than the ones opened for search.
        for version in OLDEST_REUSABLE_VECTORS_FORMAT..=FORMAT_VERSION {
            write_meta(tmp.path(), &meta(version)).unwrap();
            let read = read_meta_since(tmp.path(), OLDEST_REUSABLE_VECTORS_FORMAT).unwrap();
            assert_eq!(read, meta(version));
        }
        write_meta(tmp.path(), &meta(OLDEST_REUSABLE_VECTORS_FORMAT - 1)).unwrap();
        assert!(read_meta_since(tmp.path(), OLDEST_REUSABLE_VECTORS_FORMAT).is_err());
    }
}
