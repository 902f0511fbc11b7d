//! ONNX Runtime, loaded at run time (`ort` with `load-dynamic`): finding the library, the one process-wide
//! environment, and sessions on the best execution provider the user allows.
//!
//! Why load-dynamic: the plugin ships inside a host (Resolve, Natron) that may carry its own onnxruntime; loading
//! ours by absolute path with RTLD_LOCAL keeps the two apart (research/ort.md §4.3), and the `.ofx` has no
//! link-time dependency, so a missing runtime is a clear message instead of a host that fails to load the plugin.

mod locate;
pub mod profile;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::logging::LogLevel;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use thiserror::Error;

pub use locate::{candidate_libraries, plugin_directory};

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found. Tried:\n{tried}\nInstall it with `pip install onnxruntime==1.31.1` (or onnxruntime-gpu), put it in the bundle's Contents/Linux-x86-64/lib/, or set SVD_INBETWEEN_ORT_LIB to libonnxruntime.so"
    )]
    LibraryNotFound { tried: String },
    #[error("ONNX Runtime environment could not be created: {0}")]
    Environment(String),
    #[error("CUDA was requested but is not usable: {0}")]
    CudaUnavailable(String),
    #[error("cannot load model {path}: {message}")]
    Session { path: String, message: String },
}

/// Which execution provider the user allows. `Auto` tries CUDA and falls back to the CPU, saying why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum DevicePreference {
    #[default]
    Auto,
    #[value(alias = "gpu")]
    Cuda,
    Cpu,
}

/// The provider a session really runs on, and why it is not CUDA when it is not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProviderInfo {
    pub provider: String,
    pub fallback_reason: Option<String>,
}

impl ProviderInfo {
    pub fn is_cuda(&self) -> bool {
        self.provider == "CUDAExecutionProvider"
    }
}

impl std::fmt::Display for ProviderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fallback_reason {
            None => write!(f, "{}", self.provider),
            Some(r) => write!(f, "{} ({r})", self.provider),
        }
    }
}

/// The loaded runtime: library path and version string.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuntimeInfo {
    pub library: PathBuf,
    pub version: String,
}

struct Loaded {
    env: Environment,
    info: RuntimeInfo,
}

static RUNTIME: OnceLock<Result<Loaded, String>> = OnceLock::new();
/// Serialises the first initialisation so two render threads cannot race `ort::init_from` (the first call wins
/// inside ort, and a second environment is refused for the life of the process).
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The process-wide environment, created on first use from the first library that loads. `explicit` (a user
/// setting) is tried first; it only has an effect on the first successful call, by ONNX Runtime's own rules.
pub fn environment(
    explicit: Option<&Path>,
) -> Result<(&'static Environment, &'static RuntimeInfo), RuntimeError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let loaded = RUNTIME.get_or_init(|| load(explicit));
    match loaded {
        Ok(l) => Ok((&l.env, &l.info)),
        Err(e) => Err(RuntimeError::Environment(e.clone())),
    }
}

fn load(explicit: Option<&Path>) -> Result<Loaded, String> {
    let mut tried = Vec::new();
    for candidate in candidate_libraries(explicit) {
        if !candidate.path.exists() {
            tried.push(format!(
                "  {} ({}): no such file",
                candidate.path.display(),
                candidate.origin
            ));
            continue;
        }
        match ort::init_from(&candidate.path) {
            Ok(builder) => {
                let env = builder
                    .with_name("svd-inbetween")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| format!("{e}"))?;
                env.set_log_level(LogLevel::Warning);
                let version = ort::info().to_string();
                log::info!(
                    "ONNX Runtime loaded from {} ({})",
                    candidate.path.display(),
                    candidate.origin
                );
                return Ok(Loaded {
                    env,
                    info: RuntimeInfo {
                        library: candidate.path,
                        version,
                    },
                });
            }
            Err(e) => tried.push(format!(
                "  {} ({}): {}",
                candidate.path.display(),
                candidate.origin,
                describe_load_error(&e)
            )),
        }
    }
    Err(RuntimeError::LibraryNotFound {
        tried: tried.join("\n"),
    }
    .to_string())
}

/// libloading's Display for a dlopen failure is just "dlopen failed"; the useful dlerror() text is its source.
fn describe_load_error(e: &ort::LoadDynamicError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    if let ort::LoadDynamicError::Dlopen { error, .. } = e
        && let Some(inner) = std::error::Error::source(error)
    {
        s.push_str(": ");
        s.push_str(&inner.to_string());
    }
    s
}

