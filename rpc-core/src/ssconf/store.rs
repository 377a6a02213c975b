//! The on-disk ssconf store, where a whole set is replaced atomically.
//!
//! Layout inside the state directory `D`:
//!
//! ```text
//! D/ssconf_<key>           -> .ssconf/current/ssconf_<key>   (one stable link per key)
//! D/.ssconf/current        -> gen-<n>-<r>                    (switched atomically)
//! D/.ssconf/gen-<n>-<r>/ssconf_<key>                         (complete, immutable sets, 0444)
//! D/.ssconf/gen-<n>-<r>/MANIFEST                             (its keys and serial)
//! D/.ssconf/lock                                             (writers' lock)
//! ```
//!
//! A writer builds the new set in a temporary directory, `fsync`s every file and the
//! directory, renames it to `gen-<n>-<r>` (`<r>` random, so a name is never reused, even
//! after `clear` restarts the numbering), and then replaces the `current` link with one
//! `rename`. Readers of this module resolve `current` once, read the generation's MANIFEST
//! and then exactly the files it lists, so they never see keys of two versions. The
//! manifest also carries the configuration serial of the set (see `manifest`), so the set
//! and its serial are published, and read, together.
//! Generations are immutable, and the previous one is kept when a new one is published, so
//! a reader that resolved `current` just before the switch can finish; a reader that loses
//! even that race (its generation collected under it) finds a listed file missing and
//! starts again. Listing the directory instead of following the manifest would not do: a
//! generation being deleted lists short without any error.
//!
//! Ganeti's reader, which opens `D/ssconf_<key>` one file at a time, follows the stable
//! link into the current generation: every file it reads is complete, and a key missing
//! from the current set reads as absent. Files Ganeti (or an operator) wrote directly as
//! `D/ssconf_<key>` are read when no generation exists yet, and replaced by links on the
//! next write.
//!
//! A writer killed at any point leaves either the old set or the new one current; its
//! temporary directory and unpublished generation are removed by the next writer.
//! Writers are serialised by an exclusive lock, waited for at most 10 seconds (Ganeti's
//! `SSCONF_LOCK_TIMEOUT`).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::manifest::Manifest;
use super::{
    Location, MAX_VALUE_BYTES, Published, SsconfError, SsconfKey, SsconfSet, SsconfVersion,
};
use crate::fs_atomic::{self, FsError};

const META_DIR: &str = ".ssconf";
const CURRENT: &str = "current";
const LOCK_FILE: &str = "lock";
const GENERATION_PREFIX: &str = "gen-";
const TEMP_PREFIX: &str = "tmp-";
const MANIFEST: &str = "MANIFEST";
const FILE_MODE: u32 = 0o444;
const DIR_MODE: u32 = 0o755;
/// Ganeti's `SSCONF_LOCK_TIMEOUT`.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a reader starts again when generations are collected under it.
const READ_ATTEMPTS: usize = 16;

/// The ssconf files of one state directory.
#[derive(Debug, Clone)]
pub struct SsconfStore {
    dir: PathBuf,
}

impl SsconfStore {
    /// The store in state directory `dir` (which must exist before the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stable path of `key`'s file, `D/ssconf_<key>`, as Ganeti names it.
    pub fn file_path(&self, key: SsconfKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    fn meta(&self) -> PathBuf {
        self.dir.join(META_DIR)
    }

    /// The current set, read consistently; an empty set when there is no ssconf at all.
    pub fn read(&self) -> Result<SsconfSet, SsconfError> {
        self.read_published().map(|published| published.set)
    }

    /// The current set and its version, both from the same generation; an empty set of
    /// version 0 when there is no ssconf at all, and version 0 for files Ganeti wrote.
    pub fn read_published(&self) -> Result<Published, SsconfError> {
        for _ in 0..READ_ATTEMPTS {
            let generation = match fs::read_link(self.meta().join(CURRENT)) {
                Ok(target) => self.generation_dir(&target)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return self
                        .read_loose_files()
                        .map(|set| Published::new(set, SsconfVersion::default()));
                }
                Err(e) => {
                    return Err(FsError::new("read link", self.meta().join(CURRENT), e).into());
                }
            };
            match self.read_generation(&generation) {
                Err(SsconfError::Fs(e)) if e.is_not_found() => continue, // collected meanwhile
                other => {
                    return other
                        .map(|(set, version)| Published::new(set.read_from(&self.dir), version));
                }
            }
        }
        Err(SsconfError::Fs(FsError::new(
            "read a stable generation of",
            self.meta(),
            io::Error::other("generations kept changing while reading"),
        )))
    }

