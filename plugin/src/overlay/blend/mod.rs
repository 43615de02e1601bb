// SPDX-License-Identifier: MIT OR Apache-2.0

//! Blending rows of palette indices over 8-bit pixels: portable loops, and AVX2 and
//! AVX-512 kernels (chosen at run time) that give the same bytes.
//!
//! Per channel, `src` over `dst` with alpha `a` is `t = src * a + 128 + dst * (255 - a)`,
//! then `(t + (t >> 8)) >> 8`. `t` is at most `255 * 255 + 128`, and `t + (t >> 8)` below
//! 65536, so the whole computation is exact in `u16` lanes.

use super::render::{Palette, PALETTE_LEN};
#[cfg(target_arch = "x86_64")]
use super::vbmi;

/// A palette prepared for blending without branches: per entry the three channels
/// premultiplied by alpha (plus rounding), then `255 - alpha`. A clear entry leaves the
/// destination as it is, an opaque one replaces it.
pub type Table = [[u16; 4]; PALETTE_LEN];

/// The table of a canvas that has not begun a frame: every entry leaves pixels alone.
pub const CLEAR_TABLE: Table = [[128, 128, 128, 255]; PALETTE_LEN];

/// The blend table of `palette`.
pub fn table(palette: &Palette) -> Table {
    std::array::from_fn(|i| {
        let [c0, c1, c2, a] = palette[i].map(u16::from);
        [c0 * a + 128, c1 * a + 128, c2 * a + 128, 255 - a]
    })
}

/// One plane's view of a [`Table`], in the two forms the planar kernels read:
/// - per entry the channel's premultiplied value and `255 - alpha` in one dword
///   (`pre | inv << 16`), so that the AVX2 kernel reads a pixel's entry with a single
///   gather (gathers are slow on some CPUs, AMD Zen among them);
/// - per entry the channel's colour and the alpha as bytes, which the AVX-512 kernel looks
///   up 64 at a time with byte permutes (`pre = colour * alpha + 128`, `inv = 255 - alpha`).
#[derive(Clone, Copy)]
pub struct PlaneTable {
    pub dwords: [u32; PALETTE_LEN],
    pub colour: [u8; PALETTE_LEN],
    pub alpha: [u8; PALETTE_LEN],
}

/// [`CLEAR_TABLE`] seen from any plane.
pub const CLEAR_PLANE: PlaneTable = PlaneTable {
    dwords: [128 | 255 << 16; PALETTE_LEN],
    colour: [0; PALETTE_LEN],
    alpha: [0; PALETTE_LEN],
};

/// The [`PlaneTable`] of channel `C` of `table`.
pub fn plane_table<const C: usize>(table: &Table) -> PlaneTable {
    assert!(C < 3);
    let alpha = |i: usize| 255 - table[i][3];
    PlaneTable {
        dwords: std::array::from_fn(|i| u32::from(table[i][C]) | u32::from(table[i][3]) << 16),
        // `pre - 128` is `colour * alpha` exactly; a clear entry's colour does not matter.
        colour: std::array::from_fn(|i| match alpha(i) {
            0 => 0,
            a => ((table[i][C] - 128) / a) as u8,
        }),
        alpha: std::array::from_fn(|i| alpha(i) as u8),
    }
}

/// The entry of palette index `i`; indices past the palette read its last entry.
#[inline(always)]
pub fn entry(table: &Table, i: u16) -> [u16; 4] {
    table[usize::from(i).min(PALETTE_LEN - 1)]
}

/// `pre + dst * inv`, divided by 255 (see [`Table`]).
#[inline(always)]
pub fn blend(pre: u16, dst: u8, inv: u16) -> u8 {
    let t = pre + u16::from(dst) * inv;
    ((t + (t >> 8)) >> 8) as u8
}

/// Blends `idx.len()` pixels of `P` bytes (colour in the first three, any fourth byte
/// kept) at the start of `row` with the entries of `idx`.
pub fn span<const P: usize>(row: &mut [u8], idx: &[u16], table: &Table) {
    assert!(P == 3 || P == 4);
    let row = &mut row[..idx.len() * P];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        unsafe { avx2::span::<P>(row, idx, table) };
        return;
    }
    span_scalar::<P>(row, idx, table);
}

/// The portable [`span`].
pub fn span_scalar<const P: usize>(row: &mut [u8], idx: &[u16], table: &Table) {
    for (px, &i) in row.chunks_exact_mut(P).zip(idx) {
        let [p0, p1, p2, inv] = entry(table, i);
        px[0] = blend(p0, px[0], inv);
        px[1] = blend(p1, px[1], inv);
        px[2] = blend(p2, px[2], inv);
    }
}

