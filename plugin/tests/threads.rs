//! No thread and no memory is left behind by state changes, EOS during a prompt load, or a
//! pipeline torn down mid-stream. Its own test binary with a single test, so that the thread
//! count of the process is not disturbed by other tests.

use std::time::Duration;

use gst::prelude::*;

mod common;
use common::data;

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Threads of this process named `name` (our prompt workers are named `onenip-prompt`).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

/// No prompt worker is left, and the thread count has not grown by more than GStreamer's
/// and GLib's pools can fluctuate (a leak per cycle would add a hundred).
fn assert_no_thread_left(baseline: usize, what: &str) {
    assert_eq!(
        threads_named("onenip-prompt"),
        0,
        "{what} left a prompt worker"
    );
    let now = thread_count();
    assert!(
        now <= baseline + 2,
        "{what}: {now} threads, {baseline} before"
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn detect() -> String {
    format!(
        "onenipdetect name=detect execution-provider=cpu threads=1 model={} prompt-location={}",
        data("tiny-onenip"),
        data("prompt.png")
    )
}

fn play_to_eos(description: &str, during: impl Fn(&gst::Pipeline, u64)) {
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut n = 0;
    loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(5),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => break,
            Some(gst::MessageView::Error(e)) => panic!("{}", e.error()),
            _ => {
                n += 1;
                during(&pipeline, n);
            }
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn nothing_is_left_behind() {
    gst::init().unwrap();
    gstonenip::plugin_register_static().unwrap();
    let short = format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=32,height=32 ! {} ! fakesink",
        detect()
    );
    // Warm up: GStreamer and ONNX Runtime keep process-wide thread pools.
    play_to_eos(&short, |_, _| {});
    assert_no_thread_left(thread_count(), "a run");
    let threads = thread_count();
    let rss = rss_kib();

    // NULL -> PLAYING -> NULL, 100 times.
    for _ in 0..100 {
        play_to_eos(&short, |_, _| {});
    }
    assert_no_thread_left(threads, "100 state cycles");
    let growth = rss_kib().saturating_sub(rss);
    assert!(
        growth < 4 * 1024,
        "RSS grew by {growth} KiB over 100 cycles"
    );

    // EOS while a prompt is loading: the prompt change comes with the last frames.
    play_to_eos(
        &format!(
            "videotestsrc num-buffers=3 ! video/x-raw,width=32,height=32 ! {} ! fakesink sync=true",
            detect()
        ),
        |p, n| {
            if n == 1 {
                p.by_name("detect")
                    .unwrap()
                    .set_property("prompt-location", data("prompt-ball.png"));
            }
        },
    );
    assert_no_thread_left(threads, "EOS during a prompt load left a thread");

    // A live pipeline torn down while frames flow and a prompt loads.
    for _ in 0..10 {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=100/1 ! {} ! fakesink",
            detect()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        pipeline
            .by_name("detect")
            .unwrap()
            .set_property("prompt-location", data("prompt-ball.png"));
        pipeline.set_state(gst::State::Null).unwrap();
    }
    assert_no_thread_left(threads, "teardown mid-stream left threads behind");
}
