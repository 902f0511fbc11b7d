//! svd-inbetween: generative in-between frames (Wang et al. 2024, "Generative Inbetweening") as an OpenFX
//! plugin and a CLI, running SVD-XT exported to ONNX under ONNX Runtime.
//!
//! Layers, top to bottom (see docs/DESIGN.md): `ofx` (C ABI) → `plugin` (describe, params, time mapping,
//! render) → `cache` (memory LRU + shared disk cache) → `pipeline` (preprocess, sampler, decode) → `runtime`
//! (ONNX Runtime loading, sessions, providers).

// `unsafe` is confined to the two modules that talk to C: the OpenFX ABI and ONNX Runtime's loader.
#![deny(unsafe_code)]

pub mod cache;
pub mod image;
pub mod image_sequence;
#[allow(unsafe_code)]
pub mod ofx;
pub mod pipeline;
pub mod plugin;
#[allow(unsafe_code)]
pub mod runtime;
