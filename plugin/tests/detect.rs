//! `onenipdetect` on the bundled model: metadata on every buffer, messages, prompt hot-swap,
//! inference interval, roi, providers and errors, as a user of the element sees them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gstonenip::messages::{
    AnomalyEvent, AnomalyMessage, PromptMessage, PromptStatus, ProviderMessage, ProviderState,
};
use gstonenip::meta::{AnomalyMeta, ROI_PARAM, ROI_TYPE};

mod common;
use common::{data, init, model_dir, repo};

fn model_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(model_dir().join("model.json")).unwrap()).unwrap()
}

/// Runs `description` (which must end in `appsink name=sink`) to EOS; returns the buffers
/// and the element messages of the bus.
fn run_pipeline(
    description: &str,
    during: impl Fn(&gst::Pipeline, usize) + Send + Sync + 'static,
) -> (Vec<gst::Buffer>, Vec<gst::Structure>) {
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
    let during = Arc::new(during);
    {
        let buffers = buffers.clone();
        let weak = pipeline.downgrade();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let n = {
                        let mut b = buffers.lock().unwrap();
                        b.push(sample.buffer_owned().unwrap());
                        b.len()
                    };
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
    let mut messages = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null).unwrap();
                panic!("pipeline error: {} ({:?})", e.error(), e.debug());
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    messages.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let buffers = buffers.lock().unwrap().clone();
    (buffers, messages)
}

fn meta_of(buffer: &gst::Buffer) -> AnomalyMeta {
    AnomalyMeta::from_buffer(buffer)
        .expect("OnenipAnomalyMeta on the buffer")
        .expect("a readable OnenipAnomalyMeta")
}

fn detect(extra: &str) -> String {
    format!(
        "onenipdetect name=detect execution-provider=cpu threads=2 prompt-location={} {extra}",
        data("prompt.png")
    )
}

#[test]
fn every_buffer_carries_the_anomaly_meta() {
    let (buffers, messages) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=6 pattern=ball ! video/x-raw,format=RGB,width=320,height=240 \
             ! {} ! appsink name=sink sync=false",
            detect("")
        ),
        |_, _| {},
    );
    assert_eq!(buffers.len(), 6);
    let json = model_json();
    let size = json["input_size"].as_u64().unwrap() as u32;
    let mut last_pts = None;
    for buffer in &buffers {
        assert!(buffer.pts() > last_pts, "buffers in order");
        last_pts = buffer.pts();
        let meta = meta_of(buffer);
        assert!(meta.score.is_finite());
        assert_eq!(meta.anomalous, meta.score > meta.image_threshold);
        assert!(
            (meta.image_threshold - json["image_threshold"].as_f64().unwrap() as f32).abs() < 1e-4
        );
        assert!(
            (meta.pixel_threshold - json["pixel_threshold"].as_f64().unwrap() as f32).abs() < 1e-4
        );
        assert_eq!((meta.frame_width, meta.frame_height), (320, 240));
        assert_eq!(meta.roi, (0, 0, 320, 240));
        assert_eq!((meta.map_width, meta.map_height), (size, size));
        assert_eq!(meta.map_bytes().unwrap().len(), (size * size) as usize);
        assert!(meta.map_scale > 0.0);
        assert!(!meta.stale);
        assert!(meta.latency > gst::ClockTime::ZERO);
        assert_eq!(meta.provider, "cpu");
        // One region-of-interest meta per region, with its score.
        let rois: Vec<_> = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter(|m| m.roi_type() == ROI_TYPE)
            .collect();
        assert_eq!(rois.len(), meta.regions.len());
        for (id, (roi, region)) in rois.iter().zip(&meta.regions).enumerate() {
            assert_eq!(
                roi.id(),
                id as i32,
                "ROI metas are numbered in region order"
            );
            assert_eq!(
                roi.rect(),
                (region.x, region.y, region.width, region.height)
            );
            let param = roi.param(ROI_PARAM).unwrap();
            assert_eq!(param.get::<f32>("score").unwrap(), region.peak);
        }
    }
    // Start-up messages: provider building then ready (on cpu), prompt loaded.
    let provider: Vec<_> = messages
        .iter()
        .filter_map(|s| ProviderMessage::from_structure(s).ok())
        .collect();
    assert_eq!(provider.last().unwrap().state, ProviderState::Ready);
    assert_eq!(provider.last().unwrap().active, "cpu");
    let prompts: Vec<_> = messages
        .iter()
        .filter_map(|s| PromptMessage::from_structure(s).ok())
        .collect();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].status, PromptStatus::Loaded);
    assert!(prompts[0].location.ends_with("prompt.png"));
}

