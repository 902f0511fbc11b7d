//! Generates Rust declarations of our OpenFX header (ofx-headers/svd_ofx.h) with bindgen, and links the plugin so
//! the host can never unmap it (ONNX Runtime's worker threads and our statics outlive any dlclose).

use std::env;
use std::path::PathBuf;

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
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("ofx_sys.rs");
    bindings.write_to_file(&out).expect("write bindings");
    // -z nodelete: dlclose() of the plugin becomes a no-op (research/ort.md §4.2).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
