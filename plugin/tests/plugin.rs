//! The plugin registers and its elements show what users read in gst-inspect-1.0.

use gst::prelude::*;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstonenip::plugin_register_static().expect("onenip plugin registers");
    });
}

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
fn onenipdetect_passes_frames_through_unchanged() {
    init();
    let mut h = gst_check::Harness::new("onenipdetect");
    h.set_src_caps_str("video/x-raw,format=RGB,width=8,height=4,framerate=30/1");
    h.play();
    let data: Vec<u8> = (0..8 * 4 * 3).map(|i| i as u8).collect();
    let out = h
        .push_and_pull(gst::Buffer::from_slice(data.clone()))
        .unwrap();
    assert_eq!(out.map_readable().unwrap().as_slice(), data.as_slice());
}
