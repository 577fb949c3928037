//! The system libcrypto's SHA-384, loaded with `dlopen` on first use.
//!
//! Loading at run time instead of linking keeps `cvm-measure` buildable and runnable without
//! OpenSSL's headers or library (it then uses `sha2`), and keeps processes that never hash a
//! long stream (`cvm-measure snp`) from paying ~1 ms to map and relocate libcrypto.
//!
//! The interface is OpenSSL's low-level `SHA384_Init`/`SHA384_Update`/`SHA384_Final`
//! (openssl/sha.h; deprecated in 3.0 but exported by 1.1 and every 3.x), on a `SHA512_CTX`
//! that this module owns as plain memory. A loaded library is used only after it hashed a test
//! vector correctly.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

/// Room for a `SHA512_CTX`: `u64 h[8], Nl, Nh`, a 128-byte block, `u32 num, md_len` = 216
/// bytes on LP64 platforms; 256 leaves a margin. It holds no pointers, so copying it clones
/// the hash state (as OpenSSL's own `SHA512_CTX` copies do).
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Sha512Ctx([u64; 32]);

type InitFn = unsafe extern "C" fn(*mut Sha512Ctx) -> c_int;
type UpdateFn = unsafe extern "C" fn(*mut Sha512Ctx, *const c_void, usize) -> c_int;
type FinalFn = unsafe extern "C" fn(*mut u8, *mut Sha512Ctx) -> c_int;

struct Functions {
    init: InitFn,
    update: UpdateFn,
    finalize: FinalFn,
}

/// Sonames tried, newest first.
const SONAMES: [&str; 2] = ["libcrypto.so.3", "libcrypto.so.1.1"];

fn functions() -> Option<&'static Functions> {
    static F: OnceLock<Option<&'static Functions>> = OnceLock::new();
    *F.get_or_init(|| {
        if std::env::var_os("CVM_SHA384").is_some_and(|v| v == "sha2") {
            return None;
        }
        let f: &'static Functions = Box::leak(Box::new(SONAMES.iter().find_map(|n| load(n))?));
        self_test(f).then_some(f)
    })
}

#[allow(unsafe_code)]
fn load(soname: &str) -> Option<Functions> {
    // SAFETY: loading a system library runs its initialisers; libcrypto's only set up CPU
    // capability flags. The library is leaked (never unloaded), so the function pointers taken
    // from it stay valid for the life of the process. The symbol types match openssl/sha.h.
    unsafe {
        let lib = libloading::Library::new(soname).ok()?;
        let f = Functions {
            init: *lib.get::<InitFn>(b"SHA384_Init\0").ok()?,
            update: *lib.get::<UpdateFn>(b"SHA384_Update\0").ok()?,
            finalize: *lib.get::<FinalFn>(b"SHA384_Final\0").ok()?,
        };
        std::mem::forget(lib);
        Some(f)
    }
}

/// FIPS 180-4 example "abc" (`cb00753f…a1e7cc7`), fed in two pieces.
fn self_test(f: &'static Functions) -> bool {
    let Some(mut c) = Context::with(f) else {
        return false;
    };
    c.update(b"a");
    c.update(b"bc");
    let want = [
        0xcb, 0x00, 0x75, 0x3f, 0x45, 0xa3, 0x5e, 0x8b, 0xb5, 0xa0, 0x3d, 0x69, 0x9a, 0xc6, 0x50,
        0x07, 0x27, 0x2c, 0x32, 0xab, 0x0e, 0xde, 0xd1, 0x63, 0x1a, 0x8b, 0x60, 0x5a, 0x43, 0xff,
        0x5b, 0xed, 0x80, 0x86, 0x07, 0x2b, 0xa1, 0xe7, 0xcc, 0x23, 0x58, 0xba, 0xec, 0xa1, 0x34,
        0xc8, 0x25, 0xa7,
    ];
    c.finish() == want
}

/// One SHA-384 computation in libcrypto.
#[derive(Clone)]
pub(super) struct Context {
    f: &'static Functions,
    ctx: Box<Sha512Ctx>,
}

impl Context {
    /// A fresh context, or `None` when libcrypto is not available.
    pub(super) fn new() -> Option<Context> {
        Context::with(functions()?)
    }

    #[allow(unsafe_code)]
    fn with(f: &'static Functions) -> Option<Context> {
        let mut ctx = Box::new(Sha512Ctx([0; 32]));
        // SAFETY: `ctx` points to writable memory larger than a SHA512_CTX, aligned for it.
        (unsafe { (f.init)(&mut *ctx) } == 1).then_some(Context { f, ctx })
    }

    #[allow(unsafe_code)]
    pub(super) fn update(&mut self, data: &[u8]) {
        // SAFETY: an initialised context we own; `data` is a live slice of `data.len()` bytes.
        let ok = unsafe { (self.f.update)(&mut *self.ctx, data.as_ptr().cast(), data.len()) };
        assert_eq!(ok, 1, "SHA384_Update failed");
    }

    #[allow(unsafe_code)]
    pub(super) fn finish(mut self) -> [u8; 48] {
        let mut out = [0u8; 48];
        // SAFETY: `out` has room for SHA384_DIGEST_LENGTH (48) bytes; the context is ours.
        let ok = unsafe { (self.f.finalize)(out.as_mut_ptr(), &mut *self.ctx) };
        assert_eq!(ok, 1, "SHA384_Final failed");
        out
    }
}
