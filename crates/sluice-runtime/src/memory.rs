//! Keeping freed memory in the process instead of handing it back to the
//! kernel after every job.
//!
//! A transcoder allocates and frees the same ~100 MB for every raw object
//! (the columns of one object). With glibc's defaults, large buffers are
//! mapped and unmapped per allocation and the heap top is trimmed once it is
//! free, so every object faults all of its pages back in, and each fault
//! zeroes a page: 4-7% of a transcoder's CPU time (it takes half the page
//! faults and system time away), and cache misses besides.
//! The resident size stays at the peak of one job instead, which a memory
//! limit has to allow for anyway.

/// Largest allocation glibc still serves from its heap rather than with its
/// own mapping (the most it accepts on 64-bit). Larger buffers are rare:
/// a column's text for one object is a few tens of MB at most.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20;
/// Free memory at a heap's top kept for the next job rather than returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: libc::c_int = 512 << 20;

/// Tells the allocator to keep freed memory for reuse (up to 512 MiB per
/// heap, allocations up to 32 MiB). Call once, early in `main`, in a process
/// whose jobs allocate and free the same large amounts over and over. Other
/// allocators than glibc's are left as they are.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call
    // at any time, and both values are in the ranges glibc accepts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}
