//! Where the ONNX Runtime shared library may be, in the order we try them.

use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Candidate {
    pub path: PathBuf,
    pub origin: &'static str,
}

/// The directory of the shared object (or executable) this code is linked into. Inside a host,
/// `current_exe()` is the host's binary, so the plugin must ask the dynamic loader about one of its own
/// functions instead (research/ort.md §1.2).
pub fn plugin_directory() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe_zeroed_dl_info();
    let addr = plugin_directory as *const () as *const c_void;
    // SAFETY: dladdr only reads loader tables; `addr` is the address of a function in this object, and `info` is a
    // valid, writable Dl_info. On success dli_fname points to a NUL-terminated string owned by the loader that
    // stays valid while the object is loaded (we link with -z nodelete, so for the process lifetime).
    let ok = unsafe { libc::dladdr(addr, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: checked non-null above; the loader guarantees NUL termination.
    let fname = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    let path = std::fs::canonicalize(&fname).unwrap_or_else(|_| PathBuf::from(fname));
    path.parent().map(Path::to_path_buf)
}

fn unsafe_zeroed_dl_info() -> libc::Dl_info {
    libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    }
}

const LIB_NAMES: [&str; 2] = ["libonnxruntime.so.1.31.1", "libonnxruntime.so"];

/// Every place to look, first match wins: an explicit setting, `SVD_INBETWEEN_ORT_LIB`, next to the plugin
/// binary (bundle `lib/`), then a pip-installed onnxruntime (the project venv's python, then `python3`).
pub fn candidate_libraries(explicit: Option<&Path>) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(Candidate {
            path: p.to_path_buf(),
            origin: "explicit setting",
        });
    }
    if let Some(p) = std::env::var_os("SVD_INBETWEEN_ORT_LIB").filter(|v| !v.is_empty()) {
        out.push(Candidate {
            path: PathBuf::from(p),
            origin: "SVD_INBETWEEN_ORT_LIB",
        });
    }
    if let Some(dir) = plugin_directory() {
        for sub in ["lib", "."] {
            for name in LIB_NAMES {
                out.push(Candidate {
                    path: dir.join(sub).join(name),
                    origin: "next to the plugin binary",
                });
            }
        }
    }
    let mut pythons: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SVD_INBETWEEN_PYTHON") {
        pythons.push(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME") {
        pythons.push(PathBuf::from(home).join(".cache/svd-inbetween/venv/bin/python"));
    }
    pythons.push(PathBuf::from("python3"));
    for py in pythons {
        if let Some(dir) = pip_onnxruntime_dir(&py) {
            for name in LIB_NAMES {
                let p = dir.join(name);
                if p.exists() {
                    // Two of the Pythons are often the same venv; list each library once.
                    if !out.iter().any(|c| c.path == p) {
                        out.push(Candidate {
                            path: p,
                            origin: "pip-installed onnxruntime",
                        });
                    }
                    break;
                }
            }
        }
    }
    out
}

fn pip_onnxruntime_dir(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(s.trim()))
}
