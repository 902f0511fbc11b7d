//! The Generative Inbetweening pipeline over an exported model package (DESIGN §4): encode → prepare → denoise
//! (fused bidirectional UNet, CFG, fusion, Euler, noise re-injection) → decode.

pub mod device;
mod engine;
pub mod manifest;
pub mod noise;
pub mod preprocess;
pub mod schedule;

use thiserror::Error;

pub use device::SamplerPlacement;
pub use engine::{
    CancelToken, Engine, Generation, LoadOptions, Progress, Stage, Stats, fuse_predictions,
};
pub use noise::NoiseSource;
pub use schedule::Fusion;

use crate::runtime::RuntimeError;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("{0}")]
    Models(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("ONNX Runtime failed in {stage}: {message}")]
    Inference {
        stage: &'static str,
        message: String,
    },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("noise: {0}")]
    Noise(String),
    #[error("generation cancelled")]
    Cancelled,
}

/// Everything that decides the generated frames besides the models and keyframes (defaults: the paper's).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerateParams {
    pub steps: u32,
    pub seed: u64,
    pub noise_injection_steps: u32,
    pub noise_injection_ratio: f32,
    pub motion_bucket_id: f32,
    pub fps: f32,
    pub noise_aug_strength: f32,
    pub min_guidance_scale: f32,
    pub max_guidance_scale: f32,
    pub fusion: Fusion,
    /// Frames per VAE-decoder call; `None` = the package's `decode_chunk_frames`. Chunking changes the result.
    pub decode_chunk_frames: Option<usize>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            steps: 50,
            seed: 42,
            noise_injection_steps: 5,
            noise_injection_ratio: 0.5,
            motion_bucket_id: 127.0,
            fps: 7.0,
            noise_aug_strength: 0.02,
            min_guidance_scale: 1.0,
            max_guidance_scale: 3.0,
            fusion: Fusion::Average,
            decode_chunk_frames: None,
        }
    }
}

impl GenerateParams {
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::Input(m));
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.noise_injection_ratio) {
            return bad(format!(
                "noise injection ratio {} is outside [0, 1]",
                self.noise_injection_ratio
            ));
        }
        for (name, v) in [
            ("motion bucket", self.motion_bucket_id),
            ("fps", self.fps),
            ("noise aug", self.noise_aug_strength),
            ("guidance min", self.min_guidance_scale),
            ("guidance max", self.max_guidance_scale),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(format!("{name} must be a finite number ≥ 0, got {v}"));
            }
        }
        if self.decode_chunk_frames == Some(0) {
            return bad("decode chunk must be at least 1 frame".into());
        }
        Ok(())
    }

    /// UNet calls one generation makes: one fused call per Euler step, plus one per re-injection round.
    pub fn unet_calls(&self) -> usize {
        self.steps as usize + self.injected_steps() * self.noise_injection_steps as usize
    }

    /// The first ⌊ratio·steps⌋ steps get noise re-injection rounds.
    pub fn injected_steps(&self) -> usize {
        ((self.steps as f64 * self.noise_injection_ratio as f64).floor() as usize)
            .min(self.steps as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_counts_match_the_paper() {
        // 50 steps + 25 × 5 re-injections = 175 fused calls (research/svd.md §2.3)
        assert_eq!(GenerateParams::default().unet_calls(), 175);
    }

    #[test]
    fn validation_messages() {
        let p = GenerateParams {
            steps: 0,
            ..Default::default()
        };
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "invalid input: steps must be at least 1"
        );
        let p = GenerateParams {
            noise_injection_ratio: 1.5,
            ..Default::default()
        };
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "invalid input: noise injection ratio 1.5 is outside [0, 1]"
        );
        assert!(GenerateParams::default().validate().is_ok());
    }
}
