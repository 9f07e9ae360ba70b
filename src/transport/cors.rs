//! CORS for the Engine.IO endpoint, with the semantics of the `cors` package Node's engine.io uses.

use http::{HeaderMap, HeaderValue, Method, header};

/// Allowed origins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// Any origin: `Access-Control-Allow-Origin: *`.
    Any,
    /// These origins, reflected when they match, with credentials allowed.
    List(Vec<String>),
}

impl Cors {
    /// Parses `CORS_ORIGIN`: `*` or a comma-separated list of origins.
    pub fn parse(s: &str) -> Cors {
        if s.trim() == "*" {
            return Cors::Any;
        }
        Cors::List(
            s.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        )
    }

    /// Headers to add to a response to a request with these headers.
    pub fn headers(&self, request: &HeaderMap, out: &mut HeaderMap) {
        match self {
            Cors::Any => {
                out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            }
            Cors::List(list) => {
                out.insert(header::VARY, HeaderValue::from_static("Origin"));
                let origin = request.get(header::ORIGIN).and_then(|o| o.to_str().ok());
                if let Some(origin) = origin.filter(|o| list.iter().any(|a| a == o))
                    && let Ok(v) = HeaderValue::from_str(origin)
                {
                    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                    out.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
            }
        }
    }

    /// Headers of a preflight (`OPTIONS`) answer, which is `204` with an empty body.
    pub fn preflight(&self, request: &HeaderMap, out: &mut HeaderMap) {
        self.headers(request, out);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
        );
        if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
            out.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Headers"));
        }
        out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }

    /// Whether a request is a preflight.
    pub fn is_preflight(method: &Method) -> bool {
        method == Method::OPTIONS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_and_list() {
        let mut req = HeaderMap::new();
        req.insert(header::ORIGIN, HeaderValue::from_static("http://a.test"));
        let mut out = HeaderMap::new();
        Cors::parse("*").headers(&req, &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let mut out = HeaderMap::new();
        Cors::parse("http://b.test, http://a.test/").headers(&req, &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://a.test");
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let mut out = HeaderMap::new();
        Cors::parse("http://b.test").headers(&req, &mut out);
        assert!(!out.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
