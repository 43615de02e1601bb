//! Execution-provider selection.
//!
//! Each provider is registered by hand on its own session builder, so that a provider that
//! cannot run is seen and reported instead of ONNX Runtime silently running on CPU. `auto`
//! tries TensorRT, then CUDA, then CPU.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ort::ep::{self, ExecutionProvider as _};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use crate::runtime::{self, RuntimeError};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExecutionProvider {
    /// TensorRT, then CUDA, then CPU: the first that works.
    #[default]
    Auto,
    TensorRt,
    Cuda,
    Cpu,
}

impl ExecutionProvider {
    pub const ALL: [ExecutionProvider; 4] = [Self::Auto, Self::TensorRt, Self::Cuda, Self::Cpu];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::TensorRt => "tensorrt",
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }

    /// The GPU providers to try, in order, before CPU.
    fn accelerators(self) -> &'static [ExecutionProvider] {
        match self {
            Self::Auto => &[Self::TensorRt, Self::Cuda],
            Self::TensorRt => &[Self::TensorRt],
            Self::Cuda => &[Self::Cuda],
            Self::Cpu => &[],
        }
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown execution provider '{s}' (expected auto, tensorrt, cuda or cpu)")
            })
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOptions {
    pub requested: ExecutionProvider,
    /// Fail instead of falling back. With `auto`, fail unless a GPU provider runs.
    pub strict: bool,
    pub device_id: i32,
    /// TensorRT engine and timing cache directory; `None` disables the caches.
    pub engine_cache_dir: Option<PathBuf>,
    /// TensorRT fp16 kernels.
    pub fp16: bool,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime decide.
    pub threads: usize,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            requested: ExecutionProvider::Auto,
            strict: false,
            device_id: 0,
            engine_cache_dir: None,
            fp16: false,
            threads: 0,
        }
    }
}

/// A provider that was tried and could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub provider: ExecutionProvider,
    /// The reason, as ONNX Runtime gave it.
    pub reason: String,
}

/// What runs where, after a session was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    pub requested: ExecutionProvider,
    /// Never `Auto`.
    pub active: ExecutionProvider,
    pub fallbacks: Vec<Fallback>,
}

impl ProviderReport {
    /// True when the provider in use is not the one asked for (`auto` falls back only to CPU).
    pub fn fell_back(&self) -> bool {
        !self.fallbacks.is_empty()
    }
}

impl fmt::Display for ProviderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requested {}, running on {}",
            self.requested, self.active
        )?;
        for fb in &self.fallbacks {
            write!(f, "; {} unavailable: {}", fb.provider, fb.reason)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(
        "{model}: execution provider {provider} unavailable and strict-provider is set: {reason}"
    )]
    Strict {
        model: PathBuf,
        provider: ExecutionProvider,
        reason: String,
    },
    #[error("{model}: cannot create an ONNX Runtime session: {reason}")]
    Load { model: PathBuf, reason: String },
}

/// A session and the report of where it runs.
#[derive(Debug)]
pub struct SessionBuild {
    pub session: Session,
    pub report: ProviderReport,
}

