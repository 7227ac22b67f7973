//! Where header edits land, so header code can edit either of Pingora's and `http`'s maps.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// Where header edits land: Pingora's `RequestHeader` (keeps each name's letter case, at the
/// price of a second map and a name parse per insert) or a plain `http::HeaderMap`
/// (what `edit_plain` in the headers module lends).
pub trait Edit {
    fn map(&self) -> &http::HeaderMap;
    fn remove(&mut self, name: &HeaderName);
    fn insert(&mut self, name: &HeaderName, value: HeaderValue);
    /// Room for `n` more headers, where the backing maps allow it.
    fn reserve(&mut self, n: usize);
}

impl Edit for RequestHeader {
    fn map(&self) -> &http::HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
        // Infallible for a valid `HeaderName`: Pingora re-parses the name it was given.
        let _ = self.insert_header(name.clone(), value);
    }
    fn reserve(&mut self, _: usize) {}
}

impl Edit for http::HeaderMap {
    fn map(&self) -> &http::HeaderMap {
        self
    }
    fn remove(&mut self, name: &HeaderName) {
        http::HeaderMap::remove(self, name);
    }
    fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
        // Fails only past `http`'s 32,768 entries, which Pingora's parser never lets in.
        let _ = self.try_insert(name.clone(), value);
    }
    fn reserve(&mut self, n: usize) {
        let _ = self.try_reserve(n);
    }
}
