//! The three OneNIP sessions of one model and what runs on them: the prompt encoder (once per
//! prompt) and the reconstructor + refiner (every frame).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ort::session::Session;
use ort::value::Tensor;

use crate::model::{Graph, ModelError, ModelSpec};
use crate::provider::{build_session, ProviderOptions, ProviderReport, SessionError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{graph} graph failed on {}: {reason}", path.display())]
    Run {
        graph: Graph,
        path: PathBuf,
        reason: String,
    },
    #[error("input has {got} values, the model takes {expected} ({what})")]
    InputSize {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// An encoded prompt: the prompt image's transformer-encoder tokens, [1, N, D].
#[derive(Debug)]
pub struct PromptTokens {
    tensor: Tensor<f32>,
}

impl PromptTokens {
    pub fn values(&self) -> &[f32] {
        self.tensor.extract_tensor().1
    }
}

/// A loaded and validated model: one session per graph.
///
/// Sessions sit behind mutexes so that one `Models` can serve several elements (and the
/// prompt worker thread) in a process; each lock is held for one graph run.
#[derive(Debug)]
pub struct Models {
    spec: Arc<ModelSpec>,
    prompt: Mutex<Session>,
    reconstructor: Mutex<Session>,
    refiner: Mutex<Session>,
    report: ProviderReport,
}

impl Models {
    /// Loads the model in `dir` on the providers `options` ask for, checking every graph
    /// against the contract.
    pub fn load(dir: &Path, options: &ProviderOptions) -> Result<Models, EngineError> {
        let spec = Arc::new(ModelSpec::load(dir)?);
        let open = |graph: Graph| -> Result<(Session, ProviderReport), EngineError> {
            let path = spec.graph_path(graph);
            let build = build_session(&path, options).map_err(|e| match e {
                SessionError::Load { model, reason } => EngineError::Model(ModelError {
                    path: model,
                    reason: format!("not a loadable ONNX model: {reason}"),
                }),
                other => other.into(),
            })?;
            spec.validate_session(graph, &build.session)?;
            Ok((build.session, build.report))
        };
        let (prompt, report) = open(Graph::Prompt)?;
        let (reconstructor, _) = open(Graph::Reconstructor)?;
        let (refiner, _) = open(Graph::Refiner)?;
        Ok(Models {
            spec,
            prompt: Mutex::new(prompt),
            reconstructor: Mutex::new(reconstructor),
            refiner: Mutex::new(refiner),
            report,
        })
    }

    pub fn spec(&self) -> &Arc<ModelSpec> {
        &self.spec
    }

    /// Where the sessions run, and what was tried first.
    pub fn report(&self) -> &ProviderReport {
        &self.report
    }

    /// Number of values of one model input tensor, 3 * S * S.
    pub fn input_len(&self) -> usize {
        let s = self.spec.input_size as usize;
        3 * s * s
    }

    /// Number of values of the anomaly map, S * S.
    pub fn map_len(&self) -> usize {
        let s = self.spec.input_size as usize;
        s * s
    }

    /// A reusable input tensor [1, 3, S, S] for [`Models::infer`] (allocated once).
    pub fn new_input(&self) -> Tensor<f32> {
        let s = self.spec.input_size as usize;
        Tensor::from_array(([1usize, 3, s, s], vec![0.0f32; 3 * s * s]))
            .expect("a fixed-size f32 tensor can always be created")
    }

    fn run_error(&self, graph: Graph) -> impl Fn(ort::Error) -> EngineError + '_ {
        move |e| EngineError::Run {
            graph,
            path: self.spec.graph_path(graph),
            reason: e.to_string(),
        }
    }

    /// Encodes a pre-processed prompt image (NCHW, `input_len` values).
    pub fn encode_prompt(&self, image: &[f32]) -> Result<PromptTokens, EngineError> {
        if image.len() != self.input_len() {
            return Err(EngineError::InputSize {
                what: "prompt image",
                expected: self.input_len(),
                got: image.len(),
            });
        }
        let s = self.spec.input_size as usize;
        let input = Tensor::from_array(([1usize, 3, s, s], image.to_vec()))
            .map_err(self.run_error(Graph::Prompt))?;
        let mut session = lock(&self.prompt);
        let outputs = session
            .run(ort::inputs![&input])
            .map_err(self.run_error(Graph::Prompt))?;
        let (shape, tokens) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(self.run_error(Graph::Prompt))?;
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let tensor =
            Tensor::from_array((shape, tokens.to_vec())).map_err(self.run_error(Graph::Prompt))?;
        Ok(PromptTokens { tensor })
    }

    /// Runs the reconstructor and the refiner on one pre-processed frame; writes the anomaly
    /// map (S * S values) into `map` and returns the image score.
    pub fn infer(
        &self,
        image: &Tensor<f32>,
        prompt: &PromptTokens,
        map: &mut [f32],
    ) -> Result<f32, EngineError> {
        if map.len() != self.map_len() {
            return Err(EngineError::InputSize {
                what: "anomaly map buffer",
                expected: self.map_len(),
                got: map.len(),
            });
        }
        let mut reconstructor = lock(&self.reconstructor);
        let rec = reconstructor
            .run(ort::inputs![image, &prompt.tensor])
            .map_err(self.run_error(Graph::Reconstructor))?;
        // Outputs: rec_map, residual; the refiner takes residual, rec_map.
        let mut refiner = lock(&self.refiner);
        let refined = refiner
            .run(ort::inputs![&rec[1], &rec[0]])
            .map_err(self.run_error(Graph::Refiner))?;
        let (_, anomaly_map) = refined[0]
            .try_extract_tensor::<f32>()
            .map_err(self.run_error(Graph::Refiner))?;
        map.copy_from_slice(anomaly_map);
        let (_, score) = refined[1]
            .try_extract_tensor::<f32>()
            .map_err(self.run_error(Graph::Refiner))?;
        Ok(score[0])
    }
}

/// A poisoned lock only means another thread panicked mid-run; the session itself is fine.
fn lock(m: &Mutex<Session>) -> MutexGuard<'_, Session> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
