//! `svd-inbetween sequence` end to end on the embedded tiny models: a sparse clip filled in, resuming after
//! being killed mid-way (only the missing intervals are generated, the frames equal an uninterrupted run), and
//! a one-line error for each kind of bad input. (Its frames equal the plugin's: tests/host/tests/whole_clip.rs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use svd_inbetween::image::{ImageF32, to_u8};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_svd-inbetween"));
    c.current_dir(root());
    c
}

fn keyframe(name: &str) -> ImageF32 {
    ImageF32::read_png(&root().join("assets/keyframes").join(name)).unwrap()
}

/// Frames `numbers` of a cross-fade from a.png (frame 0) to b.png (frame `last`) as `dir/NNNN.png`.
fn write_clip(dir: &Path, last: usize, numbers: impl IntoIterator<Item = usize>) {
    std::fs::create_dir_all(dir).unwrap();
    let (a, b) = (keyframe("a.png"), keyframe("b.png"));
    for t in numbers {
        let w = t as f32 / last as f32;
        let mut f = a.clone();
        for (v, (pa, pb)) in f.data.iter_mut().zip(a.data.iter().zip(&b.data)) {
            *v = to_u8((1.0 - w) * pa + w * pb) as f32 / 255.0;
        }
        f.write_png(&dir.join(format!("{t:04}.png"))).unwrap();
    }
}

