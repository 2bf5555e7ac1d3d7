//! `tls.min_version: "1.3"`. Pingora's rustls listener enables TLS 1.2 and 1.3 and rustls tells
//! a certificate resolver nothing about versions, so the listener looks at the ClientHello
//! before the handshake: a client that does not offer TLS 1.3 (no `supported_versions`
//! extension with 0x0304) gets a `protocol_version` alert and the connection is closed. A
//! ClientHello split across several records is reassembled first (up to `MAX_HELLO`; a longer
//! one is refused), so splitting it cannot slip a TLS 1.2-only client past the check. Every
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

/// Largest ClientHello reassembled from its records; a longer one is refused. Real ones are a
/// few hundred bytes (a few KiB with post-quantum key shares).
pub const MAX_HELLO: usize = 32 * 1024;

#[async_trait]
impl PreTlsProcess for RequireTls13 {
    async fn process(&self, stream: &mut Stream) -> Result<()> {
        let (raw, hello) = match tokio::time::timeout(HELLO_WAIT, read_hello(stream)).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Error::e_explain(ErrorType::ReadError, e.to_string()),
            Err(_) => return Error::e_explain(ErrorType::ReadTimedout, "no ClientHello"),
        };
        stream.rewind(&raw);
        let refusal = match hello {
            Hello::Message(message) => {
                (offers_tls13(&message) == Some(false)).then_some("client does not offer TLS 1.3")
            }
            Hello::TooLarge => Some("ClientHello too large"),
            // Not a ClientHello we can read: rustls answers it.
            Hello::Incomplete | Hello::Other => None,
        };
        if let Some(reason) = refusal {
            let _ = stream.write_all(&PROTOCOL_VERSION_ALERT).await;
            let _ = stream.flush().await;
            log::debug!(
                "{}",
                serde_json::json!({"event": "tls_refused", "reason": reason})
            );
            return Error::e_explain(ErrorType::HandshakeError, reason);
        }
        Ok(())
    }
}

/// Handshake records until the ClientHello they carry is complete (it may be split across
/// several), or what else arrived. Returns every byte read, for rustls, and the verdict.
async fn read_hello(stream: &mut Stream) -> std::io::Result<(Vec<u8>, Hello)> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        raw.resize(start + 5, 0);
        stream.read_exact(&mut raw[start..]).await?;
        if raw[start] != 0x16 {
            return Ok((raw, Hello::Other));
        }
        let length = u16::from_be_bytes([raw[start + 3], raw[start + 4]]) as usize;
        raw.resize(start + 5 + length, 0);
        stream.read_exact(&mut raw[start + 5..]).await?;
        match reassemble(&raw) {
            Hello::Incomplete if raw.len() <= MAX_HELLO + 1024 => continue,
            Hello::Incomplete => return Ok((raw, Hello::TooLarge)),
            done => return Ok((raw, done)),
        }
    }
}

/// What the records in `raw` hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// The first handshake message, complete (type, length, body).
    Message(Vec<u8>),
    /// It goes on in records not read yet.
    Incomplete,
    /// A record that is not a handshake record.
    Other,
    /// A ClientHello longer than `MAX_HELLO`.
    TooLarge,
}

/// The first handshake message, reassembled from the handshake records in `raw`.
pub fn reassemble(raw: &[u8]) -> Hello {
    let mut r = Reader(raw);
    let mut message = Vec::new();
    loop {
        let Some(header) = r.take(5) else {
            return Hello::Incomplete;
        };
        if header[0] != 0x16 {
            return Hello::Other;
        }
        let length = u16::from_be_bytes([header[3], header[4]]) as usize;
        let Some(body) = r.take(length) else {
            return Hello::Incomplete;
        };
        message.extend_from_slice(body);
        if message.len() >= 4 {
            let need = 4 + u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
            if need > MAX_HELLO {
                return Hello::TooLarge;
            }
            if message.len() >= need {
                message.truncate(need);
                return Hello::Message(message);
            }
        }
    }
}

/// Whether a ClientHello handshake message offers TLS 1.3; `None` when it is not one we can
/// read.
pub fn offers_tls13(message: &[u8]) -> Option<bool> {
    let mut r = Reader(message);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let length = r.take(3)?;
    let length = u32::from_be_bytes([0, length[0], length[1], length[2]]) as usize;
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

/// A handshake record's message re-framed as records of at most `size` bytes each, as some
/// clients and middleboxes send it (tests and fuzzing build such ClientHellos).
pub fn split_into_records(record: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in record.get(5..).unwrap_or_default().chunks(size.max(1)) {
        out.extend([0x16, 0x03, 0x01]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend(chunk);
    }
    out
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

    /// The verdict on records as they arrive.
    fn verdict(raw: &[u8]) -> Option<bool> {
        match reassemble(raw) {
            Hello::Message(m) => offers_tls13(&m),
            _ => None,
        }
    }

    #[test]
    fn finds_tls13_in_supported_versions() {
        let both = hello(&[(0, vec![]), (43, vec![4, 0x03, 0x04, 0x03, 0x03])]);
        assert_eq!(verdict(&both), Some(true));
        let only12 = hello(&[(43, vec![2, 0x03, 0x03])]);
        assert_eq!(verdict(&only12), Some(false));
        assert_eq!(verdict(&hello(&[(10, vec![0, 2, 0, 29])])), Some(false));
    }

    #[test]
    fn a_client_hello_split_across_records_is_reassembled() {
        let only12 = hello(&[(0, vec![0; 40]), (43, vec![2, 0x03, 0x03])]);
        let both = hello(&[(0, vec![0; 40]), (43, vec![2, 0x03, 0x04])]);
        for size in [1, 2, 7, 50, 80] {
            let pieces = split_into_records(&only12, size);
            assert_eq!(verdict(&pieces), Some(false), "records of {size}");
            assert_eq!(
                verdict(&split_into_records(&both, size)),
                Some(true),
                "records of {size}"
            );
            // Until the last record is there, nothing is decided.
            assert_eq!(reassemble(&pieces[..pieces.len() - 1]), Hello::Incomplete);
        }
        // A declared length past the bound is refused without waiting for it.
        let mut huge = vec![0x16, 0x03, 0x01, 0, 4, 1];
        huge.extend(((MAX_HELLO as u32) << 8).to_be_bytes()[..3].iter());
        assert_eq!(reassemble(&huge), Hello::TooLarge);
    }

    #[test]
    fn anything_else_is_left_to_rustls() {
        let full = hello(&[(43, vec![2, 0x03, 0x04])]);
        assert_eq!(reassemble(&full[..20]), Hello::Incomplete);
        assert_eq!(reassemble(b"GET / HTTP/1.1\r\n"), Hello::Other);
        let mut broken = full.clone();
        broken[5] = 2; // ServerHello
        assert_eq!(verdict(&broken), None);
        // A hello split over two records, the first ending right after the compression
        // methods, is not taken for a hello without extensions before the rest arrives.
        let cut = full.len() - 9;
        let mut first = full[..cut].to_vec();
        first[3..5].copy_from_slice(&((cut - 5) as u16).to_be_bytes());
        assert_eq!(reassemble(&first), Hello::Incomplete);
    }
}
