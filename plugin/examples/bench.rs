//! Measurements behind `scripts/bench` (and `scripts/gpu-check`): each subcommand prints one
//! JSON object on stdout (progress goes to stderr). Run in release:
//!
//! ```sh
//! cargo run --release --locked -p gst-plugin-onenip --example bench -- stages --threads 2
//! cargo run --release --locked -p gst-plugin-onenip --example bench -- pipeline --overlay
//! ```
//!
//! Subcommands:
//! - `stages`: convert+resize (640x480, 1920x1080, 3840x2160; RGB and I420) through
//!   `onenip::preprocess::Preprocessor` on mapped `gst::Buffer`s, the reconstructor and the
//!   refiner (each its own session, built by `onenip::provider::build_session`),
//!   `onenip::detector::Models::infer` (both graphs), the post-processing and meta of one
//!   frame (`onenip::postprocess` + `gstonenip::meta::AnomalyMeta::attach`, the steps of
//!   `onenipdetect`'s `process` after inference) and `onenipoverlay` at 1080p in a Harness.
//! - `pipeline`: `appsrc ! onenipdetect [[! queue] ! onenipoverlay] ! fakesink` fed with pre-made frames
//!   held in memory (a pool of writable buffers, as a decoder's); throughput, time to the first
//!   result, per-frame latency, peak RSS.
//! - `soak`: RSS sampled over many frames through `onenipdetect ! onenipoverlay ! fakesink`.
//! - `second-instance`: RSS of one pipeline, then of a second one sharing the model, then of a
//!   third one that cannot share it (other thread count), all in this process.
//!
//! Relative paths (the defaults `models/onenip-s` and `tests/data/prompt.png`) are taken from
//! the current directory: run it from the repository root.
//!
//! Options: `--threads N` (2), `--runs R` (5), `--iters N` (stages, 50), `--frames N`,
//! `--warmup N`, `--width W --height H --format F` (pipeline frames, 1920x1080 I420),
//! `--model DIR`, `--prompt PNG`, `--provider auto|tensorrt|cuda|cpu` (cpu), `--fp16`,
//! `--engine-cache DIR`, `--strict`, `--overlay` (pipeline), `--queue` (pipeline: overlay after a
//! `queue`), `--sample-every N` (soak).

use std::collections::HashMap;
use std::hint::black_box;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::buffer::BufferMetaForeachAction;
use gst::prelude::*;
use gst_video::prelude::*;
use gstonenip::meta::{AnomalyMeta, RegionBox};

#[path = "shared/overlay_meta.rs"]
mod overlay_meta;
use onenip::detector::Models;
use onenip::model::{Graph, ModelSpec};
use onenip::ort::value::Tensor;
use onenip::postprocess::{map_scale, quantize_map, Regions};
use onenip::preprocess::{PixelLayout, Preprocessor, Roi};
use onenip::provider::{build_session, ExecutionProvider, ProviderOptions};
use overlay_meta::overlay_meta;
use serde_json::{json, Value};

/// Distinct pre-made frames cycled through by the pipelines.
const DISTINCT_FRAMES: usize = 4;
/// Frames in a pipeline's pool: more than a pipeline holds at once (appsrc's queue, one per
/// element, the `queue`'s two, the sink's), so that pushing rarely waits for one.
const POOL_FRAMES: u32 = 10;

type Res<T> = Result<T, String>;

/// `--key value` and `--flag` arguments after the subcommand.
struct Args {
    values: HashMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> Res<Args> {
        let mut values = HashMap::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let key = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument '{a}'"))?;
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
                _ => "true".to_string(),
            };
            values.insert(key.to_string(), value);
        }
        Ok(Args { values })
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Res<T> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: not a number: {v}")),
        }
    }

    fn str(&self, key: &str, default: &str) -> String {
        self.values
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    fn flag(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| v != "false")
    }

    fn model_dir(&self) -> PathBuf {
        PathBuf::from(self.str("model", "models/onenip-s"))
    }

    fn prompt(&self) -> PathBuf {
        PathBuf::from(self.str("prompt", "tests/data/prompt.png"))
    }

    fn provider_options(&self) -> Res<ProviderOptions> {
        Ok(ProviderOptions {
            requested: self.str("provider", "cpu").parse::<ExecutionProvider>()?,
            strict: self.flag("strict"),
            device_id: 0,
            engine_cache_dir: self.values.get("engine-cache").map(PathBuf::from),
            fp16: self.flag("fp16"),
            threads: self.num("threads", 2)?,
        })
    }
}

