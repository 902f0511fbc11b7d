//! The effect's parameters: one table that both describes them to the host and reads them back at render time.

use std::ffi::CStr;

use crate::image::Fit;
use crate::ofx::strings as s;
use crate::ofx::{Effect, OfxResult, ParamSet, PropSet};
use crate::pipeline::{Fusion, GenerateParams};
use crate::runtime::DevicePreference;

use super::timemap::FrameSampling;

pub const MODE: &CStr = c"mode";
pub const KEYFRAME_A: &CStr = c"keyframeA";
pub const KEYFRAME_B: &CStr = c"keyframeB";
pub const KEYFRAME_SOURCE: &CStr = c"keyframeSource";
pub const KEYFRAME_EVERY: &CStr = c"keyframeEvery";
pub const KEYFRAME_OFFSET: &CStr = c"keyframeOffset";
pub const KEYFRAME_LIST: &CStr = c"keyframeList";
pub const STEPS: &CStr = c"steps";
pub const SEED: &CStr = c"seed";
pub const INJECTION_STEPS: &CStr = c"noiseInjectionSteps";
pub const INJECTION_RATIO: &CStr = c"noiseInjectionRatio";
pub const MOTION_BUCKET: &CStr = c"motionBucket";
pub const FPS: &CStr = c"fps";
pub const NOISE_AUG: &CStr = c"noiseAug";
pub const GUIDANCE_MIN: &CStr = c"guidanceMin";
pub const GUIDANCE_MAX: &CStr = c"guidanceMax";
pub const FUSION: &CStr = c"fusion";
pub const SAMPLING: &CStr = c"frameSampling";
pub const TRANSFER: &CStr = c"inputTransfer";
pub const FIT: &CStr = c"aspectFit";
pub const MODELS: &CStr = c"modelsFolder";
pub const DEVICE: &CStr = c"device";
pub const MEMORY: &CStr = c"unetMemory";
pub const CACHE: &CStr = c"cacheFolder";

pub const MODE_OPTIONS: [&CStr; 2] = [
    c"Generative (Stable Video Diffusion)",
    c"Frame blend (preview baseline)",
];

/// The labels are a contract (some hosts store or pass the label, not the index): keep them and their order.
pub const KEYFRAME_SOURCE_OPTIONS: [&CStr; 3] = [c"Keyframe A and B", c"Every N frames", c"List"];

/// Where the keyframes come from (DESIGN §6, whole clips).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyframeSource {
    /// Keyframe A and B: one interval (A ≥ B: none).
    Pair,
    /// Keyframes at `offset + k·n` inside the clip's frame range.
    Every { n: i64, offset: i64 },
    /// The Keyframe list text, parsed where it is used so a bad token becomes a message.
    List(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Generative,
    FrameBlend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    Srgb,
    Linear,
}

/// Everything a render needs from the parameters, read at the render time.
#[derive(Clone, Debug)]
pub struct Values {
    pub mode: Mode,
    pub keyframe_a: i32,
    pub keyframe_b: i32,
    pub keyframes: KeyframeSource,
    pub generate: GenerateParams,
    pub sampling: FrameSampling,
    pub transfer: Transfer,
    pub fit: Fit,
    pub models_folder: String,
    pub device: DevicePreference,
    /// Half-batch UNet (two runs per step) for GPUs short of memory.
    pub low_memory: bool,
    pub cache_folder: String,
}

enum Kind {
    Int {
        default: i32,
        min: i32,
        max: i32,
        dmin: i32,
        dmax: i32,
    },
    Double {
        default: f64,
        min: f64,
        max: f64,
        dmin: f64,
        dmax: f64,
    },
    Choice {
        options: &'static [&'static CStr],
        default: i32,
    },
    Dir,
    /// A one-line text field.
    Text,
}

struct Def {
    name: &'static CStr,
    label: &'static CStr,
    hint: &'static CStr,
    group: &'static CStr,
    kind: Kind,
    /// Keyframe params make no sense in the Transition context (the clips are the keyframes there).
    general_only: bool,
}

const GROUP_KEYS: &CStr = c"keyframesGroup";
const GROUP_GEN: &CStr = c"generationGroup";
const GROUP_SYS: &CStr = c"systemGroup";

