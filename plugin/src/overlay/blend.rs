// SPDX-License-Identifier: MIT OR Apache-2.0

//! Blending rows of palette indices over 8-bit pixels: a portable loop and an AVX2 kernel
//! (chosen at run time) that give the same bytes.
//!
//! Per channel, `src` over `dst` with alpha `a` is `t = src * a + 128 + dst * (255 - a)`,
//! then `(t + (t >> 8)) >> 8`. `t` is at most `255 * 255 + 128`, and `t + (t >> 8)` below
//! 65536, so the whole computation is exact in `u16` lanes.

use super::render::{Palette, PALETTE_LEN};

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

/// One plane's view of a [`Table`]: per entry the channel's premultiplied value and
/// `255 - alpha` in one dword (`pre | inv << 16`), so that the planar kernel reads a pixel's
/// entry with a single gather (gathers are slow on some CPUs, AMD Zen among them).
pub type PlaneTable = [u32; PALETTE_LEN];

/// [`CLEAR_TABLE`] seen from any plane.
pub const CLEAR_PLANE: PlaneTable = [128 | 255 << 16; PALETTE_LEN];

/// The [`PlaneTable`] of channel `C` of `table`.
pub fn plane_table<const C: usize>(table: &Table) -> PlaneTable {
    assert!(C < 3);
    std::array::from_fn(|i| u32::from(table[i][C]) | u32::from(table[i][3]) << 16)
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
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        unsafe { avx2::span_plane(row, idx, plane) };
        return;
    }
    span_plane_scalar(row, idx, plane);
}

