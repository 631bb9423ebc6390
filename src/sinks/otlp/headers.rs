//! The custom headers of an OTLP sink: checked once when the pipeline loads
//! ([`check_headers`]), then built into an HTTP header map or gRPC metadata
//! sent with every request. Values are marked sensitive (they often carry a
//! bearer token) and never appear in an error; only names do.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

/// Headers shipd sets itself: a custom one would corrupt the request.
const RESERVED: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "te",
    "connection",
];

/// Why a custom header cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header name `{0}` is not a valid HTTP header name")]
    Name(String),
    #[error("the value of header `{0}` is not printable ASCII (or is empty)")]
    Value(String),
    #[error("header `{0}` is set by shipd itself")]
    Reserved(String),
    #[error("header `{0}` is given twice (names are case-insensitive)")]
    Twice(String),
}

/// Checks every header for both transports: a valid name (gRPC metadata
/// keys are its lowercase form), a printable ASCII value, none reserved
/// (`content-type`, `grpc-*`, ...), none twice.
pub fn check_headers(headers: &[(String, String)]) -> Result<(), HeaderError> {
    let mut seen = std::collections::HashSet::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(lower.as_bytes()).is_err()
            || lower.parse::<AsciiMetadataKey>().is_err()
        {
            return Err(HeaderError::Name(name.clone()));
        }
        if RESERVED.contains(&lower.as_str()) || lower.starts_with("grpc-") {
            return Err(HeaderError::Reserved(name.clone()));
        }
        if value.is_empty() || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(HeaderError::Value(name.clone()));
        }
        if !seen.insert(lower) {
            return Err(HeaderError::Twice(name.clone()));
        }
    }
    Ok(())
}

/// The headers as an HTTP header map, values sensitive.
pub fn http_headers(headers: &[(String, String)]) -> Result<HeaderMap, HeaderError> {
    check_headers(headers)?;
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| HeaderError::Name(name.clone()))?;
        let mut value =
            HeaderValue::from_str(value).map_err(|_| HeaderError::Value(name.clone()))?;
        value.set_sensitive(true);
        map.insert(key, value);
    }
    Ok(map)
}

/// The headers as gRPC metadata (keys lowercased).
pub fn grpc_metadata(headers: &[(String, String)]) -> Result<MetadataMap, HeaderError> {
    check_headers(headers)?;
    let mut map = MetadataMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key: AsciiMetadataKey = name
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| HeaderError::Name(name.clone()))?;
        let value: AsciiMetadataValue = value
            .parse()
            .map_err(|_| HeaderError::Value(name.clone()))?;
        map.insert(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn headers_become_http_headers_and_lowercase_grpc_metadata() {
        let headers = h(&[
            ("X-Scope-OrgID", "tenant-1"),
            ("Authorization", "Bearer t0k"),
        ]);
        let http = http_headers(&headers).unwrap();
        assert_eq!(http["x-scope-orgid"], "tenant-1");
        assert!(http["authorization"].is_sensitive());
        let grpc = grpc_metadata(&headers).unwrap();
        assert_eq!(grpc.get("x-scope-orgid").unwrap(), "tenant-1");
        assert_eq!(grpc.get("authorization").unwrap(), "Bearer t0k");
    }

    #[test]
    fn bad_reserved_or_repeated_headers_are_refused_without_their_value() {
        assert_eq!(
            check_headers(&h(&[("bad name", "x")])),
            Err(HeaderError::Name("bad name".into()))
        );
        assert_eq!(
            check_headers(&h(&[("Content-Type", "text/plain")])),
            Err(HeaderError::Reserved("Content-Type".into()))
        );
        assert_eq!(
            check_headers(&h(&[("grpc-timeout", "1S")])),
            Err(HeaderError::Reserved("grpc-timeout".into()))
        );
        let err = check_headers(&h(&[("x-token", "s3cret\n")])).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(
            check_headers(&h(&[("X-A", "1"), ("x-a", "2")])),
            Err(HeaderError::Twice("x-a".into()))
        );
    }
}
