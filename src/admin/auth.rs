//! Admin authentication as `@socket.io/admin-ui` does it: a valid `sessionId` from an earlier
//! login, or `username` + `password` checked against a bcrypt hash, which issues a new session
//! (sent as the `session` event). Sessions live in Redis (`socket.io-admin#<id>`, 24 h, Node's
//! `RedisStore` layout) when Redis is configured, in memory otherwise.

use crate::adapter::BoxFuture;
use crate::adapter::redis::RedisService;
use crate::server::{ConnectError, Socket};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Node's `RedisStore` default prefix.
pub const SESSION_PREFIX: &str = "socket.io-admin";
/// How long a session stays valid (Node's `sessionDuration`, 86400 s).
pub const SESSION_TTL: Duration = Duration::from_secs(86_400);
/// Most sessions the in-memory store keeps (expired ones are dropped first).
pub const MAX_MEMORY_SESSIONS: usize = 10_000;
/// Most password checks running at once; more are refused ("busy") so guessing cannot take
/// every core (a bcrypt check costs tens of ms by design).
pub const MAX_CONCURRENT_CHECKS: usize = 4;
/// How long a session lookup in Redis may take before the login is refused.
pub const REDIS_DEADLINE: Duration = Duration::from_secs(1);
/// Failed logins an address may make before it has to wait between tries.
pub const FREE_FAILURES: u32 = 5;
/// The wait after the first failure past [`FREE_FAILURES`]; it doubles with each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between tries of one address.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Most addresses whose failures are remembered (the oldest is forgotten first).
pub const MAX_TRACKED_ADDRESSES: usize = 4096;
/// The message an address gets while it has to wait.
pub const BACKOFF: &str = "too many failed logins, retry later";
/// The message a refused UI gets (Node's).
pub const INVALID: &str = "invalid credentials";

/// The configured user.
#[derive(Clone)]
pub struct Credentials {
    /// `ADMIN_USERNAME`.
    pub username: String,
    /// `ADMIN_PASSWORD_HASH` (bcrypt, `$2a$`/`$2b$`/`$2y$`).
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password_hash", &"***")
            .finish()
    }
}

/// Whether `hash` is a usable bcrypt hash (checked at startup).
pub fn is_bcrypt_hash(hash: &str) -> bool {
    // Verifying any password parses the hash; only a malformed hash is an error.
    bcrypt::verify("", hash).is_ok()
}

/// Where sessions are kept.
#[derive(Clone)]
pub enum SessionStore {
    /// This process only (single instance).
    Memory(std::sync::Arc<Mutex<HashMap<String, Instant>>>),
    /// Redis, shared by the cluster.
    Redis(RedisService),
}

impl SessionStore {
    /// An empty in-memory store.
    pub fn memory() -> SessionStore {
        SessionStore::Memory(Default::default())
    }

    fn key(id: &str) -> String {
        format!("{SESSION_PREFIX}#{id}")
    }

    /// Whether session `id` exists (a Redis lookup waits at most [`REDIS_DEADLINE`]).
    async fn exists(&self, id: &str) -> bool {
        match self {
            SessionStore::Memory(m) => {
                let m = m.lock();
                m.get(id).is_some_and(|exp| *exp > Instant::now())
            }
            SessionStore::Redis(service) => {
                match tokio::time::timeout(REDIS_DEADLINE, service.exists(&SessionStore::key(id))).await {
                    Ok(Ok(found)) => found,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "admin session lookup failed");
                        false
                    }
                    Err(_) => {
                        tracing::warn!("admin session lookup timed out");
                        false
                    }
                }
            }
        }
    }

    /// Saves session `id` (in the background for Redis).
    fn save(&self, id: &str) {
        match self {
            SessionStore::Memory(m) => {
                let mut m = m.lock();
                let now = Instant::now();
                if m.len() >= MAX_MEMORY_SESSIONS {
                    m.retain(|_, exp| *exp > now);
                }
                if m.len() >= MAX_MEMORY_SESSIONS {
                    tracing::warn!("admin session store full; this login gets no session to reconnect with");
                    return;
                }
                m.insert(id.to_owned(), now + SESSION_TTL);
            }
            SessionStore::Redis(service) => {
                let service = service.clone();
                let key = SessionStore::key(id);
                tokio::spawn(async move {
                    let saved =
                        tokio::time::timeout(REDIS_DEADLINE * 5, service.set_ex(&key, "true", SESSION_TTL.as_secs()))
                            .await;
                    if !matches!(saved, Ok(Ok(()))) {
                        tracing::warn!("cannot save an admin session in Redis; the UI will log in again on reconnect");
                    }
                });
            }
        }
    }
}

