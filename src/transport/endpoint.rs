//! The Engine.IO HTTP endpoint: verifies each request, opens sessions, and hands polling requests
//! and WebSocket upgrades to the session drivers. Thin: all protocol decisions are in `engineio`.

use super::admission::{AddressSlot, Admission, Admitted, Policy};
use super::body::PollBody;
use super::conn::{EngineConn, EngineHandler, RequestInfo, transport_to_u8};
use super::cors::Cors;
use super::deflate_ws::DeflateWs;
use super::driver::{Cmd, Driver, WsConn};
use super::mailbox::{MailSender, mailbox};
use super::outbox::Outbox;
use super::pipe::WsIo;
use super::registry::{Handle, Registry};
use crate::engineio::request::{self, Method, Query, Route};
use crate::engineio::{EngineConfig, EngineError, ErrorBody, Session, SessionError, Transmit, TransportKind, sid};
use crate::serve::ConnAbort;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The WebSocket read buffer when none is configured: clients send small packets, and a
/// larger message grows the buffer as it arrives.
const DEFAULT_WS_READ_BUFFER: usize = 512;

/// Bytes of WebSocket frames gathered before a write (the rest go out with the turn's flush).
const WS_WRITE_BATCH: usize = 8 * 1024;

/// How long a polling POST may take to send its body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Options of an Engine.IO endpoint beyond the protocol settings.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// CORS policy; `None` sends no CORS headers.
    pub cors: Option<Cors>,
    /// Prefix for session ids (`tag.random`), so a load balancer can route by sid.
    pub sid_tag: Option<String>,
    /// Bytes each WebSocket reads from the socket at a time (its read buffer).
    pub ws_read_buffer: usize,
    /// Most open sessions (`MAX_CONNECTIONS`); 0 means no limit.
    pub max_connections: usize,
    /// Most handshakes per second from one client address (`HANDSHAKE_RATE_PER_IP`); 0 means off.
    pub handshake_rate_per_ip: u32,
    /// Most sessions one client address may hold once half of `max_connections` is in use
    /// (`MAX_CONNECTIONS_PER_IP`; always, when `max_connections` is 0); 0 means off.
    pub max_connections_per_ip: usize,
    /// Most sessions one client address may hold that have not sent a message yet
    /// (`MAX_HALF_OPEN_PER_IP`); 0 means off.
    pub max_half_open_per_ip: usize,
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: super::proxy::TrustedProxies,
    /// Byte limits of each connection's outbound queue (`OUTBOUND_QUEUE_BYTES`).
    pub outbox_limits: super::outbox::OutboxLimits,
    /// Gzip/deflate polling responses of at least 1 KiB when the client accepts it
    /// (`HTTP_COMPRESSION`; `sio-server` turns it on by default, as Node does).
    pub http_compression: bool,
    /// Negotiate permessage-deflate (without context takeover) with WebSocket clients that offer
    /// it (`PER_MESSAGE_DEFLATE`; off by default, as in Node).
    pub per_message_deflate: bool,
}

/// Polling bodies larger than this are compressed on the blocking pool, not on a runtime worker.
const COMPRESS_INLINE_MAX: usize = 64 * 1024;

/// An Engine.IO endpoint: sessions plus the application that runs on them.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    shutting_down: std::sync::atomic::AtomicBool,
    admission: Admission,
    config: EngineConfig,
    options: EngineOptions,
    handler: Arc<dyn EngineHandler>,
    registry: Arc<Registry>,
}

