//! The example proxy's memory allocator: jemalloc, set up so that resident memory returns to
//! its idle level once a burst of clients has gone (`bench/load-1000.sh`, BENCHMARKS.md).
//!
//! With jemalloc's defaults, 1,000 clients left 15–25 MiB resident behind; with glibc's malloc,
//! 61–80 MiB. jemalloc's own statistics (`malloc_stats_print`) after such a burst show three
//! causes, each handled here:
//!
//! - **Freed pages are purged lazily** (10 s decay). [`MALLOC_CONF`] asks for a 1 s decay and a
//!   background thread that purges while the proxy is idle.
//! - **Extent metadata is never freed.** Every 8 KiB and 10 KiB allocation, which is what hyper's
//!   per-connection read and write buffers are, otherwise gets an extent of its own, and
//!   jemalloc keeps the bookkeeping of its largest-ever extent count for the life of the
//!   process (+1.2 MB after 1,000 clients). `slab_sizes` packs 16 of them (12 at 10 KiB) into
//!   one 128 KiB slab.
//! - **Thread caches pin pages.** Each thread keeps recently freed objects for reuse; after a
//!   burst they come from all over the heap and keep otherwise empty slabs resident. Objects
//!   over 4 KiB skip the cache (`tcache_max`: they are allocated per connection, not per
//!   request), and [`release_thread_cache`], run by each runtime worker as it parks, hands the
//!   rest back at most once a second.
//!
//! jemalloc's options are documented in `jemalloc(3)` ("TUNING", `opt.*`), and `slab_sizes` in
//! its `TUNING.md`. `_RJEM_MALLOC_CONF` in the environment still overrides any of them.

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
/// `thread.tcache.flush`) at most once per [`FLUSH_INTERVAL`], and makes sure a flush it skips
/// still happens later.
///
/// Meant for tokio's `on_thread_park` hook: a worker that parks has no task ready. Flushing on
/// every park cost 38 % more CPU per request with one client at a time (that client's objects
/// went back and forth between cache and arena on every request), hence the interval. But the
/// last park after a burst often comes less than a second after a flush, and what the closing
/// connections freed in between would then stay cached, pinning pages, as long as the proxy is
/// idle. So a skipped flush spawns a task that sleeps until the flush is due (at most one such
/// task per thread at a time): its wake-up makes the worker park once more, and that park
/// flushes. tokio's current-thread runtime runs the task on the same thread, so its cache is
/// always flushed within [`FLUSH_INTERVAL`] of going idle; on the multi-thread runtime the task
/// wakes whichever worker tokio picks, and another worker's last skipped flush may wait for its
/// next park. Under load this costs one clock read per park, and at most one flush and one
/// timer a second.
pub fn release_thread_cache() {
    let now = Instant::now();
    let mut state = STATE.get();
    match state.last_flush {
        Some(at) if now.duration_since(at) < FLUSH_INTERVAL => {
            let due = at + FLUSH_INTERVAL;
            let pending = state.wake_pending_until.is_some_and(|until| until >= now);
            if !pending {
                // Spawning from `on_thread_park` is supported: the worker runs the task
                // instead of parking (tokio's schedulers check for it).
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(tokio::time::sleep_until(due.into()));
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
    // SAFETY: `thread.tcache.flush` takes and returns nothing: jemalloc(3) calls it with null
    // old/new pointers and a zero length, as here; the name is NUL-terminated. It fails
    // (EFAULT) only when thread caches are off, which leaves nothing to flush.
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
