// SPDX-License-Identifier: MIT OR Apache-2.0

//! `onenipdetect`: finds defects on every frame with OneNIP and attaches anomaly metadata.
//!
//! An analyser: it never changes pixels. On every buffer it attaches an
//! `OnenipAnomalyMeta` (see [`crate::meta`]) and one `GstVideoRegionOfInterestMeta` per
//! anomalous region, and posts `onenip-anomaly` messages (see [`crate::messages`]).
//!
//! ```text
//! gst-launch-1.0 filesrc location=line.mp4 ! decodebin ! videoconvert \
//!     ! onenipdetect prompt-location=good.png ! fakesink
//! ```

use gst::glib;
use gst::prelude::*;

mod episodes;
mod imp;
mod prompt_worker;

glib::wrapper! {
    pub struct OnenipDetect(ObjectSubclass<imp::OnenipDetect>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The `execution-provider` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstOnenipExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "Auto: TensorRT, then CUDA, then CPU", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "TensorRT", nick = "tensorrt")]
    TensorRt = 1,
    #[enum_value(name = "CUDA", nick = "cuda")]
    Cuda = 2,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 3,
}

impl From<ExecutionProvider> for onenip::ExecutionProvider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Auto => Self::Auto,
            ExecutionProvider::TensorRt => Self::TensorRt,
            ExecutionProvider::Cuda => Self::Cuda,
            ExecutionProvider::Cpu => Self::Cpu,
        }
    }
}

/// The `message-mode` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstOnenipMessageMode")]
pub enum MessageMode {
    #[enum_value(name = "None: no onenip-anomaly messages", nick = "none")]
    None = 0,
    #[default]
    #[enum_value(
        name = "Transitions: when an anomalous episode starts and ends",
        nick = "transitions"
    )]
    Transitions = 1,
    #[enum_value(
        name = "Every frame: transitions plus one message per inferred frame",
        nick = "every-frame"
    )]
    EveryFrame = 2,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "onenipdetect",
        gst::Rank::NONE,
        OnenipDetect::static_type(),
    )
}
