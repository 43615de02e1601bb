//! The error a user sees when ONNX Runtime cannot be found. Its own test binary, so that no
//! other test has loaded the library into this process first.

use std::path::{Path, PathBuf};

use onenip::runtime::{load_from, CandidateSource, RuntimeError};

#[test]
fn missing_library_lists_every_place_looked_at() {
    let records = [
        CandidateSource::RecordedBySetup(PathBuf::from("/nonexistent/.ort-path")),
        CandidateSource::RecordedByInstall(PathBuf::from("/nonexistent/share/gst-onenip/ort-path")),
    ];
    let err = load_from(None, &records).unwrap_err();
    let RuntimeError::NotFound { attempts } = &err else {
        panic!("expected NotFound, got {err}");
    };
    assert_eq!(attempts.len(), 4, "{err}");
    let text = err.to_string();
    for needle in [
        "ORT_DYLIB_PATH: not set",
        "/nonexistent/.ort-path",
        "/nonexistent/share/gst-onenip/ort-path",
        "libonnxruntime.so.1 (system loader path)",
        "ORT_DYLIB_PATH to the absolute path",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn a_file_that_is_not_a_library_is_refused_with_the_reason() {
    let not_a_library = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-add.onnx");
    let records = [CandidateSource::RecordedBySetup(PathBuf::from(
        "/nonexistent/.ort-path",
    ))];
    let err = load_from(Some(not_a_library.display().to_string()), &records).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("tiny-add.onnx (ORT_DYLIB_PATH)"), "{text}");
    // Only the explicit choice was tried.
    assert!(!text.contains("/nonexistent/.ort-path"), "{text}");
}
