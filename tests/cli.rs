//! The `svd-inbetween` CLI end to end on the embedded tiny models: parity with the PyTorch reference (replayed
//! noise), determinism, and one-line errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svd-inbetween"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run svd-inbetween")
}

fn python() -> PathBuf {
    let p = std::env::var_os("SVD_INBETWEEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/svd-inbetween/venv/bin/python")
        });
    assert!(
        p.exists(),
        "the reference needs the project venv: run `bash scripts/setup.sh` (looked for {})",
        p.display()
    );
    p
}

/// The embedded package's diffusers folders (committed beside it: the trained forward model and the reverse-motion
/// UNet, which the package was exported from), which the reference runs on.
fn tiny_source() -> PathBuf {
    let src = root().join("models/tiny/source");
    assert!(
        src.join("unet/config.json").exists() && src.join("reverse_unet/config.json").exists(),
        "models/tiny/source (the committed diffusers folders of the embedded package) is missing"
    );
    src
}

fn read_npy(p: &Path) -> (Vec<usize>, Vec<f32>) {
    svd_inbetween::pipeline::noise::read_npy_f32(p).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// fp32 on the CPU: ONNX Runtime and PyTorch order their float sums differently, so bit equality is not expected;
/// 1e-4 on latents (whose magnitude is ~7 here) is ~1e-5 relative, the accumulated rounding of 12 UNet calls.
/// Frames go through the decoder and a /2 scale, so 1e-3 on [0,1] leaves a wide margin over what we see (~5e-6).
#[test]
fn matches_the_pytorch_reference_with_replayed_noise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (
        root().join("assets/keyframes/a.png"),
        root().join("assets/keyframes/b.png"),
    );
    // The reference resizes with PIL; give both sides keyframes already at the model size (128x64).
    for (src, dst) in [(&a, d.join("a.png")), (&b, d.join("b.png"))] {
        let img = svd_inbetween::image::ImageF32::read_png(src).unwrap();
        let small = svd_inbetween::image::resize(&img, 128, 64);
        small.write_png(&dst).unwrap();
    }
    let common = [
        "--steps",
        "6",
        "--seed",
        "7",
        "--noise-injection-steps",
        "2",
        "--noise-injection-ratio",
        "0.5",
    ];
    let src = tiny_source();
    let mut args: Vec<String> = vec![
        "-m".into(),
        "tools.reference".into(),
        "--models-source".into(),
        src.display().to_string(),
    ];
    args.extend(
        [
            "--from",
            d.join("a.png").to_str().unwrap(),
            "--to",
            d.join("b.png").to_str().unwrap(),
        ]
        .map(String::from),
    );
    args.extend([
        "--out".into(),
        d.join("ref").display().to_string(),
        "--save-noise".into(),
        d.join("noise").display().to_string(),
    ]);
    args.extend(common.iter().map(|s| s.to_string()));
    let o = Command::new(python())
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "reference failed: {}", stderr(&o));
    let noise_files = std::fs::read_dir(d.join("noise")).unwrap().count();
    assert_eq!(
        noise_files,
        2 + 3 * 2,
        "aug + init + 3 injected steps x 2 rounds"
    );

    let mut rs: Vec<&str> = vec!["generate", "--models", "models/tiny", "--device", "cpu"];
    let (fa, fb, out, nz) = (
        d.join("a.png"),
        d.join("b.png"),
        d.join("rs"),
        d.join("noise"),
    );
    rs.extend([
        "--from",
        fa.to_str().unwrap(),
        "--to",
        fb.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--load-noise",
        nz.to_str().unwrap(),
    ]);
    rs.extend(common);
    let o = cli(&rs);
    assert!(o.status.success(), "{}", stderr(&o));

    let (s1, l_ref) = read_npy(&d.join("ref/latents.npy"));
    let (s2, l_rs) = read_npy(&d.join("rs/latents.npy"));
    assert_eq!(s1, s2);
    assert_eq!(s1, vec![1, 7, 4, 8, 16]);
    let dl = max_abs(&l_ref, &l_rs);
    let (_, f_ref) = read_npy(&d.join("ref/frames.npy"));
    let (_, f_rs) = read_npy(&d.join("rs/frames.npy"));
    let df = max_abs(&f_ref, &f_rs);
    eprintln!("parity: latents max abs {dl:.3e}, frames max abs {df:.3e}");
    assert!(dl <= 1e-4, "latents differ by {dl}");
    assert!(df <= 1e-3, "frames differ by {df}");
    // and the noise really mattered: a different seed's noise changes the result
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("rs/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["unet_calls"], 12);
    assert_eq!(summary["unet_runs"], 12);
    assert_eq!(summary["provider"]["provider"], "CPUExecutionProvider");
    assert_eq!(summary["latents_on"], "host");

    // The on-device loop (IoBinding + the sampler graphs; what CUDA uses) forced on the CPU: every graph node is
    // one correctly rounded elementwise op in the host loop's order, so the latents are bit-identical, not close.
    let dev = d.join("rs_device");
    let mut rs_dev: Vec<&str> = rs.clone();
    let i = rs_dev.iter().position(|a| *a == "--out").unwrap();
    rs_dev[i + 1] = dev.to_str().unwrap();
    rs_dev.extend(["--sampler", "device"]);
    let o = cli(&rs_dev);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, l_dev) = read_npy(&dev.join("latents.npy"));
    assert_eq!(
        l_dev, l_rs,
        "device loop latents differ from the host loop's"
    );
    assert!(max_abs(&l_ref, &l_dev) <= 1e-4);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["latents_on"], "device (Cpu)");
    assert_eq!(summary["unet_calls"], 12);
}

