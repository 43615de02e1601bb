// SPDX-License-Identifier: MIT OR Apache-2.0

//! `onenipoverlay`: draws the anomaly metadata of `onenipdetect` on the video.
//!
//! Reads the `OnenipAnomalyMeta` of every buffer (see [`crate::meta`]) and draws the heat
//! map over the inspected roi, the outline of the pixels above the pixel threshold, the
//! boxes of the anomalous regions and a score label ("0.93 ANOMALY" in red, "0.12 OK" in
//! green). The meta records the frame size it refers to, so the overlay stays in place
//! after `videoscale` or `videoconvert` between the two elements.
//!
//! When downstream accepts `meta:GstVideoOverlayComposition` (caps feature and allocation
//! query), the drawing goes into one ARGB `GstVideoOverlayRectangle` attached as a
//! `GstVideoOverlayCompositionMeta` and the pixels are left alone; otherwise it is blended
//! into the frame (RGB, BGR, RGBA, BGRA, RGBx, BGRx, I420, NV12). Buffers without the meta
//! pass through untouched.
//!
//! ```text
//! gst-launch-1.0 filesrc location=line.mp4 ! decodebin ! videoconvert \
//!     ! onenipdetect prompt-location=good.png ! onenipoverlay colormap=inferno alpha=0.4 \
//!     ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod blend;
mod colormap;
mod dispatch;
mod font;
mod imp;
mod render;
mod upsample;
#[cfg(target_arch = "x86_64")]
mod vbmi;

glib::wrapper! {
    pub struct OnenipOverlay(ObjectSubclass<imp::OnenipOverlay>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The `mode` property: what to draw.
#[glib::flags(name = "GstOnenipOverlayMode")]
pub enum OverlayMode {
    #[flags_value(name = "Heat map of the anomaly map over the roi", nick = "heatmap")]
    HEATMAP = 0b0001,
    #[flags_value(
        name = "Outline of the pixels above the pixel threshold",
        nick = "outline"
    )]
    OUTLINE = 0b0010,
    #[flags_value(name = "Boxes around the anomalous regions", nick = "boxes")]
    BOXES = 0b0100,
    #[flags_value(
        name = "Score label: red when anomalous, green when not",
        nick = "label"
    )]
    LABEL = 0b1000,
}

impl Default for OverlayMode {
    fn default() -> Self {
        Self::all()
    }
}

/// The `colormap` property: colours of the heat map, low to high.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstOnenipOverlayColormap")]
pub enum Colormap {
    #[default]
    #[enum_value(name = "Turbo: blue, green, yellow, red", nick = "turbo")]
    Turbo = 0,
    #[enum_value(name = "Jet: dark blue, cyan, yellow, dark red", nick = "jet")]
    Jet = 1,
    #[enum_value(name = "Inferno: black, purple, orange, pale yellow", nick = "inferno")]
    Inferno = 2,
}

/// Colour of the mask outline (RGB).
pub const OUTLINE_COLOUR: [u8; 3] = [255, 255, 255];
/// Colour of the region boxes (RGB).
pub const BOX_COLOUR: [u8; 3] = [255, 40, 40];
/// Colour of the label text (RGB).
pub const LABEL_TEXT: [u8; 3] = [255, 255, 255];
/// Background of the label of an anomalous frame (RGB).
pub const LABEL_ANOMALOUS: [u8; 3] = [200, 20, 20];
/// Background of the label of a normal frame (RGB).
pub const LABEL_NORMAL: [u8; 3] = [20, 140, 50];

impl Colormap {
    /// The 256 heat-map colours (RGB), from a map value of 0 to 255.
    pub fn lut(self) -> [[u8; 3]; 256] {
        colormap::lut(self)
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "onenipoverlay",
        gst::Rank::NONE,
        OnenipOverlay::static_type(),
    )
}
