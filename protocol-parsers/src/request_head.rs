//! The parts of a request head that spans use, as one shared text.
//!
//! A head's fields (method, target, `Host`, `User-Agent`, ...) are laid end
//! to end in one `Arc<str>`, made once per request: one allocation instead of
//! one per field, and span building can point into it
//! (`span_model::AttrValue::Part`) instead of copying `url.path`, `url.query`
//! or `user_agent.original`. Header values are converted to text once, here:
//! a head's fields are checked as UTF-8 together, and only one that is not
//! valid is converted lossily (each invalid sequence replaced by U+FFFD).

use crate::exchange::HttpVersion;
use std::ops::Range;
use std::sync::Arc;

/// A text field of a [`RequestHead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestField {
    Method,
    /// The request target as sent (origin-form path and query, or absolute-form).
    Target,
    /// `Host` (HTTP/1) or `:authority` (HTTP/2).
    Authority,
    /// `:scheme` (HTTP/2 only).
    Scheme,
    UserAgent,
    ContentType,
    Traceparent,
    Tracestate,
}

impl RequestField {
    pub(crate) const COUNT: usize = 8;
}

/// Raw field values in [`RequestField`] order, as the parsers find them.
pub(crate) type FieldBytes<'a> = [Option<&'a [u8]>; RequestField::COUNT];

/// Fields up to this many bytes in all are gathered on the stack before
/// their one allocation; longer ones go through a `String` first.
const STACK_TEXT: usize = 512;

/// The parts of a request head that spans use. Method and target are always
/// present (empty when unknown); the other fields are optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Every present field's text, in [`RequestField`] order, end to end.
    text: Arc<str>,
    /// Where each field ends in `text`; it starts where the one before ends.
    ends: [u32; RequestField::COUNT],
    /// Bit `f`: field `f` is present.
    present: u8,
    pub version: HttpVersion,
}

impl RequestHead {
    /// A head with a method and a target and no other field.
    pub fn new(method: &str, target: &str, version: HttpVersion) -> Self {
        let mut fields: FieldBytes<'_> = [None; RequestField::COUNT];
        fields[RequestField::Method as usize] = Some(method.as_bytes());
        fields[RequestField::Target as usize] = Some(target.as_bytes());
        Self::from_bytes(&fields, version)
    }

    /// The same head with `field` set to `value` (None: absent). Rebuilds
    /// the text: for tests and tools, not for the capture path.
    pub fn set(&mut self, field: RequestField, value: Option<&str>) {
        let mut fields: FieldBytes<'_> = [None; RequestField::COUNT];
        for (i, slot) in fields.iter_mut().enumerate() {
            *slot = self.get_index(i).map(str::as_bytes);
        }
        fields[field as usize] = value.map(str::as_bytes);
        *self = Self::from_bytes(&fields, self.version);
    }

    /// Builds a head from raw field values: valid UTF-8 is taken as it is,
    /// anything else lossily. Method and target are present even when None.
    pub(crate) fn from_bytes(fields: &FieldBytes<'_>, version: HttpVersion) -> Self {
        let mut present = 0u8;
        let mut ends = [0u32; RequestField::COUNT];
        let mut total = 0usize;
        for (i, f) in fields.iter().enumerate() {
            if let Some(v) = f {
                total += v.len();
            }
            if f.is_some() || i <= RequestField::Target as usize {
                present |= 1 << i;
            }
            ends[i] = u32::try_from(total).unwrap_or(u32::MAX);
        }
        if total <= STACK_TEXT {
            // Gathered, then checked as UTF-8 in one pass. Valid as a whole
            // with every field starting on a character boundary means each
            // field is valid on its own (what the lossy path would keep).
            let mut buf = [0u8; STACK_TEXT];
            let mut at = 0;
            for v in fields.iter().flatten() {
                buf[at..at + v.len()].copy_from_slice(v);
                at += v.len();
            }
            if let Ok(s) = std::str::from_utf8(&buf[..total]) {
                if ends.iter().all(|&e| s.is_char_boundary(e as usize)) {
                    return RequestHead {
                        text: Arc::from(s),
                        ends,
                        present,
                        version,
                    };
                }
            }
        }
        // Long, or not UTF-8: each field on its own (a replacement character
        // is longer than the byte it replaces, so the ends move).
        let mut s = String::with_capacity(total);
        for (i, f) in fields.iter().enumerate() {
            if let Some(v) = f {
                s.push_str(&String::from_utf8_lossy(v));
            }
            ends[i] = u32::try_from(s.len()).unwrap_or(u32::MAX);
        }
        RequestHead {
            text: Arc::from(s),
            ends,
            present,
            version,
        }
    }