/// `doctor` runs the smoke step with the UNet profiled and reports which provider ran its kernels.
#[test]
fn doctor_reports_kernel_placement_from_a_profile() {
    for (sampler, on) in [("host", "host"), ("device", "device (Cpu)")] {
        let o = cli(&[
            "doctor",
            "--models",
            "models/tiny",
            "--device",
            "cpu",
            "--sampler",
            sampler,
        ]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{}{}", out, stderr(&o));
        assert!(
            out.contains("provider: CPUExecutionProvider (CPU requested)"),
            "{out}"
        );
        // the CPU wheel: compiled without CUDA, and it says so
        assert!(out.contains("CUDA provider compiled in: false\n"), "{out}");
        let providers = out
            .lines()
            .find(|l| l.starts_with("providers in this build: "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            providers.ends_with("CPUExecutionProvider") && !providers.contains("CUDA"),
            "{providers}"
        );
        assert!(
            out.contains(&format!("latents on {on}, finite: true")),
            "{out}"
        );
        let line = out
            .lines()
            .find(|l| l.starts_with("UNet kernels: "))
            .unwrap_or_else(|| panic!("{out}"));
        // Only the CPU ran anything, and a one-step run of the tiny UNet executes thousands of kernels.
        let n: usize = line["UNet kernels: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n > 1000, "{line}");
        assert!(
            line.contains(" on CPUExecutionProvider (") && !line.contains("CUDA"),
            "{line}"
        );
        assert!(out.ends_with("doctor: all checks passed\n"), "{out}");
    }
    // --json: the same findings as one object, for scripts checking farm nodes
    let o = cli(&[
        "doctor",
        "--models",
        "models/tiny",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["provider"]["provider"], "CPUExecutionProvider");
    assert_eq!(j["models"]["sha256_verified"], true);
    assert_eq!(j["smoke_run"]["finite"], true);
    let kernels: u64 = j["unet_kernels"]["CPUExecutionProvider"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(kernels > 1000, "{kernels}");
    assert!(j["unet_kernels"].get("CUDAExecutionProvider").is_none());
    let o = cli(&["doctor", "--models", "no/such/dir", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(
        j["error"],
        "model folder no/such/dir: does not exist (set the Models folder, or export one with `python -m tools.export`)"
    );
    assert!(
        j["onnxruntime"]["library"].is_string(),
        "what was found before the failure is still reported"
    );
}

#[test]
fn same_seed_gives_byte_identical_frames_and_save_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |out: &str, extra: &[&str]| {
        let o = d.join(out);
        let mut args = vec![
            "generate",
            "--models",
            "models/tiny",
            "--from",
            "assets/keyframes/a.png",
            "--to",
            "assets/keyframes/b.png",
            "--steps",
            "3",
            "--noise-injection-steps",
            "1",
            "--out",
        ];
        args.push(o.to_str().unwrap());
        args.extend(extra);
        let r = cli(&args);
        assert!(r.status.success(), "{}", stderr(&r));
        // the PNGs and the model's float frames
        (0..7)
            .map(|i| std::fs::read(o.join(format!("frame_{i:03}.png"))).unwrap())
            .chain([std::fs::read(o.join("frames.npy")).unwrap()])
            .collect::<Vec<_>>()
    };
    let nz = d.join("noise");
    let first = run("a", &["--seed", "5", "--save-noise", nz.to_str().unwrap()]);
    assert_eq!(first, run("b", &["--seed", "5"]), "same seed, same bytes");
    assert_eq!(
        first,
        run("c", &["--load-noise", nz.to_str().unwrap()]),
        "replayed noise, same bytes"
    );
    assert_ne!(
        first,
        run("d", &["--seed", "6"]),
        "another seed changes the frames"
    );
    // a farm node may run each render on its share of the cores: the frames must not depend on it
    assert_eq!(
        first,
        run("e", &["--seed", "5", "--threads", "1"]),
        "one thread, same bytes"
    );
    assert_eq!(
        first,
        run("f", &["--seed", "5", "--threads", "3"]),
        "more threads than cores, same bytes"
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "generate".into(),
            "--out".into(),
            d.join("o").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |args: Vec<String>| {
        let o = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!o.status.success());
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{e}");
        e.trim().to_string()
    };
    let keys = [
        "--from",
        "assets/keyframes/a.png",
        "--to",
        "assets/keyframes/b.png",
    ];
    let with = |more: &[&str]| {
        let mut v: Vec<&str> = keys.to_vec();
        v.extend(more);
        base(&v)
    };
    assert_eq!(
        run(with(&["--models", "models/tiny", "--steps", "0"])),
        "svd-inbetween: error: invalid input: steps must be at least 1"
    );
    assert_eq!(
        run(with(&[
            "--models",
            "models/tiny",
            "--noise-injection-ratio",
            "1.5"
        ])),
        "svd-inbetween: error: invalid input: noise injection ratio 1.5 is outside [0, 1]"
    );
    assert_eq!(
        run(with(&["--models", "models/tiny", "--size", "100x64"])),
        "svd-inbetween: error: size 100x64 is not a multiple of 64"
    );
    assert_eq!(
        run(with(&["--models", "models/tiny", "--low-memory"])),
        "svd-inbetween: error: model folder models/tiny: low memory needs a UNet exported with --unet-batch 2 or dynamic; this one takes batch 4"
    );
    assert_eq!(
        run(with(&["--models", "models/tiny", "--size", "256x128"])),
        "svd-inbetween: error: size 256x128 differs from the model package's 128x64 (export a package at that size)"
    );
    let missing = d.join("nope");
    assert_eq!(
        run(with(&["--models", missing.to_str().unwrap()])),
        format!(
            "svd-inbetween: error: model folder {}: does not exist (set the Models folder, or export one with `python -m tools.export`)",
            missing.display()
        )
    );
    // a corrupt copy of the package
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for e in std::fs::read_dir(root().join("models/tiny")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), bad.join(e.file_name())).unwrap();
        }
    }
    let mut bytes = std::fs::read(bad.join("vae_decoder.onnx")).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(bad.join("vae_decoder.onnx"), &bytes).unwrap();
    let e = run(with(&["--models", bad.to_str().unwrap()]));
    assert!(
        e.starts_with(&format!(
            "svd-inbetween: error: model folder {}: vae_decoder.onnx is corrupt: sha256 ",
            bad.display()
        )),
        "{e}"
    );
    std::fs::remove_file(bad.join("manifest.json")).unwrap();
    assert_eq!(
        run(with(&["--models", bad.to_str().unwrap()])),
        format!(
            "svd-inbetween: error: model folder {}: has no manifest.json — export a package with `python -m tools.export` (see docs/EXPORT.md)",
            bad.display()
        )
    );
    // unreadable and missing images
    std::fs::write(d.join("junk.png"), b"not a png").unwrap();
    let e = run(base(&[
        "--models",
        "models/tiny",
        "--from",
        d.join("junk.png").to_str().unwrap(),
        "--to",
        "assets/keyframes/b.png",
    ]));
    assert!(
        e.starts_with(&format!(
            "svd-inbetween: error: cannot read image {}",
            d.join("junk.png").display()
        )),
        "{e}"
    );
    let e = run(base(&[
        "--models",
        "models/tiny",
        "--from",
        "assets/keyframes/missing.png",
        "--to",
        "assets/keyframes/b.png",
    ]));
    assert!(
        e.starts_with("svd-inbetween: error: cannot read image assets/keyframes/missing.png"),
        "{e}"
    );
    // one line each
    assert!(!e.contains('\n'));
}

fn gpu_build() -> PathBuf {
    let p = std::env::var_os("SVD_INBETWEEN_ORT_GPU_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/svd-inbetween/onnxruntime-gpu-1.31.1/libonnxruntime.so.1.31.1")
        });
    assert!(
        p.exists(),
        "the CUDA build of ONNX Runtime is fetched by `bash scripts/setup-ort-gpu.sh` (looked for {})",
        p.display()
    );
    p
}

fn has_nvidia_driver() -> bool {
    Command::new("nvidia-smi")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The real CUDA provider library (onnxruntime-gpu) on a machine without CUDA: `--device cuda` is a one-line error
/// that names the missing library and what to install; `auto` runs on the CPU and records why in summary.json.
/// (On a machine with a GPU the same commands must instead run on CUDA with the latents on the device.)
#[test]
fn cuda_build_without_cuda_fails_loudly_or_falls_back_with_the_reason() {
    let lib = gpu_build();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |device: &str, out: &str| {
        let o = d.join(out);
        Command::new(env!("CARGO_BIN_EXE_svd-inbetween"))
            .args([
                "generate",
                "--models",
                "models/tiny",
                "--from",
                "assets/keyframes/a.png",
                "--to",
                "assets/keyframes/b.png",
            ])
            .args([
                "--steps",
                "2",
                "--noise-injection-steps",
                "1",
                "--device",
                device,
                "--out",
                o.to_str().unwrap(),
            ])
            .env("SVD_INBETWEEN_ORT_LIB", &lib)
            .current_dir(root())
            .output()
            .unwrap()
    };
    let summary = |out: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(out).join("summary.json")).unwrap()).unwrap()
    };

    let o = run("cuda", "cuda");
    if has_nvidia_driver() && o.status.success() {
        let s = summary("cuda");
        assert_eq!(s["provider"]["provider"], "CUDAExecutionProvider");
        assert_eq!(s["latents_on"], "device (Cuda)");
        return;
    }
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let line = e.lines().last().unwrap();
    assert!(
        line.starts_with("svd-inbetween: error: CUDA was requested but is not usable: "),
        "{e}"
    );
    if !has_nvidia_driver() {
        // CUDA's own libraries are what is missing here; the provider library itself was found and tried.
        assert!(
            line.contains(" — Failed to load library ")
                && line.contains("libonnxruntime_providers_cuda.so with error: lib"),
            "{line}"
        );
        assert!(
            line.contains("cannot open shared object file") && !line.contains("onnxruntime_src"),
            "{line}"
        );
    }

    let o = run("auto", "auto");
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary("auto");
    assert_eq!(s["provider"]["provider"], "CPUExecutionProvider");
    assert_eq!(s["latents_on"], "host");
    let reason = s["provider"]["fallback_reason"].as_str().unwrap();
    assert_eq!(
        format!("svd-inbetween: error: CUDA was requested but is not usable: {reason}"),
        line,
        "same reason both ways"
    );
    assert_eq!(s["onnxruntime"]["library"], lib.to_str().unwrap());

    // doctor on that build: CUDA is compiled in, and the missing pieces are named when it is demanded
    let o = Command::new(env!("CARGO_BIN_EXE_svd-inbetween"))
        .args(["doctor", "--models", "models/tiny", "--device", "cuda"])
        .env("SVD_INBETWEEN_ORT_LIB", &lib)
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("CUDA provider compiled in: true\n"), "{out}");
    assert!(out.contains("providers in this build: TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider\n"), "{out}");
    if !has_nvidia_driver() {
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(stderr(&o).trim(), line);
    }
}