#[test]
fn every_format_is_inspected() {
    for format in [
        "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "GRAY8", "I420", "NV12",
    ] {
        // Odd width: padded strides.
        let (buffers, _) = run_pipeline(
            &format!(
                "videotestsrc num-buffers=2 ! video/x-raw,format={format},width=161,height=121 \
                 ! {} ! appsink name=sink sync=false",
                detect("")
            ),
            |_, _| {},
        );
        assert_eq!(buffers.len(), 2, "{format}");
        let meta = meta_of(&buffers[1]);
        assert!(meta.score.is_finite(), "{format}");
        assert_eq!(
            (meta.frame_width, meta.frame_height),
            (161, 121),
            "{format}"
        );
    }
}

#[test]
fn the_element_never_changes_pixels() {
    init();
    let mut h = gst_check::Harness::new_parse(&detect(""));
    h.set_src_caps_str("video/x-raw,format=RGB,width=8,height=4,framerate=30/1");
    h.play();
    let data: Vec<u8> = (0..8 * 4 * 3).map(|i| (i * 7) as u8).collect();
    let out = h
        .push_and_pull(gst::Buffer::from_slice(data.clone()))
        .unwrap();
    assert_eq!(out.map_readable().unwrap().as_slice(), data.as_slice());
    assert!(AnomalyMeta::from_buffer(&out).is_some());
}

#[test]
fn inference_interval_marks_the_frames_between_stale() {
    let (buffers, messages) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=7 ! video/x-raw,width=64,height=64 \
             ! {} ! appsink name=sink sync=false",
            detect("inference-interval=3 message-mode=every-frame")
        ),
        |_, _| {},
    );
    let stale: Vec<bool> = buffers.iter().map(|b| meta_of(b).stale).collect();
    assert_eq!(stale, [false, true, true, false, true, true, false]);
    // A stale frame carries the last inferred result.
    assert_eq!(meta_of(&buffers[1]).score, meta_of(&buffers[0]).score);
    let frames = messages
        .iter()
        .filter_map(|s| AnomalyMessage::from_structure(s).ok())
        .filter(|m| m.event == AnomalyEvent::Frame)
        .count();
    assert_eq!(frames, 3, "one frame message per inferred frame");
}

#[test]
fn thresholds_change_the_decision_and_episodes_follow_the_hysteresis() {
    // Threshold 0: every frame anomalous; one episode starts after 2 frames and ends at EOS.
    let (buffers, messages) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=5 ! video/x-raw,width=64,height=64 \
             ! {} ! appsink name=sink sync=false",
            detect("image-threshold=0 pixel-threshold=0 min-anomalous-frames=2")
        ),
        |_, _| {},
    );
    for b in &buffers {
        let meta = meta_of(b);
        assert!(meta.anomalous);
        assert_eq!(meta.image_threshold, 0.0);
        assert!(
            !meta.regions.is_empty(),
            "pixel threshold 0: the whole map is one region"
        );
    }
    let events: Vec<_> = messages
        .iter()
        .filter_map(|s| AnomalyMessage::from_structure(s).ok())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].event, AnomalyEvent::Start);
    assert_eq!(events[0].pts, buffers[1].pts());
    assert!(!events[0].regions.is_empty());
    assert_eq!(events[1].event, AnomalyEvent::End);
}

#[test]
fn thresholds_changed_while_playing_apply_from_the_next_frame() {
    let (buffers, _) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=6 ! video/x-raw,width=64,height=64 \
             ! {} ! appsink name=sink sync=false",
            detect("")
        ),
        |pipeline, n| {
            if n == 3 {
                let detect = pipeline.by_name("detect").unwrap();
                detect.set_property("image-threshold", 0.0f32);
                detect.set_property("pixel-threshold", 0.0f32);
            }
        },
    );
    let thresholds: Vec<f32> = buffers.iter().map(|b| meta_of(b).image_threshold).collect();
    let model = model_json()["image_threshold"].as_f64().unwrap() as f32;
    for (i, t) in thresholds.iter().enumerate() {
        let want = if i < 3 { model } else { 0.0 };
        assert!((t - want).abs() < 1e-4, "frame {i}: {thresholds:?}");
    }
    assert!(buffers[3..].iter().all(|b| meta_of(b).anomalous));
    assert_eq!(meta_of(&buffers[5]).pixel_threshold, 0.0);
}

