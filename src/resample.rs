//! Pillow's antialiased bilinear resize of 8-bit images, bit for bit.
//!
//! Why our own code rather than a resize crate: the deployed element must give exactly the
//! bytes of the training/eval transform, `PIL.Image.resize((S, S), Image.BILINEAR)`, and
//! must not allocate per frame. General-purpose crates round the filter weights
//! differently (`fast_image_resize` keeps 15 bits where Pillow keeps 22, which puts about
//! 1 % of the bytes one step off) and recompute, in fresh vectors, the weights of every
//! call. Here the weights are computed once per geometry (input size, source window,
//! output size, channel count), kept in a `Resampler` with its intermediate buffer, and
//! only recomputed when the geometry changes (caps renegotiation, a new region of
//! interest).
//!
//! The arithmetic is Pillow's (`libImaging/Resample.c`, 8 bits per channel):
//!
//! * per axis, output sample `i` is centred at `in0 + (i + 0.5) * scale` with
//!   `scale = (in1 - in0) / out`; the triangle filter has support `max(scale, 1)` and is
//!   stretched by the same factor; the input samples used run from
//!   `trunc(center - support + 0.5)` (at least 0) to `trunc(center + support + 0.5)` (at
//!   most the input size); the weights are normalised to sum 1 in `f64` and rounded to
//!   22-bit fixed point (`PRECISION_BITS = 32 - 8 - 2`);
//! * the horizontal pass runs first, over the input rows the vertical pass needs only, and
//!   is rounded to 8 bits (add `1 << 21`, shift by 22, clip to 0..=255); then the vertical
//!   pass, rounded the same way. Channels are independent.
//!
//! Each output reads a fixed-length window of input samples (the widest filter of the
//! axis; shorter filters are padded with zero weights, and windows at the far edge are
//! shifted inwards), so the inner loops have one trip count per geometry. The horizontal
//! weights are stored repeated per channel, which turns a pixel's filter into a plain dot
//! product over contiguous bytes; both passes use `i32` accumulators in fixed-size lane
//! arrays that the compiler vectorises (with AVX2 where the CPU has it).

/// Fractional bits of the fixed-point weights, Pillow's `PRECISION_BITS`.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Rounding half added to every accumulator.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A rectangle of a strided 8-bit image with `C` interleaved bytes per pixel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SrcRect<'a> {
    /// The image bytes, from the first byte of the rectangle's first row.
    pub data: &'a [u8],
    /// Distance in bytes between two consecutive rows.
    pub stride: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in rows.
    pub height: usize,
}

/// The part of the source rectangle to resample, in its pixels (Pillow's `box`): usually
/// `(0, 0, width, height)`, fractional for chroma planes of an odd region of interest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    /// Left edge.
    pub x0: f64,
    /// Top edge.
    pub y0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom edge.
    pub y1: f64,
}

impl Window {
    /// The whole of a `width`x`height` rectangle.
    pub fn full(width: usize, height: usize) -> Self {
        Self {
            x0: 0.0,
            y0: 0.0,
            x1: width as f64,
            y1: height as f64,
        }
    }
}

/// Fixed-point filter weights of one axis.
#[derive(Debug)]
struct Axis {
    /// Input samples each output reads: the widest filter of the axis.
    taps: usize,
    /// First input sample each output reads; non-decreasing, and `start + taps` never
    /// exceeds the input size.
    starts: Vec<usize>,
    /// `taps` weights per output, zero outside that output's filter.
    weights: Vec<i32>,
}

