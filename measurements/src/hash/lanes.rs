//! SHA-384 of many equal-length messages at once ("multi-buffer"): the SNP firmware pages.
//!
//! One SHA-512 stream is a chain of dependent rounds, so a single message cannot use wide
//! vector registers well. Independent messages can: lane `l` of every vector holds message
//! `l`'s state, and each round runs for 4 (AVX2) or 8 (AVX-512) messages with the same
//! instructions. The round function is written once over `[u64; N]` lanes (FIPS 180-4 §6.4.2,
//! with SHA-384's initial value, §5.3.4) and compiled per instruction set; LLVM turns the
//! lane loops into vector code. Which one runs is decided at run time from the CPU's
//! features, with a per-message fallback to [`super::Sha384`].

use super::Sha384;
use sha2::Digest;

/// FIPS 180-4 §4.2.3: the 80 SHA-384/512 round constants.
const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// FIPS 180-4 §5.3.4: SHA-384's initial hash value.
const H0: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];

const BLOCK: usize = 128;

/// Instruction sets the lanes are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// 8 lanes in 512-bit registers (needs AVX-512F and VL: `vprolq`, `vpternlogq`).
    Avx512,
    /// 4 lanes in 256-bit registers.
    Avx2,
    /// One message at a time with [`Sha384`].
    Scalar,
}

impl Level {
    /// The widest level this CPU runs.
    fn detect() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vl") {
                return Level::Avx512;
            }
            if has!("avx2") {
                return Level::Avx2;
            }
        }
        Level::Scalar
    }
}

/// SHA-384 of each `len`-byte message of `messages` (`messages.len()` a multiple of `len`),
/// into `out` (one digest per message).
pub fn sha384_each(messages: &[u8], len: usize, out: &mut [[u8; 48]]) {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    sha384_each_at(*LEVEL.get_or_init(Level::detect), messages, len, out)
}

