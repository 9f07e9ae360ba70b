//! The inbound budget of one socket for chat messages (`CHAT_RATE_MESSAGES`, `CHAT_RATE_BYTES`):
//! two token buckets, messages per second and bytes per second, each with a burst of
//! [`BURST_SECONDS`] worth. The clock is passed in, so the buckets are plain values tested on a
//! virtual `Instant`; refilling is arithmetic on the elapsed time, with no timer and no allocation.

use std::time::{Duration, Instant};

/// How many seconds of budget a bucket holds when full (the burst a socket may send at once).
pub const BURST_SECONDS: u32 = 2;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
///
/// A cost larger than the burst (one message bigger than two seconds of byte budget) is allowed
/// from a full bucket and leaves it in debt, so the average rate still holds and no message size
/// up to `MAX_HTTP_BUFFER_SIZE` is refused forever.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens per second up to `burst`.
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Refills up to `now`; `None` when `cost` may be taken, else how long until it may
    /// (rounded up to whole milliseconds).
    pub fn wait_for(&mut self, cost: u64, now: Instant) -> Option<Duration> {
        self.refill(now);
        let needed = (cost as f64).min(self.burst);
        if self.tokens >= needed {
            None
        } else {
            Some(Duration::from_millis(
                ((needed - self.tokens) * 1000.0 / self.rate).ceil() as u64,
            ))
        }
    }

    /// Takes `cost` tokens (after [`TokenBucket::wait_for`] said it may).
    pub fn take(&mut self, cost: u64) {
        self.tokens -= cost as f64;
    }

    /// Tokens left (negative while in debt).
    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

/// The chat rate settings; 0 turns a budget off. Both 0 (the default) turns rate limiting off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChatRate {
    /// Chat messages per second per socket (`CHAT_RATE_MESSAGES`).
    pub messages_per_sec: u32,
    /// Bytes of chat messages per second per socket (`CHAT_RATE_BYTES`).
    pub bytes_per_sec: u64,
}

impl ChatRate {
    /// Whether any budget is on.
    pub fn is_on(&self) -> bool {
        self.messages_per_sec > 0 || self.bytes_per_sec > 0
    }

    /// A new socket's budget, full; `None` when rate limiting is off.
    pub fn budget(&self, now: Instant) -> Option<ChatBudget> {
        let bucket =
            |rate: u64| (rate > 0).then(|| TokenBucket::new(rate, rate.saturating_mul(u64::from(BURST_SECONDS)), now));
        self.is_on().then(|| ChatBudget {
            messages: bucket(u64::from(self.messages_per_sec)),
            bytes: bucket(self.bytes_per_sec),
            refused_in_row: 0,
        })
    }
}

/// Which budget refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    /// Messages per second.
    Messages,
    /// Bytes per second.
    Bytes,
}

impl RateLimit {
    /// `messages` or `bytes`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimit::Messages => "messages",
            RateLimit::Bytes => "bytes",
        }
    }
}

/// A message refused by the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// The budget that refused it.
    pub limit: RateLimit,
    /// How long until a message of the same size would be accepted.
    pub retry_after: Duration,
    /// Messages refused in a row, this one included (1 = the first since the last accepted one).
    pub refused_in_row: u64,
}

/// One socket's budget: both buckets, charged together or not at all.
#[derive(Clone, Debug)]
pub struct ChatBudget {
    messages: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
    refused_in_row: u64,
}

impl ChatBudget {
    /// Whether the bytes budget is on (callers measure a message's size only then).
    pub fn counts_bytes(&self) -> bool {
        self.bytes.is_some()
    }

    /// Charges one message of `size` bytes at `now`, or refuses it and charges nothing.
    pub fn charge(&mut self, size: u64, now: Instant) -> Result<(), RateLimited> {
        let wait_messages = self.messages.as_mut().and_then(|b| b.wait_for(1, now));
        let wait_bytes = self.bytes.as_mut().and_then(|b| b.wait_for(size, now));
        let refused = match (wait_messages, wait_bytes) {
            (None, None) => None,
            (Some(m), b) if b.is_none_or(|b| m >= b) => Some((RateLimit::Messages, m)),
            (_, b) => b.map(|b| (RateLimit::Bytes, b)),
        };
        if let Some((limit, retry_after)) = refused {
            self.refused_in_row += 1;
            return Err(RateLimited {
                limit,
                retry_after,
                refused_in_row: self.refused_in_row,
            });
        }
        self.refused_in_row = 0;
        if let Some(b) = &mut self.messages {
            b.take(1);
        }
        if let Some(b) = &mut self.bytes {
            b.take(size);
        }
        Ok(())
    }
}