impl Axis {
    /// The bilinear (triangle) filter resampling input samples `in0..in1` of an axis of
    /// `in_size` samples to `out_size` samples, as Pillow computes it.
    ///
    /// The window length is rounded up to a multiple of `align` where the input is long
    /// enough, so that the inner loops have no remainder.
    fn new(in_size: usize, in0: f64, in1: f64, out_size: usize, align: usize) -> Self {
        assert!(in_size > 0 && out_size > 0);
        let scale = (in1 - in0) / out_size as f64;
        let filterscale = scale.max(1.0);
        // The triangle has support 1, stretched when reducing.
        let support = filterscale;
        let inv = 1.0 / filterscale;
        let triangle = |x: f64| {
            let x = x.abs();
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        };

        // Each output's first sample and normalised weights, as Pillow has them.
        let mut spans = Vec::with_capacity(out_size);
        let mut weights = Vec::new();
        for i in 0..out_size {
            let center = in0 + (i as f64 + 0.5) * scale;
            // `as` truncates towards zero, like C's conversion to int.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let first = first.min(end);
            let at = weights.len();
            let mut sum = 0.0;
            for x in first..end {
                let w = triangle((x as f64 - center + 0.5) * inv);
                weights.push(w);
                sum += w;
            }
            if sum != 0.0 {
                for w in &mut weights[at..] {
                    *w /= sum;
                }
            }
            spans.push((first, at, end - first));
        }

        let widest = spans
            .iter()
            .map(|s| s.2)
            .max()
            .unwrap_or(1)
            .clamp(1, in_size);
        let aligned = widest.next_multiple_of(align);
        let taps = if aligned <= in_size { aligned } else { widest };
        let mut axis = Axis {
            taps,
            starts: Vec::with_capacity(out_size),
            weights: vec![0; out_size * taps],
        };
        for (i, &(first, at, len)) in spans.iter().enumerate() {
            let start = first.min(in_size - taps);
            let row = &mut axis.weights[i * taps..][..taps];
            for (dst, &w) in row[first - start..][..len].iter_mut().zip(&weights[at..]) {
                *dst = fixed(w);
            }
            axis.starts.push(start);
        }
        // The kernels rely on this to bound-check only the last window.
        assert!(axis.starts.windows(2).all(|s| s[0] <= s[1]));
        axis
    }

    /// Input samples `first..end` read by the whole axis.
    fn used(&self) -> (usize, usize) {
        let first = self.starts.first().copied().unwrap_or(0);
        let last = self.starts.last().copied().unwrap_or(0);
        (first, last + self.taps)
    }
}

/// A normalised weight in 22-bit fixed point, rounded half away from zero.
fn fixed(w: f64) -> i32 {
    let scaled = w * f64::from(1u32 << PRECISION_BITS);
    if w < 0.0 {
        (scaled - 0.5) as i32
    } else {
        (scaled + 0.5) as i32
    }
}

/// Rounds an accumulator (which includes [`HALF`]) to 8 bits.
#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Everything that decides the weights.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Geometry {
    width: usize,
    height: usize,
    window: Window,
    out: usize,
    /// Bytes per source pixel.
    channels: usize,
    /// Channels resampled: the first `used` of each pixel.
    used: usize,
}

/// Horizontal taps are padded to a multiple of this (where the input is wide enough) so
/// that the SIMD kernel reads whole blocks of 8 or 16 samples.
const TAP_BLOCK: usize = 8;

/// Bits of the low half of a split weight (see [`Plan::hi`]).
const SPLIT_BITS: u32 = 11;

/// Weights for one geometry.
#[derive(Debug)]
struct Plan {
    geometry: Geometry,
    /// Horizontal weights, `starts` relative to `columns.0`.
    horizontal: Axis,
    /// The horizontal weights split as `w = hi << SPLIT_BITS | lo`, both halves small
    /// enough for `i16` multiplies (`_mm256_madd_epi16`): recombined in `i32`, the sum is
    /// exactly Pillow's `i32` accumulation.
    hi: Vec<i16>,
    /// Low halves, `0..1 << SPLIT_BITS`.
    lo: Vec<i16>,
    vertical: Axis,
    /// Source columns `first..end` the horizontal pass reads.
    columns: (usize, usize),
    /// Source rows `first..end` the vertical pass reads.
    rows: (usize, usize),
}

impl Plan {
    fn new(geometry: Geometry) -> Self {
        let Geometry {
            width,
            height,
            window,
            out,
            ..
        } = geometry;
        let mut horizontal = Axis::new(width, window.x0, window.x1, out, TAP_BLOCK);
        let columns = horizontal.used();
        for start in &mut horizontal.starts {
            *start -= columns.0;
        }
        let vertical = Axis::new(height, window.y0, window.y1, out, 1);
        let (hi, lo) = horizontal
            .weights
            .iter()
            .map(|&w| {
                let hi = i16::try_from(w >> SPLIT_BITS).expect("weights are at most 1.0");
                (hi, (w & ((1 << SPLIT_BITS) - 1)) as i16)
            })
            .unzip();
        let rows = vertical.used();
        Self {
            geometry,
            horizontal,
            hi,
            lo,
            vertical,
            columns,
            rows,
        }
    }

