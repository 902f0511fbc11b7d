//! Whole clips (issue 11): many keyframes in one effect. A 49-frame test clip (frames 0..=48, each a different
//! cross-fade of the two demo keyframes, so every interval has its own cache key) rendered through the real
//! `.ofx` with keyframes every N frames or from a list: which frames each time needs, identities, one generation
//! per interval from any number of threads or farm processes, moving a keyframe, the preview mode, the messages
//! for bad settings, and `svd-inbetween sequence` writing the plugin's frames.
//! In-process tests share the plugin's process-wide cache, so they run one at a time (GEN_LOCK) and measure
//! generation counts as differences.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use ofx_test_host::*;
use svd_inbetween::image::ImageF32;

static GEN_LOCK: Mutex<()> = Mutex::new(());
const LAST: usize = 48;
const W: i32 = 256;
const H: i32 = 128;

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

fn clip_frames() -> Vec<ImageF32> {
    let k = |n: &str| {
        ImageF32::read_png(&root().join("assets/keyframes").join(n))
            .unwrap()
            .to_channels(4)
            .unwrap()
    };
    cross_fade_clip(&k("a.png"), &k("b.png"), LAST)
}

/// The 49-frame clip on an instance in the General context, tiny models, 3 steps + 1 re-injection round.
fn clip_instance() -> (Instance, Vec<ImageF32>) {
    let frames = clip_frames();
    let inst = plugin().instance("OfxImageEffectContextGeneral", W, H, LAST as f64);
    for (t, f) in frames.iter().enumerate() {
        inst.add_frame(
            "Source",
            t as i64,
            host_image_from_rgba(f, Depth::Float, 4, false),
        );
    }
    inst.set_string("modelsFolder", &models());
    inst.set_int("steps", 3);
    inst.set_int("noiseInjectionSteps", 1);
    (inst, frames)
}

/// The clip as PNG files `dir/0000.png`…`dir/0048.png`.
fn write_clip(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (t, f) in clip_frames().iter().enumerate() {
        f.to_channels(3)
            .unwrap()
            .write_png(&dir.join(format!("{t:04}.png")))
            .unwrap();
    }
}

fn gens() -> u64 {
    generation_count(plugin())
}

fn needed(inst: &Instance, t: f64) -> Vec<f64> {
    let (st, m) = inst.frames_needed(t);
    assert_eq!(st, 0, "{:?}", inst.messages());
    m["OfxImageClipPropFrameRange_Source"].clone()
}

fn render(inst: &Instance, t: i64) -> ImageF32 {
    assert_eq!(
        inst.render(t as f64, [0, 0, W, H]),
        0,
        "frame {t}: {:?}",
        inst.messages()
    );
    host_image_to_rgba(&inst.output(t).unwrap())
}

#[test]
fn keyframe_params_keep_their_labels_and_defaults() {
    let inst = plugin().instance("OfxImageEffectContextGeneral", W, H, LAST as f64);
    let desc = |name: &str| {
        // SAFETY: the descriptor's params live as long as the instance.
        unsafe { &*inst.desc.param(name).unwrap_or_else(|| panic!("no {name}")) }
    };
    let src = desc("keyframeSource");
    assert_eq!(src.kind, "OfxParamTypeChoice");
    assert_eq!(
        src.props.get_strs("OfxParamPropChoiceOption"),
        ["Keyframe A and B", "Every N frames", "List"]
    );
    assert_eq!(src.props.get_int("OfxParamPropDefault", 0), Some(0));
    assert_eq!(src.props.get_str("OfxPropLabel", 0).unwrap(), "Keyframes");
    assert_eq!(
        src.props.get_str("OfxParamPropParent", 0).unwrap(),
        "keyframesGroup"
    );
    let every = desc("keyframeEvery");
    assert_eq!(every.kind, "OfxParamTypeInteger");
    assert_eq!(every.props.get_int("OfxParamPropDefault", 0), Some(24));
    assert_eq!(every.props.get_int("OfxParamPropMin", 0), Some(2));
    assert_eq!(
        desc("keyframeOffset")
            .props
            .get_int("OfxParamPropDefault", 0),
        Some(0)
    );
    assert_eq!(desc("keyframeList").kind, "OfxParamTypeString");
    // the Transition context's keyframes are its two clips
    let (d, _, _) = plugin().describe("OfxImageEffectContextTransition");
    for name in [
        "keyframeSource",
        "keyframeEvery",
        "keyframeOffset",
        "keyframeList",
    ] {
        assert!(d.param(name).is_none(), "{name} in the Transition context");
    }
}

