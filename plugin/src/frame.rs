// SPDX-License-Identifier: MIT OR Apache-2.0

//! From a mapped GStreamer video frame to the engine's model input.

use gst_video::prelude::*;
use gst_video::VideoFormat;
use onenip::preprocess::{FrameRef, PixelLayout, Plane, Preprocessor, Roi};

/// The engine's pixel layout of a GStreamer video format, if `onenipdetect` accepts it.
pub fn layout_of(format: VideoFormat) -> Option<PixelLayout> {
    Some(match format {
        VideoFormat::Rgb => PixelLayout::Rgb,
        VideoFormat::Bgr => PixelLayout::Bgr,
        VideoFormat::Rgba => PixelLayout::Rgba,
        VideoFormat::Bgra => PixelLayout::Bgra,
        VideoFormat::Rgbx => PixelLayout::Rgbx,
        VideoFormat::Bgrx => PixelLayout::Bgrx,
        VideoFormat::Gray8 => PixelLayout::Gray8,
        VideoFormat::I420 => PixelLayout::I420,
        VideoFormat::Nv12 => PixelLayout::Nv12,
        _ => return None,
    })
}

/// Converts and resizes the `roi` of the frame in `buf` into the model input `out`, in one
/// pass and without copying the frame (planes are read with their strides).
pub fn preprocess_frame(
    preprocessor: &mut Preprocessor,
    buf: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    roi: Roi,
    out: &mut [f32],
) -> Result<(), String> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
        .map_err(|_| "cannot map the frame for reading".to_string())?;
    let layout = layout_of(info.format()).ok_or("unsupported format")?;
    let n = layout.n_planes();
    let mut planes = [Plane {
        data: &[],
        stride: 0,
    }; 3];
    for (i, plane) in planes.iter_mut().enumerate().take(n) {
        *plane = Plane {
            data: frame.plane_data(i as u32).map_err(|e| e.to_string())?,
            stride: frame.plane_stride()[i] as usize,
        };
    }
    let frame_ref = FrameRef {
        layout,
        width: info.width(),
        height: info.height(),
        planes: &planes[..n],
    };
    preprocessor
        .run(&frame_ref, Some(roi), out)
        .map_err(|e| e.to_string())
}
