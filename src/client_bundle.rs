//! Serves the stock socket.io-client bundle like Node's `serveClient`: `/socket.io/socket.io.js`,
//! `.min.js`, `.esm.min.js`, their source maps, with an ETag and 304 answers.

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/client_bundle.rs"));
}

/// The embedded client version, or `None` when the binary was built without the bundle.
pub fn version() -> Option<&'static str> {
    (!embedded::FILES.is_empty()).then_some(embedded::VERSION)
}

/// File names that can be served.
pub fn file_names() -> impl Iterator<Item = &'static str> {
    embedded::FILES.iter().map(|(n, _)| *n)
}

/// Answers a request for `name` (e.g. `socket.io.min.js`).
pub fn serve(name: &str, request: &HeaderMap) -> Response<Body> {
    let Some((_, bytes)) = embedded::FILES.iter().find(|(n, _)| *n == name) else {
        let mut res = Response::new(Body::from(
            r#"{"error":"socket.io-client bundle not embedded: run `npm ci --prefix public` and rebuild"}"#,
        ));
        *res.status_mut() = StatusCode::NOT_FOUND;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return res;
    };
    let etag = format!("\"{}\"", embedded::VERSION);
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let mut res = if request.get(header::IF_NONE_MATCH) == Some(&etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(*bytes));
        let ct = if name.ends_with(".map") {
            "application/json"
        } else {
            "application/javascript; charset=utf-8"
        };
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=0"));
    res.headers_mut().insert(header::ETAG, etag);
    res
}
