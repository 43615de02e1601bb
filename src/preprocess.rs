//! Pre-processing: a video frame (or the prompt image) to the normalised model input.
//!
//! The model was trained on
//! `np.asarray(img.convert("RGB").resize((S, S), Image.BILINEAR), dtype=np.float32) / 255`,
//! minus the ImageNet mean, divided by the ImageNet std, laid out NCHW. [`Preprocessor`]
//! reproduces that from raw frames in one pass:
//!
//! 1. the frame planes are read in place through a strided view (no copy, row padding and
//!    odd widths allowed), limited to the region of interest;
//! 2. each plane is resized straight to `S`x`S` (aspect ratio ignored) with our own
//!    implementation of Pillow's antialiased bilinear resize ([`crate::resample`]): same
//!    22-bit weights, pass order and 8-bit rounding, so packed RGB and gray frames give
//!    exactly the bytes of `Image.resize` (a resize crate was one step off on ~1 % of
//!    them, and allocated on every frame);
//! 3. the resized 8-bit pixels are normalised through a per-channel lookup table
//!    (`u8` -> `f32`) while being scattered into the planar output, which is also where
//!    channel order (BGR, alpha or padding bytes) and gray replication are handled.
//!
//! Planar YUV (I420, NV12) is resized per plane, each at its own resolution, and converted
//! to RGB at `S`x`S` with BT.601 limited range, the colorimetry GStreamer assumes for SD
//! video. Resizing before converting is much cheaper than converting the full frame and
//! close to, but not bit-exact with, converting first: resizing and the (affine, but
//! clamped and rounded) colour conversion do not commute exactly.
//!
//! The filter weights are computed once per geometry (frame or region size, output size)
//! and kept, with the intermediate buffers, in the [`Preprocessor`]; they are recomputed
//! only when the geometry changes (caps renegotiation, a new region of interest). Once a
//! geometry has been seen, [`Preprocessor::run`] allocates nothing.

use std::fmt;

use crate::resample::{Resampler, SrcRect, Window};

/// ImageNet mean, the normalisation of every bundled model.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation, the normalisation of every bundled model.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Memory layout of a raw frame, named like the GStreamer video formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelLayout {
    /// Packed 8-bit R, G, B.
    Rgb,
    /// Packed 8-bit B, G, R.
    Bgr,
    /// Packed 8-bit R, G, B, A (alpha ignored, not premultiplied).
    Rgba,
    /// Packed 8-bit B, G, R, A (alpha ignored, not premultiplied).
    Bgra,
    /// Packed 8-bit R, G, B and a padding byte.
    Rgbx,
    /// Packed 8-bit B, G, R and a padding byte.
    Bgrx,
    /// 8-bit luminance, replicated to the three channels.
    Gray8,
    /// Planar 4:2:0 YUV: planes Y, U, V (BT.601 limited range).
    I420,
    /// Semi-planar 4:2:0 YUV: planes Y and interleaved UV (BT.601 limited range).
    Nv12,
}

impl PixelLayout {
    /// Number of planes a frame of this layout has.
    pub fn n_planes(self) -> usize {
        match self {
            Self::I420 => 3,
            Self::Nv12 => 2,
            _ => 1,
        }
    }

    /// Bytes per pixel of the first plane.
    fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb | Self::Bgr => 3,
            Self::Rgba | Self::Bgra | Self::Rgbx | Self::Bgrx => 4,
            Self::Gray8 | Self::I420 | Self::Nv12 => 1,
        }
    }

    /// Index of the red, green and blue bytes within a packed pixel.
    fn rgb_order(self) -> [usize; 3] {
        match self {
            Self::Bgr | Self::Bgra | Self::Bgrx => [2, 1, 0],
            _ => [0, 1, 2],
        }
    }
}

/// One plane of a frame: its bytes and its row stride in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Plane<'a> {
    /// The plane, from its first row; rows may be padded up to `stride`.
    pub data: &'a [u8],
    /// Distance in bytes between the starts of two consecutive rows.
    pub stride: usize,
}

/// A borrowed raw frame, as mapped from a GStreamer buffer.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    /// Pixel layout.
    pub layout: PixelLayout,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// One plane for packed and gray formats, Y, U, V for I420, Y and UV for NV12.
    pub planes: &'a [Plane<'a>],
}

