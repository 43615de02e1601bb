//! Set-up shared by the integration tests: GStreamer with the plugin registered, and the
//! repository's test data and bundled model.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Initialises GStreamer and registers the plugin statically, once per test binary.
pub fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstonenip::plugin_register_static().expect("onenip plugin registers");
    });
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The bundled model.
pub fn model_dir() -> PathBuf {
    repo().join("models/onenip-s")
}

/// A file or folder of `tests/data`, as a pipeline property value.
pub fn data(name: &str) -> String {
    repo().join("tests/data").join(name).display().to_string()
}
