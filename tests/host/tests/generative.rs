//! Generative mode through the real `.ofx` in the test host, on the embedded tiny models.
//! Tests in this file share the plugin's process-wide cache, so they run one at a time (GEN_LOCK) and measure
//! generation counts as differences.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ofx_test_host::*;
use svd_inbetween::image::{ImageF32, resize};

static GEN_LOCK: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> String {
    root()
        .join("models/tiny")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

fn keyframe(name: &str) -> ImageF32 {
    ImageF32::read_png(&root().join("assets/keyframes").join(name))
        .unwrap()
        .to_channels(4)
        .unwrap()
}

/// A 256x128 clip of length `len`: frame 0 = a.png, frame len = b.png (frames between are copies of A).
fn instance(len: i64) -> Instance {
    let (a, b) = (keyframe("a.png"), keyframe("b.png"));
    let inst = plugin().instance(
        "OfxImageEffectContextGeneral",
        a.width as i32,
        a.height as i32,
        len as f64,
    );
    let (ha, hb) = (
        host_image_from_rgba(&a, Depth::Float, 4, false),
        host_image_from_rgba(&b, Depth::Float, 4, false),
    );
    for t in 0..=len {
        inst.add_frame("Source", t, if t < len { ha.clone() } else { hb.clone() });
    }
    inst.set_int("mode", 0);
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", len as i32);
    inst.set_string("modelsFolder", &models());
    inst.set_int("steps", 3);
    inst.set_int("noiseInjectionSteps", 1);
    inst
}

fn gens() -> u64 {
    generation_count(plugin())
}

#[test]
fn generated_frames_equal_the_cli_after_the_same_resize() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Interval 6 = F − 1: output frame t reads generated frame t exactly (no blending between frames).
    let inst = instance(6);
    inst.set_int("seed", 11);
    for t in 1..6 {
        assert_eq!(
            inst.render(t as f64, [0, 0, 256, 128]),
            0,
            "{:?}",
            inst.messages()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let cli = root().join("target/debug/svd-inbetween");
    let o = std::process::Command::new(&cli)
        .args([
            "generate",
            "--models",
            &models(),
            "--steps",
            "3",
            "--noise-injection-steps",
            "1",
            "--seed",
            "11",
            "--out",
        ])
        .arg(dir.path())
        .arg("--from")
        .arg(root().join("assets/keyframes/a.png"))
        .arg("--to")
        .arg(root().join("assets/keyframes/b.png"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, frames) =
        svd_inbetween::pipeline::noise::read_npy_f32(&dir.path().join("frames.npy")).unwrap();
    assert_eq!(shape, vec![7, 64, 128, 3]);
    let mut worst = 0.0f32;
    for t in 1..6usize {
        let generated = ImageF32::from_vec(
            128,
            64,
            3,
            frames[t * 64 * 128 * 3..(t + 1) * 64 * 128 * 3].to_vec(),
        )
        .unwrap();
        let want = resize(&generated, 256, 128);
        let got = host_image_to_rgba(&inst.output(t as i64).unwrap());
        for y in 0..128 {
            for x in 0..256 {
                for c in 0..3 {
                    worst = worst.max((got.pixel(x, y)[c] - want.pixel(x, y)[c]).abs());
                }
                // alpha from the nearest keyframe (both opaque here)
                assert_eq!(got.pixel(x, y)[3], 1.0);
            }
        }
    }
    assert!(worst <= 1.0 / 255.0, "plugin vs CLI max abs {worst}");
}

/// A 4:3 clip on the 2:1 model is letterboxed by default: the output is the generated picture region (bars
/// cropped) back at the clip size, equal to the CLI's frames after the same crop; Stretch gives another result.
#[test]
fn a_4_3_clip_is_letterboxed_then_cropped_back() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // On the 8-bit grid, so the PNG the CLI reads holds exactly what the host hands the plugin.
    let on_8_bits = |img: ImageF32| {
        let data = img
            .data
            .iter()
            .map(|v| svd_inbetween::image::to_u8(*v) as f32 / 255.0)
            .collect();
        ImageF32::from_vec(img.width, img.height, img.channels, data).unwrap()
    };
    let (a, b) = (
        on_8_bits(resize(&keyframe("a.png"), 256, 192)),
        on_8_bits(resize(&keyframe("b.png"), 256, 192)),
    );
    let inst = plugin().instance("OfxImageEffectContextGeneral", 256, 192, 6.0);
    let (ha, hb) = (
        host_image_from_rgba(&a, Depth::Float, 4, false),
        host_image_from_rgba(&b, Depth::Float, 4, false),
    );
    for t in 0..=6 {
        inst.add_frame("Source", t, if t < 6 { ha.clone() } else { hb.clone() });
    }
    for (k, v) in [
        ("mode", 0),
        ("keyframeA", 0),
        ("keyframeB", 6),
        ("steps", 2),
        ("noiseInjectionSteps", 0),
        ("seed", 5),
    ] {
        inst.set_int(k, v);
    }
    inst.set_string("modelsFolder", &models());
    assert_eq!(
        inst.render(3.0, [0, 0, 256, 192]),
        0,
        "{:?}",
        inst.messages()
    );
    let letterboxed = host_image_to_rgba(&inst.output(3).unwrap());

    // the oracle: the CLI on the same keyframes, its raw frames.npy cropped and resized here
    for (img, name) in [(&a, "a.png"), (&b, "b.png")] {
        img.to_channels(3)
            .unwrap()
            .write_png(&dir.path().join(name))
            .unwrap();
    }
    let o = std::process::Command::new(root().join("target/debug/svd-inbetween"))
        .args([
            "generate",
            "--models",
            &models(),
            "--steps",
            "2",
            "--noise-injection-steps",
            "0",
            "--seed",
            "5",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .arg("--from")
        .arg(dir.path().join("a.png"))
        .arg("--to")
        .arg(dir.path().join("b.png"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, frames) =
        svd_inbetween::pipeline::noise::read_npy_f32(&dir.path().join("out/frames.npy")).unwrap();
    let f = &frames[3 * 64 * 128 * 3..4 * 64 * 128 * 3];
    let (x0, w) = (21usize, 85usize); // 256x192 in 128x64
    let mut region = ImageF32::new(w, 64, 3);
    for y in 0..64 {
        for x in 0..w {
            for c in 0..3 {
                region.data[(y * w + x) * 3 + c] = f[(y * 128 + x0 + x) * 3 + c];
            }
        }
    }
    let want = resize(&region, 256, 192);
    let mut worst = 0.0f32;
    for y in 0..192 {
        for x in 0..256 {
            for c in 0..3 {
                worst = worst.max((letterboxed.pixel(x, y)[c] - want.pixel(x, y)[c]).abs());
            }
        }
    }
    assert!(worst <= 1.0 / 255.0, "plugin vs CLI max abs {worst}");

    inst.set_int("aspectFit", 1);
    assert_eq!(
        inst.render(3.0, [0, 0, 256, 192]),
        0,
        "{:?}",
        inst.messages()
    );
    let stretched = host_image_to_rgba(&inst.output(3).unwrap());
    let diff = stretched
        .data
        .iter()
        .zip(&letterboxed.data)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(diff > 0.05, "stretch must differ from letterbox ({diff})");
    assert_eq!(inst.outstanding_images(), 0);
}

#[test]
fn eight_threads_one_generation_with_progress() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let inst = Arc::new(instance(12));
    inst.set_int("seed", 21);
    let before = gens();
    let hs: Vec<_> = (1..=8)
        .map(|t| {
            let inst = Arc::clone(&inst);
            std::thread::spawn(move || inst.render(t as f64, [0, 0, 256, 128]))
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 0);
    }
    assert_eq!(
        gens() - before,
        1,
        "one generation for eight concurrent renders of one interval"
    );
    assert_eq!(inst.outstanding_images(), 0);
    let p = inst.progress();
    assert_eq!(
        (p.starts, p.ends),
        (1, 1),
        "one progress bar for the one generation"
    );
    // 3 steps + 1 re-injection round on the first step = 4 UNet calls, plus encode, decode and done
    assert_eq!(p.updates, 7);
    assert!(
        (p.last - 1.0).abs() < 1e-9,
        "progress ends at 1, got {}",
        p.last
    );
    // frames 9..11 come from the cache: no new generation
    for t in 9..12 {
        assert_eq!(inst.render(t as f64, [0, 0, 256, 128]), 0);
    }
    assert_eq!(gens() - before, 1);
    // any parameter change is a new key
    inst.set_int("motionBucket", 100);
    assert_eq!(inst.render(5.0, [0, 0, 256, 128]), 0);
    assert_eq!(gens() - before, 2);
}

#[test]
fn cancel_from_progress_or_abort_leaves_no_entry() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let inst = instance(12);
    inst.set_int("seed", 31);
    inst.set_int("steps", 8);
    let before = gens();
    inst.obj
        .cancel_after_updates
        .store(2, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        inst.render(3.0, [0, 0, 256, 128]),
        1,
        "cancelled render fails"
    );
    let p = inst.progress();
    assert!(
        p.updates <= 3,
        "stopped within one UNet call of the cancel: {} updates",
        p.updates
    );
    assert_eq!(p.ends, 1, "the progress bar is closed");
    assert!(
        inst.messages().is_empty(),
        "a user cancel is not an error message: {:?}",
        inst.messages()
    );
    inst.obj
        .cancel_after_updates
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    // host abort() flag raised while the generation runs (another thread, as a host's UI would)
    inst.set_int("steps", 60);
    let flag = &inst.obj.abort;
    let updates_before = inst.progress().updates;
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(400));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    });
    let done = inst.progress().updates - updates_before;
    assert!(
        done < 40,
        "aborted well before the 60+ UNet calls finished: {done} progress updates"
    );
    inst.obj
        .abort
        .store(false, std::sync::atomic::Ordering::SeqCst);
    inst.set_int("steps", 8);
    // nothing was cached: the next render generates afresh and succeeds
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 0);
    assert_eq!(gens() - before, 3);
    assert_eq!(inst.outstanding_images(), 0);
}

