//! The engine: one ONNX Runtime session per model of a package, and `generate`, which reads top to bottom like
//! DESIGN §4 (encode → prepare → denoise → decode).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ort::memory::AllocationDevice;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::device::DEVICE_LOOP_STAGE;
use super::device::{
    DeviceLoop, Dims, GroupConstants, LoopConstants, SamplerPlacement, SamplerSessions,
    call_groups, inject_graph, is_reverse_row, prepare_graph, row_condition, update_graph,
};
use super::manifest::{VerifiedManifest, load_and_verify};
use super::noise::{NoiseSource, NoiseStream};
use super::preprocess::{clip_pixels, to_planar_pm1};
use super::schedule::{
    euler_v_coefficients, euler_v_step, guidance_and_weights, init_noise_sigma, input_divisor,
    karras_sigmas, reinjection_std, timestep,
};
use super::{GenerateParams, PipelineError};
use crate::image::ImageF32;
use crate::runtime::{
    self, DevicePreference, ProviderInfo, RuntimeError, RuntimeInfo, SessionOptions, SessionSource,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Stage {
    Encode,
    Denoise,
    Decode,
    Done,
}

/// Reported after every UNet run (in low-memory mode a fused prediction is two runs) and at each stage change.
/// `unet_calls_total` is known before the first run.
#[derive(Clone, Debug)]
pub struct Progress {
    pub stage: Stage,
    pub unet_calls_done: usize,
    pub unet_calls_total: usize,
}

impl Progress {
    /// Overall fraction in [0, 1]; encode and decode are counted as one call each.
    pub fn fraction(&self) -> f64 {
        let done = match self.stage {
            Stage::Encode => 0,
            Stage::Denoise => 1 + self.unet_calls_done,
            Stage::Decode => 1 + self.unet_calls_total,
            Stage::Done => 2 + self.unet_calls_total,
        };
        done as f64 / (self.unet_calls_total + 2) as f64
    }
}

/// Cancels a generation from any thread: between calls by a flag, and during a call by terminating the ONNX
/// Runtime run in flight (ORT checks the flag between kernels; research/ort.md measured 0.3–9 ms).
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    running: Mutex<Option<Arc<RunOptions>>>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        if let Some(opts) = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = opts.terminate();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), PipelineError> {
        if self.is_cancelled() {
            Err(PipelineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Fused predictions (one Euler step or re-injection round each).
    pub unet_calls: usize,
    /// UNet session runs: `unet_calls`, or twice that in low-memory mode.
    pub unet_runs: usize,
    pub encode_seconds: f64,
    pub denoise_seconds: f64,
    pub decode_seconds: f64,
    /// Where the latents lived between UNet calls: "host", or "device (Cpu|Cuda)" for the IoBinding loop.
    pub latents_on: String,
}

/// The result of one generation: F frames at the model's H×W (RGB, [0,1]), and the final latents (1,F,4,h,w).
#[derive(Clone, Debug)]
pub struct Generation {
    pub frames: Vec<ImageF32>,
    pub latents: Vec<f32>,
    pub latent_shape: [usize; 5],
    pub stats: Stats,
}

pub struct Engine {
    package: VerifiedManifest,
    runtime: RuntimeInfo,
    provider: ProviderInfo,
    image_encoder: Mutex<Session>,
    vae_encoder: Mutex<Session>,
    unet: Mutex<Session>,
    vae_decoder: Mutex<Session>,
    /// The on-device loop's graphs, or why they could not be opened on the UNet's provider (then the host loop
    /// runs: an unproven path must never take generation down with it).
    sampler: Result<Mutex<SamplerSessions>, String>,
    placement: SamplerPlacement,
    /// Rows per direction per UNet call: 2 (one call per prediction) or 1 (low memory, two calls).
    k: usize,
}

/// How to open a package. `Default` is what the plugin uses.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub device: DevicePreference,
    /// An explicit ONNX Runtime library, tried before the usual places.
    pub ort_library: Option<PathBuf>,
    /// Profile the UNet session (ORT JSON trace with this prefix); `Engine::end_unet_profiling` returns the file.
    pub profile_unet: Option<PathBuf>,
    pub sampler: SamplerPlacement,
    /// Run the UNet at half batch (two calls per prediction, about half the activation memory); needs a package
    /// exported with `--unet-batch 2` or `dynamic`. Packages exported with `--unet-batch 2` always run this way.
    pub low_memory: bool,
    /// CPU threads per operator for every session (`runtime::SessionOptions::cpu_threads`); `None`: one per core.
    /// The frames do not depend on it (tests/cli.rs).
    pub cpu_threads: Option<std::num::NonZeroUsize>,
}

/// Conditioning computed once per generation.
struct Conditioning {
    emb: [Vec<f32>; 2],       // CLIP embeddings of A and B, (D,)
    latents: [Vec<f32>; 2],   // VAE mode latents of A and B, (4,h,w)
    added_time_ids: [f32; 3], // [fps − 1, motion bucket, noise aug]: SVD was trained on fps − 1
}

impl Engine {
    /// Verifies the package (manifest + sha256 of every file) and opens its four sessions.
    pub fn load(dir: &Path, device: DevicePreference) -> Result<Self, PipelineError> {
        Self::load_with(
            dir,
            &LoadOptions {
                device,
                ..Default::default()
            },
        )
    }

    pub fn load_with(dir: &Path, o: &LoadOptions) -> Result<Self, PipelineError> {
        let package = load_and_verify(dir)?;
        let ks = package.manifest.unet_rows_per_direction();
        let k = match (o.low_memory, ks.contains(&1)) {
            (true, true) => 1,
            (true, false) => {
                return Err(PipelineError::Models(format!(
                    "model folder {}: low memory needs a UNet exported with --unet-batch 2 or dynamic; this one takes batch {}",
                    dir.display(),
                    package.manifest.unet_batch
                )));
            }
            (false, _) => ks[0],
        };
        let (env, info) = runtime::environment(o.ort_library.as_deref())?;
        let options = SessionOptions {
            cpu_threads: o.cpu_threads,
            ..Default::default()
        };
        let unet_options = SessionOptions {
            profile_prefix: o.profile_unet.clone(),
            ..options.clone()
        };
        let unet_path = package.model_path("unet");
        let (unet, provider) = runtime::create_session_from(
            env,
            &SessionSource::File(&unet_path),
            o.device,
            &unet_options,
        )?;
        // The UNet decides where the work happens. The encoders and the decoder follow it with the user's
        // preference (Auto lets one of them fall back to the CPU, which only costs copies); the sampler graphs must
        // be on exactly its provider, since they work on its buffers, and when they cannot the host loop runs.
        let (small, graphs) = if provider.is_cuda() {
            (o.device, DevicePreference::Cuda)
        } else {
            (DevicePreference::Cpu, DevicePreference::Cpu)
        };
        let open_small = |role: &str| {
            let path = package.model_path(role);
            runtime::create_session_from(env, &SessionSource::File(&path), small, &options)
                .map(|(s, _)| Mutex::new(s))
        };
        let dims = Dims {
            frames: package.manifest.num_frames,
            h: package.manifest.height / 8,
            w: package.manifest.width / 8,
        };
        let open_graph = |label: &str, build: &dyn Fn() -> ort::Result<ort::editor::Model>| {
            runtime::create_session_from(
                env,
                &SessionSource::Built { label, build },
                graphs,
                &options,
            )
            .map(|(s, _)| s)
        };
        let sampler = (|| -> Result<SamplerSessions, RuntimeError> {
            Ok(SamplerSessions {
                prepare: open_graph("sampler_prepare", &|| prepare_graph(dims, k))?,
                update: open_graph("sampler_update", &|| update_graph(dims, k))?,
                inject: open_graph("sampler_inject", &|| inject_graph(dims))?,
            })
        })()
        .map(Mutex::new)
        .map_err(|e| {
            log::warn!("the on-device sampler is unavailable ({e}); latents will round-trip through the host");
            e.to_string()
        });
        Ok(Self {
            image_encoder: open_small("image_encoder")?,
            vae_encoder: open_small("vae_encoder")?,
            vae_decoder: open_small("vae_decoder")?,
            unet: Mutex::new(unet),
            sampler,
            placement: o.sampler,
            k,
            runtime: info.clone(),
            provider,
            package,
        })
    }

    /// UNet calls per fused prediction: 1, or 2 in low-memory mode.
    pub fn unet_runs_per_prediction(&self) -> usize {
        call_groups(self.k).len()
    }

    /// Whether the denoising loop keeps the latents on the device (IoBinding) rather than on the host.
    pub fn latents_on_device(&self) -> bool {
        self.wants_device_loop() && self.sampler.is_ok()
    }

    fn wants_device_loop(&self) -> bool {
        match self.placement {
            SamplerPlacement::Auto => self.provider.is_cuda(),
            SamplerPlacement::Host => false,
            SamplerPlacement::Device => true,
        }
    }

    /// Ends profiling of the UNet session (opened with `profile_unet`) and returns the trace file.
    pub fn end_unet_profiling(&self) -> Result<PathBuf, PipelineError> {
        let mut unet = self.unet.lock().unwrap_or_else(|p| p.into_inner());
        unet.end_profiling()
            .map(PathBuf::from)
            .map_err(|e| PipelineError::Inference {
                stage: "profiling",
                message: e.to_string(),
            })
    }

    pub fn manifest(&self) -> &super::manifest::Manifest {
        &self.package.manifest
    }

    /// sha256 of the package's manifest.json: identifies the exact models (used in cache keys).
    pub fn manifest_sha256(&self) -> &str {
        &self.package.sha256
    }

    pub fn models_dir(&self) -> &PathBuf {
        &self.package.dir
    }

    pub fn provider(&self) -> &ProviderInfo {
        &self.provider
    }

    pub fn runtime(&self) -> &RuntimeInfo {
        &self.runtime
    }

    /// Generates the F frames between `from` (frame 0) and `to` (frame F−1). Both must be at the model's size.
    #[allow(
        clippy::too_many_arguments,
        reason = "the CLI and the plugin pass each of these separately"
    )]
    pub fn generate(
        &self,
        from: &ImageF32,
        to: &ImageF32,
        params: &GenerateParams,
        noise: &NoiseSource,
        save_noise: Option<&Path>,
        progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> Result<Generation, PipelineError> {
        params.validate()?;
        let m = &self.package.manifest;
        for (name, img) in [("from", from), ("to", to)] {
            if img.width != m.width || img.height != m.height || img.channels < 3 {
                return Err(PipelineError::Input(format!(
                    "keyframe '{name}' is {}x{} with {} channels; the models need {}x{} RGB",
                    img.width, img.height, img.channels, m.width, m.height
                )));
            }
        }
        let opts = Arc::new(RunOptions::new().map_err(|e| PipelineError::Inference {
            stage: "setup",
            message: e.to_string(),
        })?);
        *cancel
            .inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&opts));
        let on_device = self.latents_on_device();
        let mut result = self.generate_inner(
            from, to, params, noise, save_noise, progress, cancel, &opts, on_device,
        );
        if let Err(PipelineError::Inference {
            stage: DEVICE_LOOP_STAGE,
            message,
        }) = &result
            && !cancel.is_cancelled()
        {
            // The device loop is the newer, GPU-only path; a failure there costs a slower generation, not
            // the frames. Same noise, same arithmetic, so the same result up to float rounding.
            let why = message.clone();
            log::warn!(
                "the on-device denoising loop failed ({why}); generating again with the latents on the host"
            );
            result = self
                .generate_inner(
                    from, to, params, noise, save_noise, progress, cancel, &opts, false,
                )
                .map(|mut g| {
                    g.stats.latents_on = format!("host (device loop failed: {why})");
                    g
                });
        }
        *cancel
            .inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        // A terminated run surfaces as an ORT error; report it as the cancellation it is.
        match result {
            Err(_) if cancel.is_cancelled() => Err(PipelineError::Cancelled),
            r => r,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn generate_inner(
        &self,
        from: &ImageF32,
        to: &ImageF32,
        p: &GenerateParams,
        noise: &NoiseSource,
        save_noise: Option<&Path>,
        progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
        opts: &RunOptions,
        on_device: bool,
    ) -> Result<Generation, PipelineError> {
        let m = &self.package.manifest;
        let (frames, h, w) = (m.num_frames, m.height / 8, m.width / 8);
        let lat_len = frames * 4 * h * w;
        let total = p.unet_calls() * self.unet_runs_per_prediction();
        let mut stats = Stats::default();
        let mut rng = NoiseStream::new(noise, save_noise)?;
        cancel.check()?;
        progress(&Progress {
            stage: Stage::Encode,
            unet_calls_done: 0,
            unet_calls_total: total,
        });

        // 1. encode: CLIP embeddings, VAE conditioning latents (one augmentation noise shared by both keyframes)
        let t0 = Instant::now();
        let cond = self.encode(from, to, p, &mut rng, opts)?;
        stats.encode_seconds = t0.elapsed().as_secs_f64();

        // 2. prepare: Karras σ, per-frame guidance and fusion weights, initial latents
        let sigmas = karras_sigmas(
            p.steps as usize,
            m.scheduler.sigma_min,
            m.scheduler.sigma_max,
            m.scheduler.rho,
        );
        let (g_fwd, g_rev, w_fwd) =
            guidance_and_weights(p.fusion, p.min_guidance_scale, p.max_guidance_scale, frames);
        let init_sigma = init_noise_sigma(sigmas.iter().cloned().fold(0.0, f32::max));

        // 3. denoise: for each (σ, σ_next): fused step; in the first ⌊ratio·steps⌋ steps, re-inject and redo it
        let t0 = Instant::now();
        let mut calls = Calls {
            runs: 0,
            total,
            predictions: 0,
            progress: &mut *progress,
            cancel,
        };
        let schedule = Schedule {
            sigmas: &sigmas,
            g_fwd: &g_fwd,
            g_rev: &g_rev,
            w_fwd: &w_fwd,
            init_sigma,
            steps: p.steps as usize,
            n_inject: p.injected_steps(),
            rounds: p.noise_injection_steps as usize,
        };
        let z = if on_device {
            let (z, device) =
                self.denoise_on_device(&schedule, &cond, &mut rng, &mut calls, opts)?;
            stats.latents_on = format!("device ({device})");
            z
        } else {
            stats.latents_on = match &self.sampler {
                Err(why) if self.wants_device_loop() => {
                    format!("host (device loop unavailable: {why})")
                }
                _ => "host".into(),
            };
            let mut z: Vec<f32> = rng
                .draw("init_latents", &[1, frames, 4, h, w])?
                .into_iter()
                .map(|v| v * init_sigma)
                .collect();
            let step =
                |z: &mut Vec<f32>, i: usize, calls: &mut Calls<'_>| -> Result<(), PipelineError> {
                    let v = self.fused_prediction(
                        z, sigmas[i], &cond, &g_fwd, &g_rev, &w_fwd, opts, calls,
                    )?;
                    euler_v_step(z, &v, sigmas[i], sigmas[i + 1]);
                    calls.predictions += 1;
                    Ok(())
                };
            for i in 0..schedule.steps {
                step(&mut z, i, &mut calls)?;
                if i < schedule.n_inject {
                    let std = reinjection_std(sigmas[i], sigmas[i + 1]);
                    for j in 0..schedule.rounds {
                        let eps =
                            rng.draw(&format!("inject_step{i}_iter{j}"), &[1, frames, 4, h, w])?;
                        for (zi, e) in z.iter_mut().zip(&eps) {
                            *zi += e * std;
                        }
                        step(&mut z, i, &mut calls)?;
                    }
                }
            }
            z
        };
        let (predictions, runs) = (calls.predictions, calls.runs);
        stats.unet_calls = predictions;
        stats.unet_runs = runs;
        stats.denoise_seconds = t0.elapsed().as_secs_f64();
        debug_assert_eq!(z.len(), lat_len);

        // 4. decode in temporal chunks
        cancel.check()?;
        progress(&Progress {
            stage: Stage::Decode,
            unet_calls_done: runs,
            unet_calls_total: total,
        });
        let t0 = Instant::now();
        let images = self.decode(
            &z,
            p.decode_chunk_frames.unwrap_or(m.decode_chunk_frames),
            opts,
        )?;
        stats.decode_seconds = t0.elapsed().as_secs_f64();
        progress(&Progress {
            stage: Stage::Done,
            unet_calls_done: runs,
            unet_calls_total: total,
        });
        Ok(Generation {
            frames: images,
            latents: z,
            latent_shape: [1, frames, 4, h, w],
            stats,
        })
    }

    /// The denoising loop of `generate_inner` with the latents on the device (see `device.rs`): same noise draws
    /// in the same order, same arithmetic, run as graphs on the UNet's provider.
    #[allow(clippy::too_many_arguments)]
    fn denoise_on_device(
        &self,
        sch: &Schedule<'_>,
        cond: &Conditioning,
        rng: &mut NoiseStream,
        calls: &mut Calls<'_>,
        opts: &RunOptions,
    ) -> Result<(Vec<f32>, String), PipelineError> {
        let m = &self.package.manifest;
        let dims = Dims {
            frames: m.num_frames,
            h: m.height / 8,
            w: m.width / 8,
        };
        let frames = dims.frames;
        let groups = call_groups(self.k)
            .iter()
            .map(|g| {
                let (encoder_hidden_states, added_time_ids) = unet_conditioning(cond, g);
                GroupConstants {
                    cond_rows: cond_rows(cond, frames, g),
                    encoder_hidden_states,
                    added_time_ids,
                }
            })
            .collect();
        let consts = LoopConstants {
            k: self.k,
            groups,
            embed_dim: cond.emb[0].len(),
            g_fwd: sch.g_fwd,
            g_rev_by_output_frame: (0..frames).map(|f| sch.g_rev[frames - 1 - f]).collect(),
            w_fwd: sch.w_fwd,
            w_rev: sch.w_fwd.iter().map(|w| 1.0 - w).collect(),
        };
        let device = if self.provider.is_cuda() {
            AllocationDevice::CUDA
        } else {
            AllocationDevice::CPU
        };
        let mut unet = self.unet.lock().unwrap_or_else(|p| p.into_inner());
        let sampler = self
            .sampler
            .as_ref()
            .map_err(|e| PipelineError::Inference {
                stage: DEVICE_LOOP_STAGE,
                message: e.clone(),
            })?;
        let mut sessions = sampler.lock().unwrap_or_else(|p| p.into_inner());
        let mut lp = DeviceLoop::new(dims, &device, &sessions, &unet, &consts)?;
        let shape = [1, frames, 4, dims.h, dims.w];
        lp.inject(
            &mut sessions.inject,
            rng.draw("init_latents", &shape)?,
            sch.init_sigma,
            true,
            opts,
        )?;
        for i in 0..sch.steps {
            let (sigma, sigma_next) = (sch.sigmas[i], sch.sigmas[i + 1]);
            let (c_out, s2, dt) = euler_v_coefficients(sigma, sigma_next);
            let euler = [c_out, s2, sigma, dt];
            let rounds = if i < sch.n_inject { sch.rounds } else { 0 };
            for j in 0..=rounds {
                if j > 0 {
                    let eps = rng.draw(&format!("inject_step{i}_iter{}", j - 1), &shape)?;
                    lp.inject(
                        &mut sessions.inject,
                        eps,
                        reinjection_std(sigma, sigma_next),
                        false,
                        opts,
                    )?;
                }
                lp.step(
                    &mut sessions,
                    &mut unet,
                    input_divisor(sigma),
                    timestep(sigma),
                    euler,
                    opts,
                    calls,
                )?;
                calls.predictions += 1;
            }
        }
        Ok((lp.download()?, lp.buffers_device()))
    }

    fn encode(
        &self,
        from: &ImageF32,
        to: &ImageF32,
        p: &GenerateParams,
        rng: &mut NoiseStream,
        opts: &RunOptions,
    ) -> Result<Conditioning, PipelineError> {
        let m = &self.package.manifest;
        let (hh, ww) = (m.height, m.width);
        let enc = &m.image_encoder;
        let planar = [to_planar_pm1(from), to_planar_pm1(to)];
        let mut pixels = Vec::with_capacity(2 * 3 * enc.size * enc.size);
        for pl in &planar {
            pixels.extend(clip_pixels(pl, hh, ww, enc.size, &enc.mean, &enc.std));
        }
        let embeds = run(
            &self.image_encoder,
            "image_encoder",
            opts,
            vec![("pixel_values", vec![2, 3, enc.size, enc.size], pixels)],
        )?;
        let d = embeds.len() / 2;
        let aug = rng.draw("noise_aug", &[1, 3, hh, ww])?;
        let mut images = Vec::with_capacity(2 * 3 * hh * ww);
        for pl in &planar {
            images.extend(
                pl.iter()
                    .zip(&aug)
                    .map(|(x, n)| x + p.noise_aug_strength * n),
            );
        }
        let lat = run(
            &self.vae_encoder,
            "vae_encoder",
            opts,
            vec![("image", vec![2, 3, hh, ww], images)],
        )?;
        let l = lat.len() / 2;
        Ok(Conditioning {
            emb: [embeds[..d].to_vec(), embeds[d..].to_vec()],
            latents: [lat[..l].to_vec(), lat[l..].to_vec()],
            added_time_ids: [p.fps - 1.0, p.motion_bucket_id, p.noise_aug_strength],
        })
    }

    /// One fused UNet call on the batch [fwd_uncond, fwd_cond, rev_uncond, rev_cond], CFG per direction, the
    /// reverse prediction flipped back to forward time, and the two fused. Returns v (F,4,h,w).
    #[allow(clippy::too_many_arguments)]
    fn fused_prediction(
        &self,
        z: &[f32],
        sigma: f32,
        cond: &Conditioning,
        g_fwd: &[f32],
        g_rev: &[f32],
        w_fwd: &[f32],
        opts: &RunOptions,
        calls: &mut Calls<'_>,
    ) -> Result<Vec<f32>, PipelineError> {
        let m = &self.package.manifest;
        let (frames, h, w) = (m.num_frames, m.height / 8, m.width / 8);
        let plane = 4 * h * w;
        let divisor = input_divisor(sigma);
        let zero = vec![0.0f32; plane];
        let d = cond.emb[0].len();
        let mut pred: [Vec<f32>; 4] = Default::default();
        for &group in call_groups(self.k) {
            let n = group.len();
            let mut sample = Vec::with_capacity(n * frames * 2 * plane);
            for &r in group {
                let lat: &[f32] = row_condition(r).map_or(&zero, |c| &cond.latents[c]);
                for f in 0..frames {
                    let src = if is_reverse_row(r) { frames - 1 - f } else { f };
                    sample.extend(
                        z[src * plane..(src + 1) * plane]
                            .iter()
                            .map(|v| v / divisor),
                    );
                    sample.extend_from_slice(lat);
                }
            }
            let (ehs, ids) = unet_conditioning(cond, group);
            calls.before_run()?;
            let out = run(
                &self.unet,
                "unet",
                opts,
                vec![
                    ("sample", vec![n, frames, 8, h, w], sample),
                    ("timestep", vec![1], vec![timestep(sigma)]),
                    ("encoder_hidden_states", vec![n, 1, d], ehs),
                    ("added_time_ids", vec![n, 3], ids),
                ],
            )?;
            calls.after_run();
            for (i, &r) in group.iter().enumerate() {
                pred[r] = out[i * frames * plane..(i + 1) * frames * plane].to_vec();
            }
        }
        Ok(fuse_predictions(&pred, frames, g_fwd, g_rev, w_fwd))
    }

    fn decode(
        &self,
        z: &[f32],
        chunk: usize,
        opts: &RunOptions,
    ) -> Result<Vec<ImageF32>, PipelineError> {
        let m = &self.package.manifest;
        let (frames, h, w) = (m.num_frames, m.height / 8, m.width / 8);
        let plane = 4 * h * w;
        let chunk = chunk.clamp(1, frames);
        let mut images = Vec::with_capacity(frames);
        let mut start = 0;
        while start < frames {
            let n = chunk.min(frames - start);
            let lat: Vec<f32> = z[start * plane..(start + n) * plane]
                .iter()
                .map(|v| v / m.vae_scaling_factor)
                .collect();
            let out = run(
                &self.vae_decoder,
                "vae_decoder",
                opts,
                vec![("latents", vec![n, 4, h, w], lat)],
            )?;
            let (hh, ww) = (m.height, m.width);
            for i in 0..n {
                let mut img = ImageF32::new(ww, hh, 3);
                for c in 0..3 {
                    let src = &out[(i * 3 + c) * hh * ww..(i * 3 + c + 1) * hh * ww];
                    for (k, s) in src.iter().enumerate() {
                        img.data[k * 3 + c] = ((s + 1.0) / 2.0).clamp(0.0, 1.0);
                    }
                }
                images.push(img);
            }
            start += n;
        }
        Ok(images)
    }
}

