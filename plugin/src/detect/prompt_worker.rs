// SPDX-License-Identifier: MIT OR Apache-2.0

//! Loads and encodes new prompts off the streaming thread.
//!
//! Decoding a prompt image and running the prompt encoder takes tens of milliseconds or more;
//! doing it here keeps frames flowing. Jobs run one at a time, in order; each outcome goes to
//! a callback, and the element swaps the new prompt in at the next buffer boundary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use onenip::detector::{Models, PromptTokens};
use onenip::preprocess::Preprocessor;
use onenip::prompt_image::{load_prompt, DEFAULT_MAX_PROMPT_PIXELS};

/// A prompt to load.
pub enum PromptJob {
    /// An image file.
    File(PathBuf),
    /// A frame taken from the stream, already pre-processed to the model input.
    Capture(Vec<f32>),
}

impl PromptJob {
    pub fn location(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Capture(_) => "capture".into(),
        }
    }
}

/// What a job gave.
pub struct PromptOutcome {
    pub location: String,
    pub result: Result<Arc<PromptTokens>, String>,
}

/// Loads and encodes a prompt on the calling thread (also used at start, where an error must
/// fail the start).
pub fn encode(
    models: &Models,
    preprocessor: &mut Preprocessor,
    input: &mut Vec<f32>,
    job: &PromptJob,
) -> Result<Arc<PromptTokens>, String> {
    let tensor: &[f32] = match job {
        PromptJob::File(path) => {
            let image = load_prompt(path, DEFAULT_MAX_PROMPT_PIXELS).map_err(|e| e.to_string())?;
            input.resize(models.input_len(), 0.0);
            preprocessor
                .run_rgb_image(&image, input)
                .map_err(|e| format!("prompt image {}: {e}", path.display()))?;
            input
        }
        PromptJob::Capture(tensor) => tensor,
    };
    models
        .encode_prompt(tensor)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The worker thread; dropping it stops the thread (after the job in progress) and joins it.
pub struct PromptWorker {
    jobs: Option<mpsc::Sender<PromptJob>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PromptWorker {
    pub fn spawn(
        models: Arc<Models>,
        on_done: impl Fn(PromptOutcome) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<PromptJob>();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("onenip-prompt".into())
            .spawn(move || {
                let spec = models.spec().clone();
                let mut preprocessor = match Preprocessor::new(spec.input_size, spec.mean, spec.std)
                {
                    Ok(p) => p,
                    Err(e) => {
                        for job in rx {
                            on_done(PromptOutcome {
                                location: job.location(),
                                result: Err(e.to_string()),
                            });
                        }
                        return;
                    }
                };
                let mut input = Vec::new();
                for job in rx {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    // A panic in a decoder must not take the thread (and later swaps) down.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        encode(&models, &mut preprocessor, &mut input, &job)
                    }))
                    .unwrap_or_else(|_| Err("internal error while loading the prompt".into()));
                    on_done(PromptOutcome {
                        location: job.location(),
                        result,
                    });
                }
            })?;
        Ok(Self {
            jobs: Some(tx),
            stopping,
            thread: Some(thread),
        })
    }

    /// Queues a job; false if the worker is gone.
    pub fn request(&self, job: PromptJob) -> bool {
        self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }
}

impl Drop for PromptWorker {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
