//! `onenipoverlay` on hand-made metadata (no model needed): both drawing paths (blending and
//! overlay composition), scaling between detector and overlay, `only-anomalous`, and
//! buffers without metadata.

use gst::prelude::*;
use gst_video::prelude::*;
use gstonenip::meta::{AnomalyMeta, RegionBox};
use gstonenip::overlay::{Colormap, BOX_COLOUR, LABEL_ANOMALOUS, LABEL_TEXT};

mod common;
use common::init;

const W: u32 = 320;
const H: u32 = 240;
const GREY: u8 = 100;

/// The inspected part of the frame, and the region the hot block of the map covers.
const ROI: (u32, u32, u32, u32) = (64, 48, 192, 144);
const REGION: (u32, u32, u32, u32) = (112, 84, 96, 72);
/// A frame pixel where the (upsampled) map is 255, away from the mask outline.
const HOT: (usize, usize) = (160, 120);
/// A frame pixel outside the roi.
const OUTSIDE: (usize, usize) = (10, 200);
/// A pixel in the padding of the label (placed at the roi's top-left corner).
const LABEL_PAD: (usize, usize) = (65, 49);

/// An 8x8 map over [`ROI`]: 255 in cells 2..6 x 2..6 (frame pixels [`REGION`]), 0 elsewhere.
fn meta(frame: (u32, u32), anomalous: bool) -> AnomalyMeta {
    let mut map = vec![0u8; 64];
    for y in 2..6 {
        for x in 2..6 {
            map[y * 8 + x] = 255;
        }
    }
    let (sx, sy) = (frame.0 as f64 / W as f64, frame.1 as f64 / H as f64);
    let s = |v: u32, k: f64| (v as f64 * k).round() as u32;
    AnomalyMeta {
        score: if anomalous { 0.93 } else { 0.12 },
        anomalous,
        image_threshold: 0.5,
        pixel_threshold: 0.5,
        roi: (s(ROI.0, sx), s(ROI.1, sy), s(ROI.2, sx), s(ROI.3, sy)),
        frame_width: frame.0,
        frame_height: frame.1,
        map: Some(gst::Buffer::from_slice(map)),
        map_width: 8,
        map_height: 8,
        map_scale: 1.0 / 255.0,
        regions: if anomalous {
            vec![RegionBox {
                x: s(REGION.0, sx),
                y: s(REGION.1, sy),
                width: s(REGION.2, sx),
                height: s(REGION.3, sy),
                peak: 1.0,
            }]
        } else {
            vec![]
        },
        stale: false,
        latency: gst::ClockTime::from_mseconds(5),
        provider: "cpu".into(),
        prompt: "good.png".into(),
    }
}

fn caps(format: &str, w: u32, h: u32) -> String {
    format!("video/x-raw,format={format},width={w},height={h},framerate=30/1")
}

/// A grey frame (RGB 100, 100, 100 or its BT.601 equivalent) with `meta` attached.
fn frame(format: &str, w: u32, h: u32, meta: Option<&AnomalyMeta>) -> gst::Buffer {
    let info = gst_video::VideoInfo::builder(format.parse().unwrap(), w, h)
        .build()
        .unwrap();
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        {
            let mut f = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).unwrap();
            let yuv = bt601([GREY; 3]);
            for p in 0..f.n_planes() {
                let fill = match (info.is_yuv(), p) {
                    (false, _) => GREY,
                    (true, 0) => yuv[0],
                    (true, _) => 128,
                };
                f.plane_data_mut(p).unwrap().fill(fill);
            }
        }
        b.set_pts(gst::ClockTime::ZERO);
        if let Some(m) = meta {
            m.attach(b).unwrap();
        }
    }
    buf
}

/// BT.601 limited-range Y, U, V of an RGB colour.
fn bt601(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(|v| v as f64 / 255.0);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        q(16.0 + 219.0 * y),
        q(128.0 + 224.0 * (b - y) / 1.772),
        q(128.0 + 224.0 * (r - y) / 1.402),
    ]
}

fn harness(format: &str, sink_caps: Option<&str>, props: &str) -> gst_check::Harness {
    init();
    let mut h = gst_check::Harness::new_parse(&format!("onenipoverlay {props}"));
    h.set_src_caps_str(&caps(format, W, H));
    if let Some(c) = sink_caps {
        h.set_sink_caps_str(c);
    }
    h
}

