// SPDX-License-Identifier: MIT OR Apache-2.0

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;

use onenip::detector::{Models, PromptTokens};
use onenip::ort::value::Tensor;
use onenip::postprocess::{map_scale, quantize_map, Regions};
use onenip::preprocess::{Preprocessor, Roi};
use onenip::provider::ProviderOptions;

use super::episodes::{Episodes, Transition};
use super::prompt_worker::{self, PromptJob, PromptOutcome, PromptWorker};
use super::{ExecutionProvider, MessageMode};
use crate::frame::{layout_of, preprocess_frame};
use crate::messages::{
    AnomalyEvent, AnomalyMessage, PromptMessage, PromptStatus, ProviderMessage, ProviderState,
};
use crate::meta::{AnomalyMeta, RegionBox};
use crate::model_cache;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "onenipdetect",
        gst::DebugColorFlags::empty(),
        Some("OneNIP anomaly detection"),
    )
});

/// Raw formats accepted; the element converts them to the model input itself.
pub(crate) const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Gray8,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

const DEFAULT_INFERENCE_INTERVAL: u32 = 1;
const DEFAULT_MIN_ANOMALOUS_FRAMES: u32 = 2;
const DEFAULT_HOLD_FRAMES: u32 = 3;

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    prompt_location: Option<PathBuf>,
    provider: ExecutionProvider,
    device_id: i32,
    strict_provider: bool,
    engine_cache_dir: Option<PathBuf>,
    fp16: bool,
    /// `None`: the model's calibrated value.
    image_threshold: Option<f32>,
    pixel_threshold: Option<f32>,
    roi: Option<Roi>,
    inference_interval: u32,
    threads: u32,
    message_mode: MessageMode,
    min_anomalous_frames: u32,
    hold_frames: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            prompt_location: None,
            provider: ExecutionProvider::Auto,
            device_id: 0,
            strict_provider: false,
            engine_cache_dir: None,
            fp16: false,
            image_threshold: None,
            pixel_threshold: None,
            roi: None,
            inference_interval: DEFAULT_INFERENCE_INTERVAL,
            threads: 0,
            message_mode: MessageMode::Transitions,
            min_anomalous_frames: DEFAULT_MIN_ANOMALOUS_FRAMES,
            hold_frames: DEFAULT_HOLD_FRAMES,
        }
    }
}

/// What one frame needs from the settings, copied under one short lock.
#[derive(Clone, Copy)]
struct FrameSettings {
    image_threshold: Option<f32>,
    pixel_threshold: Option<f32>,
    roi: Option<Roi>,
    inference_interval: u32,
    message_mode: MessageMode,
    min_anomalous_frames: u32,
    hold_frames: u32,
}

impl From<&Settings> for FrameSettings {
    fn from(s: &Settings) -> Self {
        Self {
            image_threshold: s.image_threshold,
            pixel_threshold: s.pixel_threshold,
            roi: s.roi,
            inference_interval: s.inference_interval.max(1),
            message_mode: s.message_mode,
            min_anomalous_frames: s.min_anomalous_frames,
            hold_frames: s.hold_frames,
        }
    }
}

/// The prompt in use and where it came from (reported in the meta).
#[derive(Clone)]
struct ActivePrompt {
    tokens: Arc<PromptTokens>,
    /// Shared, so that taking the prompt for a frame costs no string copy.
    location: Arc<str>,
}

/// Created in `start()`, dropped in `stop()`.
struct State {
    models: Arc<Models>,
    provider: String,
    preprocessor: Preprocessor,
    /// The model input, written in place every frame.
    input: Tensor<f32>,
    map: Vec<f32>,
    /// Recycles the 8-bit anomaly maps: one returns when its frame is freed downstream.
    map_pool: gst::BufferPool,
    regions: Regions,
    prompt: Option<ActivePrompt>,
    info: Option<gst_video::VideoInfo>,
    frames: u64,
    /// The last inferred result, carried (stale) on frames that are not inferred.
    last: Option<AnomalyMeta>,
    episodes: Episodes,
    warned_no_prompt: bool,
    warned_roi: bool,
}