/// Builds a session for `model`, registering providers explicitly as `options` ask.
pub fn build_session(
    model: &Path,
    options: &ProviderOptions,
) -> Result<SessionBuild, SessionError> {
    let rt = runtime::runtime()?;
    let mut fallbacks = Vec::new();

    for &provider in options.requested.accelerators() {
        match try_accelerator(rt, model, options, provider) {
            Ok(session) => {
                return Ok(SessionBuild {
                    session,
                    report: ProviderReport {
                        requested: options.requested,
                        active: provider,
                        fallbacks,
                    },
                })
            }
            Err(reason) => {
                log::warn!(
                    "{}: {provider} unavailable, falling back: {reason}",
                    model.display()
                );
                fallbacks.push(Fallback { provider, reason });
            }
        }
    }

    if options.strict {
        if let Some(last) = fallbacks.last() {
            let reason = fallbacks
                .iter()
                .map(|f| format!("{}: {}", f.provider, f.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(SessionError::Strict {
                model: model.to_path_buf(),
                provider: if options.requested == ExecutionProvider::Auto {
                    ExecutionProvider::Auto
                } else {
                    last.provider
                },
                reason,
            });
        }
    }

    let session = base_builder(rt, model, options)
        .and_then(|b| commit(b, model))
        .map_err(|reason| SessionError::Load {
            model: model.to_path_buf(),
            reason,
        })?;
    Ok(SessionBuild {
        session,
        report: ProviderReport {
            requested: options.requested,
            active: ExecutionProvider::Cpu,
            fallbacks,
        },
    })
}

fn base_builder(
    rt: &runtime::OrtRuntime,
    model: &Path,
    options: &ProviderOptions,
) -> Result<SessionBuilder, String> {
    let err = |e: ort::Error| format!("{}: {e}", model.display());
    let mut builder = Session::builder(&rt.environment)
        .map_err(err)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(e.into()))?
        // Workers spin between the nodes of a run: waking a sleeping worker for each of the
        // reconstructor's nodes cost a fifth of its time on 2 cores (17.3 vs 13.6 ms).
        .with_intra_op_spinning(true)
        .map_err(|e| err(e.into()))?
        // But they stop when the run returns. Each graph has its own pool, and workers left
        // spinning took the cores from the next graph and from the rest of the pipeline:
        // 30 ms per frame against 19 ms with no spinning at all, 16 ms with this.
        .with_config_entry("session.force_spinning_stop", "1")
        .map_err(|e| err(e.into()))?;
    if options.threads > 0 {
        builder = builder
            .with_intra_threads(options.threads)
            .map_err(|e| err(e.into()))?;
    }
    Ok(builder)
}

fn commit(mut builder: SessionBuilder, model: &Path) -> Result<Session, String> {
    builder.commit_from_file(model).map_err(|e| e.to_string())
}

fn try_accelerator(
    rt: &runtime::OrtRuntime,
    model: &Path,
    options: &ProviderOptions,
    provider: ExecutionProvider,
) -> Result<Session, String> {
    let mut builder = base_builder(rt, model, options)?;
    let registered = match provider {
        ExecutionProvider::TensorRt => {
            let mut trt = ep::TensorRT::default()
                .with_device_id(options.device_id)
                .with_fp16(options.fp16);
            if let Some(dir) = &options.engine_cache_dir {
                let dir = dir.display().to_string();
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(&dir)
                    .with_timing_cache(true)
                    .with_timing_cache_path(&dir);
            }
            check_compiled_in::<ep::TensorRT>("TensorRT")?;
            trt.register(&mut builder)
        }
        ExecutionProvider::Cuda => {
            check_compiled_in::<ep::CUDA>("CUDA")?;
            ep::CUDA::default()
                .with_device_id(options.device_id)
                .register(&mut builder)
        }
        ExecutionProvider::Auto | ExecutionProvider::Cpu => unreachable!("not an accelerator"),
    };
    registered.map_err(|e| e.to_string())?;
    commit(builder, model)
}

/// `is_available` only says whether ONNX Runtime was compiled with the provider; it is
/// still worth checking first because the message is clearer than the registration error.
fn check_compiled_in<E: ep::ExecutionProvider>(name: &str) -> Result<(), String> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "this ONNX Runtime build has no {name} execution provider \
             (the CPU-only onnxruntime wheel? install onnxruntime-gpu)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_provider_names() {
        assert_eq!("TensorRT".parse(), Ok(ExecutionProvider::TensorRt));
        assert_eq!(" cpu ".parse(), Ok(ExecutionProvider::Cpu));
        let err = "rocm".parse::<ExecutionProvider>().unwrap_err();
        assert!(err.contains("'rocm'") && err.contains("tensorrt"), "{err}");
    }

    #[test]
    fn auto_tries_tensorrt_then_cuda() {
        assert_eq!(
            ExecutionProvider::Auto.accelerators(),
            [ExecutionProvider::TensorRt, ExecutionProvider::Cuda]
        );
        assert!(ExecutionProvider::Cpu.accelerators().is_empty());
    }
}
