//! The example proxy's memory allocator on Linux: jemalloc, set up so that resident memory
//! returns to its idle level once a burst of clients has gone (`bench/load-1000.sh`,
//! BENCHMARKS.md). Other targets keep the system allocator.
//!
//! With jemalloc's defaults, 1,000 clients left 15–25 MiB resident behind; with glibc's malloc,
//! 61–80 MiB. jemalloc's own statistics (`malloc_stats_print`) after such a burst show three
//! causes, each handled here:
//!
//! - **Freed pages are purged lazily** (10 s decay). [`MALLOC_CONF`] asks for a 1 s decay and a
//!   background thread that purges while the proxy is idle.
//! - **Extent metadata is never freed.** hyper's per-connection read and write buffers are 8 KiB
//!   allocations, and by default each gets a 2-page slab of its own (10 KiB ones share a 5-page
//!   slab in twos); jemalloc keeps the bookkeeping of its largest-ever extent count for the life
//!   of the process (+1.2 MB after 1,000 clients). `slab_sizes` gives both size classes 32-page
//!   slabs (128 KiB with 4 KiB pages: 16 and 12 objects).
//! - **Thread caches pin pages.** Each thread keeps recently freed objects for reuse; after a
//!   burst they come from all over the heap and keep otherwise empty slabs resident. Objects
//!   over 4 KiB skip the cache (`tcache_max`: they are allocated per connection, not per
//!   request), and [`release_thread_cache`], run by each runtime worker as it parks, hands the
//!   rest back at most once a second.
//!
//! `background_thread`, `dirty_decay_ms`, `muzzy_decay_ms` and `tcache_max` are documented in
//! jemalloc(3) (`opt.*`); `slab_sizes` is an undocumented, experimental option of jemalloc 5.3
//! (`src/jemalloc.c`, `src/sc.c`). `_RJEM_MALLOC_CONF` in the environment overrides any of them,
//! and `_RJEM_MALLOC_CONF=confirm_conf:true` prints what jemalloc applied (the test
//! `the_allocator_settings_reach_jemalloc` checks that these settings reach it).

use std::cell::Cell;
use std::ffi::c_char;
use std::ptr;
use std::time::{Duration, Instant};

/// The global allocator of the example proxy.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options, read before `main` through the `malloc_conf` symbol
/// (`_rjem_malloc_conf` with tikv-jemalloc-sys's symbol prefix), which jemalloc declares weak so
/// that a program can define it: a NUL-terminated C string; see the module docs for each option.
/// Same type as tikv-jemalloc-sys's declaration (`Option<&c_char>`: one nullable pointer).
#[export_name = "_rjem_malloc_conf"]
#[used]
static MALLOC_CONF: Option<&c_char> = Some(
    // SAFETY: a C string literal is NUL-terminated and lives for the whole program.
    unsafe {
        &*c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:4096,slab_sizes:8192-10240:32"
            .as_ptr()
    },
);

/// The shortest time between two flushes of one thread's cache.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// What one thread knows about its cache.
#[derive(Clone, Copy)]
struct CacheState {
    /// When this thread last flushed its cache.
    last_flush: Option<Instant>,
    /// Until when a wake-up this thread asked for is still to come.
    wake_pending_until: Option<Instant>,
}

thread_local! {
    static STATE: Cell<CacheState> =
        const { Cell::new(CacheState { last_flush: None, wake_pending_until: None }) };
}

/// Hands the objects cached by the calling thread back to jemalloc's arenas (mallctl
/// `thread.tcache.flush`) at most once per [`FLUSH_INTERVAL`], and asks for a later wake-up
/// when it skips a flush.
///
/// Meant for tokio's `on_thread_park` hook (the runtime needs its time driver): a worker that
/// parks has no task ready. Flushing on every park cost 38 % more CPU per request with one
/// client at a time (that client's objects went back and forth between cache and arena on every
/// request), hence the interval. But the last park after a burst often comes less than a second
/// after a flush, and what the closing connections freed in between would then stay cached,
/// pinning pages, as long as the proxy is idle. So a skipped flush spawns a task that sleeps
/// until the flush is due (at most one pending per thread); a worker that runs it parks again
/// afterwards, and that park flushes.
///
/// On tokio's current-thread runtime (`--worker-threads 1`) the task runs on the same thread,
/// so the cache is always flushed within [`FLUSH_INTERVAL`] of going idle. On the multi-thread
/// runtime tokio cannot direct a task to one worker: the task goes to the shared queue, and a
/// worker whose flush was skipped keeps its cache until its next park, which may only come
/// with the next request. Per worker, this costs one clock read per park and at most one flush
/// and one timer a second (on the multi-thread runtime the timer may also wake another worker).
pub fn release_thread_cache() {
    let now = Instant::now();
    let mut state = STATE.get();
    match state.last_flush {
        Some(at) if now.duration_since(at) < FLUSH_INTERVAL => {
            let due = at + FLUSH_INTERVAL;
            let pending = state.wake_pending_until.is_some_and(|until| until >= now);
            if !pending {
                // tokio supports spawning from `on_thread_park`: a current-thread runtime then
                // runs the task instead of sleeping. The timer is created inside the task, so
                // nothing here can panic even on a runtime without a time driver.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { tokio::time::sleep_until(due.into()).await });
                    state.wake_pending_until = Some(due);
                }
            }
        }
        _ => {
            flush_thread_cache();
            state.last_flush = Some(now);
        }
    }
    STATE.set(state);
}

/// mallctl `thread.tcache.flush` for the calling thread.
fn flush_thread_cache() {
    // SAFETY: `thread.tcache.flush` reads and writes no value (jemalloc(3): `(void) --`), so the
    // old and new pointers are null and the length 0; the name is NUL-terminated. It fails
    // (EFAULT) only when this thread has no cache (caches off, or being set up): nothing to do.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.flush".as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        )
    };
}
