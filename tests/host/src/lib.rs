//! `ofx-test-host`: a small OpenFX host for svd-inbetween's tests and demo. It loads the built `.ofx`, serves the
//! property, image-effect, parameter, memory, multithread, message (v1/v2), progress (v1/v2) and timeline
//! suites, holds source frames in memory at any number of times, and records what the plugin does (images
//! fetched and released, messages, progress calls). All host objects are `#[repr(C)]` with their property set
//! first, so any handle the plugin passes back can be read as a property set.
#![allow(clippy::missing_safety_doc)]

pub mod quirks;
mod suites;

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};

pub use svd_inbetween::ofx::sys::*;

/// Images fetched by the plugin and not yet released, over the whole process.
pub static OUTSTANDING_IMAGES: AtomicI64 = AtomicI64::new(0);

#[derive(Clone, Debug)]
pub enum Value {
    Int(i32),
    Double(f64),
    Str(CString),
    Ptr(usize),
}

#[repr(C)]
#[derive(Default)]
pub struct Props {
    pub map: Mutex<HashMap<String, Vec<Value>>>,
}

impl Props {
    pub fn set(&self, name: &str, values: Vec<Value>) {
        self.map.lock().unwrap().insert(name.to_string(), values);
    }
    pub fn set_str(&self, name: &str, v: &str) {
        self.set(name, vec![Value::Str(CString::new(v).unwrap())]);
    }
    pub fn set_int(&self, name: &str, v: i32) {
        self.set(name, vec![Value::Int(v)]);
    }
    pub fn set_doubles(&self, name: &str, v: &[f64]) {
        self.set(name, v.iter().map(|d| Value::Double(*d)).collect());
    }
    pub fn get(&self, name: &str) -> Option<Vec<Value>> {
        self.map.lock().unwrap().get(name).cloned()
    }
    pub fn get_str(&self, name: &str, i: usize) -> Option<String> {
        match self.get(name)?.get(i)? {
            Value::Str(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        }
    }
    pub fn get_strs(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                if let Value::Str(s) = v {
                    Some(s.to_string_lossy().into_owned())
                } else {
                    None
                }
            })
            .collect()
    }
    pub fn get_int(&self, name: &str, i: usize) -> Option<i32> {
        match self.get(name)?.get(i)? {
            Value::Int(v) => Some(*v),
            Value::Double(d) => Some(*d as i32),
            _ => None,
        }
    }
    pub fn get_doubles(&self, name: &str) -> Vec<f64> {
        self.get(name)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match v {
                Value::Double(d) => Some(*d),
                Value::Int(i) => Some(*i as f64),
                _ => None,
            })
            .collect()
    }
    pub fn handle(&self) -> OfxPropertySetHandle {
        self as *const Props as OfxPropertySetHandle
    }
}

/// Which optional suites the host offers (the plugin must cope with any subset).
#[derive(Clone, Copy, Debug)]
pub struct HostConfig {
    pub message_v1: bool,
    pub message_v2: bool,
    pub progress_v1: bool,
    pub progress_v2: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            message_v1: true,
            message_v2: true,
            progress_v1: true,
            progress_v2: true,
        }
    }
}

#[repr(C)]
pub struct HostObj {
    pub props: Props,
    pub config: HostConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    Byte,
    Short,
    Float,
}

impl Depth {
    pub fn bytes(self) -> usize {
        match self {
            Depth::Byte => 1,
            Depth::Short => 2,
            Depth::Float => 4,
        }
    }
    pub fn ofx(self) -> &'static str {
        match self {
            Depth::Byte => "OfxBitDepthByte",
            Depth::Short => "OfxBitDepthShort",
            Depth::Float => "OfxBitDepthFloat",
        }
    }
    pub fn max(self) -> f32 {
        match self {
            Depth::Byte => 255.0,
            Depth::Short => 65535.0,
            Depth::Float => 1.0,
        }
    }
}

/// A frame in host memory: `bounds` in pixel coordinates (y up), rows stored bottom-up or top-down
/// (negative row bytes), samples of `depth`, `components` 3 or 4.
#[derive(Clone, Debug)]
pub struct HostImage {
    pub bounds: [i32; 4],
    pub depth: Depth,
    pub components: usize,
    pub top_down: bool,
    pub data: Vec<u8>,
}

