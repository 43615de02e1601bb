// SPDX-License-Identifier: MIT OR Apache-2.0

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use gst_video::VideoFormat;
use gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION as META_FEATURE;

use super::colormap;
use super::render::{
    Chroma, Label, Layer, MapView, Packed, Palette, Rect, Renderer, Scale, Scene, Space, Yuv420,
    YuvMatrix,
};
use super::{
    Colormap, OverlayMode, BOX_COLOUR, LABEL_ANOMALOUS, LABEL_NORMAL, LABEL_TEXT, OUTLINE_COLOUR,
};
use crate::meta::{AnomalyMeta, META_NAME};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "onenipoverlay",
        gst::DebugColorFlags::empty(),
        Some("OneNIP anomaly overlay"),
    )
});

/// Formats drawn on in place (the composition path needs no format of its own).
const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// Format of the overlay rectangle: ARGB in native endianness.
#[cfg(target_endian = "little")]
const LAYER_FORMAT: VideoFormat = VideoFormat::Bgra;
#[cfg(target_endian = "big")]
const LAYER_FORMAT: VideoFormat = VideoFormat::Argb;

const DEFAULT_ALPHA: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
struct Settings {
    mode: OverlayMode,
    alpha: f64,
    colormap: Colormap,
    only_anomalous: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: OverlayMode::default(),
            alpha: DEFAULT_ALPHA,
            colormap: Colormap::default(),
            only_anomalous: false,
        }
    }
}

/// What the palette was built for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PaletteKey {
    colormap: Colormap,
    alpha: u8,
    space: Space,
}

/// Created in `set_info()`, dropped in `stop()`.
struct State {
    info: gst_video::VideoInfo,
    /// Colour space of the frames.
    space: Space,
    /// Upstream negotiated the composition feature: its compositions pass on, ours joins.
    upstream_has_meta: bool,
    /// The source caps carry the composition feature.
    caps_have_meta: bool,
    /// Attach a composition instead of blending; decided at the first frame drawn.
    attach: Option<bool>,
    /// The meta of the buffer in flight, read in `before_transform()`.
    pending: Option<AnomalyMeta>,
    /// The last meta drawn or skipped, whose buffers the next one is read into.
    spare: AnomalyMeta,
    renderer: Renderer,
    palette: Box<Palette>,
    palette_key: Option<PaletteKey>,
    boxes: Vec<Rect>,
    label: String,
}

#[derive(Default)]
pub struct OnenipOverlay {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Downstream did not take the composition meta: stop offering the caps feature.
    meta_refused: AtomicBool,
    logged_no_meta: AtomicBool,
}

/// A poisoned lock only means a panic elsewhere already reported an error; keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn has_meta_feature(caps: &gst::CapsRef) -> bool {
    caps.features(0).is_some_and(|f| f.contains(META_FEATURE))
}