/// Failed logins per client address, so a guesser from one address cannot lock out the
/// operator on another: each address gets [`FREE_FAILURES`], then waits, doubling up to
/// [`MAX_BACKOFF`]; one check at a time per address. Bounded to [`MAX_TRACKED_ADDRESSES`].
#[derive(Default)]
struct Backoff {
    by_ip: HashMap<IpAddr, Tries>,
}

#[derive(Clone, Copy)]
struct Tries {
    failures: u32,
    /// No check before this.
    until: Instant,
    /// A check of this address is running.
    busy: bool,
    last: Instant,
}

impl Backoff {
    /// Whether `ip` may try now; if so, marks a check of it running.
    fn begin(&mut self, ip: IpAddr, now: Instant) -> Result<(), &'static str> {
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_TRACKED_ADDRESSES {
            self.by_ip.retain(|_, t| t.busy || t.until > now);
            if self.by_ip.len() >= MAX_TRACKED_ADDRESSES
                && let Some(oldest) = self
                    .by_ip
                    .iter()
                    .filter(|(_, t)| !t.busy)
                    .min_by_key(|(_, t)| t.last)
                    .map(|(ip, _)| *ip)
            {
                self.by_ip.remove(&oldest);
            }
        }
        let t = self.by_ip.entry(ip).or_insert(Tries {
            failures: 0,
            until: now,
            busy: false,
            last: now,
        });
        if t.busy {
            return Err("server busy, retry later");
        }
        if t.until > now {
            return Err(BACKOFF);
        }
        t.busy = true;
        t.last = now;
        Ok(())
    }

    /// Ends a check of `ip` that did not run (no verdict).
    fn cancel(&mut self, ip: IpAddr) {
        if let Some(t) = self.by_ip.get_mut(&ip) {
            t.busy = false;
        }
    }

    /// Ends the check of `ip` begun with [`Backoff::begin`].
    fn end(&mut self, ip: IpAddr, ok: bool, now: Instant) {
        if ok {
            self.by_ip.remove(&ip);
            return;
        }
        let Some(t) = self.by_ip.get_mut(&ip) else { return };
        t.busy = false;
        t.failures = t.failures.saturating_add(1);
        if t.failures > FREE_FAILURES {
            let doublings = (t.failures - FREE_FAILURES - 1).min(16);
            t.until = now + (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF);
        }
    }
}

/// Checks admin logins and remembers the sessions it issued until the socket is connected.
pub(crate) struct Authenticator {
    credentials: Option<Credentials>,
    store: SessionStore,
    checks: AtomicUsize,
    backoff: Mutex<Backoff>,
    issued: Mutex<HashMap<String, String>>,
}

impl Authenticator {
    pub(crate) fn new(credentials: Option<Credentials>, store: SessionStore) -> Authenticator {
        Authenticator {
            credentials,
            store,
            checks: AtomicUsize::new(0),
            backoff: Mutex::default(),
            issued: Mutex::default(),
        }
    }

