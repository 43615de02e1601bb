//! Execution-provider selection on a CPU-only machine, against the real ONNX Runtime
//! recorded by `scripts/setup`.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use onenip::provider::{build_session, ExecutionProvider, ProviderOptions, SessionError};
use ort::value::TensorRef;

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-add.onnx")
}

fn options(requested: ExecutionProvider, strict: bool) -> ProviderOptions {
    ProviderOptions {
        requested,
        strict,
        threads: 1,
        ..Default::default()
    }
}

#[test]
fn cpu_runs_the_model() {
    let mut build = build_session(&tiny_model(), &options(ExecutionProvider::Cpu, true)).unwrap();
    assert_eq!(build.report.active, ExecutionProvider::Cpu);
    assert!(!build.report.fell_back());

    let x = Array2::<f32>::from_shape_vec((1, 4), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    let outputs = build
        .session
        .run(ort::inputs!["x" => TensorRef::from_array_view(&x).unwrap()])
        .unwrap();
    let (_, y) = outputs["y"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn cuda_not_strict_falls_back_to_cpu_and_says_why() {
    let build = build_session(&tiny_model(), &options(ExecutionProvider::Cuda, false)).unwrap();
    assert_eq!(build.report.requested, ExecutionProvider::Cuda);
    assert_eq!(build.report.active, ExecutionProvider::Cpu);
    assert_eq!(build.report.fallbacks.len(), 1);
    let fallback = &build.report.fallbacks[0];
    assert_eq!(fallback.provider, ExecutionProvider::Cuda);
    assert!(
        fallback.reason.contains("CUDA"),
        "reason: {}",
        fallback.reason
    );
    let text = build.report.to_string();
    assert!(
        text.contains("running on cpu") && text.contains("cuda unavailable"),
        "{text}"
    );
}

#[test]
fn cuda_strict_fails_with_the_reason() {
    let err = build_session(&tiny_model(), &options(ExecutionProvider::Cuda, true)).unwrap_err();
    let SessionError::Strict {
        provider, reason, ..
    } = &err
    else {
        panic!("expected a strict-provider error, got {err}");
    };
    assert_eq!(*provider, ExecutionProvider::Cuda);
    assert!(reason.contains("CUDA"), "{reason}");
    let text = err.to_string();
    assert!(
        text.contains("tiny-add.onnx") && text.contains("strict"),
        "{text}"
    );
}

#[test]
fn auto_tries_tensorrt_and_cuda_then_runs_on_cpu() {
    let build = build_session(&tiny_model(), &options(ExecutionProvider::Auto, false)).unwrap();
    assert_eq!(build.report.active, ExecutionProvider::Cpu);
    let tried: Vec<_> = build.report.fallbacks.iter().map(|f| f.provider).collect();
    assert_eq!(
        tried,
        [ExecutionProvider::TensorRt, ExecutionProvider::Cuda]
    );
}

#[test]
fn tensorrt_strict_fails_on_a_cpu_build() {
    let mut opts = options(ExecutionProvider::TensorRt, true);
    opts.fp16 = true;
    opts.engine_cache_dir = Some(std::env::temp_dir().join("onenip-trt-cache"));
    let err = build_session(&tiny_model(), &opts).unwrap_err();
    assert!(err.to_string().contains("TensorRT"), "{err}");
}

#[test]
fn a_missing_model_names_the_file() {
    let missing = Path::new("/nonexistent/reconstructor.onnx");
    let err = build_session(missing, &options(ExecutionProvider::Cpu, false)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/nonexistent/reconstructor.onnx"), "{text}");
}

#[test]
fn runtime_reports_library_and_version() {
    let rt = onenip::runtime::runtime().unwrap();
    assert!(
        rt.library.to_string_lossy().contains("onnxruntime"),
        "{:?}",
        rt.library
    );
    assert!(rt.version.starts_with("1."), "version {}", rt.version);
}