/// The low-memory UNet (exported with --unet-batch 2: the unconditional pair, then the conditional pair) gives
/// the same prediction as the batch-4 graph, in both loops. The row pairing decides the attention maps the
/// reverse rows use, so a wrong grouping would show as an O(1) difference, not rounding. Both packages come from
/// the embedded package's committed source.
#[test]
fn low_memory_half_batch_matches_the_batch_4_package() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkg = d.join("tiny_k1");
    let src = tiny_source();
    let o = Command::new(python())
        .args([
            "-m",
            "tools.export",
            "--svd",
            src.to_str().unwrap(),
            "--reverse-unet",
            src.join("reverse_unet").to_str().unwrap(),
            "--frames",
            "7",
            "--height",
            "64",
            "--width",
            "128",
            "--unet-batch",
            "2",
            "--out",
            pkg.to_str().unwrap(),
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "export failed: {}", stderr(&o));
    let run = |models: &Path, out: &str, extra: &[&str]| {
        let o = d.join(out);
        let mut args = vec![
            "generate",
            "--models",
            models.to_str().unwrap(),
            "--from",
            "assets/keyframes/a.png",
            "--to",
            "assets/keyframes/b.png",
        ];
        args.extend([
            "--steps",
            "4",
            "--seed",
            "3",
            "--noise-injection-steps",
            "2",
            "--device",
            "cpu",
            "--out",
            o.to_str().unwrap(),
        ]);
        args.extend(extra);
        let r = cli(&args);
        assert!(r.status.success(), "{}", stderr(&r));
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(o.join("summary.json")).unwrap()).unwrap();
        (read_npy(&o.join("latents.npy")).1, s)
    };
    let (base, s) = run(&root().join("models/tiny"), "k2", &[]);
    assert_eq!(s["unet_runs_per_step"], 1);
    for (sampler, on) in [("host", "host"), ("device", "device (Cpu)")] {
        let (l, s) = run(&pkg, sampler, &["--sampler", sampler, "--low-memory"]);
        assert_eq!(s["unet_runs_per_step"], 2);
        assert_eq!(s["latents_on"], on);
        assert_eq!(s["unet_calls"], 8, "fused predictions, as with batch 4");
        assert_eq!(s["unet_runs"], 16, "two half-batch runs each");
        let diff = max_abs(&base, &l);
        eprintln!("low memory ({sampler} loop) vs batch 4: latents max abs {diff:.3e}");
        assert!(diff <= 1e-5, "{sampler}: {diff}");
    }
}