    /// The namespace middleware (asynchronous: a Redis lookup or a bcrypt check never blocks a
    /// runtime worker).
    pub(crate) fn check(self: &Arc<Self>, socket: Socket) -> BoxFuture<'static, Result<(), ConnectError>> {
        let this = self.clone();
        Box::pin(async move { this.check_socket(&socket).await })
    }

    async fn check_socket(&self, socket: &Socket) -> Result<(), ConnectError> {
        let Some(creds) = &self.credentials else {
            return Ok(());
        };
        let auth = &socket.handshake().auth;
        let field = |k: &str| {
            auth.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 1024)
                .map(str::to_owned)
        };
        let session = field("sessionId");
        let credentials = field("username").zip(field("password"));
        if session.is_none() && credentials.is_none() {
            tracing::info!(sid = %socket.id(), "admin login refused: no valid session and no credentials");
            return Err(ConnectError::new(INVALID));
        }
        // Session lookups (Redis) and password checks share one cap and the per-address backoff.
        let ip = socket.handshake().client;
        if let Err(why) = self.backoff.lock().begin(ip, Instant::now()) {
            tracing::info!(sid = %socket.id(), %ip, "admin login refused: {why}");
            return Err(ConnectError::new(why));
        }
        if self.checks.fetch_add(1, Ordering::AcqRel) >= MAX_CONCURRENT_CHECKS {
            self.checks.fetch_sub(1, Ordering::AcqRel);
            self.backoff.lock().cancel(ip);
            tracing::warn!("admin login refused: too many checks at once");
            return Err(ConnectError::new("server busy, retry later"));
        }
        // Runs in a task of its own (never cancelled), so the counters below are always given back.
        let by_session = match &session {
            Some(s) => self.store.exists(s).await,
            None => false,
        };
        let ok = by_session
            || match credentials {
                Some((username, password)) => {
                    let hash = creds.password_hash.clone();
                    let password_ok =
                        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                            .await
                            .unwrap_or(false);
                    // Both compared, so the answer's timing does not tell which one was wrong.
                    password_ok && username == creds.username
                }
                None => false,
            };
        self.checks.fetch_sub(1, Ordering::AcqRel);
        self.backoff.lock().end(ip, ok, Instant::now());
        if !ok {
            tracing::info!(sid = %socket.id(), %ip, "admin login refused: invalid credentials");
            return Err(ConnectError::new(INVALID));
        }
        if by_session {
            return Ok(());
        }
        let session = crate::ids::token();
        self.store.save(&session);
        let mut issued = self.issued.lock();
        if issued.len() >= 1024 {
            // Sockets refused after the middleware never collect theirs; do not let them pile up.
            issued.clear();
        }
        issued.insert(socket.id().to_owned(), session);
        tracing::info!(sid = %socket.id(), "admin login");
        Ok(())
    }

    /// The session issued to socket `id` at login, once.
    pub(crate) fn take_issued(&self, id: &str) -> Option<String> {
        self.issued.lock().remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_checked() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        assert!(is_bcrypt_hash(&hash));
        assert!(!is_bcrypt_hash("s3cret"));
        assert!(!is_bcrypt_hash("$2b$10$short"));
        // htpasswd writes $2y$ hashes.
        assert!(is_bcrypt_hash(&hash.replacen("$2b$", "$2y$", 1)));
    }

    #[tokio::test]
    async fn memory_sessions() {
        let store = SessionStore::memory();
        assert!(!store.exists("a").await);
        store.save("a");
        assert!(store.exists("a").await);
        assert!(!store.exists("b").await);
    }

    #[test]
    fn backoff_is_per_address_doubling_and_bounded() {
        let mut b = Backoff::default();
        let (a, o): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            b.begin(a, t0).expect("free tries");
            assert!(b.begin(a, t0).is_err(), "one check at a time per address");
            b.end(a, false, t0);
        }
        b.begin(a, t0).expect("the last free try");
        b.end(a, false, t0);
        assert_eq!(b.begin(a, t0), Err(BACKOFF));
        assert!(b.begin(o, t0).is_ok(), "another address is not held up");
        b.end(o, true, t0);
        b.begin(a, t0 + FIRST_BACKOFF).expect("after the wait");
        b.end(a, false, t0 + FIRST_BACKOFF);
        assert_eq!(b.begin(a, t0 + FIRST_BACKOFF * 2), Err(BACKOFF), "the wait doubled");
        b.begin(a, t0 + FIRST_BACKOFF * 3).expect("after 2 s");
        b.end(a, true, t0);
        assert!(b.by_ip.is_empty(), "a success forgets the address");
        for i in 0..MAX_TRACKED_ADDRESSES as u32 + 10 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            b.begin(ip, t0).expect("a fresh address");
            b.end(ip, false, t0);
        }
        assert!(b.by_ip.len() <= MAX_TRACKED_ADDRESSES);
    }
}
