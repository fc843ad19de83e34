//! The poll-driver fallback when io_uring is blocked, as a container's seccomp profile does.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use kelp_net::runtime::{DriverChoice, DriverKind, build_runtime, resolve_driver};

/// Installs, on the calling thread only, a seccomp filter that fails io_uring_setup(2) with
/// EPERM, like Docker's default profile.
fn block_io_uring_on_this_thread() {
    const SECCOMP_DATA_NR_OFFSET: u32 = 0;
    const SECCOMP_DATA_ARCH_OFFSET: u32 = 4;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let statement = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let load = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut program = [
        statement(load, SECCOMP_DATA_ARCH_OFFSET),
        jump(jeq, AUDIT_ARCH_X86_64, 1, 0),
        statement(ret, SECCOMP_RET_ALLOW),
        statement(load, SECCOMP_DATA_NR_OFFSET),
        jump(jeq, libc::SYS_io_uring_setup as u32, 0, 1),
        statement(ret, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        statement(ret, SECCOMP_RET_ALLOW),
    ];
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: prctl with a valid filter program that lives across the call; without TSYNC
    // the filter applies to this thread only.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let installed = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &raw const filter,
            0,
            0,
        );
        assert_eq!(installed, 0, "{}", std::io::Error::last_os_error());
    }
}

// Proves that where a seccomp profile blocks io_uring, Kelp names the cause and the fix,
// `Auto` falls back to the poll driver which really runs, and forcing io_uring is a clear error.
#[test]
fn seccomp_blocked_io_uring_falls_back_to_poll() {
    std::thread::spawn(|| {
        block_io_uring_on_this_thread();
        let reason = kelp_net::runtime::io_uring_unavailable_reason()
            .expect("io_uring must look unavailable under the filter");
        // Where the sysctl also disables io_uring, that is the reason named instead.
        let named = reason.contains("seccomp") || reason.contains("kernel.io_uring_disabled");
        assert!(named, "{reason}");
        assert_eq!(
            resolve_driver(DriverChoice::Auto).unwrap(),
            DriverKind::Poll
        );
        let forced = resolve_driver(DriverChoice::IoUring).unwrap_err();
        assert!(
            forced
                .to_string()
                .contains("io_uring requested but unavailable"),
            "{forced}"
        );
        let runtime = build_runtime(DriverKind::Poll).unwrap();
        assert!(runtime.driver_type().is_polling());
        let slept = runtime.block_on(async {
            compio::time::sleep(std::time::Duration::from_millis(10)).await;
            true
        });
        assert!(slept);
    })
    .join()
    .unwrap();
}
