//! Prompt decoding never panics nor exhausts memory: any bytes are an RGB image or a clear
//! error; an accepted image goes through the same resize as in the element.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use onenip::preprocess::{Preprocessor, IMAGENET_MEAN, IMAGENET_STD};

fuzz_target!(|bytes: &[u8]| {
    let label = Path::new("fuzz-prompt");
    match onenip::prompt_image::decode_prompt(bytes, label, 1 << 22) {
        Ok(image) => {
            let mut pre = Preprocessor::new(32, IMAGENET_MEAN, IMAGENET_STD).unwrap();
            let mut out = vec![0.0; pre.output_len()];
            pre.run_rgb_image(&image, &mut out).unwrap();
            assert!(out.iter().all(|v| v.is_finite()));
        }
        Err(e) => assert!(e.to_string().contains("fuzz-prompt"), "{e}"),
    }
});
