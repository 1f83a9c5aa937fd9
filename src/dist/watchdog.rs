//! A deadline on every exchange: a rank that hangs (a stopped process, a wedged GPU driver, a
//! lost host) leaves the others waiting in their next collective for ever, since nothing ends
//! it. [`Watchdog`] wraps a communicator; when one of its exchanges has waited longer than its
//! limit, a background thread prints which rank gave up and why, and ends this process with
//! exit code 1, which makes the MPI launcher end the job (`mpirun` stops every rank when one
//! exits with an error). It also adds up the time the exchanges took ([`ExchangeClock`]), for
//! a run's summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Communicator;
use crate::error::Result;

/// `inner` with a limit on how long any one exchange may wait.
pub struct Watchdog {
    inner: Box<dyn Communicator>,
    state: Arc<State>,
    clock: ExchangeClock,
}

/// Lifts a [`Watchdog`]'s limit for the exchanges of one call: for a wait that is expected to
/// be long (every rank waiting while rank 0 alone evaluates the model and writes its
/// checkpoint at an epoch's end).
#[derive(Clone)]
pub struct Leeway(Arc<State>);

impl Leeway {
    /// Runs `exchanges` with no limit on how long they wait.
    pub fn unlimited<T>(&self, exchanges: impl FnOnce() -> T) -> T {
        self.0.unlimited.store(true, Ordering::Relaxed);
        let out = exchanges();
        self.0.unlimited.store(false, Ordering::Relaxed);
        out
    }
}

/// The time a [`Watchdog`]'s exchanges took in all (waits for slower ranks included).
#[derive(Clone, Debug, Default)]
pub struct ExchangeClock(Arc<AtomicU64>);

impl ExchangeClock {
    /// The exchanges' time so far.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    fn add(&self, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// What the watchdog's thread reads.
struct State {
    /// When the exchange now under way began, in milliseconds after `epoch`; 0 when none is.
    waiting_since_ms: AtomicU64,
    epoch: Instant,
    /// Set when the watchdog is dropped: the thread ends.
    stopped: AtomicBool,
    /// Set while the exchange under way may wait without limit ([`Leeway`]).
    unlimited: AtomicBool,
}

impl State {
    fn now_ms(&self) -> u64 {
        // At least 1: 0 means no exchange.
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }
}

impl Watchdog {
    /// Wraps `inner`: an exchange that waits more than `limit` ends this process (exit code 1)
    /// after printing `error: rank R of N: ...`.
    pub fn new(inner: Box<dyn Communicator>, limit: Duration) -> Result<Self> {
        let state = Arc::new(State {
            waiting_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            stopped: AtomicBool::new(false),
            unlimited: AtomicBool::new(false),
        });
        let (rank, size) = (inner.rank(), inner.size());
        let watched = state.clone();
        let tick = (limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        std::thread::Builder::new()
            .name("hetconv-watchdog".into())
            .spawn(move || {
                while !watched.stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    let since = watched.waiting_since_ms.load(Ordering::Relaxed);
                    let waited = Duration::from_millis(watched.now_ms().saturating_sub(since));
                    let unlimited = watched.unlimited.load(Ordering::Relaxed);
                    if since != 0 && waited > limit && !unlimited {
                        eprintln!(
                            "error: rank {rank} of {size}: an exchange waited {:.0} s for the other ranks (the limit is {:.0} s: --exchange-timeout): one of them hangs or is far behind; ending the job",
                            waited.as_secs_f64(),
                            limit.as_secs_f64()
                        );
                        std::process::exit(1);
                    }
                }
            })
            .map_err(|e| {
                crate::error::Error::InvalidArgument(format!(
                    "cannot start the exchange watchdog's thread: {e}"
                ))
            })?;
        Ok(Self {
            inner,
            state,
            clock: ExchangeClock::default(),
        })
    }

    /// The time this communicator's exchanges take, added up as they run.
    pub fn clock(&self) -> ExchangeClock {
        self.clock.clone()
    }

    /// A handle that lifts the limit for chosen exchanges.
    pub fn leeway(&self) -> Leeway {
        Leeway(self.state.clone())
    }

    fn guarded<T>(&self, exchange: impl FnOnce() -> T) -> T {
        let state = &self.state;
        let start = Instant::now();
        state
            .waiting_since_ms
            .store(state.now_ms(), Ordering::Relaxed);
        let out = exchange();
        state.waiting_since_ms.store(0, Ordering::Relaxed);
        self.clock.add(start.elapsed());
        out
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Relaxed);
    }
}

impl Communicator for Watchdog {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        self.guarded(|| self.inner.all_reduce_sum(values))
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        self.guarded(|| self.inner.broadcast(values, root))
    }

    fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }
}