/// A region of interest in frame pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roi {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Roi {
    /// Parses `"x,y,w,h"` (spaces allowed around the numbers); width and height must be
    /// positive.
    pub fn parse(s: &str) -> Result<Roi, String> {
        let invalid = |why: &str| format!("invalid ROI \"{s}\": {why}");
        let fields = s.split(',').map(str::trim).collect::<Vec<_>>();
        let [x, y, width, height] = fields[..] else {
            return Err(invalid(&format!(
                "expected \"x,y,w,h\" (4 numbers), found {} field(s)",
                fields.len()
            )));
        };
        let number = |name: &str, v: &str| {
            v.parse::<u32>().map_err(|_| {
                invalid(&format!(
                    "{name} \"{v}\" is not a non-negative integer (expected \"x,y,w,h\")"
                ))
            })
        };
        let roi = Roi {
            x: number("x", x)?,
            y: number("y", y)?,
            width: number("w", width)?,
            height: number("h", height)?,
        };
        if roi.width == 0 || roi.height == 0 {
            return Err(invalid("width and height must be greater than 0"));
        }
        Ok(roi)
    }

    /// The part of this region inside a `width`x`height` frame, `None` if nothing is left.
    pub fn clamp_to(&self, width: u32, height: u32) -> Option<Roi> {
        let x1 = self.x.saturating_add(self.width).min(width);
        let y1 = self.y.saturating_add(self.height).min(height);
        (self.x < x1 && self.y < y1).then(|| Roi {
            x: self.x,
            y: self.y,
            width: x1 - self.x,
            height: y1 - self.y,
        })
    }
}

impl fmt::Display for Roi {
    /// Formats as `"x,y,w,h"`, the syntax [`Roi::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.width, self.height)
    }
}

/// Why a frame cannot be pre-processed.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The model input size is 0.
    #[error("model input size must be greater than 0")]
    ZeroInputSize,
    /// A normalisation std is 0 or not finite, or a mean is not finite.
    #[error("invalid normalisation: mean {mean:?}, std {std:?} (std must be finite and non-zero)")]
    InvalidNormalisation {
        /// Mean per channel.
        mean: [f32; 3],
        /// Standard deviation per channel.
        std: [f32; 3],
    },
    /// The frame (or image) has no pixels.
    #[error("frame size {width}x{height} is empty")]
    EmptyFrame {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// The frame has the wrong number of planes for its layout.
    #[error("{layout:?} frame needs {expected} plane(s), got {got}")]
    PlaneCount {
        /// Frame layout.
        layout: PixelLayout,
        /// Planes the layout has.
        expected: usize,
        /// Planes given.
        got: usize,
    },
    /// A plane's stride is shorter than one row of pixels.
    #[error(
        "{layout:?} plane {index}: stride {stride} is less than the {row_bytes} bytes of a row"
    )]
    StrideTooSmall {
        /// Frame layout.
        layout: PixelLayout,
        /// Plane index.
        index: usize,
        /// Stride given.
        stride: usize,
        /// Bytes in one row of pixels.
        row_bytes: usize,
    },
    /// A plane holds fewer bytes than its rows need.
    #[error(
        "{layout:?} plane {index}: {len} bytes is too small for {rows} rows of stride {stride} \
         (needs {needed})"
    )]
    PlaneTooSmall {
        /// Frame layout.
        layout: PixelLayout,
        /// Plane index.
        index: usize,
        /// Bytes given.
        len: usize,
        /// Rows in the plane.
        rows: usize,
        /// Stride given.
        stride: usize,
        /// Bytes needed: `stride * (rows - 1)` plus one row of pixels.
        needed: usize,
    },
    /// The output slice does not have `3 * size * size` elements.
    #[error("output has {got} floats, expected {expected} (3x{size}x{size})")]
    OutputLength {
        /// Elements given.
        got: usize,
        /// Elements needed.
        expected: usize,
        /// Model input size.
        size: u32,
    },
    /// The region of interest does not intersect the frame.
    #[error("ROI {roi} lies outside the {width}x{height} frame")]
    RoiOutside {
        /// Region asked for.
        roi: Roi,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
}

