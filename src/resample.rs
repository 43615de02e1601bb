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
    channels: usize,
}

/// Weights for one geometry.
#[derive(Debug)]
struct Plan {
    geometry: Geometry,
    horizontal: Axis,
    /// Horizontal weights repeated for each channel: `taps * channels` per output.
    expanded: Vec<i32>,
    vertical: Axis,
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
            channels,
        } = geometry;
        let horizontal = Axis::new(width, window.x0, window.x1, out, lanes(channels) / channels);
        let vertical = Axis::new(height, window.y0, window.y1, out, 1);
        let expanded = horizontal
            .weights
            .iter()
            .flat_map(|&w| std::iter::repeat_n(w, channels))
            .collect();
        let rows = vertical.used();
        Self {
            geometry,
            horizontal,
            expanded,
            vertical,
            rows,
        }
    }
}

/// Pillow-exact bilinear resizing to `out`x`out`, with weights and intermediate rows kept
/// from call to call.
#[derive(Debug, Default)]
pub(crate) struct Resampler {
    plan: Option<Plan>,
    /// Horizontal pass result: `out * C` bytes for each source row the vertical pass reads.
    temp: Vec<u8>,
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
        assert!(src.width > 0 && src.height > 0 && out > 0);
        assert!(
            src.stride >= src.width * C
                && src.data.len() >= (src.height - 1) * src.stride + src.width * C,
            "source rectangle out of its buffer"
        );
        let dst = &mut dst[..out * out * C];
        let geometry = Geometry {
            width: src.width,
            height: src.height,
            window,
            out,
            channels: C,
        };
        if self.plan.as_ref().is_none_or(|p| p.geometry != geometry) {
            let plan = Plan::new(geometry);
            let temp_len = (plan.rows.1 - plan.rows.0) * out * C;
            if self.temp.len() < temp_len {
                self.temp.resize(temp_len, 0);
            }
            self.plan = Some(plan);
        }
        let plan = self.plan.as_ref().expect("plan set above");
        let row_len = out * C;
        let (first, end) = plan.rows;
        let temp = &mut self.temp[..(end - first) * row_len];

        horizontal_pass::<C>(src, first, &plan.horizontal, &plan.expanded, temp);
        let v = &plan.vertical;
        vertical_pass(temp, row_len, first, &v.starts, v.taps, &v.weights, dst);
    }
}

/// Horizontal pass over source rows `first..` into `temp` (one `out * C` row per source
/// row), with the best code the CPU allows.
fn horizontal_pass<const C: usize>(
    src: SrcRect,
    first: usize,
    axis: &Axis,
    expanded: &[i32],
    temp: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        unsafe { horizontal_avx2::<C>(src, first, axis, expanded, temp) };
        return;
    }
    horizontal_rows::<C>(src, first, axis, expanded, temp);
}

/// [`horizontal_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn horizontal_avx2<const C: usize>(
    src: SrcRect,
    first: usize,
    axis: &Axis,
    expanded: &[i32],
    temp: &mut [u8],
) {
    horizontal_rows::<C>(src, first, axis, expanded, temp);
}

#[inline(always)]
fn horizontal_rows<const C: usize>(
    src: SrcRect,
    first: usize,
    axis: &Axis,
    expanded: &[i32],
    temp: &mut [u8],
) {
    let row_len = axis.starts.len() * C;
    for (r, dst) in temp.chunks_exact_mut(row_len).enumerate() {
        let row = &src.data[(first + r) * src.stride..][..src.width * C];
        match lanes(C) {
            24 => horizontal_row::<C, 24>(row, axis, expanded, dst),
            _ => horizontal_row::<C, 16>(row, axis, expanded, dst),
        }
    }
}

/// Accumulator lanes of the horizontal pass for `channels` bytes per pixel: a multiple of
/// the channel count that halves down to it, and of 8 (one AVX2 register of `i32`).
const fn lanes(channels: usize) -> usize {
    if channels == 3 {
        24
    } else {
        16
    }
}

/// One row of the horizontal pass: each output pixel is the dot product of its window of
/// `taps * C` source bytes with its expanded weights, lane `j` adding to channel `j % C`.
#[inline(always)]
fn horizontal_row<const C: usize, const L: usize>(
    row: &[u8],
    axis: &Axis,
    expanded: &[i32],
    dst: &mut [u8],
) {
    let n = axis.taps * C;
    let full = n / L * L;
    let pixels = dst.chunks_exact_mut(C).zip(&axis.starts);
    for ((px, &start), weights) in pixels.zip(expanded.chunks_exact(n)) {
        let bytes = &row[start * C..][..n];
        let mut lanes = [0i32; L];
        for (b, w) in bytes[..full]
            .chunks_exact(L)
            .zip(weights[..full].chunks_exact(L))
        {
            for j in 0..L {
                lanes[j] += i32::from(b[j]) * w[j];
            }
        }
        // Fold the lanes in halves (vector adds) down to one pixel; L / C is a power of 2.
        let mut len = L;
        while len > C {
            len /= 2;
            for j in 0..len {
                lanes[j] += lanes[j + len];
            }
        }
        let mut acc = [HALF; C];
        for (a, lane) in acc.iter_mut().zip(lanes) {
            *a += lane;
        }
        // Only for windows that could not be aligned (inputs narrower than L / C pixels).
        // L is a multiple of C, so the tail starts on a pixel boundary.
        for (j, (&b, &w)) in bytes[full..].iter().zip(&weights[full..]).enumerate() {
            acc[j % C] += i32::from(b) * w;
        }
        for (p, a) in px.iter_mut().zip(acc) {
            *p = clip8(a);
        }
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
}
