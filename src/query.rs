//! A request's query string as `application/x-www-form-urlencoded` pairs: what
//! `url::form_urlencoded::parse` yields, without its per-piece work when there is nothing to
//! decode.
//!
//! `form_urlencoded` scans every name and value for `+`, again for `%`, then validates the
//! bytes as UTF-8 — on every convert request. A query reaches the gateway as `&str` (already
//! UTF-8), so a piece with neither `+` nor `%` is its own decoding and is borrowed as it is;
//! only a piece that has one is decoded (`+` as a space, percent escapes, invalid UTF-8
//! replaced), exactly as `form_urlencoded` does.

use std::borrow::Cow;

/// The `name=value` pairs of `query`, decoded; empty pieces skipped, a piece without `=` a
/// name with an empty value.
pub fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode(name), decode(value))
        })
}

/// One name or value: borrowed when it has nothing to decode; otherwise one copy made for
/// its `+`s and one for its escapes, each only when there is one to replace.
fn decode(piece: &str) -> Cow<'_, str> {
    if !piece.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(piece);
    }
    let spaced = match piece.contains('+') {
        true => Cow::Owned(piece.replace('+', " ")),
        false => Cow::Borrowed(piece),
    };
    if let Cow::Owned(decoded) = percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy() {
        return Cow::Owned(decoded);
    }
    // No escape to decode (`%` alone or not followed by two hex digits stays as it is).
    spaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_what_form_urlencoded_yields() {
        for query in [
            "",
            "&",
            "&&a=1&&",
            "url=http://images.example/a.jpg&width=300",
            "url=http%3A%2F%2Fx.com%2Fa%20b.jpg&width=10",
            "a+b=c+d&%2B=%2b",
            "name&=value&a==b&=",
            "bad=%zz%&pct=%&half=%4",
            "utf8=%C3%A9%E2%9C%93&broken=%C3%28&raw=é✓",
            "k=v=w&k=v%26w",
        ] {
            let ours: Vec<(String, String)> = pairs(query)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let theirs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, theirs, "{query}");
        }
    }

    #[test]
    fn plain_pieces_are_borrowed_and_encoded_ones_decoded() {
        let all: Vec<_> = pairs("url=http://x.example/a.jpg&q=a%20b+c").collect();
        assert!(matches!(all[0].0, Cow::Borrowed("url")));
        assert!(matches!(all[0].1, Cow::Borrowed("http://x.example/a.jpg")));
        assert_eq!(all[1].1, "a b c");
        assert!(matches!(all[1].1, Cow::Owned(_)));
    }
}