fn push(h: &mut gst_check::Harness, buf: gst::Buffer) -> gst::Buffer {
    h.push(buf).unwrap();
    h.pull().unwrap()
}

/// Reads packed RGB pixels.
struct Rgb<'a>(&'a [u8]);
impl Rgb<'_> {
    fn at(&self, (x, y): (usize, usize)) -> [u8; 3] {
        let o = (y * W as usize + x) * 3;
        [self.0[o], self.0[o + 1], self.0[o + 2]]
    }
}

fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(&a, b)| a.abs_diff(b) <= tol)
}

/// `base` tinted toward `top` by `alpha`.
fn tint(top: [u8; 3], base: [u8; 3], alpha: f64) -> [u8; 3] {
    std::array::from_fn(|c| {
        (base[c] as f64 + alpha * (top[c] as f64 - base[c] as f64)).round() as u8
    })
}

fn check_rgb_golden(data: &[u8]) {
    let px = Rgb(data);
    let top = Colormap::Turbo.lut()[255];
    let grey = [GREY; 3];
    assert_eq!(px.at(OUTSIDE), grey, "outside the roi: unchanged");
    let hot = px.at(HOT);
    assert!(
        close(hot, tint(top, grey, 0.5), 1),
        "map 255: {hot:?}, expected turbo's top {top:?} at alpha 0.5 over grey"
    );
    let (bx, by, bw, bh) = REGION;
    let (bx, by, bw, bh) = (bx as usize, by as usize, bw as usize, bh as usize);
    for p in [
        (bx, by + bh / 2),
        (bx + 1, by + bh / 2),
        (bx + bw - 1, by + bh / 2),
        (bx + bw / 2, by),
        (bx + bw / 2, by + bh - 1),
    ] {
        assert_eq!(px.at(p), BOX_COLOUR, "box outline at {p:?}");
    }
    assert_ne!(px.at((bx + 2, by + bh / 2)), BOX_COLOUR, "box is 2 px wide");
    assert_eq!(px.at(LABEL_PAD), LABEL_ANOMALOUS, "label background");
    let text = (48..62)
        .flat_map(|y| (64..150).map(move |x| (x, y)))
        .filter(|&p| px.at(p) == LABEL_TEXT)
        .count();
    assert!(text > 40, "label text pixels: {text}");
}

#[test]
fn blend_rgb() {
    // Default sink caps accept anything, composition feature included, but the harness
    // does not take the meta in the allocation query: the overlay blends and renegotiates
    // without the feature.
    let mut h = harness("RGB", None, "");
    let out = push(&mut h, frame("RGB", W, H, Some(&meta((W, H), true))));
    assert!(out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .is_none());
    check_rgb_golden(&out.map_readable().unwrap());

    let out = push(&mut h, frame("RGB", W, H, Some(&meta((W, H), true))));
    check_rgb_golden(&out.map_readable().unwrap());
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert!(
        !caps
            .features(0)
            .unwrap()
            .contains("meta:GstVideoOverlayComposition"),
        "renegotiated without the feature: {caps}"
    );
}

#[test]
fn blend_bgrx_matches_rgb() {
    let mut h = harness("BGRx", None, "");
    let out = push(&mut h, frame("BGRx", W, H, Some(&meta((W, H), true))));
    let data = out.map_readable().unwrap();
    let rgb: Vec<u8> = data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    check_rgb_golden(&rgb);
}