/// BT.601 limited-range YUV to RGB in 16-bit fixed point, one table per term.
struct YuvTables {
    /// `1.164 * (Y - 16)`, plus the rounding half.
    y: [i32; 256],
    /// `1.596 * (V - 128)`, red.
    rv: [i32; 256],
    /// `-0.392 * (U - 128)`, green.
    gu: [i32; 256],
    /// `-0.813 * (V - 128)`, green.
    gv: [i32; 256],
    /// `2.017 * (U - 128)`, blue.
    bu: [i32; 256],
}

impl YuvTables {
    fn new() -> Self {
        // From Kr = 0.299, Kb = 0.114, Y in [16, 235], U and V in [16, 240].
        let ys = 255.0 / 219.0;
        let cs = 255.0 / 224.0;
        let table = |scale: f64, offset: f64, bias: f64| {
            std::array::from_fn(|i| ((i as f64 - offset) * scale * 65536.0 + bias).round() as i32)
        };
        Self {
            y: table(ys, 16.0, 32768.0),
            rv: table(cs * 1.402, 128.0, 0.0),
            gu: table(-cs * 1.772 * 0.114 / 0.587, 128.0, 0.0),
            gv: table(-cs * 1.402 * 0.299 / 0.587, 128.0, 0.0),
            bu: table(cs * 1.772, 128.0, 0.0),
        }
    }

    /// Converts one pixel to 8-bit RGB, clamped like a decoder would.
    #[inline]
    fn rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let y = self.y[y as usize];
        let (u, v) = (u as usize, v as usize);
        let clamp = |x: i32| (x >> 16).clamp(0, 255) as u8;
        [
            clamp(y + self.rv[v]),
            clamp(y + self.gu[u] + self.gv[v]),
            clamp(y + self.bu[u]),
        ]
    }
}

/// Turns frames into the model input tensor, reusing its buffers from frame to frame.
///
/// One `Preprocessor` per stream; each call needs `&mut self`.
///
/// Parity with Pillow: packed RGB, gray and their regions of interest give exactly the
/// tensor of the Python transform (same filter weights, pass order and rounding, see
/// [`crate::resample`]).
pub struct Preprocessor {
    size: u32,
    /// `(v / 255 - mean[c]) / std[c]` for every byte value `v`, per channel.
    lut: [[f32; 256]; 3],
    yuv: YuvTables,
    /// Resize of the first plane (packed pixels, gray or Y), weights cached per geometry.
    main_resampler: Resampler,
    /// Resize of the first chroma plane (U, or UV for NV12).
    chroma_resamplers: [Resampler; 2],
    /// Resized first plane (packed pixels, gray or Y), `size * size * 4` bytes.
    main: Vec<u8>,
    /// Resized chroma (U then V for I420, interleaved UV for NV12), `size * size * 2` bytes.
    chroma: Vec<u8>,
}

