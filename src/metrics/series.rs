//! The series a finished request counts in, kept per thread once found. `with_label_values`
//! hashes every label value and takes the vector's lock; a request counts in up to five
//! series, and traffic keeps hitting the same few (one route, one status, one user), so each
//! thread remembers the ones it used last and counts straight into them.
//!
//! Series are never removed from these vectors, so a remembered handle stays the series a
//! scrape reads. Entries name the `Metrics` they belong to: tests run several gateways in one
//! process.

use super::Metrics;
use prometheus::{Histogram, IntCounter};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

/// Series remembered per thread and kind; past it the oldest is forgotten.
const REMEMBERED: usize = 16;

/// A finished request on the public listener.
pub struct Finished<'a> {
    pub method: &'static str,
    pub endpoint: &'static str,
    pub status: u16,
    /// The authenticated user's id.
    pub user: Option<&'a Arc<str>>,
    pub elapsed: Duration,
}

/// The backend answer of a proxied request.
pub struct BackendAnswer<'a> {
    pub url: &'a str,
    /// `None` when the backend did not answer.
    pub status: Option<u16>,
    pub response_time: Option<Duration>,
}

/// The most recently used entries, at most `REMEMBERED`.
struct Recent<K, V> {
    entries: Vec<(K, V)>,
    /// Where the next new entry goes once full.
    next: usize,
}

impl<K, V> Recent<K, V> {
    const fn new() -> Self {
        Recent {
            entries: Vec::new(),
            next: 0,
        }
    }

    fn find_or_add(&mut self, matches: impl Fn(&K) -> bool, add: impl FnOnce() -> (K, V)) -> &V {
        let at = match self.entries.iter().position(|(k, _)| matches(k)) {
            Some(at) => at,
            None if self.entries.len() < REMEMBERED => {
                self.entries.push(add());
                self.entries.len() - 1
            }
            None => {
                let at = self.next;
                self.next = (at + 1) % REMEMBERED;
                self.entries[at] = add();
                at
            }
        };
        &self.entries[at].1
    }
}

struct RequestKey {
    metrics: u64,
    method: &'static str,
    endpoint: &'static str,
    status: u16,
    user: Option<Arc<str>>,
}

struct RequestSeries {
    requests: IntCounter,
    duration: Histogram,
    by_user: Option<IntCounter>,
}

struct BackendKey {
    metrics: u64,
    url: String,
    status: Option<u16>,
}

struct BackendSeries {
    requests: IntCounter,
    /// Made when the backend first answers (a refused connection has no response time).
    response_time: std::cell::OnceCell<Histogram>,
}

thread_local! {
    static REQUESTS: RefCell<Recent<RequestKey, RequestSeries>> = const { RefCell::new(Recent::new()) };
    static BACKENDS: RefCell<Recent<BackendKey, BackendSeries>> = const { RefCell::new(Recent::new()) };
}

impl Metrics {
    /// Count a finished request: its answer, its duration and, when known, its user.
    pub fn count_request(&self, finished: &Finished<'_>) {
        REQUESTS.with(|recent| {
            let mut recent = recent.borrow_mut();
            let series = recent.find_or_add(
                |k| {
                    k.metrics == self.id
                        && k.status == finished.status
                        && std::ptr::eq(k.endpoint, finished.endpoint)
                        && std::ptr::eq(k.method, finished.method)
                        && k.user.as_deref() == finished.user.map(|u| &**u)
                },
                || self.request_series(finished),
            );
            series.requests.inc();
            series.duration.observe(finished.elapsed.as_secs_f64());
            if let Some(by_user) = &series.by_user {
                by_user.inc();
            }
        });
    }

    fn request_series(&self, finished: &Finished<'_>) -> (RequestKey, RequestSeries) {
        let (method, endpoint) = (finished.method, finished.endpoint);
        let user = finished.user.map_or("anonymous", |u| &**u);
        let status = http::StatusCode::from_u16(finished.status).ok();
        let status_text = status.as_ref().map_or("0", |c| c.as_str());
        let series = RequestSeries {
            requests: self
                .http_requests
                .with_label_values(&[method, endpoint, status_text, user]),
            duration: self.http_duration.with_label_values(&[method, endpoint]),
            by_user: finished
                .user
                .map(|u| self.user_requests.with_label_values(&[&**u])),
        };
        let key = RequestKey {
            metrics: self.id,
            method,
            endpoint,
            status: finished.status,
            user: finished.user.cloned(),
        };
        (key, series)
    }

