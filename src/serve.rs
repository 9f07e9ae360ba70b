//! The accept loop: HTTP/1.1 connections served by hyper with the limits `axum::serve` cannot set
//! (a header read timeout against slowloris, a write deadline against peers that stop reading, a
//! cap on open connections), TCP_NODELAY, the peer address for handlers, and a graceful stop.

use crate::transport::Engine;
use axum::Router;
use axum::extract::ConnectInfo;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

/// Connection-level limits.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers (slowloris).
    pub header_read_timeout: Duration,
    /// How long a write may wait for a peer that reads nothing before the connection is reset
    /// (a polling response or WebSocket frames that are never read).
    pub write_timeout: Duration,
    /// Most TCP connections open at once (`None`: no cap). Connections past it are closed as soon
    /// as they are accepted.
    pub max_connections: Option<usize>,
    /// Most TCP connections open at once from one peer address (`None`: no cap), so one address
    /// cannot hold every connection `max_connections` allows.
    pub max_connections_per_ip: Option<usize>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: None,
            max_connections_per_ip: None,
        }
    }
}

/// Lets the owner of an upgraded connection (a WebSocket driver) reset it: once [`ConnAbort::abort`]
/// was called, dropping the connection sends a TCP RST and discards unsent bytes, so a peer that
/// does not read cannot keep the socket (and its kernel buffers) alive after the server closed it.
/// Handlers find it in the request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ConnAbort(Arc<AtomicBool>);

impl ConnAbort {
    /// Resets the connection when it is dropped, instead of a graceful FIN after unsent data.
    pub fn abort(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_aborted(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A TCP stream with a write deadline: a write that makes no progress for `timeout` fails with
/// `TimedOut`, and a stream that failed so (or was [`ConnAbort::abort`]ed) is reset on drop.
struct DeadlineStream {
    tcp: TcpStream,
    timeout: Duration,
    /// The stall timer, allocated on the first stall and reset on later ones.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `stall` is running: a write is waiting for the peer.
    stalled: bool,
    abort: ConnAbort,
    /// Counts this connection as open until it is dropped (upgraded WebSockets included).
    _open: Open,
}

impl DeadlineStream {
    /// Maps a write's result through the stall deadline.
    fn deadline<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = false;
            return polled;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let stall = match &mut self.stall {
            Some(stall) => {
                if !self.stalled {
                    stall.as_mut().reset(deadline);
                }
                stall
            }
            None => self.stall.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stalled = true;
        ready!(stall.as_mut().poll(cx));
        self.abort.abort();
        crate::metrics::inc(&crate::metrics::METRICS.write_timeouts);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "peer read nothing within the write timeout",
        )))
    }
}