impl HostImage {
    pub fn new(bounds: [i32; 4], depth: Depth, components: usize, top_down: bool) -> Self {
        let (w, h) = (
            (bounds[2] - bounds[0]) as usize,
            (bounds[3] - bounds[1]) as usize,
        );
        Self {
            bounds,
            depth,
            components,
            top_down,
            data: vec![0; w * h * components * depth.bytes()],
        }
    }
    pub fn width(&self) -> usize {
        (self.bounds[2] - self.bounds[0]) as usize
    }
    pub fn height(&self) -> usize {
        (self.bounds[3] - self.bounds[1]) as usize
    }
    pub fn row_len(&self) -> usize {
        self.width() * self.components * self.depth.bytes()
    }
    fn offset(&self, x: i32, y: i32, c: usize) -> usize {
        let row = (y - self.bounds[1]) as usize;
        let mem_row = if self.top_down {
            self.height() - 1 - row
        } else {
            row
        };
        mem_row * self.row_len()
            + ((x - self.bounds[0]) as usize * self.components + c) * self.depth.bytes()
    }
    /// Sample at pixel (x, y), channel c, as a float in [0,1] (byte/short normalised).
    pub fn get(&self, x: i32, y: i32, c: usize) -> f32 {
        let o = self.offset(x, y, c);
        match self.depth {
            Depth::Byte => self.data[o] as f32 / 255.0,
            Depth::Short => u16::from_ne_bytes([self.data[o], self.data[o + 1]]) as f32 / 65535.0,
            Depth::Float => f32::from_ne_bytes(self.data[o..o + 4].try_into().unwrap()),
        }
    }
    /// Stores a [0,1] value (rounded to the nearest code value for byte/short).
    pub fn put(&mut self, x: i32, y: i32, c: usize, v: f32) {
        let o = self.offset(x, y, c);
        match self.depth {
            Depth::Byte => self.data[o] = (v.clamp(0.0, 1.0) * 255.0).round() as u8,
            Depth::Short => self.data[o..o + 2]
                .copy_from_slice(&((v.clamp(0.0, 1.0) * 65535.0).round() as u16).to_ne_bytes()),
            Depth::Float => self.data[o..o + 4].copy_from_slice(&v.to_ne_bytes()),
        }
    }
    /// Pointer and row bytes as OpenFX wants them: the address of row y1 and the (signed) step to row y1+1.
    fn ofx_layout(&mut self) -> (*mut u8, i32) {
        let rl = self.row_len();
        if self.top_down {
            let last = (self.height().max(1) - 1) * rl;
            (self.data.as_mut_ptr().wrapping_add(last), -(rl as i32))
        } else {
            (self.data.as_mut_ptr(), rl as i32)
        }
    }
}

#[repr(C)]
pub struct ClipObj {
    pub props: Props,
    pub name: String,
    pub frames: Mutex<HashMap<i64, Arc<HostImage>>>,
    pub rendered: Mutex<HashMap<i64, HostImage>>,
    /// Format of output images the host allocates.
    pub out_format: Mutex<(Depth, usize, bool)>,
    pub rod: Mutex<[i32; 4]>,
    /// Images of this clip fetched by the plugin and not yet released.
    pub outstanding: AtomicI64,
}

#[repr(C)]
pub struct ImageObj {
    pub props: Props,
    pub image: HostImage,
    pub clip: *const ClipObj,
    pub time: i64,
    pub is_output: bool,
}

#[repr(C)]
pub struct ParamObj {
    pub props: Props,
    pub name: String,
    pub kind: String,
    pub value: Mutex<Option<Vec<Value>>>,
}

#[repr(C)]
pub struct ParamSetObj {
    pub props: Props,
    pub params: Mutex<Vec<Box<ParamObj>>>,
}

#[derive(Default, Debug, Clone)]
pub struct ProgressLog {
    pub starts: usize,
    pub updates: usize,
    pub ends: usize,
    pub last: f64,
    /// The label of every progressStart, in order.
    pub labels: Vec<String>,
}

#[repr(C)]
pub struct EffectObj {
    pub props: Props,
    pub params: ParamSetObj,
    pub clips: Mutex<Vec<Box<ClipObj>>>,
    pub abort: AtomicBool,
    /// Progress updates after which progressUpdate answers "cancel" (ReplyNo); usize::MAX = never.
    pub cancel_after_updates: AtomicUsize,
    pub progress: Mutex<ProgressLog>,
    pub messages: Mutex<Vec<(String, String)>>,
}