    /// One key through its stable path, as Ganeti's reader does: `None` when absent.
    pub fn read_key(&self, key: SsconfKey) -> Result<Option<String>, SsconfError> {
        let path = self.file_path(key);
        match read_limited(&path) {
            Ok(bytes) => Ok(Some(
                decode(&path, bytes)?.trim_end_matches('\n').to_owned(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the whole set with `set`, built from the configuration of version
    /// `version`, atomically: set and version become current together. Returns the new
    /// generation number. Whether an older version may replace a newer one is the caller's
    /// rule (the node agent's), not the store's.
    pub fn replace(&self, set: &SsconfSet, version: SsconfVersion) -> Result<u64, SsconfError> {
        set.check_writable()?;
        let meta = self.meta();
        fs_atomic::ensure_dir(&meta, DIR_MODE)?;
        let _lock = self.lock()?;

        let generations = self.list_meta()?;
        for temp in &generations.temporaries {
            remove_tree(&meta.join(temp))?;
        }
        let number = generations.numbers().max().map_or(1, |n| n + 1);
        let name = format!("{GENERATION_PREFIX}{number}-{:08x}", unique_suffix());

        // 1. The complete new generation, invisible until renamed.
        let temp = meta.join(format!("{TEMP_PREFIX}{number}"));
        fs::create_dir(&temp).map_err(|e| FsError::new("create directory", &temp, e))?;
        let built = write_generation(&temp, set, version).and_then(|()| {
            fs::rename(&temp, meta.join(&name))
                .map_err(|e| FsError::new("rename", &temp, e))
                .and_then(|()| fs_atomic::sync_dir(&meta))
        });
        if let Err(e) = built {
            let _ = remove_tree(&temp);
            return Err(e.into());
        }

        // 2. Stable links for keys that have none yet; they dangle (read as absent) until
        //    the switch makes the new generation current.
        let present: Vec<SsconfKey> = set.iter().map(|(key, _)| key).collect();
        for key in &present {
            let path = self.file_path(*key);
            if fs::symlink_metadata(&path).is_err() {
                fs_atomic::replace_symlink(&stable_target(*key), &path)?;
            }
        }

        // 3. The switch.
        let previous = fs::read_link(meta.join(CURRENT)).ok();
        fs_atomic::replace_symlink(Path::new(&name), &meta.join(CURRENT))?;
        fs_atomic::sync_dir(&meta)?;

        // 4. Tidy the stable paths: loose files become links, keys no longer present go.
        for key in SsconfKey::ALL {
            let path = self.file_path(*key);
            let Ok(meta_data) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !present.contains(key) {
                fs::remove_file(&path).map_err(|e| FsError::new("remove", &path, e))?;
            } else if !meta_data.file_type().is_symlink() {
                fs_atomic::replace_symlink(&stable_target(*key), &path)?;
            }
        }
        fs_atomic::sync_dir(&self.dir)?;

        // 5. Keep the new generation and the one a slow reader may still be reading.
        let keep_previous = previous.and_then(|p| p.to_str().map(str::to_owned));
        for old in &generations.generations {
            if Some(old) != keep_previous.as_ref() {
                remove_tree(&meta.join(old))?;
            }
        }
        tracing::debug!(dir = %self.dir.display(), generation = number, keys = set.len(), %version, "ssconf replaced");
        Ok(number)
    }

    /// Removes every ssconf key at once (a node leaving its cluster).
    pub fn clear(&self) -> Result<(), SsconfError> {
        let meta = self.meta();
        if !meta.is_dir() {
            // Only loose files, if any.
            return self.remove_stable_paths();
        }
        let _lock = self.lock()?;
        match fs::remove_file(meta.join(CURRENT)) {
            Ok(()) => fs_atomic::sync_dir(&meta)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::new("remove", meta.join(CURRENT), e).into()),
        }
        self.remove_stable_paths()?;
        let generations = self.list_meta()?;
        for name in generations
            .generations
            .into_iter()
            .chain(generations.temporaries)
        {
            remove_tree(&meta.join(name))?;
        }
        Ok(())
    }

    fn remove_stable_paths(&self) -> Result<(), SsconfError> {
        for key in SsconfKey::ALL {
            let path = self.file_path(*key);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::new("remove", &path, e).into()),
            }
        }
        fs_atomic::sync_dir(&self.dir).map_err(Into::into)
    }

    /// The keys its MANIFEST lists, and its version, from generation directory `dir`. A
    /// missing manifest or file is a `NotFound` error: the generation is being collected.
    fn read_generation(&self, dir: &Path) -> Result<(SsconfSet, SsconfVersion), SsconfError> {
        let manifest_path = dir.join(MANIFEST);
        let text = fs::read_to_string(&manifest_path)
            .map_err(|e| FsError::new("read", &manifest_path, e))?;
        let manifest = Manifest::parse(&manifest_path, &text)?;
        let mut set = SsconfSet::new();
        for key in manifest.keys {
            let path = dir.join(key.file_name());
            let bytes = read_limited(&path)?;
            set.insert_read(key, decode(&self.dir.join(key.file_name()), bytes)?);
        }
        Ok((set, manifest.version))
    }

    /// Files written directly as `D/ssconf_<key>` (by Ganeti, or left by a crash during
    /// `clear`); dangling links read as absent keys.
    fn read_loose_files(&self) -> Result<SsconfSet, SsconfError> {
        let set = read_set_from(&self.dir, &self.dir, |e| e.is_not_found())?;
        Ok(set.read_from(&self.dir))
    }

    fn generation_dir(&self, target: &Path) -> Result<PathBuf, SsconfError> {
        let name = target.to_str().unwrap_or_default();
        let valid = generation_number(name).is_some();
        if !valid {
            return Err(SsconfError::Malformed {
                location: Location::File(self.meta().join(CURRENT)),
                line: 1,
                reason: format!(
                    "the link points to '{}', not to a generation",
                    target.display()
                ),
            });
        }
        Ok(self.meta().join(target))
    }

    fn lock(&self) -> Result<File, SsconfError> {
        let path = self.meta().join(LOCK_FILE);
        let file = fs_atomic::open_lock_file(&path)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(SsconfError::LockTimeout {
                        path,
                        waited: started.elapsed(),
                    });
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(FsError::new("lock", &path, e).into());
                }
            }
        }
    }

    fn list_meta(&self) -> Result<MetaEntries, SsconfError> {
        let meta = self.meta();
        let mut entries = MetaEntries::default();
        for entry in fs::read_dir(&meta).map_err(|e| FsError::new("list", &meta, e))? {
            let entry = entry.map_err(|e| FsError::new("list", &meta, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if generation_number(&name).is_some() {
                entries.generations.push(name);
            } else if name.starts_with(TEMP_PREFIX) {
                entries.temporaries.push(name);
            }
        }
        Ok(entries)
    }
}

#[derive(Default)]
struct MetaEntries {
    /// Names of published generations.
    generations: Vec<String>,
    temporaries: Vec<String>,
}

impl MetaEntries {
    fn numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.generations
            .iter()
            .filter_map(|name| generation_number(name))
    }
}