#[glib::object_subclass]
impl ObjectSubclass for OnenipOverlay {
    const NAME: &'static str = "GstOnenipOverlay";
    type Type = super::OnenipOverlay;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for OnenipOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecFlags::builder::<OverlayMode>("mode")
                    .nick("Mode")
                    .blurb("What to draw: heatmap, outline, boxes, label (combine with +)")
                    .default_value(OverlayMode::default())
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("alpha")
                    .nick("Alpha")
                    .blurb("Opacity of the heat map (0: invisible, 1: opaque)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_ALPHA)
                    .mutable_playing()
                    .controllable()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("colormap", Colormap::default())
                    .nick("Colour map")
                    .blurb("Colours of the heat map, from normal to most anomalous")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("only-anomalous")
                    .nick("Only anomalous")
                    .blurb("Draw only on frames whose score is above the image threshold")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "mode" => settings.mode = value.get().expect("type checked upstream"),
            "alpha" => settings.alpha = value.get().expect("type checked upstream"),
            "colormap" => settings.colormap = value.get().expect("type checked upstream"),
            "only-anomalous" => {
                settings.only_anomalous = value.get().expect("type checked upstream")
            }
            name => unimplemented!("property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "mode" => settings.mode.to_value(),
            "alpha" => settings.alpha.to_value(),
            "colormap" => settings.colormap.to_value(),
            "only-anomalous" => settings.only_anomalous.to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for OnenipOverlay {}

impl ElementImpl for OnenipOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "OneNIP anomaly overlay",
                "Filter/Effect/Video/Overlay",
                "Draws the anomaly map, mask outline, region boxes and score of onenipdetect \
                 on the video (as an overlay composition when downstream accepts one)",
                "gst-onenip developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let mut caps = gst_video::VideoCapsBuilder::new()
                .features([gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY, META_FEATURE])
                .format_list(FORMATS.iter().copied())
                .build();
            caps.merge(
                gst_video::VideoCapsBuilder::new()
                    .format_list(FORMATS.iter().copied())
                    .build(),
            );
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|dir| {
                    let name = if dir == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).unwrap()
                })
                .collect()
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OnenipOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    // Caps differ only by the composition feature; frames without anything to draw are
    // passed through per buffer (see `before_transform`), never written to.
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.meta_refused.store(false, Ordering::Relaxed);
        self.logged_no_meta.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    /// Downstream of us the composition feature is ours to offer (first, so that it is
    /// preferred); upstream of us it is optional.
    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let offer_meta = !self.meta_refused.load(Ordering::Relaxed);
        let mut out = gst::Caps::new_empty();
        for (s, f) in caps.iter_with_features() {
            let has = f.contains(META_FEATURE);
            let mut with = f.to_owned();
            let mut without = f.to_owned();
            without.remove(META_FEATURE);
            if !f.is_any() {
                with.add(META_FEATURE);
            }
            if direction == gst::PadDirection::Sink {
                if !has && !f.is_any() && offer_meta {
                    out.merge_structure_full(s.to_owned(), Some(with));
                }
                out.merge_structure_full(s.to_owned(), Some(f.to_owned()));
            } else {
                out.merge_structure_full(s.to_owned(), Some(f.to_owned()));
                if has {
                    out.merge_structure_full(s.to_owned(), Some(without));
                }
            }
        }
        gst::debug!(CAT, imp = self, "{direction:?} caps {caps} -> {out}");
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Reconfigure(_) = event.view() {
            // Downstream changed: offer the composition feature again.
            self.meta_refused.store(false, Ordering::Relaxed);
            if let Some(state) = lock(&self.state).as_mut() {
                state.attach = None;
            }
        }
        self.parent_src_event(event)
    }

    fn before_transform(&self, inbuf: &gst::BufferRef) {
        let settings = *lock(&self.settings);
        let mut guard = lock(&self.state);
        // Read into the strings and region list of an earlier frame's result: no allocation
        // per frame.
        let mut meta = guard
            .as_mut()
            .map(|s| std::mem::take(&mut s.spare))
            .unwrap_or_default();
        let draw = match meta.read_buffer(inbuf) {
            None => {
                if !self.logged_no_meta.swap(true, Ordering::Relaxed) {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "buffer without {META_NAME}: passed through untouched (logged once)"
                    );
                }
                false
            }
            Some(Err(e)) => {
                gst::warning!(CAT, imp = self, "unreadable {META_NAME}: {e}");
                false
            }
            Some(Ok(())) => {
                !settings.mode.is_empty() && (meta.anomalous || !settings.only_anomalous)
            }
        };
        if let Some(state) = guard.as_mut() {
            if draw {
                state.pending = Some(meta);
            } else {
                state.pending = None;
                state.spare = meta;
            }
        }
        drop(guard);
        let passthrough = !draw;
        if self.obj().is_passthrough() != passthrough {
            gst::log!(CAT, imp = self, "passthrough: {passthrough}");
            self.obj().set_passthrough(passthrough);
        }
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let attach = self.attach()?;
        let settings = *lock(&self.settings);
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let Some(meta) = state.pending.take() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let drawn = if attach {
            self.attach_composition(state, &settings, &meta, buf)
        } else {
            self.blend(state, &settings, &meta, buf)
        };
        state.spare = meta;
        drawn.map(|()| gst::FlowSuccess::Ok)
    }
}

impl VideoFilterImpl for OnenipOverlay {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let space = match in_info.format() {
            VideoFormat::Rgb | VideoFormat::Rgba | VideoFormat::Rgbx => Space::Rgb,
            VideoFormat::Bgr | VideoFormat::Bgra | VideoFormat::Bgrx => Space::Bgr,
            VideoFormat::I420 | VideoFormat::Nv12 => {
                let colorimetry = in_info.colorimetry();
                let mut m = match colorimetry.matrix() {
                    gst_video::VideoColorMatrix::Bt709 => YuvMatrix::BT709,
                    _ => YuvMatrix::BT601,
                };
                m.full_range = colorimetry.range() == gst_video::VideoColorRange::Range0_255;
                Space::Yuv(m)
            }
            other => {
                return Err(gst::loggable_error!(CAT, "unsupported format {other:?}"));
            }
        };
        let mut state = lock(&self.state);
        // Renegotiation can come between `before_transform()` and `transform_ip()`: keep
        // the pending meta, and the buffers.
        let (renderer, boxes, label, pending, spare) = match state.take() {
            Some(old) => (old.renderer, old.boxes, old.label, old.pending, old.spare),
            None => Default::default(),
        };
        let upstream_has_meta = has_meta_feature(incaps);
        let caps_have_meta = has_meta_feature(outcaps);
        gst::debug!(
            CAT,
            imp = self,
            "{}x{} {:?}, composition feature upstream {upstream_has_meta}, downstream \
             {caps_have_meta}",
            in_info.width(),
            in_info.height(),
            in_info.format()
        );
        *state = Some(State {
            info: in_info.clone(),
            space,
            upstream_has_meta,
            caps_have_meta,
            attach: None,
            pending,
            spare,
            renderer,
            palette: Box::new([[0; 4]; super::render::PALETTE_LEN]),
            palette_key: None,
            boxes,
            label,
        });
        Ok(())
    }
}