impl EffectObj {
    pub fn new() -> Box<Self> {
        Box::new(Self {
            props: Props::default(),
            params: ParamSetObj {
                props: Props::default(),
                params: Mutex::new(Vec::new()),
            },
            clips: Mutex::new(Vec::new()),
            abort: AtomicBool::new(false),
            cancel_after_updates: AtomicUsize::new(usize::MAX),
            progress: Mutex::new(ProgressLog::default()),
            messages: Mutex::new(Vec::new()),
        })
    }
    pub fn handle(&self) -> OfxImageEffectHandle {
        self as *const EffectObj as OfxImageEffectHandle
    }
    pub fn clip(&self, name: &str) -> Option<*const ClipObj> {
        self.clips
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.name == name)
            .map(|c| &**c as *const ClipObj)
    }
    pub fn param(&self, name: &str) -> Option<*const ParamObj> {
        self.params
            .params
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.name == name)
            .map(|p| &**p as *const ParamObj)
    }
}

pub struct Plugin {
    _lib: libloading::Library,
    pub plugin: *const OfxPlugin,
    pub host: Box<HostObj>,
    pub ofx_host: Box<OfxHost>,
    pub path: PathBuf,
}

// SAFETY: the plugin table and host objects are immutable after load; the plugin is fully thread safe.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

/// Where the built plugin is: $SVD_INBETWEEN_OFX, else target/<profile>/libsvd_inbetween.so (built on demand
/// with the cargo that runs the tests, so `cargo test` alone is enough).
pub fn plugin_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SVD_INBETWEEN_OFX") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let status = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "svd-inbetween"])
            .current_dir(&root)
            .status()
            .expect("run cargo build for the plugin");
        assert!(status.success(), "building the plugin failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug/libsvd_inbetween.so")
}

static PLUGIN: OnceLock<Plugin> = OnceLock::new();

/// The plugin, loaded once per process (a plugin is loaded once and never unloaded, like in a real host),
/// with `config` deciding which optional suites this process's host offers.
pub fn plugin_with(config: HostConfig) -> &'static Plugin {
    PLUGIN.get_or_init(|| Plugin::load(&plugin_path(), config).unwrap_or_else(|e| panic!("{e}")))
}

pub fn plugin() -> &'static Plugin {
    plugin_with(HostConfig::default())
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

impl Plugin {
    pub fn load(path: &Path, config: HostConfig) -> Result<Self, String> {
        // SAFETY: loading the plugin runs no code of ours besides its (empty) initialisers.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        // SAFETY: symbol types as in the OpenFX ABI.
        let (count, get): (
            unsafe extern "C" fn() -> i32,
            unsafe extern "C" fn(i32) -> *mut OfxPlugin,
        ) = unsafe {
            (
                *lib.get(b"OfxGetNumberOfPlugins")
                    .map_err(|e| e.to_string())?,
                *lib.get(b"OfxGetPlugin").map_err(|e| e.to_string())?,
            )
        };
        // SAFETY: exported OpenFX functions.
        let n = unsafe { count() };
        if n != 1 {
            return Err(format!("expected 1 plugin, got {n}"));
        }
        let plugin = unsafe { get(0) };
        if plugin.is_null() {
            return Err("OfxGetPlugin(0) returned NULL".into());
        }
        let host = Box::new(HostObj {
            props: Props::default(),
            config,
        });
        host.props
            .set_str("OfxPropName", "org.svdinbetween.testhost");
        host.props
            .set_str("OfxPropLabel", "svd-inbetween test host");
        host.props
            .set_int("OfxImageEffectPropTemporalClipAccess", 1);
        let ofx_host = Box::new(OfxHost {
            host: host.props.handle(),
            fetchSuite: Some(suites::fetch_suite),
        });
        let p = Self {
            _lib: lib,
            plugin,
            host,
            ofx_host,
            path: path.to_path_buf(),
        };
        // SAFETY: plugin table from the plugin; setHost must be called before any action.
        unsafe { ((*plugin).setHost.unwrap())(&*p.ofx_host as *const OfxHost as *mut OfxHost) };
        let st = p.action("OfxActionLoad", std::ptr::null(), None, None);
        if st != 0 {
            return Err(format!("Load failed with status {st}"));
        }
        Ok(p)
    }

    pub fn id(&self) -> String {
        // SAFETY: static C string in the plugin table.
        unsafe { CStr::from_ptr((*self.plugin).pluginIdentifier) }
            .to_string_lossy()
            .into_owned()
    }