#[test]
fn frames_needed_and_identity_follow_the_keyframe_set() {
    let (inst, _) = clip_instance();
    // today's default: Keyframe A and B
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", 24);
    assert_eq!(needed(&inst, 30.0), [30.0, 30.0]);
    assert_eq!(needed(&inst, 5.0), [0.0, 0.0, 24.0, 24.0]);

    inst.set_int("keyframeSource", 1);
    inst.set_int("keyframeEvery", 12);
    assert_eq!(needed(&inst, 5.0), [0.0, 0.0, 12.0, 12.0]);
    assert_eq!(needed(&inst, 12.0), [12.0, 12.0]);
    assert_eq!(needed(&inst, 12.5), [12.0, 12.0, 24.0, 24.0]);
    assert_eq!(needed(&inst, 47.0), [36.0, 36.0, 48.0, 48.0]);
    for t in [0.0, 12.0, 24.0, 48.0] {
        assert_eq!(inst.is_identity(t).1, Some(("Source".into(), t)), "t={t}");
    }
    assert_eq!(inst.is_identity(5.0).1, None, "between keyframes: rendered");
    // offset: keyframes 5, 17, 29, 41; before the first and after the last is the source
    inst.set_int("keyframeOffset", 5);
    assert_eq!(needed(&inst, 20.0), [17.0, 17.0, 29.0, 29.0]);
    assert_eq!(inst.is_identity(3.0).1, Some(("Source".into(), 3.0)));
    assert_eq!(inst.is_identity(45.0).1, Some(("Source".into(), 45.0)));
    // the clip's frame range bounds the keyframes: 0..40 has 5, 17, 29 only
    inst.set_frame_range("Source", 0.0, 40.0);
    assert_eq!(inst.is_identity(35.0).1, Some(("Source".into(), 35.0)));
    inst.set_frame_range("Source", 0.0, LAST as f64);
    // a list, unsorted with a duplicate
    inst.set_int("keyframeSource", 2);
    inst.set_string("keyframeList", "30 0, 12,,48, 12");
    assert_eq!(needed(&inst, 20.0), [12.0, 12.0, 30.0, 30.0]);
    assert_eq!(needed(&inst, 31.0), [30.0, 30.0, 48.0, 48.0]);
    assert_eq!(inst.is_identity(30.0).1, Some(("Source".into(), 30.0)));
    assert!(inst.messages().is_empty(), "{:?}", inst.messages());
}

#[test]
fn bad_keyframe_settings_are_messages_never_crashes() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (inst, _) = clip_instance();
    let before = gens();
    let cases: [(i32, &str, i32, &str); 5] = [
        (
            2,
            "0, 12, x3, 48",
            24,
            "Keyframes: keyframe list: 'x3' is not a frame number (write whole frame numbers separated by commas or spaces, e.g. 0, 12, 30, 48)",
        ),
        (
            2,
            "7",
            24,
            "Keyframes: fewer than two keyframes in the clip's frames 0–48 (only 7): give at least two keyframes inside it",
        ),
        (
            2,
            "",
            24,
            "Keyframes: fewer than two keyframes in the clip's frames 0–48 (none): give at least two keyframes inside it",
        ),
        (
            2,
            "0, 12, 60",
            24,
            "Keyframes: keyframe 60 is outside the clip's frames 0–48: keep the keyframes inside the clip",
        ),
        (
            1,
            "",
            1,
            "Keyframes: keyframes every 1 frames: N must be at least 2",
        ),
    ];
    for (source, list, n, want) in cases {
        inst.set_int("keyframeSource", source);
        inst.set_string("keyframeList", list);
        inst.set_int("keyframeEvery", n);
        assert_eq!(inst.render(5.0, [0, 0, W, H]), 1, "{want}");
        let (kind, text) = inst.messages().last().unwrap().clone();
        assert_eq!((kind.as_str(), text.as_str()), ("OfxMessageError", want));
        assert_eq!(inst.frames_needed(5.0).0, 1, "{want}");
        assert_eq!(inst.is_identity(5.0).0, 1, "{want}");
        assert_eq!(inst.messages().last().unwrap().1, want);
    }
    // every 100 frames on a 49-frame clip leaves one keyframe
    inst.set_int("keyframeSource", 1);
    inst.set_int("keyframeEvery", 100);
    assert_eq!(inst.render(5.0, [0, 0, W, H]), 1);
    assert_eq!(
        inst.messages().last().unwrap().1,
        "Keyframes: fewer than two keyframes in the clip's frames 0–48 (only 0): give at least two keyframes inside it"
    );
    assert_eq!(gens(), before, "nothing was generated");
    assert_eq!(inst.outstanding_images(), 0);
}

