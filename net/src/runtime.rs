//! One pinned thread per core, each with its own compio runtime (io_uring ring, or the poll
//! driver where io_uring is unavailable, with the reason logged), plus start-up checks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use compio::driver::{DriverType, ProactorBuilder};
use compio::runtime::{Runtime, RuntimeBuilder};

use crate::limits::{CORES_MAX, FD_RESERVE_COUNT, RING_ENTRIES_MAX};

/// Which completion driver a core runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    IoUring,
    Poll,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::IoUring => "io_uring",
            DriverKind::Poll => "poll",
        }
    }
}

/// The driver asked for: `Auto` takes io_uring when the kernel allows it, else poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverChoice {
    Auto,
    IoUring,
    Poll,
}

impl DriverChoice {
    /// From `KELP_DRIVER` (`auto`, `io_uring`, `poll`); `Auto` when unset.
    pub fn from_env() -> io::Result<DriverChoice> {
        match std::env::var("KELP_DRIVER") {
            Err(_) => Ok(DriverChoice::Auto),
            Ok(text) => match text.as_str() {
                "" | "auto" => Ok(DriverChoice::Auto),
                "io_uring" | "io-uring" | "uring" => Ok(DriverChoice::IoUring),
                "poll" | "polling" | "epoll" => Ok(DriverChoice::Poll),
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("KELP_DRIVER={other:?}: expected auto, io_uring or poll"),
                )),
            },
        }
    }
}

/// What `run_cores` gives each core's future.
#[derive(Clone, Copy, Debug)]
pub struct CoreContext {
    pub core_index: usize,
    pub core_count: usize,
    pub driver: DriverKind,
}

/// Settings of [`run_cores_with`].
#[derive(Clone, Copy, Debug)]
pub struct RuntimeConfig {
    pub cores: usize,
    pub driver: DriverChoice,
    /// Pin thread i to CPU i (mod the CPUs this process may use).
    pub pin_threads: bool,
}

/// CPUs this process may run on (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Start one pinned thread per core, each with its own compio runtime, run `per_core` on it,
/// join all. The driver comes from `KELP_DRIVER` (default: io_uring when available).
pub fn run_cores<F, Fut>(cores: usize, per_core: F) -> io::Result<()>
where
    F: Fn(CoreContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>>,
{
    let config = RuntimeConfig {
        cores,
        driver: DriverChoice::from_env()?,
        pin_threads: true,
    };
    run_cores_with(config, per_core)
}

/// [`run_cores`] with an explicit driver choice and pinning. Returns the first core's error.
pub fn run_cores_with<F, Fut>(config: RuntimeConfig, per_core: F) -> io::Result<()>
where
    F: Fn(CoreContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>>,
{
    if config.cores == 0 || config.cores > CORES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--cores {} out of range 1..={CORES_MAX}", config.cores),
        ));
    }
    let driver = resolve_driver(config.driver)?;
    let per_core = Arc::new(per_core);
    let cpu_ids = if config.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut threads = Vec::with_capacity(config.cores);
    for core_index in 0..config.cores {
        let per_core = per_core.clone();
        let cpu = (!cpu_ids.is_empty()).then(|| cpu_ids[core_index % cpu_ids.len()]);
        let context = CoreContext {
            core_index,
            core_count: config.cores,
            driver,
        };
        let thread = std::thread::Builder::new()
            .name(format!("kelp-core-{core_index}"))
            .spawn(move || {
                if let Some(cpu) = cpu
                    && !core_affinity::set_for_current(cpu)
                {
                    tracing::warn!("core {core_index}: could not pin to CPU {}", cpu.id);
                }
                let runtime = build_runtime(driver)?;
                runtime.block_on(per_core(context))
            })?;
        threads.push(thread);
    }
    let mut first_error = None;
    for (core_index, thread) in threads.into_iter().enumerate() {
        let result = thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other(format!("core {core_index} panicked"))));
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Picks the driver once for all cores and logs it (with the reason when it is not io_uring).
pub fn resolve_driver(choice: DriverChoice) -> io::Result<DriverKind> {
    let unavailable = io_uring_unavailable_reason();
    let driver = match (choice, unavailable) {
        (DriverChoice::Poll, _) => {
            tracing::info!("driver: poll (chosen by KELP_DRIVER=poll)");
            DriverKind::Poll
        }
        (DriverChoice::IoUring, Some(reason)) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring requested but unavailable: {reason}"),
            ));
        }
        (DriverChoice::Auto, Some(reason)) => {
            tracing::warn!("driver: poll, because io_uring is unavailable: {reason}");
            DriverKind::Poll
        }
        (_, None) => {
            tracing::info!("driver: io_uring");
            DriverKind::IoUring
        }
    };
    Ok(driver)
}

