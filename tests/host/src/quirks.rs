//! Behaviours of real hosts that cannot serve svd-inbetween, reproduced on demand (research/ofx.md, MLT):
//! - a host property set without temporal clip access (`kOfxImageEffectPropTemporalClipAccess = 0`);
//! - image fetches that ignore the requested time: MLT's `clipGetImage` returns the frame being rendered,
//!   handing out that frame's own buffer; a variant serves the frame being rendered correctly but a copy of one
//!   fixed frame (the clip's first) for any other time;
//! - which messages were posted as persistent ones (setPersistentMessage).
//!
//! The quirks are process-wide switches: a test binary that flips them runs its tests one at a time.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::{Instance, Plugin};

/// What `clipGetImage` serves for a source clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FetchQuirk {
    /// The frame at the requested time (a correct host).
    HonourTime = 0,
    /// The frame being rendered, whatever time was asked, as the clip's own buffer (MLT).
    CurrentFrameSharedBuffer = 1,
    /// The frame being rendered when that time is asked, else a copy of the clip's first frame.
    OtherTimesFirstFrameCopy = 2,
}

static FETCH_QUIRK: AtomicU8 = AtomicU8::new(FetchQuirk::HonourTime as u8);

thread_local! {
    /// The time of the render action running on this thread (the plugin fetches images on the calling thread).
    static RENDER_TIME: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Messages posted with setPersistentMessage: (instance handle, type, text).
pub static PERSISTENT_MESSAGES: Mutex<Vec<(usize, String, String)>> = Mutex::new(Vec::new());

pub fn set_fetch_quirk(q: FetchQuirk) {
    FETCH_QUIRK.store(q as u8, Ordering::SeqCst);
}

pub fn fetch_quirk() -> FetchQuirk {
    match FETCH_QUIRK.load(Ordering::SeqCst) {
        1 => FetchQuirk::CurrentFrameSharedBuffer,
        2 => FetchQuirk::OtherTimesFirstFrameCopy,
        _ => FetchQuirk::HonourTime,
    }
}

pub(crate) fn set_render_time(t: Option<i64>) {
    RENDER_TIME.with(|c| c.set(t));
}

/// The source frame this host serves for a request of `requested` (the clip's first frame is `first`), and
/// whether it hands out the stored frame's own buffer instead of a copy.
pub(crate) fn served_frame(requested: i64, first: Option<i64>) -> (i64, bool) {
    match fetch_quirk() {
        FetchQuirk::HonourTime => (requested, false),
        FetchQuirk::CurrentFrameSharedBuffer => {
            (RENDER_TIME.with(|c| c.get()).unwrap_or(requested), true)
        }
        FetchQuirk::OtherTimesFirstFrameCopy => {
            if RENDER_TIME.with(|c| c.get()) == Some(requested) {
                (requested, false)
            } else {
                (first.unwrap_or(requested), false)
            }
        }
    }
}

pub(crate) fn record_message(handle: usize, ty: &str, text: &str, persistent: bool) {
    if persistent {
        PERSISTENT_MESSAGES
            .lock()
            .unwrap()
            .push((handle, ty.to_string(), text.to_string()));
    }
}

pub(crate) fn forget_persistent_messages(handle: usize) {
    PERSISTENT_MESSAGES
        .lock()
        .unwrap()
        .retain(|m| m.0 != handle);
}

impl Plugin {
    /// Sets the host property `kOfxImageEffectPropTemporalClipAccess` (1 by default), read by the plugin at
    /// Describe.
    pub fn set_temporal_clip_access(&self, on: bool) {
        self.host
            .props
            .set_int("OfxImageEffectPropTemporalClipAccess", on as i32);
    }

    /// Sets the host's name and label (what the plugin's messages call it).
    pub fn set_host_name(&self, name: &str, label: &str) {
        self.host.props.set_str("OfxPropName", name);
        self.host.props.set_str("OfxPropLabel", label);
    }
}

impl Instance {
    /// Messages this instance posted as persistent ones (type, text).
    pub fn persistent_messages(&self) -> Vec<(String, String)> {
        let h = self.obj.handle() as usize;
        PERSISTENT_MESSAGES
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.0 == h)
            .map(|m| (m.1.clone(), m.2.clone()))
            .collect()
    }
}