/// Blends a row of single-channel bytes (gray, luma, or one chroma plane) with the entries
/// of `idx` in `plane` (see [`plane_table`]).
pub fn span_plane(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
    let row = &mut row[..idx.len()];
    #[cfg(target_arch = "x86_64")]
    {
        if vbmi::available() {
            // SAFETY: the CPU has the features `vbmi::available` checks.
            let done = unsafe { avx512::span_plane::<1>(row, idx, plane) };
            span_plane_scalar(&mut row[done..], &idx[done..], plane);
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { avx2::span_plane(row, idx, plane) };
            return;
        }
    }
    span_plane_scalar(row, idx, plane);
}

/// Blends a row of 4:2:0 chroma with the entries of the even indices of a luma row:
/// `row[k]` with `idx[2 * k]`, the top-left pixel of each 2x2 block.
pub fn span_plane_even(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
    let row = &mut row[..idx.len().div_ceil(2)];
    #[cfg(target_arch = "x86_64")]
    if vbmi::available() {
        // SAFETY: the CPU has the features `vbmi::available` checks.
        let done = unsafe { avx512::span_plane::<2>(row, idx, plane) };
        span_plane_even_scalar(&mut row[done..], &idx[2 * done..], plane);
        return;
    }
    // The even indices a stack chunk at a time (no allocation per frame), for the
    // contiguous kernel.
    let mut chunk = [0u16; 256];
    for (row, pairs) in row.chunks_mut(chunk.len()).zip(idx.chunks(2 * chunk.len())) {
        for (c, &i) in chunk.iter_mut().zip(pairs.iter().step_by(2)) {
            *c = i;
        }
        span_plane(row, &chunk[..row.len()], plane);
    }
}

/// Blends a row of NV12 chroma (U, V pairs) with the entries of the even indices of a luma
/// row: the pair `k` with `idx[2 * k]`, U from `u` and V from `v`.
pub fn span_interleaved(row: &mut [u8], idx: &[u16], u: &PlaneTable, v: &PlaneTable) {
    let row = &mut row[..2 * idx.len().div_ceil(2)];
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if vbmi::available() {
        // SAFETY: the CPU has the features `vbmi::available` checks.
        done = unsafe { avx512::span_interleaved(row, idx, u, v) };
    }
    span_interleaved_scalar(&mut row[2 * done..], &idx[2 * done..], u, v);
}

/// The entry of index `i` in `plane`'s dwords: `(pre, inv)`.
#[inline(always)]
fn plane_entry(plane: &PlaneTable, i: u16) -> (u16, u16) {
    let e = plane.dwords[usize::from(i).min(PALETTE_LEN - 1)];
    (e as u16, (e >> 16) as u16)
}

/// The portable [`span_plane`].
pub fn span_plane_scalar(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
    for (d, &i) in row.iter_mut().zip(idx) {
        let (pre, inv) = plane_entry(plane, i);
        *d = blend(pre, *d, inv);
    }
}

/// The portable [`span_plane_even`].
pub fn span_plane_even_scalar(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
    for (d, &i) in row.iter_mut().zip(idx.iter().step_by(2)) {
        let (pre, inv) = plane_entry(plane, i);
        *d = blend(pre, *d, inv);
    }
}

