// SPDX-License-Identifier: MIT OR Apache-2.0

//! The AVX-512 kernels (AVX512BW and VBMI): 64 bytes at a time, the palette entries looked
//! up from tables held in registers ([`Table256`]) instead of gathered. Each kernel
//! blends whole blocks of 64 and returns how far it got; the caller finishes the row.

use std::arch::x86_64::*;

use super::super::vbmi::Table256;
use super::{PlaneTable, PALETTE_LEN};

/// A byte per palette entry, in registers: the heat map's 256 in a [`Table256`], the two
/// past it broadcast.
struct Bytes {
    heat: Table256,
    past: [__m512i; 2],
}

impl Bytes {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn new(bytes: &[u8; PALETTE_LEN]) -> Self {
        let (heat, past) = bytes.split_first_chunk::<256>().expect("256 heat entries");
        Self {
            heat: Table256::load(heat),
            past: [
                _mm512_set1_epi8(past[0] as i8),
                _mm512_set1_epi8(past[1] as i8),
            ],
        }
    }

    /// The entries of 64 indices given as their low bytes `lo`, `past` marking those of
    /// 256 and 257 (clamped before, so the low bit tells them apart).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn lookup(&self, lo: __m512i, past: __mmask64) -> __m512i {
        let odd = _mm512_test_epi8_mask(lo, _mm512_set1_epi8(1));
        let tail = _mm512_mask_blend_epi8(odd, self.past[0], self.past[1]);
        _mm512_mask_blend_epi8(past, self.heat.lookup(lo), tail)
    }
}

/// Byte selectors for `permutex2var` over two vectors of 32 indices (128 bytes): byte `j`
/// picks the low byte of index `step * (j / repeat)`; add one for the high byte.
const fn selector(step: usize, repeat: usize) -> [u8; 64] {
    let mut s = [0; 64];
    let mut j = 0;
    while j < 64 {
        s[j] = ((2 * step * (j / repeat)) % 128) as u8;
        j += 1;
    }
    s
}

/// Every index, every other index, and every other index twice (for U, V pairs).
const ALL: [u8; 64] = selector(1, 1);
const EVEN: [u8; 64] = selector(2, 1);
const EVEN_TWICE: [u8; 64] = selector(2, 2);

/// Selectors of the low and the high bytes.
struct Picker {
    low: __m512i,
    high: __m512i,
}

impl Picker {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn new(selector: &[u8; 64]) -> Self {
        // SAFETY: 64 bytes.
        let low = unsafe { _mm512_loadu_si512(selector.as_ptr().cast()) };
        Self {
            low,
            high: _mm512_add_epi8(low, _mm512_set1_epi8(1)),
        }
    }

    /// The picked low bytes of 64 indices from the 32 at `idx` and the 32 after, clamped
    /// to the palette, and the mask of those past the heat map (high byte 1).
    ///
    /// # Safety
    /// `idx` must be valid for reading 64 indices.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn pick(&self, idx: *const u16) -> (__m512i, __mmask64) {
        let last = _mm512_set1_epi16((PALETTE_LEN - 1) as i16);
        // SAFETY: 64 indices at `idx` (caller's contract).
        let (a, b) = unsafe {
            (
                _mm512_loadu_si512(idx.cast()),
                _mm512_loadu_si512(idx.add(32).cast()),
            )
        };
        let (a, b) = (_mm512_min_epu16(a, last), _mm512_min_epu16(b, last));
        let high = _mm512_permutex2var_epi8(a, self.high, b);
        (
            _mm512_permutex2var_epi8(a, self.low, b),
            _mm512_test_epi8_mask(high, high),
        )
    }
}

