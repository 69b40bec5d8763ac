//! Where split pages come from: the service's split endpoint (signed `GET` through
//! [`ServiceClient`]), or a test double.

use std::time::Duration;

use futures::future::BoxFuture;
use microprocess_shared::contract::SplitPage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::{ServiceClient, SplitPageError};

/// A source of split pages.
pub trait PageSource: Send + Sync {
    /// The page at `cursor` (`None`: the first page), at most `limit` items, answered
    /// within `timeout`.
    fn page<'a>(
        &'a self,
        run: &'a RunId,
        limit: u32,
        cursor: Option<&'a str>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SplitPage, SplitPageError>>;
}

/// `GET <split path>?limit=<n>[&cursor=<c>]` on the service's queue host.
#[derive(Debug, Clone)]
pub struct ServiceSplit {
    client: ServiceClient,
    path: String,
}

impl ServiceSplit {
    pub fn new(client: ServiceClient, path: impl Into<String>) -> ServiceSplit {
        ServiceSplit {
            client,
            path: path.into(),
        }
    }
}

impl PageSource for ServiceSplit {
    fn page<'a>(
        &'a self,
        run: &'a RunId,
        limit: u32,
        cursor: Option<&'a str>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SplitPage, SplitPageError>> {
        Box::pin(
            self.client
                .split_page(&self.path, run, limit, cursor, timeout),
        )
    }
}