/// CFG per direction, the reverse rows flipped back to forward time, and the weighted fusion: v (F,4,h,w) from the
/// four logical rows' predictions (each (F,4,h,w), see `call_groups`). `g_rev` is indexed by reverse-time frame.
pub fn fuse_predictions(
    pred: &[Vec<f32>; 4],
    frames: usize,
    g_fwd: &[f32],
    g_rev: &[f32],
    w_fwd: &[f32],
) -> Vec<f32> {
    let plane = pred[0].len() / frames;
    let row = |r: usize, f: usize| &pred[r][f * plane..(f + 1) * plane];
    let mut v = vec![0.0f32; frames * plane];
    for f in 0..frames {
        let fr = frames - 1 - f; // the reverse rows' frame index for output frame f
        let dst = &mut v[f * plane..(f + 1) * plane];
        let (u1, c1, u2, c2) = (row(0, f), row(1, f), row(2, fr), row(3, fr));
        let (gf, gr, wf) = (g_fwd[f], g_rev[fr], w_fwd[f]);
        for k in 0..plane {
            let v1 = u1[k] + gf * (c1[k] - u1[k]);
            let v2 = u2[k] + gr * (c2[k] - u2[k]);
            dst[k] = wf * v1 + (1.0 - wf) * v2;
        }
    }
    v
}

