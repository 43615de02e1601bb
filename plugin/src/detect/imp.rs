// SPDX-License-Identifier: MIT OR Apache-2.0

use std::sync::LazyLock;

use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "onenipdetect",
        gst::DebugColorFlags::empty(),
        Some("OneNIP anomaly detection"),
    )
});

/// Raw formats accepted; the element converts them to the model input itself.
pub(crate) const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Gray8,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

#[derive(Default)]
pub struct OnenipDetect {}

#[glib::object_subclass]
impl ObjectSubclass for OnenipDetect {
    const NAME: &'static str = "GstOnenipDetect";
    type Type = super::OnenipDetect;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for OnenipDetect {}

impl GstObjectImpl for OnenipDetect {}

impl ElementImpl for OnenipDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "OneNIP anomaly detector",
                "Filter/Analyzer/Video",
                "Finds defects on every frame with OneNIP (one normal image as prompt) \
                 and attaches anomaly metadata",
                "gst-onenip developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OnenipDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Loading ONNX Runtime here, not at plugin load, keeps the plugin registrable
        // where the library is missing.
        let rt = onenip::runtime::runtime()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        gst::info!(
            CAT,
            imp = self,
            "ONNX Runtime {} from {} ({})",
            rt.version,
            rt.library.display(),
            rt.source
        );
        Ok(())
    }

    fn transform_ip(&self, _buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        Ok(gst::FlowSuccess::Ok)
    }
}