#[test]
fn threshold_properties_read_back_the_value_in_force() {
    init();
    let element = gst::ElementFactory::make("onenipdetect").build().unwrap();
    assert_eq!(element.property::<f32>("image-threshold"), -1.0);
    element.set_property("image-threshold", 2.5f32);
    assert_eq!(element.property::<f32>("image-threshold"), 2.5);
}

#[test]
fn roi_limits_the_inspection_and_the_regions() {
    let (buffers, _) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=2 ! video/x-raw,width=320,height=240 \
             ! {} ! appsink name=sink sync=false",
            detect("roi=40,20,200,100 pixel-threshold=0")
        ),
        |_, _| {},
    );
    let meta = meta_of(&buffers[0]);
    assert_eq!(meta.roi, (40, 20, 200, 100));
    for r in &meta.regions {
        assert!(
            r.x >= 40 && r.y >= 20 && r.x + r.width <= 240 && r.y + r.height <= 120,
            "{r:?}"
        );
    }
}

#[test]
fn prompt_swaps_while_playing_lose_no_frame() {
    let good = data("prompt-ball.png");
    let bad = data("not-an-image.png");
    let (buffers, messages) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=40 ! video/x-raw,width=64,height=64 \
             ! {} ! appsink name=sink sync=false",
            detect("")
        ),
        move |pipeline, n| {
            let detect = pipeline.by_name("detect").unwrap();
            match n {
                5 => detect.set_property("prompt-location", &good),
                15 => detect.set_property("prompt-location", &bad),
                _ => {}
            }
        },
    );
    assert_eq!(buffers.len(), 40, "no frame dropped");
    let pts: Vec<_> = buffers.iter().map(|b| b.pts().unwrap()).collect();
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(buffers
        .iter()
        .all(|b| AnomalyMeta::from_buffer(b).is_some()));
    let prompts: Vec<_> = messages
        .iter()
        .filter_map(|s| PromptMessage::from_structure(s).ok())
        .collect();
    let statuses: Vec<_> = prompts
        .iter()
        .map(|p| (p.status, p.location.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (PromptStatus::Loaded, data("prompt.png")),
            (PromptStatus::Loaded, data("prompt-ball.png")),
            (PromptStatus::Refused, data("not-an-image.png")),
        ]
    );
    let reason = prompts[2].reason.as_deref().unwrap();
    assert!(reason.contains("not-an-image.png"), "{reason}");
    // The meta names the prompt in use: the first until the swap, then the new one, which
    // the bad file did not replace.
    assert_eq!(meta_of(&buffers[0]).prompt, data("prompt.png"));
    assert_eq!(meta_of(&buffers[39]).prompt, data("prompt-ball.png"));
    let first_new = buffers
        .iter()
        .position(|b| meta_of(b).prompt == data("prompt-ball.png"))
        .unwrap();
    assert!(first_new >= 5, "swapped in after the request");
    assert!(buffers[first_new..]
        .iter()
        .all(|b| meta_of(b).prompt == data("prompt-ball.png")));
    // The new prompt changed the scores; the bad one did not stop the inspection.
    assert_ne!(meta_of(&buffers[0]).score, meta_of(&buffers[39]).score);
}

#[test]
fn capture_prompt_takes_the_next_frame() {
    let (_, messages) = run_pipeline(
        &format!(
            "videotestsrc num-buffers=30 ! video/x-raw,width=64,height=64 \
             ! {} ! appsink name=sink sync=false",
            detect("")
        ),
        |pipeline, n| {
            if n == 3 {
                pipeline
                    .by_name("detect")
                    .unwrap()
                    .emit_by_name::<()>("capture-prompt", &[]);
            }
        },
    );
    let captured = messages
        .iter()
        .filter_map(|s| PromptMessage::from_structure(s).ok())
        .find(|p| p.location == "capture")
        .expect("a prompt message for the capture");
    assert_eq!(captured.status, PromptStatus::Loaded);
}

fn start_error(description: &str) -> String {
    init();
    let pipeline = gst::parse::launch(description).unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .expect("an error message");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    err.error().to_string()
}