/// Counts the bytes written to it (a message's JSON size without building the string).
#[derive(Debug, Default)]
pub struct ByteCounter(pub u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size a message counts against the bytes budget: its arguments as JSON plus its binary
/// attachments.
pub fn message_size(args: &[serde_json::Value], binary: &[bytes::Bytes]) -> u64 {
    let mut counter = ByteCounter::default();
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, args);
    counter.0 + binary.iter().map(|b| b.len() as u64).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn off_by_default() {
        assert!(!ChatRate::default().is_on());
        assert!(ChatRate::default().budget(Instant::now()).is_none());
    }

    #[test]
    fn messages_burst_then_refill() {
        let t0 = Instant::now();
        let rate = ChatRate {
            messages_per_sec: 5,
            bytes_per_sec: 0,
        };
        let mut b = rate.budget(t0).unwrap();
        assert!(!b.counts_bytes());
        // A full bucket holds two seconds' worth: 10 messages at once.
        for i in 0..10 {
            assert_eq!(b.charge(1_000_000, t0), Ok(()), "message {i}");
        }
        let refused = b.charge(1, t0).unwrap_err();
        assert_eq!(refused.limit, RateLimit::Messages);
        assert_eq!(refused.retry_after, ms(200));
        assert_eq!(refused.refused_in_row, 1);
        assert_eq!(b.charge(1, t0 + ms(100)).unwrap_err().refused_in_row, 2);
        // One token every 200 ms.
        assert_eq!(b.charge(1, t0 + ms(200)), Ok(()));
        assert!(b.charge(1, t0 + ms(300)).is_err());
        assert_eq!(b.charge(1, t0 + ms(400)), Ok(()));
        // Refused messages cost nothing; a long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(b.charge(1, later), Ok(()));
        }
        assert!(b.charge(1, later).is_err());
    }

    #[test]
    fn bytes_budget_and_debt_for_large_messages() {
        let t0 = Instant::now();
        let rate = ChatRate {
            messages_per_sec: 0,
            bytes_per_sec: 1000,
        };
        let mut b = rate.budget(t0).unwrap();
        assert!(b.counts_bytes());
        assert_eq!(b.charge(1500, t0), Ok(()));
        let refused = b.charge(600, t0).unwrap_err();
        assert_eq!(refused.limit, RateLimit::Bytes);
        assert_eq!(refused.retry_after, ms(100));
        assert_eq!(b.charge(500, t0), Ok(()), "a smaller message still fits");
        // Bigger than the burst (2000): allowed from a full bucket, then 5 s of debt.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.charge(5000, t1), Ok(()));
        let refused = b.charge(1, t1 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(2001));
        assert_eq!(b.charge(1, t1 + Duration::from_millis(3002)), Ok(()));
        // Never refused forever: a full bucket always takes it.
        assert!(b.charge(5000, t1 + Duration::from_millis(3003)).is_err());
        assert_eq!(b.charge(5000, t1 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn both_budgets_charge_together_or_not_at_all() {
        let t0 = Instant::now();
        let rate = ChatRate {
            messages_per_sec: 1,
            bytes_per_sec: 100,
        };
        let mut b = rate.budget(t0).unwrap();
        assert_eq!(b.charge(150, t0), Ok(()));
        // The bytes budget refuses: the message budget is not charged either.
        assert_eq!(b.charge(100, t0).unwrap_err().limit, RateLimit::Bytes);
        assert_eq!(b.messages.as_ref().unwrap().tokens(), 1.0);
        assert_eq!(b.charge(10, t0), Ok(()));
        // Both refuse: the longer wait is reported.
        let refused = b.charge(50, t0).unwrap_err();
        assert_eq!(refused.limit, RateLimit::Messages);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn extreme_settings_do_not_overflow() {
        let t0 = Instant::now();
        let rate = ChatRate {
            messages_per_sec: u32::MAX,
            bytes_per_sec: u64::MAX,
        };
        let mut b = rate.budget(t0).unwrap();
        assert_eq!(b.charge(u64::MAX, t0), Ok(()));
        assert_eq!(b.charge(1, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut bucket = TokenBucket::new(10, 1, t0);
        bucket.take(1);
        assert!(bucket.wait_for(1, t0 - Duration::from_secs(1)).is_some());
        assert_eq!(bucket.wait_for(1, t0 + ms(100)), None);
    }

    #[test]
    fn message_size_counts_json_and_attachments() {
        let args = [json!({"roomId": "r", "message": "hé"})];
        let json_len = serde_json::to_string(&args[..]).unwrap().len() as u64;
        assert_eq!(message_size(&args, &[]), json_len);
        assert_eq!(
            message_size(&args, &[bytes::Bytes::from_static(b"12345")]),
            json_len + 5
        );
    }
}
