//! SVD_INBETWEEN_THREADS through the plugin: a bad value is a message that says what to set, a good one reaches ONNX
//! Runtime's thread pools. (Own test binary: the setting is a process-wide environment variable.)

use std::path::{Path, PathBuf};

use ofx_test_host::*;
use svd_inbetween::image::ImageF32;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn instance(models: &Path) -> Instance {
    let read = |n: &str| {
        ImageF32::read_png(&root().join("assets/keyframes").join(n))
            .unwrap()
            .to_channels(4)
            .unwrap()
    };
    let (a, b) = (read("a.png"), read("b.png"));
    let inst = plugin().instance("OfxImageEffectContextGeneral", 256, 128, 6.0);
    for t in 0..=6 {
        let img = if t < 6 { &a } else { &b };
        inst.add_frame(
            "Source",
            t,
            host_image_from_rgba(img, Depth::Float, 4, false),
        );
    }
    inst.set_int("mode", 0);
    inst.set_int("keyframeA", 0);
    inst.set_int("keyframeB", 6);
    inst.set_int("steps", 1);
    inst.set_int("noiseInjectionSteps", 0);
    inst.set_string("modelsFolder", models.to_str().unwrap());
    inst
}

/// Threads of this process, as the kernel counts them.
fn os_threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// Renders the middle frame, which must succeed, and returns how many threads the process gained meanwhile.
fn threads_started_by_render(inst: &Instance) -> usize {
    let before = os_threads();
    assert_eq!(
        inst.render(3.0, [0, 0, 256, 128]),
        0,
        "{:?}",
        inst.messages()
    );
    os_threads() - before
}

fn set_threads(v: &str) {
    // SAFETY: this test binary has one test, and it sets the variable between renders, not during one.
    unsafe { std::env::set_var("SVD_INBETWEEN_THREADS", v) };
}

#[test]
fn the_thread_setting_is_checked_and_reaches_onnx_runtime() {
    let tiny = root().join("models/tiny").canonicalize().unwrap();
    set_threads("two");
    let inst = instance(&tiny);
    assert_eq!(inst.render(3.0, [0, 0, 256, 128]), 1);
    assert_eq!(
        inst.messages().last().unwrap().1,
        "SVD_INBETWEEN_THREADS=\"two\" is not a thread count: set it to a whole number of 1 or more, or unset it \
         to use one thread per core"
    );
    // One thread per operator: ONNX Runtime starts no pool workers for the package's sessions.
    set_threads("1");
    let one = threads_started_by_render(&inst);
    // Four: each session's pool has three workers. A second package folder, so a second engine opens.
    let copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&tiny).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    set_threads("4");
    let four = threads_started_by_render(&instance(copy.path()));
    eprintln!("threads started: {one} with SVD_INBETWEEN_THREADS=1, {four} with 4");
    assert!(
        four >= one + 3 * 4,
        "1 thread: {one} started, 4 threads: {four} started"
    );
}