#[test]
fn a_missing_prompt_fails_the_start_and_names_the_file() {
    let text = start_error(
        "videotestsrc num-buffers=1 ! onenipdetect execution-provider=cpu \
         prompt-location=/nonexistent/good.png ! fakesink",
    );
    assert!(text.contains("/nonexistent/good.png"), "{text}");
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn strict_cuda_fails_with_the_reason_and_non_strict_falls_back_loudly() {
    let text = start_error(&format!(
        "videotestsrc num-buffers=1 ! onenipdetect execution-provider=cuda strict-provider=true \
         prompt-location={} ! fakesink",
        data("prompt.png")
    ));
    assert!(text.contains("strict"), "{text}");
    assert!(text.contains("CUDA"), "{text}");

    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! onenipdetect name=detect execution-provider=cuda \
         prompt-location={} ! fakesink",
        data("prompt.png")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let warning = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Warning],
        )
        .expect("a fallback warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("running on cpu"),
        "{}",
        w.error()
    );
    let detect = pipeline.by_name("detect").unwrap();
    assert_eq!(detect.property::<String>("active-provider"), "cpu");
    pipeline.set_state(gst::State::Null).unwrap();
    std::thread::sleep(Duration::from_millis(10));
}

fn sample() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("pipelines/media/sample.json")).unwrap(),
    )
    .unwrap()
}

/// onenipdetect's thresholds for the sample's product class, from the model's calibration.
fn class_thresholds(sample: &serde_json::Value) -> String {
    let class = sample["class"].as_str().unwrap();
    let c = &model_json()["calibration"]["per_class"][class];
    format!(
        "image-threshold={} pixel-threshold={}",
        c["image_threshold"], c["pixel_threshold"]
    )
}

fn media(name: &serde_json::Value) -> String {
    repo()
        .join("pipelines/media")
        .join(name.as_str().unwrap())
        .display()
        .to_string()
}

#[test]
fn defective_sample_parts_score_above_the_threshold_and_good_ones_below() {
    let sample = sample();
    let (buffers, _) = run_pipeline(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert \
             ! onenipdetect execution-provider=cpu threads=2 prompt-location={} {} \
             ! appsink name=sink sync=false",
            media(&sample["video"]),
            media(&sample["prompt"]),
            class_thresholds(&sample)
        ),
        |_, _| {},
    );
    assert_eq!(buffers.len() as u64, sample["frames"].as_u64().unwrap());
    for part in sample["parts"].as_array().unwrap() {
        let (start, end) = (
            part["start_frame"].as_u64().unwrap() as usize,
            part["end_frame"].as_u64().unwrap() as usize,
        );
        let m = meta_of(&buffers[(start + end) / 2]);
        let defective = part["defective"].as_bool().unwrap();
        assert_eq!(
            m.anomalous, defective,
            "part {} ({}): score {} vs threshold {}",
            part["index"], part["label"], m.score, m.image_threshold
        );
    }
}

#[test]
fn each_defective_part_posts_exactly_one_start_and_one_end() {
    let sample = sample();
    let parts = sample["parts"].as_array().unwrap();
    let (_, messages) = run_pipeline(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert \
             ! onenipdetect execution-provider=cpu threads=2 prompt-location={} {} \
             ! appsink name=sink sync=false",
            media(&sample["video"]),
            media(&sample["prompt"]),
            class_thresholds(&sample)
        ),
        |_, _| {},
    );
    let events: Vec<_> = messages
        .iter()
        .filter_map(|s| AnomalyMessage::from_structure(s).ok())
        .collect();
    let seconds = |e: &AnomalyMessage| e.pts.map(|t| t.nseconds() as f64 / 1e9);
    for (k, part) in parts.iter().enumerate() {
        // From the end of the previous part (its slide-out) to the start of the next one.
        let from = if k == 0 {
            0.0
        } else {
            parts[k - 1]["end_s"].as_f64().unwrap()
        };
        let to = parts
            .get(k + 1)
            .map_or(f64::MAX, |n| n["start_s"].as_f64().unwrap());
        let within = |e: &&AnomalyMessage| seconds(e).is_none_or(|t| t >= from && t < to);
        let starts = events
            .iter()
            .filter(|e| e.event == AnomalyEvent::Start)
            .filter(within)
            .count();
        let want = usize::from(part["defective"].as_bool().unwrap());
        assert_eq!(starts, want, "part {k} ({}): {events:?}", part["label"]);
    }
    let kinds: Vec<_> = events.iter().map(|e| e.event).collect();
    assert!(
        kinds
            .chunks(2)
            .all(|c| c == [AnomalyEvent::Start, AnomalyEvent::End]),
        "every start is followed by its end: {kinds:?}"
    );
}
