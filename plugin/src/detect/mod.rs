// SPDX-License-Identifier: MIT OR Apache-2.0

//! `onenipdetect`: finds defects on every frame with OneNIP and attaches anomaly metadata.
//!
//! An analyser: it never changes pixels. ONNX Runtime is loaded in `start()`; when it cannot
//! be found the element fails with an error that lists every place looked at.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct OnenipDetect(ObjectSubclass<imp::OnenipDetect>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "onenipdetect",
        gst::Rank::NONE,
        OnenipDetect::static_type(),
    )
}