fn sequence(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = exe();
    c.args(["sequence", "--models", "models/tiny", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

fn cache_entries(cache: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(cache) else {
        return vec![];
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock") && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// The README's worked example in miniature: a 2 fps clip placed every 12 frames of a 24 fps timeline (files
/// 0000, 0012, 0024 only) becomes 25 frames; the keyframes are copied byte for byte.
#[test]
fn a_sparse_clip_is_filled_and_its_keyframes_copied() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    write_clip(&clip, 24, [0, 12, 24]);
    let out = dir.path().join("out");
    let o = sequence(
        &clip,
        &out,
        &[
            "--every",
            "12",
            "--steps",
            "2",
            "--noise-injection-steps",
            "0",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for t in 0..=24 {
        assert!(out.join(format!("{t:04}.png")).is_file(), "frame {t}");
    }
    for t in [0, 12, 24] {
        assert_eq!(
            std::fs::read(out.join(format!("{t:04}.png"))).unwrap(),
            std::fs::read(clip.join(format!("{t:04}.png"))).unwrap()
        );
    }
    let s = summary(&out);
    assert_eq!(s["keyframes"], serde_json::json!([0, 12, 24]));
    assert_eq!(s["generated"], 2);
    assert_eq!(s["reused"], 0);
    assert_eq!(s["frames_written"], 25);
    assert_eq!(s["intervals"][1]["label"], "frames 12–24");
    assert_eq!(s["intervals"][1]["frames_written"], 11);
    assert_eq!(s["cache"], out.join("cache").to_str().unwrap());
    // EXR out of a PNG sequence: scene-linear floats of the same frames
    let exr = dir.path().join("exr");
    let o = sequence(
        &clip,
        &exr,
        &[
            "--every",
            "12",
            "--steps",
            "2",
            "--noise-injection-steps",
            "0",
            "--format",
            "exr",
            "--cache",
        ],
    )
    .arg(out.join("cache"))
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        summary(&exr)["reused"],
        2,
        "the cache of the PNG run serves it"
    );
    let png = ImageF32::read_png(&out.join("0005.png")).unwrap();
    let lin = ImageF32::read_png(&exr.join("0005.exr")).unwrap();
    let worst = png
        .data
        .iter()
        .zip(&lin.data)
        .map(|(p, l)| (svd_inbetween::image::srgb_encode(*l) - p).abs())
        .fold(0.0, f32::max);
    assert!(worst <= 0.5 / 255.0 + 1e-5, "EXR vs PNG {worst}");
}

/// Killed after its first interval reached the cache, a re-run generates only the missing intervals (as
/// summary.json says) and writes the same frames as a run that was never interrupted.
#[test]
fn a_killed_run_resumes_with_only_the_missing_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    write_clip(&clip, 24, 0..=24);
    // 4 intervals of ~10 UNet calls each: slow enough to stop after the first
    let flags = [
        "--every",
        "6",
        "--steps",
        "10",
        "--noise-injection-steps",
        "0",
        "--seed",
        "9",
    ];
    let out = dir.path().join("out");
    let cache = out.join("cache");
    let mut child = sequence(&clip, &out, &flags)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while cache_entries(&cache).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no interval finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = cache_entries(&cache);
    assert!(
        !done.is_empty() && done.len() < 4,
        "killed mid-way: {done:?}"
    );
    assert!(!out.join("summary.json").exists());

    let o = sequence(&clip, &out, &flags).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    assert_eq!(s["generated"], 4 - done.len());
    assert_eq!(s["reused"], done.len());
    for iv in s["intervals"].as_array().unwrap() {
        let key = iv["cache_key"].as_str().unwrap().to_string();
        assert_eq!(
            iv["generated"].as_bool().unwrap(),
            !done.contains(&key),
            "{iv}"
        );
    }
    assert_eq!(cache_entries(&cache).len(), 4);

    let whole = dir.path().join("whole");
    let o = sequence(&clip, &whole, &flags).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&whole)["generated"], 4);
    for t in 0..=24 {
        let name = format!("{t:04}.png");
        assert!(
            std::fs::read(out.join(&name)).unwrap() == std::fs::read(whole.join(&name)).unwrap(),
            "frame {t} differs after resuming"
        );
    }
}

/// Two farm processes, chunks 0–9 and 10–24 of a sequence with keyframes 0, 12, 24 and one shared cache folder:
/// interval 0–12 is needed by both chunks and generated once; together they write a whole run's frames.
#[test]
fn farm_chunks_share_the_cache_and_generate_each_interval_once() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    write_clip(&clip, 24, 0..=24);
    let cache = dir.path().join("cache");
    let flags = |chunk: &'static str| {
        [
            "--every",
            "12",
            "--steps",
            "3",
            "--noise-injection-steps",
            "0",
            "--frames",
            chunk,
            "--cache",
            cache.to_str().unwrap(),
        ]
        .map(String::from)
    };
    let chunks = ["0..9", "10..24"];
    let children: Vec<_> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            sequence(&clip, &dir.path().join(format!("node{i}")), &[])
                .args(flags(c))
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let (s0, s1) = (
        summary(&dir.path().join("node0")),
        summary(&dir.path().join("node1")),
    );
    assert_eq!(
        s0["intervals"].as_array().unwrap().len(),
        1,
        "0–9 needs 0–12 only"
    );
    assert_eq!(s1["intervals"].as_array().unwrap().len(), 2);
    assert_eq!(
        s0["generated"].as_u64().unwrap() + s1["generated"].as_u64().unwrap(),
        2,
        "each interval generated once over the farm"
    );
    assert_eq!(s0["frames_written"], 10);
    assert_eq!(s1["frames_written"], 15);
    let whole = dir.path().join("whole");
    let o = sequence(
        &clip,
        &whole,
        &[
            "--every",
            "12",
            "--steps",
            "3",
            "--noise-injection-steps",
            "0",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for t in 0..=24 {
        let name = format!("{t:04}.png");
        let node = dir.path().join(if t <= 9 { "node0" } else { "node1" });
        assert!(
            !dir.path()
                .join(if t <= 9 { "node1" } else { "node0" })
                .join(&name)
                .exists()
        );
        assert!(
            std::fs::read(node.join(&name)).unwrap() == std::fs::read(whole.join(&name)).unwrap(),
            "frame {t}"
        );
    }
}

fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success());
    assert_ne!(o.status.code(), Some(0));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(!e.contains("panicked"), "{e}");
    e.trim_end()
        .strip_prefix("svd-inbetween: error: ")
        .unwrap_or_else(|| panic!("{e}"))
        .to_string()
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    write_clip(&clip, 24, 0..=24);
    let out = dir.path().join("out");
    let err = |input: &Path, extra: &[&str]| {
        one_line_error(&sequence(input, &out, extra).output().unwrap())
    };

    assert_eq!(
        err(&clip, &["--keyframes", "5"]),
        "fewer than two keyframes in the input sequence's frames 0–24 (only 5): give at least two keyframes inside it"
    );
    assert_eq!(
        err(&clip, &["--keyframes", "0, 12, 30"]),
        "keyframe 30 is outside the input sequence's frames 0–24: keep the keyframes inside the input sequence"
    );
    assert_eq!(
        err(&clip, &["--keyframes", "0,1 2,a4"]),
        "keyframe list: 'a4' is not a frame number (write whole frame numbers separated by commas or spaces, e.g. 0, 12, 30, 48)"
    );
    assert_eq!(
        err(&clip, &["--every", "1"]),
        "keyframes every 1 frames: N must be at least 2"
    );
    assert_eq!(
        err(&clip, &["--every", "100"]),
        "fewer than two keyframes in the input sequence's frames 0–24 (only 0): give at least two keyframes inside it"
    );
    assert_eq!(
        err(&clip, &[]),
        "no keyframes: give --keyframes \"0,12,30\" or --every N [--offset K]"
    );
    assert_eq!(
        err(&clip, &["--every", "12", "--keyframes", "0,12"]),
        "give either --keyframes or --every, not both"
    );
    assert_eq!(
        err(&dir.path().join("clip/%04d.jpg"), &["--every", "12"]),
        format!(
            "--input {}: frames must be .png or .exr files",
            dir.path().join("clip/%04d.jpg").display()
        )
    );
    // a frame that is copied (here a keyframe) is missing; frames between keyframes may be absent
    std::fs::remove_file(clip.join("0005.png")).unwrap();
    std::fs::remove_file(clip.join("0012.png")).unwrap();
    assert_eq!(
        err(&clip, &["--every", "12"]),
        format!(
            "frame 12 is missing from the input sequence (expected {}); only frames strictly between keyframes may be absent",
            clip.join("0012.png").display()
        )
    );
    write_clip(&clip, 24, [12]);
    // mixed sizes
    ImageF32::new(128, 64, 3)
        .write_png(&clip.join("0007.png"))
        .unwrap();
    assert_eq!(
        err(&clip, &["--every", "12"]),
        format!(
            "frame 7 ({}) is 128x64 but frame 0 is 256x128: all frames of the sequence must have one size",
            clip.join("0007.png").display()
        )
    );
    // an unreadable frame
    std::fs::write(clip.join("0007.png"), b"not a png").unwrap();
    let e = err(&clip, &["--every", "12"]);
    assert!(
        e.starts_with(&format!(
            "cannot read frame 7 ({}): ",
            clip.join("0007.png").display()
        )),
        "{e}"
    );
    assert_eq!(
        err(&clip, &["--every", "12", "--frames", "30..40"]),
        "--frames 30..40 is outside the input sequence's frames 0–24"
    );
    assert_eq!(
        err(&clip, &["--every", "12", "--frames", "9-3"]),
        "--frames '9-3' is not A..B (first and last frame, inclusive)"
    );
    assert_eq!(
        one_line_error(&sequence(&clip, &clip, &["--every", "12"]).output().unwrap()),
        format!(
            "--out {} is the input's folder: choose another one (the input frames would be overwritten)",
            clip.display()
        )
    );
    assert!(!out.join("summary.json").exists());
}
