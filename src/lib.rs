//! OneNIP anomaly detection engine.
//!
//! Everything the GStreamer elements need that is not GStreamer: locating and loading
//! ONNX Runtime (one process-wide environment), choosing the execution provider and
//! reporting what really runs. No GStreamer types appear in this API.

pub mod detector;
pub mod model;
pub mod postprocess;
pub mod preprocess;
pub mod prompt_image;
pub mod provider;
pub mod resample;
pub mod runtime;

/// The `ort` crate this engine is built on, for callers that hold its tensors.
pub use ort;
pub use provider::{ExecutionProvider, Fallback, ProviderOptions, ProviderReport, SessionBuild};
pub use runtime::{OrtRuntime, RuntimeError};