/// VmRSS and VmHWM of this process, in kB.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median over `runs` of the mean milliseconds per call over `iters` calls (after 3 warm-up
/// calls); returns the median and every run's mean.
fn time_ms(runs: usize, iters: usize, mut f: impl FnMut() -> Res<()>) -> Res<Value> {
    for _ in 0..3 {
        f()?;
    }
    let mut means = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        for _ in 0..iters {
            f()?;
        }
        means.push(start.elapsed().as_secs_f64() * 1e3 / iters as f64);
    }
    Ok(json!({ "ms": median(&means), "runs_ms": means, "iters": iters }))
}

/// A frame of `format` filled with a deterministic pattern that changes with `seed`.
fn make_frame(format: gst_video::VideoFormat, width: u32, height: u32, seed: usize) -> gst::Buffer {
    let info = gst_video::VideoInfo::builder(format, width, height)
        .build()
        .expect("valid video info");
    let mut buffer = gst::Buffer::with_size(info.size()).expect("frame buffer");
    {
        let buf = buffer.get_mut().expect("new buffer is writable");
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info).expect("writable frame");
        for p in 0..frame.n_planes() {
            let stride = frame.plane_stride()[p as usize] as usize;
            let data = frame.plane_data_mut(p).expect("plane");
            for (i, v) in data.iter_mut().enumerate() {
                let (x, y) = (i % stride, i / stride);
                *v = ((x / 7 + y / 5 + seed * 17 + p as usize * 40) % 200 + 28) as u8;
            }
        }
    }
    buffer
}

fn video_format(name: &str) -> Res<gst_video::VideoFormat> {
    match gst_video::VideoFormat::from_string(name) {
        gst_video::VideoFormat::Unknown => Err(format!("unknown video format {name}")),
        f => Ok(f),
    }
}

fn layout_of(format: gst_video::VideoFormat) -> Res<PixelLayout> {
    gstonenip::frame::layout_of(format).ok_or_else(|| format!("format {format:?} not accepted"))
}

/// Maps `buffer` and runs the pre-processor on the whole frame, as `onenipdetect` does.
fn preprocess_buffer(
    pre: &mut Preprocessor,
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    _layout: PixelLayout,
    out: &mut [f32],
) -> Res<()> {
    let roi = Roi {
        x: 0,
        y: 0,
        width: info.width(),
        height: info.height(),
    };
    gstonenip::frame::preprocess_frame(pre, buffer, info, roi, out)
}

/// The steps of `onenipdetect`'s `process` after inference: regions, their boxes in frame
/// pixels, the 8-bit map in a new `gst::Buffer`, the meta attached to `buf`.
#[allow(clippy::too_many_arguments)]
fn postprocess_and_attach(
    regions: &mut Regions,
    map: &[f32],
    size: u32,
    score: f32,
    image_threshold: f32,
    pixel_threshold: f32,
    frame: (u32, u32),
    buf: &mut gst::BufferRef,
) -> Res<usize> {
    let roi_rect = (0, 0, frame.0, frame.1);
    let boxes = RegionBox::find(regions, map, size, pixel_threshold, roi_rect);
    let scale = map_scale(pixel_threshold);
    let mut map_buffer =
        gst::Buffer::with_size((size * size) as usize).map_err(|e| e.to_string())?;
    {
        let map_buffer = map_buffer.get_mut().expect("new buffer is writable");
        let mut bytes = map_buffer.map_writable().map_err(|e| e.to_string())?;
        quantize_map(map, scale, &mut bytes);
    }
    let n = boxes.len();
    let meta = AnomalyMeta {
        score,
        anomalous: score > image_threshold,
        image_threshold,
        pixel_threshold,
        roi: roi_rect,
        frame_width: frame.0,
        frame_height: frame.1,
        map: Some(map_buffer),
        map_width: size,
        map_height: size,
        map_scale: scale,
        regions: boxes,
        stale: false,
        latency: gst::ClockTime::from_mseconds(5),
        provider: "cpu".into(),
        prompt: "prompt.png".into(),
    };
    meta.attach(buf).map_err(|e| e.to_string())?;
    Ok(n)
}

