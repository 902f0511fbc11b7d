//! The model package's `manifest.json` (DESIGN §2, INTERFACES §3) and its integrity check.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::PipelineError;

pub const FORMAT: &str = "svd-inbetween-model-package";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub dtype: String,
    pub num_frames: usize,
    pub height: usize,
    pub width: usize,
    pub latent_channels: usize,
    pub vae_scaling_factor: f32,
    pub fused_unet: bool,
    /// 4 (k = 2: CFG pairs of both directions in one call) or "dynamic". This engine always runs k = 2.
    #[serde(default = "default_unet_batch")]
    pub unet_batch: serde_json::Value,
    pub decode_chunk_frames: usize,
    pub image_encoder: ImageEncoderInfo,
    pub scheduler: SchedulerInfo,
    pub models: BTreeMap<String, ModelEntry>,
    pub files: BTreeMap<String, FileEntry>,
    #[serde(default)]
    pub sources: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageEncoderInfo {
    pub size: usize,
    pub embed_dim: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SchedulerInfo {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub rho: f64,
    pub prediction_type: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelEntry {
    pub file: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

impl Manifest {
    /// The k (rows per direction per call) the UNet graph accepts: batch 4 → k = 2 (both CFG branches in one
    /// call), batch 2 → k = 1 (the low-memory graph: the unconditional and conditional pairs in two calls),
    /// "dynamic" → either. Empty for anything else.
    pub fn unet_rows_per_direction(&self) -> Vec<usize> {
        match &self.unet_batch {
            v if v.as_u64() == Some(4) => vec![2],
            v if v.as_u64() == Some(2) => vec![1],
            v if v.as_str() == Some("dynamic") => vec![2, 1],
            _ => vec![],
        }
    }
}

fn default_unet_batch() -> serde_json::Value {
    serde_json::Value::from(4)
}

pub const MODEL_ROLES: [&str; 4] = ["image_encoder", "vae_encoder", "unet", "vae_decoder"];

/// A manifest that was read, parsed and checked against the files beside it.
#[derive(Clone, Debug)]
pub struct VerifiedManifest {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// sha256 of manifest.json itself: names this exact package (the cache keys on it).
    pub sha256: String,
}

impl VerifiedManifest {
    pub fn model_path(&self, role: &str) -> PathBuf {
        self.dir.join(&self.manifest.models[role].file)
    }
}

fn err(dir: &Path, what: impl std::fmt::Display) -> PipelineError {
    PipelineError::Models(format!("model folder {}: {what}", dir.display()))
}

/// Reads `dir/manifest.json` and verifies the package: format, shapes, every listed file present with the
/// recorded size and sha256. Hashing is linear in the package size (≈ 3 s for the 3 GB fp16 SVD-XT package) and
/// happens once per process, when the engine loads.
pub fn load_and_verify(dir: &Path) -> Result<VerifiedManifest, PipelineError> {
    let path = dir.join("manifest.json");
    if !dir.is_dir() {
        return Err(err(
            dir,
            "does not exist (set the Models folder, or export one with `python -m tools.export`)",
        ));
    }
    let text = std::fs::read(&path)
        .map_err(|_| err(dir, "has no manifest.json — export a package with `python -m tools.export` (see docs/EXPORT.md)"))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        err(
            dir,
            format!("manifest.json is not a valid model manifest: {e}"),
        )
    })?;
    if manifest.format != FORMAT {
        return Err(err(
            dir,
            format!(
                "manifest format is '{}', expected '{FORMAT}'",
                manifest.format
            ),
        ));
    }
    if manifest.format_version != 1 {
        return Err(err(
            dir,
            format!(
                "manifest format_version {} is not supported (expected 1)",
                manifest.format_version
            ),
        ));
    }
    if !manifest.height.is_multiple_of(64)
        || !manifest.width.is_multiple_of(64)
        || manifest.height == 0
        || manifest.width == 0
    {
        return Err(err(
            dir,
            format!(
                "model size {}x{} is not a multiple of 64",
                manifest.width, manifest.height
            ),
        ));
    }
    if manifest.num_frames < 2 {
        return Err(err(
            dir,
            format!("num_frames {} must be at least 2", manifest.num_frames),
        ));
    }
    if !manifest.fused_unet {
        return Err(err(
            dir,
            "the UNet is not the fused bidirectional graph; re-export with `python -m tools.export`",
        ));
    }
    if manifest.unet_rows_per_direction().is_empty() {
        return Err(err(
            dir,
            format!(
                "UNet batch {} is not one this version runs (4, 2 or \"dynamic\"); re-export with --unet-batch 4",
                manifest.unet_batch
            ),
        ));
    }
    for role in MODEL_ROLES {
        let entry = manifest
            .models
            .get(role)
            .ok_or_else(|| err(dir, format!("manifest lists no '{role}' model")))?;
        if !manifest.files.contains_key(&entry.file) {
            return Err(err(
                dir,
                format!("manifest has no checksum for {}", entry.file),
            ));
        }
    }
    for (name, entry) in &manifest.files {
        let p = dir.join(name);
        let meta = std::fs::metadata(&p).map_err(|_| {
            err(
                dir,
                format!("{name} is missing (re-export or re-copy the package)"),
            )
        })?;
        if meta.len() != entry.bytes {
            return Err(err(
                dir,
                format!(
                    "{name} has {} bytes, manifest says {} (incomplete copy?)",
                    meta.len(),
                    entry.bytes
                ),
            ));
        }
        let got = sha256_file(&p).map_err(|e| err(dir, format!("cannot read {name}: {e}")))?;
        if got != entry.sha256 {
            return Err(err(
                dir,
                format!("{name} is corrupt: sha256 {got} does not match the manifest"),
            ));
        }
    }
    let sha256 = hex::encode(Sha256::digest(&text));
    Ok(VerifiedManifest {
        dir: dir.to_path_buf(),
        manifest,
        sha256,
    })
}

pub fn sha256_file(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
