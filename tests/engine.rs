//! The engine's on-device loop (IoBinding) through the library API: cancellation between calls and progress.

use std::path::PathBuf;

use svd_inbetween::image::ImageF32;
use svd_inbetween::pipeline::{
    CancelToken, Engine, GenerateParams, LoadOptions, NoiseSource, PipelineError, SamplerPlacement,
    Stage,
};
use svd_inbetween::runtime::DevicePreference;

fn engine(sampler: SamplerPlacement) -> Engine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    Engine::load_with(
        &dir,
        &LoadOptions {
            device: DevicePreference::Cpu,
            sampler,
            ..Default::default()
        },
    )
    .unwrap()
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
        let p = GenerateParams {
            steps: 4,
            noise_injection_steps: 2,
            ..Default::default()
        };
        assert_eq!(p.unet_calls(), 8);
        let cancel = CancelToken::new();
        let mut seen = Vec::new();
        let r = e.generate(
            &a,
            &b,
            &p,
            &NoiseSource::Seeded(1),
            None,
            &mut |pr| {
                if pr.stage == Stage::Denoise {
                    seen.push(pr.unet_calls_done);
                    if pr.unet_calls_done == 3 {
                        cancel.cancel();
                    }
                }
            },
            &cancel,
        );
        assert!(
            matches!(r, Err(PipelineError::Cancelled)),
            "{sampler:?}: {r:?}"
        );
        assert_eq!(seen, vec![1, 2, 3], "{sampler:?}");
    }
}

