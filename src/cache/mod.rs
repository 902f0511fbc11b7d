//! Generated frames, cached so one keyframe pair and parameter set is generated once: across the render threads
//! of one host (single-flight + a byte-bounded in-memory LRU) and across render-farm processes sharing a
//! directory (disk entries written atomically, checksummed, and produced under an advisory lock).
//!
//! Protocol for a key K: memory → (wait if another thread of this process is generating K) → disk `<dir>/K/` →
//! take `<dir>/K.lock` exclusively → disk again (another process may have finished meanwhile) → generate →
//! write `<dir>/.tmp-…` and rename it to `<dir>/K/` → memory. A failed, cancelled or panicking generation leaves
//! no entry, so the next render starts afresh. Both waits (for another thread, for another process's lock) poll
//! a stop condition, so the host's abort ends them; temporaries left by killed writers are swept when a process
//! first uses the folder.
//!
//! Network filesystems: `flock` over NFS may be unsupported or advisory-only. Then two nodes can generate the same
//! key twice (wasted time), but never read a half-written entry: entries appear by rename and are verified by
//! sha256 before use, and a corrupt one is regenerated.

mod disk;
mod key;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

pub use key::{CacheKey, KeyInput};

use crate::image::ImageF32;

/// The frames of one generation, all the same size.
#[derive(Clone, Debug, PartialEq)]
pub struct Frames {
    pub frames: Vec<ImageF32>,
}

impl Frames {
    pub fn size_bytes(&self) -> usize {
        self.frames.iter().map(|f| f.data.len() * 4).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError<E> {
    /// The generation itself failed (or was cancelled); nothing was cached.
    #[error(transparent)]
    Generate(E),
    #[error("the generation panicked: {0}")]
    Panicked(String),
    /// The caller stopped waiting for another thread's or process's generation of the same frames.
    #[error("stopped waiting for the generation of these frames elsewhere")]
    StoppedWaiting,
}

/// How often a waiting caller re-checks whether it should stop waiting.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Generations actually run by this process (not served from memory or disk).
    pub generations: usize,
    pub memory_hits: usize,
    pub disk_hits: usize,
}

struct State {
    entries: HashMap<String, (Arc<Frames>, u64)>,
    bytes: usize,
    tick: u64,
    in_flight: HashSet<String>,
}

pub struct FrameCache {
    state: Mutex<State>,
    done: Condvar,
    capacity_bytes: usize,
    generations: AtomicUsize,
    memory_hits: AtomicUsize,
    disk_hits: AtomicUsize,
    warned_dirs: Mutex<HashSet<PathBuf>>,
    swept_dirs: Mutex<HashSet<PathBuf>>,
    warnings: Mutex<Vec<String>>,
}

/// Removes the in-flight mark even if the generation panics, and wakes the waiters.
struct FlightGuard<'a> {
    cache: &'a FrameCache,
    key: String,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.cache.state.lock().unwrap_or_else(|p| p.into_inner());
        st.in_flight.remove(&self.key);
        drop(st);
        self.cache.done.notify_all();
    }
}