/// A compio runtime for this thread with the given driver.
///
/// io_uring rings are set up for one thread (SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN): the
/// kernel then runs completion work only when this thread waits for it, instead of
/// interrupting it. A kernel that refuses those flags gets a plain ring.
pub fn build_runtime(driver: DriverKind) -> io::Result<Runtime> {
    let tuned = driver == DriverKind::IoUring && ring_tuning_enabled();
    let runtime = match build_runtime_with(driver, tuned) {
        Err(error) if tuned => {
            tracing::warn!("io_uring ring flags refused ({error}); using a plain ring");
            build_runtime_with(driver, false)?
        }
        result => result?,
    };
    let actual = if runtime.driver_type().is_iouring() {
        DriverKind::IoUring
    } else {
        DriverKind::Poll
    };
    if actual != driver {
        tracing::warn!(
            "asked compio for {} and got {}",
            driver.name(),
            actual.name()
        );
    }
    Ok(runtime)
}

/// `KELP_RING_TUNING=off` turns the single-thread ring flags off (for A/B benchmarks).
fn ring_tuning_enabled() -> bool {
    std::env::var("KELP_RING_TUNING").map_or(true, |value| value != "off")
}

fn build_runtime_with(driver: DriverKind, tuned: bool) -> io::Result<Runtime> {
    let mut proactor = ProactorBuilder::new();
    proactor.capacity(RING_ENTRIES_MAX);
    proactor.driver_type(match driver {
        DriverKind::IoUring => DriverType::IoUring,
        DriverKind::Poll => DriverType::Poll,
    });
    if tuned {
        proactor
            .single_issuer(true)
            .defer_taskrun(true)
            .coop_taskrun(true)
            .taskrun_flag(true);
    }
    RuntimeBuilder::new().with_proactor(proactor).build()
}

/// Why io_uring cannot be used here, with how to enable it; `None` when it works.
///
/// The probe runs on a short-lived thread of its own: tearing a ring down queues kernel task
/// work on the thread that made it, which would interrupt that thread's next blocking call
/// with EINTR.
pub fn io_uring_unavailable_reason() -> Option<String> {
    std::thread::Builder::new()
        .name("kelp-uring-probe".to_string())
        .spawn(probe_io_uring)
        .map_or_else(
            |error| Some(format!("cannot start the io_uring probe thread: {error}")),
            |probe| {
                probe
                    .join()
                    .unwrap_or_else(|_| Some("io_uring probe panicked".into()))
            },
        )
}

fn probe_io_uring() -> Option<String> {
    // struct io_uring_params is 120 bytes; all zero asks for defaults.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup(2) with a valid params buffer; the returned fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: `fd` is the ring fd just created and owned here.
        unsafe { libc::close(fd as i32) };
        return None;
    }
    let error = io::Error::last_os_error();
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    Some(match (error.raw_os_error(), sysctl) {
        (Some(libc::ENOSYS), _) => format!(
            "io_uring_setup: {error}: the kernel lacks io_uring (Linux 5.6+, 6.1+ recommended) \
             or a seccomp filter hides it"
        ),
        (Some(libc::EPERM), Some(2)) => format!(
            "io_uring_setup: {error}: disabled by sysctl kernel.io_uring_disabled=2; \
             enable with `sysctl -w kernel.io_uring_disabled=0`"
        ),
        (Some(libc::EPERM), Some(1)) => format!(
            "io_uring_setup: {error}: kernel.io_uring_disabled=1 limits io_uring to the group \
             in kernel.io_uring_group; add this user to it or `sysctl -w kernel.io_uring_disabled=0`"
        ),
        (Some(libc::EPERM), _) => format!(
            "io_uring_setup: {error}: blocked by a seccomp profile (Docker's default blocks \
             io_uring; run with a profile allowing io_uring_setup/enter/register)"
        ),
        (Some(libc::ENOMEM), _) => format!(
            "io_uring_setup: {error}: RLIMIT_MEMLOCK too low for the ring; raise `ulimit -l`"
        ),
        _ => format!("io_uring_setup: {error}"),
    })
}

