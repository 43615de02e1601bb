//! The model directory and its contract: `model.json` beside `prompt.onnx`,
//! `reconstructor.onnx` and `refiner.onnx` (see `onenip-spec.md`, section 8).
//!
//! Everything the element needs to know about a model is read and checked here, before any
//! frame flows: a model whose names, shapes or contract version do not match is refused with
//! an error that names the file and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

use ort::session::Session;
use serde::Deserialize;

/// The contract version this engine speaks.
pub const CONTRACT_VERSION: &str = "1";

/// Name of the bundled default model's directory.
pub const DEFAULT_MODEL_NAME: &str = "onenip-s";

/// The three graphs of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    Prompt,
    Reconstructor,
    Refiner,
}

impl Graph {
    pub const ALL: [Graph; 3] = [Graph::Prompt, Graph::Reconstructor, Graph::Refiner];

    pub fn file_name(self) -> &'static str {
        match self {
            Self::Prompt => "prompt.onnx",
            Self::Reconstructor => "reconstructor.onnx",
            Self::Refiner => "refiner.onnx",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Reconstructor => "reconstructor",
            Self::Refiner => "refiner",
        }
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ModelError {
    /// The file or directory at fault.
    pub path: PathBuf,
    pub reason: String,
}

impl ModelError {
    fn new(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `model.json` as written by `onenip-export` / `onenip-calibrate`. Unknown fields are kept
/// out; only what the engine uses is read.
#[derive(Debug, Deserialize)]
struct ModelJson {
    contract_version: String,
    variant: String,
    backbone: String,
    input_size: u32,
    mean: [f32; 3],
    std: [f32; 3],
    feature_stride: u32,
    channels: u32,
    hidden_dim: u32,
    fuse_k: f32,
    image_threshold: f32,
    pixel_threshold: f32,
    #[serde(default)]
    calibrated: bool,
    #[serde(default)]
    graphs: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A graph input or output: its name and shape.
pub type Outlet = (&'static str, Vec<i64>);

/// A validated model directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub dir: PathBuf,
    pub variant: String,
    pub backbone: String,
    /// Model input is `input_size` x `input_size`.
    pub input_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub feature_stride: u32,
    /// Feature channels C of the residual.
    pub channels: u32,
    /// Transformer width D of the prompt tokens.
    pub hidden_dim: u32,
    pub fuse_k: f32,
    pub image_threshold: f32,
    pub pixel_threshold: f32,
    /// False when the thresholds are export-time placeholders.
    pub calibrated: bool,
}

impl ModelSpec {
    /// Reads and checks `dir/model.json` and that the three graph files exist.
    pub fn load(dir: &Path) -> Result<ModelSpec, ModelError> {
        if !dir.exists() {
            return Err(ModelError::new(dir, "model directory does not exist"));
        }
        if !dir.is_dir() {
            return Err(ModelError::new(
                dir,
                "not a directory (the model is a directory with model.json and three .onnx files)",
            ));
        }
        let json_path = dir.join("model.json");
        let text = std::fs::read_to_string(&json_path).map_err(|e| {
            ModelError::new(
                &json_path,
                format!("cannot read the model description: {e}"),
            )
        })?;
        let spec = Self::parse(dir, &text).map_err(|reason| ModelError::new(&json_path, reason))?;
        for graph in Graph::ALL {
            let file = spec.graph_path(graph);
            match std::fs::metadata(&file) {
                Ok(m) if m.len() == 0 => return Err(ModelError::new(&file, "empty file")),
                Ok(_) => {}
                Err(e) => return Err(ModelError::new(&file, format!("cannot read: {e}"))),
            }
        }
        Ok(spec)
    }

    /// Parses and checks the text of a `model.json`; `dir` is where the graphs live.
    pub fn parse(dir: &Path, text: &str) -> Result<ModelSpec, String> {
        let json: ModelJson =
            serde_json::from_str(text).map_err(|e| format!("malformed model.json: {e}"))?;
        if json.contract_version != CONTRACT_VERSION {
            return Err(format!(
                "contract_version is \"{}\", this plugin needs \"{CONTRACT_VERSION}\" \
                 (re-export the model with a matching onenip-export)",
                json.contract_version
            ));
        }
        let spec = ModelSpec {
            dir: dir.to_path_buf(),
            variant: json.variant,
            backbone: json.backbone,
            input_size: json.input_size,
            mean: json.mean,
            std: json.std,
            feature_stride: json.feature_stride,
            channels: json.channels,
            hidden_dim: json.hidden_dim,
            fuse_k: json.fuse_k,
            image_threshold: json.image_threshold,
            pixel_threshold: json.pixel_threshold,
            calibrated: json.calibrated,
        };
        spec.check_numbers()?;
        if let Some(graphs) = &json.graphs {
            for graph in Graph::ALL {
                let file = graphs
                    .get(graph.key())
                    .and_then(|g| g.get("file"))
                    .and_then(|f| f.as_str());
                if let Some(file) = file {
                    if file != graph.file_name() {
                        return Err(format!(
                            "graph {graph} is \"{file}\", the contract names it \"{}\"",
                            graph.file_name()
                        ));
                    }
                }
            }
        }
        Ok(spec)
    }

    fn check_numbers(&self) -> Result<(), String> {
        let s = self.input_size;
        if s == 0 || s > 4096 {
            return Err(format!("input_size {s} is out of range (1..=4096)"));
        }
        if self.feature_stride == 0 || !s.is_multiple_of(self.feature_stride) {
            return Err(format!(
                "input_size {s} is not a multiple of feature_stride {}",
                self.feature_stride
            ));
        }
        if self.channels == 0 || self.hidden_dim == 0 {
            return Err("channels and hidden_dim must be positive".into());
        }
        if self.std.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(format!("std {:?} must be positive", self.std));
        }
        for (name, v) in [
            ("fuse_k", self.fuse_k),
            ("image_threshold", self.image_threshold),
            ("pixel_threshold", self.pixel_threshold),
        ] {
            if !v.is_finite() {
                return Err(format!("{name} is not a finite number"));
            }
        }
        Ok(())
    }

    pub fn graph_path(&self, graph: Graph) -> PathBuf {
        self.dir.join(graph.file_name())
    }

    /// Side of the feature map, h = w = input_size / feature_stride.
    pub fn feature_size(&self) -> u32 {
        self.input_size / self.feature_stride
    }

    /// Number of prompt tokens N = h * w.
    pub fn num_tokens(&self) -> u32 {
        self.feature_size() * self.feature_size()
    }

    /// Inputs and outputs each graph must have, in order, with their shapes.
    pub fn expected_io(&self, graph: Graph) -> (Vec<Outlet>, Vec<Outlet>) {
        let s = self.input_size as i64;
        let h = self.feature_size() as i64;
        let n = self.num_tokens() as i64;
        let d = self.hidden_dim as i64;
        let c = self.channels as i64;
        let image = vec![1, 3, s, s];
        let tokens = vec![1, n, d];
        let map = vec![1, 1, s, s];
        let residual = vec![1, c, h, h];
        match graph {
            Graph::Prompt => (
                vec![("prompt_image", image)],
                vec![("prompt_tokens", tokens)],
            ),
            Graph::Reconstructor => (
                vec![("image", image), ("prompt_tokens", tokens)],
                vec![("rec_map", map.clone()), ("residual", residual)],
            ),
            Graph::Refiner => (
                vec![("residual", residual), ("rec_map", map.clone())],
                vec![("anomaly_map", map), ("score", vec![1])],
            ),
        }
    }

    /// Checks a loaded session against the contract: names, shapes, element type and the
    /// graph's own `contract_version` metadata.
    pub fn validate_session(&self, graph: Graph, session: &Session) -> Result<(), ModelError> {
        let path = self.graph_path(graph);
        let err = |reason: String| ModelError::new(&path, reason);

        let version = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("contract_version"));
        match version.as_deref() {
            Some(CONTRACT_VERSION) => {}
            Some(v) => {
                return Err(err(format!(
                    "graph metadata contract_version is \"{v}\", this plugin needs \"{CONTRACT_VERSION}\""
                )))
            }
            None => return Err(err("graph metadata has no contract_version (not exported by onenip-export?)".into())),
        }
        if let Some(Some(name)) = session.metadata().ok().map(|m| m.custom("graph")) {
            if name != graph.key() {
                return Err(err(format!(
                    "this file holds the {name} graph, expected the {graph} graph (files swapped?)"
                )));
            }
        }

        let (inputs, outputs) = self.expected_io(graph);
        let got_inputs: Vec<_> = session.inputs().iter().map(outlet_desc).collect();
        let got_outputs: Vec<_> = session.outputs().iter().map(outlet_desc).collect();
        let want = |list: &[(&str, Vec<i64>)]| -> Vec<(String, Option<Vec<i64>>)> {
            list.iter()
                .map(|(n, s)| (n.to_string(), Some(s.clone())))
                .collect()
        };
        if got_inputs != want(&inputs) || got_outputs != want(&outputs) {
            return Err(err(format!(
                "graph inputs/outputs do not match the contract for input_size {}: found {} -> {}, expected {} -> {}",
                self.input_size,
                describe(&got_inputs),
                describe(&got_outputs),
                describe(&want(&inputs)),
                describe(&want(&outputs)),
            )));
        }
        Ok(())
    }
}

/// Name and shape of a float32 tensor outlet; `None` shape for anything else.
fn outlet_desc(outlet: &ort::value::Outlet) -> (String, Option<Vec<i64>>) {
    let shape = match outlet.dtype() {
        ort::value::ValueType::Tensor { ty, shape, .. }
            if *ty == ort::value::TensorElementType::Float32 =>
        {
            Some(shape.iter().copied().collect())
        }
        _ => None,
    };
    (outlet.name().to_string(), shape)
}

fn describe(list: &[(String, Option<Vec<i64>>)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(n, s)| match s {
            Some(s) => format!("{n}{s:?}"),
            None => format!("{n}(not float32)"),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Where the bundled model is looked for when the `model` property is not set: the installed
/// data dir (baked in by meson), then the source tree (a development build).
pub fn default_model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(datadir) = crate::runtime::INSTALLED_DATADIR {
        dirs.push(Path::new(datadir).join("models").join(DEFAULT_MODEL_NAME));
    }
    dirs.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(DEFAULT_MODEL_NAME),
    );
    dirs
}

/// The first default model directory that has a `model.json`, or the list looked at.
pub fn default_model_dir() -> Result<PathBuf, ModelError> {
    let dirs = default_model_dirs();
    dirs.iter()
        .find(|d| d.join("model.json").is_file())
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            ModelError::new(
                &dirs[0],
                format!(
                    "no bundled model found (looked in {}); set the model property to a model directory",
                    looked.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "contract_version": "1", "variant": "onenip-s", "backbone": "efficientnet-lite0",
        "input_size": 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "feature_stride": 16, "channels": 192, "hidden_dim": 128,
        "fuse_k": 1.5, "image_threshold": 0.8, "pixel_threshold": 0.7, "calibrated": true,
        "graphs": {"prompt": {"file": "prompt.onnx"}}
    }"#;

    #[test]
    fn parses_a_good_model_json() {
        let spec = ModelSpec::parse(Path::new("/m"), GOOD).unwrap();
        assert_eq!(spec.input_size, 256);
        assert_eq!(spec.feature_size(), 16);
        assert_eq!(spec.num_tokens(), 256);
        assert_eq!(
            spec.graph_path(Graph::Refiner),
            Path::new("/m/refiner.onnx")
        );
        let (inputs, outputs) = spec.expected_io(Graph::Reconstructor);
        assert_eq!(inputs[1], ("prompt_tokens", vec![1, 256, 128]));
        assert_eq!(outputs[1], ("residual", vec![1, 192, 16, 16]));
    }

    #[test]
    fn refuses_another_contract_version() {
        let text = GOOD.replace(r#""contract_version": "1""#, r#""contract_version": "2""#);
        let err = ModelSpec::parse(Path::new("/m"), &text).unwrap_err();
        assert!(err.contains("contract_version is \"2\""), "{err}");
    }

    #[test]
    fn refuses_malformed_json_and_missing_fields() {
        let err = ModelSpec::parse(Path::new("/m"), "{ not json").unwrap_err();
        assert!(err.starts_with("malformed model.json"), "{err}");
        let err = ModelSpec::parse(Path::new("/m"), r#"{"contract_version": "1"}"#).unwrap_err();
        assert!(err.contains("missing field"), "{err}");
    }

    #[test]
    fn refuses_bad_numbers() {
        let text = GOOD.replace(r#""input_size": 256"#, r#""input_size": 250"#);
        let err = ModelSpec::parse(Path::new("/m"), &text).unwrap_err();
        assert!(err.contains("not a multiple of feature_stride"), "{err}");
        let text = GOOD.replace(
            r#""std": [0.229, 0.224, 0.225]"#,
            r#""std": [0.229, 0, 0.225]"#,
        );
        assert!(ModelSpec::parse(Path::new("/m"), &text)
            .unwrap_err()
            .contains("std"));
    }

    #[test]
    fn refuses_renamed_graph_files() {
        let text = GOOD.replace(r#""file": "prompt.onnx""#, r#""file": "refiner.onnx""#);
        let err = ModelSpec::parse(Path::new("/m"), &text).unwrap_err();
        assert!(err.contains("graph prompt is \"refiner.onnx\""), "{err}");
    }

    #[test]
    fn missing_directory_is_named() {
        let err = ModelSpec::load(Path::new("/nonexistent/model")).unwrap_err();
        assert_eq!(err.path, Path::new("/nonexistent/model"));
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
