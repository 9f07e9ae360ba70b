//! Every random id the server makes (Engine.IO sids, Socket.IO socket ids, the adapters' uids and
//! request ids, chat message ids), from one source with one failure policy.
//!
//! The source is the OS CSPRNG (`getrandom`), read in blocks into a small per-thread buffer so a
//! sid costs a copy rather than a system call. The policy: without OS randomness the server does
//! not run. [`check`] is called once at startup and fails with a clear message; a generator that
//! fails after that panics rather than hand out a weak or zeroed id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU16, Ordering};

/// Bytes read from the OS at a time, per thread.
const BLOCK: usize = 256;

/// The OS random generator is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("the OS random generator is unavailable ({0}); refusing to run without it")]
pub struct NoRandomness(getrandom::Error);

/// Checks once, at startup, that the OS random generator works.
pub fn check() -> Result<(), NoRandomness> {
    let mut probe = [0u8; 16];
    getrandom::fill(&mut probe).map_err(NoRandomness)
}

struct Pool {
    buf: [u8; BLOCK],
    /// Bytes of `buf` already handed out.
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { buf: [0; BLOCK], used: BLOCK }) };
}

/// Fills `out` with OS randomness. Panics if the OS generator fails (see the module policy).
pub fn fill(out: &mut [u8]) {
    if out.len() > BLOCK / 4 {
        os_fill(out);
        return;
    }
    POOL.with_borrow_mut(|pool| {
        if BLOCK - pool.used < out.len() {
            os_fill(&mut pool.buf);
            pool.used = 0;
        }
        let taken = &mut pool.buf[pool.used..pool.used + out.len()];
        out.copy_from_slice(taken);
        // Handed-out bytes are not kept around.
        taken.fill(0);
        pool.used += out.len();
    });
}

fn os_fill(out: &mut [u8]) {
    if let Err(e) = getrandom::fill(out) {
        panic!("{}", NoRandomness(e));
    }
}

/// 20 characters of base64url randomness (120 bits): Engine.IO sids and Socket.IO socket ids.
pub fn token() -> String {
    let mut bytes = [0u8; 15];
    fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A 6-character base64url id, like Node's `uid2(6)` (the classic Redis adapter's uids).
pub fn uid6() -> String {
    let mut bytes = [0u8; 6];
    fill(&mut bytes);
    let mut s = URL_SAFE_NO_PAD.encode(bytes);
    s.truncate(6);
    s
}

/// 16 lowercase hex characters (64 bits), like socket.io-adapter's `randomId()`.
pub fn hex16() -> String {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static COUNTER: AtomicU16 = AtomicU16::new(0);

/// A 26-character chat message id: 48 bits of milliseconds, a 16-bit per-process counter and 64
/// random bits, in Crockford base32. Ids sort by creation time across instances (to the
/// millisecond) and do not collide: the random part differs between instances, the counter
/// within one.
pub fn time_ordered() -> String {
    let ms = crate::time::now_ms() & 0xFFFF_FFFF_FFFF;
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) as u128;
    let mut rnd = [0u8; 8];
    fill(&mut rnd);
    let value: u128 = ((ms as u128) << 80) | (counter << 64) | u64::from_be_bytes(rnd) as u128;
    (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn base64url(s: &str) -> bool {
        s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    }

    #[test]
    fn the_os_generator_works_here() {
        check().unwrap();
    }

    #[test]
    fn tokens_are_20_base64url_chars_and_distinct() {
        let many: HashSet<String> = (0..2000).map(|_| token()).collect();
        assert_eq!(many.len(), 2000);
        assert!(many.iter().all(|t| t.len() == 20 && base64url(t)));
    }

    #[test]
    fn short_ids_have_their_shapes() {
        let u = uid6();
        assert!(u.len() == 6 && base64url(&u), "{u}");
        let h = hex16();
        assert!(
            h.len() == 16 && h.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{h}"
        );
        assert_ne!(hex16(), h);
    }

    #[test]
    fn buffered_bytes_are_never_all_zero_and_blocks_refill() {
        // Across several refills of the per-thread block, no 15-byte draw is zeroed.
        for _ in 0..(BLOCK / 15) * 4 {
            let mut b = [0u8; 15];
            fill(&mut b);
            assert_ne!(b, [0u8; 15]);
        }
        let mut big = [0u8; BLOCK * 2];
        fill(&mut big);
        assert!(big.iter().any(|&b| b != 0));
    }

    #[test]
    fn message_ids_are_unique_and_time_ordered() {
        let a = time_ordered();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = time_ordered();
        assert_eq!(a.len(), 26);
        assert!(a < b, "{a} < {b}");
        let many: HashSet<String> = (0..1000).map(|_| time_ordered()).collect();
        assert_eq!(many.len(), 1000);
    }
}
