// SPDX-License-Identifier: MIT OR Apache-2.0

//! A 256-byte table held in four AVX-512 registers and looked up 64 bytes at a time with
//! VBMI byte permutes: what the overlay's kernels use instead of gathers (slow on some
//! CPUs, AMD Zen among them).

use std::arch::x86_64::*;

/// Whether this CPU has what [`Table256`] needs (AVX512F, AVX512BW, AVX512VBMI).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vbmi")
}

/// 256 bytes in registers: `permutex2var` looks up 128 entries in two.
pub struct Table256([__m512i; 4]);

impl Table256 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub fn load(bytes: &[u8; 256]) -> Self {
        let p = bytes.as_ptr();
        // SAFETY: four times 64 bytes lie in the 256.
        Self(unsafe {
            [
                _mm512_loadu_si512(p.cast()),
                _mm512_loadu_si512(p.add(64).cast()),
                _mm512_loadu_si512(p.add(128).cast()),
                _mm512_loadu_si512(p.add(192).cast()),
            ]
        })
    }

    /// The entries at the 64 byte indices of `i`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub fn lookup(&self, i: __m512i) -> __m512i {
        let [a, b, c, d] = self.0;
        let first = _mm512_permutex2var_epi8(a, i, b);
        let second = _mm512_permutex2var_epi8(c, i, d);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(i), first, second)
    }
}