/// `onenipoverlay` (default mode: heat map, outline, boxes, label) blending into 1080p frames
/// of `format`, in a Harness; the same writable buffer is recycled, so nothing is copied.
fn overlay_stage(format: &str, runs: usize, iters: usize) -> Res<Value> {
    let (w, h) = (1920, 1080);
    let caps = format!("video/x-raw,format={format},width={w},height={h},framerate=30/1");
    let mut harness = gst_check::Harness::new("onenipoverlay");
    harness.set_src_caps_str(&caps);
    harness.set_sink_caps_str(&caps);
    let parsed: gst::Caps = caps.parse().map_err(|e| format!("{e}"))?;
    let info = gst_video::VideoInfo::from_caps(&parsed).map_err(|e| e.to_string())?;
    let mut buf = Some(make_frame(info.format(), w, h, 0));
    overlay_meta(w, h)
        .attach(buf.as_mut().and_then(|b| b.get_mut()).ok_or("buffer")?)
        .map_err(|e| e.to_string())?;
    time_ms(runs, iters, || {
        let b = buf.take().ok_or("no buffer")?;
        harness.push(b).map_err(|e| format!("{e:?}"))?;
        buf = Some(harness.pull().map_err(|e| e.to_string())?);
        Ok(())
    })
}

fn stages(args: &Args) -> Res<Value> {
    let runs: usize = args.num("runs", 5)?;
    let iters: usize = args.num("iters", 50)?;
    let options = args.provider_options()?;
    let dir = args.model_dir();
    let spec = ModelSpec::load(&dir).map_err(|e| e.to_string())?;
    let size = spec.input_size;
    let mut rows = serde_json::Map::new();

    // Convert + resize, single thread, from mapped gst buffers.
    let mut pre = Preprocessor::new(size, spec.mean, spec.std).map_err(|e| e.to_string())?;
    let mut out = vec![0.0f32; pre.output_len()];
    for (w, h) in [(640, 480), (1920, 1080), (3840, 2160)] {
        for format in ["RGB", "I420"] {
            let vf = video_format(format)?;
            let info = gst_video::VideoInfo::builder(vf, w, h)
                .build()
                .map_err(|e| e.to_string())?;
            let layout = layout_of(vf)?;
            let frame = make_frame(vf, w, h, 1);
            // Fewer iterations on 4K: each takes several times longer.
            let n = if w > 2000 { iters.div_ceil(4) } else { iters };
            let row = time_ms(runs, n.max(1), || {
                preprocess_buffer(&mut pre, &frame, &info, layout, &mut out)?;
                black_box(&out);
                Ok(())
            })?;
            eprintln!("bench: preprocess {format} {w}x{h}: {:.3} ms", row["ms"]);
            rows.insert(format!("preprocess_{format}_{w}x{h}"), row);
        }
    }

    // The models: the per-frame pair through `Models::infer`, and each graph on its own.
    let load_start = Instant::now();
    let models = Models::load(&dir, &options).map_err(|e| e.to_string())?;
    let load_s = load_start.elapsed().as_secs_f64();
    let provider = models.report().active.to_string();
    let (fw, fh) = (1920, 1080);
    let vf = gst_video::VideoFormat::Rgb;
    let info = gst_video::VideoInfo::builder(vf, fw, fh)
        .build()
        .map_err(|e| e.to_string())?;
    let mut prompt_input = vec![0.0f32; models.input_len()];
    preprocess_buffer(
        &mut pre,
        &make_frame(vf, fw, fh, 0),
        &info,
        PixelLayout::Rgb,
        &mut prompt_input,
    )?;
    let prompt = models
        .encode_prompt(&prompt_input)
        .map_err(|e| e.to_string())?;
    let mut input = models.new_input();
    preprocess_buffer(
        &mut pre,
        &make_frame(vf, fw, fh, 2),
        &info,
        PixelLayout::Rgb,
        input.extract_tensor_mut().1,
    )?;
    let mut map = vec![0.0f32; models.map_len()];
    let mut score = 0.0;
    let row = time_ms(runs, iters, || {
        score = models
            .infer(&input, &prompt, &mut map)
            .map_err(|e| e.to_string())?;
        Ok(())
    })?;
    eprintln!("bench: Models::infer: {:.3} ms", row["ms"]);
    rows.insert("infer".into(), row);

    let s = size as usize;
    let open = |graph: Graph| {
        build_session(&spec.graph_path(graph), &options)
            .map(|b| b.session)
            .map_err(|e| e.to_string())
    };
    let mut reconstructor = open(Graph::Reconstructor)?;
    let mut refiner = open(Graph::Refiner)?;
    let tokens_shape = [1usize, spec.num_tokens() as usize, spec.hidden_dim as usize];
    let tokens =
        Tensor::from_array((tokens_shape, prompt.values().to_vec())).map_err(|e| e.to_string())?;
    let (rec_map, residual) = {
        let outputs = reconstructor
            .run(onenip::ort::inputs![&input, &tokens])
            .map_err(|e| e.to_string())?;
        let rec_map = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?
            .1
            .to_vec();
        let residual = outputs[1]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?
            .1
            .to_vec();
        (rec_map, residual)
    };
    let f = spec.feature_size() as usize;
    let rec_map = Tensor::from_array(([1usize, 1, s, s], rec_map)).map_err(|e| e.to_string())?;
    let residual = Tensor::from_array(([1usize, spec.channels as usize, f, f], residual))
        .map_err(|e| e.to_string())?;
    let row = time_ms(runs, iters, || {
        let outputs = reconstructor
            .run(onenip::ort::inputs![&input, &tokens])
            .map_err(|e| e.to_string())?;
        black_box(&outputs);
        Ok(())
    })?;
    eprintln!("bench: reconstructor: {:.3} ms", row["ms"]);
    rows.insert("reconstructor".into(), row);
    let row = time_ms(runs, iters, || {
        let outputs = refiner
            .run(onenip::ort::inputs![&residual, &rec_map])
            .map_err(|e| e.to_string())?;
        black_box(&outputs);
        Ok(())
    })?;
    eprintln!("bench: refiner: {:.3} ms", row["ms"]);
    rows.insert("refiner".into(), row);
    drop((reconstructor, refiner));

    // Post-processing and meta on the model's own map, with the pixel threshold at the
    // map's 90th percentile: a frame with a large defect (10% of the map), so that regions
    // are found, boxed and attached.
    let mut sorted = map.clone();
    sorted.sort_by(f32::total_cmp);
    let p90 = sorted[sorted.len() * 9 / 10];
    let mut regions = Regions::new();
    let post_iters = iters * 20;
    // Frames come round again as a pool's do, and the metas of their previous turn go (timed:
    // a pipeline frees every meta it attaches). Keeping every frame alive instead grew the
    // heap by a map per iteration, and the time doubled over the runs.
    let mut targets: Vec<gst::Buffer> = (0..POOL_FRAMES).map(|_| gst::Buffer::new()).collect();
    let mut turn = 0;
    let mut found = 0;
    let mut row = time_ms(runs, post_iters, || {
        let n = targets.len();
        let target = targets[turn % n].get_mut().ok_or("buffer not writable")?;
        turn += 1;
        target.foreach_meta_mut(|_| ControlFlow::Continue(BufferMetaForeachAction::Remove));
        found = postprocess_and_attach(
            &mut regions,
            &map,
            size,
            score,
            spec.image_threshold,
            p90,
            (fw, fh),
            target,
        )?;
        Ok(())
    })?;
    drop(targets);
    row["regions"] = json!(found);
    eprintln!(
        "bench: post-processing + meta: {:.4} ms ({found} regions)",
        row["ms"]
    );
    rows.insert("postprocess_meta".into(), row);

    for format in ["RGB", "I420"] {
        let row = overlay_stage(format, runs, iters)?;
        eprintln!("bench: overlay 1080p {format}: {:.3} ms", row["ms"]);
        rows.insert(format!("overlay_{format}_1920x1080"), row);
    }

    Ok(json!({
        "kind": "stages",
        "provider": provider,
        "model_load_s": load_s,
        "threads": options.threads,
        "runs": runs,
        "rows": rows,
    }))
}

