//! The host's suite tables. Each function reads its handle as the host object it created (`#[repr(C)]`, property
//! set first), so a wrong handle from the plugin would be a plugin bug this host makes visible.
#![allow(non_snake_case)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::atomic::Ordering;

use crate::*;

const OK: OfxStatus = kOfxStatOK as OfxStatus;
const UNKNOWN: OfxStatus = kOfxStatErrUnknown as OfxStatus;
const BAD_INDEX: OfxStatus = kOfxStatErrBadIndex as OfxStatus;
const FAILED: OfxStatus = kOfxStatFailed as OfxStatus;
const UNSUPPORTED: OfxStatus = kOfxStatErrUnsupported as OfxStatus;

unsafe fn props<'a>(h: OfxPropertySetHandle) -> &'a Props {
    // SAFETY (caller): h was created by this host from an object whose first field is a Props.
    unsafe { &*(h as *const Props) }
}

unsafe fn name(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn set_value(h: OfxPropertySetHandle, prop: *const c_char, index: c_int, v: Value) -> OfxStatus {
    if h.is_null() || prop.is_null() || index < 0 {
        return kOfxStatErrBadHandle as OfxStatus;
    }
    let (p, n) = unsafe { (props(h), name(prop)) };
    let mut map = p.map.lock().unwrap();
    let e = map.entry(n).or_default();
    let i = index as usize;
    if e.len() <= i {
        e.resize(i + 1, v.clone());
    }
    e[i] = v;
    OK
}

fn get_value(
    h: OfxPropertySetHandle,
    prop: *const c_char,
    index: c_int,
) -> Result<Value, OfxStatus> {
    if h.is_null() || prop.is_null() {
        return Err(kOfxStatErrBadHandle as OfxStatus);
    }
    let (p, n) = unsafe { (props(h), name(prop)) };
    let map = p.map.lock().unwrap();
    let e = map.get(&n).ok_or(UNKNOWN)?;
    e.get(index as usize).cloned().ok_or(BAD_INDEX)
}

unsafe extern "C" fn propSetPointer(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: *mut c_void,
) -> OfxStatus {
    set_value(h, p, i, Value::Ptr(v as usize))
}
unsafe extern "C" fn propSetString(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: *const c_char,
) -> OfxStatus {
    let s = if v.is_null() {
        CString::default()
    } else {
        unsafe { CStr::from_ptr(v) }.to_owned()
    };
    set_value(h, p, i, Value::Str(s))
}
unsafe extern "C" fn propSetDouble(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: f64,
) -> OfxStatus {
    set_value(h, p, i, Value::Double(v))
}
unsafe extern "C" fn propSetInt(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: c_int,
) -> OfxStatus {
    set_value(h, p, i, Value::Int(v))
}
unsafe extern "C" fn propSetPointerN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *const *mut c_void,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propSetPointer(h, p, i, *v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propSetStringN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *const *const c_char,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propSetString(h, p, i, *v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propSetDoubleN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *const f64,
) -> OfxStatus {
    if !h.is_null() && !p.is_null() {
        unsafe { props(h) }
            .map
            .lock()
            .unwrap()
            .remove(&unsafe { name(p) });
    }
    for i in 0..n {
        let st = unsafe { propSetDouble(h, p, i, *v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propSetIntN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *const c_int,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propSetInt(h, p, i, *v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propGetPointer(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: *mut *mut c_void,
) -> OfxStatus {
    match get_value(h, p, i) {
        Ok(Value::Ptr(x)) => {
            unsafe { *v = x as *mut c_void };
            OK
        }
        Ok(_) => kOfxStatErrValue as OfxStatus,
        Err(e) => e,
    }
}
unsafe extern "C" fn propGetString(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: *mut *mut c_char,
) -> OfxStatus {
    if h.is_null() || p.is_null() {
        return kOfxStatErrBadHandle as OfxStatus;
    }
    let (ps, n) = unsafe { (props(h), name(p)) };
    let map = ps.map.lock().unwrap();
    match map.get(&n).and_then(|e| e.get(i as usize)) {
        // The pointer stays valid until the property is set again (as in real hosts).
        Some(Value::Str(s)) => {
            unsafe { *v = s.as_ptr() as *mut c_char };
            OK
        }
        Some(_) => kOfxStatErrValue as OfxStatus,
        None if map.contains_key(&n) => BAD_INDEX,
        None => UNKNOWN,
    }
}
unsafe extern "C" fn propGetDouble(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: *mut f64,
) -> OfxStatus {
    match get_value(h, p, i) {
        Ok(Value::Double(x)) => {
            unsafe { *v = x };
            OK
        }
        Ok(Value::Int(x)) => {
            unsafe { *v = x as f64 };
            OK
        }
        Ok(_) => kOfxStatErrValue as OfxStatus,
        Err(e) => e,
    }
}
unsafe extern "C" fn propGetInt(
    h: OfxPropertySetHandle,
    p: *const c_char,
    i: c_int,
    v: *mut c_int,
) -> OfxStatus {
    match get_value(h, p, i) {
        Ok(Value::Int(x)) => {
            unsafe { *v = x };
            OK
        }
        Ok(_) => kOfxStatErrValue as OfxStatus,
        Err(e) => e,
    }
}
unsafe extern "C" fn propGetPointerN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *mut *mut c_void,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propGetPointer(h, p, i, v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propGetStringN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *mut *mut c_char,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propGetString(h, p, i, v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propGetDoubleN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *mut f64,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propGetDouble(h, p, i, v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propGetIntN(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: c_int,
    v: *mut c_int,
) -> OfxStatus {
    for i in 0..n {
        let st = unsafe { propGetInt(h, p, i, v.add(i as usize)) };
        if st != OK {
            return st;
        }
    }
    OK
}
unsafe extern "C" fn propReset(h: OfxPropertySetHandle, p: *const c_char) -> OfxStatus {
    if h.is_null() || p.is_null() {
        return kOfxStatErrBadHandle as OfxStatus;
    }
    unsafe { props(h) }
        .map
        .lock()
        .unwrap()
        .remove(&unsafe { name(p) });
    OK
}
unsafe extern "C" fn propGetDimension(
    h: OfxPropertySetHandle,
    p: *const c_char,
    n: *mut c_int,
) -> OfxStatus {
    if h.is_null() || p.is_null() {
        return kOfxStatErrBadHandle as OfxStatus;
    }
    let (ps, nm) = unsafe { (props(h), name(p)) };
    match ps.map.lock().unwrap().get(&nm) {
        Some(e) => {
            unsafe { *n = e.len() as c_int };
            OK
        }
        None => UNKNOWN,
    }
}

pub static PROPERTY_SUITE: OfxPropertySuiteV1 = OfxPropertySuiteV1 {
    propSetPointer: Some(propSetPointer),
    propSetString: Some(propSetString),
    propSetDouble: Some(propSetDouble),
    propSetInt: Some(propSetInt),
    propSetPointerN: Some(propSetPointerN),
    propSetStringN: Some(propSetStringN),
    propSetDoubleN: Some(propSetDoubleN),
    propSetIntN: Some(propSetIntN),
    propGetPointer: Some(propGetPointer),
    propGetString: Some(propGetString),
    propGetDouble: Some(propGetDouble),
    propGetInt: Some(propGetInt),
    propGetPointerN: Some(propGetPointerN),
    propGetStringN: Some(propGetStringN),
    propGetDoubleN: Some(propGetDoubleN),
    propGetIntN: Some(propGetIntN),
    propReset: Some(propReset),
    propGetDimension: Some(propGetDimension),
};

// ------------------------------------------------------------------------------------------- image effect
unsafe fn effect<'a>(h: OfxImageEffectHandle) -> &'a EffectObj {
    unsafe { &*(h as *const EffectObj) }
}

unsafe extern "C" fn getPropertySet(
    e: OfxImageEffectHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    unsafe { *out = effect(e).props.handle() };
    OK
}
unsafe extern "C" fn getParamSet(
    e: OfxImageEffectHandle,
    out: *mut OfxParamSetHandle,
) -> OfxStatus {
    unsafe { *out = &effect(e).params as *const ParamSetObj as OfxParamSetHandle };
    OK
}
unsafe extern "C" fn clipDefine(
    e: OfxImageEffectHandle,
    n: *const c_char,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let eff = unsafe { effect(e) };
    let nm = unsafe { name(n) };
    let clip = Box::new(ClipObj {
        props: Props::default(),
        name: nm.clone(),
        frames: Default::default(),
        rendered: Default::default(),
        out_format: std::sync::Mutex::new((Depth::Float, 4, false)),
        rod: std::sync::Mutex::new([0, 0, 0, 0]),
        outstanding: std::sync::atomic::AtomicI64::new(0),
    });
    clip.props.set_str("OfxPropName", &nm);
    unsafe { *out = clip.props.handle() };
    eff.clips.lock().unwrap().push(clip);
    OK
}
unsafe extern "C" fn clipGetHandle(
    e: OfxImageEffectHandle,
    n: *const c_char,
    clip: *mut OfxImageClipHandle,
    p: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let eff = unsafe { effect(e) };
    match eff.clip(&unsafe { name(n) }) {
        Some(c) => {
            unsafe {
                *clip = c as OfxImageClipHandle;
                if !p.is_null() {
                    *p = (*c).props.handle();
                }
            }
            OK
        }
        None => UNKNOWN,
    }
}
unsafe extern "C" fn clipGetPropertySet(
    c: OfxImageClipHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    unsafe { *out = (*(c as *const ClipObj)).props.handle() };
    OK
}
unsafe extern "C" fn clipGetImage(
    c: OfxImageClipHandle,
    time: OfxTime,
    _region: *const OfxRectD,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let clip = unsafe { &*(c as *const ClipObj) };
    let t = time.round() as i64;
    // Set when the host hands out a stored frame's own buffer (quirks::FetchQuirk::CurrentFrameSharedBuffer).
    let mut shared_buffer: Option<usize> = None;
    let (image, is_output) = if clip.name == "Output" {
        let (d, comps, top_down) = *clip.out_format.lock().unwrap();
        (
            HostImage::new(*clip.rod.lock().unwrap(), d, comps, top_down),
            true,
        )
    } else {
        let frames = clip.frames.lock().unwrap();
        let (served, shared) = crate::quirks::served_frame(t, frames.keys().min().copied());
        match frames.get(&served) {
            Some(img) => {
                if shared {
                    shared_buffer = Some(img.data.as_ptr() as usize);
                }
                ((**img).clone(), false)
            }
            None => return FAILED,
        }
    };
    let mut obj = Box::new(ImageObj {
        props: Props::default(),
        image,
        clip: clip as *const ClipObj,
        time: t,
        is_output,
    });
    let (mut ptr, rb) = obj.image.ofx_layout();
    if let Some(base) = shared_buffer {
        // Same layout, the stored frame's bytes: the plugin only reads source images. The Arc in clip.frames
        // keeps them alive while the instance lives.
        ptr = (base + (ptr as usize - obj.image.data.as_ptr() as usize)) as *mut u8;
    }
    let b = obj.image.bounds;
    obj.props
        .set("OfxImagePropData", vec![Value::Ptr(ptr as usize)]);
    obj.props.set(
        "OfxImagePropBounds",
        b.iter().map(|v| Value::Int(*v)).collect(),
    );
    obj.props.set(
        "OfxImagePropRegionOfDefinition",
        b.iter().map(|v| Value::Int(*v)).collect(),
    );
    obj.props.set_int("OfxImagePropRowBytes", rb);
    obj.props
        .set_str("OfxImageEffectPropPixelDepth", obj.image.depth.ofx());
    obj.props.set_str(
        "OfxImageEffectPropComponents",
        if obj.image.components == 4 {
            "OfxImageComponentRGBA"
        } else {
            "OfxImageComponentRGB"
        },
    );
    obj.props
        .set_doubles("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
    let h = Box::into_raw(obj);
    OUTSTANDING_IMAGES.fetch_add(1, Ordering::SeqCst);
    clip.outstanding.fetch_add(1, Ordering::SeqCst);
    unsafe { *out = (*h).props.handle() };
    OK
}
unsafe extern "C" fn clipReleaseImage(h: OfxPropertySetHandle) -> OfxStatus {
    if h.is_null() {
        return kOfxStatErrBadHandle as OfxStatus;
    }
    let obj = unsafe { Box::from_raw(h as *mut ImageObj) };
    OUTSTANDING_IMAGES.fetch_sub(1, Ordering::SeqCst);
    let clip = unsafe { &*obj.clip };
    clip.outstanding.fetch_sub(1, Ordering::SeqCst);
    if obj.is_output {
        clip.rendered.lock().unwrap().insert(obj.time, obj.image);
    }
    OK
}
unsafe extern "C" fn clipGetRegionOfDefinition(
    c: OfxImageClipHandle,
    _t: OfxTime,
    out: *mut OfxRectD,
) -> OfxStatus {
    let r = *unsafe { &*(c as *const ClipObj) }.rod.lock().unwrap();
    unsafe {
        *out = OfxRectD {
            x1: r[0] as f64,
            y1: r[1] as f64,
            x2: r[2] as f64,
            y2: r[3] as f64,
        }
    };
    OK
}
unsafe extern "C" fn abort_(e: OfxImageEffectHandle) -> c_int {
    unsafe { effect(e) }.abort.load(Ordering::SeqCst) as c_int
}
unsafe extern "C" fn imageMemoryAlloc(
    _e: OfxImageEffectHandle,
    _n: usize,
    _m: *mut OfxImageMemoryHandle,
) -> OfxStatus {
    UNSUPPORTED
}
unsafe extern "C" fn imageMemoryFree(_m: OfxImageMemoryHandle) -> OfxStatus {
    UNSUPPORTED
}
unsafe extern "C" fn imageMemoryLock(_m: OfxImageMemoryHandle, _p: *mut *mut c_void) -> OfxStatus {
    UNSUPPORTED
}
unsafe extern "C" fn imageMemoryUnlock(_m: OfxImageMemoryHandle) -> OfxStatus {
    UNSUPPORTED
}

pub static EFFECT_SUITE: OfxImageEffectSuiteV1 = OfxImageEffectSuiteV1 {
    getPropertySet: Some(getPropertySet),
    getParamSet: Some(getParamSet),
    clipDefine: Some(clipDefine),
    clipGetHandle: Some(clipGetHandle),
    clipGetPropertySet: Some(clipGetPropertySet),
    clipGetImage: Some(clipGetImage),
    clipReleaseImage: Some(clipReleaseImage),
    clipGetRegionOfDefinition: Some(clipGetRegionOfDefinition),
    abort: Some(abort_),
    imageMemoryAlloc: Some(imageMemoryAlloc),
    imageMemoryFree: Some(imageMemoryFree),
    imageMemoryLock: Some(imageMemoryLock),
    imageMemoryUnlock: Some(imageMemoryUnlock),
};

// ------------------------------------------------------------------------------------------- parameters
unsafe extern "C" {
    fn host_paramGetValue(p: OfxParamHandle, ...) -> OfxStatus;
    fn host_paramGetValueAtTime(p: OfxParamHandle, t: OfxTime, ...) -> OfxStatus;
    fn host_paramGetDerivative(p: OfxParamHandle, t: OfxTime, ...) -> OfxStatus;
    fn host_paramGetIntegral(p: OfxParamHandle, t1: OfxTime, t2: OfxTime, ...) -> OfxStatus;
    fn host_paramSetValue(p: OfxParamHandle, ...) -> OfxStatus;
    fn host_paramSetValueAtTime(p: OfxParamHandle, t: OfxTime, ...) -> OfxStatus;
    fn host_message_v(
        h: *mut c_void,
        ty: *const c_char,
        id: *const c_char,
        fmt: *const c_char,
        ...
    ) -> OfxStatus;
    fn host_persistent_message_v(
        h: *mut c_void,
        ty: *const c_char,
        id: *const c_char,
        fmt: *const c_char,
        ...
    ) -> OfxStatus;
}

unsafe fn param<'a>(p: OfxParamHandle) -> &'a ParamObj {
    unsafe { &*(p as *const ParamObj) }
}

unsafe extern "C" fn paramDefine(
    ps: OfxParamSetHandle,
    ty: *const c_char,
    n: *const c_char,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let set = unsafe { &*(ps as *const ParamSetObj) };
    let (kind, nm) = unsafe { (name(ty), name(n)) };
    if set.params.lock().unwrap().iter().any(|p| p.name == nm) {
        return kOfxStatErrExists as OfxStatus;
    }
    let p = Box::new(ParamObj {
        props: Props::default(),
        name: nm.clone(),
        kind: kind.clone(),
        value: std::sync::Mutex::new(None),
    });
    p.props.set_str("OfxPropName", &nm);
    p.props.set_str("OfxParamPropType", &kind);
    if !out.is_null() {
        unsafe { *out = p.props.handle() };
    }
    set.params.lock().unwrap().push(p);
    OK
}
unsafe extern "C" fn paramGetHandle(
    ps: OfxParamSetHandle,
    n: *const c_char,
    out: *mut OfxParamHandle,
    pr: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let set = unsafe { &*(ps as *const ParamSetObj) };
    let nm = unsafe { name(n) };
    let params = set.params.lock().unwrap();
    match params.iter().find(|p| p.name == nm) {
        Some(p) => {
            unsafe {
                *out = &**p as *const ParamObj as OfxParamHandle;
                if !pr.is_null() {
                    *pr = p.props.handle();
                }
            }
            OK
        }
        None => UNKNOWN,
    }
}
unsafe extern "C" fn paramSetGetPropertySet(
    ps: OfxParamSetHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    unsafe { *out = (*(ps as *const ParamSetObj)).props.handle() };
    OK
}
unsafe extern "C" fn paramGetPropertySet(
    p: OfxParamHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    unsafe { *out = param(p).props.handle() };
    OK
}
unsafe extern "C" fn paramGetNumKeys(_p: OfxParamHandle, n: *mut c_uint) -> OfxStatus {
    unsafe { *n = 0 };
    OK
}
unsafe extern "C" fn paramGetKeyTime(
    _p: OfxParamHandle,
    _n: c_uint,
    _t: *mut OfxTime,
) -> OfxStatus {
    BAD_INDEX
}
unsafe extern "C" fn paramGetKeyIndex(
    _p: OfxParamHandle,
    _t: OfxTime,
    _d: c_int,
    _i: *mut c_int,
) -> OfxStatus {
    FAILED
}
unsafe extern "C" fn paramDeleteKey(_p: OfxParamHandle, _t: OfxTime) -> OfxStatus {
    OK
}
unsafe extern "C" fn paramDeleteAllKeys(_p: OfxParamHandle) -> OfxStatus {
    OK
}
unsafe extern "C" fn paramCopy(
    _a: OfxParamHandle,
    _b: OfxParamHandle,
    _o: OfxTime,
    _r: *const OfxRangeD,
) -> OfxStatus {
    UNSUPPORTED
}
unsafe extern "C" fn paramEditBegin(_p: OfxParamSetHandle, _n: *const c_char) -> OfxStatus {
    OK
}
unsafe extern "C" fn paramEditEnd(_p: OfxParamSetHandle) -> OfxStatus {
    OK
}

pub static PARAM_SUITE: OfxParameterSuiteV1 = OfxParameterSuiteV1 {
    paramDefine: Some(paramDefine),
    paramGetHandle: Some(paramGetHandle),
    paramSetGetPropertySet: Some(paramSetGetPropertySet),
    paramGetPropertySet: Some(paramGetPropertySet),
    paramGetValue: Some(host_paramGetValue),
    paramGetValueAtTime: Some(host_paramGetValueAtTime),
    paramGetDerivative: Some(host_paramGetDerivative),
    paramGetIntegral: Some(host_paramGetIntegral),
    paramSetValue: Some(host_paramSetValue),
    paramSetValueAtTime: Some(host_paramSetValueAtTime),
    paramGetNumKeys: Some(paramGetNumKeys),
    paramGetKeyTime: Some(paramGetKeyTime),
    paramGetKeyIndex: Some(paramGetKeyIndex),
    paramDeleteKey: Some(paramDeleteKey),
    paramDeleteAllKeys: Some(paramDeleteAllKeys),
    paramCopy: Some(paramCopy),
    paramEditBegin: Some(paramEditBegin),
    paramEditEnd: Some(paramEditEnd),
};

fn param_value(p: &ParamObj, index: usize) -> Option<Value> {
    if let Some(v) = p.value.lock().unwrap().as_ref() {
        return v.get(index).cloned();
    }
    p.props
        .get("OfxParamPropDefault")
        .and_then(|v| v.get(index).cloned())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_kind(p: OfxParamHandle, dims: *mut c_int) -> c_int {
    unsafe { *dims = 1 };
    match unsafe { param(p) }.kind.as_str() {
        "OfxParamTypeInteger" | "OfxParamTypeChoice" | "OfxParamTypeBoolean" => 0,
        "OfxParamTypeDouble" => 1,
        "OfxParamTypeString" => 2,
        _ => -1,
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_get_int(
    p: OfxParamHandle,
    _t: f64,
    i: c_int,
    v: *mut c_int,
) -> OfxStatus {
    match param_value(unsafe { param(p) }, i as usize) {
        Some(Value::Int(x)) => {
            unsafe { *v = x };
            OK
        }
        _ => UNKNOWN,
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_get_double(
    p: OfxParamHandle,
    _t: f64,
    i: c_int,
    v: *mut f64,
) -> OfxStatus {
    match param_value(unsafe { param(p) }, i as usize) {
        Some(Value::Double(x)) => {
            unsafe { *v = x };
            OK
        }
        Some(Value::Int(x)) => {
            unsafe { *v = x as f64 };
            OK
        }
        _ => UNKNOWN,
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_get_string(
    p: OfxParamHandle,
    _t: f64,
    v: *mut *mut c_char,
) -> OfxStatus {
    let prm = unsafe { param(p) };
    // Point into the stored value (or default) so the pointer outlives this call, as hosts guarantee.
    let guard = prm.value.lock().unwrap();
    if let Some(Value::Str(s)) = guard.as_ref().and_then(|v| v.first()) {
        unsafe { *v = s.as_ptr() as *mut c_char };
        return OK;
    }
    drop(guard);
    let map = prm.props.map.lock().unwrap();
    match map.get("OfxParamPropDefault").and_then(|v| v.first()) {
        Some(Value::Str(s)) => {
            unsafe { *v = s.as_ptr() as *mut c_char };
            OK
        }
        _ => UNKNOWN,
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_set_int(p: OfxParamHandle, _i: c_int, v: c_int) -> OfxStatus {
    *unsafe { param(p) }.value.lock().unwrap() = Some(vec![Value::Int(v)]);
    OK
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_set_double(p: OfxParamHandle, _i: c_int, v: f64) -> OfxStatus {
    *unsafe { param(p) }.value.lock().unwrap() = Some(vec![Value::Double(v)]);
    OK
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_param_set_string(p: OfxParamHandle, v: *const c_char) -> OfxStatus {
    *unsafe { param(p) }.value.lock().unwrap() =
        Some(vec![Value::Str(unsafe { CStr::from_ptr(v) }.to_owned())]);
    OK
}

// ------------------------------------------------------------------------------------------- messages, progress
/// Messages sent with a NULL handle (no instance), e.g. from Load.
pub static GLOBAL_MESSAGES: std::sync::Mutex<Vec<(String, String)>> =
    std::sync::Mutex::new(Vec::new());

#[unsafe(no_mangle)]
pub unsafe extern "C" fn host_message(
    h: *mut c_void,
    ty: *const c_char,
    _id: *const c_char,
    text: *const c_char,
    persistent: c_int,
) -> OfxStatus {
    let (ty, text) = unsafe { (name(ty), name(text)) };
    crate::quirks::record_message(h as usize, &ty, &text, persistent != 0);
    if std::env::var_os("OFX_TEST_HOST_VERBOSE").is_some() {
        eprintln!("[host message] {ty}: {text}");
    }
    if h.is_null() {
        GLOBAL_MESSAGES.lock().unwrap().push((ty, text));
    } else {
        unsafe { &*(h as *const EffectObj) }
            .messages
            .lock()
            .unwrap()
            .push((ty, text));
    }
    OK
}
unsafe extern "C" fn clearPersistentMessage(_h: *mut c_void) -> OfxStatus {
    OK
}

pub static MESSAGE_V1: OfxMessageSuiteV1 = OfxMessageSuiteV1 {
    message: Some(host_message_v),
};
pub static MESSAGE_V2: OfxMessageSuiteV2 = OfxMessageSuiteV2 {
    message: Some(host_message_v),
    setPersistentMessage: Some(host_persistent_message_v),
    clearPersistentMessage: Some(clearPersistentMessage),
};

unsafe extern "C" fn progressStartV1(h: *mut c_void, label: *const c_char) -> OfxStatus {
    let label = unsafe { name(label) };
    let mut log = unsafe { &*(h as *const EffectObj) }
        .progress
        .lock()
        .unwrap();
    log.starts += 1;
    log.labels.push(label);
    OK
}
unsafe extern "C" fn progressStartV2(
    h: *mut c_void,
    label: *const c_char,
    _id: *const c_char,
) -> OfxStatus {
    unsafe { progressStartV1(h, label) }
}
unsafe extern "C" fn progressUpdate(h: *mut c_void, p: f64) -> OfxStatus {
    let e = unsafe { &*(h as *const EffectObj) };
    let mut log = e.progress.lock().unwrap();
    log.updates += 1;
    log.last = p;
    if log.updates > e.cancel_after_updates.load(Ordering::SeqCst) {
        kOfxStatReplyNo as OfxStatus
    } else {
        OK
    }
}
unsafe extern "C" fn progressEnd(h: *mut c_void) -> OfxStatus {
    unsafe { &*(h as *const EffectObj) }
        .progress
        .lock()
        .unwrap()
        .ends += 1;
    OK
}

pub static PROGRESS_V1: OfxProgressSuiteV1 = OfxProgressSuiteV1 {
    progressStart: Some(progressStartV1),
    progressUpdate: Some(progressUpdate),
    progressEnd: Some(progressEnd),
};
pub static PROGRESS_V2: OfxProgressSuiteV2 = OfxProgressSuiteV2 {
    progressStart: Some(progressStartV2),
    progressUpdate: Some(progressUpdate),
    progressEnd: Some(progressEnd),
};

unsafe extern "C" fn getTime(_i: *mut c_void, t: *mut f64) -> OfxStatus {
    unsafe { *t = 0.0 };
    OK
}
unsafe extern "C" fn gotoTime(_i: *mut c_void, _t: f64) -> OfxStatus {
    OK
}
unsafe extern "C" fn getTimeBounds(_i: *mut c_void, a: *mut f64, b: *mut f64) -> OfxStatus {
    unsafe {
        *a = 0.0;
        *b = 100.0;
    }
    OK
}
pub static TIMELINE: OfxTimeLineSuiteV1 = OfxTimeLineSuiteV1 {
    getTime: Some(getTime),
    gotoTime: Some(gotoTime),
    getTimeBounds: Some(getTimeBounds),
};

unsafe extern "C" fn memoryAlloc(_h: *mut c_void, n: usize, out: *mut *mut c_void) -> OfxStatus {
    let p = unsafe { libc::malloc(n.max(1)) };
    if p.is_null() {
        return kOfxStatErrMemory as OfxStatus;
    }
    unsafe { *out = p };
    OK
}
unsafe extern "C" fn memoryFree(p: *mut c_void) -> OfxStatus {
    unsafe { libc::free(p) };
    OK
}
pub static MEMORY: OfxMemorySuiteV1 = OfxMemorySuiteV1 {
    memoryAlloc: Some(memoryAlloc),
    memoryFree: Some(memoryFree),
};

pub unsafe extern "C" fn fetch_suite(
    host: OfxPropertySetHandle,
    suite: *const c_char,
    version: c_int,
) -> *const c_void {
    let cfg = unsafe { &*(host as *const HostObj) }.config;
    let n = unsafe { name(suite) };
    match (n.as_str(), version) {
        ("OfxPropertySuite", 1) => &PROPERTY_SUITE as *const _ as *const c_void,
        ("OfxImageEffectSuite", 1) => &EFFECT_SUITE as *const _ as *const c_void,
        ("OfxParameterSuite", 1) => &PARAM_SUITE as *const _ as *const c_void,
        ("OfxMemorySuite", 1) => &MEMORY as *const _ as *const c_void,
        ("OfxMessageSuite", 1) if cfg.message_v1 => &MESSAGE_V1 as *const _ as *const c_void,
        ("OfxMessageSuite", 2) if cfg.message_v2 => &MESSAGE_V2 as *const _ as *const c_void,
        ("OfxProgressSuite", 1) if cfg.progress_v1 => &PROGRESS_V1 as *const _ as *const c_void,
        ("OfxProgressSuite", 2) if cfg.progress_v2 => &PROGRESS_V2 as *const _ as *const c_void,
        ("OfxTimeLineSuite", 1) => &TIMELINE as *const _ as *const c_void,
        _ => std::ptr::null(),
    }
}
