//! Locating and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`, so nothing is linked at build time and the GStreamer
//! plugin scanner never blacklists the plugin when the library is absent. The library is
//! searched for in this order, the first that loads wins:
//!
//! 1. the `ORT_DYLIB_PATH` environment variable (when set, it is the only place tried);
//! 2. the path recorded by `scripts/setup` (`.ort-path` in the source tree) or by
//!    `meson install` (`<datadir>/gst-onenip/ort-path`);
//! 3. `libonnxruntime.so.1` on the system loader path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

/// Name given to the ONNX Runtime environment (shows up in its logs).
const ENVIRONMENT_NAME: &str = "gst-onenip";

/// The library name tried on the system loader path.
pub const SYSTEM_LIBRARY: &str = "libonnxruntime.so.1";

/// Directory holding installed data (models, recorded ORT path), baked in by `meson`.
pub const INSTALLED_DATADIR: Option<&str> = option_env!("ONENIP_DATADIR");

/// Where one candidate came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateSource {
    EnvVar,
    RecordedBySetup(PathBuf),
    RecordedByInstall(PathBuf),
    SystemLoader,
}

impl fmt::Display for CandidateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnvVar => f.write_str("ORT_DYLIB_PATH"),
            Self::RecordedBySetup(file) => {
                write!(f, "recorded by scripts/setup in {}", file.display())
            }
            Self::RecordedByInstall(file) => {
                write!(f, "recorded by meson install in {}", file.display())
            }
            Self::SystemLoader => f.write_str("system loader path"),
        }
    }
}

/// One place looked at and why it did not work.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub source: CandidateSource,
    /// The library path tried, if the source gave one.
    pub path: Option<PathBuf>,
    pub reason: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}", not_found_message(.attempts))]
    NotFound { attempts: Vec<Attempt> },
    #[error("ONNX Runtime loaded from {path} but its environment could not be created: {reason}")]
    Environment { path: PathBuf, reason: String },
}

fn not_found_message(attempts: &[Attempt]) -> String {
    let mut msg = String::from("ONNX Runtime library not found. Looked at:\n");
    for a in attempts {
        match &a.path {
            Some(p) => msg.push_str(&format!(
                "  - {} ({}): {}\n",
                p.display(),
                a.source,
                a.reason
            )),
            None => msg.push_str(&format!("  - {}: {}\n", a.source, a.reason)),
        }
    }
    msg.push_str(
        "Fix: run ./scripts/setup (installs the onnxruntime wheel and records its library), \
         or set ORT_DYLIB_PATH to the absolute path of libonnxruntime.so \
         (e.g. .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0).",
    );
    msg
}

/// The loaded ONNX Runtime: the library's path and version, and the process-wide environment.
#[derive(Debug)]
pub struct OrtRuntime {
    pub library: PathBuf,
    /// Which place it was found through.
    pub source: CandidateSource,
    pub version: String,
    pub environment: Environment,
}

/// The recorded-path files, in search order.
pub fn record_files() -> Vec<CandidateSource> {
    // An installed plugin prefers its own record: the source tree may be gone.
    let mut files = Vec::new();
    if let Some(datadir) = INSTALLED_DATADIR {
        files.push(CandidateSource::RecordedByInstall(
            Path::new(datadir).join("ort-path"),
        ));
    }
    files.push(CandidateSource::RecordedBySetup(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".ort-path"),
    ));
    files
}

/// Candidate library paths in search order; sources that give no path become failed attempts.
fn candidates(
    env_value: Option<String>,
    records: &[CandidateSource],
) -> (Vec<(CandidateSource, PathBuf)>, Vec<Attempt>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();

    match env_value {
        // An explicit choice is the only one tried: silently loading another library
        // instead would hide the user's mistake.
        Some(v) if !v.trim().is_empty() => {
            let path = PathBuf::from(v.trim());
            if path.is_absolute() {
                found.push((CandidateSource::EnvVar, path));
            } else {
                skipped.push(Attempt {
                    source: CandidateSource::EnvVar,
                    path: Some(path),
                    reason: "not an absolute path".into(),
                });
            }
            return (found, skipped);
        }
        _ => skipped.push(Attempt {
            source: CandidateSource::EnvVar,
            path: None,
            reason: "not set".into(),
        }),
    }

    for source in records {
        let file = match source {
            CandidateSource::RecordedBySetup(f) | CandidateSource::RecordedByInstall(f) => f,
            _ => continue,
        };
        match std::fs::read_to_string(file) {
            Ok(text) if !text.trim().is_empty() => {
                found.push((source.clone(), PathBuf::from(text.trim())));
            }
            Ok(_) => skipped.push(Attempt {
                source: source.clone(),
                path: None,
                reason: "the record file is empty".into(),
            }),
            Err(e) => skipped.push(Attempt {
                source: source.clone(),
                path: None,
                reason: format!("no record ({e})"),
            }),
        }
    }

    found.push((CandidateSource::SystemLoader, PathBuf::from(SYSTEM_LIBRARY)));
    (found, skipped)
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime once per process and returns it.
///
/// A failure is not cached: a later call searches again (the user may have fixed it).
pub fn runtime() -> Result<&'static OrtRuntime, RuntimeError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = load_from(std::env::var("ORT_DYLIB_PATH").ok(), &record_files())?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Returns the runtime if it is already loaded, without searching.
pub fn loaded() -> Option<&'static OrtRuntime> {
    RUNTIME.get()
}