fn text_response(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response<Body> {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// A polling body compressed with `encoding`; large ones on the blocking pool (`None` if that
/// pool is gone: the body is then sent as it is).
async fn compressed(encoding: super::compress::Encoding, body: Bytes) -> Option<Bytes> {
    if body.len() <= COMPRESS_INLINE_MAX {
        return Some(Bytes::from(super::compress::compress(encoding, &body)));
    }
    let task = tokio::task::spawn_blocking(move || super::compress::compress(encoding, &body));
    task.await.ok().map(Bytes::from)
}

fn error_response(e: EngineError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    text_response(status, "application/json", e.body())
}

fn session_error_response(e: SessionError) -> Response<Body> {
    match e {
        SessionError::Closed => error_response(EngineError::UnknownSid),
        SessionError::BadRequest => error_response(EngineError::BadRequest),
        SessionError::PayloadTooLarge => empty(StatusCode::PAYLOAD_TOO_LARGE),
        SessionError::PollOverlap | SessionError::PostOverlap | SessionError::Parse => empty(StatusCode::BAD_REQUEST),
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

/// Copies request headers into one buffer sized to fit. hyper's header values are slices of the
/// connection's 8 KiB read buffer: keeping them (for the handshake) would keep that buffer alive
/// for the whole connection.
fn compact_headers(src: &HeaderMap) -> HeaderMap {
    let mut buf = bytes::BytesMut::with_capacity(src.values().map(|v| v.len()).sum());
    for (_, v) in src {
        buf.extend_from_slice(v.as_bytes());
    }
    let buf = buf.freeze();
    let mut out = HeaderMap::with_capacity(src.len());
    let mut at = 0;
    for (name, v) in src {
        let copy = HeaderValue::from_maybe_shared(buf.slice(at..at + v.len())).unwrap_or_else(|_| v.clone());
        at += v.len();
        out.append(name.clone(), copy);
    }
    out
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// A refused handshake: 503 `{"code":4,"message":…}`.
fn handshake_refused(message: &str) -> Response<Body> {
    let body = ErrorBody::new(EngineError::Forbidden.code(), message).to_json();
    text_response(StatusCode::SERVICE_UNAVAILABLE, "application/json", body)
}

/// Sends `PollAborted` if a GET is dropped while waiting for its answer.
struct AbortGuard(Option<MailSender<Cmd>>);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Cmd::PollAborted);
        }
    }
}

impl Engine {
    /// An endpoint running `handler` on every session.
    pub fn new(config: EngineConfig, options: EngineOptions, handler: Arc<dyn EngineHandler>) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                shutting_down: Default::default(),
                admission: Admission::new(Policy {
                    max_connections: options.max_connections,
                    handshake_rate_per_ip: options.handshake_rate_per_ip,
                    max_connections_per_ip: options.max_connections_per_ip,
                    max_half_open_per_ip: options.max_half_open_per_ip,
                }),
                config,
                options,
                handler,
                registry: Arc::new(Registry::default()),
            }),
        }
    }

    /// The protocol settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Open sessions still on HTTP long-polling (not upgraded to WebSocket).
    pub fn polling_count(&self) -> usize {
        self.inner
            .registry
            .handles()
            .iter()
            .filter(|h| h.transport() == crate::engineio::TransportKind::Polling)
            .count()
    }

    /// Bytes waiting in all outbound queues.
    pub fn queued_bytes(&self) -> usize {
        self.inner
            .registry
            .handles()
            .iter()
            .map(|h| h.outbox.queued_bytes())
            .sum()
    }

    /// Closes every session with reason "server shutting down" (after flushing what is queued) and
    /// refuses new sessions from now on.
    pub fn shutdown(&self) {
        self.inner
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        for h in self.inner.registry.handles() {
            let _ = h.cmds.send(Cmd::Shutdown);
        }
    }

    fn ws_config(&self) -> WebSocketConfig {
        let max = self.inner.config.max_payload;
        let read = if self.inner.options.ws_read_buffer == 0 {
            DEFAULT_WS_READ_BUFFER
        } else {
            self.inner.options.ws_read_buffer
        };
        WebSocketConfig::default()
            .read_buffer_size(read)
            // Frames taken in one driver turn are written together by the flush that ends it (one
            // syscall per batch instead of one per frame). The buffer keeps its capacity, so a busy
            // connection holds up to about this much; an idle one only what it ever needed.
            .write_buffer_size(WS_WRITE_BATCH)
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }

    /// Answers one HTTP request to the Engine.IO path.
    pub async fn handle(&self, req: Request<Body>, remote: SocketAddr) -> Response<Body> {
        let Some(cors) = self.inner.options.cors.clone() else {
            return self.route(req, remote).await;
        };
        // Only CORS needs the request's headers after routing consumed the request.
        let req_headers = req.headers().clone();
        if Cors::is_preflight(req.method()) {
            let mut res = empty(StatusCode::NO_CONTENT);
            cors.preflight(&req_headers, res.headers_mut());
            return res;
        }
        let mut res = self.route(req, remote).await;
        cors.headers(&req_headers, res.headers_mut());
        res
    }

    async fn route(&self, mut req: Request<Body>, remote: SocketAddr) -> Response<Body> {
        // A clone of the URI shares its bytes: the query is borrowed, and copied only for a handshake.
        let uri = req.uri().clone();
        let raw_query = uri.query().unwrap_or("");
        let query = Query::parse(raw_query);
        let method = match *req.method() {
            http::Method::GET => Method::Get,
            http::Method::POST => Method::Post,
            _ => Method::Other,
        };
        let ws = is_websocket_upgrade(req.headers());
        let registry = &self.inner.registry;
        let route = request::verify(&self.inner.config, method, &query, ws, |sid| {
            registry.get(sid).map(|h| h.transport())
        });
        let route = match route {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%remote, query = %raw_query, error = %e, "engine.io request refused");
                crate::metrics::inc(&crate::metrics::METRICS.engine_errors);
                return error_response(e);
            }
        };
        match route {
            Route::Handshake(TransportKind::Polling) => {
                let info = self.request_info(&req, raw_query.to_owned(), remote);
                let slot = match self.admit(&info) {
                    Ok(slot) => slot,
                    Err(message) => return handshake_refused(message),
                };
                let body = self.open(TransportKind::Polling, &info, None, slot);
                let mut res = text_response(StatusCode::OK, "text/plain; charset=UTF-8", body.unwrap_or_default());
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            Route::Handshake(TransportKind::WebSocket) => {
                let info = self.request_info(&req, raw_query.to_owned(), remote);
                let slot = match self.admit(&info) {
                    Ok(slot) => slot,
                    Err(message) => return handshake_refused(message),
                };
                let this = self.clone();
                // A failed upgrade drops the closure, and with it the slot.
                self.upgrade(&mut req, move |ws| {
                    this.open(TransportKind::WebSocket, &info, Some(ws), slot);
                })
            }
            Route::Upgrade(sid) => {
                let Some(handle) = registry.get(&sid) else {
                    return error_response(EngineError::UnknownSid);
                };
                self.upgrade(&mut req, move |ws| {
                    // If the session ended meanwhile, dropping the socket closes it.
                    let _ = handle.cmds.send(Cmd::Probe(ws));
                })
            }
            Route::Poll(sid) => match registry.get(&sid) {
                Some(handle) => {
                    let encoding = if self.inner.options.http_compression {
                        super::compress::negotiate(req.headers())
                    } else {
                        None
                    };
                    self.poll(handle, encoding).await
                }
                None => error_response(EngineError::UnknownSid),
            },
            Route::Post(sid) => match registry.get(&sid) {
                Some(handle) => self.post(handle, req).await,
                None => error_response(EngineError::UnknownSid),
            },
        }
    }

    /// Admits a handshake, holding a place in its client address's count, or says why not: the
    /// instance is shutting down, full, or the address is over one of its limits (see `admission`).
    fn admit(&self, info: &RequestInfo) -> Result<AddressSlot, &'static str> {
        if self.inner.shutting_down.load(std::sync::atomic::Ordering::Acquire) {
            return Err("Server is shutting down");
        }
        self.inner
            .admission
            .admit(info.client, self.inner.registry.len(), Instant::now())
            .map_err(|r| r.message())
    }

    fn request_info(&self, req: &Request<Body>, query: String, remote: SocketAddr) -> RequestInfo {
        RequestInfo {
            headers: Arc::new(compact_headers(req.headers())),
            query,
            url: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            remote,
            client: self
                .inner
                .options
                .trusted_proxies
                .client_address(remote.ip(), req.headers()),
            secure: false,
        }
    }

    /// Opens a session and starts its driver. Returns the handshake GET's body for polling.
    fn open(
        &self,
        transport: TransportKind,
        info: &RequestInfo,
        ws: Option<WsConn>,
        slot: AddressSlot,
    ) -> Option<Bytes> {
        let now = Instant::now();
        let sid: Arc<str> = sid::generate(self.inner.options.sid_tag.as_deref()).into();
        let mut session = Session::new(sid.to_string(), transport, self.inner.config.clone(), now);
        let first = match transport {
            TransportKind::Polling => match session.poll_transmit() {
                Some(Transmit::Poll(body)) => Some(body),
                _ => None,
            },
            TransportKind::WebSocket => None,
        };
        let outbox = Arc::new(Outbox::with_limits(self.inner.options.outbox_limits));
        let kind = Arc::new(AtomicU8::new(transport_to_u8(transport)));
        let conn = EngineConn::new(sid.clone(), outbox.clone(), kind.clone());
        let handler = Admitted::wrap(self.inner.handler.on_open(conn, info, now), slot);
        let (tx, rx) = mailbox();
        self.inner.registry.insert(
            sid.clone(),
            Handle {
                cmds: tx,
                outbox: outbox.clone(),
                transport: kind.clone(),
            },
        );
        tracing::debug!(sid = %sid, transport = transport.as_str(), remote = %info.remote, client = %info.client, "session opened");
        crate::metrics::inc(&crate::metrics::METRICS.handshakes);
        let driver = Driver::new(session, handler, outbox, kind, rx, ws, self.inner.registry.clone());
        tokio::spawn(driver);
        first
    }

    /// Answers 101 and runs `then` with the WebSocket once the connection is upgraded.
    fn upgrade(&self, req: &mut Request<Body>, then: impl FnOnce(WsConn) + Send + 'static) -> Response<Body> {
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return error_response(EngineError::BadRequest);
        };
        let abort = req.extensions().get::<ConnAbort>().cloned();
        let deflate = if self.inner.options.per_message_deflate {
            let offers = req.headers().get_all(header::SEC_WEBSOCKET_EXTENSIONS);
            super::wsframe::deflate::negotiate(offers.iter().filter_map(|v| v.to_str().ok()))
        } else {
            None
        };
        let on_upgrade = hyper::upgrade::on(&mut *req);
        let config = self.ws_config();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    let ws = match deflate {
                        Some(params) => WsIo::Deflate(Box::new(DeflateWs::new(
                            io,
                            params,
                            config.max_message_size.unwrap_or(usize::MAX),
                            config.read_buffer_size,
                            WS_WRITE_BATCH,
                        ))),
                        None => WsIo::Plain(Box::new(
                            WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await,
                        )),
                    };
                    then(WsConn { ws, abort });
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        let mut res = empty(StatusCode::SWITCHING_PROTOCOLS);
        let h = res.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(v) = deflate.and_then(|p| HeaderValue::from_str(&p.response()).ok()) {
            h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
        }
        res
    }

    async fn poll(&self, handle: Handle, encoding: Option<super::compress::Encoding>) -> Response<Body> {
        let (tx, rx) = oneshot::channel();
        if handle.cmds.send(Cmd::Poll(tx)).is_err() {
            return error_response(EngineError::UnknownSid);
        }
        let mut guard = AbortGuard(Some(handle.cmds.clone()));
        let answer = rx.await;
        guard.0 = None;
        match answer {
            Ok(Ok(body)) => {
                let (body, encoding) = match encoding {
                    Some(e) if body.len() >= super::compress::THRESHOLD => match compressed(e, body.clone()).await {
                        Some(z) => (z, Some(e)),
                        None => (body, None),
                    },
                    _ => (body, None),
                };
                let body = Body::new(PollBody::new(body, handle.cmds.clone()));
                let mut res = text_response(StatusCode::OK, "text/plain; charset=UTF-8", body);
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Some(e) = encoding {
                    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e.as_str()));
                }
                if self.inner.options.http_compression {
                    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                }
                res
            }
            Ok(Err(e)) => session_error_response(e),
            Err(_) => error_response(EngineError::UnknownSid),
        }
    }

    async fn post(&self, handle: Handle, req: Request<Body>) -> Response<Body> {
        // The start is not waited for: a POST overlapping another one closes the session there,
        // and this POST learns it from the answer to its body (one round trip to the driver per
        // POST, and usually one wakeup, since the body tends to come with the headers).
        if handle.cmds.send(Cmd::PostStart).is_err() {
            return error_response(EngineError::UnknownSid);
        }
        let max = self.inner.config.max_payload;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            let _ = handle.cmds.send(Cmd::PostAborted);
            return empty(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let mut guard = PostGuard(Some(handle.cmds.clone()));
        let mut stream = req.into_body().into_data_stream();
        let mut buf = BytesMut::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) if buf.len() + c.len() <= max => buf.extend_from_slice(&c),
                    Ok(_) => return Err(StatusCode::PAYLOAD_TOO_LARGE),
                    Err(_) => return Err(StatusCode::BAD_REQUEST),
                }
            }
            Ok(())
        };
        // A body trickled in slower than this is refused (slowloris); the session stays.
        match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
            Ok(Ok(())) => {}
            Ok(Err(status)) => return empty(status),
            Err(_) => {
                tracing::info!("polling POST body not received in time");
                return empty(StatusCode::REQUEST_TIMEOUT);
            }
        }
        guard.0 = None;
        let (tx, rx) = oneshot::channel();
        if handle.cmds.send(Cmd::Post(buf.freeze(), tx)).is_err() {
            return error_response(EngineError::UnknownSid);
        }
        match rx.await {
            Ok(Ok(())) => {
                let mut res = text_response(StatusCode::OK, "text/html", "ok");
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            Ok(Err(e)) => session_error_response(e),
            Err(_) => error_response(EngineError::UnknownSid),
        }
    }
}

/// Sends `PostAborted` if a POST ends before its body was handed over.
struct PostGuard(Option<MailSender<Cmd>>);

impl Drop for PostGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Cmd::PostAborted);
        }
    }
}