fn check_yuv_golden(format: &str) {
    let mut h = harness(format, Some(&caps(format, W, H)), "");
    let out = push(&mut h, frame(format, W, H, Some(&meta((W, H), true))));
    let info =
        gst_video::VideoInfo::from_caps(&caps(format, W, H).parse::<gst::Caps>().unwrap()).unwrap();
    let f = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &info).unwrap();
    let luma =
        |(x, y): (usize, usize)| f.plane_data(0).unwrap()[y * f.plane_stride()[0] as usize + x];
    let chroma = |(x, y): (usize, usize)| -> [u8; 2] {
        let (cx, cy) = (x / 2, y / 2);
        if format == "NV12" {
            let o = cy * f.plane_stride()[1] as usize + 2 * cx;
            let uv = f.plane_data(1).unwrap();
            [uv[o], uv[o + 1]]
        } else {
            [
                f.plane_data(1).unwrap()[cy * f.plane_stride()[1] as usize + cx],
                f.plane_data(2).unwrap()[cy * f.plane_stride()[2] as usize + cx],
            ]
        }
    };
    let yuv = |p| {
        let [u, v] = chroma(p);
        [luma(p), u, v]
    };
    let grey = bt601([GREY; 3]);
    assert_eq!(
        yuv(OUTSIDE),
        [grey[0], 128, 128],
        "outside the roi: unchanged"
    );
    let top = bt601(Colormap::Turbo.lut()[255]);
    let hot = yuv(HOT);
    assert!(
        close(hot, tint(top, [grey[0], 128, 128], 0.5), 2),
        "map 255: {hot:?} vs turbo's top {top:?}"
    );
    let (bx, by, _, bh) = REGION;
    let left = (bx as usize, (by + bh / 2) as usize);
    assert!(
        close(yuv(left), bt601(BOX_COLOUR), 1),
        "box: {:?}",
        yuv(left)
    );
    assert!(
        close(yuv(LABEL_PAD), bt601(LABEL_ANOMALOUS), 1),
        "label background"
    );
}

#[test]
fn blend_i420() {
    check_yuv_golden("I420");
}

#[test]
fn blend_nv12() {
    check_yuv_golden("NV12");
}

/// Pushes the same frame through the composition path and the blending path; the
/// composition blended by GStreamer must match our own blending.
fn composition_matches_blend(format: &str, tolerance: u8) {
    let feature_caps = caps(format, W, H).replacen(
        "video/x-raw",
        "video/x-raw(memory:SystemMemory, meta:GstVideoOverlayComposition)",
        1,
    );
    let mut h = harness(format, Some(&feature_caps), "");
    h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    let input = frame(format, W, H, Some(&meta((W, H), true)));
    let reference = input.map_readable().unwrap().to_vec();
    let out = push(&mut h, input);
    assert_eq!(
        out.map_readable().unwrap().as_slice(),
        reference.as_slice(),
        "the composition path leaves the pixels alone"
    );
    let composition = out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .expect("composition meta attached")
        .overlay_owned();
    assert_eq!(composition.n_rectangles(), 1);
    let (x, y, w, hh) = composition.rectangle(0).unwrap().render_rectangle();
    assert_eq!(
        (x, y, w, hh),
        (ROI.0 as i32, ROI.1 as i32, ROI.2, ROI.3),
        "the roi"
    );

    let info =
        gst_video::VideoInfo::from_caps(&caps(format, W, H).parse::<gst::Caps>().unwrap()).unwrap();
    let mut composed = out.copy_deep().unwrap();
    {
        let b = composed.get_mut().unwrap();
        let mut f = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).unwrap();
        composition.blend(&mut f).unwrap();
    }

    let mut blend = harness(format, Some(&caps(format, W, H)), "");
    let blended = push(&mut blend, frame(format, W, H, Some(&meta((W, H), true))));

    let a = composed.map_readable().unwrap();
    let b = blended.map_readable().unwrap();
    assert_eq!(a.len(), b.len());
    let diffs: Vec<u8> = a
        .iter()
        .zip(b.iter())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let max = *diffs.iter().max().unwrap();
    let off = diffs.iter().filter(|&&d| d > tolerance).count();
    eprintln!(
        "{format}: max difference {max}, {off} of {} bytes above {tolerance}",
        a.len()
    );
    if std::env::var_os("ONENIP_DUMP").is_some() {
        for (i, d) in diffs
            .iter()
            .enumerate()
            .filter(|(_, d)| **d > tolerance)
            .step_by(97)
        {
            eprintln!("byte {i}: ours {} gst {}  diff {d}", b[i], a[i]);
        }
    }
    // Same geometry: the same bytes are changed by both (but for chroma subsampling at
    // the edges).
    let moved = a
        .iter()
        .zip(b.iter())
        .zip(reference.iter())
        .filter(|((a, b), r)| (a != r) != (b != r))
        .count();
    assert!(
        moved * 200 <= a.len(),
        "{format}: {moved} bytes changed by only one of the two paths"
    );
    assert!(
        off * 1000 <= a.len(),
        "{format}: {off} bytes differ by more than {tolerance} (max {max})"
    );
}