impl fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preprocessor")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    /// A pre-processor for a `size`x`size` model input normalised with `mean` and `std`
    /// (per RGB channel, on values scaled to [0, 1]).
    ///
    /// Returns an error rather than panicking for a zero size or an unusable std, which can
    /// come from a bad model description.
    pub fn new(size: u32, mean: [f32; 3], std: [f32; 3]) -> Result<Self, PreprocessError> {
        if size == 0 {
            return Err(PreprocessError::ZeroInputSize);
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(PreprocessError::InvalidNormalisation { mean, std });
        }
        // Same arithmetic as the NumPy reference: f32 division by 255, then f32 ops.
        let lut =
            std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - mean[c]) / std[c]));
        let pixels = size as usize * size as usize;
        Ok(Self {
            size,
            lut,
            yuv: YuvTables::new(),
            main_resampler: Resampler::default(),
            chroma_resamplers: Default::default(),
            main: vec![0; pixels * 4],
            chroma: vec![0; pixels * 2],
        })
    }

    /// Model input size `S` (the tensor is `[1, 3, S, S]`).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Number of `f32` the output tensor has: `3 * S * S`.
    pub fn output_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Writes the normalised NCHW tensor of `frame` (len `3 * S * S`) into `out`.
    ///
    /// `roi` selects the part of the frame to use, in frame pixels; it is clamped to the
    /// frame and it is an error if nothing is left. The result equals resizing the cropped
    /// frame (`img.crop(box).resize(...)`): pixels outside the ROI are never read.
    pub fn run(
        &mut self,
        frame: &FrameRef,
        roi: Option<Roi>,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check_output(out)?;
        let (width, height) = (frame.width, frame.height);
        if width == 0 || height == 0 {
            return Err(PreprocessError::EmptyFrame { width, height });
        }
        let full = Roi {
            x: 0,
            y: 0,
            width,
            height,
        };
        let roi = match roi {
            None => full,
            Some(roi) => roi
                .clamp_to(width, height)
                .ok_or(PreprocessError::RoiOutside { roi, width, height })?,
        };
        check_planes(frame)?;

        let planes = frame.planes;
        let layout = frame.layout;
        match layout {
            PixelLayout::Rgb | PixelLayout::Bgr => {
                self.resize::<3, 3>(&planes[0], roi);
                self.normalise_packed(3, layout.rgb_order(), out);
            }
            PixelLayout::Rgba | PixelLayout::Bgra | PixelLayout::Rgbx | PixelLayout::Bgrx => {
                // The padding or alpha byte is never read: resize the colour bytes only.
                self.resize::<4, 3>(&planes[0], roi);
                self.normalise_packed(3, layout.rgb_order(), out);
            }
            PixelLayout::Gray8 => {
                self.resize::<1, 1>(&planes[0], roi);
                self.normalise_packed(1, [0, 0, 0], out);
            }
            PixelLayout::I420 => {
                self.resize::<1, 1>(&planes[0], roi);
                self.resize_chroma::<1>(&planes[1], roi, frame, 0);
                self.resize_chroma::<1>(&planes[2], roi, frame, 1);
                let n = self.pixels();
                let (u, v) = self.chroma.split_at(n);
                self.normalise_yuv(u.iter().zip(&v[..n]).map(|(&u, &v)| (u, v)), out);
            }
            PixelLayout::Nv12 => {
                self.resize::<1, 1>(&planes[0], roi);
                self.resize_chroma::<2>(&planes[1], roi, frame, 0);
                let uv = self.chroma[..2 * self.pixels()].chunks_exact(2);
                self.normalise_yuv(uv.map(|uv| (uv[0], uv[1])), out);
            }
        }
        Ok(())
    }

    /// Writes the normalised NCHW tensor of an RGB image (the prompt) into `out`, with
    /// exactly the resize and normalisation used for frames.
    pub fn run_rgb_image(
        &mut self,
        img: &image::RgbImage,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        let planes = [Plane {
            data: img.as_raw(),
            stride: img.width() as usize * 3,
        }];
        let frame = FrameRef {
            layout: PixelLayout::Rgb,
            width: img.width(),
            height: img.height(),
            planes: &planes,
        };
        self.run(&frame, None, out)
    }

    fn pixels(&self) -> usize {
        self.size as usize * self.size as usize
    }

    fn check_output(&self, out: &[f32]) -> Result<(), PreprocessError> {
        if out.len() != self.output_len() {
            return Err(PreprocessError::OutputLength {
                got: out.len(),
                expected: self.output_len(),
                size: self.size,
            });
        }
        Ok(())
    }

    /// Resizes the first `K` channels of the `roi` rectangle of `plane` (`C` bytes per
    /// pixel) to `S`x`S` into `main` (`K` bytes per pixel).
    fn resize<const C: usize, const K: usize>(&mut self, plane: &Plane, roi: Roi) {
        let src = rect::<C>(plane, roi.x, roi.y, roi.width, roi.height);
        let window = Window::full(src.width, src.height);
        let n = self.pixels() * K;
        let size = self.size as usize;
        self.main_resampler
            .resize_first::<C, K>(src, window, size, &mut self.main[..n]);
    }

    /// Resizes the chroma plane footprint of `roi` to `S`x`S` into chroma slot `slot` (U
    /// then V for I420, the one interleaved UV for NV12).
    ///
    /// Chroma samples are taken as centred between luma samples (JPEG/MPEG-1 siting), so
    /// the luma rectangle maps to the chroma rectangle at half its coordinates, which may
    /// fall on half samples: the rectangle covers the whole chroma samples it touches and
    /// the sub-sample offset goes to the resampling window (Pillow's `box`).
    fn resize_chroma<const C: usize>(
        &mut self,
        plane: &Plane,
        roi: Roi,
        frame: &FrameRef,
        slot: usize,
    ) {
        let (cw, ch) = (frame.width.div_ceil(2), frame.height.div_ceil(2));
        let x0 = roi.x / 2;
        let y0 = roi.y / 2;
        let x1 = (roi.x + roi.width).div_ceil(2).min(cw);
        let y1 = (roi.y + roi.height).div_ceil(2).min(ch);
        let src = rect::<C>(plane, x0, y0, x1 - x0, y1 - y0);
        let left = f64::from(roi.x) / 2.0 - f64::from(x0);
        let top = f64::from(roi.y) / 2.0 - f64::from(y0);
        let window = Window {
            x0: left,
            y0: top,
            x1: left + (f64::from(roi.width) / 2.0).min(f64::from(x1 - x0)),
            y1: top + (f64::from(roi.height) / 2.0).min(f64::from(y1 - y0)),
        };
        let n = self.pixels() * C;
        let size = self.size as usize;
        let dst = &mut self.chroma[slot * n..(slot + 1) * n];
        self.chroma_resamplers[slot].resize::<C>(src, window, size, dst);
    }

    /// Normalises the resized packed (or gray) pixels in `main` into planar `out`.
    ///
    /// `bpp` is the bytes per resized pixel, `order` the byte index of R, G and B in it.
    fn normalise_packed(&self, bpp: usize, order: [usize; 3], out: &mut [f32]) {
        let src = &self.main[..self.pixels() * bpp];
        for (c, out) in out.chunks_exact_mut(self.pixels()).enumerate() {
            let (lut, idx) = (&self.lut[c], order[c]);
            for (o, px) in out.iter_mut().zip(src.chunks_exact(bpp)) {
                *o = lut[px[idx] as usize];
            }
        }
    }

    /// Converts the resized Y (in `main`) and chroma pairs to RGB and normalises them.
    fn normalise_yuv(&self, chroma: impl Iterator<Item = (u8, u8)>, out: &mut [f32]) {
        let n = self.pixels();
        let (r, rest) = out.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        let luma = &self.main[..n];
        let pixels = r.iter_mut().zip(g).zip(b).zip(luma).zip(chroma);
        for ((((r, g), b), &y), (u, v)) in pixels {
            let [cr, cg, cb] = self.yuv.rgb(y, u, v);
            *r = self.lut[0][cr as usize];
            *g = self.lut[1][cg as usize];
            *b = self.lut[2][cb as usize];
        }
    }
}

