//! A broken model directory is refused at load with an error that names the file at fault
//! and the reason: the element turns this text into its start error.

use std::fs;
use std::path::{Path, PathBuf};

use onenip::detector::Models;
use onenip::provider::{ExecutionProvider, ProviderOptions};

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/onenip-s")
}

/// A fresh copy of the bundled model in a temporary directory.
fn copy_model(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("onenip-model-errors-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for f in [
        "model.json",
        "prompt.onnx",
        "reconstructor.onnx",
        "refiner.onnx",
    ] {
        fs::copy(bundled().join(f), dir.join(f)).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    let options = ProviderOptions {
        requested: ExecutionProvider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let err = Models::load(dir, &options).expect_err("the model must be refused");
    let text = err.to_string();
    let _ = fs::remove_dir_all(dir);
    text
}

fn edit_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("model.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

#[test]
fn the_bundled_model_loads() {
    let options = ProviderOptions {
        requested: ExecutionProvider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let models = Models::load(&bundled(), &options).unwrap();
    assert_eq!(models.report().active, ExecutionProvider::Cpu);
    assert!(models.spec().calibrated, "the bundled model is calibrated");
}

#[test]
fn missing_directory() {
    let text = load_error(Path::new("/nonexistent/onenip-model"));
    assert!(
        text.contains("/nonexistent/onenip-model: model directory does not exist"),
        "{text}"
    );
}

#[test]
fn empty_directory() {
    let dir = copy_model("empty");
    for f in fs::read_dir(&dir).unwrap() {
        fs::remove_file(f.unwrap().path()).unwrap();
    }
    let text = load_error(&dir);
    assert!(
        text.contains("model.json: cannot read the model description"),
        "{text}"
    );
}

#[test]
fn truncated_onnx_file() {
    let dir = copy_model("truncated");
    let path = dir.join("reconstructor.onnx");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let text = load_error(&dir);
    assert!(
        text.contains("reconstructor.onnx: not a loadable ONNX model"),
        "{text}"
    );
}

#[test]
fn empty_onnx_file() {
    let dir = copy_model("zero");
    fs::write(dir.join("refiner.onnx"), b"").unwrap();
    let text = load_error(&dir);
    assert!(text.contains("refiner.onnx: empty file"), "{text}");
}

#[test]
fn graphs_swapped() {
    let dir = copy_model("swapped");
    fs::rename(dir.join("prompt.onnx"), dir.join("tmp.onnx")).unwrap();
    fs::rename(dir.join("refiner.onnx"), dir.join("prompt.onnx")).unwrap();
    fs::rename(dir.join("tmp.onnx"), dir.join("refiner.onnx")).unwrap();
    let text = load_error(&dir);
    assert!(text.contains("prompt.onnx"), "{text}");
    assert!(
        text.contains("holds the refiner graph, expected the prompt graph"),
        "{text}"
    );
}

#[test]
fn shapes_that_do_not_match_model_json() {
    let dir = copy_model("shapes");
    edit_json(&dir, |j| j["input_size"] = 224.into());
    let text = load_error(&dir);
    assert!(text.contains("prompt.onnx"), "{text}");
    assert!(
        text.contains("do not match the contract for input_size 224"),
        "{text}"
    );
}

#[test]
fn wrong_contract_version() {
    let dir = copy_model("version");
    edit_json(&dir, |j| j["contract_version"] = "2".into());
    let text = load_error(&dir);
    assert!(
        text.contains("model.json: contract_version is \"2\""),
        "{text}"
    );
}

#[test]
fn malformed_model_json() {
    let dir = copy_model("malformed");
    fs::write(dir.join("model.json"), "{\"contract_version\": \"1\", ").unwrap();
    let text = load_error(&dir);
    assert!(text.contains("model.json: malformed model.json"), "{text}");
}

#[test]
fn a_graph_that_cannot_be_read() {
    // (Permission bits do not stop root, who runs CI: a directory in place of the file is
    // the unreadable case every user can hit.)
    let dir = copy_model("unreadable");
    fs::remove_file(dir.join("refiner.onnx")).unwrap();
    fs::create_dir(dir.join("refiner.onnx")).unwrap();
    let text = load_error(&dir);
    assert!(text.contains("refiner.onnx"), "{text}");
}

#[test]
fn a_graph_file_that_is_missing() {
    let dir = copy_model("missing-graph");
    fs::remove_file(dir.join("reconstructor.onnx")).unwrap();
    let text = load_error(&dir);
    assert!(text.contains("reconstructor.onnx: cannot read"), "{text}");
}