/// [`sha384_each`] at `level`, which the CPU must support ([`Level::detect`] or narrower).
fn sha384_each_at(level: Level, messages: &[u8], len: usize, out: &mut [[u8; 48]]) {
    assert!(
        len > 0 && messages.len() == len * out.len(),
        "messages and digests disagree"
    );
    let lanes = match level {
        Level::Avx512 => 8,
        Level::Avx2 => 4,
        Level::Scalar => return scalar(messages, len, out),
    };
    let done = out.len() / lanes * lanes;
    let groups = messages[..done * len].chunks_exact(lanes * len);
    for (m, o) in groups.zip(out.chunks_exact_mut(lanes)) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these functions only require that the CPU has the features they are compiled
        // for; `level` says it does (callers pass `Level::detect()` or a narrower level).
        #[allow(unsafe_code)]
        unsafe {
            match level {
                Level::Avx512 => lanes_avx512(m, len, o.try_into().expect("8 digests")),
                _ => lanes_avx2(m, len, o.try_into().expect("4 digests")),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("{level:?} is only detected on x86_64 ({m:?}, {o:?})");
    }
    scalar(&messages[done * len..], len, &mut out[done..])
}

fn scalar(messages: &[u8], len: usize, out: &mut [[u8; 48]]) {
    for (m, o) in messages.chunks_exact(len).zip(out) {
        *o = Sha384::digest(m).into();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
fn lanes_avx512(messages: &[u8], len: usize, out: &mut [[u8; 48]; 8]) {
    lanes::<8>(messages, len, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lanes_avx2(messages: &[u8], len: usize, out: &mut [[u8; 48]; 4]) {
    lanes::<4>(messages, len, out)
}

/// SHA-384 of `N` consecutive `len`-byte messages, side by side.
#[inline(always)]
fn lanes<const N: usize>(messages: &[u8], len: usize, out: &mut [[u8; 48]; N]) {
    let mut state = [[0u64; N]; 8];
    for (s, h) in state.iter_mut().zip(H0) {
        *s = [h; N];
    }
    let msg = |l: usize| &messages[l * len..(l + 1) * len];
    let full = len / BLOCK;
    let mut w = [[0u64; N]; 16];
    for b in 0..full {
        for (t, wt) in w.iter_mut().enumerate() {
            for (l, x) in wt.iter_mut().enumerate() {
                let at = b * BLOCK + 8 * t;
                *x = u64::from_be_bytes(msg(l)[at..at + 8].try_into().expect("8 bytes"));
            }
        }
        compress(&mut state, &w);
    }
    // Padding (§5.1.2): the tail, 0x80, zeros, the length in bits as a 128-bit big-endian
    // number; one block, or two when the tail leaves fewer than 17 bytes.
    let tail = len - full * BLOCK;
    let blocks = if tail < BLOCK - 16 { 1 } else { 2 };
    let mut pad = [[0u8; 2 * BLOCK]; N];
    for (l, p) in pad.iter_mut().enumerate() {
        p[..tail].copy_from_slice(&msg(l)[full * BLOCK..]);
        p[tail] = 0x80;
        p[blocks * BLOCK - 16..blocks * BLOCK].copy_from_slice(&((len as u128) * 8).to_be_bytes());
    }
    for b in 0..blocks {
        for (t, wt) in w.iter_mut().enumerate() {
            for (l, x) in wt.iter_mut().enumerate() {
                let at = b * BLOCK + 8 * t;
                *x = u64::from_be_bytes(pad[l][at..at + 8].try_into().expect("8 bytes"));
            }
        }
        compress(&mut state, &w);
    }
    for (l, o) in out.iter_mut().enumerate() {
        for (i, chunk) in o.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&state[i][l].to_be_bytes());
        }
    }
}

/// One SHA-512 compression (§6.4.2) of `N` lanes: `w` holds each lane's 16 message words.
// Lane loops index several arrays in step: the form LLVM vectorizes.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn compress<const N: usize>(state: &mut [[u64; N]; 8], block: &[[u64; N]; 16]) {
    let mut w = [[0u64; N]; 80];
    w[..16].copy_from_slice(block);
    for t in 16..80 {
        for l in 0..N {
            let (w2, w15) = (w[t - 2][l], w[t - 15][l]);
            let s1 = w2.rotate_right(19) ^ w2.rotate_right(61) ^ (w2 >> 6);
            let s0 = w15.rotate_right(1) ^ w15.rotate_right(8) ^ (w15 >> 7);
            w[t][l] = s1
                .wrapping_add(w[t - 7][l])
                .wrapping_add(s0)
                .wrapping_add(w[t - 16][l]);
        }
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..80 {
        let mut t1 = [0u64; N];
        let mut t2 = [0u64; N];
        for l in 0..N {
            let s1 = e[l].rotate_right(14) ^ e[l].rotate_right(18) ^ e[l].rotate_right(41);
            let ch = (e[l] & f[l]) ^ (!e[l] & g[l]);
            t1[l] = h[l]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[t])
                .wrapping_add(w[t][l]);
            let s0 = a[l].rotate_right(28) ^ a[l].rotate_right(34) ^ a[l].rotate_right(39);
            let maj = (a[l] & b[l]) ^ (a[l] & c[l]) ^ (b[l] & c[l]);
            t2[l] = s0.wrapping_add(maj);
        }
        (h, g, f) = (g, f, e);
        for l in 0..N {
            e[l] = d[l].wrapping_add(t1[l]);
        }
        (d, c, b) = (c, b, a);
        for l in 0..N {
            a[l] = t1[l].wrapping_add(t2[l]);
        }
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        for l in 0..N {
            s[l] = s[l].wrapping_add(v[l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against `sha2` (independent): every message length around the padding boundaries and
    /// message counts that leave remainders for the scalar path, and both lane widths
    /// directly whatever the CPU picks.
    #[test]
    fn agrees_with_sha2() {
        let data: Vec<u8> = (0..40_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let detected = Level::detect();
        eprintln!("this CPU runs {detected:?}");
        let levels = match detected {
            Level::Avx512 => vec![Level::Avx512, Level::Avx2, Level::Scalar],
            Level::Avx2 => vec![Level::Avx2, Level::Scalar],
            Level::Scalar => vec![Level::Scalar],
        };
        for level in levels {
            for len in [1, 111, 112, 113, 127, 128, 129, 239, 240, 256, 1000, 4096] {
                for count in [1, 3, 4, 5, 8, 9, 17] {
                    if len * count > data.len() {
                        continue;
                    }
                    let m = &data[..len * count];
                    let mut out = vec![[0u8; 48]; count];
                    sha384_each_at(level, m, len, &mut out);
                    for (i, o) in out.iter().enumerate() {
                        let want = sha2::Sha384::digest(&m[i * len..(i + 1) * len]);
                        assert_eq!(
                            o.as_slice(),
                            want.as_slice(),
                            "{level:?} len {len} count {count} #{i}"
                        );
                    }
                }
            }
        }
        // The generic lanes as plain code too (what a non-x86 reader would check).
        let mut o8 = [[0u8; 48]; 8];
        lanes::<8>(&data[..8 * 300], 300, &mut o8);
        for (i, o) in o8.iter().enumerate() {
            assert_eq!(
                o.as_slice(),
                sha2::Sha384::digest(&data[i * 300..(i + 1) * 300]).as_slice()
            );
        }
    }
}