/// The execution providers this ONNX Runtime build was compiled with (what it *could* use, not what works on this
/// machine: the GPU wheel lists CUDA with no GPU present). Needs the environment (`environment()`) first.
pub fn available_providers() -> Result<Vec<String>, String> {
    if !matches!(RUNTIME.get(), Some(Ok(_))) {
        return Err("ONNX Runtime is not loaded".into());
    }
    let api = ort::api();
    let mut list: *mut *mut std::ffi::c_char = std::ptr::null_mut();
    let mut n: std::ffi::c_int = 0;
    // SAFETY: the library is loaded (checked above, so ort::api() cannot take its panicking lazy-load path);
    // GetAvailableProviders writes an array of n C strings that we own until ReleaseAvailableProviders.
    let status = unsafe { (api.GetAvailableProviders)(&mut list, &mut n) };
    if !status.0.is_null() {
        // SAFETY: a non-null status is a valid OrtStatus; its message lives until ReleaseStatus.
        let msg = unsafe {
            std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: releasing the status we were given, once.
        unsafe { (api.ReleaseStatus)(status.0) };
        return Err(msg);
    }
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for i in 0..n.max(0) as usize {
        // SAFETY: i < n entries, each a NUL-terminated string owned by the array.
        out.push(unsafe {
            std::ffi::CStr::from_ptr(*list.add(i))
                .to_string_lossy()
                .into_owned()
        });
    }
    // SAFETY: the array and count exactly as GetAvailableProviders returned them, released once.
    let status = unsafe { (api.ReleaseAvailableProviders)(list, n) };
    if !status.0.is_null() {
        // SAFETY: as above.
        unsafe { (api.ReleaseStatus)(status.0) };
    }
    Ok(out)
}

/// Whether this ONNX Runtime build has the CUDA provider compiled in (the CPU wheel does not).
pub fn cuda_compiled_in() -> bool {
    <ep::CUDA as ExecutionProvider>::is_available().unwrap_or(false)
}

/// What a session is built from: a model file of the package, or a graph the engine builds in memory with ONNX
/// Runtime's model editor (the on-device sampler graphs). The builder closure is called again for the CPU after a
/// failed CUDA attempt, because an editor `Model` is consumed by the attempt.
pub enum SessionSource<'a> {
    File(&'a Path),
    Built {
        label: &'a str,
        build: &'a dyn Fn() -> ort::Result<ort::editor::Model>,
    },
}

impl SessionSource<'_> {
    fn label(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Built { label, .. } => format!("<built-in graph {label}>"),
        }
    }

    fn commit(&self, builder: ort::session::builder::SessionBuilder) -> Result<Session, String> {
        match self {
            Self::File(p) => {
                let mut b = builder;
                b.commit_from_file(p).map_err(|e| e.to_string())
            }
            Self::Built { build, .. } => {
                let model = build().map_err(|e| format!("building the graph: {e}"))?;
                model.into_session(&builder).map_err(|e| e.to_string())
            }
        }
    }
}

/// Per-session options beyond the provider.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Write an ONNX Runtime profile (JSON, one event per kernel with the provider that ran it) with this prefix.
    pub profile_prefix: Option<PathBuf>,
    /// Threads ONNX Runtime may use within one operator on the CPU (the calling thread included); `None`: one per
    /// core. A farm node that runs several renders at once gives each its share instead of every process
    /// spreading over every core.
    pub cpu_threads: Option<NonZeroUsize>,
}

/// The environment variable that sets [`SessionOptions::cpu_threads`] for the plugin (and the CLI's default).
pub const THREADS_ENV: &str = "SVD_INBETWEEN_THREADS";

/// Reads a thread count as [`THREADS_ENV`] gives it: unset or empty means one per core.
pub fn parse_cpu_threads(value: Option<&str>) -> Result<Option<NonZeroUsize>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<NonZeroUsize>().map(Some).map_err(|_| {
            format!(
                "{THREADS_ENV}={v:?} is not a thread count: set it to a whole number of 1 or more, or unset it to \
                 use one thread per core"
            )
        }),
    }
}

/// [`THREADS_ENV`] of this process.
pub fn cpu_threads_from_env() -> Result<Option<NonZeroUsize>, String> {
    parse_cpu_threads(std::env::var(THREADS_ENV).ok().as_deref())
}