/// The number of a generation directory named `gen-<n>-<hex>`.
fn generation_number(name: &str) -> Option<u64> {
    let (number, suffix) = name.strip_prefix(GENERATION_PREFIX)?.split_once('-')?;
    let hex = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    if hex && digits {
        number.parse().ok()
    } else {
        None
    }
}

/// A value that makes a generation's name unique even if its number repeats.
fn unique_suffix() -> u32 {
    let mut bytes = [0u8; 4];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        // Uniqueness, not secrecy, is what matters: fall back to time and process.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return nanos ^ std::process::id();
    }
    u32::from_le_bytes(bytes)
}

/// Where the stable link of `key` points, relative to the state directory.
fn stable_target(key: SsconfKey) -> PathBuf {
    Path::new(META_DIR).join(CURRENT).join(key.file_name())
}

fn write_generation(dir: &Path, set: &SsconfSet, version: SsconfVersion) -> Result<(), FsError> {
    let mut keys = Vec::with_capacity(set.len());
    for (key, _) in set.iter() {
        let contents = set.file_contents(key).unwrap_or_default();
        fs_atomic::write_new_file(&dir.join(key.file_name()), &contents, FILE_MODE)?;
        keys.push(key);
    }
    let manifest = Manifest::encode(version, &keys);
    fs_atomic::write_new_file(&dir.join(MANIFEST), manifest.as_bytes(), FILE_MODE)?;
    fs_atomic::sync_dir(dir)?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(DIR_MODE))
        .map_err(|e| FsError::new("set permissions of", dir, e))
}

