//! On-disk entries: `<dir>/<key>/frames.bin` (raw little-endian f32, frames back to back) and `meta.json`
//! (dimensions, count, sha256 of frames.bin, format version). Written under a temporary name and renamed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use sha2::{Digest, Sha256};

use super::Frames;
use crate::image::ImageF32;

const FORMAT_VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    format_version: u32,
    count: usize,
    width: usize,
    height: usize,
    channels: usize,
    sha256: String,
}

/// Whether `<dir>/<key>/` holds an entry's meta.json (unverified).
pub fn entry_exists(dir: &Path, key: &str) -> bool {
    dir.join(key).join("meta.json").is_file()
}

pub struct Store {
    dir: PathBuf,
}

/// Temporaries older than this are abandoned (an entry of the full model writes in seconds).
pub const STALE_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

pub struct KeyLock(File);

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

impl Store {
    /// Opens (creating if needed) a cache directory and checks we can write into it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let probe = dir.join(format!(".probe-{}", std::process::id()));
        File::create(&probe)?;
        let _ = fs::remove_file(&probe);
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until this process holds the key's exclusive lock, polling so that `stop()` can end the wait
    /// (`None`). Without a lock (the filesystem refuses flock) we continue unlocked (`Some(None)`): the worst case
    /// is a duplicate generation, never a corrupt read.
    pub fn lock(&self, key: &str, stop: &dyn Fn() -> bool) -> Option<Option<KeyLock>> {
        let path = self.dir.join(format!("{key}.lock"));
        let Ok(f) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            return Some(None);
        };
        loop {
            match FileExt::try_lock_exclusive(&f) {
                Ok(()) => return Some(Some(KeyLock(f))),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
                {
                    if stop() {
                        return None;
                    }
                    std::thread::sleep(super::WAIT_POLL);
                }
                Err(e) => {
                    log::warn!(
                        "cache lock on {} failed ({e}); continuing without it",
                        self.dir.display()
                    );
                    return Some(None);
                }
            }
        }
    }

    /// Removes `.tmp-*` folders older than `max_age`: left by a process killed mid-write (a farm node
    /// pre-empted), they would otherwise pile up in shared storage. A live writer's folder is seconds old.
    pub fn sweep_stale_temporaries(&self, max_age: std::time::Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if old && fs::remove_dir_all(e.path()).is_ok() {
                log::info!("removed stale cache temporary {}", e.path().display());
                removed += 1;
            }
        }
        removed
    }

    /// A verified entry, or `None` (absent, or corrupt — a corrupt entry is removed so it gets regenerated).
    pub fn read(&self, key: &str) -> Option<Frames> {
        let entry = self.dir.join(key);
        if !entry.is_dir() {
            return None;
        }
        match read_entry(&entry) {
            Ok(f) => Some(f),
            Err(e) => {
                log::warn!(
                    "cache entry {} is corrupt ({e}); regenerating",
                    entry.display()
                );
                let _ = fs::remove_dir_all(&entry);
                None
            }
        }
    }

    pub fn write(&self, key: &str, frames: &Frames) -> std::io::Result<()> {
        let first = frames
            .frames
            .first()
            .ok_or_else(|| std::io::Error::other("no frames"))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{key}-{}-{}", std::process::id(), nanos()));
        fs::create_dir_all(&tmp)?;
        let mut payload = Vec::with_capacity(frames.size_bytes());
        for f in &frames.frames {
            for v in &f.data {
                payload.extend_from_slice(&v.to_le_bytes());
            }
        }
        let meta = Meta {
            format_version: FORMAT_VERSION,
            count: frames.frames.len(),
            width: first.width,
            height: first.height,
            channels: first.channels,
            sha256: hex::encode(Sha256::digest(&payload)),
        };
        let result = (|| {
            let mut f = File::create(tmp.join("frames.bin"))?;
            f.write_all(&payload)?;
            f.sync_all()?;
            fs::write(
                tmp.join("meta.json"),
                serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?,
            )?;
            fs::rename(&tmp, self.dir.join(key))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
            // Another process may have renamed its identical entry into place first: that is success.
            if self.dir.join(key).join("meta.json").exists() {
                return Ok(());
            }
        }
        result
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn read_entry(entry: &Path) -> Result<Frames, String> {
    let meta: Meta =
        serde_json::from_slice(&fs::read(entry.join("meta.json")).map_err(|e| e.to_string())?)
            .map_err(|e| format!("meta.json: {e}"))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(format!("format version {}", meta.format_version));
    }
    let payload = fs::read(entry.join("frames.bin")).map_err(|e| e.to_string())?;
    let per = meta.width * meta.height * meta.channels;
    if payload.len() != meta.count * per * 4 {
        return Err(format!(
            "frames.bin has {} bytes, expected {}",
            payload.len(),
            meta.count * per * 4
        ));
    }
    if hex::encode(Sha256::digest(&payload)) != meta.sha256 {
        return Err("checksum mismatch".into());
    }
    let floats: Vec<f32> = payload
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let frames = floats
        .chunks_exact(per.max(1))
        .map(|c| ImageF32 {
            width: meta.width,
            height: meta.height,
            channels: meta.channels,
            data: c.to_vec(),
        })
        .collect();
    Ok(Frames { frames })
}