const DEFS: &[Def] = &[
    Def { name: MODE, label: c"Mode", group: GROUP_KEYS, general_only: false, kind: Kind::Choice { options: &MODE_OPTIONS, default: 0 },
          hint: c"Generative: Stable Video Diffusion in-betweening (slow, needs a model package). Frame blend: a plain cross-fade of the two keyframes, a quick preview baseline while you set keyframes." },
    Def { name: KEYFRAME_A, label: c"Keyframe A", group: GROUP_KEYS, general_only: true, kind: Kind::Int { default: 0, min: i32::MIN / 2, max: i32::MAX / 2, dmin: 0, dmax: 1000 },
          hint: c"Frame number of the first keyframe. Frames strictly between A and B are generated; the others pass the source through." },
    Def { name: KEYFRAME_B, label: c"Keyframe B", group: GROUP_KEYS, general_only: true, kind: Kind::Int { default: 24, min: i32::MIN / 2, max: i32::MAX / 2, dmin: 0, dmax: 1000 },
          hint: c"Frame number of the second keyframe (must be greater than A)." },
    Def { name: KEYFRAME_SOURCE, label: c"Keyframes", group: GROUP_KEYS, general_only: true, kind: Kind::Choice { options: &KEYFRAME_SOURCE_OPTIONS, default: 0 },
          hint: c"Where the keyframes come from. Keyframe A and B: one interval. Every N frames: keyframes at Offset + k·N inside the clip. List: the frame numbers in Keyframe list. Frames strictly between two consecutive keyframes are generated from that pair (one generation per pair, the same seed for each); keyframes and frames before the first or after the last keyframe pass the source through." },
    Def { name: KEYFRAME_EVERY, label: c"Keyframe every N frames", group: GROUP_KEYS, general_only: true, kind: Kind::Int { default: 24, min: 2, max: i32::MAX / 2, dmin: 2, dmax: 100 },
          hint: c"With Every N frames: the distance between keyframes, N ≥ 2 (e.g. 12 for a 2 fps clip on a 24 fps timeline)." },
    Def { name: KEYFRAME_OFFSET, label: c"Keyframe offset", group: GROUP_KEYS, general_only: true, kind: Kind::Int { default: 0, min: i32::MIN / 2, max: i32::MAX / 2, dmin: 0, dmax: 100 },
          hint: c"With Every N frames: keyframes at Offset + k·N (a frame number of one keyframe, e.g. the clip's first frame)." },
    Def { name: KEYFRAME_LIST, label: c"Keyframe list", group: GROUP_KEYS, general_only: true, kind: Kind::Text,
          hint: c"With List: the keyframes' frame numbers, separated by commas or spaces (e.g. 0, 12, 30, 48); sorted and de-duplicated, at least two, inside the clip." },
    Def { name: STEPS, label: c"Steps", group: GROUP_GEN, general_only: false, kind: Kind::Int { default: 50, min: 1, max: 500, dmin: 1, dmax: 100 },
          hint: c"Euler sampling steps (the paper uses 50). Fewer is faster and rougher." },
    Def { name: SEED, label: c"Seed", group: GROUP_GEN, general_only: false, kind: Kind::Int { default: 42, min: 0, max: i32::MAX, dmin: 0, dmax: 1000 },
          hint: c"Random seed. The same seed, keyframes and settings give identical frames on every machine with the same provider." },
    Def { name: INJECTION_STEPS, label: c"Noise injection rounds", group: GROUP_GEN, general_only: false, kind: Kind::Int { default: 5, min: 0, max: 20, dmin: 0, dmax: 10 },
          hint: c"How many times each early step is re-noised and repeated (paper: 5). 0 disables re-injection." },
    Def { name: INJECTION_RATIO, label: c"Noise injection ratio", group: GROUP_GEN, general_only: false, kind: Kind::Double { default: 0.5, min: 0.0, max: 1.0, dmin: 0.0, dmax: 1.0 },
          hint: c"Fraction of the steps (from the start) that get noise re-injection (paper: 0.5)." },
    Def { name: MOTION_BUCKET, label: c"Motion bucket", group: GROUP_GEN, general_only: false, kind: Kind::Int { default: 127, min: 0, max: 1023, dmin: 0, dmax: 255 },
          hint: c"SVD's motion conditioning: higher asks for more motion (default 127)." },
    Def { name: FPS, label: c"FPS conditioning", group: GROUP_GEN, general_only: false, kind: Kind::Int { default: 7, min: 1, max: 120, dmin: 1, dmax: 30 },
          hint: c"Frame rate SVD is conditioned on (default 7; SVD receives fps − 1)." },
    Def { name: NOISE_AUG, label: c"Noise augmentation", group: GROUP_GEN, general_only: false, kind: Kind::Double { default: 0.02, min: 0.0, max: 1.0, dmin: 0.0, dmax: 0.2 },
          hint: c"Noise added to the keyframes before encoding (default 0.02). More frees the result from the keyframes." },
    Def { name: GUIDANCE_MIN, label: c"Guidance min", group: GROUP_GEN, general_only: false, kind: Kind::Double { default: 1.0, min: 0.0, max: 20.0, dmin: 0.0, dmax: 10.0 },
          hint: c"Classifier-free guidance at the first frame of SVD's ramp (default 1)." },
    Def { name: GUIDANCE_MAX, label: c"Guidance max", group: GROUP_GEN, general_only: false, kind: Kind::Double { default: 3.0, min: 0.0, max: 20.0, dmin: 0.0, dmax: 10.0 },
          hint: c"Classifier-free guidance at the last frame of SVD's ramp (default 3). With Average fusion both directions get the symmetric mean." },
    Def { name: FUSION, label: c"Fusion", group: GROUP_GEN, general_only: false, kind: Kind::Choice { options: &[c"Average (paper)", c"Linear (forward near A, reverse near B)"], default: 0 },
          hint: c"How the forward and reverse predictions are combined at every step." },
    Def { name: SAMPLING, label: c"In-between sampling", group: GROUP_GEN, general_only: false, kind: Kind::Choice { options: &[c"Blend nearest generated frames", c"Nearest generated frame"], default: 0 },
          hint: c"The model makes a fixed number of frames; when the interval has another length, blend the two nearest or take the nearest." },
    Def { name: TRANSFER, label: c"Input transfer", group: GROUP_SYS, general_only: false, kind: Kind::Choice { options: &[c"sRGB / display-referred", c"Linear"], default: 0 },
          hint: c"SVD works on display-referred (sRGB-like) images. Choose Linear if the clip is scene-linear: it is encoded to sRGB for the model and decoded back." },
    Def { name: FIT, label: c"Aspect", group: GROUP_SYS, general_only: false, kind: Kind::Choice { options: &[c"Letterbox (keep proportions)", c"Stretch"], default: 0 },
          hint: c"The model works at one frame size (16:9 for SVD-XT). Letterbox fits the clip inside it with black bars, which are cropped off the result; Stretch distorts clips of another aspect." },
    Def { name: MODELS, label: c"Models folder", group: GROUP_SYS, general_only: false, kind: Kind::Dir,
          hint: c"Folder with an exported model package (manifest.json, *.onnx). Empty: $SVD_INBETWEEN_MODELS, else the tiny demo model inside the bundle (trained here on a procedural sprite world at 128x64: a demonstration, not SVD)." },
    Def { name: DEVICE, label: c"Device", group: GROUP_SYS, general_only: false, kind: Kind::Choice { options: &[c"Auto (CUDA if available)", c"CUDA", c"CPU"], default: 0 },
          hint: c"Auto uses CUDA when ONNX Runtime can, else the CPU (and says why). CUDA makes a missing GPU an error." },
    Def { name: MEMORY, label: c"UNet memory", group: GROUP_SYS, general_only: false, kind: Kind::Choice { options: &[c"Normal (one UNet run per step)", c"Low (two half-batch runs per step)"], default: 0 },
          hint: c"Low halves the UNet's activation memory for GPUs that run out, at about the same total time; the frames are the same. Needs a package exported with --unet-batch 2 or dynamic." },
    Def { name: CACHE, label: c"Cache folder", group: GROUP_SYS, general_only: false, kind: Kind::Dir,
          hint: c"Shared folder for generated frames (e.g. on the farm's network storage): every node renders from one generation per keyframe pair. Empty: $SVD_INBETWEEN_CACHE, else memory only." },
];

