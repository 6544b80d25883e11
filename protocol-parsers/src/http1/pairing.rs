//! Pairing HTTP/1 responses with the requests they answer, including after
//! bytes were lost.
//!
//! HTTP/1 has no ids: the n-th response answers the n-th request. Requests wait
//! in a FIFO; a final response takes the oldest. That only holds while both
//! directions are complete, so losses are recorded in the queue and resolved
//! with the rules below. This module does not parse anything; it sees heads
//! (as [`PendingRequest`]s) and the timestamps of response starts.
//!
//! # Rules after a loss
//!
//! Two facts are used:
//! 1. *Causality*: a response cannot answer a request whose first byte was
//!    seen after the response's first byte (both timestamps come from the same
//!    clock, the caller's).
//! 2. *No pipelining*: a client that does not pipeline sends a request only
//!    after the previous response has ended, so a response that starts after a
//!    request R started answers R or a later request, never an earlier one.
//!    A connection is marked *pipelined* when a request starts while an earlier
//!    one is still unanswered and nothing was lost, i.e. when it has been seen
//!    to pipeline.
//!
//! Losses leave two marks: a request-side loss (gap, malformed or oversized
//! head) puts a `Lost` entry in the queue, standing for "an unknown number
//! (maybe zero) of requests here"; a response-side loss sets `responses_lost`
//! ("an unknown number of responses were lost"). While neither mark is at
//! the front, pairing is plain FIFO. Otherwise, at the next final response
//! starting at `t`, the *candidates* are the leading queue entries it could
//! answer by causality (`Lost` entries, and requests started at or before
//! `t`); then:
//! - no candidate request: the response answers a request we never saw;
//!   counted `UnpairedResponse`, `Lost` entries stay (more such responses may follow);
//! - not pipelined: the response answers the newest candidate (fact 2). Older
//!   candidate requests had their responses lost: each is emitted with no
//!   response and `ExchangeEnd::Gap`. If the newest candidate is a `Lost`
//!   entry, the response is unpaired and that entry stays;
//! - pipelined: only a single candidate request with no `Lost` entry is
//!   unambiguous. Otherwise all candidate requests are emitted without a
//!   response (`Gap`), the response is unpaired, and a `Lost` entry takes their
//!   place. On a pipelined connection this repeats for later responses: after a
//!   loss such a connection stops producing pairs rather than risk wrong ones.
//!
//! Requests over the pending limit are not stored but counted
//! (`PendingOverflow`) and kept as a number, so their responses are consumed
//! without shifting the pairing of the others.

use crate::exchange::{ExchangeEnd, ExchangeSink, HttpExchange, ParseIssue, RequestHead};
use std::collections::VecDeque;

/// A request waiting for (or receiving) its response.
#[derive(Debug)]
pub(crate) struct PendingRequest {
    pub id: u64,
    pub head: RequestHead,
    pub start_ns: u64,
    pub end_ns: u64,
    pub body_size: u64,
    pub is_head: bool,
    pub is_connect: bool,
    pub wants_h2c: bool,
}

impl PendingRequest {
    /// The exchange for a request that gets no response.
    pub(crate) fn without_response(self, end_ns: u64, end: ExchangeEnd) -> HttpExchange {
        HttpExchange {
            request: self.head,
            response: None,
            request_body_size: self.body_size,
            response_body_size: 0,
            request_start_ns: self.start_ns,
            request_end_ns: self.end_ns,
            response_start_ns: 0,
            response_end_ns: end_ns,
            stream_id: None,
            ordinal: self.id,
            end,
            headers_incomplete: false,
            unknown: Default::default(),
            grpc_by_wire: false,
        }
    }
}

// Most entries are requests; boxing them would cost an allocation each.
#[allow(
    clippy::large_enum_variant,
    reason = "most entries are requests; boxing them would cost an allocation each"
)]
#[derive(Debug)]
enum Entry {
    Req(PendingRequest),
    /// `count` requests dropped by the pending limit, the first started at `first_start_ns`.
    Overflowed {
        count: u64,
        first_start_ns: u64,
    },
    /// An unknown number of requests lost.
    Lost,
}

impl Entry {
    /// Whether a response starting at `t` could answer this entry.
    fn candidate(&self, t: u64) -> bool {
        match self {
            Entry::Req(r) => r.start_ns <= t,
            Entry::Overflowed { first_start_ns, .. } => *first_start_ns <= t,
            Entry::Lost => true,
        }
    }
}

/// Who a final response answers.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per response, never stored"
)]
#[derive(Debug)]
pub(crate) enum Assigned {
    Request(PendingRequest),
    /// A request dropped by the pending limit: nothing to emit.
    Overflowed,
    Unpaired,
}

#[derive(Debug, Default)]
pub(crate) struct Pairing {
    queue: VecDeque<Entry>,
    /// `Req` entries in the queue.
    waiting: usize,
    /// Bytes of their heads' text.
    head_bytes: usize,
    responses_lost: bool,
    pipelined: bool,
    next_id: u64,
}