/// What the sink's probe counts.
#[derive(Default)]
struct SinkStats {
    count: AtomicU64,
    inferred: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    /// Per-frame latency the element measured (ns), when recorded.
    latencies: Mutex<Vec<u64>>,
}

/// Where a pipeline's frames come from.
enum FrameSource {
    /// Frames shared with other pipelines (see `second-instance`): each push is a new buffer
    /// on the same memory, which an element that draws on it must copy first.
    Shared(Vec<gst::Buffer>),
    /// A pool of writable frames, filled once and handed over as a decoder's pool hands over
    /// its buffers: nothing is copied per frame (the overlay draws over its earlier drawing).
    Pool(gst::BufferPool),
}

impl FrameSource {
    fn pool(config: &PipelineConfig) -> Res<FrameSource> {
        let size = gst_video::VideoInfo::builder(config.format, config.width, config.height)
            .build()
            .map_err(|e| e.to_string())?
            .size();
        let pool = gst::BufferPool::new();
        let mut pool_config = pool.config();
        pool_config.set_params(None, size as u32, POOL_FRAMES, POOL_FRAMES);
        pool.set_config(pool_config).map_err(|e| e.to_string())?;
        pool.set_active(true).map_err(|e| e.to_string())?;
        let templates = make_frames(config);
        // Every buffer of the pool taken out at once, so that each gets a frame.
        let mut held = Vec::new();
        for i in 0..POOL_FRAMES as usize {
            let mut buf = pool.acquire_buffer(None).map_err(|e| format!("{e:?}"))?;
            {
                let template = templates[i % DISTINCT_FRAMES]
                    .map_readable()
                    .map_err(|e| e.to_string())?;
                let b = buf.get_mut().ok_or("a pooled buffer is writable")?;
                b.map_writable()
                    .map_err(|e| e.to_string())?
                    .copy_from_slice(&template);
            }
            held.push(buf);
        }
        drop(held);
        Ok(FrameSource::Pool(pool))
    }

