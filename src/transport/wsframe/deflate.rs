//! permessage-deflate (RFC 7692) without context takeover: negotiating the extension from the
//! client's offers, and compressing and inflating one whole message at a time with raw deflate
//! (the `00 00 ff ff` tail of a sync flush removed on send and put back on receive).
//!
//! No context takeover on either side means no compressor state lives between messages, so an
//! idle connection holds none: one compressor and one inflater per thread serve every connection.
//! It also means a message compresses to the same bytes for every receiver, so a broadcast's frame
//! is compressed once ([`compress_shared`]) and the result shared.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

/// Smallest message compressed, bytes (the `threshold` of Node's `ws`, 1024 by default).
pub const THRESHOLD: usize = 1024;

/// The tail a sync flush ends with, left off compressed messages on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The extension as accepted for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// `server_max_window_bits` the client asked for (8..=15), echoed in the answer.
    pub server_max_window_bits: Option<u8>,
}

impl Params {
    /// Whether a message of `len` bytes is sent compressed. Our compressor's window is 32 KiB
    /// (15 bits, the default). For a client that asked for a smaller one: without context takeover
    /// no match reaches further back than the message's own start, so a message no longer than
    /// the window it allowed fits; longer ones go uncompressed.
    pub fn compresses(&self, len: usize) -> bool {
        let window = match self.server_max_window_bits {
            Some(bits) if bits < 15 => 1usize << bits,
            _ => usize::MAX,
        };
        len >= THRESHOLD && len <= window
    }

    /// The `Sec-WebSocket-Extensions` value of the 101 answer.
    pub fn response(&self) -> String {
        let mut s = String::from("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        s
    }
}

/// The first acceptable `permessage-deflate` offer among the `Sec-WebSocket-Extensions` header
/// values, or `None`. An offer with an unknown, repeated or out-of-range parameter is declined
/// (RFC 7692 section 7.1) and the next one tried.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Params> {
    values.into_iter().flat_map(|v| v.split(',')).find_map(offer)
}

/// One offer (`permessage-deflate; a; b=c`), if it is permessage-deflate and acceptable.
fn offer(text: &str) -> Option<Params> {
    let mut parts = text.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut params = Params {
        server_max_window_bits: None,
    };
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (part, None),
        };
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return None;
        }
        seen.push(name);
        // RFC 7692 section 7.1.2: a decimal integer 8 to 15 without leading zeroes; `parse` alone
        // would also take "+10" and "010".
        let bits = |v: Option<&str>| -> Option<u8> {
            let v = v?;
            let digits = v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0');
            v.parse::<u8>().ok().filter(|b| digits && (8..=15).contains(b))
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_none() => {}
            // The client says it can limit its window; without context takeover it does not matter.
            "client_max_window_bits" => {
                if value.is_some() && bits(value).is_none() {
                    return None;
                }
            }
            "server_max_window_bits" => params.server_max_window_bits = Some(bits(value)?),
            _ => return None,
        }
    }
    Some(params)
}

thread_local! {
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `data` compressed as one permessage-deflate message (tail removed).
pub fn compress(data: &[u8]) -> Bytes {
    COMPRESSOR.with_borrow_mut(|c| {
        c.reset();
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let pos = c.total_in() as usize;
            // Raw deflate into spare capacity does not fail.
            let _ = c.compress_vec(&data[pos..], &mut out, FlushCompress::Sync);
            // The flush is complete once all input is in and the output did not fill up.
            if c.total_in() as usize == data.len() && out.len() < out.capacity() {
                break;
            }
        }
        debug_assert!(out.ends_with(&TAIL));
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        Bytes::from(out)
    })
}

/// Why a compressed message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the limit.
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// Inflates one compressed message (tail removed), producing at most `max` bytes: a message
/// that would inflate to more is refused as soon as the output passes the limit.
pub fn inflate(data: &[u8], max: usize) -> Result<Bytes, InflateError> {
    INFLATER.with_borrow_mut(|d| {
        d.reset(false);
        let mut out = Vec::with_capacity((data.len() * 3).min(max));
        let mut scratch = [0u8; 8192];
        for input in [data, &TAIL[..]] {
            let mut pos = 0;
            loop {
                let (in0, out0) = (d.total_in(), d.total_out());
                let status = d
                    .decompress(&input[pos..], &mut scratch, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                let read = (d.total_in() - in0) as usize;
                let wrote = (d.total_out() - out0) as usize;
                pos += read;
                if out.len() + wrote > max {
                    return Err(InflateError::TooBig);
                }
                out.extend_from_slice(&scratch[..wrote]);
                if status == Status::StreamEnd {
                    // A final block ends the message; nothing after it counts.
                    return Ok(Bytes::from(out));
                }
                if pos == input.len() && wrote < scratch.len() {
                    break;
                }
                if read == 0 && wrote == 0 {
                    return Err(InflateError::Corrupt);
                }
            }
        }
        Ok(Bytes::from(out))
    })
}

/// Source bytes (at most) the shared cache keeps alive.
const CACHE_BYTES: usize = 4 << 20;
/// Entries (at most) in the shared cache.
const CACHE_ENTRIES: usize = 64;

/// A message and its compressed form, computed once by whichever receiver needs it first.
struct Cached {
    source: Bytes,
    compressed: Arc<OnceLock<Bytes>>,
}

/// Recently compressed shared frames. An entry holds a clone of its source, so while it is here
/// no other message can occupy the same address: same pointer and length means same bytes.
static CACHE: Mutex<VecDeque<Cached>> = Mutex::new(VecDeque::new());

/// `data` compressed, computed once for all holders of the same shared bytes (a broadcast's frame
/// sits in every receiver's queue). Bytes held by one owner only are compressed directly.
pub fn compress_shared(data: &Bytes) -> Bytes {
    if data.is_unique() || data.len() > CACHE_BYTES / 4 {
        return compress(data);
    }
    let slot = {
        let mut cache = CACHE.lock();
        let hit = cache
            .iter()
            .find(|c| c.source.as_ptr() == data.as_ptr() && c.source.len() == data.len());
        match hit {
            Some(c) => c.compressed.clone(),
            None => {
                let slot = Arc::new(OnceLock::new());
                let mut held: usize = cache.iter().map(|c| c.source.len()).sum::<usize>() + data.len();
                while cache.len() >= CACHE_ENTRIES || (held > CACHE_BYTES && !cache.is_empty()) {
                    if let Some(old) = cache.pop_front() {
                        held -= old.source.len();
                    }
                }
                cache.push_back(Cached {
                    source: data.clone(),
                    compressed: slot.clone(),
                });
                slot
            }
        }
    };
    slot.get_or_init(|| compress(data)).clone()
}

#[cfg(test)]
#[path = "deflate_tests.rs"]
mod tests;
