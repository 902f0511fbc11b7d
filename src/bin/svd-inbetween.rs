//! `svd-inbetween`: generate in-between frames from the command line (farms, scripts, tests), and `doctor`.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use svd_inbetween::image::{
    Fit, ImageF32, crop, fit_into, is_linear_file, placement, resize, srgb_decode, srgb_encode,
};
use svd_inbetween::pipeline::manifest::{load_and_verify, sha256_file};
use svd_inbetween::pipeline::noise::write_npy_f32;
use svd_inbetween::pipeline::{
    CancelToken, Engine, Fusion, GenerateParams, LoadOptions, NoiseSource, Progress,
    SamplerPlacement, Stage,
};
use svd_inbetween::plugin::timemap::{FrameSampling, frame_at};
use svd_inbetween::runtime::{self, DevicePreference};

#[path = "svd-inbetween/sequence.rs"]
mod sequence;

/// `println!` panics when stdout is a closed pipe (`doctor | head`); a report nobody reads ends quietly instead.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OutputFormat {
    Png,
    Exr,
}

#[derive(Parser)]
#[command(
    name = "svd-inbetween",
    version,
    about = "Generative in-betweening with Stable Video Diffusion on ONNX Runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run; boxing would only obscure clap's derive"
)]
enum Command {
    /// Generate the frames between two keyframes (frame_000.png is A's side, the last is B's).
    Generate(GenerateArgs),
    /// Fill every gap of a numbered PNG/EXR sequence between consecutive keyframes (one generation per interval,
    /// cached, the same frames as the plugin), copy the other frames, and write summary.json.
    Sequence(sequence::SequenceArgs),
    /// Report the ONNX Runtime library, providers, GPU, model package integrity, and run a one-step smoke test.
    Doctor {
        #[arg(long)]
        models: Option<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: DevicePreference,
        #[arg(long, default_value = "auto")]
        sampler: SamplerPlacement,
        /// One JSON object on stdout instead of lines (for checking farm nodes from scripts); exit status as usual.
        #[arg(long)]
        json: bool,
        /// CPU threads per operator for the smoke run (default: $SVD_INBETWEEN_THREADS, else one per core).
        #[arg(long)]
        threads: Option<NonZeroUsize>,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long)]
    models: PathBuf,
    #[arg(long = "from")]
    from: PathBuf,
    #[arg(long = "to")]
    to: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    gen_flags: GenerationFlags,
    /// Output size WxH; must be the model package's size (its graphs are exported for one size).
    #[arg(long)]
    size: Option<String>,
    /// Also write `inbetween_001.png`… for a gap of N frames between the keyframes (the model always makes its
    /// F frames; frame j of the gap is read at position j/(N+1), as the plugin does for a clip).
    #[arg(long, default_value_t = 0)]
    count: usize,
    /// Output files: 8-bit sRGB PNG, or 32-bit float scene-linear OpenEXR (sRGB curve decoded).
    #[arg(long, default_value = "png")]
    format: OutputFormat,
    #[arg(long = "save-noise", conflicts_with = "load_noise")]
    save_noise: Option<PathBuf>,
    #[arg(long = "load-noise")]
    load_noise: Option<PathBuf>,
}