    /// The `n`th frame to push, writable.
    fn next(&self, n: u64) -> Res<gst::Buffer> {
        match self {
            FrameSource::Shared(frames) => Ok(frames[n as usize % frames.len()].copy()),
            FrameSource::Pool(pool) => pool.acquire_buffer(None).map_err(|e| format!("{e:?}")),
        }
    }
}

/// A running `appsrc ! onenipdetect [! onenipoverlay] ! fakesink` fed from memory.
struct Running {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    detect: gst::Element,
    stats: Arc<SinkStats>,
    frames: FrameSource,
    pushed: u64,
    played_at: Instant,
    provider_messages: Vec<String>,
}

#[derive(Clone)]
struct PipelineConfig {
    width: u32,
    height: u32,
    format: gst_video::VideoFormat,
    overlay: bool,
    /// A `queue` between the two elements: the overlay runs on its own streaming thread.
    queue: bool,
    threads: u32,
    record_latency: usize,
    /// Frames to push, shared (by reference) between pipelines; a pool of writable frames
    /// per pipeline when empty.
    frames: Vec<gst::Buffer>,
}

impl Running {
    fn start(args: &Args, config: &PipelineConfig) -> Res<Running> {
        let options = args.provider_options()?;
        let overlay = match (config.overlay, config.queue) {
            (false, _) => "",
            (true, false) => " ! onenipoverlay",
            (true, true) => " ! queue max-size-buffers=2 ! onenipoverlay",
        };
        let desc = format!(
            "appsrc name=src ! onenipdetect name=detect{overlay} ! fakesink name=sink sync=false"
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| e.to_string())?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline")?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("no appsrc")?;
        let caps = gst_video::VideoInfo::builder(config.format, config.width, config.height)
            .fps(gst::Fraction::new(30, 1))
            .build()
            .map_err(|e| e.to_string())?
            .to_caps()
            .map_err(|e| e.to_string())?;
        src.set_caps(Some(&caps));
        src.set_format(gst::Format::Time);
        src.set_block(true);
        src.set_max_buffers(4);
        let detect = pipeline.by_name("detect").ok_or("no onenipdetect")?;
        detect.set_property("model", args.model_dir().display().to_string());
        detect.set_property("prompt-location", args.prompt().display().to_string());
        detect.set_property("threads", config.threads);
        detect.set_property_from_str("execution-provider", options.requested.as_str());
        detect.set_property("strict-provider", options.strict);
        detect.set_property("fp16", options.fp16);
        if let Some(dir) = &options.engine_cache_dir {
            detect.set_property("engine-cache-dir", dir.display().to_string());
        }
        let stats = Arc::new(SinkStats::default());
        stats
            .latencies
            .lock()
            .unwrap()
            .reserve(config.record_latency);
        let record = config.record_latency > 0;
        let probe_stats = stats.clone();
        pipeline
            .by_name("sink")
            .and_then(|s| s.static_pad("sink"))
            .ok_or("no fakesink pad")?
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let now = Instant::now();
                if let Some(gst::PadProbeData::Buffer(buf)) = &info.data {
                    if let Ok(meta) = gst::meta::CustomMeta::from_buffer(buf, "OnenipAnomalyMeta") {
                        let s = meta.structure();
                        if s.get::<bool>("stale") == Ok(false) {
                            probe_stats.inferred.fetch_add(1, Ordering::Relaxed);
                            if record {
                                if let Ok(latency) = s.get::<gst::ClockTime>("latency") {
                                    let mut l = probe_stats.latencies.lock().unwrap();
                                    if l.len() < l.capacity() {
                                        l.push(latency.nseconds());
                                    }
                                }
                            }
                        }
                    }
                }
                probe_stats.first.lock().unwrap().get_or_insert(now);
                *probe_stats.last.lock().unwrap() = Some(now);
                probe_stats.count.fetch_add(1, Ordering::Release);
                gst::PadProbeReturn::Ok
            });
        let frames = if config.frames.is_empty() {
            FrameSource::pool(config)?
        } else {
            FrameSource::Shared(config.frames.clone())
        };
        let played_at = Instant::now();
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start the pipeline: {e}"))?;
        Ok(Running {
            pipeline,
            src,
            detect,
            stats,
            frames,
            pushed: 0,
            played_at,
            provider_messages: Vec::new(),
        })
    }

    /// Pushes `n` frames (blocks while appsrc's small queue is full).
    fn push(&mut self, n: u64) -> Res<()> {
        for _ in 0..n {
            let mut buf = self.frames.next(self.pushed)?;
            {
                let b = buf.get_mut().ok_or("a frame to push is writable")?;
                b.set_pts(gst::ClockTime::from_mseconds(self.pushed * 33));
                b.set_duration(gst::ClockTime::from_mseconds(33));
            }
            self.src
                .push_buffer(buf)
                .map_err(|e| format!("push: {e:?}"))?;
            self.pushed += 1;
        }
        Ok(())
    }

    /// Drains the bus: errors fail, provider messages are kept.
    fn drain_bus(&mut self, wait: Duration) -> Res<()> {
        let bus = self.pipeline.bus().ok_or("no bus")?;
        let mut timeout = gst::ClockTime::from_nseconds(wait.as_nanos() as u64);
        while let Some(msg) = bus.timed_pop(timeout) {
            timeout = gst::ClockTime::ZERO;
            match msg.view() {
                gst::MessageView::Error(e) => {
                    return Err(format!(
                        "pipeline error from {:?}: {} ({:?})",
                        e.src().map(|s| s.path_string()),
                        e.error(),
                        e.debug()
                    ))
                }
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure() {
                        if s.name() == "onenip-provider" {
                            eprintln!("bench: {s}");
                            self.provider_messages.push(s.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits until the sink has seen `count` buffers.
    fn wait_for(&mut self, count: u64) -> Res<()> {
        while self.stats.count.load(Ordering::Acquire) < count {
            self.drain_bus(Duration::from_millis(2))?;
        }
        self.drain_bus(Duration::ZERO)
    }

    fn last(&self) -> Instant {
        self.stats.last.lock().unwrap().unwrap_or_else(Instant::now)
    }

    fn stop(mut self) -> Res<()> {
        self.src.end_of_stream().map_err(|e| format!("{e:?}"))?;
        let bus = self.pipeline.bus().ok_or("no bus")?;
        let eos = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        self.drain_bus(Duration::ZERO)?;
        if let Some(msg) = eos {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(e.error().to_string());
            }
        }
        self.pipeline
            .set_state(gst::State::Null)
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn make_frames(config: &PipelineConfig) -> Vec<gst::Buffer> {
    (0..DISTINCT_FRAMES)
        .map(|i| make_frame(config.format, config.width, config.height, i))
        .collect()
}

fn pipeline_config(args: &Args) -> Res<PipelineConfig> {
    Ok(PipelineConfig {
        width: args.num("width", 1920)?,
        height: args.num("height", 1080)?,
        format: video_format(&args.str("format", "I420"))?,
        overlay: args.flag("overlay") || args.flag("queue"),
        queue: args.flag("queue"),
        threads: args.num("threads", 2)?,
        record_latency: 0,
        frames: Vec::new(),
    })
}

fn pipeline(args: &Args) -> Res<Value> {
    let frames: u64 = args.num("frames", 100)?;
    let warmup: u64 = args.num("warmup", 5)?;
    let mut config = pipeline_config(args)?;
    config.record_latency = frames as usize;
    let mut run = Running::start(args, &config)?;
    run.push(1)?;
    run.wait_for(1)?;
    let first_result_s = (run.last() - run.played_at).as_secs_f64();
    let provider: String = run.detect.property("active-provider");
    run.push(warmup)?;
    run.wait_for(1 + warmup)?;
    run.stats.latencies.lock().unwrap().clear();
    let inferred_before = run.stats.inferred.load(Ordering::Relaxed);
    let start = Instant::now();
    run.push(frames)?;
    run.wait_for(1 + warmup + frames)?;
    let seconds = (run.last() - start).as_secs_f64();
    let inferred = run.stats.inferred.load(Ordering::Relaxed) - inferred_before;
    let mut latencies: Vec<f64> = run
        .stats
        .latencies
        .lock()
        .unwrap()
        .iter()
        .map(|&ns| ns as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let messages = std::mem::take(&mut run.provider_messages);
    run.stop()?;
    let (rss, hwm) = rss_kb();
    Ok(json!({
        "kind": "pipeline",
        "graph": match (config.overlay, config.queue) {
            (false, _) => "onenipdetect ! fakesink",
            (true, false) => "onenipdetect ! onenipoverlay ! fakesink",
            (true, true) => "onenipdetect ! queue ! onenipoverlay ! fakesink",
        },
        "input": format!("{}x{} {}", config.width, config.height, config.format.to_str()),
        "threads": config.threads,
        "frames": frames,
        "inferred": inferred,
        "fps": frames as f64 / seconds,
        "ms_per_frame": seconds * 1e3 / frames as f64,
        "latency_ms_median": p(0.5),
        "latency_ms_p90": p(0.9),
        "first_result_s": first_result_s,
        "active_provider": provider,
        "provider_messages": messages,
        "rss_mb": mb(rss),
        "peak_rss_mb": mb(hwm),
    }))
}

fn soak(args: &Args) -> Res<Value> {
    let frames: u64 = args.num("frames", 10_000)?;
    let warmup: u64 = args.num("warmup", 200)?;
    let every: u64 = args.num("sample-every", 500)?.max(1);
    let mut config = pipeline_config(args)?;
    config.width = args.num("width", 320)?;
    config.height = args.num("height", 240)?;
    config.overlay = true;
    let mut run = Running::start(args, &config)?;
    run.push(warmup)?;
    run.wait_for(warmup)?;
    let (base, _) = rss_kb();
    let mut samples = vec![json!([0, mb(base)])];
    let start = Instant::now();
    let mut done = 0;
    while done < frames {
        let n = every.min(frames - done);
        run.push(n)?;
        done += n;
        run.wait_for(warmup + done)?;
        let (rss, _) = rss_kb();
        samples.push(json!([done, mb(rss)]));
    }
    let seconds = start.elapsed().as_secs_f64();
    let inferred = run.stats.inferred.load(Ordering::Relaxed);
    let (end, hwm) = rss_kb();
    run.stop()?;
    Ok(json!({
        "kind": "soak",
        "graph": "onenipdetect ! onenipoverlay ! fakesink",
        "input": format!("{}x{} {}", config.width, config.height, config.format.to_str()),
        "frames": frames,
        "warmup": warmup,
        "inferred": inferred,
        "fps": frames as f64 / seconds,
        "rss_start_mb": mb(base),
        "rss_end_mb": mb(end),
        "rss_growth_mb": mb(end) - mb(base),
        "peak_rss_mb": mb(hwm),
        "samples": samples,
    }))
}

fn second_instance(args: &Args) -> Res<Value> {
    let frames: u64 = args.num("frames", 30)?;
    let mut config = pipeline_config(args)?;
    // The frames stand for the camera's buffers: made once, shared by every pipeline, so that
    // the differences below are what the elements add.
    config.frames = make_frames(&config);
    let settle = |runs: &mut [&mut Running]| -> Res<u64> {
        for r in runs.iter_mut() {
            r.push(frames)?;
        }
        for r in runs.iter_mut() {
            let target = r.pushed;
            r.wait_for(target)?;
        }
        Ok(rss_kb().0)
    };
    let mut first = Running::start(args, &config)?;
    let one = settle(&mut [&mut first])?;
    let mut second = Running::start(args, &config)?;
    let two = settle(&mut [&mut first, &mut second])?;
    // A third element with another thread count cannot share the sessions: what sharing saves.
    let mut other = config.clone();
    other.threads += 1;
    let mut third = Running::start(args, &other)?;
    let three = settle(&mut [&mut first, &mut second, &mut third])?;
    for r in [first, second, third] {
        r.stop()?;
    }
    Ok(json!({
        "kind": "second-instance",
        "graph": "onenipdetect ! fakesink, N pipelines in one process",
        "input": format!("{}x{} {}", config.width, config.height, config.format.to_str()),
        "rss_one_mb": mb(one),
        "rss_two_mb": mb(two),
        "rss_three_mb": mb(three),
        "second_instance_mb": mb(two) - mb(one),
        "unshared_instance_mb": mb(three) - mb(two),
    }))
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("usage: bench stages|pipeline|soak|second-instance [--options]");
        std::process::exit(2);
    };
    let result = Args::parse(rest).and_then(|args| {
        gst::init().map_err(|e| e.to_string())?;
        gstonenip::plugin_register_static().map_err(|e| e.to_string())?;
        match command.as_str() {
            "stages" => stages(&args),
            "pipeline" => pipeline(&args),
            "soak" => soak(&args),
            "second-instance" => second_instance(&args),
            other => Err(format!("unknown subcommand {other}")),
        }
    });
    match result {
        Ok(value) => println!("{value}"),
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
}