/// Searches the given places and loads the first library that works, creating the
/// environment. Normal code calls [`runtime`]; this is public so that tools and tests can
/// search other places. Only the first success in a process counts (ONNX Runtime allows
/// one environment), so call it at most once.
pub fn load_from(
    env_value: Option<String>,
    records: &[CandidateSource],
) -> Result<OrtRuntime, RuntimeError> {
    let (found, mut attempts) = candidates(env_value, records);
    let mut loaded = None;
    for (source, path) in found {
        if path.is_absolute() && !path.exists() {
            attempts.push(Attempt {
                source,
                path: Some(path),
                reason: "no such file".into(),
            });
            continue;
        }
        // ort keeps the first library that loads; a failed try leaves nothing behind.
        match ort::init_from(&path) {
            Ok(builder) => {
                loaded = Some((source, path, builder));
                break;
            }
            Err(e) => attempts.push(Attempt {
                source,
                path: Some(path),
                reason: e.to_string(),
            }),
        }
    }
    let Some((source, library, builder)) = loaded else {
        return Err(RuntimeError::NotFound { attempts });
    };
    let environment =
        builder
            .with_name(ENVIRONMENT_NAME)
            .build()
            .map_err(|e| RuntimeError::Environment {
                path: library.clone(),
                reason: e.to_string(),
            })?;
    let version = library_version(&library);
    log::info!(
        "ONNX Runtime {version} loaded from {} ({source})",
        library.display()
    );
    Ok(OrtRuntime {
        library,
        source,
        version,
        environment,
    })
}

/// The version string the library reports (`OrtGetApiBase()->GetVersionString()`).
fn library_version(library: &Path) -> String {
    // SAFETY: ort has already loaded this very library successfully and checked that it
    // exports `OrtGetApiBase`; opening it again only takes another reference, and the
    // version string is a static, NUL-terminated buffer owned by the library.
    unsafe {
        let Ok(lib) = libloading::Library::new(library) else {
            return "unknown".into();
        };
        let Ok(get_base) =
            lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase")
        else {
            return "unknown".into();
        };
        let base = get_base();
        if base.is_null() {
            return "unknown".into();
        }
        let version = ((*base).GetVersionString)();
        if version.is_null() {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(version)
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_env_path_is_refused_and_reported() {
        let (found, skipped) = candidates(Some("libonnxruntime.so".into()), &[]);
        assert!(found.is_empty(), "an explicit choice is the only one tried");
        assert_eq!(skipped[0].reason, "not an absolute path");
    }

    #[test]
    fn search_order_is_records_then_system_and_env_alone_when_set() {
        let dir = std::env::temp_dir().join(format!("onenip-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = dir.join("ort-path");
        std::fs::write(&record, "/opt/ort/libonnxruntime.so.1.32.0\n").unwrap();
        let records = [
            CandidateSource::RecordedByInstall(record.clone()),
            CandidateSource::RecordedBySetup(dir.join("missing")),
        ];
        let paths = |found: Vec<(CandidateSource, PathBuf)>| -> Vec<String> {
            found
                .iter()
                .map(|(_, p)| p.to_string_lossy().into_owned())
                .collect()
        };
        let (found, skipped) = candidates(None, &records);
        assert_eq!(
            paths(found),
            ["/opt/ort/libonnxruntime.so.1.32.0", SYSTEM_LIBRARY]
        );
        assert_eq!(skipped.len(), 2, "env not set, setup record missing");
        let (found, _) = candidates(Some("/env/libonnxruntime.so".into()), &records);
        assert_eq!(paths(found), ["/env/libonnxruntime.so"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn not_found_error_lists_every_place_and_the_fix() {
        let records = [CandidateSource::RecordedBySetup(PathBuf::from(
            "/nonexistent/.ort-path",
        ))];
        let (_, mut attempts) = candidates(None, &records);
        attempts.push(Attempt {
            source: CandidateSource::SystemLoader,
            path: Some(PathBuf::from(SYSTEM_LIBRARY)),
            reason: "cannot open shared object file".into(),
        });
        let msg = RuntimeError::NotFound { attempts }.to_string();
        assert!(msg.contains("ORT_DYLIB_PATH: not set"), "{msg}");
        assert!(msg.contains("/nonexistent/.ort-path"), "{msg}");
        assert!(msg.contains(SYSTEM_LIBRARY), "{msg}");
        assert!(msg.contains("./scripts/setup"), "{msg}");
    }
}