/// The generation flags `generate` and `sequence` share.
#[derive(clap::Args)]
struct GenerationFlags {
    #[arg(long, default_value_t = 50)]
    steps: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 5)]
    noise_injection_steps: u32,
    #[arg(long, default_value_t = 0.5)]
    noise_injection_ratio: f32,
    #[arg(long = "motion-bucket", default_value_t = 127.0)]
    motion_bucket: f32,
    #[arg(long, default_value_t = 7.0)]
    fps: f32,
    #[arg(long = "noise-aug", default_value_t = 0.02)]
    noise_aug: f32,
    #[arg(long = "guidance-min", default_value_t = 1.0)]
    guidance_min: f32,
    #[arg(long = "guidance-max", default_value_t = 3.0)]
    guidance_max: f32,
    #[arg(long, default_value = "average")]
    fusion: Fusion,
    #[arg(long = "decode-chunk")]
    decode_chunk: Option<usize>,
    #[arg(long, default_value = "auto")]
    device: DevicePreference,
    /// Where the latents live between UNet calls: `device` keeps them in the provider's memory (IoBinding; the
    /// default on CUDA), `host` round-trips them through host memory (the default on the CPU).
    #[arg(long, default_value = "auto")]
    sampler: SamplerPlacement,
    /// Run the UNet at half batch: two calls per step, about half the activation memory (needs a package exported
    /// with --unet-batch 2 or dynamic).
    #[arg(long = "low-memory")]
    low_memory: bool,
    /// How keyframes of another aspect than the model's are fitted: letterbox (keep proportions, bars cropped
    /// off the results) or stretch.
    #[arg(long, default_value = "letterbox")]
    fit: Fit,
    /// How the in-betweens read the generated frames: blend the two nearest, or take the nearest.
    #[arg(long, default_value = "blend")]
    sampling: FrameSampling,
    /// CPU threads ONNX Runtime may use per operator (default: $SVD_INBETWEEN_THREADS, else one per core). A farm
    /// node that runs several renders at once gives each its share; the frames do not depend on it.
    #[arg(long)]
    threads: Option<NonZeroUsize>,
}

impl GenerationFlags {
    fn params(&self) -> Result<GenerateParams, String> {
        let params = GenerateParams {
            steps: self.steps,
            seed: self.seed,
            noise_injection_steps: self.noise_injection_steps,
            noise_injection_ratio: self.noise_injection_ratio,
            motion_bucket_id: self.motion_bucket,
            fps: self.fps,
            noise_aug_strength: self.noise_aug,
            min_guidance_scale: self.guidance_min,
            max_guidance_scale: self.guidance_max,
            fusion: self.fusion,
            decode_chunk_frames: self.decode_chunk,
        };
        params.validate().map_err(|e| e.to_string())?;
        Ok(params)
    }

    fn load_options(&self) -> Result<LoadOptions, String> {
        Ok(LoadOptions {
            device: self.device,
            sampler: self.sampler,
            low_memory: self.low_memory,
            cpu_threads: cpu_threads(self.threads)?,
            ..Default::default()
        })
    }
}