pub struct OnenipDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Separate from `state` so that a prompt change never waits for a frame's inference.
    worker: Mutex<Option<PromptWorker>>,
    /// A new prompt, ready to be swapped in at the next buffer boundary.
    pending_prompt: Mutex<Option<ActivePrompt>>,
    has_pending_prompt: AtomicBool,
    capture_requested: AtomicBool,
    /// Running time before which a frame is too late to infer (QoS); 0 when unset.
    qos_earliest: AtomicU64,
    active_provider: Mutex<String>,
    /// Model thresholds, readable through the properties once a model is loaded.
    model_thresholds: Mutex<Option<(f32, f32)>>,
}

impl Default for OnenipDetect {
    fn default() -> Self {
        Self {
            settings: Mutex::default(),
            state: Mutex::default(),
            worker: Mutex::default(),
            pending_prompt: Mutex::default(),
            has_pending_prompt: AtomicBool::new(false),
            capture_requested: AtomicBool::new(false),
            qos_earliest: AtomicU64::new(0),
            active_provider: Mutex::default(),
            model_thresholds: Mutex::default(),
        }
    }
}

/// A poisoned lock only means a panic elsewhere already reported an error; keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for OnenipDetect {
    const NAME: &'static str = "GstOnenipDetect";
    type Type = super::OnenipDetect;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for OnenipDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "Model directory (model.json + prompt.onnx, reconstructor.onnx, \
                         refiner.onnx); empty for the bundled onenip-s model",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("prompt-location")
                    .nick("Prompt location")
                    .blurb(
                        "Image of a good part. Changing it while playing loads it in the \
                         background and swaps it in without stopping the stream; a bad file \
                         keeps the old prompt and posts onenip-prompt with the reason",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Auto)
                    .nick("Execution provider")
                    .blurb("Where the models run; a fallback is a warning and an onenip-provider message")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("GPU device for CUDA and TensorRT")
                    .minimum(0)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("strict-provider")
                    .nick("Strict provider")
                    .blurb(
                        "Fail to start instead of falling back when the requested provider \
                         cannot run (with auto: unless a GPU provider runs)",
                    )
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("active-provider")
                    .nick("Active provider")
                    .blurb("The execution provider really running the models (empty before start)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("engine-cache-dir")
                    .nick("Engine cache directory")
                    .blurb("TensorRT engine and timing cache directory (kept between runs)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("fp16")
                    .nick("FP16")
                    .blurb("Let TensorRT use fp16 kernels")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("image-threshold")
                    .nick("Image threshold")
                    .blurb(
                        "A frame whose score is above this is anomalous; negative for the \
                         model's calibrated value (reads back the value in force)",
                    )
                    .minimum(-1.0)
                    .default_value(-1.0)
                    .mutable_playing()
                    .controllable()
                    .build(),
                glib::ParamSpecFloat::builder("pixel-threshold")
                    .nick("Pixel threshold")
                    .blurb(
                        "Anomaly-map values above this form regions; negative for the model's \
                         calibrated value (reads back the value in force)",
                    )
                    .minimum(-1.0)
                    .default_value(-1.0)
                    .mutable_playing()
                    .controllable()
                    .build(),
                glib::ParamSpecString::builder("roi")
                    .nick("Region of interest")
                    .blurb("The part of the frame to inspect, \"x,y,w,h\" in frame pixels; empty for the whole frame")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("inference-interval")
                    .nick("Inference interval")
                    .blurb("Infer every Nth frame; the frames between carry the last result, marked stale")
                    .minimum(1)
                    .default_value(DEFAULT_INFERENCE_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads (0: ONNX Runtime's default)")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("message-mode", MessageMode::Transitions)
                    .nick("Message mode")
                    .blurb("Which onenip-anomaly messages to post on the bus")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-anomalous-frames")
                    .nick("Minimum anomalous frames")
                    .blurb("Anomalous frames in a row that start an episode")
                    .minimum(1)
                    .default_value(DEFAULT_MIN_ANOMALOUS_FRAMES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("hold-frames")
                    .nick("Hold frames")
                    .blurb("Normal frames in a row that end an episode")
                    .minimum(1)
                    .default_value(DEFAULT_HOLD_FRAMES)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![glib::subclass::Signal::builder("capture-prompt")
                .action()
                .class_handler(|args| {
                    let element = args[0].get::<super::OnenipDetect>().expect("signal arg");
                    element
                        .imp()
                        .capture_requested
                        .store(true, Ordering::Release);
                    gst::info!(CAT, obj = element, "the next frame becomes the prompt");
                    None
                })
                .build()]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let threshold = |v: &glib::Value| {
            let t = v.get::<f32>().expect("type checked upstream");
            (t >= 0.0).then_some(t)
        };
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "model" => settings.model = path(value),
            "prompt-location" => {
                let new = path(value);
                let changed = new != settings.prompt_location;
                settings.prompt_location = new.clone();
                drop(settings);
                if let (true, Some(new)) = (changed, new) {
                    self.request_prompt(PromptJob::File(new));
                }
            }
            "execution-provider" => settings.provider = value.get().expect("type checked upstream"),
            "device-id" => settings.device_id = value.get().expect("type checked upstream"),
            "strict-provider" => {
                settings.strict_provider = value.get().expect("type checked upstream")
            }
            "engine-cache-dir" => settings.engine_cache_dir = path(value),
            "fp16" => settings.fp16 = value.get().expect("type checked upstream"),
            "image-threshold" => settings.image_threshold = threshold(value),
            "pixel-threshold" => settings.pixel_threshold = threshold(value),
            "roi" => {
                let text = value
                    .get::<Option<String>>()
                    .expect("type checked upstream");
                match text.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                    None => settings.roi = None,
                    Some(text) => match Roi::parse(text) {
                        Ok(roi) => settings.roi = Some(roi),
                        Err(e) => {
                            drop(settings);
                            gst::element_imp_warning!(
                                self,
                                gst::LibraryError::Settings,
                                ("Invalid roi \"{}\": {}; keeping the previous roi", text, e)
                            );
                        }
                    },
                }
            }
            "inference-interval" => {
                settings.inference_interval = value.get().expect("type checked upstream")
            }
            "threads" => settings.threads = value.get().expect("type checked upstream"),
            "message-mode" => settings.message_mode = value.get().expect("type checked upstream"),
            "min-anomalous-frames" => {
                settings.min_anomalous_frames = value.get().expect("type checked upstream")
            }
            "hold-frames" => settings.hold_frames = value.get().expect("type checked upstream"),
            name => unimplemented!("property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let in_force = |own: Option<f32>, pick: fn((f32, f32)) -> f32| {
            own.or_else(|| lock(&self.model_thresholds).map(pick))
                .unwrap_or(-1.0)
        };
        match pspec.name() {
            "model" => path(&settings.model).to_value(),
            "prompt-location" => path(&settings.prompt_location).to_value(),
            "execution-provider" => settings.provider.to_value(),
            "device-id" => settings.device_id.to_value(),
            "strict-provider" => settings.strict_provider.to_value(),
            "active-provider" => lock(&self.active_provider).to_value(),
            "engine-cache-dir" => path(&settings.engine_cache_dir).to_value(),
            "fp16" => settings.fp16.to_value(),
            "image-threshold" => in_force(settings.image_threshold, |t| t.0).to_value(),
            "pixel-threshold" => in_force(settings.pixel_threshold, |t| t.1).to_value(),
            "roi" => settings.roi.map(|r| r.to_string()).to_value(),
            "inference-interval" => settings.inference_interval.to_value(),
            "threads" => settings.threads.to_value(),
            "message-mode" => settings.message_mode.to_value(),
            "min-anomalous-frames" => settings.min_anomalous_frames.to_value(),
            "hold-frames" => settings.hold_frames.to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for OnenipDetect {}

impl ElementImpl for OnenipDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "OneNIP anomaly detector",
                "Filter/Analyzer/Video",
                "Finds defects on every frame with OneNIP (one normal image as prompt) \
                 and attaches anomaly metadata",
                "gst-onenip developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OnenipDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();

        // ONNX Runtime is loaded here, not at plugin load, so the plugin registers even
        // where the library is missing.
        let rt = onenip::runtime::runtime()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        gst::info!(
            CAT,
            imp = self,
            "ONNX Runtime {} from {} ({})",
            rt.version,
            rt.library.display(),
            rt.source
        );

        let model_dir = match &settings.model {
            Some(dir) => dir.clone(),
            None => onenip::model::default_model_dir()
                .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ("{}", e)))?,
        };
        let options = ProviderOptions {
            requested: settings.provider.into(),
            strict: settings.strict_provider,
            device_id: settings.device_id,
            engine_cache_dir: settings.engine_cache_dir.clone(),
            fp16: settings.fp16,
            threads: settings.threads as usize,
        };
        let may_build_engine = matches!(
            settings.provider,
            ExecutionProvider::Auto | ExecutionProvider::TensorRt
        );
        if may_build_engine {
            self.post_structure(
                ProviderMessage {
                    state: ProviderState::Building,
                    requested: options.requested.to_string(),
                    active: String::new(),
                    fallbacks: vec![],
                    model: model_dir.display().to_string(),
                }
                .to_structure(),
            );
        }
        let started = Instant::now();
        let models = model_cache::load(&model_dir, &options).map_err(|e| {
            let kind = match &e {
                onenip::detector::EngineError::Session(
                    onenip::provider::SessionError::Strict { .. },
                ) => gst::ResourceError::Settings,
                _ => gst::ResourceError::OpenRead,
            };
            gst::error_msg!(kind, ("{}", e))
        })?;
        let spec = models.spec().clone();
        let report = models.report().clone();
        gst::info!(
            CAT,
            imp = self,
            "model {} ({}, {}x{}, calibrated: {}) ready in {:?}: {}",
            model_dir.display(),
            spec.variant,
            spec.input_size,
            spec.input_size,
            spec.calibrated,
            started.elapsed(),
            report
        );
        if report.fell_back() {
            let tried: Vec<String> = report
                .fallbacks
                .iter()
                .map(|f| f.provider.to_string())
                .collect();
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                (
                    "Execution provider {} unavailable ({} not usable), running on {}",
                    report.requested,
                    tried.join(", "),
                    report.active
                ),
                ["{}", report]
            );
        }
        self.post_structure(
            ProviderMessage {
                state: ProviderState::Ready,
                requested: report.requested.to_string(),
                active: report.active.to_string(),
                fallbacks: report
                    .fallbacks
                    .iter()
                    .map(|f| format!("{}: {}", f.provider, f.reason))
                    .collect(),
                model: model_dir.display().to_string(),
            }
            .to_structure(),
        );
        *lock(&self.active_provider) = report.active.to_string();
        *lock(&self.model_thresholds) = Some((spec.image_threshold, spec.pixel_threshold));

        let new_preprocessor = || {
            Preprocessor::new(spec.input_size, spec.mean, spec.std).map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Settings,
                    ("{}: {}", model_dir.display(), e)
                )
            })
        };
        let mut preprocessor = new_preprocessor()?;

        // The first prompt is loaded here: a missing or unreadable file fails the start.
        let prompt = match &settings.prompt_location {
            Some(path) => {
                let job = PromptJob::File(path.clone());
                let tokens =
                    prompt_worker::encode(&models, &mut preprocessor, &mut Vec::new(), &job)
                        .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))?;
                self.post_structure(
                    PromptMessage {
                        status: PromptStatus::Loaded,
                        location: job.location(),
                        reason: None,
                    }
                    .to_structure(),
                );
                Some(ActivePrompt {
                    tokens,
                    location: job.location().into(),
                })
            }
            None => None,
        };

        let weak = self.obj().downgrade();
        let worker = PromptWorker::spawn(models.clone(), move |outcome| {
            if let Some(element) = weak.upgrade() {
                element.imp().prompt_done(outcome);
            }
        })
        .map_err(|e| {
            gst::error_msg!(
                gst::CoreError::Thread,
                ("Cannot start the prompt thread: {}", e)
            )
        })?;

        let input = models.new_input();
        let map = vec![0.0; models.map_len()];
        *lock(&self.state) = Some(State {
            provider: report.active.to_string(),
            preprocessor,
            input,
            map_pool: new_map_pool(models.map_len())?,
            map,
            regions: Regions::new(),
            prompt,
            info: None,
            frames: 0,
            last: None,
            episodes: Episodes::default(),
            warned_no_prompt: false,
            warned_roi: false,
            models,
        });
        *lock(&self.worker) = Some(worker);
        self.qos_earliest.store(0, Ordering::Release);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(state) = lock(&self.state).as_ref() {
            let _ = state.map_pool.set_active(false);
        }
        // Taken out first: joining the worker must not happen under a lock it may need.
        let worker = lock(&self.worker).take();
        drop(worker);
        let state = lock(&self.state).take();
        drop(state);
        lock(&self.pending_prompt).take();
        self.has_pending_prompt.store(false, Ordering::Release);
        self.capture_requested.store(false, Ordering::Release);
        *lock(&self.active_provider) = String::new();
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Invalid caps {}", incaps))?;
        if layout_of(info.format()).is_none() {
            return Err(gst::loggable_error!(
                CAT,
                "Unsupported format {:?}",
                info.format()
            ));
        }
        gst::debug!(CAT, imp = self, "caps {}", incaps);
        if let Some(state) = lock(&self.state).as_mut() {
            state.info = Some(info);
            // Results of another resolution do not carry over.
            state.last = None;
            state.warned_roi = false;
        }
        Ok(())
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(qos) = event.view() {
            let (_, _, diff, timestamp) = qos.get();
            // Like BaseTransform: a frame before `earliest` would be late downstream.
            if let Some(ts) = timestamp {
                let earliest = if diff > 0 {
                    ts.nseconds().saturating_add(2 * diff as u64)
                } else {
                    ts.nseconds().saturating_add_signed(diff)
                };
                self.qos_earliest.store(earliest, Ordering::Release);
            }
        }
        self.parent_src_event(event)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => {
                self.qos_earliest.store(0, Ordering::Release);
            }
            gst::EventView::Eos(_) => {
                // An episode still open at the end of the stream ends with it.
                let end = lock(&self.state).as_mut().and_then(|state| {
                    let last = state.last.clone();
                    state.episodes.finish().map(|t| (t, last))
                });
                if let (Some((Transition::End { peak }, last)), true) =
                    (end, lock(&self.settings).message_mode != MessageMode::None)
                {
                    let last = last.as_ref();
                    self.post_structure(
                        AnomalyMessage {
                            event: AnomalyEvent::End,
                            pts: None,
                            running_time: None,
                            score: last.map_or(0.0, |m| m.score),
                            anomalous: last.is_some_and(|m| m.anomalous),
                            peak_score: peak,
                            regions: vec![],
                        }
                        .to_structure(),
                    );
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let pts = buf.pts();
        if let Some(pts) = pts {
            // Applies controlled property values (thresholds) for this timestamp.
            let _ = self.obj().sync_values(pts);
        }
        let settings = FrameSettings::from(&*lock(&self.settings));
        let running_time = pts.and_then(|pts| {
            self.obj()
                .segment()
                .downcast_ref::<gst::ClockTime>()
                .and_then(|s| s.to_running_time(pts))
        });

        let mut messages = Vec::new();
        let result = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["Not started"]);
                return Err(gst::FlowError::NotNegotiated);
            };
            self.process(state, buf, &settings, pts, running_time, &mut messages)
        };
        for s in messages {
            self.post_structure(s);
        }
        result
    }
}

