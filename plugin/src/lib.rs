// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

//! GStreamer plugin `onenip`: visual anomaly detection with OneNIP.
//!
//! ONNX Runtime is loaded when an element starts, never when the plugin loads, so the
//! plugin registers (and `gst-inspect-1.0 onenip` works) even where the library is absent.

use gst::glib;

pub mod detect;
pub mod frame;
pub mod messages;
pub mod meta;
mod model_cache;
pub mod overlay;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    detect::register(plugin)?;
    overlay::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    onenip,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // MIT OR Apache-2.0; GStreamer's license field knows only "MIT/X11" for that.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
