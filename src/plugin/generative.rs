//! Generative mode: keyframes → (cache | sampler) → the generated frame for this output time, at clip size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;

use super::interval::{alpha_from_a, interval_key, model_keyframe, read_out};
use super::keyframes::{FrameNumber, interval_label};
use super::params::Values;
use super::{Frame, PResult, PluginError};
use crate::cache::{CacheError, FrameCache, Frames};
use crate::ofx::strings as s;
use crate::ofx::{Effect, RectI};
use crate::pipeline::{CancelToken, Engine, LoadOptions, NoiseSource, PipelineError};
use crate::runtime::{self, DevicePreference};

/// Engines by (models folder, device, low memory): sessions are expensive (seconds, GBs) and shared by all
/// instances.
type EngineKey = (PathBuf, DevicePreference, bool);
static ENGINES: Lazy<Mutex<HashMap<EngineKey, Arc<Engine>>>> =
    Lazy::new(|| Mutex::new(HashMap::new()));

/// Generated frames of every instance; bounded by SVD_INBETWEEN_CACHE_MB (default 4096 MB).
static CACHE: Lazy<FrameCache> = Lazy::new(|| {
    let mb = std::env::var("SVD_INBETWEEN_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(4096);
    FrameCache::new(mb << 20)
});

pub fn purge_memory_cache() {
    CACHE.clear_memory();
}

/// For tests (through the test host's log): generations this process actually ran.
pub fn generations() -> usize {
    CACHE.stats().generations
}

/// The models folder: the param, else $SVD_INBETWEEN_MODELS, else the demo package inside the bundle
/// (`Contents/Resources/models/tiny`, beside `Contents/Linux-x86-64/` where the plugin binary lives).
fn models_dir(v: &Values) -> PathBuf {
    if !v.models_folder.trim().is_empty() {
        return PathBuf::from(v.models_folder.trim());
    }
    if let Some(p) = std::env::var_os("SVD_INBETWEEN_MODELS").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    crate::runtime::plugin_directory()
        .map(|d| d.join("../Resources/models/tiny"))
        .unwrap_or_else(|| PathBuf::from("models/tiny"))
}

fn cache_dir(v: &Values) -> Option<PathBuf> {
    if !v.cache_folder.trim().is_empty() {
        return Some(PathBuf::from(v.cache_folder.trim()));
    }
    std::env::var_os("SVD_INBETWEEN_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

fn engine(dir: &Path, device: DevicePreference, low_memory: bool) -> PResult<Arc<Engine>> {
    let mut engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    let key = (dir.to_path_buf(), device, low_memory);
    if let Some(e) = engines.get(&key) {
        return Ok(Arc::clone(e));
    }
    let options = LoadOptions {
        device,
        low_memory,
        cpu_threads: runtime::cpu_threads_from_env().map_err(PluginError::User)?,
        ..Default::default()
    };
    let e = Arc::new(
        Engine::load_with(dir, &options)
            .map_err(|e| PluginError::User(format!("cannot load the models: {e}")))?,
    );
    log::info!(
        "models {} loaded on {} ({} UNet run(s) per step)",
        dir.display(),
        e.provider(),
        e.unet_runs_per_prediction()
    );
    engines.insert(key, Arc::clone(&e));
    Ok(e)
}

/// The frame at position `u` of `interval` (its keyframes `fa`, `fb`), from the interval's one generation.
pub fn render_frame(
    effect: &Effect,
    v: &Values,
    interval: (FrameNumber, FrameNumber),
    fa: &Frame,
    fb: &Frame,
    u: f64,
) -> PResult<Frame> {
    let dir = models_dir(v);
    let engine = engine(&dir, v.device, v.low_memory)?;
    let m = engine.manifest();
    let (mw, mh, frames_n) = (m.width, m.height, m.num_frames);
    let from = model_keyframe(&fa.image, v.transfer, v.fit, mw, mh);
    let to = model_keyframe(&fb.image, v.transfer, v.fit, mw, mh);
    let key = interval_key(&engine, &from, &to, &v.generate);
    let disk = cache_dir(v);
    // Waiting for the same frames from another render thread or farm process ends when the host aborts.
    let stop = || effect.abort_requested();
    let result = CACHE.get_or_generate_or_stop(
        &key,
        disk.as_deref(),
        &stop,
        || -> Result<Frames, PipelineError> {
            let bar = effect.progress(&format!("SVD Inbetween: {}", interval_label(interval)));
            let cancel = CancelToken::new();
            let mut on_progress = |p: &crate::pipeline::Progress| {
                // The progress dialog's cancel, checked once per UNet call (the host's abort flag also is, and is
                // watched from a helper thread that terminates the ONNX Runtime call in flight).
                if !bar.update(p.fraction()) || effect.abort_requested() {
                    cancel.cancel();
                }
            };
            let g = effect.with_abort_watcher(
                || cancel.cancel(),
                || {
                    engine.generate(
                        &from,
                        &to,
                        &v.generate,
                        &NoiseSource::Seeded(v.generate.seed),
                        None,
                        &mut on_progress,
                        &cancel,
                    )
                },
            )?;
            Ok(Frames { frames: g.frames })
        },
    );
    for w in CACHE.take_warnings() {
        effect.message(s::MESSAGE_WARNING, &w);
    }
    let generated = match result {
        Ok(f) => f,
        Err(CacheError::Generate(PipelineError::Cancelled) | CacheError::StoppedWaiting) => {
            return Err(PluginError::Cancelled);
        }
        Err(CacheError::Generate(e)) => {
            return Err(PluginError::User(format!("generation failed: {e}")));
        }
        Err(CacheError::Panicked(p)) => {
            return Err(PluginError::User(format!(
                "generation failed with an internal error: {p}"
            )));
        }
    };
    if generated.frames.len() != frames_n {
        return Err(PluginError::User(format!(
            "cache entry has {} frames, the models make {frames_n}; clear the cache folder",
            generated.frames.len()
        )));
    }
    // The output time's generated frame (blend of the two nearest), back at the clip's size.
    let bounds: RectI = fa.bounds;
    let out = read_out(
        &generated.frames,
        u,
        v.sampling,
        v.fit,
        v.transfer,
        bounds.width(),
        bounds.height(),
    );
    let alpha_src = if alpha_from_a(u) { fa } else { fb };
    let mut rgba = out.to_channels(4).expect("4 channels is supported");
    for y in 0..bounds.height() {
        for x in 0..bounds.width() {
            let a = alpha_src.at(bounds.x1 + x as i32, bounds.y2 - 1 - y as i32)[3];
            rgba.pixel_mut(x, y)[3] = a;
        }
    }
    Ok(Frame {
        image: rgba,
        bounds,
    })
}