    /// The shared text all fields are parts of (see [`RequestHead::range`]).
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// Where `field` is in [`RequestHead::text`], if present.
    pub fn range(&self, field: RequestField) -> Option<Range<usize>> {
        self.range_index(field as usize)
    }

    fn range_index(&self, i: usize) -> Option<Range<usize>> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(start as usize..self.ends[i] as usize)
    }

    fn get_index(&self, i: usize) -> Option<&str> {
        // Ranges are made with the text, on character boundaries; `get`
        // keeps a mistake from ever panicking.
        self.range_index(i)
            .map(|r| self.text.get(r).unwrap_or_default())
    }

    pub fn get(&self, field: RequestField) -> Option<&str> {
        self.get_index(field as usize)
    }

    pub fn method(&self) -> &str {
        self.get(RequestField::Method).unwrap_or_default()
    }

    /// The request target as sent (origin-form path and query, or absolute-form).
    pub fn target(&self) -> &str {
        self.get(RequestField::Target).unwrap_or_default()
    }

    /// `Host` (HTTP/1) or `:authority` (HTTP/2).
    pub fn authority(&self) -> Option<&str> {
        self.get(RequestField::Authority)
    }

    /// `:scheme` (HTTP/2 only).
    pub fn scheme(&self) -> Option<&str> {
        self.get(RequestField::Scheme)
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.get(RequestField::UserAgent)
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get(RequestField::ContentType)
    }

    pub fn traceparent(&self) -> Option<&str> {
        self.get(RequestField::Traceparent)
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.get(RequestField::Tracestate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_parts_of_one_text() {
        let mut h = RequestHead::new("GET", "/a?b", HttpVersion::Http11);
        assert_eq!((h.method(), h.target()), ("GET", "/a?b"));
        assert_eq!((h.authority(), h.user_agent()), (None, None));
        h.set(RequestField::UserAgent, Some("ua/1"));
        h.set(RequestField::Authority, Some("h:1"));
        assert_eq!(&**h.text(), "GET/a?bh:1ua/1");
        assert_eq!(h.range(RequestField::UserAgent), Some(10..14));
        assert_eq!((h.authority(), h.user_agent()), (Some("h:1"), Some("ua/1")));
        h.set(RequestField::Authority, None);
        assert_eq!(h.authority(), None);
        assert_eq!(h, {
            let mut o = RequestHead::new("GET", "/a?b", HttpVersion::Http11);
            o.set(RequestField::UserAgent, Some("ua/1"));
            o
        });
    }

    #[test]
    fn each_field_is_converted_on_its_own() {
        let mut fields: FieldBytes<'_> = [None; RequestField::COUNT];
        fields[RequestField::Method as usize] = Some(b"GET");
        // Valid together ("é" split across two fields), invalid apart.
        fields[RequestField::Authority as usize] = Some(b"h\xc3");
        fields[RequestField::UserAgent as usize] = Some(b"\xa9x");
        let h = RequestHead::from_bytes(&fields, HttpVersion::Http11);
        assert_eq!(h.target(), "");
        assert_eq!(h.authority(), Some("h\u{fffd}"));
        assert_eq!(h.user_agent(), Some("\u{fffd}x"));
        let long = vec![b'a'; STACK_TEXT + 1];
        fields[RequestField::Target as usize] = Some(&long);
        let h = RequestHead::from_bytes(&fields, HttpVersion::Http11);
        assert_eq!(h.target().len(), STACK_TEXT + 1);
        assert_eq!(h.user_agent(), Some("\u{fffd}x"));
    }
}