/// `--threads`, else $SVD_INBETWEEN_THREADS, else ONNX Runtime's default (one per core).
fn cpu_threads(flag: Option<NonZeroUsize>) -> Result<Option<NonZeroUsize>, String> {
    flag.map_or_else(runtime::cpu_threads_from_env, |n| Ok(Some(n)))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => generate(a),
        Command::Sequence(a) => sequence::run(a),
        Command::Doctor {
            models,
            device,
            sampler,
            json,
            threads,
        } => cpu_threads(threads)
            .and_then(|threads| doctor(models.as_deref(), device, sampler, threads, json)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svd-inbetween: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size '{s}' is not WxH"))?;
    let w: usize = w
        .trim()
        .parse()
        .map_err(|_| format!("size '{s}' is not WxH"))?;
    let h: usize = h
        .trim()
        .parse()
        .map_err(|_| format!("size '{s}' is not WxH"))?;
    if w == 0 || h == 0 || !w.is_multiple_of(64) || !h.is_multiple_of(64) {
        return Err(format!("size {w}x{h} is not a multiple of 64"));
    }
    Ok((w, h))
}

/// A keyframe fitted to the model size, and its own size.
fn load_keyframe(
    path: &Path,
    w: usize,
    h: usize,
    fit: Fit,
) -> Result<(ImageF32, (usize, usize)), String> {
    let img = ImageF32::read_png(path).map_err(|e| e.to_string())?;
    let mut img = img.to_channels(3).map_err(|e| e.to_string())?;
    if is_linear_file(path) {
        // SVD works on display-referred pictures: encode scene-linear EXR values with the sRGB curve (the
        // plugin's "Linear" input does the same); the EXR outputs are decoded back.
        img.data.iter_mut().for_each(|v| *v = srgb_encode(*v));
    }
    let size = (img.width, img.height);
    if size == (w, h) {
        return Ok((img, size));
    }
    let how = match fit {
        Fit::Letterbox => "keeping its proportions",
        Fit::Stretch => "stretched",
    };
    eprintln!(
        "note: fitting {} ({}x{}) to the model size {w}x{h}, {how} (Catmull-Rom)",
        path.display(),
        img.width,
        img.height
    );
    Ok((fit_into(&img, w, h, fit).0, size))
}

fn generate(a: GenerateArgs) -> Result<(), String> {
    let params = a.gen_flags.params()?;
    let requested = a.size.as_deref().map(parse_size).transpose()?;
    // Cheap checks first: a bad image should not wait for model loading.
    for p in [&a.from, &a.to] {
        ImageF32::read_png(p).map_err(|e| e.to_string())?;
    }
    let t_load = Instant::now();
    let engine =
        Engine::load_with(&a.models, &a.gen_flags.load_options()?).map_err(|e| e.to_string())?;
    let load_seconds = t_load.elapsed().as_secs_f64();
    let m = engine.manifest();
    if let Some((w, h)) = requested
        && (w, h) != (m.width, m.height)
    {
        return Err(format!(
            "size {w}x{h} differs from the model package's {}x{} (export a package at that size)",
            m.width, m.height
        ));
    }
    let fit = a.gen_flags.fit;
    let (from, size) = load_keyframe(&a.from, m.width, m.height, fit)?;
    let (to, _) = load_keyframe(&a.to, m.width, m.height, fit)?;
    eprintln!("provider: {}", engine.provider());
    let noise = match &a.load_noise {
        Some(d) => NoiseSource::Replay(d.clone()),
        None => NoiseSource::Seeded(params.seed),
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(
            (params.unet_calls() * engine.unet_runs_per_prediction()) as u64 + 2,
        );
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:8} [{bar:40}] {pos}/{len} UNet runs, eta {eta}",
            )
            .unwrap(),
        );
        Some(b)
    } else {
        None
    };
    let mut last_pct = -1i64;
    let mut on_progress = |p: &Progress| {
        let msg = match p.stage {
            Stage::Encode => "encode",
            Stage::Denoise => "denoise",
            Stage::Decode => "decode",
            Stage::Done => "done",
        };
        if let Some(b) = &bar {
            b.set_message(msg);
            b.set_position((p.fraction() * b.length().unwrap_or(1) as f64).round() as u64);
        } else {
            let pct = (p.fraction() * 100.0) as i64;
            if pct / 10 != last_pct / 10 {
                eprintln!(
                    "{msg}: {}/{} UNet runs ({pct}%)",
                    p.unet_calls_done, p.unet_calls_total
                );
                last_pct = pct;
            }
        }
    };
    let cancel = CancelToken::new();
    let t0 = Instant::now();
    let generation = engine
        .generate(
            &from,
            &to,
            &params,
            &noise,
            a.save_noise.as_deref(),
            &mut on_progress,
            &cancel,
        )
        .map_err(|e| e.to_string())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let total_seconds = t0.elapsed().as_secs_f64();
    std::fs::create_dir_all(&a.out)
        .map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    // PNGs at keyframe A's size (letterbox bars cropped off); frames.npy keeps the model's raw output.
    let region = placement(size.0, size.1, m.width, m.height, fit);
    let write = |img: &ImageF32, stem: String| {
        let mut out = resize(&crop(img, region), size.0, size.1);
        match a.format {
            OutputFormat::Png => out.write_png(&a.out.join(format!("{stem}.png"))),
            OutputFormat::Exr => {
                out.data
                    .iter_mut()
                    .for_each(|v| *v = srgb_decode(v.clamp(0.0, 1.0)));
                out.write_exr(&a.out.join(format!("{stem}.exr")))
            }
        }
        .map_err(|e| e.to_string())
    };
    for (i, f) in generation.frames.iter().enumerate() {
        write(f, format!("frame_{i:03}"))?;
    }
    for j in 1..=a.count {
        write(
            &frame_at(
                &generation.frames,
                j as f64 / (a.count + 1) as f64,
                a.gen_flags.sampling,
            ),
            format!("inbetween_{j:03}"),
        )?;
    }
    write_npy_f32(
        &a.out.join("latents.npy"),
        &generation.latent_shape,
        &generation.latents,
    )
    .map_err(|e| e.to_string())?;
    let frames: Vec<f32> = generation
        .frames
        .iter()
        .flat_map(|f| f.data.iter().copied())
        .collect();
    write_npy_f32(
        &a.out.join("frames.npy"),
        &[generation.frames.len(), m.height, m.width, 3],
        &frames,
    )
    .map_err(|e| e.to_string())?;
    let summary = serde_json::json!({
        "provider": engine.provider(),
        "onnxruntime": engine.runtime(),
        "models": {"dir": engine.models_dir(), "name": m.name, "manifest_sha256": engine.manifest_sha256(),
                   "frames": m.num_frames, "width": m.width, "height": m.height, "dtype": m.dtype},
        "params": params,
        "noise": match &a.load_noise { Some(d) => format!("replayed from {}", d.display()), None => format!("seed {}", params.seed) },
        "unet_calls": generation.stats.unet_calls,
        "unet_runs": generation.stats.unet_runs,
        "latents_on": generation.stats.latents_on,
        "fit": fit,
        "output_size": [size.0, size.1],
        "format": format!("{:?}", a.format).to_lowercase(),
        "unet_runs_per_step": engine.unet_runs_per_prediction(),
        "seconds": {"load": load_seconds, "encode": generation.stats.encode_seconds, "denoise": generation.stats.denoise_seconds,
                    "decode": generation.stats.decode_seconds, "total_generate": total_seconds},
        "peak_rss_bytes": peak_rss_bytes(),
    });
    std::fs::write(
        a.out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap() + "\n",
    )
    .map_err(|e| format!("cannot write summary.json: {e}"))?;
    eprintln!(
        "wrote {} frames to {} in {:.1} s ({} UNet calls)",
        generation.frames.len(),
        a.out.display(),
        total_seconds,
        generation.stats.unet_calls
    );
    Ok(())
}

