//! The OpenFX C ABI: exported entry points, the plugin table, and safe wrappers over the host's suites.
//! Every entry point catches panics: one escaping an `extern "C"` function would abort the host.

pub mod host;
pub mod strings;
pub mod sys;

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use host::{Clip, Depth, Effect, OfxError, OfxResult, OutputImage, ParamSet, PropSet, RectI};
use sys::*;

pub const PLUGIN_ID: &CStr = c"org.svdinbetween.SvdInbetween";
pub const VERSION_MAJOR: u32 = 0;
pub const VERSION_MINOR: u32 = 1;

struct PluginTable(OfxPlugin);
// SAFETY: the table holds pointers to 'static C strings and to our own functions; it is never mutated.
unsafe impl Sync for PluginTable {}

static PLUGIN: PluginTable = PluginTable(OfxPlugin {
    pluginApi: strings::PLUGIN_API.as_ptr(),
    apiVersion: 1,
    pluginIdentifier: PLUGIN_ID.as_ptr(),
    pluginVersionMajor: VERSION_MAJOR,
    pluginVersionMinor: VERSION_MINOR,
    setHost: Some(set_host),
    mainEntry: Some(main_entry),
});

#[unsafe(no_mangle)]
pub extern "C" fn OfxGetNumberOfPlugins() -> c_int {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn OfxGetPlugin(nth: c_int) -> *mut OfxPlugin {
    if nth == 0 {
        &PLUGIN.0 as *const OfxPlugin as *mut OfxPlugin
    } else {
        std::ptr::null_mut()
    }
}

/// Optional since OpenFX 2020; hosts that call it give us the host early, the others use `setHost`.
#[unsafe(no_mangle)]
pub extern "C" fn OfxSetHost(host: *const OfxHost) -> OfxStatus {
    match catch_unwind(|| host::set_host(host)) {
        Ok(()) => kOfxStatOK as OfxStatus,
        Err(_) => kOfxStatFailed as OfxStatus,
    }
}

extern "C" fn set_host(host: *mut OfxHost) {
    // No OFX calls are allowed here: only remember the pointer.
    let _ = catch_unwind(|| host::set_host(host));
}

extern "C" fn main_entry(
    action: *const c_char,
    handle: *const c_void,
    in_args: OfxPropertySetHandle,
    out_args: OfxPropertySetHandle,
) -> OfxStatus {
    if action.is_null() {
        return kOfxStatErrBadHandle as OfxStatus;
    }
    // SAFETY: the host passes a NUL-terminated action name that lives for the duration of the call.
    let action = unsafe { CStr::from_ptr(action) };
    let effect = Effect(handle as OfxImageEffectHandle);
    let result = catch_unwind(AssertUnwindSafe(|| {
        crate::plugin::dispatch(action, effect, PropSet(in_args), PropSet(out_args))
    }));
    match result {
        Ok(status) => status,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let text = format!(
                "svd-inbetween hit an internal error in {}: {what}. The frame was not rendered; please report this with the host's log.",
                action.to_string_lossy()
            );
            // Reporting must not panic again: message() only formats and calls the host.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                if !handle.is_null() {
                    effect.message(strings::MESSAGE_ERROR, &text)
                } else {
                    log::error!("{text}")
                }
            }));
            kOfxStatFailed as OfxStatus
        }
    }
}

/// Diagnostics for tests and tools: generations this process actually ran (cache misses that generated).
/// Not part of OpenFX; hosts ignore it.
#[unsafe(no_mangle)]
pub extern "C" fn svd_inbetween_generation_count() -> u64 {
    catch_unwind(crate::plugin::generation_count).unwrap_or(0) as u64
}