    /// Whether the SIMD horizontal kernel applies: whole blocks of taps.
    fn blocked(&self) -> bool {
        self.horizontal.taps.is_multiple_of(TAP_BLOCK)
    }
}

/// Pillow-exact bilinear resizing to `out`x`out`, with weights and intermediate rows kept
/// from call to call.
#[derive(Debug, Default)]
pub(crate) struct Resampler {
    plan: Option<Plan>,
    /// Horizontal pass result, for each source row the vertical pass reads: `K` planes of
    /// `out` bytes (planar, so that each channel is a contiguous dot-product input).
    temp: Vec<u8>,
    /// One source row split into `K` planes of the used columns (`C > 1` only).
    planes: Vec<u8>,
    /// Vertical pass result in the same per-row planar layout (`K > 1` only).
    planar: Vec<u8>,
}

impl Resampler {
    /// Resizes `window` of `src` (`C` bytes per pixel) to `out`x`out` pixels into `dst`
    /// (`out * out * C` bytes).
    ///
    /// Allocates only when the geometry differs from the previous call's.
    pub fn resize<const C: usize>(
        &mut self,
        src: SrcRect,
        window: Window,
        out: usize,
        dst: &mut [u8],
    ) {
        self.resize_with::<C, C>(src, window, out, dst, simd_available());
    }

    /// [`Self::resize`] of the first `K` channels only of `C`-byte pixels (the colour of
    /// RGBx-like pixels without the padding or alpha byte), into `out * out * K` bytes of
    /// `K`-byte pixels. Each channel is resampled exactly as by [`Self::resize`].
    pub fn resize_first<const C: usize, const K: usize>(
        &mut self,
        src: SrcRect,
        window: Window,
        out: usize,
        dst: &mut [u8],
    ) {
        self.resize_with::<C, K>(src, window, out, dst, simd_available());
    }

    /// [`Self::resize_first`], with the SIMD kernels only if `simd` (tests compare both).
    fn resize_with<const C: usize, const K: usize>(
        &mut self,
        src: SrcRect,
        window: Window,
        out: usize,
        dst: &mut [u8],
        simd: bool,
    ) {
        const { assert!(K >= 1 && K <= C) };
        assert!(src.width > 0 && src.height > 0 && out > 0);
        assert!(
            src.stride >= src.width * C
                && src.data.len() >= (src.height - 1) * src.stride + src.width * C,
            "source rectangle out of its buffer"
        );
        let dst = &mut dst[..out * out * K];
        let geometry = Geometry {
            width: src.width,
            height: src.height,
            window,
            out,
            channels: C,
            used: K,
        };
        if self.plan.as_ref().is_none_or(|p| p.geometry != geometry) {
            let plan = Plan::new(geometry);
            let grow = |buf: &mut Vec<u8>, len: usize| {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
            };
            grow(&mut self.temp, (plan.rows.1 - plan.rows.0) * out * K);
            if C > 1 {
                grow(&mut self.planes, (plan.columns.1 - plan.columns.0) * K);
                grow(&mut self.planar, out * out * K);
            }
            self.plan = Some(plan);
        }
        let plan = self.plan.as_ref().expect("plan set above");
        let row_len = out * K;
        let temp = &mut self.temp[..(plan.rows.1 - plan.rows.0) * row_len];
        horizontal_pass::<C, K>(src, plan, &mut self.planes, temp, simd && plan.blocked());

        let v = &plan.vertical;
        let vertical = |to: &mut [u8]| {
            vertical_pass(
                temp,
                row_len,
                plan.rows.0,
                &v.starts,
                v.taps,
                &v.weights,
                to,
            )
        };
        if K == 1 {
            vertical(dst);
        } else {
            let planar = &mut self.planar[..out * out * K];
            vertical(planar);
            for (from, to) in planar
                .chunks_exact(row_len)
                .zip(dst.chunks_exact_mut(row_len))
            {
                interleave::<K>(from, to);
            }
        }
    }
}