impl Drop for DeadlineStream {
    fn drop(&mut self) {
        if self.abort.is_aborted() {
            // SO_LINGER 0: close() sends RST and frees the socket at once, unsent data and all.
            let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.deadline(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.deadline(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Open connections, in all and by peer address.
#[derive(Default)]
struct OpenCounts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl OpenCounts {
    /// Why a new connection from `ip` is refused under `options`, if it is.
    fn refusal(&self, ip: IpAddr, options: &ServeOptions) -> Option<&'static str> {
        if options.max_connections.is_some_and(|max| self.total >= max) {
            return Some("too many open connections");
        }
        let held = self.by_ip.get(&ip).copied().unwrap_or(0);
        if options.max_connections_per_ip.is_some_and(|max| held >= max) {
            return Some("too many open connections from this address");
        }
        None
    }
}

fn lock(counts: &Mutex<OpenCounts>) -> MutexGuard<'_, OpenCounts> {
    counts.lock()
}

/// Counts one open connection for as long as it lives.
struct Open {
    counts: Arc<Mutex<OpenCounts>>,
    ip: IpAddr,
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
/// Sets TCP_NODELAY on the listening socket where accepted sockets inherit it (Linux copies it to
/// each one), which saves a syscall per connection; false where each connection must set it.
fn nodelay_on_listener(listener: &TcpListener) -> bool {
    cfg!(target_os = "linux") && socket2::SockRef::from(listener).set_tcp_nodelay(true).is_ok()
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The Engine.IO endpoint served straight from hyper's service, ahead of `router`: its requests
/// skip the router's boxed future, path match and `ConnectInfo` extension (~a tenth of the CPU of
/// a polling request). It answers exactly what `crate::http::engine_routes` would.
#[derive(Clone)]
pub struct DirectEngine {
    /// The exact request path it answers, trailing slash included (`/socket.io/`).
    path: Arc<str>,
    /// The endpoint.
    engine: Engine,
}

impl DirectEngine {
    /// The endpoint `engine` at `path` (`/socket.io` or `/socket.io/`), as `engine_routes` mounts it.
    pub fn new(path: &str, engine: Engine) -> Self {
        DirectEngine {
            path: crate::http::engine_endpoint(path).into(),
            engine,
        }
    }

    /// Whether it answers `req`: its path, and a method axum's route would not rewrite (HEAD loses
    /// its body there and CONNECT its length, so those stay on the router).
    fn takes<B>(&self, req: &Request<B>) -> bool {
        matches!(*req.method(), Method::GET | Method::POST | Method::OPTIONS) && req.uri().path() == &*self.path
    }
}

/// Adds the `Content-Length` axum's route adds to every response whose body length is known, so
/// the direct path's headers match the router's byte for byte.
fn set_content_length(size: Option<u64>, headers: &mut HeaderMap) {
    if let Some(size) = size
        && !headers.contains_key(header::CONTENT_LENGTH)
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets open connections finish their
/// current request (upgraded WebSockets live on in their own tasks).
pub async fn serve(listener: TcpListener, router: Router, options: ServeOptions, stop: watch::Receiver<bool>) {
    serve_with(listener, router, None, options, stop).await
}

/// [`serve`], with the Engine.IO endpoint `direct` (when given) answered ahead of the router.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    direct: Option<DirectEngine>,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let nodelay_inherited = nodelay_on_listener(&listener);
    let mut connections = tokio::task::JoinSet::new();
    let open: Arc<Mutex<OpenCounts>> = Arc::default();
    let mut refused_logged = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let refused = {
            let mut counts = lock(&open);
            let refused = counts.refusal(remote.ip(), &options);
            if refused.is_none() {
                counts.total += 1;
                *counts.by_ip.entry(remote.ip()).or_insert(0) += 1;
            }
            refused
        };
        if let Some(why) = refused {
            crate::metrics::inc(&crate::metrics::METRICS.limit_tcp_connections);
            if refused_logged.elapsed() >= Duration::from_secs(10) {
                refused_logged = tokio::time::Instant::now();
                tracing::warn!(%remote, "{why}; closing new ones (logged every 10 s)");
            }
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            drop(tcp);
            continue;
        }
        if !nodelay_inherited && let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let abort = ConnAbort::default();
        let io = DeadlineStream {
            tcp,
            timeout: options.write_timeout,
            stall: None,
            stalled: false,
            abort: abort.clone(),
            _open: Open {
                counts: open.clone(),
                ip: remote.ip(),
            },
        };
        let router = router.clone();
        let direct = direct.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(abort.clone());
            // The router is cloned only for the requests it serves, not on the engine's path.
            let target = match &direct {
                Some(d) if d.takes(&req) => Ok(d.engine.clone()),
                _ => {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    Err(router.clone())
                }
            };
            async move {
                let req = req.map(axum::body::Body::new);
                let res = match target {
                    Ok(engine) => {
                        let mut res = engine.handle(req, remote).await;
                        set_content_length(res.body().size_hint().exact(), res.headers_mut());
                        res
                    }
                    Err(mut router) => router.call(req).await.unwrap_or_else(|e| match e {}),
                };
                Ok::<_, Infallible>(res)
            }
        });
        let mut stop = stop.clone();
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                }
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM: when a binary should shut down gracefully.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::EngineConfig;
    use crate::server::{Server, ServerConfig};
    use crate::transport::{Cors, EngineOptions};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves a fresh CORS-enabled engine at `/socket.io`, directly or through the router only.
    async fn engine_server(direct: bool) -> (std::net::SocketAddr, watch::Sender<bool>) {
        let options = EngineOptions {
            cors: Some(Cors::Any),
            ..EngineOptions::default()
        };
        let io = Server::new(ServerConfig::default());
        let engine = Engine::new(EngineConfig::default(), options, io.engine_handler());
        let router = crate::http::engine_routes("/socket.io", engine.clone(), false);
        let direct = direct.then(|| DirectEngine::new("/socket.io", engine));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(serve_with(listener, router, direct, ServeOptions::default(), stop));
        (addr, stop_tx)
    }

    /// One raw request on its own connection; the response up to the peer's close, without `date`.
    async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
            .await
            .expect("answered and closed within 10 s")
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        text.split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[tokio::test]
    async fn the_direct_engine_answers_byte_for_byte_as_the_router() {
        let (routed, _a) = engine_server(false).await;
        let (direct, _b) = engine_server(true).await;
        let close = "Connection: close\r\nOrigin: http://a.example\r\n";
        let requests = [
            format!("GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
            format!("GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
            format!(
                "POST /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\n{close}Content-Length: 1\r\n\r\n1"
            ),
            format!(
                "OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n{close}Access-Control-Request-Method: POST\r\n\r\n"
            ),
            format!("HEAD /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
            format!("PUT /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n{close}Content-Length: 0\r\n\r\n"),
            format!("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
        ];
        for request in &requests {
            let (a, b) = (exchange(routed, request).await, exchange(direct, request).await);
            assert!(a.starts_with("HTTP/1.1 "), "{a}");
            assert_eq!(a, b, "for {request:?}");
        }
        // A handshake differs only by its sid.
        let handshake = format!("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n{close}\r\n");
        let (a, b) = (exchange(routed, &handshake).await, exchange(direct, &handshake).await);
        let shape = |s: &str| {
            s.split("\"sid\":\"")
                .map(|p| p.split_once('"').map_or(p, |x| x.1))
                .collect::<String>()
        };
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        assert_eq!(shape(&a), shape(&b));
    }

    #[tokio::test]
    async fn accepted_sockets_have_nodelay_without_setting_it_each_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inherited = nodelay_on_listener(&listener);
        assert_eq!(inherited, cfg!(target_os = "linux"));
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (tcp, _) = accepted.unwrap();
        assert!(client.is_ok());
        assert_eq!(tcp.nodelay().unwrap(), inherited, "TCP_NODELAY came from the listener");
    }
}
