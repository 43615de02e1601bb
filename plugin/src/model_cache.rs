// SPDX-License-Identifier: MIT OR Apache-2.0

//! One set of ONNX Runtime sessions per model and provider setup in the process, shared by
//! every element that uses them (like DL Streamer's model-instance-id, without the id):
//! a second camera on the same model costs no second copy of the weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use onenip::detector::{EngineError, Models};
use onenip::provider::ProviderOptions;

type Key = (PathBuf, String);

static MODELS: LazyLock<Mutex<HashMap<Key, Weak<Models>>>> = LazyLock::new(Mutex::default);

/// The loaded model for `dir` and `options`, shared while any element holds it.
pub fn load(dir: &Path, options: &ProviderOptions) -> Result<Arc<Models>, EngineError> {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let key = (canonical, format!("{options:?}"));
    // Held while loading, so that two elements starting together load the model once.
    let mut models = MODELS.lock().unwrap_or_else(|e| e.into_inner());
    models.retain(|_, weak| weak.strong_count() > 0);
    if let Some(shared) = models.get(&key).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    let loaded = Arc::new(Models::load(dir, options)?);
    models.insert(key, Arc::downgrade(&loaded));
    Ok(loaded)
}
