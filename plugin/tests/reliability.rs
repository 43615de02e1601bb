//! Reliability of `onenipdetect` on a line that runs for weeks: odd caps, renegotiation, state
//! changes, seeks, prompt swaps and threshold changes from other threads, shared models,
//! thread and memory leaks, and a long soak. See tests/RELIABILITY.md for the table.
//!
//! Most cases run on `tests/data/tiny-onenip`, a model that honours the ONNX contract at
//! input size 32, so that thousands of frames take seconds; the element's code paths are
//! the same as with the bundled model.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstonenip::messages::{PromptMessage, PromptStatus};
use gstonenip::meta::AnomalyMeta;

mod common;
use common::{data, init};

fn tiny_detect(extra: &str) -> String {
    format!(
        "onenipdetect name=detect execution-provider=cpu threads=1 model={} prompt-location={} {extra}",
        data("tiny-onenip"),
        data("prompt.png")
    )
}

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

struct Run {
    buffers: Vec<gst::Buffer>,
    messages: Vec<gst::Structure>,
    warnings: Vec<String>,
}

/// Plays `description` (ending in `appsink name=sink`) to EOS, calling `during` with the
/// pipeline and the number of buffers seen after each buffer.
fn run(
    description: &str,
    keep_buffers: bool,
    during: impl Fn(&gst::Pipeline, usize) + Send + Sync + 'static,
) -> Run {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let buffers = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    {
        let (buffers, count) = (buffers.clone(), count.clone());
        let weak = pipeline.downgrade();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer_owned().unwrap();
                    assert!(
                        AnomalyMeta::from_buffer(&buffer).is_some(),
                        "every buffer carries the meta"
                    );
                    if keep_buffers {
                        buffers.lock().unwrap().push(buffer);
                    }
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(p) = weak.upgrade() {
                        during(&p, n);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut messages, mut warnings) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null).unwrap();
                panic!("pipeline error: {} ({:?})", e.error(), e.debug());
            }
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    messages.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let buffers = std::mem::take(&mut *buffers.lock().unwrap());
    assert!(count.load(Ordering::SeqCst) > 0);
    Run {
        buffers,
        messages,
        warnings,
    }
}

fn meta(b: &gst::Buffer) -> AnomalyMeta {
    AnomalyMeta::from_buffer(b).unwrap().unwrap()
}

#[test]
fn a_1x1_frame_and_an_8k_frame_are_inspected() {
    for (w, h) in [(1, 1), (7680, 4320)] {
        let r = run(
            &format!(
                "videotestsrc num-buffers=2 ! video/x-raw,format=I420,width={w},height={h} \
                 ! {} ! appsink name=sink sync=false",
                tiny_detect("")
            ),
            true,
            |_, _| {},
        );
        assert_eq!(r.buffers.len(), 2);
        let m = meta(&r.buffers[1]);
        assert_eq!((m.frame_width, m.frame_height), (w, h));
        assert!(m.score.is_finite());
    }
}

#[test]
fn resolution_and_format_renegotiation_mid_stream() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! {} ! appsink name=sink sync=false",
        tiny_detect("")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let cases = [
        ("RGB", 64, 48),
        ("I420", 320, 240),
        ("GRAY8", 33, 17),
        ("BGRx", 100, 100),
    ];
    let mut pts = 0;
    for (format, w, h) in cases {
        let info = gst_video::VideoInfo::builder(format.parse().unwrap(), w, h)
            .fps(gst::Fraction::new(10, 1))
            .build()
            .unwrap();
        src.set_caps(Some(&info.to_caps().unwrap()));
        for _ in 0..2 {
            let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
            buffer
                .get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(pts));
            pts += 100;
            src.push_buffer(buffer).unwrap();
            let sample = sink
                .try_pull_sample(gst::ClockTime::from_seconds(30))
                .expect("a buffer out for each buffer in");
            let m = meta(&sample.buffer_owned().unwrap());
            assert_eq!((m.frame_width, m.frame_height), (w, h), "{format}");
        }
    }
    src.end_of_stream().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn an_roi_outside_the_frame_warns_and_inspects_the_whole_frame() {
    let r = run(
        &format!(
            "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 \
             ! {} ! appsink name=sink sync=false",
            tiny_detect("roi=500,500,10,10")
        ),
        true,
        |_, _| {},
    );
    assert_eq!(r.buffers.len(), 3);
    assert!(r.buffers.iter().all(|b| meta(b).roi == (0, 0, 64, 48)));
    let roi_warnings: Vec<_> = r.warnings.iter().filter(|w| w.contains("roi")).collect();
    assert_eq!(roi_warnings.len(), 1, "warned once: {:?}", r.warnings);
    assert!(
        roi_warnings[0].contains("500,500,10,10") && roi_warnings[0].contains("64x48"),
        "{}",
        roi_warnings[0]
    );
}

