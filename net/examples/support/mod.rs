//! Helpers shared by the net examples (a directory, so cargo does not take it for an example).

/// CPU time of `clock` (`libc::CLOCK_PROCESS_CPUTIME_ID` or `CLOCK_THREAD_CPUTIME_ID`) in ns:
/// on a machine shared with other work, wall time would count the time other processes ran.
pub fn cpu_ns(clock: libc::clockid_t) -> u128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `now`.
    let result = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(result, 0);
    now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128
}