/// The portable [`span_interleaved`].
pub fn span_interleaved_scalar(row: &mut [u8], idx: &[u16], u: &PlaneTable, v: &PlaneTable) {
    for (pair, &i) in row.chunks_exact_mut(2).zip(idx.iter().step_by(2)) {
        let ((pu, iu), (pv, iv)) = (plane_entry(u, i), plane_entry(v, i));
        pair[0] = blend(pu, pair[0], iu);
        pair[1] = blend(pv, pair[1], iv);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A palette of random colours and alphas, with clear and opaque entries.
    fn palette() -> Palette {
        let bytes = noise(PALETTE_LEN * 4, 7);
        let mut p: Palette = std::array::from_fn(|i| bytes[i * 4..][..4].try_into().unwrap());
        p[0][3] = 0;
        p[1][3] = 255;
        p[PALETTE_LEN - 1] = [0; 4];
        p
    }

    fn simd_matches_scalar<const P: usize>(len: usize, offset: usize) {
        let table = table(&palette());
        let idx: Vec<u16> = noise(len * 2, len as u64)
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) % 300)
            .collect();
        let pixels = noise((offset + len + 5) * P, 3 + len as u64);
        let (mut fast, mut slow) = (pixels.clone(), pixels.clone());
        span::<P>(&mut fast[offset * P..], &idx, &table);
        span_scalar::<P>(&mut slow[offset * P..][..len * P], &idx, &table);
        assert_eq!(fast, slow, "{P} bytes per pixel, {len} pixels at {offset}");
    }

    #[test]
    fn simd_blend_matches_scalar() {
        for len in [0, 1, 7, 8, 9, 10, 11, 16, 17, 33, 100, 1920] {
            for offset in [0, 1, 3] {
                simd_matches_scalar::<3>(len, offset);
                simd_matches_scalar::<4>(len, offset);
            }
        }
    }

    fn simd_plane_matches_scalar<const C: usize>() {
        let table = table(&palette());
        let plane = plane_table::<C>(&table);
        for len in [0, 1, 7, 8, 9, 17, 100, 1920] {
            let idx: Vec<u16> = (0..len).map(|i| (i * 37 % 300) as u16).collect();
            let pixels = noise(len + 3, len as u64);
            let (mut fast, mut slow) = (pixels.clone(), pixels.clone());
            span_plane(&mut fast, &idx, &plane);
            span_plane_scalar(&mut slow[..len], &idx, &plane);
            assert_eq!(fast, slow, "channel {C}, {len} pixels");
            // the same bytes as blending with the full entries
            let mut full = pixels.clone();
            for (d, &i) in full.iter_mut().zip(&idx) {
                let e = entry(&table, i);
                *d = blend(e[C], *d, e[3]);
            }
            assert_eq!(fast, full, "channel {C}, {len} pixels");
        }
    }

    #[test]
    fn simd_plane_blend_matches_scalar() {
        simd_plane_matches_scalar::<0>();
        simd_plane_matches_scalar::<1>();
        simd_plane_matches_scalar::<2>();
    }

    /// Random indices below 300: the heat map, the two entries past it, and some past the
    /// palette.
    fn indices(len: usize, seed: u64) -> Vec<u16> {
        noise(len * 2, seed)
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) % 300)
            .collect()
    }

    /// Every planar kernel this CPU runs (whole blocks, then the portable loop for the
    /// rest, as the dispatchers do) against the portable loops.
    #[test]
    fn planar_kernels_match_scalar() {
        let table = table(&palette());
        let (u, v) = (plane_table::<1>(&table), plane_table::<2>(&table));
        for len in [0, 1, 2, 63, 64, 65, 127, 128, 129, 255, 1919, 1920] {
            let idx = indices(len, 11 + len as u64);
            let pixels = noise(2 * len + 8, len as u64);
            let n = len.div_ceil(2);
            let run = |f: &dyn Fn(&mut [u8])| {
                let mut p = pixels.clone();
                f(&mut p);
                p
            };
            let plane = run(&|p| span_plane_scalar(&mut p[..len], &idx, &u));
            let even = run(&|p| span_plane_even_scalar(&mut p[..n], &idx, &u));
            let pairs = run(&|p| span_interleaved_scalar(&mut p[..2 * n], &idx, &u, &v));
            assert_eq!(run(&|p| span_plane(p, &idx, &u)), plane, "plane, {len}");
            assert_eq!(run(&|p| span_plane_even(p, &idx, &u)), even, "even, {len}");
            let both = run(&|p| span_interleaved(p, &idx, &u, &v));
            assert_eq!(both, pairs, "interleaved, {len}");
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    let avx2 = run(&|p| unsafe { avx2::span_plane(&mut p[..len], &idx, &u) });
                    assert_eq!(avx2, plane, "AVX2 plane, {len}");
                }
                if vbmi::available() {
                    // SAFETY (all three): the CPU has the features `available` checks.
                    let got = run(&|p| {
                        let done = unsafe { avx512::span_plane::<1>(&mut p[..len], &idx, &u) };
                        span_plane_scalar(&mut p[done..len], &idx[done..], &u);
                    });
                    assert_eq!(got, plane, "AVX-512 plane, {len}");
                    let got = run(&|p| {
                        let done = unsafe { avx512::span_plane::<2>(&mut p[..n], &idx, &u) };
                        span_plane_even_scalar(&mut p[done..n], &idx[2 * done..], &u);
                    });
                    assert_eq!(got, even, "AVX-512 even, {len}");
                    let got = run(&|p| {
                        let done =
                            unsafe { avx512::span_interleaved(&mut p[..2 * n], &idx, &u, &v) };
                        span_interleaved_scalar(&mut p[2 * done..2 * n], &idx[2 * done..], &u, &v);
                    });
                    assert_eq!(got, pairs, "AVX-512 interleaved, {len}");
                }
            }
        }
        // The scalar loops read the even indices.
        let idx = [3u16, 200, 5, 200];
        let mut a = [9u8, 9];
        let mut b = [9u8, 9];
        span_plane_even_scalar(&mut a, &idx, &u);
        span_plane_scalar(&mut b, &[3, 5], &u);
        assert_eq!(a, b);
    }

    #[test]
    fn blend_is_exact_division() {
        for a in 0..=255u16 {
            for (src, dst) in [(0u16, 255u8), (255, 0), (255, 255), (17, 200), (0, 0)] {
                let pre = src * a + 128;
                let exact = (f64::from(src * a + u16::from(dst) * (255 - a)) / 255.0).round();
                assert_eq!(blend(pre, dst, 255 - a), exact as u8, "{src} {dst} {a}");
            }
        }
    }
}