/// A failure of the on-device loop (the GPU path, never yet run on a GPU) costs a second, host-loop generation,
/// not the frames: the result equals a host-loop run and summary.json says what happened.
#[test]
fn a_failing_device_loop_falls_back_to_the_host_loop() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |out: &str, sampler: &str, fail: bool| {
        let o = d.join(out);
        let mut c = Command::new(env!("CARGO_BIN_EXE_svd-inbetween"));
        c.args([
            "generate",
            "--models",
            "models/tiny",
            "--from",
            "assets/keyframes/a.png",
            "--to",
            "assets/keyframes/b.png",
        ])
        .args([
            "--steps",
            "3",
            "--noise-injection-steps",
            "1",
            "--device",
            "cpu",
            "--sampler",
            sampler,
            "--out",
            o.to_str().unwrap(),
        ])
        .current_dir(root());
        if fail {
            c.env("SVD_INBETWEEN_TEST_FAIL", "device-loop");
        }
        let r = c.output().unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(o.join("summary.json")).unwrap()).unwrap();
        (read_npy(&o.join("latents.npy")).1, s, stderr(&r))
    };
    let (host, _, _) = run("host", "host", false);
    let (fallback, s, err) = run("fallback", "device", true);
    assert_eq!(
        s["latents_on"],
        "host (device loop failed: test failure requested by SVD_INBETWEEN_TEST_FAIL)"
    );
    assert!(
        err.contains("generating again with the latents on the host"),
        "{err}"
    );
    assert_eq!(fallback, host);
    assert_eq!(
        s["unet_calls"], 4,
        "3 steps + 1 re-injection round: the retry counts once"
    );
}

