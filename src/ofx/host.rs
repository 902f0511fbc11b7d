//! Safe views over the host's suites and handles. Every `unsafe` call into the host is here, each justified.

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;
use std::sync::OnceLock;

use super::strings as s;
use super::sys::*;
use crate::image::ImageF32;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} (OpenFX status {status})")]
pub struct OfxError {
    pub status: OfxStatus,
    pub what: String,
}

pub type OfxResult<T> = Result<T, OfxError>;

fn check(status: OfxStatus, what: impl FnOnce() -> String) -> OfxResult<()> {
    if status == kOfxStatOK as OfxStatus {
        Ok(())
    } else {
        Err(OfxError {
            status,
            what: what(),
        })
    }
}

/// Suite tables fetched in `OfxActionLoad`. The host owns them and keeps them valid while the plugin is loaded.
pub struct Suites {
    pub property: &'static OfxPropertySuiteV1,
    pub effect: &'static OfxImageEffectSuiteV1,
    pub param: &'static OfxParameterSuiteV1,
    pub message_v1: Option<&'static OfxMessageSuiteV1>,
    pub message_v2: Option<&'static OfxMessageSuiteV2>,
    pub progress_v1: Option<&'static OfxProgressSuiteV1>,
    pub progress_v2: Option<&'static OfxProgressSuiteV2>,
}

// SAFETY: the suites are tables of function pointers the host publishes for the whole plugin lifetime; OpenFX
// requires them to be callable from any thread the host calls us on (render threads included).
unsafe impl Send for Suites {}
unsafe impl Sync for Suites {}

static HOST: OnceLock<HostPtr> = OnceLock::new();
static SUITES: OnceLock<Suites> = OnceLock::new();

struct HostPtr(*const OfxHost);
// SAFETY: the OfxHost struct is immutable host data valid for the plugin's lifetime (OpenFX loading sequence).
unsafe impl Send for HostPtr {}
unsafe impl Sync for HostPtr {}

pub fn set_host(host: *const OfxHost) {
    if !host.is_null() {
        let _ = HOST.set(HostPtr(host));
    }
}

/// The host's own property set (name, label, capabilities), from the OfxHost given to setHost; `None` before
/// setHost or when the host gave no property set. Reading it needs the property suite (after Load).
pub fn host_props() -> Option<PropSet> {
    let host = HOST.get()?.0;
    // SAFETY: `host` is the non-null pointer the host gave us in setHost, valid for the plugin's lifetime.
    let h = unsafe { &*host };
    (!h.host.is_null()).then_some(PropSet(h.host))
}

fn fetch<T>(name: &CStr, version: i32) -> Option<&'static T> {
    let host = HOST.get()?.0;
    // SAFETY: `host` is the non-null pointer the host gave us in setHost, valid for the plugin's lifetime.
    let h = unsafe { &*host };
    let f = h.fetchSuite?;
    // SAFETY: fetchSuite is the host's lookup; it returns NULL or a pointer to a suite table of the requested
    // name and version, which has the layout T (checked by the ABI tests in sys.rs) and lives while we are loaded.
    let p = unsafe { f(h.host, name.as_ptr(), version) } as *const T;
    // SAFETY: non-null pointers from fetchSuite point to a valid, immutable suite table (see above).
    if p.is_null() {
        None
    } else {
        Some(unsafe { &*p })
    }
}

/// Fetches the suites (Load action). The property, image-effect and parameter suites are mandatory; message,
/// progress v2 and v1 are optional because several hosts lack some of them (research/ofx.md §1.4).
pub fn load_suites() -> OfxResult<()> {
    if SUITES.get().is_some() {
        return Ok(());
    }
    let missing = |n: &str| OfxError {
        status: kOfxStatErrMissingHostFeature as i32,
        what: format!("host has no {n} suite"),
    };
    let suites = Suites {
        property: fetch(s::SUITE_PROPERTY, 1).ok_or_else(|| missing("property"))?,
        effect: fetch(s::SUITE_IMAGE_EFFECT, 1).ok_or_else(|| missing("image effect"))?,
        param: fetch(s::SUITE_PARAMETER, 1).ok_or_else(|| missing("parameter"))?,
        message_v1: fetch(s::SUITE_MESSAGE, 1),
        message_v2: fetch(s::SUITE_MESSAGE, 2),
        progress_v1: fetch(s::SUITE_PROGRESS, 1),
        progress_v2: fetch(s::SUITE_PROGRESS, 2),
    };
    let _ = SUITES.set(suites);
    Ok(())
}