    #[allow(
        clippy::not_unsafe_ptr_arg_deref,
        reason = "the handle goes to the plugin, which gets it from this host; tests pass handles of ours"
    )]
    pub fn action(
        &self,
        action: &str,
        handle: *const c_void,
        in_args: Option<&Props>,
        out_args: Option<&Props>,
    ) -> i32 {
        let a = cstr(action);
        let ih = in_args.map(|p| p.handle()).unwrap_or(std::ptr::null_mut());
        let oh = out_args.map(|p| p.handle()).unwrap_or(std::ptr::null_mut());
        // SAFETY: the plugin's main entry with valid (or NULL) handles owned by this host.
        unsafe { ((*self.plugin).mainEntry.unwrap())(a.as_ptr(), handle, ih, oh) }
    }

    /// Describe + DescribeInContext on a fresh descriptor.
    pub fn describe(&self, context: &str) -> (Box<EffectObj>, i32, i32) {
        let d = EffectObj::new();
        let s1 = self.action("OfxActionDescribe", d.handle() as *const c_void, None, None);
        let args = Props::default();
        args.set_str("OfxImageEffectPropContext", context);
        let s2 = self.action(
            "OfxImageEffectActionDescribeInContext",
            d.handle() as *const c_void,
            Some(&args),
            None,
        );
        (d, s1, s2)
    }

    /// An instance in `context` whose clips are `width`×`height` at the origin, frames 0..=frame_max.
    pub fn instance(
        &'static self,
        context: &str,
        width: i32,
        height: i32,
        frame_max: f64,
    ) -> Instance {
        let (desc, s1, s2) = self.describe(context);
        assert_eq!((s1, s2), (0, 0), "describe failed");
        let inst = EffectObj::new();
        inst.props.set_str("OfxImageEffectPropContext", context);
        inst.props
            .set_str("OfxPropType", "OfxTypeImageEffectInstance");
        for c in desc.clips.lock().unwrap().iter() {
            let clip = Box::new(ClipObj {
                props: Props::default(),
                name: c.name.clone(),
                frames: Mutex::new(HashMap::new()),
                rendered: Mutex::new(HashMap::new()),
                out_format: Mutex::new((Depth::Float, 4, false)),
                rod: Mutex::new([0, 0, width, height]),
                outstanding: AtomicI64::new(0),
            });
            clip.props.set_str("OfxPropName", &c.name);
            clip.props.set_int("OfxImageClipPropConnected", 1);
            clip.props
                .set_doubles("OfxImageEffectPropFrameRange", &[0.0, frame_max]);
            clip.props
                .set_doubles("OfxImageEffectPropFrameRate", &[24.0]);
            inst.clips.lock().unwrap().push(clip);
        }
        for p in desc.params.params.lock().unwrap().iter() {
            let q = Box::new(ParamObj {
                props: Props::default(),
                name: p.name.clone(),
                kind: p.kind.clone(),
                value: Mutex::new(None),
            });
            *q.props.map.lock().unwrap() = p.props.map.lock().unwrap().clone();
            inst.params.params.lock().unwrap().push(q);
        }
        let st = self.action(
            "OfxActionCreateInstance",
            inst.handle() as *const c_void,
            None,
            None,
        );
        assert_eq!(st, 0, "CreateInstance failed");
        Instance {
            plugin: self,
            obj: inst,
            desc,
        }
    }
}

pub struct Instance {
    pub plugin: &'static Plugin,
    pub obj: Box<EffectObj>,
    pub desc: Box<EffectObj>,
}

// SAFETY: all host objects are internally synchronised; the plugin declares full thread safety.
unsafe impl Send for Instance {}
unsafe impl Sync for Instance {}

impl Instance {
    fn h(&self) -> *const c_void {
        self.obj.handle() as *const c_void
    }

    pub fn set_param(&self, name: &str, v: Value) {
        let p = self
            .obj
            .param(name)
            .unwrap_or_else(|| panic!("no param {name}"));
        // SAFETY: the param lives as long as the instance.
        *unsafe { &*p }.value.lock().unwrap() = Some(vec![v]);
    }
    pub fn set_int(&self, name: &str, v: i32) {
        self.set_param(name, Value::Int(v));
    }
    pub fn set_double(&self, name: &str, v: f64) {
        self.set_param(name, Value::Double(v));
    }
    pub fn set_string(&self, name: &str, v: &str) {
        self.set_param(name, Value::Str(cstr(v)));
    }