/// Builds a session. With `Auto`, a CUDA failure (registration or verification) falls back to the CPU and the
/// reason is returned; with `Cuda` it is an error. Registration is done with `error_on_failure` because ort's
/// default silently runs on the CPU, and a registered provider is then checked to have really come up (research/
/// ort.md §2.2: registration succeeding is not proof; pykeio/ort#567).
pub fn create_session_from(
    env: &Environment,
    source: &SessionSource<'_>,
    pref: DevicePreference,
    options: &SessionOptions,
) -> Result<(Session, ProviderInfo), RuntimeError> {
    let label = source.label();
    let session_err = |message: String| RuntimeError::Session {
        path: label.clone(),
        message,
    };
    let cpu_builder = || -> Result<_, String> {
        let b = Session::builder(env).map_err(|e| e.to_string())?;
        let b = b
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| e.to_string())?;
        // Hosts run their own thread pools; spinning ORT workers would steal their cores between our calls.
        let b = b.with_intra_op_spinning(false).map_err(|e| e.to_string())?;
        let b = match options.cpu_threads {
            Some(n) => b.with_intra_threads(n.get()).map_err(|e| e.to_string())?,
            None => b,
        };
        match &options.profile_prefix {
            Some(prefix) => b.with_profiling(prefix).map_err(|e| e.to_string()),
            None => Ok(b),
        }
    };

    let fallback_reason;
    if pref != DevicePreference::Cpu {
        let attempt = (|| -> Result<Session, String> {
            if !cuda_compiled_in() {
                return Err(
                    "this ONNX Runtime build has no CUDA provider (install onnxruntime-gpu)".into(),
                );
            }
            preload_pip_cuda().map_err(|e| describe_cuda_failure(&e))?;
            let cuda = ep::CUDA::default()
                .with_device_id(0)
                .with_arena_extend_strategy(ep::ArenaExtendStrategy::SameAsRequested)
                .with_tf32(false)
                .build()
                .error_on_failure();
            let b = cpu_builder()?
                .with_execution_providers([cuda])
                .map_err(|e| describe_cuda_failure(&e.to_string()))?;
            let session = source.commit(b).map_err(|e| describe_cuda_failure(&e))?;
            verify_cuda(&session)?;
            Ok(session)
        })();
        match attempt {
            Ok(s) => {
                return Ok((
                    s,
                    ProviderInfo {
                        provider: "CUDAExecutionProvider".into(),
                        fallback_reason: None,
                    },
                ));
            }
            Err(reason) if pref == DevicePreference::Cuda => {
                return Err(RuntimeError::CudaUnavailable(reason));
            }
            Err(reason) => {
                // Info, not a warning: callers show the reason (ProviderInfo) where the user looks.
                log::info!("CUDA not used for {label}: {reason}; running on the CPU");
                fallback_reason = Some(reason);
            }
        }
    } else {
        fallback_reason = Some("CPU requested".into());
    }
    let s = source
        .commit(cpu_builder().map_err(&session_err)?)
        .map_err(session_err)?;
    Ok((
        s,
        ProviderInfo {
            provider: "CPUExecutionProvider".into(),
            fallback_reason,
        },
    ))
}

/// The memory a session's CUDA provider allocates from; `Allocator::new` on it fails unless that provider was
/// really instantiated in the session.
pub fn cuda_memory() -> ort::Result<MemoryInfo<'static>> {
    MemoryInfo::new(
        AllocationDevice::CUDA,
        0,
        AllocatorType::Device,
        MemoryType::Default,
    )
}

/// A committed session whose CUDA provider did not come up has no CUDA allocator: asking for one is a cheap check
/// that needs no inference run (the silent-fallback case of pykeio/ort#567 would fail here).
fn verify_cuda(session: &Session) -> Result<(), String> {
    let memory = cuda_memory().map_err(|e| e.to_string())?;
    Allocator::new(session, memory).map(drop).map_err(|e| {
        format!("the CUDA provider registered but the session has no CUDA memory ({e})")
    })
}