pub fn suites() -> OfxResult<&'static Suites> {
    SUITES.get().ok_or(OfxError {
        status: kOfxStatErrMissingHostFeature as i32,
        what: "suites not loaded (Load action not received)".into(),
    })
}

macro_rules! call {
    ($suite:expr, $f:ident ( $($arg:expr),* )) => {{
        let f = $suite.$f.ok_or_else(|| OfxError { status: kOfxStatErrMissingHostFeature as i32, what: concat!("host suite lacks ", stringify!($f)).into() })?;
        // SAFETY: f is a host function from a suite table with the declared signature; every pointer argument is
        // either a handle the host gave us for this action or a valid local out-pointer.
        unsafe { f($($arg),*) }
    }};
}

/// A property set (descriptor, instance, clip, image, in/out args).
#[derive(Clone, Copy, Debug)]
pub struct PropSet(pub OfxPropertySetHandle);

impl PropSet {
    fn cname(name: &str) -> CString {
        CString::new(name).unwrap_or_default()
    }

    pub fn get_int(&self, name: &CStr, index: i32) -> OfxResult<i32> {
        let mut v = 0i32;
        let st = call!(
            suites()?.property,
            propGetInt(self.0, name.as_ptr(), index, &mut v)
        );
        check(st, || format!("cannot read int property {name:?}[{index}]"))?;
        Ok(v)
    }

    pub fn get_double(&self, name: &CStr, index: i32) -> OfxResult<f64> {
        let mut v = 0f64;
        let st = call!(
            suites()?.property,
            propGetDouble(self.0, name.as_ptr(), index, &mut v)
        );
        check(st, || {
            format!("cannot read double property {name:?}[{index}]")
        })?;
        Ok(v)
    }