impl Pairing {
    /// Queues a request (`id` is assigned here). `response_busy`: a response
    /// to an earlier request is being received. Returns the id, or None if the
    /// request was dropped by the limit.
    pub(crate) fn push(
        &mut self,
        mut req: PendingRequest,
        max_pending: usize,
        response_busy: bool,
        sink: &mut impl ExchangeSink,
    ) -> Option<u64> {
        let lost = self.responses_lost || self.queue.iter().any(|e| matches!(e, Entry::Lost));
        let unanswered = response_busy || self.queue.iter().any(|e| !matches!(e, Entry::Lost));
        if unanswered && !lost {
            self.pipelined = true;
        }
        if self.waiting >= max_pending {
            sink.issue(ParseIssue::PendingOverflow);
            match self.queue.back_mut() {
                Some(Entry::Overflowed { count, .. }) => *count += 1,
                _ => self.queue.push_back(Entry::Overflowed {
                    count: 1,
                    first_start_ns: req.start_ns,
                }),
            }
            return None;
        }
        self.next_id += 1;
        req.id = self.next_id;
        self.head_bytes += req.head.text().len();
        self.queue.push_back(Entry::Req(req));
        self.waiting += 1;
        Some(self.next_id)
    }

    /// Requests may have been lost here.
    pub(crate) fn push_lost(&mut self) {
        if !matches!(self.queue.back(), Some(Entry::Lost)) {
            self.queue.push_back(Entry::Lost);
        }
    }

    /// Responses may have been lost.
    pub(crate) fn mark_responses_lost(&mut self) {
        self.responses_lost = true;
    }

    #[cfg(test)]
    pub(crate) fn pipelined(&self) -> bool {
        self.pipelined
    }

    pub(crate) fn request_mut(&mut self, id: u64) -> Option<&mut PendingRequest> {
        self.queue.iter_mut().rev().find_map(|e| match e {
            Entry::Req(r) if r.id == id => Some(r),
            _ => None,
        })
    }

