use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;
use crate::pipeline::GenerateParams;

fn frames(seed: f32, n: usize) -> Frames {
    Frames {
        frames: (0..n)
            .map(|i| ImageF32::from_vec(2, 2, 3, vec![seed + i as f32; 12]).unwrap())
            .collect(),
    }
}

fn key(s: &str) -> CacheKey {
    CacheKey::from_hex(s)
}

#[test]
fn eight_threads_one_key_one_generation() {
    let cache = Arc::new(FrameCache::new(1 << 20));
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (c, r, b) = (Arc::clone(&cache), Arc::clone(&runs), Arc::clone(&barrier));
            std::thread::spawn(move || {
                b.wait();
                c.get_or_generate(&key("k"), None, || -> Result<Frames, String> {
                    r.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50)); // keep the others waiting
                    Ok(frames(1.0, 3))
                })
                .unwrap()
            })
        })
        .collect();
    let results: Vec<Arc<Frames>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().generations, 1);
    assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
}

#[test]
fn different_keys_generate_concurrently() {
    let cache = Arc::new(FrameCache::new(1 << 20));
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|k| {
            let (c, b) = (Arc::clone(&cache), Arc::clone(&barrier));
            std::thread::spawn(move || {
                c.get_or_generate(&key(k), None, || -> Result<Frames, String> {
                    // Both generations must be inside generate at once, or this barrier deadlocks the test.
                    b.wait();
                    Ok(frames(0.0, 1))
                })
                .unwrap();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(cache.stats().generations, 2);
}

#[test]
fn failure_and_panic_leave_no_entry() {
    let cache = FrameCache::new(1 << 20);
    let e = cache
        .get_or_generate(&key("k"), None, || Err::<Frames, _>("cancelled"))
        .unwrap_err();
    assert!(matches!(e, CacheError::Generate("cancelled")));
    let e = cache
        .get_or_generate(&key("k"), None, || -> Result<Frames, &str> {
            panic!("boom")
        })
        .unwrap_err();
    assert!(matches!(e, CacheError::Panicked(ref m) if m == "boom"));
    let f = cache
        .get_or_generate(&key("k"), None, || Ok::<_, &str>(frames(2.0, 1)))
        .unwrap();
    assert_eq!(f.frames[0].data[0], 2.0);
    assert_eq!(cache.stats().generations, 3);
    cache
        .get_or_generate(&key("k"), None, || Err::<Frames, _>("not called"))
        .unwrap();
    assert_eq!(cache.stats().memory_hits, 1);
}

#[test]
fn lru_is_bounded_in_bytes() {
    let one = frames(0.0, 1).size_bytes(); // 48 bytes
    let cache = FrameCache::new(2 * one);
    for k in ["a", "b"] {
        cache
            .get_or_generate(&key(k), None, || Ok::<_, ()>(frames(0.0, 1)))
            .unwrap();
    }
    cache
        .get_or_generate(&key("a"), None, || Ok::<_, ()>(frames(0.0, 1)))
        .unwrap(); // touch a
    cache
        .get_or_generate(&key("c"), None, || Ok::<_, ()>(frames(0.0, 1)))
        .unwrap(); // evicts b
    assert_eq!(cache.memory_bytes(), 2 * one);
    assert_eq!(cache.stats().generations, 3);
    cache
        .get_or_generate(&key("a"), None, || Ok::<_, ()>(frames(0.0, 1)))
        .unwrap();
    assert_eq!(cache.stats().generations, 3, "a survived");
    cache
        .get_or_generate(&key("b"), None, || Ok::<_, ()>(frames(0.0, 1)))
        .unwrap();
    assert_eq!(cache.stats().generations, 4, "b was evicted");
    // an entry larger than the cache is returned, not kept
    let big = cache
        .get_or_generate(&key("big"), None, || Ok::<_, ()>(frames(0.0, 3)))
        .unwrap();
    assert_eq!(big.frames.len(), 3);
    assert!(cache.memory_bytes() <= 2 * one);
}

fn key_input_default() -> (ImageF32, ImageF32, GenerateParams) {
    (
        ImageF32::new(4, 2, 3),
        ImageF32::from_vec(4, 2, 3, vec![0.5; 24]).unwrap(),
        GenerateParams::default(),
    )
}

#[test]
fn every_field_changes_the_key() {
    let (a, b, p) = key_input_default();
    let base = |p: &GenerateParams, a: &ImageF32, man: &str, prov: &str, w: usize| {
        CacheKey::compute(&KeyInput {
            manifest_sha256: man,
            from: a,
            to: &b,
            params: p,
            width: w,
            height: 64,
            provider_class: prov,
        })
    };
    let k0 = base(&p, &a, "m", "cpu", 128);
    assert_eq!(k0, base(&p, &a, "m", "cpu", 128), "deterministic");
    let variants = [
        GenerateParams {
            steps: 49,
            ..p.clone()
        },
        GenerateParams {
            seed: 43,
            ..p.clone()
        },
        GenerateParams {
            noise_injection_steps: 4,
            ..p.clone()
        },
        GenerateParams {
            noise_injection_ratio: 0.4,
            ..p.clone()
        },
        GenerateParams {
            motion_bucket_id: 128.0,
            ..p.clone()
        },
        GenerateParams {
            fps: 8.0,
            ..p.clone()
        },
        GenerateParams {
            noise_aug_strength: 0.03,
            ..p.clone()
        },
        GenerateParams {
            min_guidance_scale: 1.5,
            ..p.clone()
        },
        GenerateParams {
            max_guidance_scale: 2.5,
            ..p.clone()
        },
        GenerateParams {
            fusion: Fusion::Linear,
            ..p.clone()
        },
        GenerateParams {
            decode_chunk_frames: Some(2),
            ..p.clone()
        },
    ];
    for v in &variants {
        assert_ne!(base(v, &a, "m", "cpu", 128), k0, "{v:?}");
    }
    let mut a2 = a.clone();
    a2.data[5] = f32::from_bits(a2.data[5].to_bits() + 1); // one ulp in one pixel
    assert_ne!(base(&p, &a2, "m", "cpu", 128), k0);
    assert_ne!(base(&p, &a, "m2", "cpu", 128), k0);
    assert_ne!(base(&p, &a, "m", "cuda", 128), k0);
    assert_ne!(base(&p, &a, "m", "cpu", 192), k0);
}
use crate::pipeline::Fusion;

#[test]
fn disk_entries_round_trip_and_corruption_is_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let c1 = FrameCache::new(1 << 20);
    let f = c1
        .get_or_generate(&key("k1"), Some(dir.path()), || Ok::<_, ()>(frames(3.0, 2)))
        .unwrap();
    assert!(dir.path().join("k1/meta.json").exists());
    // a second process-like cache (fresh memory) reads it from disk without generating
    let c2 = FrameCache::new(1 << 20);
    let g = c2
        .get_or_generate(&key("k1"), Some(dir.path()), || {
            Err::<Frames, _>("must not generate")
        })
        .unwrap();
    assert_eq!(*g, *f);
    assert_eq!((c2.stats().generations, c2.stats().disk_hits), (0, 1));
    // flip one payload byte: detected, regenerated, rewritten
    let p = dir.path().join("k1/frames.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[7] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    let c3 = FrameCache::new(1 << 20);
    let h = c3
        .get_or_generate(&key("k1"), Some(dir.path()), || Ok::<_, ()>(frames(3.0, 2)))
        .unwrap();
    assert_eq!((c3.stats().generations, *h == *f), (1, true));
    // truncated payload and broken meta are detected as well
    std::fs::write(&p, &std::fs::read(&p).unwrap()[..10]).unwrap();
    let c4 = FrameCache::new(1 << 20);
    c4.get_or_generate(&key("k1"), Some(dir.path()), || Ok::<_, ()>(frames(3.0, 2)))
        .unwrap();
    assert_eq!(c4.stats().generations, 1);
    std::fs::write(dir.path().join("k1/meta.json"), b"{").unwrap();
    let c5 = FrameCache::new(1 << 20);
    c5.get_or_generate(&key("k1"), Some(dir.path()), || Ok::<_, ()>(frames(3.0, 2)))
        .unwrap();
    assert_eq!(c5.stats().generations, 1);
}

#[test]
fn unusable_cache_dir_still_renders_with_one_warning() {
    // Tests run as root, where permission bits do not stop writes; a directory path *under a regular file*
    // cannot be created by anyone, which is the same failure an unwritable farm share gives.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("cache");
    let cache = FrameCache::new(1 << 20);
    for k in ["a", "b", "c"] {
        cache
            .get_or_generate(&key(k), Some(&bad), || Ok::<_, ()>(frames(1.0, 1)))
            .unwrap();
    }
    assert_eq!(cache.stats().generations, 3);
    let w = cache.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("cache folder {} is not usable", bad.display())),
        "{}",
        w[0]
    );
    assert!(cache.take_warnings().is_empty());
}

/// Child mode of the multi-process test: one "render node" generating through the shared directory.
#[test]
fn multiprocess_child() {
    let (Ok(dir), Ok(marks)) = (
        std::env::var("SVDI_CACHE_CHILD_DIR"),
        std::env::var("SVDI_CACHE_CHILD_MARKS"),
    ) else {
        return; // not running as a child
    };
    let cache = FrameCache::new(1 << 20);
    let f = cache
        .get_or_generate(
            &key("shared"),
            Some(Path::new(&dir)),
            || -> Result<Frames, ()> {
                std::fs::write(
                    Path::new(&marks).join(format!("gen-{}", std::process::id())),
                    b"",
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(300));
                Ok(frames(7.0, 4))
            },
        )
        .unwrap();
    let bytes: Vec<u8> = f
        .frames
        .iter()
        .flat_map(|i| i.data.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    std::fs::write(
        Path::new(&marks).join(format!("out-{}", std::process::id())),
        bytes,
    )
    .unwrap();
}

#[test]
fn four_processes_share_one_generation() {
    let dir = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "cache::tests::multiprocess_child",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("SVDI_CACHE_CHILD_DIR", dir.path())
                .env("SVDI_CACHE_CHILD_MARKS", marks.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let names: Vec<String> = std::fs::read_dir(marks.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("gen-")).count(),
        1,
        "{names:?}"
    );
    let outs: Vec<Vec<u8>> = names
        .iter()
        .filter(|n| n.starts_with("out-"))
        .map(|n| std::fs::read(marks.path().join(n)).unwrap())
        .collect();
    assert_eq!(outs.len(), 4);
    assert!(outs.iter().all(|o| *o == outs[0] && !o.is_empty()));
}

#[test]
fn a_waiting_thread_stops_when_asked_and_the_generation_still_lands() {
    let cache = Arc::new(FrameCache::new(1 << 20));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let c = Arc::clone(&cache);
    let generator = std::thread::spawn(move || {
        c.get_or_generate(&key("w"), None, || -> Result<Frames, String> {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(frames(2.0, 2))
        })
        .map(|f| f.frames.len())
    });
    started_rx.recv().unwrap();
    let stop_now = std::sync::atomic::AtomicBool::new(false);
    let t = std::time::Instant::now();
    let waiter = std::thread::scope(|s| {
        let h = s.spawn(|| {
            cache.get_or_generate_or_stop(
                &key("w"),
                None,
                &|| stop_now.load(Ordering::SeqCst),
                || -> Result<Frames, String> { panic!("the waiter must not generate") },
            )
        });
        std::thread::sleep(Duration::from_millis(250));
        stop_now.store(true, Ordering::SeqCst);
        h.join().unwrap()
    });
    assert!(
        matches!(waiter, Err(CacheError::StoppedWaiting)),
        "{waiter:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stopped within a poll interval, not at the generation's end"
    );
    release_tx.send(()).unwrap();
    assert_eq!(generator.join().unwrap().unwrap(), 2);
    assert_eq!(cache.stats().generations, 1);
    // the entry is there for the next caller
    assert_eq!(
        cache
            .get_or_generate(&key("w"), None, || -> Result<Frames, String> {
                unreachable!()
            })
            .unwrap()
            .frames
            .len(),
        2
    );
}

#[test]
fn waiting_on_another_process_lock_stops_when_asked() {
    use fs2::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = FrameCache::new(1 << 20);
    let k = "0123abcd";
    // Another process generating this key holds its lock (flock conflicts between open files in one process too).
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join(format!("{k}.lock")))
        .unwrap();
    held.lock_exclusive().unwrap();
    let polls = AtomicUsize::new(0);
    let r = cache.get_or_generate_or_stop(
        &key(k),
        Some(dir.path()),
        &|| polls.fetch_add(1, Ordering::SeqCst) >= 3,
        || -> Result<Frames, String> {
            panic!("must not generate while another process holds the lock")
        },
    );
    assert!(matches!(r, Err(CacheError::StoppedWaiting)), "{r:?}");
    assert_eq!(polls.load(Ordering::SeqCst), 4);
    assert_eq!(cache.stats().generations, 0);
    // once released, the same call generates
    FileExt::unlock(&held).unwrap();
    let r = cache.get_or_generate_or_stop(
        &key(k),
        Some(dir.path()),
        &|| true,
        || -> Result<Frames, String> { Ok(frames(1.0, 1)) },
    );
    assert_eq!(r.unwrap().frames.len(), 1);
    assert!(dir.path().join(k).join("meta.json").exists());
}

#[test]
fn stale_temporaries_are_swept_once_young_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (old, young) = (
        dir.path().join(".tmp-dead-1-1"),
        dir.path().join(".tmp-live-2-2"),
    );
    for d in [&old, &young] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("frames.bin"), b"partial").unwrap();
    }
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    let cache = FrameCache::new(1 << 20);
    cache
        .get_or_generate(
            &key("s1"),
            Some(dir.path()),
            || -> Result<Frames, String> { Ok(frames(0.0, 1)) },
        )
        .unwrap();
    assert!(!old.exists(), "a day-old temporary is removed");
    assert!(young.exists(), "a fresh one may belong to a live writer");
}