/// The acceptance check: 49 frames, keyframes every 12, four render threads → exactly 4 generations,
/// one labelled progress bar each; an interval's frames are the generation of that pair with the same seed.
#[test]
fn four_threads_every_12_frames_make_exactly_four_generations() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (inst, frames) = clip_instance();
    let inst = Arc::new(inst);
    inst.set_int("seed", 61);
    inst.set_int("keyframeSource", 1);
    inst.set_int("keyframeEvery", 12);
    let before = gens();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let inst = Arc::clone(&inst);
            std::thread::spawn(move || {
                // interleaved frames, so all four threads meet in every interval
                (0..=LAST as i64)
                    .filter(|t| t % 4 == i)
                    .map(|t| (t, inst.render(t as f64, [0, 0, W, H])))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for th in threads {
        for (t, st) in th.join().unwrap() {
            assert_eq!(st, 0, "frame {t}: {:?}", inst.messages());
        }
    }
    assert_eq!(gens() - before, 4, "one generation per interval");
    let p = inst.progress();
    assert_eq!((p.starts, p.ends), (4, 4));
    let mut labels = p.labels.clone();
    labels.sort();
    assert_eq!(
        labels,
        [
            "SVD Inbetween: frames 0–12",
            "SVD Inbetween: frames 12–24",
            "SVD Inbetween: frames 24–36",
            "SVD Inbetween: frames 36–48",
        ]
    );
    // keyframes pass through, exactly
    for t in [0, 12, 24, 36, 48] {
        assert_eq!(
            host_image_to_rgba(&inst.output(t).unwrap()),
            frames[t as usize]
        );
    }
    // the interval 24–36 as a plain A/B effect: the same key (keyframe pixels + params, seed unchanged), so the
    // same frames and no new generation
    let every = render(&inst, 30);
    inst.set_int("keyframeSource", 0);
    inst.set_int("keyframeA", 24);
    inst.set_int("keyframeB", 36);
    assert_eq!(render(&inst, 30), every);
    assert_eq!(gens() - before, 4);
    assert_eq!(inst.outstanding_images(), 0);
}

#[test]
fn moving_one_keyframe_regenerates_only_the_two_intervals_that_touch_it() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (inst, _) = clip_instance();
    inst.set_int("seed", 62);
    inst.set_int("keyframeSource", 2);
    inst.set_string("keyframeList", "0, 12, 24, 36, 48");
    let before = gens();
    let first: HashMap<i64, ImageF32> = [6, 18, 30, 42].map(|t| (t, render(&inst, t))).into();
    assert_eq!(gens() - before, 4);
    inst.set_string("keyframeList", "0, 12, 20, 36, 48");
    for t in [6, 16, 28, 42] {
        let img = render(&inst, t);
        if let Some(old) = first.get(&t) {
            assert_eq!(&img, old, "frame {t}: its interval did not change");
        }
    }
    assert_eq!(
        gens() - before,
        6,
        "12–20 and 20–36 are new, 0–12 and 36–48 reused"
    );
}

#[test]
fn frame_blend_preview_follows_the_same_keyframes() {
    let _g = GEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (inst, frames) = clip_instance();
    inst.set_int("mode", 1);
    inst.set_int("keyframeSource", 2);
    inst.set_string("keyframeList", "0, 12, 30, 48");
    let before = gens();
    // t = 21 is halfway through 12–30 (a longer interval than its neighbours)
    for (t, a, b) in [(21i64, 12usize, 30usize), (3, 0, 12), (39, 30, 48)] {
        let got = render(&inst, t);
        let u = (t as f32 - a as f32) / (b - a) as f32;
        let mut want = frames[a].clone();
        for (v, (pa, pb)) in want
            .data
            .iter_mut()
            .zip(frames[a].data.iter().zip(&frames[b].data))
        {
            *v = (1.0 - u) * pa + u * pb;
        }
        assert_eq!(got, want, "frame {t}");
    }
    assert_eq!(gens(), before);
}