    /// Bytes of the waiting requests' heads.
    pub(crate) fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    /// All waiting requests, oldest first (the connection ended).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = PendingRequest> + '_ {
        self.waiting = 0;
        self.head_bytes = 0;
        self.queue.drain(..).filter_map(|e| match e {
            Entry::Req(r) => Some(r),
            _ => None,
        })
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let e = self.queue.pop_front();
        if let Some(Entry::Req(r)) = &e {
            self.waiting -= 1;
            self.head_bytes = self.head_bytes.saturating_sub(r.head.text().len());
        }
        e
    }

    /// A final response starting at `t`: which request does it answer?
    /// Requests that can no longer be answered are emitted (no response, Gap).
    pub(crate) fn assign(&mut self, t: u64, sink: &mut impl ExchangeSink) -> Assigned {
        let uncertain = std::mem::take(&mut self.responses_lost)
            || matches!(self.queue.front(), Some(Entry::Lost));
        if !uncertain {
            return match self.queue.front_mut() {
                None => {
                    sink.issue(ParseIssue::UnpairedResponse);
                    Assigned::Unpaired
                }
                Some(Entry::Overflowed { count, .. }) => {
                    *count -= 1;
                    if *count == 0 {
                        self.pop_front();
                    }
                    Assigned::Overflowed
                }
                Some(_) => match self.pop_front() {
                    Some(Entry::Req(r)) => Assigned::Request(r),
                    _ => Assigned::Unpaired,
                },
            };
        }

        let n = self.queue.iter().take_while(|e| e.candidate(t)).count();
        let requests = self
            .queue
            .iter()
            .take(n)
            .filter(|e| !matches!(e, Entry::Lost))
            .count();
        if requests == 0 {
            sink.issue(ParseIssue::UnpairedResponse);
            return Assigned::Unpaired;
        }
        let newest_is_lost = matches!(self.queue.get(n - 1), Some(Entry::Lost));
        if !self.pipelined && !newest_is_lost {
            // The newest candidate is the answer; the older ones lost theirs.
            self.drop_front(n - 1, t, sink);
            return match self.pop_front() {
                Some(Entry::Req(r)) => Assigned::Request(r),
                // The newest of the overflowed requests is the answer.
                _ => Assigned::Overflowed,
            };
        }
        if self.pipelined && n == 1 {
            return match self.pop_front() {
                Some(Entry::Req(r)) => Assigned::Request(r),
                Some(Entry::Overflowed {
                    count,
                    first_start_ns,
                }) => {
                    if count > 1 {
                        self.queue.push_front(Entry::Overflowed {
                            count: count - 1,
                            first_start_ns,
                        });
                    }
                    Assigned::Overflowed
                }
                _ => Assigned::Unpaired,
            };
        }
        // Ambiguous (or the newest candidate is a lost request): nobody gets
        // this response; the candidates' responses may still come, so a Lost
        // entry stands in for them.
        self.drop_front(n, t, sink);
        self.queue.push_front(Entry::Lost);
        sink.issue(ParseIssue::UnpairedResponse);
        Assigned::Unpaired
    }

    /// Removes the first `n` entries; their requests are emitted without a response.
    fn drop_front(&mut self, n: usize, t: u64, sink: &mut impl ExchangeSink) {
        for _ in 0..n {
            if let Some(Entry::Req(r)) = self.pop_front() {
                sink.exchange(r.without_response(t, ExchangeEnd::Gap));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{CollectingSink, HttpVersion};

    fn req(target: &str, start_ns: u64) -> PendingRequest {
        PendingRequest {
            id: 0,
            head: RequestHead::new("GET", target, HttpVersion::Http11),
            start_ns,
            end_ns: start_ns,
            body_size: 0,
            is_head: false,
            is_connect: false,
            wants_h2c: false,
        }
    }

    fn target(a: Assigned) -> String {
        match a {
            Assigned::Request(r) => r.head.target().to_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn fifo_without_losses() {
        let mut p = Pairing::default();
        let mut s = CollectingSink::default();
        p.push(req("/a", 1), 8, false, &mut s);
        p.push(req("/b", 2), 8, false, &mut s);
        assert!(p.pipelined());
        assert_eq!(target(p.assign(3, &mut s)), "/a");
        assert_eq!(target(p.assign(4, &mut s)), "/b");
        assert_eq!(target(p.assign(5, &mut s)), "Unpaired");
        assert_eq!(s.issues, vec![ParseIssue::UnpairedResponse]);
    }

    #[test]
    fn lost_response_non_pipelined_pairs_newest_started_request() {
        let mut p = Pairing::default();
        let mut s = CollectingSink::default();
        p.push(req("/a", 10), 8, false, &mut s);
        p.mark_responses_lost(); // /a's response vanished
        p.push(req("/b", 20), 8, false, &mut s);
        p.push(req("/c", 30), 8, false, &mut s);
        assert!(!p.pipelined());
        // A response starting at 25 cannot answer /c (started at 30).
        assert_eq!(target(p.assign(25, &mut s)), "/b");
        assert_eq!(s.exchanges.len(), 1);
        assert_eq!(s.exchanges[0].request.target(), "/a");
        assert_eq!(s.exchanges[0].response, None);
        assert_eq!(s.exchanges[0].end, ExchangeEnd::Gap);
        assert_eq!(s.exchanges[0].response_end_ns, 25);
        assert_eq!(target(p.assign(35, &mut s)), "/c");
    }

    #[test]
    fn lost_requests_swallow_earlier_responses() {
        let mut p = Pairing::default();
        let mut s = CollectingSink::default();
        p.push_lost();
        p.push(req("/b", 20), 8, false, &mut s);
        // Started before /b: answers a lost request.
        assert_eq!(target(p.assign(15, &mut s)), "Unpaired");
        assert_eq!(target(p.assign(25, &mut s)), "/b");
        assert!(s.exchanges.is_empty());
        assert_eq!(s.issues, vec![ParseIssue::UnpairedResponse]);
    }

    #[test]
    fn pipelined_loss_is_not_guessed() {
        let mut p = Pairing::default();
        let mut s = CollectingSink::default();
        p.push(req("/a", 1), 8, false, &mut s);
        p.push(req("/b", 2), 8, false, &mut s);
        assert!(p.pipelined());
        p.mark_responses_lost();
        // Could answer /a or /b: neither is paired.
        assert_eq!(target(p.assign(5, &mut s)), "Unpaired");
        assert_eq!(s.exchanges.len(), 2);
        assert!(s
            .exchanges
            .iter()
            .all(|e| e.end == ExchangeEnd::Gap && e.response.is_none()));
        p.push(req("/c", 10), 8, false, &mut s);
        assert_eq!(target(p.assign(11, &mut s)), "Unpaired");
        assert_eq!(s.exchanges.len(), 3);
    }

    #[test]
    fn pipelined_single_candidate_is_paired() {
        let mut p = Pairing::default();
        let mut s = CollectingSink::default();
        p.push(req("/a", 1), 8, false, &mut s);
        p.push(req("/b", 2), 8, false, &mut s);
        assert_eq!(target(p.assign(3, &mut s)), "/a");
        p.mark_responses_lost();
        p.push(req("/c", 10), 8, false, &mut s);
        // Only /b started before 5.
        assert_eq!(target(p.assign(5, &mut s)), "/b");
    }

    #[test]
    fn overflow_keeps_later_pairs_right() {
        let mut p = Pairing::default();
        let mut s = CollectingSink::default();
        assert!(p.push(req("/a", 1), 1, false, &mut s).is_some());
        assert!(p.push(req("/b", 2), 1, false, &mut s).is_none());
        assert!(p.push(req("/c", 3), 1, false, &mut s).is_none());
        assert_eq!(target(p.assign(4, &mut s)), "/a");
        assert!(p.push(req("/d", 5), 1, false, &mut s).is_some());
        assert_eq!(target(p.assign(6, &mut s)), "Overflowed");
        assert_eq!(target(p.assign(7, &mut s)), "Overflowed");
        assert_eq!(target(p.assign(8, &mut s)), "/d");
        assert_eq!(s.issues, vec![ParseIssue::PendingOverflow; 2]);
    }
}
