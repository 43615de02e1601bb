// SPDX-License-Identifier: MIT OR Apache-2.0

//! Bilinear upsampling of the anomaly map onto the visible part of the roi, pixel centres
//! aligned (as the detector's resize).
//!
//! Map rows are upsampled horizontally first (x256, at most 255 * 256: fits `u16`), each
//! once, then blended vertically over contiguous memory. No rounding happens before the
//! final shift, so this is exactly the vertical-first sum.

use super::dispatch::dispatch;
use super::render::{MapView, Rect};
#[cfg(target_arch = "x86_64")]
use super::vbmi;

/// The upsampling buffers, kept from frame to frame.
#[derive(Debug, Default)]
pub struct Upsampler {
    /// Per visible roi column: the map columns left and right of it, and the weight
    /// (/256) of the right one.
    left: Vec<u32>,
    right: Vec<u32>,
    weights: Vec<u16>,
    /// The map rows above and below the current frame row, upsampled horizontally (x256).
    upper: Vec<u16>,
    lower: Vec<u16>,
    /// The map rows in `upper` and `lower`.
    cached: (usize, usize),
    /// The vertical geometry: map rows, map rows per frame row, top of the roi and of the
    /// visible part.
    map_rows: usize,
    scale_y: f64,
    roi_y: i32,
    vis_y: i32,
}

/// The source position of destination pixel `dst` when `len` source pixels are stretched
/// over destination pixels from `from` with `scale` source pixels per destination pixel:
/// the two source pixels and the weight (/256) of the second.
fn source(dst: i32, from: i32, scale: f64, len: usize) -> (usize, usize, u16) {
    let s = ((dst - from) as f64 + 0.5) * scale - 0.5;
    let s = s.clamp(0.0, (len - 1) as f64);
    let i = s.floor() as usize;
    let f = ((s - i as f64) * 256.0).round() as u16;
    (i, (i + 1).min(len - 1), f)
}

impl Upsampler {
    /// Prepares the rows of `map` stretched over `roi`, for the pixels of `vis` (inside
    /// `roi`); [`Upsampler::row`] then gives them.
    pub fn begin(&mut self, map: MapView, roi: Rect, vis: Rect) {
        let sx = map.width as f64 / roi.w as f64;
        self.left.clear();
        self.right.clear();
        self.weights.clear();
        for x in vis.x..vis.right() {
            let (x0, x1, f) = source(x, roi.x, sx, map.width);
            self.left.push(x0 as u32);
            self.right.push(x1 as u32);
            self.weights.push(f);
        }
        self.upper.resize(self.left.len(), 0);
        self.lower.resize(self.left.len(), 0);
        self.cached = (usize::MAX, usize::MAX);
        (self.map_rows, self.scale_y, self.roi_y, self.vis_y) =
            (map.height, map.height as f64 / roi.h as f64, roi.y, vis.y);
    }

    /// Writes row `r` of the visible part into `out` (`vis.w` values). Asked in order, each
    /// map row is upsampled horizontally once.
    pub fn row(&mut self, map: MapView, r: usize, out: &mut [u8]) {
        let mw = map.width;
        let (y0, y1, fy) = source(
            self.vis_y + r as i32,
            self.roi_y,
            self.scale_y,
            self.map_rows,
        );
        let columns = Columns {
            left: &self.left,
            right: &self.right,
            weights: &self.weights,
        };
        let (upper, lower) = (&mut self.upper, &mut self.lower);
        if self.cached.0 != y0 {
            if self.cached.1 == y0 {
                std::mem::swap(upper, lower);
            } else {
                columns.upsample_row(&map.data[y0 * mw..][..mw], upper);
            }
        }
        if self.cached != (y0, y1) {
            columns.upsample_row(&map.data[y1 * mw..][..mw], lower);
        }
        self.cached = (y0, y1);
        lerp_rows(out, upper, lower, u32::from(fy));
    }
}

/// The source columns and weights of every destination column.
struct Columns<'a> {
    left: &'a [u32],
    right: &'a [u32],
    weights: &'a [u16],
}

impl Columns<'_> {
    /// Upsamples one map row horizontally (x256) into `out`.
    fn upsample_row(&self, map_row: &[u8], out: &mut [u16]) {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if map_row.len() <= 256 && vbmi::available() {
            // SAFETY: the CPU has the features `vbmi::available` checks.
            done = unsafe { avx512::upsample_row(self, map_row, out) };
        }
        upsample_columns(
            &self.left[done..],
            &self.right[done..],
            &self.weights[done..],
            map_row,
            &mut out[done..],
        );
    }
}

/// The portable [`Columns::upsample_row`].
fn upsample_columns(left: &[u32], right: &[u32], weights: &[u16], map_row: &[u8], out: &mut [u16]) {
    for (o, ((&l, &r), &f)) in out.iter_mut().zip(left.iter().zip(right).zip(weights)) {
        let (a, b) = (
            u16::from(map_row[l as usize]),
            u16::from(map_row[r as usize]),
        );
        *o = a * (256 - f) + b * f;
    }
}

dispatch! {
    /// Blends two horizontally upsampled map rows (x256) with weight `fy` (/256) for the
    /// lower one.
    fn lerp_rows(out: &mut [u8], upper: &[u16], lower: &[u16], fy: u32) {
        for (o, (&a, &b)) in out.iter_mut().zip(upper.iter().zip(lower)) {
            *o = ((a as u32 * (256 - fy) + b as u32 * fy + 32768) >> 16) as u8;
        }
    }
}