/// A 4:3 keyframe pair on the 2:1 tiny model: letterboxed (proportions kept, pillar bars), and the PNGs come back
/// at the keyframes' size with the bars cropped off; `--fit stretch` is the other, distorting, choice.
#[test]
fn letterbox_keeps_proportions_and_crops_the_bars_off() {
    use svd_inbetween::image::{ImageF32, resize, to_u8};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for k in ["a", "b"] {
        let img = ImageF32::read_png(&root().join(format!("assets/keyframes/{k}.png"))).unwrap();
        resize(&img, 256, 192)
            .write_png(&d.join(format!("{k}43.png")))
            .unwrap();
    }
    let run = |out: &str, fit: &str| {
        let o = d.join(out);
        let (fa, fb) = (d.join("a43.png"), d.join("b43.png"));
        let r = cli(&[
            "generate",
            "--models",
            "models/tiny",
            "--from",
            fa.to_str().unwrap(),
            "--to",
            fb.to_str().unwrap(),
            "--steps",
            "2",
            "--noise-injection-steps",
            "0",
            "--fit",
            fit,
            "--out",
            o.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", stderr(&r));
        o
    };
    let lb = run("letterbox", "letterbox");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lb.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["fit"], "letterbox");
    assert_eq!(s["output_size"], serde_json::json!([256, 192]));
    let (shape, frames) = read_npy(&lb.join("frames.npy"));
    assert_eq!(shape, vec![7, 64, 128, 3]);
    // 256x192 in 128x64: 85x64 at x = 21 (64·256/192 = 85.3)
    let (x0, w) = (21usize, 85usize);
    for i in [0usize, 3, 6] {
        let f = &frames[i * 64 * 128 * 3..(i + 1) * 64 * 128 * 3];
        let mut region = ImageF32::new(w, 64, 3);
        for y in 0..64 {
            for x in 0..w {
                for c in 0..3 {
                    region.data[(y * w + x) * 3 + c] = f[(y * 128 + x0 + x) * 3 + c];
                }
            }
        }
        let want: Vec<u8> = resize(&region, 256, 192)
            .data
            .iter()
            .map(|v| to_u8(*v))
            .collect();
        let png = image::open(lb.join(format!("frame_{i:03}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!((png.width(), png.height()), (256, 192));
        assert_eq!(png.into_raw(), want, "frame {i}");
    }
    let st = run("stretch", "stretch");
    let a = std::fs::read(lb.join("frame_003.png")).unwrap();
    assert_ne!(
        a,
        std::fs::read(st.join("frame_003.png")).unwrap(),
        "stretch is another result"
    );
}

/// `--count N` fills a gap of N frames the way the plugin reads a clip: frame j at u = j/(N+1). With N = F − 2 = 5
/// every position lands exactly on a generated frame (u·(F−1) = j); with N = 9 the middle one (j = 5, u = 1/2)
/// lands on frame 3 and the others blend two neighbours.
#[test]
fn count_fills_a_gap_like_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |out: &str, count: &str, sampling: &str| {
        let o = d.join(out);
        let r = cli(&[
            "generate",
            "--models",
            "models/tiny",
            "--from",
            "assets/keyframes/a.png",
            "--to",
            "assets/keyframes/b.png",
            "--steps",
            "2",
            "--noise-injection-steps",
            "0",
            "--count",
            count,
            "--sampling",
            sampling,
            "--out",
            o.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", stderr(&r));
        o
    };
    let five = run("five", "5", "blend");
    for j in 1..=5 {
        assert_eq!(
            std::fs::read(five.join(format!("inbetween_{j:03}.png"))).unwrap(),
            std::fs::read(five.join(format!("frame_{j:03}.png"))).unwrap(),
            "j = {j}"
        );
    }
    assert!(!five.join("inbetween_006.png").exists());
    let nine = run("nine", "9", "blend");
    assert_eq!(
        std::fs::read(nine.join("inbetween_005.png")).unwrap(),
        std::fs::read(nine.join("frame_003.png")).unwrap()
    );
    // j = 1: u = 0.1, position 0.6 → 0.4·frame 0 + 0.6·frame 1, neither of them
    let j1 = std::fs::read(nine.join("inbetween_001.png")).unwrap();
    assert_ne!(j1, std::fs::read(nine.join("frame_000.png")).unwrap());
    assert_ne!(j1, std::fs::read(nine.join("frame_001.png")).unwrap());
    // nearest: position 0.6 rounds to frame 1
    let near = run("near", "9", "nearest");
    assert_eq!(
        std::fs::read(near.join("inbetween_001.png")).unwrap(),
        std::fs::read(near.join("frame_001.png")).unwrap()
    );
}

/// Scene-linear OpenEXR keyframes are sRGB-encoded for the model and the EXR outputs decoded back: the same
/// pictures as the PNG route, through the transfer curve, in float.
#[test]
fn exr_in_exr_out_is_the_png_route_through_the_transfer_curve() {
    use svd_inbetween::image::{ImageF32, srgb_decode, srgb_encode};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for k in ["a", "b"] {
        let mut img =
            ImageF32::read_png(&root().join(format!("assets/keyframes/{k}.png"))).unwrap();
        img.data.iter_mut().for_each(|v| *v = srgb_decode(*v));
        img.write_exr(&d.join(format!("{k}.exr"))).unwrap();
    }
    let run = |out: &str, ext: &str, format: &str| {
        let o = d.join(out);
        let (fa, fb) = if ext == "png" {
            (
                root().join("assets/keyframes/a.png"),
                root().join("assets/keyframes/b.png"),
            )
        } else {
            (d.join("a.exr"), d.join("b.exr"))
        };
        let r = cli(&[
            "generate",
            "--models",
            "models/tiny",
            "--from",
            fa.to_str().unwrap(),
            "--to",
            fb.to_str().unwrap(),
            "--steps",
            "2",
            "--noise-injection-steps",
            "0",
            "--format",
            format,
            "--out",
            o.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", stderr(&r));
        o
    };
    let png = run("png", "png", "png");
    let exr = run("exr", "exr", "exr");
    // decode∘encode in f32 moves the keyframes by ~1e-7; the tiny random model amplifies that ~10x at most
    let (_, f_png) = read_npy(&png.join("frames.npy"));
    let (_, f_exr) = read_npy(&exr.join("frames.npy"));
    let d_model = max_abs(&f_png, &f_exr);
    assert!(d_model <= 1e-4, "model frames differ by {d_model}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exr.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["format"], "exr");
    assert!(!exr.join("frame_003.png").exists());
    let out = ImageF32::read_png(&exr.join("frame_003.exr")).unwrap();
    let reference = ImageF32::read_png(&png.join("frame_003.png")).unwrap();
    assert_eq!((out.width, out.height, out.channels), (256, 128, 3));
    let worst = out
        .data
        .iter()
        .zip(&reference.data)
        .map(|(l, p)| (srgb_encode(*l) - p).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 0.5 / 255.0 + 1e-4,
        "EXR (re-encoded) vs 8-bit PNG: {worst}"
    );
}