/// Counts UNet runs for the progress callback and checks for cancellation before each, in both loops.
pub(super) struct Calls<'a> {
    runs: usize,
    total: usize,
    predictions: usize,
    progress: &'a mut dyn FnMut(&Progress),
    cancel: &'a CancelToken,
}

impl Calls<'_> {
    pub(super) fn before_run(&self) -> Result<(), PipelineError> {
        self.cancel.check()
    }

    pub(super) fn after_run(&mut self) {
        self.runs += 1;
        (self.progress)(&Progress {
            stage: Stage::Denoise,
            unet_calls_done: self.runs,
            unet_calls_total: self.total,
        });
    }
}

/// The schedule of one generation, shared by the host and device loops.
struct Schedule<'a> {
    sigmas: &'a [f32],
    g_fwd: &'a [f32],
    g_rev: &'a [f32],
    w_fwd: &'a [f32],
    init_sigma: f32,
    steps: usize,
    n_inject: usize,
    rounds: usize,
}

/// A call group's CLIP embeddings (zero for the unconditional rows) and added time ids (see `call_groups`).
fn unet_conditioning(cond: &Conditioning, group: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let d = cond.emb[0].len();
    let mut ehs = Vec::with_capacity(group.len() * d);
    for &r in group {
        match row_condition(r) {
            Some(c) => ehs.extend_from_slice(&cond.emb[c]),
            None => ehs.extend(std::iter::repeat_n(0.0f32, d)),
        }
    }
    let ids: Vec<f32> = group.iter().flat_map(|_| cond.added_time_ids).collect();
    (ehs, ids)
}