/// The portable [`span_plane`].
pub fn span_plane_scalar(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
    for (d, &i) in row.iter_mut().zip(idx) {
        let e = plane[usize::from(i).min(PALETTE_LEN - 1)];
        *d = blend(e as u16, *d, (e >> 16) as u16);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{span_plane_scalar, span_scalar, PlaneTable, Table, PALETTE_LEN};

    /// [`super::span_plane`], eight pixels at a time in `u32` lanes, one gather of
    /// `pre | inv << 16` per eight pixels.
    #[target_feature(enable = "avx2")]
    pub(super) fn span_plane(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
        let n = row.len().min(idx.len());
        let base = plane.as_ptr().cast::<i32>();
        let low = _mm256_set1_epi32(0xffff);
        let mut k = 0;
        while k + 8 <= n {
            // SAFETY: indices and bytes `k..k + 8` lie in `idx` and `row`.
            let (i, d) = unsafe {
                (
                    _mm_loadu_si128(idx.as_ptr().add(k).cast()),
                    _mm_loadl_epi64(row.as_ptr().add(k).cast()),
                )
            };
            let i = _mm_min_epu16(i, _mm_set1_epi16((PALETTE_LEN - 1) as i16));
            let i = _mm256_cvtepu16_epi32(i);
            // SAFETY: every index is below PALETTE_LEN, the table's length in dwords.
            let e = unsafe { _mm256_i32gather_epi32::<4>(base, i) };
            let pre = _mm256_and_si256(e, low);
            let inv = _mm256_srli_epi32::<16>(e);
            let t = _mm256_add_epi32(pre, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(d), inv));
            let r = _mm256_srli_epi32::<8>(_mm256_add_epi32(t, _mm256_srli_epi32::<8>(t)));
            let words =
                _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r));
            // SAFETY: bytes `k..k + 8` lie in `row`.
            unsafe {
                _mm_storel_epi64(
                    row.as_mut_ptr().add(k).cast(),
                    _mm_packus_epi16(words, words),
                )
            };
            k += 8;
        }
        span_plane_scalar(&mut row[k..], &idx[k..], plane);
    }

    /// [`super::span`], eight pixels at a time: the pixels widened to `u16` lanes
    /// `[c0, c1, c2, x]`, their table entries gathered as 64-bit words, the blend in
    /// `u16` lanes, the fourth byte of each pixel put back unchanged.
    #[target_feature(enable = "avx2")]
    pub(super) fn span<const P: usize>(row: &mut [u8], idx: &[u16], table: &Table) {
        // A block of 8 pixels reads 32 bytes: with 3-byte pixels, 8 past the block.
        let read = 32;
        let mut k = 0;
        while k + 8 <= idx.len() && k * P + read <= row.len() {
            // SAFETY: bytes `k * P..k * P + 32` lie in `row`, indices `k..k + 8` in `idx`.
            unsafe { block::<P>(row.as_mut_ptr().add(k * P), idx.as_ptr().add(k), table) };
            k += 8;
        }
        span_scalar::<P>(&mut row[k * P..], &idx[k..], table);
    }

    /// Blends the eight pixels at `px` with the entries of `idx[..8]`.
    ///
    /// # Safety
    /// `px` must be valid for reading and writing 32 bytes, `idx` for reading 8 indices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block<const P: usize>(px: *mut u8, idx: *const u16, table: &Table) {
        // SAFETY: 32 bytes at `px` (caller's contract).
        let raw = unsafe { load::<P>(px) };
        // SAFETY: 8 indices at `idx` (caller's contract).
        let (lo_entries, hi_entries) = unsafe { entries(idx, table) };
        let zero = _mm256_setzero_si256();
        // Pixels 0, 1 | 4, 5 and 2, 3 | 6, 7 (unpacking works within 128-bit halves).
        let lo = mix(_mm256_unpacklo_epi8(raw, zero), lo_entries);
        let hi = mix(_mm256_unpackhi_epi8(raw, zero), hi_entries);
        // Back in pixel order 0..4 | 4..8; each result is at most 255.
        let blended = _mm256_packus_epi16(lo, hi);
        // SAFETY: 32 bytes at `px` (caller's contract).
        unsafe { store::<P>(px, blended, raw) };
    }

    /// Eight pixels as 4-byte `[c0, c1, c2, x]` groups, pixels 0..4 in the low half.
    ///
    /// # Safety
    /// `px` must be valid for reading 32 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load<const P: usize>(px: *const u8) -> __m256i {
        if P == 4 {
            // SAFETY: 32 bytes at `px`.
            return unsafe { _mm256_loadu_si256(px.cast()) };
        }
        // SAFETY: 32 bytes at `px`: 16 from `px` and 16 from `px + 12`.
        let (lo, hi) = unsafe {
            (
                _mm_loadu_si128(px.cast()),
                _mm_loadu_si128(px.add(12).cast()),
            )
        };
        let spread = _mm256_setr_epi8(
            0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, //
            0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,
        );
        _mm256_shuffle_epi8(_mm256_set_m128i(hi, lo), spread)
    }

    /// Stores eight pixels given as in [`load`], with the fourth bytes of `raw` (the
    /// pixels as loaded) for 4-byte pixels. Writes `8 * P` bytes only, so that the next
    /// block's loads do not wait on these stores.
    ///
    /// # Safety
    /// `px` must be valid for writing `8 * P` bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store<const P: usize>(px: *mut u8, v: __m256i, raw: __m256i) {
        if P == 4 {
            let fourth = _mm256_set1_epi32(0xff00_0000_u32 as i32);
            let v = _mm256_blendv_epi8(v, raw, fourth);
            // SAFETY: 32 bytes at `px`.
            unsafe { _mm256_storeu_si256(px.cast(), v) };
            return;
        }
        let pack = _mm256_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, //
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
        );
        // 12 bytes per half, joined into the low 24 bytes.
        let join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
        let v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), join);
        // SAFETY: 24 bytes at `px`.
        unsafe {
            _mm_storeu_si128(px.cast(), _mm256_castsi256_si128(v));
            _mm_storel_epi64(px.add(16).cast(), _mm256_extracti128_si256::<1>(v));
        }
    }

    /// The table entries of `idx[..8]` (as `u16` lanes `[pre0, pre1, pre2, inv]`), for
    /// pixels 0, 1 | 4, 5 and 2, 3 | 6, 7.
    ///
    /// # Safety
    /// `idx` must be valid for reading 8 indices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn entries(idx: *const u16, table: &Table) -> (__m256i, __m256i) {
        // SAFETY: 8 indices at `idx`.
        let i = unsafe { _mm_loadu_si128(idx.cast()) };
        // Clamped like `super::entry`, so every gather stays inside the table.
        let i = _mm_min_epu16(i, _mm_set1_epi16((PALETTE_LEN - 1) as i16));
        let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        let i = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(i), order);
        let base = table.as_ptr().cast::<i64>();
        // SAFETY: every index is below PALETTE_LEN and an entry is 8 bytes.
        unsafe {
            (
                _mm256_i32gather_epi64::<8>(base, _mm256_castsi256_si128(i)),
                _mm256_i32gather_epi64::<8>(base, _mm256_extracti128_si256::<1>(i)),
            )
        }
    }

    /// `(t + (t >> 8)) >> 8` with `t = pre + px * inv`, per `u16` lane of four pixels;
    /// the fourth lane of each pixel is meaningless.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mix(px: __m256i, entries: __m256i) -> __m256i {
        const INV: i32 = 0b11_11_11_11;
        let inv = _mm256_shufflehi_epi16::<INV>(_mm256_shufflelo_epi16::<INV>(entries));
        let t = _mm256_add_epi16(entries, _mm256_mullo_epi16(px, inv));
        _mm256_srli_epi16::<8>(_mm256_add_epi16(t, _mm256_srli_epi16::<8>(t)))
    }
}

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