    pub fn get_string(&self, name: &CStr, index: i32) -> OfxResult<String> {
        let mut v: *mut c_char = ptr::null_mut();
        let st = call!(
            suites()?.property,
            propGetString(self.0, name.as_ptr(), index, &mut v)
        );
        check(st, || {
            format!("cannot read string property {name:?}[{index}]")
        })?;
        if v.is_null() {
            return Ok(String::new());
        }
        // SAFETY: the host returned a NUL-terminated string it owns; we copy it before any other host call.
        Ok(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }

    pub fn get_pointer(&self, name: &CStr) -> OfxResult<*mut c_void> {
        let mut v: *mut c_void = ptr::null_mut();
        let st = call!(
            suites()?.property,
            propGetPointer(self.0, name.as_ptr(), 0, &mut v)
        );
        check(st, || format!("cannot read pointer property {name:?}"))?;
        Ok(v)
    }

    /// Every value of a string property (its whole dimension).
    pub fn get_strings(&self, name: &CStr) -> OfxResult<Vec<String>> {
        (0..self.dimension(name)?)
            .map(|i| self.get_string(name, i))
            .collect()
    }

    pub fn dimension(&self, name: &CStr) -> OfxResult<i32> {
        let mut n = 0i32;
        let st = call!(
            suites()?.property,
            propGetDimension(self.0, name.as_ptr(), &mut n)
        );
        check(st, || format!("cannot read dimension of {name:?}"))?;
        Ok(n)
    }

    pub fn get_ints<const N: usize>(&self, name: &CStr) -> OfxResult<[i32; N]> {
        let mut out = [0i32; N];
        for (i, v) in out.iter_mut().enumerate() {
            *v = self.get_int(name, i as i32)?;
        }
        Ok(out)
    }

    pub fn get_doubles<const N: usize>(&self, name: &CStr) -> OfxResult<[f64; N]> {
        let mut out = [0f64; N];
        for (i, v) in out.iter_mut().enumerate() {
            *v = self.get_double(name, i as i32)?;
        }
        Ok(out)
    }

    pub fn set_int(&self, name: &CStr, index: i32, v: i32) -> OfxResult<()> {
        let st = call!(
            suites()?.property,
            propSetInt(self.0, name.as_ptr(), index, v)
        );
        check(st, || format!("cannot set int property {name:?}"))
    }

    pub fn set_double(&self, name: &CStr, index: i32, v: f64) -> OfxResult<()> {
        let st = call!(
            suites()?.property,
            propSetDouble(self.0, name.as_ptr(), index, v)
        );
        check(st, || format!("cannot set double property {name:?}"))
    }

    pub fn set_doubles(&self, name: &CStr, v: &[f64]) -> OfxResult<()> {
        let st = call!(
            suites()?.property,
            propSetDoubleN(self.0, name.as_ptr(), v.len() as i32, v.as_ptr())
        );
        check(st, || format!("cannot set double properties {name:?}"))
    }

    pub fn set_doubles_named(&self, name: &str, v: &[f64]) -> OfxResult<()> {
        let c = Self::cname(name);
        self.set_doubles(&c, v)
    }

    pub fn set_string(&self, name: &CStr, index: i32, v: &str) -> OfxResult<()> {
        let c = CString::new(v.replace('\0', " ")).unwrap_or_default();
        let st = call!(
            suites()?.property,
            propSetString(self.0, name.as_ptr(), index, c.as_ptr())
        );
        check(st, || format!("cannot set string property {name:?}"))
    }

    pub fn set_string_named(&self, name: &str, index: i32, v: &CStr) -> OfxResult<()> {
        let c = Self::cname(name);
        let st = call!(
            suites()?.property,
            propSetString(self.0, c.as_ptr(), index, v.as_ptr())
        );
        check(st, || format!("cannot set string property {name}"))
    }

    pub fn set_cstrs(&self, name: &CStr, values: &[&CStr]) -> OfxResult<()> {
        for (i, v) in values.iter().enumerate() {
            let st = call!(
                suites()?.property,
                propSetString(self.0, name.as_ptr(), i as i32, v.as_ptr())
            );
            check(st, || format!("cannot set string property {name:?}[{i}]"))?;
        }
        Ok(())
    }

    #[allow(
        clippy::not_unsafe_ptr_arg_deref,
        reason = "the host stores the pointer as an opaque value; nothing dereferences it here"
    )]
    pub fn set_pointer(&self, name: &CStr, v: *mut c_void) -> OfxResult<()> {
        let st = call!(
            suites()?.property,
            propSetPointer(self.0, name.as_ptr(), 0, v)
        );
        check(st, || format!("cannot set pointer property {name:?}"))
    }
}

/// An effect descriptor or instance.
#[derive(Clone, Copy, Debug)]
pub struct Effect(pub OfxImageEffectHandle);

impl Effect {
    pub fn props(&self) -> OfxResult<PropSet> {
        let mut p: OfxPropertySetHandle = ptr::null_mut();
        let st = call!(suites()?.effect, getPropertySet(self.0, &mut p));
        check(st, || "cannot get the effect's properties".into())?;
        Ok(PropSet(p))
    }

    pub fn params(&self) -> OfxResult<ParamSet> {
        let mut p: OfxParamSetHandle = ptr::null_mut();
        let st = call!(suites()?.effect, getParamSet(self.0, &mut p));
        check(st, || "cannot get the effect's parameters".into())?;
        Ok(ParamSet(p))
    }

    pub fn define_clip(&self, name: &CStr) -> OfxResult<PropSet> {
        let mut p: OfxPropertySetHandle = ptr::null_mut();
        let st = call!(suites()?.effect, clipDefine(self.0, name.as_ptr(), &mut p));
        check(st, || format!("cannot define clip {name:?}"))?;
        Ok(PropSet(p))
    }

    pub fn clip(&self, name: &CStr) -> OfxResult<Clip> {
        let mut c: OfxImageClipHandle = ptr::null_mut();
        let mut p: OfxPropertySetHandle = ptr::null_mut();
        let st = call!(
            suites()?.effect,
            clipGetHandle(self.0, name.as_ptr(), &mut c, &mut p)
        );
        check(st, || {
            format!("the host has no clip {name:?} on this instance")
        })?;
        Ok(Clip {
            handle: c,
            props: PropSet(p),
        })
    }