/// Whether the CPU runs the SIMD kernels.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Horizontal pass over the source rows the vertical pass reads, into `temp` (per row, `K`
/// planes of `out` bytes, the first `K` channels of `C`); with the AVX2 kernel if `simd`.
fn horizontal_pass<const C: usize, const K: usize>(
    src: SrcRect,
    plan: &Plan,
    planes: &mut [u8],
    temp: &mut [u8],
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only set when the CPU has AVX2.
        unsafe { avx2::horizontal_pass::<C, K>(src, plan, planes, temp) };
        return;
    }
    let _ = simd;
    horizontal_rows::<C, K>(
        src,
        plan,
        planes,
        temp,
        deinterleave::<C, K>,
        |plane, dst| horizontal_plane(plane, &plan.horizontal, dst),
    );
}

/// Runs `kernel` (one plane of source samples to one plane of `out` bytes) over the first
/// `K` channels of every needed source row, splitting interleaved pixels into `K` planes
/// first with `split` (`row`, `planes`; see [`deinterleave`]).
#[inline(always)]
fn horizontal_rows<const C: usize, const K: usize>(
    src: SrcRect,
    plan: &Plan,
    planes: &mut [u8],
    temp: &mut [u8],
    mut split: impl FnMut(&[u8], &mut [u8]),
    mut kernel: impl FnMut(&[u8], &mut [u8]),
) {
    let (x0, x1) = plan.columns;
    let out = plan.horizontal.starts.len();
    for (r, dst) in temp.chunks_exact_mut(out * K).enumerate() {
        let row = &src.data[(plan.rows.0 + r) * src.stride..][x0 * C..x1 * C];
        if C == 1 {
            kernel(row, dst);
            continue;
        }
        let planes = &mut planes[..(x1 - x0) * K];
        split(row, planes);
        for (plane, dst) in planes.chunks_exact(x1 - x0).zip(dst.chunks_exact_mut(out)) {
            kernel(plane, dst);
        }
    }
}

/// Splits the first `K` channels of `C`-byte pixels into `K` planes, one pass over the
/// row.
#[inline(always)]
fn deinterleave<const C: usize, const K: usize>(row: &[u8], planes: &mut [u8]) {
    let pixels = row.chunks_exact(C);
    let width = pixels.len();
    let mut split = planes.chunks_exact_mut(width);
    let mut plane = || split.next().expect("K planes");
    match K {
        2 => {
            let (a, b) = (plane(), plane());
            for ((a, b), px) in a.iter_mut().zip(b).zip(pixels) {
                (*a, *b) = (px[0], px[1]);
            }
        }
        3 => {
            let (a, b, c) = (plane(), plane(), plane());
            let planes = a.iter_mut().zip(b).zip(c);
            for (((a, b), c), px) in planes.zip(pixels) {
                (*a, *b, *c) = (px[0], px[1], px[2]);
            }
        }
        4 => {
            let (a, b, c, d) = (plane(), plane(), plane(), plane());
            let planes = a.iter_mut().zip(b).zip(c).zip(d);
            for ((((a, b), c), d), px) in planes.zip(pixels) {
                (*a, *b, *c, *d) = (px[0], px[1], px[2], px[3]);
            }
        }
        _ => {
            for (c, plane) in planes.chunks_exact_mut(width).take(K).enumerate() {
                for (p, px) in plane.iter_mut().zip(row.chunks_exact(C)) {
                    *p = px[c];
                }
            }
        }
    }
}

/// Joins a row of `C` planes back into `C`-byte pixels.
#[inline(always)]
fn interleave<const C: usize>(planar: &[u8], dst: &mut [u8]) {
    let width = dst.len() / C;
    for (c, plane) in planar.chunks_exact(width).enumerate() {
        for (px, &p) in dst.chunks_exact_mut(C).zip(plane) {
            px[c] = p;
        }
    }
}

/// The portable horizontal kernel: Pillow's loop, one output sample at a time.
fn horizontal_plane(plane: &[u8], axis: &Axis, dst: &mut [u8]) {
    for (j, d) in dst.iter_mut().enumerate() {
        *d = horizontal_sample(plane, axis, j);
    }
}

