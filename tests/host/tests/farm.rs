//! A render farm in miniature: four separate host processes render disjoint chunks of one interval with a
//! shared cache folder. Exactly one of them generates, and every frame is byte-identical to a single-process
//! render without any cache.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo(out: &Path, frames: &str, cache: Option<&Path>) -> std::process::Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ofx-demo"));
    c.current_dir(root())
        .args([
            "--from",
            "assets/keyframes/a.png",
            "--to",
            "assets/keyframes/b.png",
            "--length",
            "10",
            "--models",
            "models/tiny",
        ])
        .args([
            "--param",
            "steps=3",
            "--param",
            "noiseInjectionSteps=1",
            "--param",
            "seed=77",
            "--frames",
            frames,
            "--out",
        ])
        .arg(out)
        .stderr(std::process::Stdio::null());
    if let Some(cache) = cache {
        c.arg("--cache").arg(cache);
    }
    c.spawn().expect("start ofx-demo")
}

#[test]
fn four_processes_one_generation_identical_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let chunks = ["1..2", "3..4", "5..7", "8..9"];
    let children: Vec<_> = chunks
        .iter()
        .enumerate()
        .map(|(i, f)| demo(&dir.path().join(format!("node{i}")), f, Some(&cache)))
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
    assert_eq!(
        generations, 1,
        "exactly one generation across the four processes"
    );
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock") && !n.starts_with('.'))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    let single = dir.path().join("single");
    assert!(demo(&single, "1..9", None).wait().unwrap().success());
    for (i, chunk) in chunks.iter().enumerate() {
        let (a, b) = chunk.split_once("..").unwrap();
        for t in a.parse::<i64>().unwrap()..=b.parse::<i64>().unwrap() {
            let name = format!("frame_{t:04}.png");
            let farm = std::fs::read(dir.path().join(format!("node{i}")).join(&name)).unwrap();
            let one = std::fs::read(single.join(&name)).unwrap();
            assert!(
                farm == one,
                "frame {t} differs between the farm and a single render"
            );
        }
    }
}
