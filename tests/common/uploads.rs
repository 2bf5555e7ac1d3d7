//! Uploads in parallel, and what they leave stored.

use super::*;

/// A real JPEG padded with trailing bytes to `size` (image sniffing reads only the head).
pub fn jpeg_of_size(size: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(fixture("board-720x477.jpg")).unwrap();
    bytes.resize(size.max(bytes.len()), 0);
    bytes
}

/// Upload `bytes` `n` times at once, round robin over `gateways`: each answer's status and
/// `quota` field (for a 402).
pub async fn parallel_uploads(
    gateways: &[&Gateway],
    key: &str,
    n: usize,
    bytes: &[u8],
) -> Vec<(u16, Option<String>)> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let url = gateways[i % gateways.len()].url("/api/v1/upload");
            let (key, bytes) = (key.to_string(), bytes.to_vec());
            tokio::spawn(async move {
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes).file_name("a.jpg"),
                );
                let r = client()
                    .post(url)
                    .header("X-API-Key", key)
                    .multipart(form)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, body["error"]["quota"].as_str().map(str::to_string))
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The stored bytes of `user` by the admin quota report, and a check that every answer was a
/// 200 or a storage 402 and that the 200s are what is stored.
pub async fn storage_after_parallel_uploads(
    gw: &Gateway,
    user: &str,
    answers: &[(u16, Option<String>)],
    each: usize,
) -> u64 {
    for (status, quota) in answers {
        assert!(
            *status == 200 || (*status == 402 && quota.as_deref() == Some("storage_bytes")),
            "{answers:?}"
        );
    }
    let stored = answers.iter().filter(|(s, _)| *s == 200).count();
    assert!(stored >= 1, "at least one upload fits: {answers:?}");
    let (_, quota) = admin(gw, "GET", &format!("/api/v1/users/{user}/quota"), KEY, None).await;
    let used = quota["storage_bytes"]["used"].as_u64().unwrap();
    assert_eq!(
        used,
        (stored * each) as u64,
        "the stored uploads are what counts"
    );
    used
}