fn define_group(ps: &ParamSet, name: &CStr, label: &CStr) -> OfxResult<()> {
    let p = ps.define(s::PARAM_TYPE_GROUP, name)?;
    p.set_cstrs(s::PROP_LABEL, &[label])?;
    Ok(())
}

/// Defines every parameter, grouped, on a descriptor in one context.
pub fn describe(ps: &ParamSet, transition: bool) -> OfxResult<()> {
    define_group(ps, GROUP_KEYS, c"Keyframes")?;
    define_group(ps, GROUP_GEN, c"Generation")?;
    define_group(ps, GROUP_SYS, c"Models, device and cache")?;
    let page = ps.define(s::PARAM_TYPE_PAGE, c"controls")?;
    let mut children: Vec<&CStr> = Vec::new();
    for d in DEFS {
        if d.general_only && transition {
            continue;
        }
        let p: PropSet = match &d.kind {
            Kind::Int {
                default,
                min,
                max,
                dmin,
                dmax,
            } => {
                let p = ps.define(s::PARAM_TYPE_INTEGER, d.name)?;
                p.set_int(s::PARAM_PROP_DEFAULT, 0, *default)?;
                p.set_int(s::PARAM_PROP_MIN, 0, *min)?;
                p.set_int(s::PARAM_PROP_MAX, 0, *max)?;
                p.set_int(s::PARAM_PROP_DISPLAY_MIN, 0, *dmin)?;
                p.set_int(s::PARAM_PROP_DISPLAY_MAX, 0, *dmax)?;
                p
            }
            Kind::Double {
                default,
                min,
                max,
                dmin,
                dmax,
            } => {
                let p = ps.define(s::PARAM_TYPE_DOUBLE, d.name)?;
                p.set_double(s::PARAM_PROP_DEFAULT, 0, *default)?;
                p.set_double(s::PARAM_PROP_MIN, 0, *min)?;
                p.set_double(s::PARAM_PROP_MAX, 0, *max)?;
                p.set_double(s::PARAM_PROP_DISPLAY_MIN, 0, *dmin)?;
                p.set_double(s::PARAM_PROP_DISPLAY_MAX, 0, *dmax)?;
                p.set_int(s::PARAM_PROP_DIGITS, 0, 3)?;
                p
            }
            Kind::Choice { options, default } => {
                let p = ps.define(s::PARAM_TYPE_CHOICE, d.name)?;
                p.set_cstrs(s::PARAM_PROP_CHOICE_OPTION, options)?;
                p.set_int(s::PARAM_PROP_DEFAULT, 0, *default)?;
                p
            }
            Kind::Dir => {
                let p = ps.define(s::PARAM_TYPE_STRING, d.name)?;
                p.set_cstrs(
                    s::PARAM_PROP_STRING_MODE,
                    &[s::PARAM_STRING_IS_DIRECTORY_PATH],
                )?;
                p.set_cstrs(s::PARAM_PROP_DEFAULT, &[c""])?;
                p.set_int(s::PARAM_PROP_ANIMATES, 0, 0)?;
                p
            }
            Kind::Text => {
                let p = ps.define(s::PARAM_TYPE_STRING, d.name)?;
                p.set_cstrs(s::PARAM_PROP_DEFAULT, &[c""])?;
                p.set_int(s::PARAM_PROP_ANIMATES, 0, 0)?;
                p
            }
        };
        p.set_cstrs(s::PROP_LABEL, &[d.label])?;
        p.set_cstrs(s::PARAM_PROP_HINT, &[d.hint])?;
        p.set_cstrs(s::PARAM_PROP_SCRIPT_NAME, &[d.name])?;
        p.set_cstrs(s::PARAM_PROP_PARENT, &[d.group])?;
        children.push(d.name);
    }
    page.set_cstrs(s::PARAM_PROP_PAGE_CHILD, &children)?;
    Ok(())
}

