// SPDX-License-Identifier: MIT OR Apache-2.0

//! The AVX2 kernels: palette entries fetched with gathers.

use std::arch::x86_64::*;

use super::{span_plane_scalar, span_scalar, PlaneTable, Table, PALETTE_LEN};

/// [`super::span_plane`], eight pixels at a time in `u32` lanes, one gather of
/// `pre | inv << 16` per eight pixels.
#[target_feature(enable = "avx2")]
pub(super) fn span_plane(row: &mut [u8], idx: &[u16], plane: &PlaneTable) {
    let n = row.len().min(idx.len());
    let base = plane.dwords.as_ptr().cast::<i32>();
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
        let words = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r));
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