/// Reads every `ssconf_<key>` file in `dir`. Errors for which `skip` is true drop the file
/// instead of failing. Unknown keys are errors naming the file.
fn read_set_from(
    dir: &Path,
    named_in: &Path,
    skip: impl Fn(&ReadError) -> bool,
) -> Result<SsconfSet, SsconfError> {
    let mut set = SsconfSet::new();
    for entry in fs::read_dir(dir).map_err(|e| FsError::new("list", dir, e))? {
        let entry = entry.map_err(|e| FsError::new("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = SsconfKey::from_file_name(&name) else {
            continue;
        };
        let path = entry.path();
        let key = key.map_err(|_| SsconfError::UnknownFile {
            key: name[super::FILE_PREFIX.len()..].to_owned(),
            path: named_in.join(&name),
        })?;
        let bytes = match read_limited(&path) {
            Ok(bytes) => bytes,
            Err(e) if skip(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        set.insert_read(key, decode(&named_in.join(&name), bytes)?);
    }
    Ok(set)
}

/// Reads a file of at most [`MAX_VALUE_BYTES`]; a larger one is refused, not truncated.
fn read_limited(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path).map_err(|e| FsError::new("read", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| FsError::new("read", path, e))?
        .len();
    if size > MAX_VALUE_BYTES as u64 {
        return Err(ReadError::TooLarge(path.to_owned(), size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // Read one byte past the limit to notice a file that grew after the size check.
    file.take(MAX_VALUE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FsError::new("read", path, e))?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(ReadError::TooLarge(path.to_owned(), bytes.len() as u64));
    }
    Ok(bytes)
}

fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, SsconfError> {
    String::from_utf8(bytes).map_err(|e| SsconfError::Malformed {
        location: Location::File(path.to_owned()),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "not valid UTF-8".to_owned(),
    })
}

fn remove_tree(path: &Path) -> Result<(), FsError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::new("remove", path, e)),
    }
}

/// A failed bounded read: the file-system error, or a file over the limit.
enum ReadError {
    Fs(FsError),
    TooLarge(PathBuf, u64),
}

impl ReadError {
    fn is_not_found(&self) -> bool {
        matches!(self, Self::Fs(e) if e.is_not_found())
    }
}

impl From<FsError> for ReadError {
    fn from(e: FsError) -> Self {
        Self::Fs(e)
    }
}

impl From<ReadError> for SsconfError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Fs(e) => Self::Fs(e),
            ReadError::TooLarge(path, size) => Self::TooLarge {
                location: Location::File(path),
                size,
            },
        }
    }
}