/// Output sample `j` of one plane.
#[inline(always)]
fn horizontal_sample(plane: &[u8], axis: &Axis, j: usize) -> u8 {
    let taps = axis.taps;
    let window = &plane[axis.starts[j]..][..taps];
    let weights = &axis.weights[j * taps..][..taps];
    let acc = window
        .iter()
        .zip(weights)
        .fold(HALF, |acc, (&p, &w)| acc + i32::from(p) * w);
    clip8(acc)
}

/// The AVX2 horizontal kernel: `_mm256_madd_epi16` on samples widened to `i16` and the
/// split weights, eight output samples at a time.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{deinterleave, horizontal_rows, horizontal_sample, Axis, Plan, SrcRect, HALF};
    use super::{PRECISION_BITS, SPLIT_BITS};

    /// [`super::horizontal_rows`] with this kernel (and the plane splitting compiled for
    /// AVX2 too).
    #[target_feature(enable = "avx2")]
    pub(super) fn horizontal_pass<const C: usize, const K: usize>(
        src: SrcRect,
        plan: &Plan,
        planes: &mut [u8],
        temp: &mut [u8],
    ) {
        // Closures inherit their function's target features.
        let split = |row: &[u8], planes: &mut [u8]| match C {
            4 => deinterleave4::<K>(row, planes),
            _ => deinterleave::<C, K>(row, planes),
        };
        horizontal_rows::<C, K>(src, plan, planes, temp, split, |plane, dst| {
            horizontal_plane(plane, &plan.horizontal, &plan.hi, &plan.lo, dst)
        });
    }

    /// [`super::deinterleave`] of 4-byte pixels, 32 at a time: bytes grouped by channel
    /// within each 4-pixel dword group, then a 4x4 dword transpose; only the first `K`
    /// channels are stored.
    #[target_feature(enable = "avx2")]
    fn deinterleave4<const K: usize>(row: &[u8], planes: &mut [u8]) {
        let width = row.len() / 4;
        assert!(planes.len() >= width * K);
        let group = _mm256_setr_epi8(
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, //
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
        );
        // After the transpose, 4-pixel groups come as 0, 2, 4, 6 | 1, 3, 5, 7.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let (src, dst) = (row.as_ptr(), planes.as_mut_ptr());
        let blocks = width / 32;
        for b in 0..blocks {
            // SAFETY: pixels `32 * b..32 * (b + 1)` are inside `row` (`b < width / 32`).
            let v: [__m256i; 4] = std::array::from_fn(|i| unsafe {
                let v = _mm256_loadu_si256(src.add(b * 128 + i * 32).cast());
                _mm256_shuffle_epi8(v, group)
            });
            let t0 = _mm256_unpacklo_epi32(v[0], v[1]);
            let t1 = _mm256_unpackhi_epi32(v[0], v[1]);
            let t2 = _mm256_unpacklo_epi32(v[2], v[3]);
            let t3 = _mm256_unpackhi_epi32(v[2], v[3]);
            let channels = [
                _mm256_unpacklo_epi64(t0, t2),
                _mm256_unpackhi_epi64(t0, t2),
                _mm256_unpacklo_epi64(t1, t3),
                _mm256_unpackhi_epi64(t1, t3),
            ];
            for (c, v) in channels.into_iter().enumerate().take(K) {
                let v = _mm256_permutevar8x32_epi32(v, order);
                // SAFETY: plane `c` has `width` bytes from `c * width`; `32 * (b + 1) <= width`.
                unsafe { _mm256_storeu_si256(dst.add(c * width + b * 32).cast(), v) };
            }
        }
        for i in blocks * 32..width {
            for c in 0..K {
                planes[c * width + i] = row[i * 4 + c];
            }
        }
    }

    /// One plane of the horizontal pass; identical results to [`super::horizontal_plane`].
    ///
    /// `axis.taps` must be a multiple of 8, `hi` and `lo` the split `axis.weights`.
    #[target_feature(enable = "avx2")]
    pub(super) fn horizontal_plane(
        plane: &[u8],
        axis: &Axis,
        hi: &[i16],
        lo: &[i16],
        dst: &mut [u8],
    ) {
        // The usual tap counts get a fully unrolled copy (16 for a 7.5x reduction).
        match axis.taps {
            8 => plane_taps::<8>(plane, axis, hi, lo, dst),
            16 => plane_taps::<16>(plane, axis, hi, lo, dst),
            24 => plane_taps::<24>(plane, axis, hi, lo, dst),
            32 => plane_taps::<32>(plane, axis, hi, lo, dst),
            _ => plane_taps::<0>(plane, axis, hi, lo, dst),
        }
    }

    /// [`horizontal_plane`] for `N` taps, or `axis.taps` if `N` is 0.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn plane_taps<const N: usize>(
        plane: &[u8],
        axis: &Axis,
        hi: &[i16],
        lo: &[i16],
        dst: &mut [u8],
    ) {
        let taps = if N > 0 { N } else { axis.taps };
        let n = dst.len();
        assert!(taps == axis.taps && taps.is_multiple_of(8) && axis.starts.len() == n);
        assert!(hi.len() == n * taps && lo.len() == n * taps);
        // Starts are non-decreasing (`Axis::new`), so the last window is the rightmost.
        assert!(axis.starts.last().is_none_or(|&s| s + taps <= plane.len()));
        let (p, h, l) = (plane.as_ptr(), hi.as_ptr(), lo.as_ptr());
        let blocks = dst.chunks_exact_mut(8).zip(axis.starts.chunks_exact(8));
        for (b, (block, starts)) in blocks.enumerate() {
            let mut sums = [_mm256_setzero_si256(); 8];
            for (k, (sum, &start)) in sums.iter_mut().zip(starts).enumerate() {
                let w = (b * 8 + k) * taps;
                // SAFETY: the window lies in `plane` (asserted above) and the weights of
                // this output in `hi` and `lo` (`n * taps` each).
                *sum = unsafe { dot(p.add(start), h.add(w), l.add(w), taps) };
            }
            store8(reduce8(sums), block);
        }
        for (j, d) in dst.iter_mut().enumerate().skip(n / 8 * 8) {
            *d = horizontal_sample(plane, axis, j);
        }
    }

    /// Eight `i32` partial sums of `window · (hi << SPLIT_BITS | lo)` over `taps` (a
    /// multiple of 8) samples and weights.
    ///
    /// # Safety
    /// `window`, `hi` and `lo` must be valid for reading `taps` elements.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot(window: *const u8, hi: *const i16, lo: *const i16, taps: usize) -> __m256i {
        let mut acc = _mm256_setzero_si256();
        let mut t = 0;
        while t + 16 <= taps {
            // SAFETY: `t + 16 <= taps` (caller's contract).
            let (p, h, l) = unsafe {
                (
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(window.add(t).cast())),
                    _mm256_loadu_si256(hi.add(t).cast()),
                    _mm256_loadu_si256(lo.add(t).cast()),
                )
            };
            acc = _mm256_add_epi32(
                acc,
                combine(_mm256_madd_epi16(p, h), _mm256_madd_epi16(p, l)),
            );
            t += 16;
        }
        if t < taps {
            // SAFETY: `t + 8 == taps`.
            let (p, h, l) = unsafe {
                (
                    _mm_cvtepu8_epi16(_mm_loadl_epi64(window.add(t).cast())),
                    _mm_loadu_si128(hi.add(t).cast()),
                    _mm_loadu_si128(lo.add(t).cast()),
                )
            };
            let hl = _mm_add_epi32(
                _mm_slli_epi32::<{ SPLIT_BITS as i32 }>(_mm_madd_epi16(p, h)),
                _mm_madd_epi16(p, l),
            );
            acc = _mm256_add_epi32(acc, _mm256_zextsi128_si256(hl));
        }
        acc
    }

    /// `hi << SPLIT_BITS + lo`, lane by lane. Wrapping, but the final sums are Pillow's
    /// `i32` sums, which do not overflow, so the result is exact.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn combine(hi: __m256i, lo: __m256i) -> __m256i {
        _mm256_add_epi32(_mm256_slli_epi32::<{ SPLIT_BITS as i32 }>(hi), lo)
    }

    /// The eight lanes of each of `s[0..8]` summed: output sample `k` in lane `k`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce8(s: [__m256i; 8]) -> __m256i {
        let h01 = _mm256_hadd_epi32(s[0], s[1]);
        let h23 = _mm256_hadd_epi32(s[2], s[3]);
        let h45 = _mm256_hadd_epi32(s[4], s[5]);
        let h67 = _mm256_hadd_epi32(s[6], s[7]);
        // Per 128-bit half: samples 0..4 (4..8), each summed over that half's lanes.
        let q0 = _mm256_hadd_epi32(h01, h23);
        let q1 = _mm256_hadd_epi32(h45, h67);
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(q0, q1),
            _mm256_permute2x128_si256::<0x31>(q0, q1),
        )
    }

    /// Rounds eight sums to bytes like [`super::clip8`] and stores them.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store8(sums: __m256i, dst: &mut [u8]) {
        assert!(dst.len() >= 8);
        let v = _mm256_add_epi32(sums, _mm256_set1_epi32(HALF));
        let v = _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(v);
        // Shifted sums are within +-512: the i16 packing is exact, the u8 one clamps.
        let words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        // SAFETY: `dst` has at least 8 bytes.
        unsafe { _mm_storel_epi64(dst.as_mut_ptr().cast(), _mm_packus_epi16(words, words)) };
    }
}