/// The horizontal upsampling with AVX-512 VBMI: a map row of up to 256 values held in four
/// registers, 64 columns at a time looked up with byte permutes.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::vbmi::Table256;
    use super::Columns;

    /// [`Columns::upsample_row`] for whole blocks of 64 columns of a map row of at most
    /// 256 values; returns the columns done.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn upsample_row(columns: &Columns, map_row: &[u8], out: &mut [u16]) -> usize {
        assert!(map_row.len() <= 256);
        let mut padded = [0u8; 256];
        padded[..map_row.len()].copy_from_slice(map_row);
        let row = Table256::load(&padded);
        let n = out
            .len()
            .min(columns.left.len())
            .min(columns.right.len())
            .min(columns.weights.len());
        let full = _mm512_set1_epi16(256);
        for b in 0..n / 64 {
            let at = 64 * b;
            // SAFETY: elements `at..at + 64` lie in every slice.
            unsafe {
                let a = row.lookup(bytes(columns.left[at..].as_ptr()));
                let c = row.lookup(bytes(columns.right[at..].as_ptr()));
                for half in 0..2 {
                    let w = _mm512_loadu_si512(columns.weights[at + 32 * half..].as_ptr().cast());
                    let (a, c) = if half == 0 {
                        (_mm512_castsi512_si256(a), _mm512_castsi512_si256(c))
                    } else {
                        (
                            _mm512_extracti64x4_epi64::<1>(a),
                            _mm512_extracti64x4_epi64::<1>(c),
                        )
                    };
                    let v = _mm512_add_epi16(
                        _mm512_mullo_epi16(_mm512_cvtepu8_epi16(a), _mm512_sub_epi16(full, w)),
                        _mm512_mullo_epi16(_mm512_cvtepu8_epi16(c), w),
                    );
                    _mm512_storeu_si512(out[at + 32 * half..].as_mut_ptr().cast(), v);
                }
            }
        }
        n / 64 * 64
    }

    /// 64 column indices (below 256) as bytes.
    ///
    /// # Safety
    /// `idx` must be valid for reading 64 values.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn bytes(idx: *const u32) -> __m512i {
        // SAFETY: 64 values at `idx` (caller's contract).
        let [q0, q1, q2, q3] =
            unsafe { [0, 16, 32, 48].map(|k| _mm512_loadu_si512(idx.add(k).cast::<__m512i>())) };
        let v = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(q0));
        let v = _mm512_inserti32x4::<1>(v, _mm512_cvtepi32_epi8(q1));
        let v = _mm512_inserti32x4::<2>(v, _mm512_cvtepi32_epi8(q2));
        _mm512_inserti32x4::<3>(v, _mm512_cvtepi32_epi8(q3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upsampled values straight from the definition: bilinear weights (/256) of the
    /// four map pixels around each pixel's centre.
    fn reference(map: MapView, roi: Rect, vis: Rect) -> Vec<u8> {
        let sx = map.width as f64 / roi.w as f64;
        let sy = map.height as f64 / roi.h as f64;
        let at = |x: usize, y: usize| u32::from(map.data[y * map.width + x]);
        let mut v = Vec::new();
        for y in vis.y..vis.bottom() {
            let (y0, y1, fy) = source(y, roi.y, sy, map.height);
            for x in vis.x..vis.right() {
                let (x0, x1, fx) = source(x, roi.x, sx, map.width);
                let (fx, fy) = (u32::from(fx), u32::from(fy));
                let top = at(x0, y0) * (256 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (256 - fx) + at(x1, y1) * fx;
                v.push(((top * (256 - fy) + bottom * fy + 32768) >> 16) as u8);
            }
        }
        v
    }

    #[test]
    fn matches_the_definition() {
        // Map widths below, at and above the 256 of the AVX-512 path; rois wider than 64
        // columns and not a multiple of it; a roi reaching past the frame.
        for (mw, mh, roi, vis) in [
            (
                256,
                256,
                Rect::new(0, 0, 1920, 40),
                Rect::new(0, 0, 1920, 40),
            ),
            (37, 5, Rect::new(3, 2, 203, 17), Rect::new(3, 2, 203, 17)),
            (300, 3, Rect::new(-10, 0, 700, 9), Rect::new(0, 0, 650, 9)),
            (256, 4, Rect::new(0, 0, 100, 4), Rect::new(0, 0, 100, 4)),
            (2, 2, Rect::new(0, 0, 7, 7), Rect::new(0, 0, 7, 7)),
        ] {
            let data: Vec<u8> = (0..mw * mh).map(|i| (i * 97 % 256) as u8).collect();
            let map = MapView {
                data: &data,
                width: mw,
                height: mh,
            };
            let mut up = Upsampler::default();
            up.begin(map, roi, vis);
            let mut values = vec![0; (vis.w * vis.h) as usize];
            for (r, row) in values.chunks_exact_mut(vis.w as usize).enumerate() {
                up.row(map, r, row);
            }
            assert_eq!(
                values,
                reference(map, roi, vis),
                "{mw}x{mh} map over {roi:?}"
            );
        }
    }
}
