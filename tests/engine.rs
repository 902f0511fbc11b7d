//! The engine's on-device loop (IoBinding) through the library API: cancellation between calls and progress.

use std::path::PathBuf;

use svd_inbetween::image::ImageF32;
use svd_inbetween::pipeline::{CancelToken, Engine, GenerateParams, LoadOptions, NoiseSource, PipelineError, SamplerPlacement, Stage};
use svd_inbetween::runtime::DevicePreference;

fn engine(sampler: SamplerPlacement) -> Engine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    Engine::load_with(&dir, &LoadOptions { device: DevicePreference::Cpu, sampler, ..Default::default() }).unwrap()
}

fn keyframe(e: &Engine, v: f32) -> ImageF32 {
    let m = e.manifest();
    ImageF32::from_vec(m.width, m.height, 3, vec![v; m.width * m.height * 3]).unwrap()
}

#[test]
fn both_loops_stop_after_the_call_that_cancelled() {
    for sampler in [SamplerPlacement::Host, SamplerPlacement::Device] {
        let e = engine(sampler);
        let (a, b) = (keyframe(&e, 0.2), keyframe(&e, 0.8));
        let p = GenerateParams { steps: 4, noise_injection_steps: 2, ..Default::default() };
        assert_eq!(p.unet_calls(), 8);
        let cancel = CancelToken::new();
        let mut seen = Vec::new();
        let r = e.generate(&a, &b, &p, &NoiseSource::Seeded(1), None, &mut |pr| {
            if pr.stage == Stage::Denoise {
                seen.push(pr.unet_calls_done);
                if pr.unet_calls_done == 3 {
                    cancel.cancel();
                }
            }
        }, &cancel);
        assert!(matches!(r, Err(PipelineError::Cancelled)), "{sampler:?}: {r:?}");
        assert_eq!(seen, vec![1, 2, 3], "{sampler:?}");
    }
}

#[test]
fn device_loop_reports_where_the_latents_lived_and_counts_calls() {
    let e = engine(SamplerPlacement::Device);
    assert!(e.latents_on_device());
    let (a, b) = (keyframe(&e, 0.3), keyframe(&e, 0.6));
    let p = GenerateParams { steps: 3, noise_injection_steps: 1, ..Default::default() };
    let mut last = None;
    let g = e.generate(&a, &b, &p, &NoiseSource::Seeded(9), None, &mut |pr| last = Some(pr.clone()), &CancelToken::new()).unwrap();
    assert_eq!(g.stats.latents_on, "device (Cpu)");
    assert_eq!(g.stats.unet_calls, p.unet_calls());
    assert_eq!(last.unwrap().stage, Stage::Done);
    // Auto on the CPU keeps the host loop (device memory would be host memory, the extra graph runs only cost).
    assert!(!engine(SamplerPlacement::Auto).latents_on_device());
    // and the host loop gives the same latents, bit for bit
    let h = engine(SamplerPlacement::Host).generate(&a, &b, &p, &NoiseSource::Seeded(9), None, &mut |_| {}, &CancelToken::new()).unwrap();
    assert_eq!(h.stats.latents_on, "host");
    assert_eq!(h.latents, g.latents);
}
