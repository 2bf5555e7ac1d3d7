//! Hot-path building blocks: backend selection, URL signing, option rendering, request ids.
//! Run with `cargo bench --bench hot_path`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use imgproxy_gateway::config::load_str;
use imgproxy_gateway::imgproxy::{processing_path, Format, ImageParams, Signer};
use imgproxy_gateway::request_id;
use imgproxy_gateway::upstream::{Pool, Tried};

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
            black_box(request_id::from_header(Some(black_box(
                b"client-request-0001",
            ))))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