#[test]
fn an_invalid_roi_value_is_refused_with_a_warning() {
    init();
    let element = gst::ElementFactory::make("onenipdetect").build().unwrap();
    element.set_property("roi", "10,10,100,80");
    element.set_property("roi", "ten,10,100,80");
    assert_eq!(
        element.property::<Option<String>>("roi").as_deref(),
        Some("10,10,100,80")
    );
}

#[test]
fn flushing_seeks_keep_the_stream_inspected() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=200 ! video/x-raw,width=64,height=48,framerate=100/1 \
         ! {} ! appsink name=sink sync=false max-buffers=4",
        tiny_detect("")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for target in [500u64, 100, 1500, 0] {
        sink.try_pull_sample(gst::ClockTime::from_seconds(10))
            .unwrap();
        pipeline
            .seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::from_mseconds(target),
            )
            .unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .expect("frames after the seek");
        let buffer = sample.buffer_owned().unwrap();
        assert_eq!(buffer.pts(), Some(gst::ClockTime::from_mseconds(target)));
        assert!(meta(&buffer).score.is_finite());
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn prompt_swaps_and_threshold_changes_from_other_threads_lose_nothing() {
    let stop = Arc::new(AtomicBool::new(false));
    let element: Arc<Mutex<Option<gst::Element>>> = Arc::default();
    let workers: Vec<_> = (0..2)
        .map(|k| {
            let (stop, element) = (stop.clone(), element.clone());
            std::thread::spawn(move || {
                let prompts = [data("prompt.png"), data("prompt-ball.png")];
                let mut swaps = 0;
                while !stop.load(Ordering::SeqCst) && swaps < 50 {
                    let e = element.lock().unwrap().clone();
                    if let Some(e) = e {
                        e.set_property("prompt-location", &prompts[swaps % 2]);
                        e.set_property("image-threshold", 0.1f32 * (k + swaps % 5) as f32);
                        e.set_property("pixel-threshold", 0.2f32);
                        swaps += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                swaps
            })
        })
        .collect();
    let element_slot = element.clone();
    let r = run(
        &format!(
            "videotestsrc num-buffers=1500 ! video/x-raw,width=64,height=48 ! {} \
             ! appsink name=sink sync=false",
            tiny_detect("")
        ),
        true,
        move |p, n| {
            if n == 1 {
                *element_slot.lock().unwrap() = p.by_name("detect");
            }
        },
    );
    stop.store(true, Ordering::SeqCst);
    let swaps: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(swaps, 100, "100 prompt swaps done while streaming");
    assert_eq!(r.buffers.len(), 1500, "no buffer lost");
    let pts: Vec<_> = r.buffers.iter().map(|b| b.pts().unwrap()).collect();
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "no buffer reordered");
    let loaded = r
        .messages
        .iter()
        .filter_map(|s| PromptMessage::from_structure(s).ok())
        .filter(|m| m.status == PromptStatus::Loaded)
        .count();
    assert!(loaded >= 2, "prompts were swapped in ({loaded} loaded)");
    assert!(r.buffers.iter().all(|b| meta(b).score.is_finite()));
}

#[test]
fn two_and_four_pipelines_share_one_model() {
    for n in [2usize, 4] {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                std::thread::spawn(|| {
                    run(
                        &format!(
                            "videotestsrc num-buffers=300 ! video/x-raw,width=64,height=48 ! {} \
                             ! appsink name=sink sync=false",
                            tiny_detect("")
                        ),
                        true,
                        |_, _| {},
                    )
                })
            })
            .collect();
        for h in handles {
            let r = h.join().expect("no pipeline panicked");
            assert_eq!(r.buffers.len(), 300);
            let pts: Vec<_> = r.buffers.iter().map(|b| b.pts().unwrap()).collect();
            assert!(pts.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn soak_50000_frames_without_memory_growth() {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let recorded = samples.clone();
    let started = Instant::now();
    let r = run(
        &format!(
            "videotestsrc num-buffers=50000 ! video/x-raw,format=I420,width=64,height=48 ! {} \
             ! appsink name=sink sync=false",
            tiny_detect("")
        ),
        false,
        move |_, n| {
            if n % 5000 == 0 {
                recorded.lock().unwrap().push(rss_kib());
            }
        },
    );
    assert!(r.buffers.is_empty());
    let samples = samples.lock().unwrap().clone();
    assert_eq!(samples.len(), 10, "all 50,000 frames came out");
    // From the second sample on (allocators warmed up).
    let growth = samples.last().unwrap().saturating_sub(samples[1]);
    eprintln!(
        "soak: 50000 frames in {:?}, RSS samples (KiB): {samples:?}, growth {growth} KiB",
        started.elapsed()
    );
    assert!(growth < 2048, "RSS grew by {growth} KiB: {samples:?}");
}