/// Vertical pass from `temp` (rows `first..` of the horizontally resized source, `row_len`
/// bytes each) into `dst`, with the best code the CPU allows.
fn vertical_pass(
    temp: &[u8],
    row_len: usize,
    first: usize,
    starts: &[usize],
    taps: usize,
    weights: &[i32],
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        unsafe { vertical_avx2(temp, row_len, first, starts, taps, weights, dst) };
        return;
    }
    vertical_rows(temp, row_len, first, starts, taps, weights, dst);
}

/// [`vertical_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn vertical_avx2(
    temp: &[u8],
    row_len: usize,
    first: usize,
    starts: &[usize],
    taps: usize,
    weights: &[i32],
    dst: &mut [u8],
) {
    vertical_rows(temp, row_len, first, starts, taps, weights, dst);
}

/// Each output row is the weighted sum of `taps` consecutive rows of `temp`, computed in
/// blocks of [`BLOCK`] bytes held in registers.
#[inline(always)]
fn vertical_rows(
    temp: &[u8],
    row_len: usize,
    first: usize,
    starts: &[usize],
    taps: usize,
    weights: &[i32],
    dst: &mut [u8],
) {
    const BLOCK: usize = 32;
    let outputs = dst.chunks_exact_mut(row_len).zip(starts);
    for ((out_row, &start), w) in outputs.zip(weights.chunks_exact(taps)) {
        let rows = &temp[(start - first) * row_len..][..taps * row_len];
        let mut x = 0;
        for block in out_row.chunks_exact_mut(BLOCK) {
            let mut acc = [HALF; BLOCK];
            for (t, &wt) in w.iter().enumerate() {
                let src = &rows[t * row_len + x..][..BLOCK];
                for j in 0..BLOCK {
                    acc[j] += i32::from(src[j]) * wt;
                }
            }
            for (o, a) in block.iter_mut().zip(acc) {
                *o = clip8(a);
            }
            x += BLOCK;
        }
        for (i, o) in out_row[x..].iter_mut().enumerate() {
            let mut acc = HALF;
            for (t, &wt) in w.iter().enumerate() {
                acc += i32::from(rows[t * row_len + x + i]) * wt;
            }
            *o = clip8(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_weights_are_one() {
        let axis = Axis::new(5, 0.0, 5.0, 5, 1);
        for (i, &start) in axis.starts.iter().enumerate() {
            let w = &axis.weights[i * axis.taps..][..axis.taps];
            assert_eq!(w[i - start], 1 << PRECISION_BITS);
            assert_eq!(w.iter().sum::<i32>(), 1 << PRECISION_BITS);
        }
    }

    #[test]
    fn windows_stay_inside_the_input() {
        for (n, out) in [(37, 16), (1920, 256), (13, 32), (1, 7), (3, 1)] {
            let axis = Axis::new(n, 0.0, n as f64, out, 4);
            assert!(axis.starts.windows(2).all(|s| s[0] <= s[1]));
            assert!(axis.used().1 <= n);
        }
    }

    /// A deterministic pseudo-random byte sequence.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Resizes with and without the SIMD kernels and checks that they agree (on CPUs
    /// without them both runs are the portable code).
    fn simd_matches_scalar<const C: usize>(
        width: usize,
        height: usize,
        window: Window,
        out: usize,
    ) {
        simd_matches_scalar_first::<C, C>(width, height, window, out);
    }

    /// [`simd_matches_scalar`] resizing the first `K` channels only, which must also equal
    /// those channels of the full resize.
    fn simd_matches_scalar_first<const C: usize, const K: usize>(
        width: usize,
        height: usize,
        window: Window,
        out: usize,
    ) {
        let stride = width * C + 3;
        let data = noise(stride * height, (width * 31 + height * 7 + C) as u64);
        let src = SrcRect {
            data: &data,
            stride,
            width,
            height,
        };
        let (mut fast, mut slow) = (vec![0; out * out * K], vec![0; out * out * K]);
        let mut r = Resampler::default();
        r.resize_with::<C, K>(src, window, out, &mut fast, simd_available());
        r.resize_with::<C, K>(src, window, out, &mut slow, false);
        let case = format!("{K} of {C} channels, {width}x{height} -> {out}, {window:?}");
        assert_eq!(fast, slow, "{case}");
        if K < C {
            let mut all = vec![0; out * out * C];
            Resampler::default().resize_with::<C, C>(src, window, out, &mut all, false);
            let first = all.chunks_exact(C).flat_map(|px| &px[..K]);
            assert!(first.eq(slow.iter()), "{case}");
        }
    }

    #[test]
    fn simd_kernels_match_the_scalar_ones() {
        for (w, h, out) in [
            (1920, 1080, 256),
            (801, 601, 224),
            (64, 48, 13),
            (300, 7, 9),
        ] {
            let full = Window::full(w, h);
            simd_matches_scalar::<1>(w, h, full, out);
            simd_matches_scalar::<2>(w, h, full, out);
            simd_matches_scalar::<3>(w, h, full, out);
            simd_matches_scalar::<4>(w, h, full, out);
            simd_matches_scalar_first::<4, 3>(w, h, full, out);
        }
        // Enlarging, 3840 wide (32 taps), odd taps, fractional windows.
        simd_matches_scalar::<3>(100, 90, Window::full(100, 90), 256);
        simd_matches_scalar::<4>(3840, 40, Window::full(3840, 40), 100);
        simd_matches_scalar_first::<4, 3>(3840, 40, Window::full(3840, 40), 100);
        simd_matches_scalar::<1>(1000, 40, Window::full(1000, 40), 77);
        let window = Window {
            x0: 0.5,
            y0: 0.5,
            x1: 400.5,
            y1: 300.0,
        };
        simd_matches_scalar::<2>(401, 301, window, 256);
    }

    #[test]
    fn split_weights_recombine_exactly() {
        let plan = Plan::new(Geometry {
            width: 1920,
            height: 1080,
            window: Window::full(1920, 1080),
            out: 256,
            channels: 3,
            used: 3,
        });
        assert_eq!(plan.horizontal.taps, 16);
        for ((&w, &hi), &lo) in plan.horizontal.weights.iter().zip(&plan.hi).zip(&plan.lo) {
            assert!((0..1 << SPLIT_BITS).contains(&lo));
            assert_eq!(i32::from(hi) << SPLIT_BITS | i32::from(lo), w);
        }
    }

    #[test]
    fn extreme_samples_and_weights() {
        // Identity (weights of exactly 1.0) on all-255 and all-0 rows, through both paths.
        for v in [0u8, 255] {
            let data = vec![v; 16 * 16 * 3];
            let src = SrcRect {
                data: &data,
                stride: 48,
                width: 16,
                height: 16,
            };
            for simd in [false, simd_available()] {
                let mut dst = vec![1; 16 * 16 * 3];
                Resampler::default().resize_with::<3, 3>(
                    src,
                    Window::full(16, 16),
                    16,
                    &mut dst,
                    simd,
                );
                assert!(dst.iter().all(|&d| d == v));
            }
        }
    }
}