    /// The host's "stop now" flag (user cancelled or parameters changed).
    pub fn abort_requested(&self) -> bool {
        let Ok(sut) = suites() else { return false };
        match sut.effect.abort {
            // SAFETY: abort takes the instance handle the host gave us for the current action.
            Some(f) => unsafe { f(self.0) != 0 },
            None => false,
        }
    }

    /// Runs `work` while a helper thread polls the host's abort flag every 25 ms and calls `on_abort` (once)
    /// when it rises, so a long ONNX Runtime call can be terminated mid-call instead of at the next step.
    pub fn with_abort_watcher<R>(&self, on_abort: impl Fn() + Sync, work: impl FnOnce() -> R) -> R {
        struct Handle(OfxImageEffectHandle);
        // SAFETY: the handle is only used to call the host's abort(), a read-only query of the instance's abort
        // state (Natron reads a flag; openfx-runner returns 0), and the scope below ends before the action that
        // owns the handle returns, so the handle outlives the thread.
        unsafe impl Send for Handle {}
        unsafe impl Sync for Handle {}
        impl Handle {
            // A method, so closures capture the whole (Send) wrapper rather than its raw-pointer field.
            fn effect(&self) -> Effect {
                Effect(self.0)
            }
        }
        let handle = Handle(self.0);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let effect = handle.effect();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if effect.abort_requested() {
                        on_abort();
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
            });
            let r = work();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        })
    }

    /// Shows a message to the user (persistent message when the host has message v2). Never fails the caller:
    /// a host without a message suite still gets the text in our log.
    pub fn message(&self, kind: &CStr, text: &str) {
        log::log!(
            if kind == s::MESSAGE_ERROR {
                log::Level::Error
            } else {
                log::Level::Warn
            },
            "{text}"
        );
        let Ok(sut) = suites() else { return };
        let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
        let handle = self.0 as *mut c_void;
        // The text is passed as a "%s" argument, never as the format: user paths may contain '%'.
        if let Some(m) = sut.message_v2.and_then(|m| m.setPersistentMessage)
            && kind == s::MESSAGE_ERROR
        {
            // SAFETY: variadic printf-style host function called with a literal "%s" format and one C string.
            unsafe {
                m(
                    handle,
                    kind.as_ptr(),
                    c"svd-inbetween".as_ptr(),
                    c"%s".as_ptr(),
                    c.as_ptr(),
                )
            };
            return;
        }
        if let Some(m) = sut
            .message_v1
            .and_then(|m| m.message)
            .or_else(|| sut.message_v2.and_then(|m| m.message))
        {
            // SAFETY: as above.
            unsafe {
                m(
                    handle,
                    kind.as_ptr(),
                    c"svd-inbetween".as_ptr(),
                    c"%s".as_ptr(),
                    c.as_ptr(),
                )
            };
        }
    }

    pub fn clear_persistent_message(&self) {
        if let Ok(sut) = suites()
            && let Some(f) = sut.message_v2.and_then(|m| m.clearPersistentMessage)
        {
            // SAFETY: takes the instance handle the host gave us.
            unsafe { f(self.0 as *mut c_void) };
        }
    }

    /// Starts a progress bar (v2, else v1, else nothing). The bar ends when the guard drops.
    pub fn progress(&self, label: &str) -> ProgressBar {
        let c = CString::new(label.replace('\0', " ")).unwrap_or_default();
        let handle = self.0 as *mut c_void;
        let Ok(sut) = suites() else {
            return ProgressBar {
                handle,
                kind: ProgressKind::None,
            };
        };
        if let Some(p) = sut.progress_v2
            && let Some(f) = p.progressStart
        {
            // SAFETY: host function, instance handle, two valid C strings.
            let st = unsafe { f(handle, c.as_ptr(), c"svd-inbetween.generate".as_ptr()) };
            if st == kOfxStatOK as i32 {
                return ProgressBar {
                    handle,
                    kind: ProgressKind::V2(p),
                };
            }
        }
        if let Some(p) = sut.progress_v1
            && let Some(f) = p.progressStart
        {
            // SAFETY: host function, instance handle, a valid C string.
            let st = unsafe { f(handle, c.as_ptr()) };
            if st == kOfxStatOK as i32 {
                return ProgressBar {
                    handle,
                    kind: ProgressKind::V1(p),
                };
            }
        }
        ProgressBar {
            handle,
            kind: ProgressKind::None,
        }
    }
}

