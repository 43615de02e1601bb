//! The anomaly result both overlay timings draw, shared by the `bench` and `overlay_speed`
//! examples (included with `#[path]`).

use gstonenip::meta::{AnomalyMeta, RegionBox};

/// A 256x256 map with two hot blobs and two regions over a `width` x `height` frame: what
/// the overlay draws with every mode on.
pub fn overlay_meta(width: u32, height: u32) -> AnomalyMeta {
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
        roi: (0, 0, width, height),
        frame_width: width,
        frame_height: height,
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
        prompt: "prompt.png".into(),
    }
}