/// The `width`x`height` rectangle at (`x`, `y`) of `plane`, `C` bytes per pixel.
///
/// The caller has checked (in [`check_planes`]) that `plane` holds the whole rectangle;
/// this is asserted here too.
fn rect<'a, const C: usize>(
    plane: &Plane<'a>,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
) -> SrcRect<'a> {
    let start = y as usize * plane.stride + x as usize * C;
    let end = start + (height as usize - 1) * plane.stride + width as usize * C;
    assert!(width > 0 && height > 0 && end <= plane.data.len());
    SrcRect {
        data: &plane.data[start..end],
        stride: plane.stride,
        width: width as usize,
        height: height as usize,
    }
}

/// Checks plane count, strides and sizes against the frame layout and size.
fn check_planes(frame: &FrameRef) -> Result<(), PreprocessError> {
    let layout = frame.layout;
    let expected = layout.n_planes();
    if frame.planes.len() != expected {
        return Err(PreprocessError::PlaneCount {
            layout,
            expected,
            got: frame.planes.len(),
        });
    }
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for (index, plane) in frame.planes.iter().enumerate() {
        let (row_bytes, rows) = match (layout, index) {
            (_, 0) => (w * layout.bytes_per_pixel(), h),
            (PixelLayout::Nv12, _) => (cw * 2, ch),
            _ => (cw, ch),
        };
        if plane.stride < row_bytes {
            return Err(PreprocessError::StrideTooSmall {
                layout,
                index,
                stride: plane.stride,
                row_bytes,
            });
        }
        let needed = plane
            .stride
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(row_bytes))
            .unwrap_or(usize::MAX);
        if plane.data.len() < needed {
            return Err(PreprocessError::PlaneTooSmall {
                layout,
                index,
                len: plane.data.len(),
                rows,
                stride: plane.stride,
                needed,
            });
        }
    }
    Ok(())
}
