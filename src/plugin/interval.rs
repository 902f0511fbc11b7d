//! One interval's generation as both the plugin and `svd-inbetween sequence` do it: keyframes into the model's
//! frame, the cache key, and an output frame read back out at the clip's size. One definition, so the CLI's
//! frames equal the plugin's by construction (and a farm cache filled by one serves the other).

use super::params::Transfer;
use super::timemap::{FrameSampling, frame_at};
use crate::cache::{CacheKey, KeyInput};
use crate::image::{Fit, ImageF32, crop, fit_into, placement, resize, srgb_decode, srgb_encode};
use crate::pipeline::{Engine, GenerateParams};

/// A keyframe (RGB or RGBA, values in [0,1], rows top down) as the model wants it: RGB, display-referred,
/// fitted to the model's `w`×`h`.
pub fn model_keyframe(
    image: &ImageF32,
    transfer: Transfer,
    fit: Fit,
    w: usize,
    h: usize,
) -> ImageF32 {
    let mut rgb = image.to_channels(3).expect("3 channels is supported");
    if transfer == Transfer::Linear {
        rgb.data.iter_mut().for_each(|v| *v = srgb_encode(*v));
    }
    fit_into(&rgb, w, h, fit).0
}

/// The cache key of the generation between two model keyframes (DESIGN §7): the same for every interval with
/// the same keyframe pixels and parameters, wherever it sits in the clip.
pub fn interval_key(
    engine: &Engine,
    from: &ImageF32,
    to: &ImageF32,
    params: &GenerateParams,
) -> CacheKey {
    let m = engine.manifest();
    CacheKey::compute(&KeyInput {
        manifest_sha256: engine.manifest_sha256(),
        from,
        to,
        params,
        width: m.width,
        height: m.height,
        provider_class: if engine.provider().is_cuda() {
            "cuda"
        } else {
            "cpu"
        },
    })
}

/// The RGB picture at interval position `u` ∈ (0,1), read from the generated frames (model size) and brought
/// back to the clip's `w`×`h`: the picture's part of the model frame (all of it unless letterboxed), resized,
/// and decoded back to linear when the input was.
pub fn read_out(
    generated: &[ImageF32],
    u: f64,
    sampling: FrameSampling,
    fit: Fit,
    transfer: Transfer,
    w: usize,
    h: usize,
) -> ImageF32 {
    let mixed = frame_at(generated, u, sampling);
    let region = placement(w, h, mixed.width, mixed.height, fit);
    let mut out = resize(&crop(&mixed, region), w, h);
    if transfer == Transfer::Linear {
        out.data
            .iter_mut()
            .for_each(|x| *x = srgb_decode(x.clamp(0.0, 1.0)));
    }
    out
}

/// The model makes colour only: an in-between's alpha comes from the nearer keyframe (A before the middle).
pub fn alpha_from_a(u: f64) -> bool {
    u < 0.5
}
