//! The assembled bundle works on its own: the plugin finds ONNX Runtime in Contents/Linux-x86-64/lib and the
//! demo models in Contents/Resources, with no environment variables, no Python and no models parameter.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bundle_is_self_contained() {
    let st = Command::new("bash")
        .arg("bundle/make-bundle.sh")
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success());
    let contents = root().join("target/bundle/SvdInbetween.ofx.bundle/Contents");
    let ofx = contents.join("Linux-x86-64/SvdInbetween.ofx");
    assert!(
        contents
            .join("Linux-x86-64/lib/libonnxruntime.so.1.31.1")
            .exists(),
        "ONNX Runtime copied into the bundle"
    );
    assert!(contents.join("Info.plist").exists());
    let plist = std::fs::read_to_string(contents.join("Info.plist")).unwrap();
    assert!(plist.contains("<string>SvdInbetween.ofx</string>"));
    let home = tempfile::tempdir().unwrap(); // no venv to fall back on
    let out = home.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_ofx-demo"))
        .current_dir(root())
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("SVD_INBETWEEN_OFX", &ofx)
        .args([
            "--from",
            "assets/keyframes/a.png",
            "--to",
            "assets/keyframes/b.png",
            "--length",
            "3",
            "--frames",
            "1..2",
        ])
        .args([
            "--param",
            "steps=2",
            "--param",
            "noiseInjectionSteps=0",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "loaded org.svdinbetween.SvdInbetween from {}",
            ofx.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("generations.txt"))
            .unwrap()
            .trim(),
        "1"
    );
    assert!(out.join("frame_0001.png").exists() && out.join("frame_0002.png").exists());
}
