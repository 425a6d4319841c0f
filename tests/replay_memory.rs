//! The memory of the in-memory Digest replay store at its default capacity: 100,000 live
//! nonces, one count each, measured two ways in this process of its own (one test, so nothing
//! else allocates meanwhile): the heap bytes the store holds (a counting global allocator) and
//! the growth of the resident set (`VmRSS`). The documented figure (the `MemoryReplayStore`
//! docs, README's Digest section) comes from here; the test fails if the store grows past it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest as _;
use tower_proxy_auth::scheme::digest::{
    MemoryReplayStore, NonceId, ReplayVerdict, DEFAULT_REPLAY_CAPACITY,
};

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// This process's resident set, in bytes, from /proc/self/status.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// At most this many bytes per tracked nonce (the figure the docs give, with room for
/// hashbrown's and the B-tree's growth steps).
const MAX_BYTES_PER_NONCE: usize = 160;

#[test]
fn replay_store_memory_at_100000_live_nonces() {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    // Ids as the scheme makes them (the first bytes of an HMAC: uniform), spread evenly over
    // the store's 16 shards (by their first byte) so that all 100,000 fit the default capacity.
    let ids: Vec<NonceId> = (0..DEFAULT_REPLAY_CAPACITY as u64)
        .map(|i| {
            let hash = sha2::Sha256::digest(i.to_le_bytes());
            let mut id = [0u8; 16];
            id.copy_from_slice(&hash[..16]);
            id[0] = (i % 16) as u8;
            NonceId {
                id,
                issued_ms: now_ms + i / 100,
            }
        })
        .collect();

    let (heap_before, rss_before) = (LIVE.load(Relaxed), rss_bytes());
    let store = MemoryReplayStore::new(DEFAULT_REPLAY_CAPACITY, Duration::from_secs(300));
    for id in &ids {
        assert_eq!(store.check(id, 1), ReplayVerdict::Fresh);
    }
    let (heap_after, rss_after) = (LIVE.load(Relaxed), rss_bytes());
    assert_eq!(store.len(), DEFAULT_REPLAY_CAPACITY);

    let heap = heap_after - heap_before;
    let rss = rss_after.saturating_sub(rss_before);
    let n = DEFAULT_REPLAY_CAPACITY;
    eprintln!(
        "replay store, {n} live nonces: heap {heap} bytes ({} per nonce), RSS growth {rss} bytes \
         ({} per nonce)",
        heap / n,
        rss / n
    );
    assert!(
        heap / n <= MAX_BYTES_PER_NONCE,
        "{} heap bytes per nonce",
        heap / n
    );
    // The resident set grows by about the heap (pages the allocator touched), not by much more.
    assert!(
        rss <= heap + heap / 2 + (1 << 20),
        "RSS grew {rss} bytes for {heap} heap bytes"
    );
    // Every count stays refused once taken.
    for id in ids.iter().step_by(997) {
        assert_eq!(store.check(id, 1), ReplayVerdict::Replayed);
    }
}
