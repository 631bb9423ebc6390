//! What the OpenObserve URLs may hold. Requests go to
//! `{url}/api/{org}/v1/logs`, so a path in `url` is kept as a prefix (a
//! reverse proxy serving OpenObserve under `/o2`), but a URL that already
//! names the API (`/api/default`), or carries a query string or fragment,
//! would make wrong request paths: it is refused when the pipeline loads,
//! saying what to write instead. gRPC has no path prefix at all, so
//! `grpc_url` is scheme, host and port only. Never echoes the URL itself
//! (it may carry a password); only the part it refuses.

/// Why a URL cannot serve as an OpenObserve base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("is not a valid URL ({0})")]
    Invalid(String),
    #[error("must start with http:// or https://")]
    Scheme,
    #[error("ends in the API path `{0}`: shipd adds /api/{{org}}/v1/logs itself")]
    ApiPath(String),
    #[error("has a path (`{0}`), which gRPC cannot use")]
    GrpcPath(String),
    #[error("has a query string (`?…`), which would end up inside every request path")]
    Query,
    #[error("has a fragment (`#…`), which would end up inside every request path")]
    Fragment,
}

impl BaseUrlError {
    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        match self {
            BaseUrlError::ApiPath(_) => {
                "give the base URL (e.g. http://pi-obs:5080, or https://host/o2 behind a proxy); the org goes in `org` (OPENOBSERVE_ORG)"
            }
            BaseUrlError::GrpcPath(_) => "give scheme, host and port only, e.g. http://pi-obs:5081",
            BaseUrlError::Query | BaseUrlError::Fragment => {
                "give the base URL only, e.g. http://pi-obs:5080 (a path prefix like /o2 is fine)"
            }
            BaseUrlError::Invalid(_) | BaseUrlError::Scheme => "e.g. http://pi-obs:5080",
        }
    }
}

/// Which URL is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRole {
    /// The HTTP base: a path prefix is allowed.
    Http,
    /// The gRPC endpoint: scheme, host and port only.
    Grpc,
    /// A generic HTTP base (the `otlp` sink's): any path is a prefix.
    Prefix,
}

/// Checks `url` (userinfo allowed: it is taken out elsewhere) for `role`.
pub fn check(url: &str, role: UrlRole) -> Result<(), BaseUrlError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(BaseUrlError::Scheme);
    }
    let parsed = url::Url::parse(url).map_err(|e| BaseUrlError::Invalid(e.to_string()))?;
    if parsed.query().is_some() {
        return Err(BaseUrlError::Query);
    }
    if parsed.fragment().is_some() {
        return Err(BaseUrlError::Fragment);
    }
    let path = parsed.path().trim_end_matches('/');
    if path.is_empty() || role == UrlRole::Prefix {
        return Ok(());
    }
    if role == UrlRole::Grpc {
        return Err(BaseUrlError::GrpcPath(path.to_owned()));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // `/api`, `/api/{org}` or an endpoint under it (`/api/{org}/v1/logs`).
    if let Some(api) = segments.iter().rposition(|s| s.eq_ignore_ascii_case("api")) {
        if segments.len() - api <= 4 {
            return Err(BaseUrlError::ApiPath(format!(
                "/{}",
                segments[api..].join("/")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_with_or_without_a_proxy_prefix_is_accepted() {
        for url in [
            "http://pi-obs:5080",
            "http://pi-obs:5080/",
            "https://host/o2",
            "https://host/o2/",
            "https://user:pw@host/tools/openobserve",
        ] {
            assert_eq!(check(url, UrlRole::Http), Ok(()), "{url}");
        }
        assert_eq!(check("http://pi-obs:5081/", UrlRole::Grpc), Ok(()));
    }

    #[test]
    fn an_api_path_a_query_or_a_fragment_is_refused() {
        assert_eq!(
            check("http://o2:5080/api/default", UrlRole::Http),
            Err(BaseUrlError::ApiPath("/api/default".into()))
        );
        assert_eq!(
            check("https://host/o2/api/default/v1/logs", UrlRole::Http),
            Err(BaseUrlError::ApiPath("/api/default/v1/logs".into()))
        );
        assert_eq!(
            check("http://o2:5080/api/", UrlRole::Http),
            Err(BaseUrlError::ApiPath("/api".into()))
        );
        assert_eq!(
            check("http://o2:5080?x=1", UrlRole::Http),
            Err(BaseUrlError::Query)
        );
        assert_eq!(
            check("http://o2:5080/#top", UrlRole::Http),
            Err(BaseUrlError::Fragment)
        );
        assert_eq!(
            check("http://o2:5081/o2", UrlRole::Grpc),
            Err(BaseUrlError::GrpcPath("/o2".into()))
        );
        assert_eq!(check("ftp://o2", UrlRole::Http), Err(BaseUrlError::Scheme));
        assert!(matches!(
            check("http://", UrlRole::Http),
            Err(BaseUrlError::Invalid(_))
        ));
    }

    #[test]
    fn refusals_never_echo_credentials() {
        let err = check(
            "https://me:s3cret@host/api/default?token=abc",
            UrlRole::Http,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("s3cret") && !err.contains("abc"), "{err}");
    }
}