/// (n,F,4,h,w): each row's VAE conditioning latents repeated over the frames (zero for the unconditional rows).
fn cond_rows(cond: &Conditioning, frames: usize, group: &[usize]) -> Vec<f32> {
    let plane = cond.latents[0].len();
    let mut out = Vec::with_capacity(group.len() * frames * plane);
    for &r in group {
        for _ in 0..frames {
            match row_condition(r) {
                Some(c) => out.extend_from_slice(&cond.latents[c]),
                None => out.extend(std::iter::repeat_n(0.0f32, plane)),
            }
        }
    }
    out
}

/// Runs one session on named f32 inputs and returns its first output, flattened.
fn run(
    session: &Mutex<Session>,
    stage: &'static str,
    opts: &RunOptions,
    inputs: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
) -> Result<Vec<f32>, PipelineError> {
    let fail = |e: ort::Error| PipelineError::Inference {
        stage,
        message: e.to_string(),
    };
    let mut values = Vec::with_capacity(inputs.len());
    for (name, shape, data) in inputs {
        values.push((name, Tensor::from_array((shape, data)).map_err(fail)?));
    }
    let mut guard = session.lock().unwrap_or_else(|p| p.into_inner());
    let outputs = guard.run_with_options(values, opts).map_err(fail)?;
    let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
    Ok(data.to_vec())
}
