//! Reading a fuzz input as a sequence of small choices, and signing test tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A fuzz input read front to back; reads past the end give zeros and empty strings, so every
/// input is a valid program.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    /// A little-endian u64 of `len` bytes (at most 8).
    pub(crate) fn uint(&mut self, len: usize) -> u64 {
        (0..len.min(8)).fold(0u64, |v, i| v | (u64::from(self.byte()) << (8 * i)))
    }

    /// A length byte, then that many bytes as text (lossy).
    pub(crate) fn text(&mut self) -> String {
        let len = usize::from(self.byte()).min(self.data.len());
        let (s, rest) = self.data.split_at(len);
        self.data = rest;
        String::from_utf8_lossy(s).into_owned()
    }

    /// One of `choices`, picked by the next byte.
    pub(crate) fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()].clone()
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// A JWT whose header and claims are the text given, signed with HS256 by `secret`:
/// `text` is `header\nclaims`, or only the claims (then the header is the usual HS256 one).
pub(crate) fn sign_hs256(secret: &[u8], text: &str) -> String {
    let (header, claims) = text.split_once('\n').unwrap_or((r#"{"alg":"HS256","typ":"JWT"}"#, text));
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("any bytes are an HS256 secret");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).expect("HS256 signs");
    format!("{message}.{signature}")
}
