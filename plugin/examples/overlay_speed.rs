//! Time `onenipoverlay` on 1080p frames: `cargo run --release -p gst-plugin-onenip --example
//! overlay_speed`. Heat map, outline, boxes and label over the whole frame, for the blending
//! path (RGB, RGBx, I420, NV12) and the composition path; prints milliseconds per frame.
//! An optional argument sets the number of frames (default 200), e.g. a few under
//! `valgrind --tool=callgrind` for instruction counts; a second one times that format's
//! blending only (e.g. `I420`), for a profile of one path.

use std::time::Instant;

use gst::prelude::*;
use gstonenip::meta::AnomalyMeta;

const W: u32 = 1920;
const H: u32 = 1080;
const ALL: &str = "heatmap+outline+boxes+label";

#[path = "shared/overlay_meta.rs"]
mod overlay_meta;

/// The result drawn on every frame, over the whole 1080p frame.
fn meta() -> AnomalyMeta {
    overlay_meta::overlay_meta(W, H)
}

/// Drops the composition of the previous round, so that each round attaches one.
fn strip_composition(buf: &mut gst::Buffer) {
    let b = buf.make_mut();
    while let Some(m) = b.meta_mut::<gst_video::VideoOverlayCompositionMeta>() {
        m.remove().unwrap();
    }
}

fn run(format: &str, composition: bool, mode: &str, frames: u32) -> f64 {
    let caps = format!("video/x-raw,format={format},width={W},height={H},framerate=30/1");
    let mut h = gst_check::Harness::new_parse(&format!("onenipoverlay mode={mode}"));
    h.set_src_caps_str(&caps);
    if composition {
        h.set_sink_caps_str(&caps.replacen(
            "video/x-raw",
            "video/x-raw(memory:SystemMemory, meta:GstVideoOverlayComposition)",
            1,
        ));
        h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    } else {
        h.set_sink_caps_str(&caps);
    }
    let info = gst_video::VideoInfo::from_caps(&caps.parse::<gst::Caps>().unwrap()).unwrap();
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.map_writable().unwrap().fill(100);
        meta().attach(b).unwrap();
    }
    // Warm up (negotiation, first allocations), then recycle the same buffer: it stays
    // writable, so nothing is copied.
    for _ in 0..5 {
        h.push(buf).unwrap();
        buf = h.pull().unwrap();
        if composition {
            strip_composition(&mut buf);
        }
    }
    let mut total = std::time::Duration::ZERO;
    for _ in 0..frames {
        if composition {
            strip_composition(&mut buf);
        }
        let t = Instant::now();
        h.push(buf).unwrap();
        buf = h.pull().unwrap();
        total += t.elapsed();
    }
    total.as_secs_f64() * 1000.0 / frames as f64
}

fn main() {
    let frames: u32 = std::env::args()
        .nth(1)
        .map_or(200, |s| s.parse().expect("FRAMES"));
    let only = std::env::args().nth(2);
    gst::init().unwrap();
    gstonenip::plugin_register_static().unwrap();
    if let Some(format) = only {
        let ms = run(&format, false, ALL, frames);
        println!("onenipoverlay, {W}x{H}, blend {format}: {ms:.2} ms/frame");
        return;
    }
    println!("onenipoverlay, {W}x{H}, heat map + outline + boxes + label, {frames} frames");
    for format in ["RGB", "RGBx", "I420", "NV12"] {
        println!(
            "  blend {format:5}: {:.2} ms/frame",
            run(format, false, ALL, frames)
        );
    }
    for mode in ["heatmap", "outline", "heatmap+outline", "boxes+label"] {
        println!(
            "  blend RGB, {mode}: {:.2} ms/frame",
            run("RGB", false, mode, frames)
        );
    }
    println!(
        "  composition (RGB caps): {:.2} ms/frame",
        run("RGB", true, ALL, frames)
    );
}
