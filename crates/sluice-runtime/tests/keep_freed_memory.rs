//! `keep_freed_memory` in a process of its own: allocator settings are
//! process-wide.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Page faults this thread has taken so far.
fn minor_faults() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    usage.ru_minflt
}

/// A job's columns: 64 buffers of 1 MiB, written to, then freed.
fn job() {
    let columns: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 20]).collect();
    assert_eq!(columns.iter().map(Vec::len).sum::<usize>(), 64 << 20);
}

#[test]
fn a_second_job_reuses_the_first_jobs_pages() {
    sluice_runtime::keep_freed_memory();
    let first = minor_faults();
    job();
    let second = minor_faults();
    job();
    let after = minor_faults();
    let (first_job, second_job) = (second - first, after - second);
    // 64 MiB is 16,384 pages: the first job faults them in, the second
    // finds them still mapped.
    assert!(first_job > 10_000, "first job took {first_job} faults");
    assert!(second_job < 1_000, "second job took {second_job} faults");
}