#[test]
fn device_loop_reports_where_the_latents_lived_and_counts_calls() {
    let e = engine(SamplerPlacement::Device);
    assert!(e.latents_on_device());
    let (a, b) = (keyframe(&e, 0.3), keyframe(&e, 0.6));
    let p = GenerateParams {
        steps: 3,
        noise_injection_steps: 1,
        ..Default::default()
    };
    let mut last = None;
    let g = e
        .generate(
            &a,
            &b,
            &p,
            &NoiseSource::Seeded(9),
            None,
            &mut |pr| last = Some(pr.clone()),
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(g.stats.latents_on, "device (Cpu)");
    assert_eq!(g.stats.unet_calls, p.unet_calls());
    assert_eq!(last.unwrap().stage, Stage::Done);
    // Auto on the CPU keeps the host loop (device memory would be host memory, the extra graph runs only cost).
    assert!(!engine(SamplerPlacement::Auto).latents_on_device());
    // and the host loop gives the same latents, bit for bit
    let h = engine(SamplerPlacement::Host)
        .generate(
            &a,
            &b,
            &p,
            &NoiseSource::Seeded(9),
            None,
            &mut |_| {},
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(h.stats.latents_on, "host");
    assert_eq!(h.latents, g.latents);
}

/// The sampler graphs at the real SVD-XT latent geometry (25 frames, 72×128), for both call groupings, against
/// the host arithmetic on random data: built for any size, not only the tiny package's.
#[test]
fn sampler_graphs_at_full_size_equal_the_host_arithmetic() {
    use rand::{Rng, SeedableRng};
    use svd_inbetween::pipeline::device::{Dims, call_groups, prepare_graph, update_graph};
    use svd_inbetween::pipeline::fuse_predictions;
    use svd_inbetween::pipeline::schedule::{Fusion, euler_v_step, guidance_and_weights};
    use svd_inbetween::runtime::{self, SessionOptions, SessionSource};

    let d = Dims {
        frames: 25,
        h: 72,
        w: 128,
    };
    let plane = 4 * d.h * d.w;
    let lat = d.frames * plane;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut rand_vec = |n: usize, scale: f32| {
        (0..n)
            .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
            .collect::<Vec<f32>>()
    };
    let z = rand_vec(lat, 80.0);
    let pred: [Vec<f32>; 4] = [
        rand_vec(lat, 2.0),
        rand_vec(lat, 2.0),
        rand_vec(lat, 2.0),
        rand_vec(lat, 2.0),
    ];
    let cond: [Vec<f32>; 2] = [rand_vec(plane, 1.0), rand_vec(plane, 1.0)];
    let (g_fwd, g_rev, w_fwd) = guidance_and_weights(Fusion::Linear, 1.0, 3.0, d.frames);
    let (sigma, sigma_next) = (17.27f32, 14.05f32);
    let divisor = (sigma * sigma + 1.0).sqrt();

    // host: the engine's arithmetic
    let mut want = z.clone();
    euler_v_step(
        &mut want,
        &fuse_predictions(&pred, d.frames, &g_fwd, &g_rev, &w_fwd),
        sigma,
        sigma_next,
    );

    let (env, _) = runtime::environment(None).unwrap();
    let tensor =
        |shape: Vec<usize>, data: Vec<f32>| ort::value::Tensor::from_array((shape, data)).unwrap();
    let s2 = sigma * sigma + 1.0;
    for k in [2usize, 1] {
        let groups = call_groups(k);
        // update graph
        let build = || update_graph(d, k);
        let (mut session, _) = runtime::create_session_from(
            env,
            &SessionSource::Built {
                label: "update",
                build: &build,
            },
            DevicePreference::Cpu,
            &SessionOptions::default(),
        )
        .unwrap();
        let mut inputs: Vec<(String, ort::value::DynValue)> = vec![(
            "z".into(),
            tensor(vec![1, d.frames, 4, d.h, d.w], z.clone()).into_dyn(),
        )];
        for (gi, g) in groups.iter().enumerate() {
            let data: Vec<f32> = g.iter().flat_map(|&r| pred[r].iter().copied()).collect();
            inputs.push((
                format!("pred_{gi}"),
                tensor(vec![g.len(), d.frames, 4, d.h, d.w], data).into_dyn(),
            ));
        }
        let pf = |v: Vec<f32>| tensor(vec![1, d.frames, 1, 1, 1], v).into_dyn();
        inputs.push(("g_fwd".into(), pf(g_fwd.clone())));
        inputs.push((
            "g_rev".into(),
            pf((0..d.frames).map(|f| g_rev[d.frames - 1 - f]).collect()),
        ));
        inputs.push(("w_fwd".into(), pf(w_fwd.clone())));
        inputs.push(("w_rev".into(), pf(w_fwd.iter().map(|w| 1.0 - w).collect())));
        for (name, v) in [
            ("c_out", -sigma / s2.sqrt()),
            ("s2", s2),
            ("sigma", sigma),
            ("dt", sigma_next - sigma),
        ] {
            inputs.push((name.into(), tensor(vec![1], vec![v]).into_dyn()));
        }
        let out = session.run(inputs).unwrap();
        let got = out["z_next"]
            .try_extract_tensor::<f32>()
            .unwrap()
            .1
            .to_vec();
        assert_eq!(got, want, "update graph, k = {k}");

        // prepare graph: each group's rows of [z/d, z/d, flip(z/d), flip(z/d)] ‖ the row's conditioning
        let build = || prepare_graph(d, k);
        let (mut session, _) = runtime::create_session_from(
            env,
            &SessionSource::Built {
                label: "prepare",
                build: &build,
            },
            DevicePreference::Cpu,
            &SessionOptions::default(),
        )
        .unwrap();
        let mut inputs: Vec<(String, ort::value::DynValue)> = vec![
            (
                "z".into(),
                tensor(vec![1, d.frames, 4, d.h, d.w], z.clone()).into_dyn(),
            ),
            ("divisor".into(), tensor(vec![1], vec![divisor]).into_dyn()),
        ];
        let row_cond = |r: usize| {
            if r % 2 == 1 {
                cond[r / 2].clone()
            } else {
                vec![0.0; plane]
            }
        };
        for (gi, g) in groups.iter().enumerate() {
            let data: Vec<f32> = g
                .iter()
                .flat_map(|&r| (0..d.frames).flat_map(move |_| row_cond(r)))
                .collect();
            inputs.push((
                format!("cond_{gi}"),
                tensor(vec![g.len(), d.frames, 4, d.h, d.w], data).into_dyn(),
            ));
        }
        let out = session.run(inputs).unwrap();
        for (gi, g) in groups.iter().enumerate() {
            let got = out[format!("sample_{gi}").as_str()]
                .try_extract_tensor::<f32>()
                .unwrap()
                .1
                .to_vec();
            let mut want = Vec::with_capacity(got.len());
            for &r in g.iter() {
                for f in 0..d.frames {
                    let src = if r >= 2 { d.frames - 1 - f } else { f };
                    want.extend(
                        z[src * plane..(src + 1) * plane]
                            .iter()
                            .map(|v| v / divisor),
                    );
                    want.extend(row_cond(r));
                }
            }
            assert_eq!(got, want, "prepare graph, k = {k}, group {gi}");
        }
    }
}
