//! The service's queue host as a base URL, and the exact request line of each call.
//!
//! The signature covers the path and query of the request line the service receives
//! (`CONTRACT.md`, Signing). A URL parser re-encodes what it is given (`{` becomes `%7B`,
//! `/./` disappears), and a base URL may carry a path prefix, so the client signs the path
//! and query of the URL it sends, never the configured path alone; and `validate` refuses
//! a configured path that would not be sent as written (see [`sent_path`]), so the
//! service's router sees the path its team configured.

use std::net::IpAddr;

use reqwest::Url;
use thiserror::Error;

/// Why a queue base URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BaseUrlError {
    #[error("`{0}` is not a URL: {1}")]
    NotAUrl(String, String),
    #[error("`{0}` must start with https:// (or http:// for a loopback address)")]
    Scheme(String),
    #[error("`{0}` is plain http to `{1}`, which is not a loopback address")]
    PlainHttpToRemote(String, String),
    #[error("`{0}` has a user name or password; the kit authenticates by signing, never by URL")]
    UserInfo(String),
    #[error("`{0}` has a query or fragment; the kit adds its own query on split")]
    QueryOrFragment(String),
    #[error("`{0}` has no host")]
    NoHost(String),
}

/// A checked queue base URL: `https://host[:port][/prefix]`, or `http://` to a loopback
/// address, without user info, query or fragment. Stored without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueBase {
    base: String,
}

/// One request's URL and the path-and-query of its request line, which is what is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub path_and_query: String,
}

impl QueueBase {
    pub fn parse(base: &str) -> Result<QueueBase, BaseUrlError> {
        let trimmed = base.trim_end_matches('/');
        let url =
            Url::parse(trimmed).map_err(|e| BaseUrlError::NotAUrl(base.into(), e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(BaseUrlError::UserInfo(base.into()));
        }
        if url.query().is_some() || url.fragment().is_some() || trimmed.contains(['?', '#']) {
            return Err(BaseUrlError::QueryOrFragment(base.into()));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => return Err(BaseUrlError::NoHost(base.into())),
        };
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => return Err(BaseUrlError::PlainHttpToRemote(base.into(), host)),
            _ => return Err(BaseUrlError::Scheme(base.into())),
        }
        Ok(QueueBase {
            base: trimmed.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The URL of `path_and_query` under this base, and the path and query exactly as
    /// the request line will carry them.
    pub fn target(&self, path_and_query: &str) -> Result<Target, String> {
        let url = Url::parse(&format!("{}{path_and_query}", self.base))
            .map_err(|e| format!("`{}{path_and_query}` is not a URL: {e}", self.base))?;
        let mut sent = url.path().to_string();
        if let Some(q) = url.query() {
            sent.push('?');
            sent.push_str(q);
        }
        Ok(Target {
            url,
            path_and_query: sent,
        })
    }
}

/// `127.0.0.0/8`, `::1` or `localhost`: the only hosts plain http may reach.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The path as a URL parser will send it. A configured path that differs would reach the
/// service in another form than its team wrote, so `validate` refuses it and shows this
/// one.
pub fn sent_path(path: &str) -> String {
    match Url::parse(&format!("https://queue.invalid{path}")) {
        Ok(url) => url.path().to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_be_plain_http() {
        assert!(QueueBase::parse("http://127.0.0.1:8081").is_ok());
        assert!(QueueBase::parse("http://127.9.9.9:8081/svc").is_ok());
        assert!(QueueBase::parse("http://localhost:8081").is_ok());
        assert!(QueueBase::parse("http://[::1]:8081").is_ok());
        assert!(QueueBase::parse("https://scores-queue.example.com/").is_ok());
        assert_eq!(
            QueueBase::parse("http://scores.internal"),
            Err(BaseUrlError::PlainHttpToRemote(
                "http://scores.internal".into(),
                "scores.internal".into()
            ))
        );
        // A prefix test passes this one; the host is evil.com.
        assert_eq!(
            QueueBase::parse("http://127.0.0.1@evil.com"),
            Err(BaseUrlError::UserInfo("http://127.0.0.1@evil.com".into()))
        );
        assert!(matches!(
            QueueBase::parse("http://127.0.0.1.evil.com"),
            Err(BaseUrlError::PlainHttpToRemote(..))
        ));
        assert!(matches!(
            QueueBase::parse("https://q.example.com/svc?x=1"),
            Err(BaseUrlError::QueryOrFragment(_))
        ));
        assert!(matches!(
            QueueBase::parse("https://q.example.com#x"),
            Err(BaseUrlError::QueryOrFragment(_))
        ));
        assert!(matches!(
            QueueBase::parse("ftp://q.example.com"),
            Err(BaseUrlError::Scheme(_))
        ));
    }

    #[test]
    fn the_signed_path_is_the_sent_path() {
        let base = QueueBase::parse("http://127.0.0.1:8081/svc/").unwrap();
        let t = base.target("/microprocesses/a/split?limit=5").unwrap();
        assert_eq!(t.path_and_query, "/svc/microprocesses/a/split?limit=5");
        assert_eq!(
            t.url.as_str(),
            "http://127.0.0.1:8081/svc/microprocesses/a/split?limit=5"
        );
        let t = base.target("/m/{x}/a b/./é").unwrap();
        assert_eq!(t.path_and_query, "/svc/m/%7Bx%7D/a%20b/%C3%A9");
        assert_eq!(t.url.path(), "/svc/m/%7Bx%7D/a%20b/%C3%A9");
    }

    #[test]
    fn paths_that_are_re_encoded_are_shown_as_sent() {
        assert_eq!(
            sent_path("/microprocesses/a/process"),
            "/microprocesses/a/process"
        );
        assert_eq!(sent_path("/m/{x}"), "/m/%7Bx%7D");
        assert_eq!(sent_path("/m/./p"), "/m/p");
        assert_eq!(sent_path("/m/%7Bx%7D"), "/m/%7Bx%7D");
    }
}
