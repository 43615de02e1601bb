//! Time `onenipoverlay` on 1080p frames: `cargo run --release -p gst-plugin-onenip --example
//! overlay_speed`. Heat map, outline, boxes and label over the whole frame, for the blending
//! path (RGB, RGBx, I420, NV12) and the composition path; prints milliseconds per frame.
//! An optional argument sets the number of frames (default 200), e.g. a few under
//! `valgrind --tool=callgrind` for instruction counts.

use std::time::Instant;

use gst::prelude::*;
use gstonenip::meta::{AnomalyMeta, RegionBox};

const W: u32 = 1920;
const H: u32 = 1080;
const ALL: &str = "heatmap+outline+boxes+label";

/// A 256x256 map with two hot blobs and two regions, over the whole frame.
fn meta() -> AnomalyMeta {
    let n = 256usize;
    let mut map = vec![0u8; n * n];
    for (i, v) in map.iter_mut().enumerate() {
        let (x, y) = ((i % n) as f64, (i / n) as f64);
        let blob = |cx: f64, cy: f64, r: f64| {
            (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * r * r)).exp()
        };
        *v = ((blob(80.0, 90.0, 18.0) + blob(180.0, 170.0, 30.0)).min(1.0) * 255.0) as u8;
    }
    AnomalyMeta {
        score: 0.93,
        anomalous: true,
        image_threshold: 0.5,
        pixel_threshold: 0.5,
        roi: (0, 0, W, H),
        frame_width: W,
        frame_height: H,
        map: Some(gst::Buffer::from_slice(map)),
        map_width: n as u32,
        map_height: n as u32,
        map_scale: 1.0 / 255.0,
        regions: vec![
            RegionBox {
                x: 500,
                y: 330,
                width: 180,
                height: 170,
                peak: 1.0,
            },
            RegionBox {
                x: 1150,
                y: 560,
                width: 330,
                height: 300,
                peak: 0.9,
            },
        ],
        stale: false,
        latency: gst::ClockTime::from_mseconds(5),
        provider: "cpu".into(),
        prompt: "good.png".into(),
    }
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
    gst::init().unwrap();
    gstonenip::plugin_register_static().unwrap();
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