impl OnenipOverlay {
    /// Whether to attach a composition (decided once per negotiation, as `textoverlay`
    /// does): when upstream negotiated the feature, or when downstream negotiated it and
    /// lists the meta in its answer to an allocation query. When downstream negotiated the
    /// feature but does not take the meta, the caps are renegotiated without it.
    fn attach(&self) -> Result<bool, gst::FlowError> {
        let (upstream, downstream) = {
            let state = lock(&self.state);
            let state = state.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
            if let Some(attach) = state.attach {
                return Ok(attach);
            }
            (state.upstream_has_meta, state.caps_have_meta)
        };
        let attach = if upstream {
            true
        } else if !downstream {
            false
        } else {
            // The caps event is out by now, so elements in between can answer.
            let srcpad = self.obj().src_pad().clone();
            let caps = srcpad.current_caps();
            let mut query = gst::query::Allocation::new(caps.as_ref(), false);
            let accepted = srcpad.peer_query(&mut query)
                && query
                    .find_allocation_meta::<gst_video::VideoOverlayCompositionMeta>()
                    .is_some();
            if !accepted {
                gst::info!(
                    CAT,
                    imp = self,
                    "downstream negotiated {META_FEATURE} but does not take the meta: \
                     blending, and renegotiating without the feature"
                );
                self.meta_refused.store(true, Ordering::Relaxed);
                srcpad.mark_reconfigure();
            }
            accepted
        };
        gst::debug!(
            CAT,
            imp = self,
            "{}",
            if attach {
                "attaching overlay compositions"
            } else {
                "blending into the frames"
            }
        );
        if let Some(state) = lock(&self.state).as_mut() {
            state.attach = Some(attach);
        }
        Ok(attach)
    }

    fn update_palette(state: &mut State, settings: &Settings, space: Space) {
        let key = PaletteKey {
            colormap: settings.colormap,
            alpha: (settings.alpha.clamp(0.0, 1.0) * 255.0).round() as u8,
            space,
        };
        if state.palette_key != Some(key) {
            *state.palette = space.palette(&colormap::lut(key.colormap), key.alpha, OUTLINE_COLOUR);
            state.palette_key = Some(key);
        }
    }