impl FrameCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                bytes: 0,
                tick: 0,
                in_flight: HashSet::new(),
            }),
            done: Condvar::new(),
            capacity_bytes,
            generations: AtomicUsize::new(0),
            memory_hits: AtomicUsize::new(0),
            disk_hits: AtomicUsize::new(0),
            warned_dirs: Mutex::new(HashSet::new()),
            swept_dirs: Mutex::new(HashSet::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            generations: self.generations.load(Ordering::SeqCst),
            memory_hits: self.memory_hits.load(Ordering::SeqCst),
            disk_hits: self.disk_hits.load(Ordering::SeqCst),
        }
    }

    /// Bytes currently held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    pub fn clear_memory(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.entries.clear();
        st.bytes = 0;
    }

    /// Warnings (e.g. an unwritable cache directory) not yet shown to the user; each is reported once.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn memory_get(&self, st: &mut State, key: &str) -> Option<Arc<Frames>> {
        st.tick += 1;
        let tick = st.tick;
        st.entries.get_mut(key).map(|(f, t)| {
            *t = tick;
            Arc::clone(f)
        })
    }

    fn memory_put(&self, key: &str, frames: Arc<Frames>) {
        let size = frames.size_bytes();
        if size > self.capacity_bytes {
            return; // larger than the whole cache: returned to the caller, not retained
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.tick += 1;
        let tick = st.tick;
        if let Some((old, _)) = st.entries.insert(key.to_string(), (frames, tick)) {
            st.bytes -= old.size_bytes();
        }
        st.bytes += size;
        while st.bytes > self.capacity_bytes {
            let Some(oldest) = st
                .entries
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((f, _)) = st.entries.remove(&oldest) {
                st.bytes -= f.size_bytes();
            }
        }
    }

    fn warn_once(&self, dir: &Path, text: String) {
        let mut w = self.warned_dirs.lock().unwrap_or_else(|p| p.into_inner());
        if w.insert(dir.to_path_buf()) {
            log::warn!("{text}");
            self.warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(text);
        }
    }

    /// The frames for `key`: from memory, from `disk` (when given), or from `generate`, run at most once at a time
    /// per key in this process and, with a shared `disk` directory, once across processes.
    pub fn get_or_generate<E>(
        &self,
        key: &CacheKey,
        disk: Option<&Path>,
        generate: impl FnOnce() -> Result<Frames, E>,
    ) -> Result<Arc<Frames>, CacheError<E>> {
        self.get_or_generate_or_stop(key, disk, &|| false, generate)
    }

    /// `get_or_generate`, where waiting for someone else's generation of the same key (another render thread,
    /// or another process holding the disk lock) ends with `StoppedWaiting` as soon as `stop()` says so: an
    /// editor's cancel must not be stuck behind another instance's 10-minute generation.
    pub fn get_or_generate_or_stop<E>(
        &self,
        key: &CacheKey,
        disk: Option<&Path>,
        stop: &dyn Fn() -> bool,
        generate: impl FnOnce() -> Result<Frames, E>,
    ) -> Result<Arc<Frames>, CacheError<E>> {
        let k = key.as_str().to_string();
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(f) = self.memory_get(&mut st, &k) {
                    self.memory_hits.fetch_add(1, Ordering::SeqCst);
                    return Ok(f);
                }
                if !st.in_flight.contains(&k) {
                    break;
                }
                if stop() {
                    return Err(CacheError::StoppedWaiting);
                }
                st = self
                    .done
                    .wait_timeout(st, WAIT_POLL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            st.in_flight.insert(k.clone());
        }
        let _guard = FlightGuard {
            cache: self,
            key: k.clone(),
        };

        let store = disk.and_then(|dir| match disk::Store::open(dir) {
            Ok(s) => {
                if self
                    .swept_dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(dir.to_path_buf())
                {
                    s.sweep_stale_temporaries(disk::STALE_TEMPORARY_AGE);
                }
                Some(s)
            }
            Err(e) => {
                self.warn_once(
                    dir,
                    format!(
                        "cache folder {} is not usable ({e}); frames are kept in memory only",
                        dir.display()
                    ),
                );
                None
            }
        });
        let frames = match &store {
            Some(store) => {
                if let Some(f) = store.read(&k) {
                    self.disk_hits.fetch_add(1, Ordering::SeqCst);
                    f
                } else {
                    let _lock = store.lock(&k, stop).ok_or(CacheError::StoppedWaiting)?;
                    if let Some(f) = store.read(&k) {
                        self.disk_hits.fetch_add(1, Ordering::SeqCst);
                        f
                    } else {
                        let f = self.run_generate(generate)?;
                        if let Err(e) = store.write(&k, &f) {
                            self.warn_once(store.dir(), format!("cannot write to cache folder {} ({e}); frames are kept in memory only", store.dir().display()));
                        }
                        f
                    }
                }
            }
            None => self.run_generate(generate)?,
        };
        let frames = Arc::new(frames);
        self.memory_put(&k, Arc::clone(&frames));
        Ok(frames)
    }

    fn run_generate<E>(
        &self,
        generate: impl FnOnce() -> Result<Frames, E>,
    ) -> Result<Frames, CacheError<E>> {
        self.generations.fetch_add(1, Ordering::SeqCst);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(generate)) {
            Ok(Ok(f)) => Ok(f),
            Ok(Err(e)) => Err(CacheError::Generate(e)),
            Err(p) => Err(CacheError::Panicked(
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default(),
            )),
        }
    }
}

/// Whether `dir` holds a finished entry for `key` (not verified: a corrupt one is regenerated when read). For
/// planning and progress estimates only.
pub fn disk_entry_exists(dir: &Path, key: &CacheKey) -> bool {
    disk::entry_exists(dir, key.as_str())
}

#[cfg(test)]
mod tests;