/// VmHWM: the process's peak resident set, which includes ONNX Runtime's CPU arena.
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What `doctor` found: printed line by line, or (`--json`) as one object at the end for farm health checks.
struct Report {
    json: bool,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn line(&self, text: std::fmt::Arguments<'_>) {
        if !self.json {
            say!("{text}");
        }
    }

    fn set(&mut self, key: &str, value: impl serde::Serialize) {
        self.fields.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
    }
}

fn doctor(
    models: Option<&Path>,
    device: DevicePreference,
    sampler: SamplerPlacement,
    threads: Option<NonZeroUsize>,
    json: bool,
) -> Result<(), String> {
    let mut r = Report {
        json,
        fields: serde_json::Map::new(),
    };
    let result = doctor_checks(&mut r, models, device, sampler, threads);
    if json {
        r.set("ok", result.is_ok());
        if let Err(e) = &result {
            r.set("error", e);
        }
        say!("{}", serde_json::to_string_pretty(&r.fields).unwrap());
    } else if result.is_ok() {
        say!("doctor: all checks passed");
    }
    result
}

fn doctor_checks(
    r: &mut Report,
    models: Option<&Path>,
    device: DevicePreference,
    sampler: SamplerPlacement,
    threads: Option<NonZeroUsize>,
) -> Result<(), String> {
    r.line(format_args!(
        "ONNX Runtime candidates (first that loads wins):"
    ));
    let candidates = runtime::candidate_libraries(None);
    for c in &candidates {
        r.line(format_args!(
            "  {} [{}]{}",
            c.path.display(),
            c.origin,
            if c.path.exists() { "" } else { " (missing)" }
        ));
    }
    r.set("onnxruntime_candidates", candidates.iter().map(|c| serde_json::json!({"path": c.path, "origin": c.origin, "exists": c.path.exists()})).collect::<Vec<_>>());
    let (_, info) = runtime::environment(None).map_err(|e| e.to_string())?;
    r.line(format_args!("loaded: {}", info.library.display()));
    r.line(format_args!("version: {}", info.version));
    r.set("onnxruntime", info);
    let cuda = runtime::cuda_compiled_in();
    r.line(format_args!("CUDA provider compiled in: {cuda}"));
    r.set("cuda_compiled_in", cuda);
    let providers = runtime::available_providers()?;
    r.line(format_args!(
        "providers in this build: {}",
        providers.join(", ")
    ));
    r.set("providers_in_build", &providers);
    let gpu = match std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
        ])
        .output()
    {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        _ => None,
    };
    r.line(format_args!(
        "GPU: {}",
        gpu.as_deref()
            .unwrap_or("none found (nvidia-smi unavailable)")
    ));
    r.set("gpu", &gpu);
    let Some(dir) = models else {
        r.line(format_args!("models: not checked (pass --models DIR)"));
        return Ok(());
    };
    let pkg = load_and_verify(dir).map_err(|e| e.to_string())?;
    for (name, f) in &pkg.manifest.files {
        let got = sha256_file(&dir.join(name)).map_err(|e| e.to_string())?;
        r.line(format_args!(
            "  {name}: {} bytes, sha256 ok ({}…)",
            f.bytes,
            &got[..12]
        ));
    }
    let m = &pkg.manifest;
    r.line(format_args!(
        "models: {} ({}x{}, {} frames, {}) verified",
        m.name, m.width, m.height, m.num_frames, m.dtype
    ));
    r.set("models", serde_json::json!({"dir": dir, "name": m.name, "width": m.width, "height": m.height, "frames": m.num_frames,
        "dtype": m.dtype, "unet_batch": m.unet_batch, "sha256_verified": true}));
    // The UNet is profiled for the smoke run: the trace says which provider ran each kernel.
    let profile_dir =
        std::env::temp_dir().join(format!("svd-inbetween-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&profile_dir)
        .map_err(|e| format!("cannot create {}: {e}", profile_dir.display()))?;
    let smoke = smoke_run(r, dir, device, sampler, threads, &profile_dir);
    let _ = std::fs::remove_dir_all(&profile_dir);
    smoke
}

fn smoke_run(
    r: &mut Report,
    dir: &Path,
    device: DevicePreference,
    sampler: SamplerPlacement,
    threads: Option<NonZeroUsize>,
    profile_dir: &Path,
) -> Result<(), String> {
    let options = LoadOptions {
        device,
        sampler,
        profile_unet: Some(profile_dir.join("unet")),
        cpu_threads: threads,
        ..Default::default()
    };
    let engine = Engine::load_with(dir, &options).map_err(|e| e.to_string())?;
    r.line(format_args!("provider: {}", engine.provider()));
    r.set("provider", engine.provider());
    r.line(format_args!(
        "CPU threads per operator: {}",
        threads.map_or("ONNX Runtime's default (one per core)".into(), |n| n
            .to_string())
    ));
    r.set("cpu_threads", threads);
    let m = engine.manifest();
    let grey = ImageF32::from_vec(m.width, m.height, 3, vec![0.5; m.width * m.height * 3]).unwrap();
    let p = GenerateParams {
        steps: 1,
        noise_injection_steps: 0,
        ..Default::default()
    };
    let t = Instant::now();
    let g = engine
        .generate(
            &grey,
            &grey,
            &p,
            &NoiseSource::Seeded(0),
            None,
            &mut |_| {},
            &CancelToken::new(),
        )
        .map_err(|e| e.to_string())?;
    let finite = g
        .frames
        .iter()
        .all(|f| f.data.iter().all(|v| v.is_finite()));
    let seconds = t.elapsed().as_secs_f64();
    r.line(format_args!(
        "smoke run: 1 step, {} frames in {seconds:.2} s, latents on {}, finite: {finite}",
        g.frames.len(),
        g.stats.latents_on
    ));
    r.set("smoke_run", serde_json::json!({"steps": 1, "frames": g.frames.len(), "seconds": seconds, "latents_on": g.stats.latents_on, "finite": finite}));
    if !finite {
        return Err("smoke run produced non-finite values".into());
    }
    let trace = engine.end_unet_profiling().map_err(|e| e.to_string())?;
    let placement = runtime::profile::read_placement(&trace, g.stats.unet_runs)?;
    r.line(format_args!("UNet kernels: {}", placement.summary()));
    r.set("unet_kernels", &placement.by_provider);
    if engine.provider().is_cuda() {
        let on_cuda = placement.kernels_on("CUDAExecutionProvider");
        r.set("cuda_verified", on_cuda > 0);
        if on_cuda == 0 {
            return Err(format!(
                "the CUDA provider registered but ran none of the UNet's {} kernels",
                placement.total()
            ));
        }
        r.line(format_args!(
            "CUDA verified: {on_cuda} of {} UNet kernels ran on CUDAExecutionProvider",
            placement.total()
        ));
    }
    Ok(())
}