#[test]
fn composition_rgb() {
    composition_matches_blend("RGB", 2);
}

/// GStreamer blends ARGB rectangles onto YUV with the BT.709 matrix whatever the frame's
/// colorimetry, where the overlay's own blending follows the caps (BT.601 at this size):
/// colours differ by up to about 17 levels, geometry must not.
#[test]
fn composition_i420() {
    composition_matches_blend("I420", 20);
}

#[test]
fn after_videoscale() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps={} ! videoscale ! video/x-raw,width=320,height=240 \
         ! onenipoverlay mode=boxes ! appsink name=sink caps={}",
        caps("RGB", 640, 480),
        caps("RGB", 320, 240),
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
    // The meta refers to 640x480: region (200, 100) 120x80 there.
    let mut m = meta((640, 480), true);
    m.regions[0] = RegionBox {
        x: 200,
        y: 100,
        width: 120,
        height: 80,
        peak: 1.0,
    };
    src.push_buffer(frame("RGB", 640, 480, Some(&m))).unwrap();
    src.end_of_stream().unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .expect("a frame");
    pipeline.set_state(gst::State::Null).unwrap();
    let buf = sample.buffer().unwrap();
    let data = buf.map_readable().unwrap();
    let px = Rgb(&data);
    // At half the coordinates: (100, 50) 60x40, 2 px lines.
    for p in [
        (100, 70),
        (101, 70),
        (158, 70),
        (159, 70),
        (130, 50),
        (130, 89),
    ] {
        assert_eq!(px.at(p), BOX_COLOUR, "box at {p:?}");
    }
    for p in [
        (99, 70),
        (102, 70),
        (157, 70),
        (160, 70),
        (130, 49),
        (130, 52),
        (130, 90),
    ] {
        assert_eq!(px.at(p), [GREY; 3], "no box at {p:?}");
    }
}

#[test]
fn only_anomalous_skips_normal_frames() {
    let mut h = harness("RGB", Some(&caps("RGB", W, H)), "only-anomalous=true");
    let input = frame("RGB", W, H, Some(&meta((W, H), false)));
    let reference = input.map_readable().unwrap().to_vec();
    let out = push(&mut h, input);
    assert_eq!(out.map_readable().unwrap().as_slice(), reference.as_slice());

    let out = push(&mut h, frame("RGB", W, H, Some(&meta((W, H), true))));
    check_rgb_golden(&out.map_readable().unwrap());

    // Without only-anomalous a normal frame gets the heat map and a green label.
    let mut h = harness("RGB", Some(&caps("RGB", W, H)), "");
    let out = push(&mut h, frame("RGB", W, H, Some(&meta((W, H), false))));
    let data = out.map_readable().unwrap();
    assert_eq!(Rgb(&data).at(LABEL_PAD), gstonenip::overlay::LABEL_NORMAL);
}

#[test]
fn buffer_without_meta_passes_untouched() {
    let mut h = harness("RGB", Some(&caps("RGB", W, H)), "");
    let input = frame("RGB", W, H, None);
    let reference = input.map_readable().unwrap().to_vec();
    let ptr = input.as_ptr();
    let out = push(&mut h, input);
    assert_eq!(out.as_ptr(), ptr, "passed through, not copied");
    assert_eq!(out.map_readable().unwrap().as_slice(), reference.as_slice());
    assert!(out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .is_none());
}

#[test]
fn properties() {
    init();
    let e = gst::ElementFactory::make("onenipoverlay").build().unwrap();
    assert_eq!(e.property::<f64>("alpha"), 0.5);
    assert!(!e.property::<bool>("only-anomalous"));
    assert_eq!(e.property::<Colormap>("colormap"), Colormap::Turbo);
    e.set_property_from_str("mode", "boxes+label");
    e.set_property_from_str("colormap", "inferno");
    assert_eq!(e.property::<Colormap>("colormap"), Colormap::Inferno);
    let mode = e.property::<gstonenip::overlay::OverlayMode>("mode");
    assert_eq!(
        mode,
        gstonenip::overlay::OverlayMode::BOXES | gstonenip::overlay::OverlayMode::LABEL
    );
}
