//! The fields of a structured log line, written straight into the line's buffer as JSON
//! (`,"name":value` each): no serializer, no intermediate tree. Strings are escaped as JSON
//! requires (`"`, `\`, control characters); everything else is copied as it is.

use std::io::Write;

/// Fields appended to a line; each starts with the `,` that separates it from the previous.
pub struct Fields<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Fields<'a> {
    /// Fields appended to `out` (a line's buffer, or a test's).
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Fields<'a> {
        Fields { out }
    }

    fn name(&mut self, name: &'static str) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string field.
    pub fn str(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.name(name);
        escaped(self.out, value);
        self
    }

    /// A string field, `null` when absent.
    pub fn opt_str(&mut self, name: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.str(name, value),
            None => self.null(name),
        }
    }

    /// An unsigned number.
    pub fn uint(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.name(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// An unsigned number, `null` when absent.
    pub fn opt_uint(&mut self, name: &'static str, value: Option<u64>) -> &mut Self {
        match value {
            Some(value) => self.uint(name, value),
            None => self.null(name),
        }
    }

    /// Milliseconds with three decimals (microsecond resolution).
    pub fn millis(&mut self, name: &'static str, value: std::time::Duration) -> &mut Self {
        let micros = value.as_micros().min(u128::from(u64::MAX)) as u64;
        self.name(name);
        let mut digits = itoa::Buffer::new();
        self.out
            .extend_from_slice(digits.format(micros / 1000).as_bytes());
        let fraction = micros % 1000;
        self.out.extend_from_slice(&[
            b'.',
            b'0' + (fraction / 100) as u8,
            b'0' + (fraction / 10 % 10) as u8,
            b'0' + (fraction % 10) as u8,
        ]);
        self
    }

    /// An IP address, as a string; `null` when absent. IPv4 is written digit by digit (the
    /// common case, on every request line); IPv6 in its canonical text form.
    pub fn opt_ip(&mut self, name: &'static str, value: Option<std::net::IpAddr>) -> &mut Self {
        let Some(ip) = value else {
            return self.null(name);
        };
        self.name(name);
        match ip {
            std::net::IpAddr::V4(v4) => {
                self.out.push(b'"');
                let mut digits = itoa::Buffer::new();
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    self.out.extend_from_slice(digits.format(octet).as_bytes());
                }
                self.out.push(b'"');
            }
            std::net::IpAddr::V6(v6) => {
                let _ = write!(self.out, "\"{v6}\"");
            }
        }
        self
    }

    fn null(&mut self, name: &'static str) -> &mut Self {
        self.name(name);
        self.out.extend_from_slice(b"null");
        self
    }
}

/// What a byte becomes inside a JSON string: 0 for itself, `u` for `\u00XX`, else the letter
/// after a backslash.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any of the eight bytes of `chunk` has to be escaped: below 0x20, `"` or `\`.
/// (For bytes `x` and `n` ≤ 0x80, `(x - n) & !x & 0x80` is set in some byte exactly when some
/// byte is below `n`; a byte equal to `c` is a zero byte of `x ^ c`.)
fn needs_escape(chunk: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let control = below(chunk, 0x20);
    let quote = below(chunk ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(chunk ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

/// `value` as a JSON string: runs of plain bytes copied whole; the leading plain bytes found
/// eight at a time, the rest by one table lookup per byte.
fn escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let plain = 8 * bytes
        .chunks_exact(8)
        .take_while(|chunk| {
            // Every chunk has eight bytes; the fallback (zeros) would only end the skip.
            !needs_escape(u64::from_ne_bytes((*chunk).try_into().unwrap_or([0; 8])))
        })
        .count();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(plain) {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(write: impl FnOnce(&mut Fields)) -> serde_json::Value {
        let mut out = Vec::new();
        write(&mut Fields::new(&mut out));
        out[0] = b'{';
        out.push(b'}');
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out));
        })
    }

    #[test]
    fn every_string_reads_back_as_written() {
        let hostile = "/a\"b\\c\n\r\t\u{0}\u{1f}\u{7f}é✓/%22";
        let line = object(|f| {
            f.str("path", hostile)
                .opt_str("user_id", None)
                .opt_str("key_id", Some("k1"));
        });
        assert_eq!(line["path"], hostile);
        assert!(line["user_id"].is_null());
        assert_eq!(line["key_id"], "k1");
    }

    /// Every byte that needs escaping, at every position of a string long enough to be read
    /// eight bytes at a time, and every other byte value beside it.
    #[test]
    fn escapes_are_found_wherever_they_are() {
        let specials: Vec<char> = (0u8..0x20).map(char::from).chain(['"', '\\']).collect();
        for special in specials {
            for at in 0..24 {
                let mut text: String = "abcdefghijklmnopqrstuvwxyz".into();
                text.insert(at, special);
                let line = object(|f| {
                    f.str("v", &text);
                });
                assert_eq!(line["v"], text.as_str(), "{special:?} at {at}");
            }
        }
        let every: String = (0x20u8..0x7f)
            .map(char::from)
            .chain("é✓\u{7f}".chars())
            .collect();
        let mut out = Vec::new();
        escaped(&mut out, &every);
        assert_eq!(out, serde_json::to_vec(&every).unwrap());
        for (chunk, expected) in [
            (*b"abcdefgh", false),
            (*b"abc\"efgh", true),
            (*b"\\bcdefgh", true),
            (*b"abcdefg\x1f", true),
            (*b"\x7f\x80\xff !#[]", false),
        ] {
            assert_eq!(
                needs_escape(u64::from_ne_bytes(chunk)),
                expected,
                "{chunk:?}"
            );
        }
    }

    #[test]
    fn numbers_addresses_and_durations() {
        let ip: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let line = object(|f| {
            f.uint("status", 200)
                .opt_uint("backend_status", None)
                .opt_uint("bytes", Some(u64::MAX))
                .millis("duration_ms", std::time::Duration::from_micros(12_045))
                .millis("fast", std::time::Duration::from_nanos(999))
                .opt_ip("client_ip", Some(ip))
                .opt_ip("v4", Some(std::net::Ipv4Addr::new(10, 0, 255, 7).into()))
                .opt_ip("none", None);
        });
        assert_eq!(line["status"], 200);
        assert!(line["backend_status"].is_null());
        assert_eq!(line["bytes"], u64::MAX);
        assert_eq!(line["duration_ms"].as_f64(), Some(12.045));
        assert_eq!(line["fast"].as_f64(), Some(0.0));
        assert_eq!(line["client_ip"], "2001:db8::1");
        assert_eq!(line["v4"], "10.0.255.7");
        assert!(line["none"].is_null());
    }
}
