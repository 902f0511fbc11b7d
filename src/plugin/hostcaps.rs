//! What the host can do, and what we do about hosts that cannot serve us (DESIGN §6 "Host capabilities",
//! docs/DESIGN.md decision 17).
//!
//! - At Describe we read the host's property set: without temporal clip access (MLT, the engine of Kdenlive and
//!   Shotcut, declares 0), or without any context or pixel depth we support, the effect cannot work there, so
//!   Describe answers kOfxStatErrMissingHostFeature and the host does not list it. A property the host does not
//!   report counts as supported: hosts are required to set them, and the render guard below catches a host that
//!   says one thing and does another.
//! - At render, a host that claims temporal access but serves the current frame for every time gives keyframe A
//!   and keyframe B as the same buffer, or (copied) the same pixels while the frame at t differs. Then we fail
//!   with a persistent error that names the host and generate nothing, instead of blending a frame with itself
//!   or running one wrong generation per frame.

use std::ffi::CStr;

use super::{Frame, PResult, PluginError, no_image};
use crate::ofx::strings as s;
use crate::ofx::{Effect, host};

/// The host's capabilities as it reports them (`None` / empty: not reported).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostCaps {
    pub name: String,
    pub label: String,
    pub temporal_clip_access: Option<bool>,
    pub contexts: Vec<String>,
    pub pixel_depths: Vec<String>,
}

const OUR_CONTEXTS: [&CStr; 3] = [s::CONTEXT_GENERAL, s::CONTEXT_FILTER, s::CONTEXT_TRANSITION];
const OUR_DEPTHS: [&CStr; 3] = [s::BIT_DEPTH_BYTE, s::BIT_DEPTH_SHORT, s::BIT_DEPTH_FLOAT];

impl HostCaps {
    /// Reads the host's property set (empty caps before setHost/Load, or for a host without one).
    pub fn read() -> HostCaps {
        let Some(p) = host::host_props() else {
            return HostCaps::default();
        };
        HostCaps {
            name: p.get_string(s::PROP_NAME, 0).unwrap_or_default(),
            label: p.get_string(s::PROP_LABEL, 0).unwrap_or_default(),
            temporal_clip_access: p
                .get_int(s::IE_PROP_TEMPORAL_CLIP_ACCESS, 0)
                .ok()
                .map(|v| v != 0),
            contexts: p
                .get_strings(s::IE_PROP_SUPPORTED_CONTEXTS)
                .unwrap_or_default(),
            pixel_depths: p
                .get_strings(s::IE_PROP_SUPPORTED_PIXEL_DEPTHS)
                .unwrap_or_default(),
        }
    }

    /// How messages name the host: "the host 'Label' (name)", "the host 'name'", or "this host".
    pub fn display_name(&self) -> String {
        match (self.label.is_empty(), self.name.is_empty()) {
            (false, false) if self.label != self.name => {
                format!("the host '{}' ({})", self.label, self.name)
            }
            (false, _) => format!("the host '{}'", self.label),
            (true, false) => format!("the host '{}'", self.name),
            (true, true) => "this host".to_string(),
        }
    }

    /// Why the effect cannot work in this host, or `None` when it can (as far as the host says).
    pub fn refusal(&self) -> Option<String> {
        let host = self.display_name();
        if self.temporal_clip_access == Some(false) {
            return Some(format!(
                "svd-inbetween is not offered in {host}: it declares no temporal clip access \
                 (kOfxImageEffectPropTemporalClipAccess = 0), so it can only give the effect the frame being \
                 rendered, while every in-between needs keyframes A and B. Use a host with temporal clip access \
                 (DaVinci Resolve, Natron), or generate the in-betweens with the command line (svd-inbetween \
                 generate --from A.png --to B.png --count N)."
            ));
        }
        let offers = |have: &[String], ours: &[&CStr]| {
            have.is_empty()
                || have
                    .iter()
                    .any(|h| ours.iter().any(|o| o.to_bytes() == h.as_bytes()))
        };
        if !offers(&self.contexts, &OUR_CONTEXTS) {
            return Some(format!(
                "svd-inbetween is not offered in {host}: it serves the contexts {:?}, and the effect needs \
                 General, Filter or Transition.",
                self.contexts
            ));
        }
        if !offers(&self.pixel_depths, &OUR_DEPTHS) {
            return Some(format!(
                "svd-inbetween is not offered in {host}: it supports the pixel depths {:?}, and the effect \
                 handles byte, short and float.",
                self.pixel_depths
            ));
        }
        None
    }
}

