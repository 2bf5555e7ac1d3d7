//! Hot-path building blocks: backend selection, URL signing, option rendering, request ids.
//! Run with `cargo bench --bench hot_path`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use imgproxy_gateway::config::load_str;
use imgproxy_gateway::identity::key;
use imgproxy_gateway::identity::model::{Role, Status, Whitelist};
use imgproxy_gateway::identity::Identity;
use imgproxy_gateway::imgproxy::{processing_path, Format, ImageParams, Signer};
use imgproxy_gateway::limits::headers;
use imgproxy_gateway::limits::local::LocalLimiter;
use imgproxy_gateway::limits::rules::{Kind, Rule, Shape};
use imgproxy_gateway::request_id;
use imgproxy_gateway::state::{authenticator, unix_now};
use imgproxy_gateway::upstream::{Pool, Tried};
use std::net::IpAddr;

fn bench(c: &mut Criterion) {
    let config = load_str(
        "backends:\n  - url: http://127.0.0.1:48080\n    weight: 70\n  - url: http://127.0.0.1:48081\n    weight: 30\n",
        Vec::new(),
    )
    .expect("config");
    let pool = Pool::build(&config).expect("pool");
    c.bench_function("pool.pick (smooth weighted, 2 backends)", |b| {
        b.iter(|| black_box(pool.pick(Tried::default())))
    });

    let signer = Signer::from_hex(
        Some("943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"),
        Some("520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"),
        32,
    )
    .expect("signer");
    let mut params = ImageParams::new(Format::Webp);
    params.set("width", "300").expect("width");
    c.bench_function("processing_path + sign", |b| {
        b.iter(|| {
            let path = processing_path(
                black_box(&params),
                black_box("https://images.example.com/cat.jpg"),
            );
            black_box(signer.signed_path(&path))
        })
    });

    c.bench_function("request_id::from_header (client id kept)", |b| {
        b.iter(|| {
            black_box(request_id::RequestId::from_header(Some(black_box(
                &http::HeaderValue::from_static("client-request-0001"),
            ))))
        })
    });
}

/// A verified key on the hot path: parse, SHA-256, cache read, admission (expiry, status,
/// whitelist) and the last-used mark, among 10 000 cached keys.
fn bench_auth(c: &mut Criterion) {
    let config = load_str(
        "backends:\n  - url: http://127.0.0.1:48080\n  - url: http://127.0.0.1:48081\n",
        Vec::new(),
    )
    .expect("config");
    let auth = authenticator(&config);
    let whitelist = Whitelist::parse(&["10.0.0.0/8".into(), "192.0.2.0/24".into()]).expect("cidrs");
    let mut keys = Vec::new();
    for i in 0..10_000 {
        let user = format!("user_{i}");
        let new = key::generate(&user);
        let identity = Identity::new(
            user,
            new.lookup_id,
            Role::User,
            Status::Active,
            whitelist.clone(),
            None,
            None,
            None,
        );
        auth.prime(&new.key, identity);
        keys.push(new.key);
    }
    let client: IpAddr = "192.0.2.10".parse().expect("ip");
    let mut i = 0;
    c.bench_function("auth cache hit (10k keys cached)", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let identity = auth.cached(black_box(&keys[i])).expect("ok").expect("hit");
            let now = unix_now();
            identity.admit(client, now).expect("admitted");
            identity.touch(now);
            black_box(identity)
        })
    });
}

/// The embedded limiter deciding a request with every level on (IP bucket, user minute and
/// hour windows, endpoint window, request quota), among 10 000 users.
fn bench_limits(c: &mut Criterion) {
    let limiter = LocalLimiter::default();
    let rules_of = |i: usize| -> Vec<Rule> {
        vec![
            Rule {
                kind: Kind::Ip,
                key: format!("ip:10.0.{}.{}", i / 256 % 256, i % 256)
                    .as_str()
                    .into(),
                limit: 1_000_000,
                shape: Shape::Bucket {
                    per_minute: 1_000_000,
                },
            },
            Rule {
                kind: Kind::UserMinute,
                key: format!("um:user_{i}:0").as_str().into(),
                limit: u64::MAX,
                shape: Shape::Window { start: 0, secs: 60 },
            },
            Rule {
                kind: Kind::UserHour,
                key: format!("uh:user_{i}:0").as_str().into(),
                limit: u64::MAX,
                shape: Shape::Window {
                    start: 0,
                    secs: 3600,
                },
            },
            Rule {
                kind: Kind::Api,
                key: "api:/api/v1/convert:0".into(),
                limit: u64::MAX,
                shape: Shape::Window { start: 0, secs: 60 },
            },
            Rule {
                kind: Kind::Requests,
                key: format!("qr:user_{i}:20261101").as_str().into(),
                limit: u64::MAX,
                shape: Shape::Period {
                    start: 0,
                    end: 4_000_000_000,
                    seed: 0,
                },
            },
        ]
    };
    let all: Vec<Vec<Rule>> = (0..10_000).map(rules_of).collect();
    let mut i = 0;
    c.bench_function("embedded limiter check (5 levels, 10k users)", |b| {
        b.iter(|| {
            i = (i + 7919) % all.len();
            let decision = limiter.check(black_box(&all[i]), 1_000_000, 1);
            black_box(headers::render(&decision, 1_000))
        })
    });
}

/// What the proxy records per finished request for an authenticated user: 4 label lookups and
/// a histogram observation.
fn bench_metrics(c: &mut Criterion) {
    let m = imgproxy_gateway::metrics::Metrics::new();
    let users: Vec<String> = (0..1000).map(|i| format!("user_{i}")).collect();
    let mut i = 0;
    c.bench_function("metrics record per request (1k users)", |b| {
        b.iter(|| {
            i = (i + 7) % users.len();
            let user = users[i].as_str();
            m.active_connections.dec();
            m.http_requests
                .with_label_values(&["GET", "/api/v1/convert", "200", user])
                .inc();
            m.http_duration
                .with_label_values(&["GET", "/api/v1/convert"])
                .observe(black_box(0.0042));
            m.user_requests.with_label_values(&[user]).inc();
            m.backend_requests
                .with_label_values(&["http://127.0.0.1:48080", "200"])
                .inc();
        })
    });
}

/// The same from two threads at once (the machine's cores), as Pingora's worker threads record.
fn bench_metrics_threads(c: &mut Criterion) {
    let m = imgproxy_gateway::metrics::Metrics::new();
    let users: Vec<String> = (0..1000).map(|i| format!("user_{i}")).collect();
    c.bench_function("metrics record per request, 2 threads at once", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (m, users) = (&m, &users);
                    s.spawn(move || {
                        for i in 0..iters {
                            let user = users[((i * 7 + t) % 1000) as usize].as_str();
                            m.http_requests
                                .with_label_values(&["GET", "/api/v1/convert", "200", user])
                                .inc();
                            m.http_duration
                                .with_label_values(&["GET", "/api/v1/convert"])
                                .observe(black_box(0.0042));
                            m.user_requests.with_label_values(&[user]).inc();
                        }
                    });
                }
            });
            // Both threads ran `iters` records: this is the time of one, with the other busy.
            start.elapsed()
        })
    });
}

criterion_group!(
    benches,
    bench,
    bench_auth,
    bench_limits,
    bench_metrics,
    bench_metrics_threads
);
criterion_main!(benches);