    pub fn clip(&self, name: &str) -> &ClipObj {
        // SAFETY: clips live as long as the instance.
        unsafe {
            &*self
                .obj
                .clip(name)
                .unwrap_or_else(|| panic!("no clip {name}"))
        }
    }

    pub fn add_frame(&self, clip: &str, time: i64, img: HostImage) {
        self.clip(clip)
            .frames
            .lock()
            .unwrap()
            .insert(time, Arc::new(img));
    }

    pub fn set_output_format(&self, depth: Depth, components: usize, top_down: bool) {
        *self.clip("Output").out_format.lock().unwrap() = (depth, components, top_down);
    }

    pub fn clip_preferences(&self) -> i32 {
        let out = Props::default();
        self.plugin.action(
            "OfxImageEffectActionGetClipPreferences",
            self.h(),
            None,
            Some(&out),
        )
    }

    pub fn region_of_definition(&self, t: f64) -> (i32, Vec<f64>) {
        let (i, o) = (Props::default(), Props::default());
        i.set_doubles("OfxPropTime", &[t]);
        i.set_doubles("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
        let st = self.plugin.action(
            "OfxImageEffectActionGetRegionOfDefinition",
            self.h(),
            Some(&i),
            Some(&o),
        );
        (st, o.get_doubles("OfxImageEffectPropRegionOfDefinition"))
    }

    pub fn frames_needed(&self, t: f64) -> (i32, HashMap<String, Vec<f64>>) {
        let (i, o) = (Props::default(), Props::default());
        i.set_doubles("OfxPropTime", &[t]);
        let st = self.plugin.action(
            "OfxImageEffectActionGetFramesNeeded",
            self.h(),
            Some(&i),
            Some(&o),
        );
        let keys: Vec<String> = o.map.lock().unwrap().keys().cloned().collect();
        let map = keys
            .into_iter()
            .map(|k| (k.clone(), o.get_doubles(&k)))
            .collect();
        (st, map)
    }

    /// `Some((clip, time))` when the plugin says the frame is the source passed through.
    pub fn is_identity(&self, t: f64) -> (i32, Option<(String, f64)>) {
        let (i, o) = (Props::default(), Props::default());
        i.set_doubles("OfxPropTime", &[t]);
        i.set_str("OfxImageEffectPropFieldToRender", "OfxImageFieldNone");
        let w = *self.clip("Output").rod.lock().unwrap();
        i.set(
            "OfxImageEffectPropRenderWindow",
            w.iter().map(|v| Value::Int(*v)).collect(),
        );
        i.set_doubles("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
        let st = self.plugin.action(
            "OfxImageEffectActionIsIdentity",
            self.h(),
            Some(&i),
            Some(&o),
        );
        if st == 0 {
            (
                st,
                Some((
                    o.get_str("OfxPropName", 0).unwrap_or_default(),
                    o.get_doubles("OfxPropTime")[0],
                )),
            )
        } else {
            (st, None)
        }
    }

    pub fn sequence(&self, begin: bool, range: [f64; 2]) -> i32 {
        let i = Props::default();
        i.set_doubles("OfxImageEffectPropFrameRange", &range);
        i.set_doubles("OfxImageEffectPropFrameStep", &[1.0]);
        i.set_int("OfxPropIsInteractive", 0);
        i.set_doubles("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
        let a = if begin {
            "OfxImageEffectActionBeginSequenceRender"
        } else {
            "OfxImageEffectActionEndSequenceRender"
        };
        self.plugin.action(a, self.h(), Some(&i), None)
    }

    /// Render one frame over `window`; the output lands in `output(t)`.
    pub fn render(&self, t: f64, window: [i32; 4]) -> i32 {
        let i = Props::default();
        i.set_doubles("OfxPropTime", &[t]);
        i.set_str("OfxImageEffectPropFieldToRender", "OfxImageFieldNone");
        i.set(
            "OfxImageEffectPropRenderWindow",
            window.iter().map(|v| Value::Int(*v)).collect(),
        );
        i.set_doubles("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
        i.set_int("OfxImageEffectPropSequentialRenderStatus", 0);
        i.set_int("OfxImageEffectPropInteractiveRenderStatus", 0);
        quirks::set_render_time(Some(t.round() as i64));
        let st = self
            .plugin
            .action("OfxImageEffectActionRender", self.h(), Some(&i), None);
        quirks::set_render_time(None);
        st
    }

    pub fn output(&self, t: i64) -> Option<HostImage> {
        self.clip("Output")
            .rendered
            .lock()
            .unwrap()
            .get(&t)
            .cloned()
    }

    /// Images of this instance's clips currently held by the plugin.
    pub fn outstanding_images(&self) -> i64 {
        self.obj
            .clips
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.outstanding.load(std::sync::atomic::Ordering::SeqCst))
            .sum()
    }

    pub fn messages(&self) -> Vec<(String, String)> {
        self.obj.messages.lock().unwrap().clone()
    }

    pub fn progress(&self) -> ProgressLog {
        self.obj.progress.lock().unwrap().clone()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let st = self
            .plugin
            .action("OfxActionDestroyInstance", self.h(), None, None);
        // A later instance may get this address: its messages must not include ours.
        quirks::forget_persistent_messages(self.obj.handle() as usize);
        debug_assert_eq!(st, 0);
    }
}

/// The plugin's count of generations actually run in this process (a diagnostic export, not OpenFX).
pub fn generation_count(p: &Plugin) -> u64 {
    // SAFETY: optional diagnostic symbol with this signature.
    unsafe {
        match p
            ._lib
            .get::<unsafe extern "C" fn() -> u64>(b"svd_inbetween_generation_count")
        {
            Ok(f) => f(),
            Err(_) => 0,
        }
    }
}

/// A 4-channel f32 image from a PNG (rows top to bottom) placed at the origin as a host image.
pub fn host_image_from_rgba(
    img: &svd_inbetween::image::ImageF32,
    depth: Depth,
    components: usize,
    top_down: bool,
) -> HostImage {
    let mut h = HostImage::new(
        [0, 0, img.width as i32, img.height as i32],
        depth,
        components,
        top_down,
    );
    for r in 0..img.height {
        let y = (img.height - 1 - r) as i32;
        for x in 0..img.width {
            let p = img.pixel(x, r);
            for c in 0..components {
                // `p` holds the image's channels; a missing alpha is opaque.
                h.put(x as i32, y, c, p.get(c).copied().unwrap_or(1.0));
            }
        }
    }
    h
}

/// The host image as an RGBA f32 image, rows top to bottom.
pub fn host_image_to_rgba(h: &HostImage) -> svd_inbetween::image::ImageF32 {
    let mut img = svd_inbetween::image::ImageF32::new(h.width(), h.height(), 4);
    for r in 0..h.height() {
        let y = h.bounds[3] - 1 - r as i32;
        for x in 0..h.width() {
            let px = img.pixel_mut(x, r);
            for (c, v) in px.iter_mut().enumerate() {
                *v = if c < h.components {
                    h.get(h.bounds[0] + x as i32, y, c)
                } else {
                    1.0
                };
            }
        }
    }
    img
}

// ------------------------------------------------------------------------------------------- whole clips
// Helpers for clips with many keyframes (issue 11): a clip's frame range, and a test clip whose every frame
// differs (so every interval has its own keyframe pixels and cache key).

impl Instance {
    /// Sets the frames `clip` has images for (OfxImageEffectPropFrameRange on the clip instance).
    pub fn set_frame_range(&self, clip: &str, first: f64, last: f64) {
        self.clip(clip)
            .props
            .set_doubles("OfxImageEffectPropFrameRange", &[first, last]);
    }

    /// The kind (`OfxParamTypeString`, …) of the instance's param `name`.
    pub fn param_kind(&self, name: &str) -> Option<String> {
        // SAFETY: the param lives as long as the instance.
        self.obj.param(name).map(|p| unsafe { &*p }.kind.clone())
    }
}

/// Frames 0..=last of a test clip: frame t is the cross-fade (1 − t/last)·A + (t/last)·B of two RGBA pictures,
/// rounded to 8 bits so that a PNG of it reads back exactly.
pub fn cross_fade_clip(
    a: &svd_inbetween::image::ImageF32,
    b: &svd_inbetween::image::ImageF32,
    last: usize,
) -> Vec<svd_inbetween::image::ImageF32> {
    (0..=last)
        .map(|t| {
            let w = t as f32 / last.max(1) as f32;
            let mut f = a.clone();
            for (v, (pa, pb)) in f.data.iter_mut().zip(a.data.iter().zip(&b.data)) {
                *v = svd_inbetween::image::to_u8((1.0 - w) * pa + w * pb) as f32 / 255.0;
            }
            f
        })
        .collect()
}