/// A pool of `len`-byte buffers for the anomaly maps.
fn new_map_pool(len: usize) -> Result<gst::BufferPool, gst::ErrorMessage> {
    let pool = gst::BufferPool::new();
    let mut config = pool.config();
    config.set_params(None, len as u32, 2, 0);
    pool.set_config(config)
        .and_then(|_| pool.set_active(true))
        .map_err(|e| {
            gst::error_msg!(
                gst::CoreError::Failed,
                ("Cannot set up the anomaly map pool: {}", e)
            )
        })?;
    Ok(pool)
}

impl OnenipDetect {
    fn post_structure(&self, structure: gst::Structure) {
        let element = self.obj();
        let _ = element.post_message(
            gst::message::Element::builder(structure)
                .src(&*element)
                .build(),
        );
    }

    /// Queues a prompt change; without a running element the setting is just stored.
    fn request_prompt(&self, job: PromptJob) {
        if let Some(worker) = lock(&self.worker).as_ref() {
            gst::info!(CAT, imp = self, "loading prompt {}", job.location());
            worker.request(job);
        }
    }

    /// Called on the prompt thread when a job finished.
    fn prompt_done(&self, outcome: PromptOutcome) {
        match outcome.result {
            Ok(tokens) => {
                *lock(&self.pending_prompt) = Some(ActivePrompt {
                    tokens,
                    location: outcome.location.as_str().into(),
                });
                self.has_pending_prompt.store(true, Ordering::Release);
                gst::info!(CAT, imp = self, "prompt {} ready", outcome.location);
                self.post_structure(
                    PromptMessage {
                        status: PromptStatus::Loaded,
                        location: outcome.location,
                        reason: None,
                    }
                    .to_structure(),
                );
            }
            Err(reason) => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenRead,
                    ("Prompt refused, keeping the previous prompt: {}", reason)
                );
                self.post_structure(
                    PromptMessage {
                        status: PromptStatus::Refused,
                        location: outcome.location,
                        reason: Some(reason),
                    }
                    .to_structure(),
                );
            }
        }
    }

    /// The per-frame work, under the state lock; bus messages are returned, to be posted
    /// after the lock is released.
    fn process(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        settings: &FrameSettings,
        pts: Option<gst::ClockTime>,
        running_time: Option<gst::ClockTime>,
        messages: &mut Vec<gst::Structure>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(info) = state.info.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ["No caps before the first buffer"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };

        // A new prompt is swapped in here, between two frames.
        if self.has_pending_prompt.swap(false, Ordering::AcqRel) {
            if let Some(prompt) = lock(&self.pending_prompt).take() {
                gst::info!(
                    CAT,
                    imp = self,
                    "prompt {} in use from {:?}",
                    prompt.location,
                    buf.pts()
                );
                state.prompt = Some(prompt);
                state.last = None;
            }
        }

        let roi = self.effective_roi(state, &info, settings.roi);

        if self.capture_requested.swap(false, Ordering::AcqRel) {
            let mut tensor = vec![0.0; state.models.input_len()];
            match preprocess_frame(&mut state.preprocessor, buf, &info, roi, &mut tensor) {
                Ok(()) => self.request_prompt(PromptJob::Capture(tensor)),
                Err(e) => messages.push(
                    PromptMessage {
                        status: PromptStatus::Refused,
                        location: "capture".into(),
                        reason: Some(e),
                    }
                    .to_structure(),
                ),
            }
        }

        let Some(prompt) = state.prompt.clone() else {
            if !state.warned_no_prompt {
                state.warned_no_prompt = true;
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::NotFound,
                    ("No prompt: frames pass uninspected until prompt-location is set or capture-prompt is emitted")
                );
            }
            return Ok(gst::FlowSuccess::Ok);
        };

        state.frames += 1;
        let due = (state.frames - 1).is_multiple_of(settings.inference_interval as u64);
        let late = running_time
            .is_some_and(|rt| rt.nseconds() < self.qos_earliest.load(Ordering::Acquire));
        if !due || late {
            if let Some(last) = &state.last {
                if late {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "late frame {:?}: carrying the last result",
                        pts
                    );
                }
                let mut stale = last.clone();
                stale.stale = true;
                stale
                    .attach(buf)
                    .map_err(|e| self.flow_error(format!("cannot attach the anomaly meta: {e}")))?;
                return Ok(gst::FlowSuccess::Ok);
            }
            // Nothing to carry yet: infer this one.
        }

        let started = Instant::now();
        preprocess_frame(
            &mut state.preprocessor,
            buf,
            &info,
            roi,
            state.input.extract_tensor_mut().1,
        )
        .map_err(|e| self.flow_error(e))?;
        let score = state
            .models
            .infer(&state.input, &prompt.tokens, &mut state.map)
            .map_err(|e| self.flow_error(e.to_string()))?;

        let spec = state.models.spec();
        let image_threshold = settings.image_threshold.unwrap_or(spec.image_threshold);
        let pixel_threshold = settings.pixel_threshold.unwrap_or(spec.pixel_threshold);
        let size = spec.input_size;
        let roi_rect = (roi.x, roi.y, roi.width, roi.height);
        let regions = RegionBox::find(
            &mut state.regions,
            &state.map,
            size,
            pixel_threshold,
            roi_rect,
        );
        let scale = map_scale(pixel_threshold);
        let mut map_buffer = state
            .map_pool
            .acquire_buffer(None)
            .map_err(|e| self.flow_error(format!("cannot get an anomaly map buffer: {e:?}")))?;
        {
            let map_buffer = map_buffer.get_mut().expect("a pooled buffer is writable");
            let mut bytes = map_buffer
                .map_writable()
                .map_err(|_| self.flow_error("cannot map the anomaly map".into()))?;
            quantize_map(&state.map, scale, &mut bytes);
        }
        let anomalous = score > image_threshold;
        let meta = AnomalyMeta {
            score,
            anomalous,
            image_threshold,
            pixel_threshold,
            roi: roi_rect,
            frame_width: info.width(),
            frame_height: info.height(),
            map: Some(map_buffer),
            map_width: size,
            map_height: size,
            map_scale: scale,
            regions,
            stale: false,
            latency: gst::ClockTime::from_nseconds(started.elapsed().as_nanos() as u64),
            provider: state.provider.clone(),
            prompt: prompt.location.to_string(),
        };
        meta.attach(buf)
            .map_err(|e| self.flow_error(format!("cannot attach the anomaly meta: {e}")))?;
        gst::log!(
            CAT,
            imp = self,
            "frame {:?}: score {:.4} anomalous {} in {}",
            pts,
            score,
            anomalous,
            meta.latency
        );

        let transition = state.episodes.update(
            anomalous,
            score,
            settings.min_anomalous_frames,
            settings.hold_frames,
        );
        let message = |event, peak_score| AnomalyMessage {
            event,
            pts,
            running_time,
            score,
            anomalous,
            peak_score,
            regions: meta.regions.clone(),
        };
        match (settings.message_mode, transition) {
            (MessageMode::None, _) => {}
            (_, Some(Transition::Start { peak })) => {
                messages.push(message(AnomalyEvent::Start, peak).to_structure())
            }
            (_, Some(Transition::End { peak })) => {
                messages.push(message(AnomalyEvent::End, peak).to_structure())
            }
            _ => {}
        }
        if settings.message_mode == MessageMode::EveryFrame {
            messages.push(message(AnomalyEvent::Frame, score).to_structure());
        }
        state.last = Some(meta);
        Ok(gst::FlowSuccess::Ok)
    }

    /// The roi clamped to the frame; the whole frame when unset or outside (with a warning).
    fn effective_roi(
        &self,
        state: &mut State,
        info: &gst_video::VideoInfo,
        roi: Option<Roi>,
    ) -> Roi {
        let full = Roi {
            x: 0,
            y: 0,
            width: info.width(),
            height: info.height(),
        };
        match roi {
            None => full,
            Some(roi) => match roi.clamp_to(info.width(), info.height()) {
                Some(clamped) => clamped,
                None => {
                    if !state.warned_roi {
                        state.warned_roi = true;
                        gst::element_imp_warning!(
                            self,
                            gst::LibraryError::Settings,
                            (
                                "roi {} lies outside the {}x{} frame: inspecting the whole frame",
                                roi,
                                info.width(),
                                info.height()
                            )
                        );
                    }
                    full
                }
            },
        }
    }

    fn flow_error(&self, reason: String) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("Inference failed: {}", reason)
        );
        gst::FlowError::Error
    }
}