fn ofx_demo(clip: &Path, out: &Path, params: &[&str], extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ofx-demo"));
    c.current_dir(root())
        .arg("--clip")
        .arg(clip)
        .args(["--models", &models(), "--out"])
        .arg(out)
        .args(extra)
        .stderr(std::process::Stdio::null());
    for p in params {
        c.args(["--param", p]);
    }
    c
}

/// Render-farm chunks of 10 frames (0–9, 10–19, …, 40–48) on four processes sharing a cache folder cut through
/// the intervals 0–12, 12–24, 24–36, 36–48: each interval is still generated exactly once overall, and every
/// frame is byte-identical to one process rendering the whole clip without a cache.
#[test]
fn a_farm_of_four_processes_generates_every_interval_once() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    write_clip(&clip);
    let cache = dir.path().join("cache");
    let params = [
        "keyframeSource=1",
        "keyframeEvery=12",
        "steps=3",
        "noiseInjectionSteps=1",
        "seed=77",
    ];
    // five chunks on four nodes: node 0 takes the first and the last
    let nodes = ["0..9,40..48", "10..19", "20..29", "30..39"];
    let children: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, frames)| {
            ofx_demo(
                &clip,
                &dir.path().join(format!("node{i}")),
                &params,
                &["--frames", frames, "--cache", cache.to_str().unwrap()],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let generations: u64 = (0..4)
        .map(|i| {
            std::fs::read_to_string(dir.path().join(format!("node{i}/generations.txt")))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(generations, 4, "one generation per interval over the farm");
    let entries = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock") && !n.starts_with('.'))
        .count();
    assert_eq!(entries, 4);

    let single = dir.path().join("single");
    assert!(
        ofx_demo(&clip, &single, &params, &[])
            .status()
            .unwrap()
            .success()
    );
    for (i, node) in nodes.iter().enumerate() {
        for range in node.split(',') {
            let (a, b) = range.split_once("..").unwrap();
            for t in a.parse::<i64>().unwrap()..=b.parse::<i64>().unwrap() {
                let name = format!("frame_{t:04}.png");
                let farm = std::fs::read(dir.path().join(format!("node{i}")).join(&name)).unwrap();
                let one = std::fs::read(single.join(&name)).unwrap();
                assert!(
                    farm == one,
                    "frame {t} differs between the farm and one process"
                );
            }
        }
    }
}

fn rgb8(path: &Path) -> Vec<u8> {
    let img = ImageF32::read_png(path).unwrap().to_channels(3).unwrap();
    img.data
        .iter()
        .map(|v| svd_inbetween::image::to_u8(*v))
        .collect()
}

/// `svd-inbetween sequence` on the clip's PNGs writes the frames the plugin renders for the same keyframes
/// (intervals of 12 and 18 frames) and parameters, all 49 of them.
#[test]
fn the_sequence_command_writes_the_plugins_frames() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    write_clip(&clip);
    let plugin_out = dir.path().join("plugin");
    let st = ofx_demo(
        &clip,
        &plugin_out,
        &[
            "keyframeSource=2",
            "keyframeList=0, 12, 30, 48",
            "steps=2",
            "noiseInjectionSteps=1",
            "seed=5",
        ],
        &[],
    )
    .status()
    .unwrap();
    assert!(st.success());
    let cli_out = dir.path().join("cli");
    let o = Command::new(root().join("target/debug/svd-inbetween"))
        .args(["sequence", "--models", &models(), "--input"])
        .arg(clip.join("%04d.png"))
        .args([
            "--keyframes",
            "0,12,30,48",
            "--steps",
            "2",
            "--noise-injection-steps",
            "1",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&cli_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for t in 0..=LAST {
        let p = rgb8(&plugin_out.join(format!("frame_{t:04}.png")));
        let c = rgb8(&cli_out.join(format!("{t:04}.png")));
        assert!(p == c, "frame {t}: sequence differs from the plugin");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cli_out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["generated"], 3);
    assert_eq!(summary["frames_written"], 49);
}
