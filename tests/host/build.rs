// Stable Rust cannot define C-variadic functions, and a host must implement the variadic parameter getters
// and the printf-style message functions: a small C file does that and forwards to Rust.
fn main() {
    println!("cargo:rerun-if-changed=src/variadic.c");
    println!("cargo:rerun-if-changed=../../ofx-headers/svd_ofx.h");
    cc::Build::new()
        .file("src/variadic.c")
        .include("../../ofx-headers")
        .warnings(true)
        .compile("ofxhostvariadic");
}