    /// Blends the overlay into the frame.
    fn blend(
        &self,
        state: &mut State,
        settings: &Settings,
        meta: &AnomalyMeta,
        buf: &mut gst::BufferRef,
    ) -> Result<(), gst::FlowError> {
        let map = meta.map_bytes();
        let space = state.space;
        Self::update_palette(state, settings, space);
        let scene = layout(
            &state.info,
            settings,
            meta,
            space,
            &mut state.boxes,
            &mut state.label,
            map.as_ref().map(|m| m.as_slice()),
        );
        let (w, h) = (state.info.width(), state.info.height());
        let format = state.info.format();
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &state.info)
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Cannot map the frame to draw on: {}", e)
                );
                gst::FlowError::Error
            })?;
        let strides: [usize; 3] =
            std::array::from_fn(|i| frame.plane_stride().get(i).copied().unwrap_or(0) as usize);
        let [p0, p1, p2, _] = frame.planes_data_mut();
        let renderer = &mut state.renderer;
        let palette = &*state.palette;
        match format {
            VideoFormat::Rgb | VideoFormat::Bgr => {
                renderer.draw(&mut Packed::<3>::new(p0, strides[0], w, h), &scene, palette)
            }
            VideoFormat::I420 => renderer.draw(
                &mut Yuv420::new(p0, strides[0], Chroma::Planar(p1, p2), strides[1], w, h),
                &scene,
                palette,
            ),
            VideoFormat::Nv12 => renderer.draw(
                &mut Yuv420::new(p0, strides[0], Chroma::Interleaved(p1), strides[1], w, h),
                &scene,
                palette,
            ),
            _ => renderer.draw(&mut Packed::<4>::new(p0, strides[0], w, h), &scene, palette),
        }
        Ok(())
    }

    /// Draws the overlay into one ARGB rectangle over the part of the frame drawn on and
    /// attaches it as an overlay composition (joining upstream's, if any).
    fn attach_composition(
        &self,
        state: &mut State,
        settings: &Settings,
        meta: &AnomalyMeta,
        buf: &mut gst::BufferRef,
    ) -> Result<(), gst::FlowError> {
        let map = meta.map_bytes();
        Self::update_palette(state, settings, Space::Argb);
        let frame = Rect::new(0, 0, state.info.width() as i32, state.info.height() as i32);
        let scene = layout(
            &state.info,
            settings,
            meta,
            Space::Argb,
            &mut state.boxes,
            &mut state.label,
            map.as_ref().map(|m| m.as_slice()),
        );
        let area = scene.extent(frame);
        if area.is_empty() {
            return Ok(());
        }
        let error = |what: &str, e: &dyn std::fmt::Display| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Cannot build the overlay rectangle: {}: {}", what, e)
            );
            gst::FlowError::Error
        };
        let (w, h) = (area.w as u32, area.h as u32);
        let mut pixels = gst::Buffer::with_size(w as usize * h as usize * 4)
            .map_err(|e| error("allocation", &e))?;
        {
            let pixels = pixels.get_mut().expect("new buffer is writable");
            let mut data = pixels.map_writable().map_err(|e| error("map", &e))?;
            data.fill(0);
            state.renderer.draw(
                &mut Layer::new(data.as_mut_slice(), area),
                &scene,
                &state.palette,
            );
        }
        gst_video::VideoMeta::add(
            pixels.get_mut().expect("new buffer is writable"),
            gst_video::VideoFrameFlags::empty(),
            LAYER_FORMAT,
            w,
            h,
        )
        .map_err(|e| error("video meta", &e))?;
        let rect = gst_video::VideoOverlayRectangle::new_raw(
            &pixels,
            area.x,
            area.y,
            w,
            h,
            gst_video::VideoOverlayFormatFlags::empty(),
        );
        if let Some(mut existing) = buf.meta_mut::<gst_video::VideoOverlayCompositionMeta>() {
            let mut composition = existing.overlay_owned();
            composition.make_mut().add_rectangle(&rect);
            existing.set_overlay(&composition);
        } else {
            let composition = gst_video::VideoOverlayComposition::new([&rect])
                .map_err(|e| error("composition", &e))?;
            gst_video::VideoOverlayCompositionMeta::add(buf, &composition);
        }
        Ok(())
    }
}

/// Lays out `meta` on a frame of `info`'s size: the meta's coordinates refer to the frame
/// size it records, which differs from ours after a `videoscale`.
fn layout<'a>(
    info: &gst_video::VideoInfo,
    settings: &Settings,
    meta: &AnomalyMeta,
    space: Space,
    boxes: &'a mut Vec<Rect>,
    label: &'a mut String,
    map: Option<&'a [u8]>,
) -> Scene<'a> {
    let (fw, fh) = (info.width(), info.height());
    let frame = Rect::new(0, 0, fw as i32, fh as i32);
    let scale = Scale::new((meta.frame_width, meta.frame_height), (fw, fh));
    let (rx, ry, rw, rh) = meta.roi;
    let roi = if rw == 0 || rh == 0 {
        frame
    } else {
        scale.rect(rx, ry, rw, rh)
    };
    let mode = settings.mode;
    // Line widths and text size grow with the frame: 2 px lines and 10x14 px glyphs at 480p.
    let unit = fh as i32;

    boxes.clear();
    if mode.contains(OverlayMode::BOXES) {
        boxes.extend(
            meta.regions
                .iter()
                .map(|r| scale.rect(r.x, r.y, r.width, r.height)),
        );
    }
    let label = if mode.contains(OverlayMode::LABEL) {
        label.clear();
        let verdict = if meta.anomalous { "ANOMALY" } else { "OK" };
        let _ = write!(label, "{:.2} {verdict}", meta.score);
        let label: &'a String = label;
        let background = if meta.anomalous {
            LABEL_ANOMALOUS
        } else {
            LABEL_NORMAL
        };
        Some(Label::place(
            label,
            (unit / 240).max(1),
            (roi.x, roi.y),
            frame,
            space.entry(background, 255),
            space.entry(LABEL_TEXT, 255),
        ))
    } else {
        None
    };
    let map = map.filter(|_| meta.map_width > 0 && meta.map_height > 0);
    Scene {
        roi,
        map: map.map(|data| MapView {
            data,
            width: meta.map_width as usize,
            height: meta.map_height as usize,
        }),
        heatmap: mode.contains(OverlayMode::HEATMAP) && settings.alpha > 0.0,
        outline: mode.contains(OverlayMode::OUTLINE),
        outline_width: (unit / 540).max(1),
        boxes,
        box_width: (unit / 240).max(2),
        box_colour: space.entry(BOX_COLOUR, 255),
        label,
    }
}