/// [`super::span_plane`] (`S` = 1) and [`super::span_plane_even`] (`S` = 2): blends
/// `row[k]` with `idx[S * k]` for whole blocks of 64; returns the bytes blended.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) fn span_plane<const S: usize>(row: &mut [u8], idx: &[u16], plane: &PlaneTable) -> usize {
    assert!(S == 1 || S == 2);
    let (colour, alpha) = (Bytes::new(&plane.colour), Bytes::new(&plane.alpha));
    let picker = Picker::new(if S == 1 { &ALL } else { &EVEN });
    let blocks = (row.len() / 64).min(idx.len() / (64 * S));
    for b in 0..blocks {
        let at = idx[64 * S * b..].as_ptr();
        // SAFETY: indices `64 * S * b..64 * S * (b + 1)` lie in `idx`.
        let (lo, past) = unsafe {
            if S == 1 {
                picker.pick(at)
            } else {
                // Two picks of 32 (the low halves), joined.
                let (lo0, past0) = picker.pick(at);
                let (lo1, past1) = picker.pick(at.add(64));
                (
                    _mm512_inserti64x4::<1>(lo0, _mm512_castsi512_si256(lo1)),
                    (past0 & 0xffff_ffff) | past1 << 32,
                )
            }
        };
        let (c, a) = (colour.lookup(lo, past), alpha.lookup(lo, past));
        // SAFETY: bytes `64 * b..64 * (b + 1)` lie in `row`.
        unsafe { blend64(row[64 * b..].as_mut_ptr(), c, a) };
    }
    64 * blocks
}

/// [`super::span_interleaved`]: blends the U, V pair `k` with `idx[2 * k]` for whole
/// blocks of 32 pairs; returns the pairs blended.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) fn span_interleaved(
    row: &mut [u8],
    idx: &[u16],
    u: &PlaneTable,
    v: &PlaneTable,
) -> usize {
    let (u_colour, u_alpha) = (Bytes::new(&u.colour), Bytes::new(&u.alpha));
    let (v_colour, v_alpha) = (Bytes::new(&v.colour), Bytes::new(&v.alpha));
    let picker = Picker::new(&EVEN_TWICE);
    // V in the odd bytes.
    let odd = 0xaaaa_aaaa_aaaa_aaaa;
    let blocks = (row.len() / 64).min(idx.len() / 64);
    for b in 0..blocks {
        // SAFETY: indices `64 * b..64 * (b + 1)` lie in `idx`.
        let (lo, past) = unsafe { picker.pick(idx[64 * b..].as_ptr()) };
        let c = _mm512_mask_blend_epi8(odd, u_colour.lookup(lo, past), v_colour.lookup(lo, past));
        let a = _mm512_mask_blend_epi8(odd, u_alpha.lookup(lo, past), v_alpha.lookup(lo, past));
        // SAFETY: bytes `64 * b..64 * (b + 1)` lie in `row`.
        unsafe { blend64(row[64 * b..].as_mut_ptr(), c, a) };
    }
    32 * blocks
}

/// Blends the 64 bytes at `px` with colours `c` and alphas `a`.
///
/// # Safety
/// `px` must be valid for reading and writing 64 bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn blend64(px: *mut u8, c: __m512i, a: __m512i) {
    // SAFETY: 64 bytes at `px` (caller's contract).
    let d = unsafe { _mm512_loadu_si512(px.cast()) };
    let zero = _mm512_setzero_si512();
    // Unpacking works within 128-bit lanes; packing undoes it.
    let lo = mix(
        _mm512_unpacklo_epi8(d, zero),
        _mm512_unpacklo_epi8(c, zero),
        _mm512_unpacklo_epi8(a, zero),
    );
    let hi = mix(
        _mm512_unpackhi_epi8(d, zero),
        _mm512_unpackhi_epi8(c, zero),
        _mm512_unpackhi_epi8(a, zero),
    );
    // SAFETY: 64 bytes at `px`.
    unsafe { _mm512_storeu_si512(px.cast(), _mm512_packus_epi16(lo, hi)) };
}

/// `src` over `dst` with alpha `a` in `u16` lanes, rounded as [`super::blend`]:
/// `t = src * a + 128 + dst * (255 - a)`, then `(t + (t >> 8)) >> 8`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn mix(dst: __m512i, src: __m512i, a: __m512i) -> __m512i {
    let inv = _mm512_sub_epi16(_mm512_set1_epi16(255), a);
    let t = _mm512_add_epi16(_mm512_mullo_epi16(src, a), _mm512_mullo_epi16(dst, inv));
    let t = _mm512_add_epi16(t, _mm512_set1_epi16(128));
    _mm512_srli_epi16::<8>(_mm512_add_epi16(t, _mm512_srli_epi16::<8>(t)))
}
