//! Generates Rust declarations of our OpenFX header (ofx-headers/svd_ofx.h) with bindgen, and links the plugin so
//! the host can never unmap it (ONNX Runtime's worker threads and our statics outlive any dlclose).

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let header = "ofx-headers/svd_ofx.h";
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-changed=build.rs");
    let bindings = bindgen::Builder::default()
        .header(header)
        .allowlist_type("Ofx.*")
        .allowlist_var("kOfx.*")
        .layout_tests(true)
        .derive_default(true)
        .generate_comments(false)
        .generate()
        .expect("bindgen could not parse ofx-headers/svd_ofx.h (is libclang installed? apt-get install libclang-dev)");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out_dir.join("ofx_sys.rs"))
        .expect("write bindings");
    report_libclang(&out_dir);
    // -z nodelete: dlclose() of the plugin becomes a no-op (research/ort.md §4.2).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}

/// Says which libclang bindgen loaded (set-up checks that a fresh machine gets one; scripts/test.sh prints this):
/// `OUT_DIR/libclang.txt` holds the path and clang's version (not a cargo warning: those repeat on every build).
fn report_libclang(out_dir: &Path) {
    // bindgen loaded libclang on this thread (clang-sys `runtime`); the same clang-sys instance holds it.
    let line = match clang_sys::get_library() {
        Some(lib) => format!(
            "{} ({})",
            lib.path().display(),
            bindgen::clang_version().full
        ),
        None => "unknown (bindgen did not report its libclang)".to_string(),
    };
    std::fs::write(out_dir.join("libclang.txt"), format!("{line}\n")).expect("write libclang.txt");
}
