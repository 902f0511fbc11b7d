//! The image effect: one explicit dispatch from action name to a small handler.

mod generative;
pub use generative::generations as generation_count;
pub mod hostcaps;
pub mod interval;
pub mod keyframes;
pub mod params;
pub mod timemap;

use std::ffi::CStr;

use crate::image::ImageF32;
use crate::ofx::strings as s;
use crate::ofx::sys::*;
use crate::ofx::{Effect, OfxError, PropSet, RectI};
use keyframes::{FrameNumber, KeyframeError};
use params::{KeyframeSource, Mode, Values};
use timemap::interval_position;

/// A failure to show the user: the message says what happened and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    User(String),
    #[error("host error: {0}")]
    Host(#[from] OfxError),
    #[error("render cancelled")]
    Cancelled,
}

type PResult<T> = Result<T, PluginError>;

impl From<KeyframeError> for PluginError {
    fn from(e: KeyframeError) -> Self {
        PluginError::User(format!("Keyframes: {e}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    General,
    Filter,
    Transition,
}

fn st(code: u32) -> OfxStatus {
    code as OfxStatus
}

pub fn dispatch(action: &CStr, effect: Effect, in_args: PropSet, out_args: PropSet) -> OfxStatus {
    let result: PResult<OfxStatus> = match action {
        a if a == s::ACTION_LOAD => crate::ofx::host::load_suites()
            .map(|_| st(kOfxStatOK))
            .map_err(Into::into),
        a if a == s::ACTION_UNLOAD => Ok(st(kOfxStatOK)),
        a if a == s::ACTION_DESCRIBE => describe(effect),
        a if a == s::ACTION_DESCRIBE_IN_CONTEXT => describe_in_context(effect, in_args),
        a if a == s::ACTION_CREATE_INSTANCE => Ok(st(kOfxStatOK)),
        a if a == s::ACTION_DESTROY_INSTANCE => Ok(st(kOfxStatOK)),
        a if a == s::ACTION_GET_CLIP_PREFERENCES => Ok(st(kOfxStatReplyDefault)),
        a if a == s::ACTION_GET_ROD => region_of_definition(effect, in_args, out_args),
        a if a == s::ACTION_GET_FRAMES_NEEDED => frames_needed(effect, in_args, out_args),
        a if a == s::ACTION_IS_IDENTITY => is_identity(effect, in_args, out_args),
        a if a == s::ACTION_BEGIN_SEQUENCE_RENDER || a == s::ACTION_END_SEQUENCE_RENDER => {
            Ok(st(kOfxStatOK))
        }
        a if a == s::ACTION_RENDER => render(effect, in_args).map(|_| {
            // A render that works clears an error message left by an earlier one (e.g. a keyframe list
            // that has since been fixed).
            effect.clear_persistent_message();
            st(kOfxStatOK)
        }),
        a if a == s::ACTION_PURGE_CACHES => {
            generative::purge_memory_cache();
            Ok(st(kOfxStatOK))
        }
        _ => Ok(st(kOfxStatReplyDefault)),
    };
    match result {
        Ok(code) => code,
        Err(PluginError::Cancelled) => st(kOfxStatFailed),
        Err(e) => {
            if !effect.0.is_null() {
                effect.message(s::MESSAGE_ERROR, &e.to_string());
            } else {
                log::error!("{e}");
            }
            st(kOfxStatFailed)
        }
    }
}

fn describe(effect: Effect) -> PResult<OfxStatus> {
    if hostcaps::refuse_host().is_some() {
        return Ok(st(kOfxStatErrMissingHostFeature));
    }
    let p = effect.props()?;
    p.set_cstrs(s::PROP_LABEL, &[c"SVD Inbetween"])?;
    p.set_cstrs(s::PROP_SHORT_LABEL, &[c"SVD Inbetween"])?;
    p.set_cstrs(
        s::PROP_LONG_LABEL,
        &[c"SVD Inbetween (generative in-between frames)"],
    )?;
    p.set_cstrs(s::IE_PLUGIN_PROP_GROUPING, &[c"Time"])?;
    p.set_cstrs(
        s::PROP_PLUGIN_DESCRIPTION,
        &[c"Generates the frames between two keyframes with Stable Video Diffusion (Generative Inbetweening, Wang et al. 2024): a forward and a reverse-motion UNet denoise together. Frame blend mode is a plain cross-fade baseline for previews."],
    )?;
    p.set_cstrs(
        s::IE_PROP_SUPPORTED_CONTEXTS,
        &[s::CONTEXT_GENERAL, s::CONTEXT_FILTER, s::CONTEXT_TRANSITION],
    )?;
    p.set_cstrs(
        s::IE_PROP_SUPPORTED_PIXEL_DEPTHS,
        &[s::BIT_DEPTH_BYTE, s::BIT_DEPTH_SHORT, s::BIT_DEPTH_FLOAT],
    )?;
    p.set_int(s::IE_PROP_TEMPORAL_CLIP_ACCESS, 0, 1)?;
    // Whole frames only: the model sees the entire keyframe, and one generation serves every frame.
    p.set_int(s::IE_PROP_SUPPORTS_TILES, 0, 0)?;
    p.set_int(s::IE_PROP_SUPPORTS_MULTI_RESOLUTION, 0, 0)?;
    p.set_int(s::IE_PLUGIN_PROP_HOST_FRAME_THREADING, 0, 0)?;
    // Render may run on several threads and instances at once: shared state is behind locks and
    // single-flight, and generations of one key happen once.
    p.set_cstrs(
        s::IE_PLUGIN_RENDER_THREAD_SAFETY,
        &[s::IE_RENDER_FULLY_SAFE],
    )?;
    Ok(st(kOfxStatOK))
}

fn describe_in_context(effect: Effect, in_args: PropSet) -> PResult<OfxStatus> {
    if hostcaps::refuse_host().is_some() {
        return Ok(st(kOfxStatErrMissingHostFeature));
    }
    let ctx = parse_context(&in_args.get_string(s::IE_PROP_CONTEXT, 0)?)?;
    let clips: &[&CStr] = match ctx {
        Context::Transition => &[s::CLIP_SOURCE_FROM, s::CLIP_SOURCE_TO],
        _ => &[s::CLIP_SOURCE],
    };
    for name in clips.iter().chain([&s::CLIP_OUTPUT]) {
        let c = effect.define_clip(name)?;
        c.set_cstrs(
            s::IE_PROP_SUPPORTED_COMPONENTS,
            &[s::COMPONENT_RGBA, s::COMPONENT_RGB],
        )?;
        c.set_int(s::IE_PROP_SUPPORTS_TILES, 0, 0)?;
        if *name != s::CLIP_OUTPUT {
            c.set_int(s::IE_PROP_TEMPORAL_CLIP_ACCESS, 0, 1)?;
        }
    }
    let ps = effect.params()?;
    if ctx == Context::Transition {
        let t = ps.define(s::PARAM_TYPE_DOUBLE, s::PARAM_TRANSITION)?;
        t.set_double(s::PARAM_PROP_DEFAULT, 0, 0.0)?;
        t.set_double(s::PARAM_PROP_MIN, 0, 0.0)?;
        t.set_double(s::PARAM_PROP_MAX, 0, 1.0)?;
    }
    params::describe(&ps, ctx == Context::Transition)?;
    Ok(st(kOfxStatOK))
}

fn parse_context(v: &str) -> PResult<Context> {
    match v {
        "OfxImageEffectContextGeneral" => Ok(Context::General),
        "OfxImageEffectContextFilter" => Ok(Context::Filter),
        "OfxImageEffectContextTransition" => Ok(Context::Transition),
        other => Err(PluginError::User(format!(
            "svd-inbetween does not support the context '{other}'"
        ))),
    }
}

fn context(effect: &Effect) -> PResult<Context> {
    parse_context(&effect.props()?.get_string(s::IE_PROP_CONTEXT, 0)?)
}

/// Where an output time reads from: keyframes `a` < `b` (host frames) and the position `u` ∈ (0,1) between them.
struct Span {
    a: f64,
    b: f64,
    u: f64,
}

impl Span {
    fn interval(&self) -> (FrameNumber, FrameNumber) {
        (self.a as FrameNumber, self.b as FrameNumber)
    }
}

/// The span that renders time `t`, or `None` where the effect is an identity (at a keyframe, outside the first
/// and last keyframe). General/Filter: the interval k_i < t < k_{i+1} of the keyframe set. Transition: the clips
/// are the keyframes, From at the transition's first frame and To at its last (the output clip's frame range),
/// at the position the Transition param says.
fn span_at(effect: &Effect, ctx: Context, v: &Values, t: f64) -> PResult<Option<Span>> {
    if ctx == Context::Transition {
        let out = effect.clip(s::CLIP_OUTPUT)?;
        let r = out
            .props
            .get_doubles::<2>(s::IE_PROP_FRAME_RANGE)
            .unwrap_or([0.0, 1.0]);
        let u = effect
            .params()?
            .get(s::PARAM_TRANSITION)?
            .double_at(t)?
            .clamp(0.0, 1.0);
        return Ok(Some(Span {
            a: r[0],
            b: r[1],
            u,
        }));
    }
    let keys = keyframe_set(effect, v)?;
    Ok(keyframes::interval_for_time(&keys, t).and_then(|(a, b)| {
        let (a, b) = (a as f64, b as f64);
        interval_position(t, a, b).map(|u| Span { a, b, u })
    }))
}

/// The keyframes (sorted) of the Keyframes param: A and B (none when A ≥ B, as before whole clips), every N
/// frames or the list, both bounded by the Source clip's frame range.
fn keyframe_set(effect: &Effect, v: &Values) -> PResult<Vec<FrameNumber>> {
    let keys = match &v.keyframes {
        KeyframeSource::Pair => {
            let (a, b) = (v.keyframe_a.into(), v.keyframe_b.into());
            return Ok(if a < b { vec![a, b] } else { vec![] });
        }
        KeyframeSource::Every { n, offset } => {
            let (first, last) = source_frame_range(effect)?;
            keyframes::every(*n, *offset, first, last)?
        }
        KeyframeSource::List(text) => keyframes::parse_list(text)?,
    };
    // Every N frames is bounded by the range already; a list is checked against it.
    let (first, last) = source_frame_range(effect)?;
    keyframes::check_inside(&keys, "the clip", first, last)?;
    Ok(keys)
}

/// The whole frames the Source clip has images for.
fn source_frame_range(effect: &Effect) -> PResult<(FrameNumber, FrameNumber)> {
    let r = effect
        .clip(s::CLIP_SOURCE)?
        .props
        .get_doubles::<2>(s::IE_PROP_FRAME_RANGE)
        .map_err(|_| {
            PluginError::User(
                "Keyframes: the host gives no frame range for the Source clip, so Every N frames and List cannot be bounded; use Keyframe A and B".into(),
            )
        })?;
    Ok((r[0].ceil() as FrameNumber, r[1].floor() as FrameNumber))
}

fn region_of_definition(effect: Effect, in_args: PropSet, out_args: PropSet) -> PResult<OfxStatus> {
    // Output matches the source (From for transitions): generated frames are resized back to it.
    let t = in_args.get_double(s::PROP_TIME, 0)?;
    let src = match context(&effect)? {
        Context::Transition => s::CLIP_SOURCE_FROM,
        _ => s::CLIP_SOURCE,
    };
    let rod = effect.clip(src)?.region_of_definition(t)?;
    out_args.set_doubles(s::IE_PROP_REGION_OF_DEFINITION, &rod)?;
    Ok(st(kOfxStatOK))
}

fn frames_needed(effect: Effect, in_args: PropSet, out_args: PropSet) -> PResult<OfxStatus> {
    let t = in_args.get_double(s::PROP_TIME, 0)?;
    let ctx = context(&effect)?;
    let v = params::read(&effect, t, ctx == Context::Transition)?;
    let span = span_at(&effect, ctx, &v, t)?;
    match (ctx, span) {
        (Context::Transition, Some(Span { a, b, .. })) => {
            let from = if v.mode == Mode::FrameBlend { t } else { a };
            let to = if v.mode == Mode::FrameBlend { t } else { b };
            out_args.set_doubles_named(
                &format!("{}SourceFrom", s::CLIP_PROP_FRAME_RANGE_PREFIX),
                &[from, from],
            )?;
            out_args.set_doubles_named(
                &format!("{}SourceTo", s::CLIP_PROP_FRAME_RANGE_PREFIX),
                &[to, to],
            )?;
        }
        (_, span) => {
            // Exactly the interval's two keyframes, or t itself (identity frames read t).
            let key = format!("{}Source", s::CLIP_PROP_FRAME_RANGE_PREFIX);
            match span {
                Some(Span { a, b, .. }) => out_args.set_doubles_named(&key, &[a, a, b, b])?,
                None => out_args.set_doubles_named(&key, &[t, t])?,
            }
        }
    }
    Ok(st(kOfxStatOK))
}

fn is_identity(effect: Effect, in_args: PropSet, out_args: PropSet) -> PResult<OfxStatus> {
    let t = in_args.get_double(s::PROP_TIME, 0)?;
    let ctx = context(&effect)?;
    if ctx == Context::Transition {
        let u = effect.params()?.get(s::PARAM_TRANSITION)?.double_at(t)?;
        let clip = if u <= 0.0 {
            s::CLIP_SOURCE_FROM
        } else if u >= 1.0 {
            s::CLIP_SOURCE_TO
        } else {
            return Ok(st(kOfxStatReplyDefault));
        };
        out_args.set_cstrs(s::PROP_NAME, &[clip])?;
        out_args.set_double(s::PROP_TIME, 0, t)?;
        return Ok(st(kOfxStatOK));
    }
    let v = params::read(&effect, t, false)?;
    if span_at(&effect, ctx, &v, t)?.is_some() {
        return Ok(st(kOfxStatReplyDefault));
    }
    out_args.set_cstrs(s::PROP_NAME, &[s::CLIP_SOURCE])?;
    out_args.set_double(s::PROP_TIME, 0, t)?;
    Ok(st(kOfxStatOK))
}

/// A fetched frame (RGBA f32, rows top to bottom) with its pixel bounds, for sampling in pixel coordinates.
pub struct Frame {
    pub image: ImageF32,
    pub bounds: RectI,
}

impl Frame {
    #[inline]
    pub fn at(&self, x: i32, y: i32) -> [f32; 4] {
        let b = &self.bounds;
        if x < b.x1 || x >= b.x2 || y < b.y1 || y >= b.y2 {
            return [0.0; 4];
        }
        let p = self
            .image
            .pixel((x - b.x1) as usize, (b.y2 - 1 - y) as usize);
        [p[0], p[1], p[2], p[3]]
    }
}

/// Fetches a clip's frame at `time` and copies it out, releasing the host image before returning.
pub fn fetch_frame(effect: &Effect, clip: &CStr, time: f64) -> PResult<Frame> {
    let c = effect.clip(clip)?;
    let img = c.image(time)?.ok_or_else(|| no_image(clip, time))?;
    let (image, bounds) = img.to_rgba_f32()?;
    Ok(Frame { image, bounds })
}

fn no_image(clip: &CStr, time: f64) -> PluginError {
    PluginError::User(format!(
        "the host returned no image for clip '{}' at frame {time}. Check that the keyframes lie inside the clip.",
        clip.to_string_lossy()
    ))
}

fn render(effect: Effect, in_args: PropSet) -> PResult<()> {
    if std::env::var("SVD_INBETWEEN_TEST_PANIC").as_deref() == Ok("render") {
        // Test-only hook (tests/host): proves a panic in render is caught at the ABI boundary.
        panic!("test panic requested by SVD_INBETWEEN_TEST_PANIC");
    }
    let t = in_args.get_double(s::PROP_TIME, 0)?;
    let w = in_args.get_ints::<4>(s::IE_PROP_RENDER_WINDOW)?;
    let window = RectI {
        x1: w[0],
        y1: w[1],
        x2: w[2],
        y2: w[3],
    };
    let ctx = context(&effect)?;
    let v = params::read(&effect, t, ctx == Context::Transition)?;
    let span = span_at(&effect, ctx, &v, t)?;
    let (from_clip, to_clip) = match ctx {
        Context::Transition => (s::CLIP_SOURCE_FROM, s::CLIP_SOURCE_TO),
        _ => (s::CLIP_SOURCE, s::CLIP_SOURCE),
    };
    let mut out = effect.clip(s::CLIP_OUTPUT)?.output_image(t)?;
    let Some(span) = span else {
        // At a keyframe or outside the keyframes: the source passes through (hosts normally skip this via
        // IsIdentity).
        let src = fetch_frame(&effect, s::CLIP_SOURCE, t)?;
        return Ok(out.write(window, |x, y| src.at(x, y))?);
    };
    let Span { a, b, u } = span;
    match v.mode {
        Mode::FrameBlend => {
            let (fa, fb) = if ctx == Context::Transition {
                (
                    fetch_frame(&effect, from_clip, t)?,
                    fetch_frame(&effect, to_clip, t)?,
                )
            } else {
                // Both keyframes from one clip: checked that the host really served two times.
                hostcaps::fetch_keyframes(&effect, s::CLIP_SOURCE, a, b, t)?
            };
            let uf = u as f32;
            out.write(window, |x, y| {
                let (pa, pb) = (fa.at(x, y), fb.at(x, y));
                std::array::from_fn(|c| (1.0 - uf) * pa[c] + uf * pb[c])
            })?;
        }
        Mode::Generative => {
            let (fa, fb) = if ctx == Context::Transition {
                (
                    fetch_frame(&effect, from_clip, a)?,
                    fetch_frame(&effect, to_clip, b)?,
                )
            } else {
                hostcaps::fetch_keyframes(&effect, s::CLIP_SOURCE, a, b, t)?
            };
            let frame = generative::render_frame(&effect, &v, span.interval(), &fa, &fb, u)?;
            out.write(window, |x, y| frame.at(x, y))?;
        }
    }
    Ok(())
}