#[test]
fn bad_inputs_never_crash_and_say_what_to_do() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let inst = instance(12);
    // keyframes equal or reversed: nothing to generate, the source passes through
    for (a, b) in [(5, 5), (9, 3)] {
        inst.set_int("keyframeA", a);
        inst.set_int("keyframeB", b);
        assert_eq!(
            inst.is_identity(4.0).1,
            Some(("Source".into(), 4.0)),
            "A={a} B={b}"
        );
    }
    // keyframe outside the clip
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", 40);
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert_eq!(
        inst.messages().last().unwrap().1,
        "the host returned no image for clip 'Source' at frame 40. Check that the keyframes lie inside the clip."
    );
    inst.set_int("keyframeB", 12);
    // missing models folder
    let missing = dir.path().join("no-models");
    inst.set_string("modelsFolder", missing.to_str().unwrap());
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert_eq!(
        inst.messages().last().unwrap().1,
        format!(
            "cannot load the models: model folder {}: does not exist (set the Models folder, or export one with `python -m tools.export`)",
            missing.display()
        )
    );
    // corrupt package
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for e in std::fs::read_dir(models()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), bad.join(e.file_name())).unwrap();
        }
    }
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bad.join("manifest.json")).unwrap()).unwrap();
    m["height"] = serde_json::Value::from(100);
    std::fs::write(bad.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    inst.set_string("modelsFolder", bad.to_str().unwrap());
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert_eq!(
        inst.messages().last().unwrap().1,
        format!(
            "cannot load the models: model folder {}: model size 128x100 is not a multiple of 64",
            bad.display()
        )
    );
    std::fs::write(bad.join("manifest.json"), b"{ not json").unwrap();
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert!(
        inst.messages()
            .last()
            .unwrap()
            .1
            .contains("manifest.json is not a valid model manifest")
    );
    // low memory asked of a package whose UNet only takes batch 4
    inst.set_string("modelsFolder", &models());
    inst.set_int("unetMemory", 1);
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert_eq!(
        inst.messages().last().unwrap().1,
        format!(
            "cannot load the models: model folder {}: low memory needs a UNet exported with --unet-batch 2 or dynamic; this one takes batch 4",
            models()
        )
    );
    inst.set_int("unetMemory", 0);
    // CUDA demanded on a machine without it
    inst.set_int("device", 1);
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert!(
        inst.messages()
            .last()
            .unwrap()
            .1
            .starts_with("cannot load the models: CUDA was requested but is not usable:"),
        "{:?}",
        inst.messages().last()
    );
    assert_eq!(inst.outstanding_images(), 0);
}
