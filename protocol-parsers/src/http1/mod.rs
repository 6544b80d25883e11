//! Incremental HTTP/1.0/1.1 parsing for one connection: bytes of each
//! direction go in (in any chunking, with gaps), request/response pairs come
//! out as [`HttpExchange`](crate::HttpExchange)s.
//!
//! What it does: parse heads with `httparse` (each head found first and parsed
//! once, bounded by [`Http1Limits::max_head_bytes`]); skip and measure bodies
//! (Content-Length, chunked, close-delimited) without buffering them; pair
//! responses with requests FIFO (keep-alive, pipelining, 1xx interim
//! responses); survive gaps and malformed bytes by resynchronising on the next
//! plausible message start, without ever pairing a response with the wrong
//! request on a non-pipelining connection (rules in `pairing.rs`); stop at a
//! protocol switch (101, or a CONNECT tunnel) and report it.
//!
//! What it does not do: decompress or look into bodies, follow the new
//! protocol after a switch (the caller hands that to HTTP/2 or drops it),
//! or read clocks (timestamps come with the data).
//!
//! Layout: `start` (message start / head end recognition), `head` (httparse
//! and field extraction), `recent` (heads parsed a moment ago, reused when
//! the other end of a local connection sends the same bytes), `body` (body framing), `reader` (one direction's
//! state machine and resync), `pairing` (request queue and the loss rules),
//! `session` (the public [`Http1Session`] gluing them).

mod body;
mod head;
mod pairing;
mod reader;
mod recent;
mod session;
pub(crate) mod start;

pub use session::Http1Session;

/// Bounds on what one connection's parser keeps.
#[derive(Clone, Copy, Debug)]
pub struct Http1Limits {
    /// Largest head (start line + headers + empty line) buffered; a larger one
    /// is skipped and counted `HeadTooLarge`. Also bounds chunked trailers.
    pub max_head_bytes: usize,
    /// Requests waiting for a response; more are counted `PendingOverflow`
    /// (their responses are still consumed in order, unpaired).
    pub max_pending_requests: usize,
}

impl Default for Http1Limits {
    fn default() -> Self {
        Http1Limits {
            max_head_bytes: 16 * 1024,
            max_pending_requests: 64,
        }
    }
}

/// What a connection switched to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// `101` answering a request with `Upgrade: h2c`: HTTP/2 follows.
    H2c,
    /// Any other switch (WebSocket, a CONNECT tunnel, ...): not parsed further.
    Other,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_loss;
