//! Cache keys: sha256 over a versioned, tagged encoding of everything that decides the generated frames.

use sha2::{Digest, Sha256};

use crate::image::ImageF32;
use crate::pipeline::{Fusion, GenerateParams};

/// Everything that decides a generation. A struct (not a builder) so adding a field to the pipeline's params
/// fails to compile here until the key covers it.
pub struct KeyInput<'a> {
    pub manifest_sha256: &'a str,
    pub from: &'a ImageF32,
    pub to: &'a ImageF32,
    pub params: &'a GenerateParams,
    pub width: usize,
    pub height: usize,
    /// "cpu" or "cuda": providers differ in the last bits, and farms must not mix them under one key.
    pub provider_class: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

const KEY_VERSION: &[u8] = b"svd-inbetween cache key v1";

impl CacheKey {
    pub fn compute(k: &KeyInput) -> Self {
        let mut h = Sha256::new();
        let mut field = |tag: &str, bytes: &[u8]| {
            h.update((tag.len() as u32).to_le_bytes());
            h.update(tag.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field("version", KEY_VERSION);
        field("manifest", k.manifest_sha256.as_bytes());
        for (tag, img) in [("from", k.from), ("to", k.to)] {
            let mut b = Vec::with_capacity(24 + img.data.len() * 4);
            for d in [img.width, img.height, img.channels] {
                b.extend_from_slice(&(d as u64).to_le_bytes());
            }
            for v in &img.data {
                b.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            field(tag, &b);
        }
        let GenerateParams {
            steps,
            seed,
            noise_injection_steps,
            noise_injection_ratio,
            motion_bucket_id,
            fps,
            noise_aug_strength,
            min_guidance_scale,
            max_guidance_scale,
            fusion,
            decode_chunk_frames,
        } = k.params; // destructured so a new field cannot be forgotten
        field("steps", &steps.to_le_bytes());
        field("seed", &seed.to_le_bytes());
        field("injection_steps", &noise_injection_steps.to_le_bytes());
        field(
            "injection_ratio",
            &noise_injection_ratio.to_bits().to_le_bytes(),
        );
        field("motion_bucket", &motion_bucket_id.to_bits().to_le_bytes());
        field("fps", &fps.to_bits().to_le_bytes());
        field("noise_aug", &noise_aug_strength.to_bits().to_le_bytes());
        field("guidance_min", &min_guidance_scale.to_bits().to_le_bytes());
        field("guidance_max", &max_guidance_scale.to_bits().to_le_bytes());
        field(
            "fusion",
            match fusion {
                Fusion::Average => b"average",
                Fusion::Linear => b"linear",
            },
        );
        field(
            "decode_chunk",
            &(decode_chunk_frames.map(|v| v as i64).unwrap_or(-1)).to_le_bytes(),
        );
        field(
            "size",
            &[
                (k.width as u64).to_le_bytes(),
                (k.height as u64).to_le_bytes(),
            ]
            .concat(),
        );
        field("provider", k.provider_class.as_bytes());
        CacheKey(hex::encode(h.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For tests and tools: a key from its hex form.
    pub fn from_hex(s: &str) -> Self {
        CacheKey(s.to_string())
    }
}
