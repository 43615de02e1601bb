//! The plugin registers and its elements show what users read in gst-inspect-1.0.

use gst::prelude::*;

mod common;
use common::init;

#[test]
fn plugin_lists_onenipdetect_with_metadata() {
    init();
    let registry = gst::Registry::get();
    let plugin = registry
        .find_plugin("onenip")
        .expect("plugin onenip registered");
    assert_eq!(plugin.license(), "MIT/X11");
    assert!(plugin.version().starts_with(env!("CARGO_PKG_VERSION")));
    assert!(!plugin.origin().is_empty());

    let factory = gst::ElementFactory::find("onenipdetect").expect("onenipdetect");
    assert_eq!(factory.plugin_name().as_deref(), Some("onenip"));
    assert_eq!(
        factory.metadata(gst::ELEMENT_METADATA_KLASS),
        Some("Filter/Analyzer/Video")
    );
}

#[test]
fn a_missing_model_fails_the_start_and_names_the_directory() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=1 ! onenipdetect model=/nonexistent/onenip-model ! fakesink",
    )
    .unwrap();
    let bus = pipeline.bus().unwrap();
    assert!(pipeline.set_state(gst::State::Playing).is_err());
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = err.error().to_string();
    assert!(text.contains("/nonexistent/onenip-model"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    pipeline.set_state(gst::State::Null).unwrap();
}
