//! CPU hints for the hot paths: asking for memory before it is read.

/// Asks the CPU to start loading the cache line holding `buf[at]`, if `at` is in `buf`.
/// A hint only: nothing is read, nothing can fail, and a page not mapped yet is skipped.
#[inline]
pub fn prefetch(buf: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = buf.get(at) {
        // SAFETY: a prefetch never faults; the address is inside the buffer anyway.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, at);
}