enum ProgressKind {
    None,
    V1(&'static OfxProgressSuiteV1),
    V2(&'static OfxProgressSuiteV2),
}

pub struct ProgressBar {
    handle: *mut c_void,
    kind: ProgressKind,
}

impl ProgressBar {
    /// Updates the bar; returns false when the user pressed cancel (kOfxStatReplyNo).
    pub fn update(&self, fraction: f64) -> bool {
        let f = match &self.kind {
            ProgressKind::None => return true,
            ProgressKind::V1(p) => p.progressUpdate,
            ProgressKind::V2(p) => p.progressUpdate,
        };
        match f {
            // SAFETY: host function with the instance handle used in progressStart.
            Some(f) => unsafe {
                f(self.handle, fraction.clamp(0.0, 1.0)) != kOfxStatReplyNo as i32
            },
            None => true,
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        let f = match &self.kind {
            ProgressKind::None => return,
            ProgressKind::V1(p) => p.progressEnd,
            ProgressKind::V2(p) => p.progressEnd,
        };
        if let Some(f) = f {
            // SAFETY: ends the bar this guard started, same handle.
            unsafe { f(self.handle) };
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ParamSet(pub OfxParamSetHandle);

impl ParamSet {
    pub fn define(&self, kind: &CStr, name: &CStr) -> OfxResult<PropSet> {
        let mut p: OfxPropertySetHandle = ptr::null_mut();
        let st = call!(
            suites()?.param,
            paramDefine(self.0, kind.as_ptr(), name.as_ptr(), &mut p)
        );
        check(st, || format!("cannot define parameter {name:?}"))?;
        Ok(PropSet(p))
    }

    pub fn get(&self, name: &CStr) -> OfxResult<Param> {
        let mut h: OfxParamHandle = ptr::null_mut();
        let mut p: OfxPropertySetHandle = ptr::null_mut();
        let st = call!(
            suites()?.param,
            paramGetHandle(self.0, name.as_ptr(), &mut h, &mut p)
        );
        check(st, || format!("parameter {name:?} is missing"))?;
        Ok(Param(h))
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Param(pub OfxParamHandle);

impl Param {
    pub fn int_at(&self, t: f64) -> OfxResult<i32> {
        let mut v = 0i32;
        let st = call!(
            suites()?.param,
            paramGetValueAtTime(self.0, t, &mut v as *mut i32)
        );
        check(st, || "cannot read an integer parameter".into())?;
        Ok(v)
    }

    pub fn double_at(&self, t: f64) -> OfxResult<f64> {
        let mut v = 0f64;
        let st = call!(
            suites()?.param,
            paramGetValueAtTime(self.0, t, &mut v as *mut f64)
        );
        check(st, || "cannot read a double parameter".into())?;
        Ok(v)
    }

    pub fn string_at(&self, t: f64) -> OfxResult<String> {
        let mut v: *mut c_char = ptr::null_mut();
        let st = call!(
            suites()?.param,
            paramGetValueAtTime(self.0, t, &mut v as *mut *mut c_char)
        );
        check(st, || "cannot read a string parameter".into())?;
        if v.is_null() {
            return Ok(String::new());
        }
        // SAFETY: host-owned NUL-terminated string, copied immediately.
        Ok(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Clip {
    handle: OfxImageClipHandle,
    pub props: PropSet,
}

/// An integer rectangle in OpenFX pixel coordinates (half open, y up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RectI {
    pub x1: i32,
    pub y1: i32,
    pub x2: i32,
    pub y2: i32,
}

impl RectI {
    pub fn width(&self) -> usize {
        (self.x2 - self.x1).max(0) as usize
    }
    pub fn height(&self) -> usize {
        (self.y2 - self.y1).max(0) as usize
    }
    pub fn intersect(&self, o: &RectI) -> RectI {
        RectI {
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
            x2: self.x2.min(o.x2),
            y2: self.y2.min(o.y2),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.x2 <= self.x1 || self.y2 <= self.y1
    }
}

impl Clip {
    /// Fetches the clip's image at `time`; `None` when the host has no image there (an unconnected clip, a time
    /// outside the clip). The image is released when the returned value drops.
    pub fn image(&self, time: f64) -> OfxResult<Option<Image>> {
        let mut h: OfxPropertySetHandle = ptr::null_mut();
        let st = call!(
            suites()?.effect,
            clipGetImage(self.handle, time, ptr::null(), &mut h)
        );
        if st != kOfxStatOK as i32 || h.is_null() {
            return Ok(None);
        }
        let img = Image {
            props: PropSet(h),
            released: false,
        };
        Ok(Some(img))
    }

    pub fn region_of_definition(&self, time: f64) -> OfxResult<[f64; 4]> {
        let mut r = OfxRectD::default();
        let st = call!(
            suites()?.effect,
            clipGetRegionOfDefinition(self.handle, time, &mut r)
        );
        check(st, || "cannot read the clip's region of definition".into())?;
        Ok([r.x1, r.y1, r.x2, r.y2])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    Byte,
    Short,
    Float,
}

impl Depth {
    fn bytes(self) -> usize {
        match self {
            Depth::Byte => 1,
            Depth::Short => 2,
            Depth::Float => 4,
        }
    }
}

/// An image fetched from a clip; released (clipReleaseImage) on drop, so it can never outlive the action.
pub struct Image {
    props: PropSet,
    released: bool,
}

/// Raw layout of an image's pixels.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub bounds: RectI,
    pub row_bytes: isize,
    pub depth: Depth,
    pub components: usize,
    data: *mut u8,
}

impl Layout {
    /// The host buffer's address, only to compare images (two fetches held at once that share one buffer are
    /// one image); never dereferenced outside this module.
    pub fn data_addr(&self) -> usize {
        self.data as usize
    }
}

impl Image {
    pub fn layout(&self) -> OfxResult<Layout> {
        layout_of(self.props)
    }

    /// The image as RGBA f32 [0,1] (byte/255, short/65535, float as is; RGB gets alpha 1), rows top to bottom,
    /// covering its bounds.
    pub fn to_rgba_f32(&self) -> OfxResult<(ImageF32, RectI)> {
        let l = self.layout()?;
        Ok((read_rgba(&l), l.bounds))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if let Ok(sut) = suites()
            && let Some(f) = sut.effect.clipReleaseImage
        {
            // SAFETY: releases the handle clipGetImage returned, exactly once (guarded by `released`).
            unsafe { f(self.props.0) };
        }
    }
}

fn parse_depth(s_: &str) -> OfxResult<Depth> {
    match s_ {
        "OfxBitDepthByte" => Ok(Depth::Byte),
        "OfxBitDepthShort" => Ok(Depth::Short),
        "OfxBitDepthFloat" => Ok(Depth::Float),
        other => Err(OfxError {
            status: kOfxStatErrImageFormat as i32,
            what: format!("unsupported pixel depth '{other}'"),
        }),
    }
}

fn parse_components(s_: &str) -> OfxResult<usize> {
    match s_ {
        "OfxImageComponentRGBA" => Ok(4),
        "OfxImageComponentRGB" => Ok(3),
        other => Err(OfxError {
            status: kOfxStatErrImageFormat as i32,
            what: format!("unsupported components '{other}'"),
        }),
    }
}

fn layout_of(p: PropSet) -> OfxResult<Layout> {
    let b = p.get_ints::<4>(s::IMAGE_PROP_BOUNDS)?;
    let row_bytes = p.get_int(s::IMAGE_PROP_ROW_BYTES, 0)? as isize;
    let depth = parse_depth(&p.get_string(s::IE_PROP_PIXEL_DEPTH, 0)?)?;
    let components = parse_components(&p.get_string(s::IE_PROP_COMPONENTS, 0)?)?;
    let data = p.get_pointer(s::IMAGE_PROP_DATA)? as *mut u8;
    let bounds = RectI {
        x1: b[0],
        y1: b[1],
        x2: b[2],
        y2: b[3],
    };
    if data.is_null() && !bounds.is_empty() {
        return Err(OfxError {
            status: kOfxStatErrImageFormat as i32,
            what: "image has no pixel data".into(),
        });
    }
    if (row_bytes.unsigned_abs()) < bounds.width() * components * depth.bytes() {
        return Err(OfxError {
            status: kOfxStatErrImageFormat as i32,
            what: format!("row bytes {row_bytes} too small for the image width"),
        });
    }
    Ok(Layout {
        bounds,
        row_bytes,
        depth,
        components,
        data,
    })
}

fn row_ptr(l: &Layout, y: i32) -> *mut u8 {
    // Row y of the image starts (y − y1)·rowBytes from the data pointer; rowBytes may be negative.
    l.data
        .wrapping_offset((y - l.bounds.y1) as isize * l.row_bytes)
}

fn read_rgba(l: &Layout) -> ImageF32 {
    let (w, h) = (l.bounds.width(), l.bounds.height());
    let mut out = ImageF32::new(w, h, 4);
    for r in 0..h {
        let y = l.bounds.y2 - 1 - r as i32; // ImageF32 row 0 is the top row
        let row = row_ptr(l, y);
        for x in 0..w {
            let mut px = [0.0f32, 0.0, 0.0, 1.0];
            for (c, v) in px.iter_mut().enumerate().take(l.components) {
                let i = x * l.components + c;
                // SAFETY: (x, y) lies inside the image bounds and the row holds width·components samples
                // (checked in layout_of), so the read stays inside the host's buffer.
                *v = unsafe {
                    match l.depth {
                        Depth::Byte => *row.add(i) as f32 / 255.0,
                        Depth::Short => {
                            (row as *const u16).add(i).read_unaligned() as f32 / 65535.0
                        }
                        Depth::Float => (row as *const f32).add(i).read_unaligned(),
                    }
                };
            }
            out.data[(r * w + x) * 4..(r * w + x) * 4 + 4].copy_from_slice(&px);
        }
    }
    out
}

/// The output image of a render.
pub struct OutputImage(Image);

impl Clip {
    pub fn output_image(&self, time: f64) -> OfxResult<OutputImage> {
        self.image(time)?.map(OutputImage).ok_or(OfxError {
            status: kOfxStatFailed as i32,
            what: "the host gave no output image".into(),
        })
    }
}

impl OutputImage {
    pub fn layout(&self) -> OfxResult<Layout> {
        self.0.layout()
    }

    /// Writes every pixel of `window ∩ bounds` from `pixel(x, y)` (OpenFX pixel coordinates, RGBA [0,1] for
    /// byte/short — values are clamped and rounded there — and as is for float).
    pub fn write(
        &mut self,
        window: RectI,
        mut pixel: impl FnMut(i32, i32) -> [f32; 4],
    ) -> OfxResult<()> {
        let l = self.layout()?;
        let area = window.intersect(&l.bounds);
        if area.is_empty() {
            return Ok(());
        }
        for y in area.y1..area.y2 {
            let row = row_ptr(&l, y);
            for x in area.x1..area.x2 {
                let px = pixel(x, y);
                let base = (x - l.bounds.x1) as usize * l.components;
                for (c, v) in px.iter().enumerate().take(l.components) {
                    let i = base + c;
                    // SAFETY: (x, y) is inside the image bounds (intersected above) and the row holds
                    // width·components samples (layout_of), so the write stays inside the host's buffer.
                    unsafe {
                        match l.depth {
                            Depth::Byte => *row.add(i) = crate::image::to_u8(*v),
                            Depth::Short => (row as *mut u16).add(i).write_unaligned(to_u16(*v)),
                            Depth::Float => (row as *mut f32).add(i).write_unaligned(*v),
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn to_u16(v: f32) -> u16 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 65535.0).round() as u16
    }
}