/// ONNX Runtime's CUDA errors carry its source path and error-code prefix; keep the cause and add what to do.
pub fn describe_cuda_failure(raw: &str) -> String {
    let cause = raw.rsplit_once("FAIL : ").map_or(raw, |(_, c)| c).trim();
    let missing = cause
        .split_once(": cannot open shared object file")
        .and_then(|(head, _)| head.rsplit(": ").next())
        .map(|lib| lib.rsplit('/').next().unwrap_or(lib));
    let hint = match missing {
        Some(lib) if lib.starts_with("libcuda.so") => {
            "no NVIDIA driver is installed (libcuda.so.1 comes with the driver)".to_string()
        }
        Some(lib) if lib.starts_with("libcudnn") => {
            format!(
                "cuDNN 9 is missing ({lib}): install it, or `pip install nvidia-cudnn-cu13` next to onnxruntime-gpu"
            )
        }
        Some(lib) if lib.starts_with("libonnxruntime_providers_cuda") => {
            "the onnxruntime-gpu installation is incomplete (reinstall it)".to_string()
        }
        Some(lib) => format!(
            "the CUDA 13 libraries are not found ({lib}): install CUDA 13 and cuDNN 9 on the library path, or `pip install \"onnxruntime-gpu[cuda,cudnn]==1.31.1\"`"
        ),
        None => return cause.to_string(),
    };
    format!("{hint} — {cause}")
}

static CUDA_PRELOAD: OnceLock<Result<(), String>> = OnceLock::new();

/// onnxruntime-gpu installed with its `[cuda,cudnn]` extras puts CUDA and cuDNN in pip's `nvidia/` folders, which
/// the dynamic loader does not search; the Python package preloads them, and so do we (once, before the first CUDA
/// registration), so the plugin works in a host without LD_LIBRARY_PATH set up for it.
fn preload_pip_cuda() -> Result<(), String> {
    CUDA_PRELOAD
        .get_or_init(|| {
            let Some(Ok(loaded)) = RUNTIME.get() else {
                return Ok(());
            };
            // <site-packages>/onnxruntime/capi/libonnxruntime.so → <site-packages>/nvidia/{cu13,cudnn}/lib
            let Some(site) = loaded
                .info
                .library
                .parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
            else {
                return Ok(());
            };
            let (cuda, cudnn) = (site.join("nvidia/cu13/lib"), site.join("nvidia/cudnn/lib"));
            if !cuda.is_dir() || !cudnn.is_dir() {
                return Ok(());
            }
            log::info!(
                "preloading CUDA from {} and cuDNN from {}",
                cuda.display(),
                cudnn.display()
            );
            ep::cuda::preload_dylibs(Some(&cuda), Some(&cudnn))
                .map_err(|e| format!("{e} (from {})", cuda.display()))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::{describe_cuda_failure, parse_cpu_threads};

    #[test]
    fn thread_counts_are_whole_numbers_of_one_or_more() {
        assert_eq!(parse_cpu_threads(None), Ok(None));
        assert_eq!(parse_cpu_threads(Some("")), Ok(None));
        assert_eq!(
            parse_cpu_threads(Some(" 3 ")).unwrap().map(|n| n.get()),
            Some(3)
        );
        for bad in ["0", "-2", "two", "1.5"] {
            assert_eq!(
                parse_cpu_threads(Some(bad)),
                Err(format!(
                    "SVD_INBETWEEN_THREADS=\"{bad}\" is not a thread count: set it to a whole number of 1 or more, \
                     or unset it to use one thread per core"
                ))
            );
        }
    }

    #[test]
    fn cuda_failures_become_a_cause_and_a_next_step() {
        // verbatim from the onnxruntime-gpu 1.31.1 wheel on a machine without CUDA
        let raw = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library /x/capi/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory\n";
        assert_eq!(
            describe_cuda_failure(raw),
            "the CUDA 13 libraries are not found (libcublasLt.so.13): install CUDA 13 and cuDNN 9 on the library path, or `pip install \"onnxruntime-gpu[cuda,cudnn]==1.31.1\"` — Failed to load library /x/capi/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory"
        );
        let raw = "[ONNXRuntimeError] : 1 : FAIL : Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file: No such file or directory";
        assert!(describe_cuda_failure(raw).starts_with(
            "no NVIDIA driver is installed (libcuda.so.1 comes with the driver) — Failed to load"
        ));
        let raw = "Failed to load library /x/libonnxruntime_providers_cuda.so with error: /x/libonnxruntime_providers_cuda.so: cannot open shared object file: No such file or directory";
        assert!(
            describe_cuda_failure(raw)
                .starts_with("the onnxruntime-gpu installation is incomplete"),
            "{}",
            describe_cuda_failure(raw)
        );
        // anything else passes through, trimmed
        assert_eq!(
            describe_cuda_failure("  CUDA failure 100: no CUDA-capable device is detected\n"),
            "CUDA failure 100: no CUDA-capable device is detected"
        );
    }
}
