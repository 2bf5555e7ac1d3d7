//! `tls.min_version: "1.3"`. Pingora's rustls listener enables TLS 1.2 and 1.3 and rustls tells
//! a certificate resolver nothing about versions, so the listener looks at the ClientHello
//! before the handshake: a client that does not offer TLS 1.3 (no `supported_versions`
//! extension with 0x0304) gets a `protocol_version` alert and the connection is closed. Every
//! byte read is put back for rustls, which then does the real handshake.

use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::prelude::*;
use pingora::protocols::l4::stream::Stream;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client has this long to send its ClientHello.
const HELLO_WAIT: Duration = Duration::from_secs(10);
const TLS13: [u8; 2] = [0x03, 0x04];
const SUPPORTED_VERSIONS: u16 = 43;
/// Alert record: fatal (2), protocol_version (70).
const PROTOCOL_VERSION_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 70];

pub struct RequireTls13;

#[async_trait]
impl PreTlsProcess for RequireTls13 {
    async fn process(&self, stream: &mut Stream) -> Result<()> {
        let record = match tokio::time::timeout(HELLO_WAIT, read_record(stream)).await {
            Ok(Ok(record)) => record,
            Ok(Err(e)) => return Error::e_explain(ErrorType::ReadError, e.to_string()),
            Err(_) => return Error::e_explain(ErrorType::ReadTimedout, "no ClientHello"),
        };
        let verdict = offers_tls13(&record);
        stream.rewind(&record);
        if verdict == Some(false) {
            let _ = stream.write_all(&PROTOCOL_VERSION_ALERT).await;
            let _ = stream.flush().await;
            log::debug!(
                "{}",
                serde_json::json!({"event": "tls_refused", "reason": "client does not offer TLS 1.3"})
            );
            return Error::e_explain(ErrorType::HandshakeError, "client does not offer TLS 1.3");
        }
        // Not a parsable ClientHello: rustls answers it.
        Ok(())
    }
}

/// The first TLS record (header and body).
async fn read_record(stream: &mut Stream) -> std::io::Result<Vec<u8>> {
    let mut record = vec![0; 5];
    stream.read_exact(&mut record).await?;
    let length = u16::from_be_bytes([record[3], record[4]]) as usize;
    if record[0] == 0x16 {
        record.resize(5 + length, 0);
        stream.read_exact(&mut record[5..]).await?;
    }
    Ok(record)
}

/// Whether a ClientHello record offers TLS 1.3; `None` when it is not one we can read.
pub fn offers_tls13(record: &[u8]) -> Option<bool> {
    let mut r = Reader(record);
    if r.u8()? != 0x16 {
        return None;
    }
    r.skip(4)?; // version, length
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let length = r.take(3)?;
    let length = u32::from_be_bytes([0, length[0], length[1], length[2]]) as usize;
    // None when the message goes on in another record (a fragmented ClientHello).
    let mut r = Reader(r.take(length)?);
    r.skip(2 + 32)?; // legacy version, random
    r.prefixed8()?; // session id
    r.prefixed16()?; // cipher suites
    r.prefixed8()?; // compression methods
    if r.0.is_empty() {
        return Some(false); // no extensions: TLS 1.2 or older
    }
    let mut extensions = Reader(r.prefixed16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.prefixed16()?;
        if kind == SUPPORTED_VERSIONS {
            let list = Reader(data).prefixed8()?;
            return Some(list.chunks_exact(2).any(|v| v == TLS13));
        }
    }
    Some(false)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a one-byte length.
    fn prefixed8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    /// A vector with a two-byte length.
    fn prefixed16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record with these extensions (type, data).
    fn hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend(kind.to_be_bytes());
            ext.extend((data.len() as u16).to_be_bytes());
            ext.extend(data);
        }
        let mut body = vec![0x03, 0x03];
        body.extend([7; 32]);
        body.extend([0]); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut handshake = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend((handshake.len() as u16).to_be_bytes());
        record.extend(handshake);
        record
    }

    #[test]
    fn finds_tls13_in_supported_versions() {
        let both = hello(&[(0, vec![]), (43, vec![4, 0x03, 0x04, 0x03, 0x03])]);
        assert_eq!(offers_tls13(&both), Some(true));
        let only12 = hello(&[(43, vec![2, 0x03, 0x03])]);
        assert_eq!(offers_tls13(&only12), Some(false));
        assert_eq!(
            offers_tls13(&hello(&[(10, vec![0, 2, 0, 29])])),
            Some(false)
        );
    }

    #[test]
    fn anything_else_is_left_to_rustls() {
        let full = hello(&[(43, vec![2, 0x03, 0x04])]);
        assert_eq!(offers_tls13(&full[..20]), None);
        assert_eq!(offers_tls13(b"GET / HTTP/1.1\r\n"), None);
        let mut broken = full.clone();
        broken[5] = 2; // ServerHello
        assert_eq!(offers_tls13(&broken), None);
        // A ClientHello split over two records, the first ending right after the compression
        // methods: it must not pass for a hello without extensions (a TLS 1.2-only one).
        let mut split = hello(&[]);
        let cut = split.len() - 2; // the extensions length goes to the next record
        split.truncate(cut);
        let body = (cut - 5) as u16;
        split[3..5].copy_from_slice(&body.to_be_bytes());
        assert_eq!(offers_tls13(&split), None);
    }
}