/// RLIMIT_NOFILE too low for the connections a process may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdLimitError {
    pub needed: u64,
    pub soft_limit: u64,
    pub hard_limit: u64,
}

impl std::fmt::Display for FdLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open-file limit {} (hard {}) is below the {} descriptors needed for the \
             connection limit; raise it with `ulimit -n {}` (or LimitNOFILE= in systemd), \
             or lower the connection limit",
            self.soft_limit, self.hard_limit, self.needed, self.needed
        )
    }
}

impl std::error::Error for FdLimitError {}

/// Checks RLIMIT_NOFILE against `connections_max` (all cores together) plus a reserve, raising
/// the soft limit up to the hard limit first when that is enough.
pub fn check_fd_limit(connections_max: usize) -> Result<(), FdLimitError> {
    let needed = connections_max as u64 + FD_RESERVE_COUNT;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(()); // Cannot know; accept() will report EMFILE if it comes to that.
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max >= needed {
        let raised = libc::rlimit {
            rlim_cur: needed,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit with a soft limit within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(());
        }
    }
    Err(FdLimitError {
        needed,
        soft_limit: limit.rlim_cur,
        hard_limit: limit.rlim_max,
    })
}

/// A shutdown signal any thread can trigger and any core can await.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    // Touched only when a waiter parks or the signal fires: never per request.
    wakers: Mutex<Vec<Waker>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.inner.wakers.lock().expect("waker list"));
        for waker in wakers {
            waker.wake();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Completes once `trigger` was called.
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        let inner = self.inner.clone();
        std::future::poll_fn(move |context| {
            if inner.triggered.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            let mut wakers = inner.wakers.lock().expect("waker list");
            if inner.triggered.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if !wakers.iter().any(|waker| waker.will_wake(context.waker())) {
                wakers.push(context.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// Result of [`select2`].
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures, left first; returns the first to complete and drops the other.
pub async fn select2<A: Future, B: Future>(left: A, right: B) -> Either<A::Output, B::Output> {
    let mut left = std::pin::pin!(left);
    let mut right = std::pin::pin!(right);
    std::future::poll_fn(|context: &mut Context<'_>| {
        if let Poll::Ready(value) = Pin::new(&mut left).poll(context) {
            return Poll::Ready(Either::Left(value));
        }
        if let Poll::Ready(value) = Pin::new(&mut right).poll(context) {
            return Poll::Ready(Either::Right(value));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    // Proves every core runs its future once with its own index, and errors are returned.
    #[test]
    fn run_cores_runs_each_core_once() {
        let seen = Arc::new(AtomicUsize::new(0));
        let seen_by_cores = seen.clone();
        let config = RuntimeConfig {
            cores: 3,
            driver: DriverChoice::Auto,
            pin_threads: false,
        };
        run_cores_with(config, move |context| {
            let seen = seen_by_cores.clone();
            async move {
                assert_eq!(context.core_count, 3);
                seen.fetch_add(1 << (context.core_index * 8), Ordering::SeqCst);
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 0x01_01_01);

        let failed = run_cores_with(config, |context| async move {
            if context.core_index == 1 {
                return Err(io::Error::other("core one failed"));
            }
            Ok(())
        });
        assert_eq!(failed.unwrap_err().to_string(), "core one failed");
    }

    // Proves both drivers can be built and report what they are (the poll driver is the
    // fallback where io_uring is blocked).
    #[test]
    fn both_drivers_build() {
        let poll = build_runtime(DriverKind::Poll).unwrap();
        assert!(poll.driver_type().is_polling());
        if io_uring_unavailable_reason().is_none() {
            let uring = build_runtime(DriverKind::IoUring).unwrap();
            assert!(uring.driver_type().is_iouring());
        }
    }

    // Proves an impossible connection limit is an actionable error naming `ulimit -n`.
    #[test]
    fn fd_limit_too_low_is_actionable() {
        let error = check_fd_limit(usize::MAX / 4).unwrap_err();
        assert!(error.to_string().contains("ulimit -n"), "{error}");
        check_fd_limit(16).unwrap();
    }

    // Proves zero cores is refused with a message instead of running nothing.
    #[test]
    fn zero_cores_refused() {
        let config = RuntimeConfig {
            cores: 0,
            driver: DriverChoice::Poll,
            pin_threads: false,
        };
        let error = run_cores_with(config, |_| async { Ok(()) }).unwrap_err();
        assert!(error.to_string().contains("--cores 0"), "{error}");
    }
}