/// Describe/DescribeInContext: `Some(reason)` when the host cannot run the effect; the reason is logged to
/// stderr (there is no instance to show a message on yet, and hosts keep their plug-ins' stderr in their log).
pub fn refuse_host() -> Option<String> {
    let why = HostCaps::read().refusal()?;
    eprintln!("svd-inbetween: {why}");
    log::error!("{why}");
    Some(why)
}

/// Fetches keyframe A (time `a`) and keyframe B (time `b`) of one clip for rendering frame `t`, and checks that
/// the host really served two times: both host images are held at once, so one buffer handed out for both is
/// caught; identical pixels are accepted only when the frame at `t` has them too (a static shot).
pub fn fetch_keyframes(
    effect: &Effect,
    clip: &CStr,
    a: f64,
    b: f64,
    t: f64,
) -> PResult<(Frame, Frame)> {
    let c = effect.clip(clip)?;
    let ia = c.image(a)?.ok_or_else(|| no_image(clip, a))?;
    let ib = c.image(b)?.ok_or_else(|| no_image(clip, b))?;
    let (la, lb) = (ia.layout()?, ib.layout()?);
    let same_buffer = a != b && la.data_addr() != 0 && la.data_addr() == lb.data_addr();
    let (image, bounds) = ia.to_rgba_f32()?;
    let fa = Frame { image, bounds };
    let (image, bounds) = ib.to_rgba_f32()?;
    let fb = Frame { image, bounds };
    drop((ia, ib));
    if same_buffer {
        return Err(not_delivered(
            a,
            b,
            t,
            "returned one and the same image buffer for both",
        ));
    }
    if a != b && t != a && t != b && same_pixels(&fa, &fb) {
        // No image at t (a clip that holds only its keyframes): nothing to compare with, so no verdict.
        if let Some(it) = c.image(t)? {
            let (image, bounds) = it.to_rgba_f32()?;
            if !same_pixels(&fa, &Frame { image, bounds }) {
                return Err(not_delivered(
                    a,
                    b,
                    t,
                    "returned identical pictures for both while the frame being rendered differs",
                ));
            }
        }
    }
    Ok((fa, fb))
}

fn same_pixels(x: &Frame, y: &Frame) -> bool {
    x.bounds == y.bounds && x.image.data == y.image.data
}

fn not_delivered(a: f64, b: f64, t: f64, what: &str) -> PluginError {
    let host = HostCaps::read().display_name();
    PluginError::User(format!(
        "Nothing was generated for frame {t}: {host} does not deliver frames at other times than the one it \
         renders. Asked for keyframe A (frame {a}) and keyframe B (frame {b}), it {what}. svd-inbetween needs \
         temporal clip access to read the keyframes. Use a host with temporal clip access (DaVinci Resolve, \
         Natron), or generate the in-betweens with the command line (svd-inbetween generate --from A.png --to \
         B.png --count N)."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> HostCaps {
        HostCaps {
            name: "org.mltframework.openfx".into(),
            label: "MLT".into(),
            temporal_clip_access: Some(true),
            contexts: vec!["OfxImageEffectContextFilter".into()],
            pixel_depths: vec!["OfxBitDepthFloat".into()],
        }
    }

    #[test]
    fn a_host_without_temporal_access_is_refused_and_named() {
        assert_eq!(caps().refusal(), None);
        let c = HostCaps {
            temporal_clip_access: Some(false),
            ..caps()
        };
        let why = c.refusal().expect("refused");
        assert!(
            why.contains("the host 'MLT' (org.mltframework.openfx)"),
            "{why}"
        );
        assert!(
            why.contains("kOfxImageEffectPropTemporalClipAccess = 0"),
            "{why}"
        );
    }

    #[test]
    fn unreported_capabilities_count_as_supported() {
        assert_eq!(HostCaps::default().refusal(), None);
        assert_eq!(HostCaps::default().display_name(), "this host");
    }

    #[test]
    fn contexts_or_depths_we_cannot_use_are_refused() {
        let c = HostCaps {
            contexts: vec!["OfxImageEffectContextGenerator".into()],
            ..caps()
        };
        assert!(c.refusal().unwrap().contains("contexts"));
        let c = HostCaps {
            pixel_depths: vec!["OfxBitDepthHalf".into()],
            ..caps()
        };
        assert!(c.refusal().unwrap().contains("pixel depths"));
    }
}
