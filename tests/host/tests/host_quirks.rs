//! Hosts that cannot serve the effect, and host lifecycles unlike ours (research/ofx.md; MLT, the engine of
//! Kdenlive and Shotcut): no temporal clip access declared, image fetches that ignore the requested time, a fresh
//! instance (Load, Describe, CreateInstance, never Unload) for every frame. Also pins the choice labels, which
//! such hosts store in saved projects.
//! The quirks are process-wide switches of the test host, so the tests here run one at a time (LOCK).

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ofx_test_host::quirks::{FetchQuirk, set_fetch_quirk};
use ofx_test_host::*;
use svd_inbetween::image::ImageF32;

static LOCK: Mutex<()> = Mutex::new(());

const MISSING_HOST_FEATURE: i32 = kOfxStatErrMissingHostFeature as i32;

/// Restores a correct host when a test ends, even when it fails.
struct Quirks;
impl Drop for Quirks {
    fn drop(&mut self) {
        set_fetch_quirk(FetchQuirk::HonourTime);
        plugin().set_temporal_clip_access(true);
        plugin().set_host_name("org.svdinbetween.testhost", "svd-inbetween test host");
    }
}

fn lock() -> (std::sync::MutexGuard<'static, ()>, Quirks) {
    (LOCK.lock().unwrap_or_else(|p| p.into_inner()), Quirks)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn keyframe(name: &str) -> ImageF32 {
    ImageF32::read_png(&root().join("assets/keyframes").join(name))
        .unwrap()
        .to_channels(4)
        .unwrap()
}

/// A Filter instance (the only context MLT serves) over a clip of frames 0..=len: frame 0 = a.png, frame len =
/// b.png, the frames between a 50/50 mix (so the frame at t differs from both keyframes).
fn filter_instance(len: i64, mode: i32) -> Instance {
    let (a, b) = (keyframe("a.png"), keyframe("b.png"));
    let inst = plugin().instance(
        "OfxImageEffectContextFilter",
        a.width as i32,
        a.height as i32,
        len as f64,
    );
    add_frames(&inst, &a, &b, len);
    inst.set_int("mode", mode);
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", len as i32);
    inst.set_string(
        "modelsFolder",
        &root()
            .join("models/tiny")
            .canonicalize()
            .unwrap()
            .display()
            .to_string(),
    );
    inst.set_int("steps", 2);
    inst.set_int("noiseInjectionSteps", 0);
    inst
}

fn add_frames(inst: &Instance, a: &ImageF32, b: &ImageF32, len: i64) {
    let mut mid = a.clone();
    for (m, v) in mid.data.iter_mut().zip(&b.data) {
        *m = 0.5 * (*m + v);
    }
    for t in 0..=len {
        let img = if t == 0 {
            a
        } else if t == len {
            b
        } else {
            &mid
        };
        inst.add_frame(
            "Source",
            t,
            host_image_from_rgba(img, Depth::Float, 4, false),
        );
    }
}

fn window(inst: &Instance) -> [i32; 4] {
    *inst.clip("Output").rod.lock().unwrap()
}

#[test]
fn a_host_without_temporal_clip_access_is_refused_at_describe() {
    let _g = lock();
    let p = plugin();
    p.set_host_name("org.mltframework.openfx", "MLT (test)");
    p.set_temporal_clip_access(false);
    let (_d, s1, s2) = p.describe("OfxImageEffectContextFilter");
    assert_eq!(
        (s1, s2),
        (MISSING_HOST_FEATURE, MISSING_HOST_FEATURE),
        "Describe and DescribeInContext answer kOfxStatErrMissingHostFeature"
    );
    // The same plugin describes normally once the host offers temporal access.
    p.set_temporal_clip_access(true);
    let (_d, s1, s2) = p.describe("OfxImageEffectContextFilter");
    assert_eq!((s1, s2), (0, 0));
}

/// Renders t in (A, B) with `quirk` and checks: failed, nothing generated, one persistent error naming the
/// host, saying why and what to do.
fn guard_fires(quirk: FetchQuirk, mode: i32, why: &str) {
    let inst = filter_instance(6, mode);
    plugin().set_host_name("org.example.brokenhost", "Broken Host");
    set_fetch_quirk(quirk);
    let before = generation_count(plugin());
    let st = inst.render(3.0, window(&inst));
    assert_eq!(st, kOfxStatFailed as i32, "render fails");
    assert_eq!(generation_count(plugin()), before, "no generation ran");
    assert_eq!(inst.outstanding_images(), 0, "every fetched image released");
    let msgs = inst.persistent_messages();
    assert_eq!(msgs.len(), 1, "one persistent message: {msgs:?}");
    let (ty, text) = &msgs[0];
    assert_eq!(ty, "OfxMessageError");
    for needle in [
        "Nothing was generated for frame 3",
        "the host 'Broken Host' (org.example.brokenhost)",
        why,
        "temporal clip access",
        "DaVinci Resolve, Natron",
        "svd-inbetween generate",
    ] {
        assert!(text.contains(needle), "message lacks '{needle}': {text}");
    }
    // A correct host renders the same frame.
    set_fetch_quirk(FetchQuirk::HonourTime);
    assert_eq!(inst.render(3.0, window(&inst)), 0);
}

#[test]
fn fetches_that_ignore_the_time_are_caught_before_generating() {
    let _g = lock();
    // MLT: the frame being rendered, its own buffer, for every time asked.
    guard_fires(
        FetchQuirk::CurrentFrameSharedBuffer,
        0,
        "one and the same image buffer for both",
    );
    guard_fires(
        FetchQuirk::CurrentFrameSharedBuffer,
        1,
        "one and the same image buffer for both",
    );
    // The frame being rendered is right, any other time is a copy of one fixed frame: same pixels at A and B,
    // other pixels at t.
    guard_fires(
        FetchQuirk::OtherTimesFirstFrameCopy,
        0,
        "identical pictures for both",
    );
    guard_fires(
        FetchQuirk::OtherTimesFirstFrameCopy,
        1,
        "identical pictures for both",
    );
}

#[test]
fn a_static_shot_is_not_mistaken_for_a_broken_host() {
    let _g = lock();
    // Every frame identical (separate buffers): A == B in content and so is t, a legitimate clip.
    let a = keyframe("a.png");
    let inst = plugin().instance(
        "OfxImageEffectContextFilter",
        a.width as i32,
        a.height as i32,
        6.0,
    );
    for t in 0..=6 {
        inst.add_frame(
            "Source",
            t,
            host_image_from_rgba(&a, Depth::Float, 4, false),
        );
    }
    inst.set_int("mode", 1);
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", 6);
    assert_eq!(inst.render(3.0, window(&inst)), 0);
    assert!(inst.persistent_messages().is_empty());
    let out = inst.output(3).unwrap();
    assert_eq!(
        out.data,
        host_image_from_rgba(&a, Depth::Float, 4, false).data
    );
}

#[test]
fn a_fresh_instance_per_frame_generates_once() {
    let _g = lock();
    let p = plugin();
    let len = 6i64;
    let seed = 977; // a key no other test in this binary uses
    let before = generation_count(p);
    // MLT's lifecycle for a frame-threaded effect: Load, Describe, CreateInstance for every frame, no Unload,
    // no GetFramesNeeded, no IsIdentity. The instances stay alive until the end (worst case for memory).
    let mut per_frame = Vec::new();
    for t in 1..len {
        assert_eq!(
            p.action("OfxActionLoad", std::ptr::null::<c_void>(), None, None),
            0
        );
        let inst = filter_instance(len, 0);
        inst.set_int("seed", seed);
        assert_eq!(inst.render(t as f64, window(&inst)), 0, "frame {t}");
        assert_eq!(inst.outstanding_images(), 0);
        per_frame.push((t, inst));
    }
    assert_eq!(
        generation_count(p) - before,
        1,
        "one generation for the interval, whatever the number of instances"
    );
    // One long-lived instance renders the same frames from the same generation.
    let one = filter_instance(len, 0);
    one.set_int("seed", seed);
    for (t, inst) in &per_frame {
        assert_eq!(one.render(*t as f64, window(&one)), 0);
        let (x, y) = (inst.output(*t).unwrap(), one.output(*t).unwrap());
        assert_eq!(
            x.data, y.data,
            "frame {t} equal from a fresh instance and from one instance"
        );
    }
    assert_eq!(generation_count(p) - before, 1);
}

/// Hosts that store choices by label (research/ofx.md) lose a saved project's setting when an option is
/// renamed: these labels are part of the interface (docs/INTERFACES.md) and must not change.
#[test]
fn choice_labels_are_stable() {
    let _g = lock();
    let (d, s1, s2) = plugin().describe("OfxImageEffectContextGeneral");
    assert_eq!((s1, s2), (0, 0));
    let options = |name: &str| {
        let p = d.param(name).unwrap_or_else(|| panic!("no param {name}"));
        // SAFETY: the descriptor owns its params.
        unsafe { &*p }.props.get_strs("OfxParamPropChoiceOption")
    };
    let want: [(&str, &[&str]); 8] = [
        (
            "mode",
            &[
                "Generative (Stable Video Diffusion)",
                "Frame blend (preview baseline)",
            ],
        ),
        (
            "fusion",
            &["Average (paper)", "Linear (forward near A, reverse near B)"],
        ),
        (
            "frameSampling",
            &["Blend nearest generated frames", "Nearest generated frame"],
        ),
        ("inputTransfer", &["sRGB / display-referred", "Linear"]),
        ("aspectFit", &["Letterbox (keep proportions)", "Stretch"]),
        ("device", &["Auto (CUDA if available)", "CUDA", "CPU"]),
        (
            "unetMemory",
            &[
                "Normal (one UNet run per step)",
                "Low (two half-batch runs per step)",
            ],
        ),
        (
            "keyframeSource",
            &["Keyframe A and B", "Every N frames", "List"],
        ),
    ];
    for (name, labels) in want {
        let got = options(name);
        assert!(
            got.len() >= labels.len() && got[..labels.len()] == *labels,
            "choice '{name}': options {got:?} must start with {labels:?} (add new options at the end, never rename)"
        );
    }
}