    /// Count a request sent to a backend, and the time to its response header.
    pub fn count_backend_answer(&self, answer: &BackendAnswer<'_>) {
        BACKENDS.with(|recent| {
            let mut recent = recent.borrow_mut();
            let series = recent.find_or_add(
                |k| k.metrics == self.id && k.status == answer.status && k.url == answer.url,
                || {
                    let code = answer
                        .status
                        .and_then(|s| http::StatusCode::from_u16(s).ok());
                    let status = code.as_ref().map_or("0", |c| c.as_str());
                    let series = BackendSeries {
                        requests: self
                            .backend_requests
                            .with_label_values(&[answer.url, status]),
                        response_time: std::cell::OnceCell::new(),
                    };
                    let key = BackendKey {
                        metrics: self.id,
                        url: answer.url.to_string(),
                        status: answer.status,
                    };
                    (key, series)
                },
            );
            series.requests.inc();
            if let Some(t) = answer.response_time {
                let histogram = series
                    .response_time
                    .get_or_init(|| self.backend_response_time.with_label_values(&[answer.url]));
                histogram.observe(t.as_secs_f64());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished<'a>(user: Option<&'a Arc<str>>, status: u16) -> Finished<'a> {
        Finished {
            method: "GET",
            endpoint: "/api/v1/convert",
            status,
            user,
            elapsed: Duration::from_millis(3),
        }
    }

    fn requests(m: &Metrics, status: &str, user: &str) -> u64 {
        m.http_requests
            .with_label_values(&["GET", "/api/v1/convert", status, user])
            .get()
    }

    #[test]
    fn each_registry_counts_its_own_requests() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let alice: Arc<str> = Arc::from("alice");
        for _ in 0..2 {
            a.count_request(&finished(Some(&alice), 200));
        }
        b.count_request(&finished(Some(&alice), 200));
        assert_eq!(requests(&a, "200", "alice"), 2);
        assert_eq!(requests(&b, "200", "alice"), 1);
        assert_eq!(a.user_requests.with_label_values(&["alice"]).get(), 2);
        let durations = a
            .http_duration
            .with_label_values(&["GET", "/api/v1/convert"]);
        assert_eq!(durations.get_sample_count(), 2);
    }

    #[test]
    fn more_series_than_remembered_all_count() {
        let m = Metrics::new();
        let users: Vec<Arc<str>> = (0..3 * REMEMBERED)
            .map(|i| Arc::from(format!("user{i}")))
            .collect();
        for _ in 0..3 {
            for user in &users {
                m.count_request(&finished(Some(user), 200));
                m.count_request(&finished(Some(user), 429));
            }
        }
        m.count_request(&finished(None, 401));
        for user in &users {
            assert_eq!(requests(&m, "200", user), 3, "{user}");
            assert_eq!(requests(&m, "429", user), 3, "{user}");
            assert_eq!(m.user_requests.with_label_values(&[user]).get(), 6);
        }
        assert_eq!(requests(&m, "401", "anonymous"), 1);
    }

    #[test]
    fn a_backend_without_an_answer_counts_as_status_zero_with_no_time() {
        let m = Metrics::new();
        let url = "http://127.0.0.1:1";
        m.count_backend_answer(&BackendAnswer {
            url,
            status: None,
            response_time: None,
        });
        let text = String::from_utf8(m.render(&[])).unwrap();
        assert!(
            !text.contains("backend_response_time_seconds_count"),
            "{text}"
        );
        m.count_backend_answer(&BackendAnswer {
            url,
            status: Some(200),
            response_time: Some(Duration::from_millis(2)),
        });
        let requests = |status| m.backend_requests.with_label_values(&[url, status]).get();
        assert_eq!((requests("0"), requests("200")), (1, 1));
        let times = m.backend_response_time.with_label_values(&[url]);
        assert_eq!(times.get_sample_count(), 1);
    }
}