/// Reads all values at time `t` (render code must use the at-time getters).
pub fn read(effect: &Effect, t: f64, transition: bool) -> OfxResult<Values> {
    let ps = effect.params()?;
    let int = |n: &CStr| ps.get(n)?.int_at(t);
    let dbl = |n: &CStr| ps.get(n)?.double_at(t);
    let (a, b) = if transition {
        (0, 0)
    } else {
        (int(KEYFRAME_A)?, int(KEYFRAME_B)?)
    };
    let keyframes = if transition {
        KeyframeSource::Pair
    } else {
        match int(KEYFRAME_SOURCE)? {
            1 => KeyframeSource::Every {
                n: int(KEYFRAME_EVERY)?.into(),
                offset: int(KEYFRAME_OFFSET)?.into(),
            },
            2 => KeyframeSource::List(ps.get(KEYFRAME_LIST)?.string_at(t)?),
            _ => KeyframeSource::Pair,
        }
    };
    Ok(Values {
        mode: if int(MODE)? == 1 {
            Mode::FrameBlend
        } else {
            Mode::Generative
        },
        keyframe_a: a,
        keyframe_b: b,
        keyframes,
        generate: GenerateParams {
            steps: int(STEPS)?.max(0) as u32,
            seed: int(SEED)?.max(0) as u64,
            noise_injection_steps: int(INJECTION_STEPS)?.max(0) as u32,
            noise_injection_ratio: dbl(INJECTION_RATIO)? as f32,
            motion_bucket_id: int(MOTION_BUCKET)? as f32,
            fps: int(FPS)? as f32,
            noise_aug_strength: dbl(NOISE_AUG)? as f32,
            min_guidance_scale: dbl(GUIDANCE_MIN)? as f32,
            max_guidance_scale: dbl(GUIDANCE_MAX)? as f32,
            fusion: if int(FUSION)? == 1 {
                Fusion::Linear
            } else {
                Fusion::Average
            },
            decode_chunk_frames: None,
        },
        sampling: if int(SAMPLING)? == 1 {
            FrameSampling::Nearest
        } else {
            FrameSampling::Blend
        },
        transfer: if int(TRANSFER)? == 1 {
            Transfer::Linear
        } else {
            Transfer::Srgb
        },
        fit: if int(FIT)? == 1 {
            Fit::Stretch
        } else {
            Fit::Letterbox
        },
        models_folder: ps.get(MODELS)?.string_at(t)?,
        device: match int(DEVICE)? {
            1 => DevicePreference::Cuda,
            2 => DevicePreference::Cpu,
            _ => DevicePreference::Auto,
        },
        low_memory: int(MEMORY)? == 1,
        cache_folder: ps.get(CACHE)?.string_at(t)?,
    })
}
