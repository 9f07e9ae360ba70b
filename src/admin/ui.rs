//! Serves the embedded Admin UI at `/admin/` (index, scripts, styles, images and the icon font),
//! with content types, an ETag, and long caching for the content-hashed assets.

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/admin_ui.rs"));
}

/// Whether the UI was embedded at build time.
pub fn available() -> bool {
    !embedded::FILES.is_empty()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        _ => "application/octet-stream",
    }
}

fn not_found(message: &str) -> Response<Body> {
    let body = serde_json::json!({"ok": false, "error": {"code": "not_found", "message": message}});
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Answers `GET /admin/{path}` (`""` is the index).
pub fn serve(path: &str, request: &HeaderMap) -> Response<Body> {
    if !available() {
        return not_found("Admin UI not embedded: run `npm ci --prefix public` and rebuild");
    }
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(i) = embedded::FILES.iter().position(|(n, _)| *n == path) else {
        return not_found("no such Admin UI file");
    };
    let bytes = embedded::FILES[i].1;
    // The files are fixed at build time: their length and a content hash name them, hashed once.
    static ETAGS: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        embedded::FILES
            .iter()
            .map(|(_, b)| {
                HeaderValue::from_str(&format!("\"{:x}-{:x}\"", b.len(), fnv1a(b)))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    });
    let etag = etags[i].clone();
    let mut res = if request.get(header::IF_NONE_MATCH) == Some(&etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(bytes));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        r
    };
    // js/ and css/ names carry a content hash; the index and the rest revalidate.
    let cache = if path.starts_with("js/") || path.starts_with("css/") || path.starts_with("img/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res.headers_mut().insert(header::ETAG, etag);
    res.headers_mut()
        .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_loads_nothing_from_a_cdn() {
        if !available() {
            // Built without `npm ci --prefix public`; CI always installs it.
            assert!(std::env::var_os("CI").is_none(), "the Admin UI must be embedded in CI");
            return;
        }
        let index = embedded::FILES.iter().find(|(n, _)| *n == "index.html").expect("index");
        let text = std::str::from_utf8(index.1).expect("utf-8");
        assert!(!text.contains("https://"), "{text}");
        assert!(text.contains("mdi/css/materialdesignicons.min.css"));
        assert!(
            embedded::FILES
                .iter()
                .any(|(n, _)| *n == "mdi/fonts/materialdesignicons-webfont.woff2")
        );
    }

    #[test]
    fn answers() {
        let res = serve("nope.js", &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        if available() {
            let res = serve("", &HeaderMap::new());
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, res.headers()[header::ETAG].clone());
            assert_eq!(serve("index.html", &h).status(), StatusCode::NOT_MODIFIED);
        }
    }
}
