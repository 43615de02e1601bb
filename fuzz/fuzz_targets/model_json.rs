//! `model.json` parsing never panics: any text is a model description or a clear error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(spec) = onenip::model::ModelSpec::parse(Path::new("/fuzz/model"), text) {
        // What the element derives from an accepted description must be usable too.
        for graph in onenip::model::Graph::ALL {
            let _ = spec.expected_io(graph);
            let _ = spec.graph_path(graph);
        }
        assert!(spec.feature_size() > 0);
    }
});
