//! List then watch one resource, forever: a paginated list replaces the stored
//! objects, a watch from the list's resourceVersion applies each event, a watch
//! that ends normally resumes from the last version seen, a 410 Gone lists
//! again, and any other failure is counted and retried with backoff.

use crate::client::{query_escape, read_body, ApiClient};
use crate::error::KubeError;
use crate::metrics::ResourceMetrics;
use crate::objects::{List, MetadataOnly, Pod, RawWatchEvent, ReplicaSet, Service, Status};
use crate::records::{pod_change, replicaset_change, service_change, Change, Resource};
use crate::store::{Applied, Store};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Objects per list page: bounds the memory one response takes.
const LIST_PAGE_SIZE: usize = 500;
const LIST_PAGE_MAX_BYTES: usize = 64 << 20;
const LIST_PAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// One watch event (one object) larger than this ends the watch.
const MAX_EVENT_BYTES: usize = 8 << 20;
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What the watch tasks and the lookups share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: RwLock<Store>,
    /// Per resource: listed at least once (or not watched at all).
    pub synced: [AtomicBool; 3],
}

impl Shared {
    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct ResourceWatcher {
    pub resource: Resource,
    pub client: ApiClient,
    pub shared: Arc<Shared>,
    pub metrics: ResourceMetrics,
    /// `spec.nodeName=<node>` and the like, unescaped.
    pub field_selector: Option<String>,
    pub max_objects: usize,
    /// The last failure logged, so a retry loop logs each distinct failure once.
    pub last_logged: Option<String>,
    pub backoff: Duration,
}

impl ResourceWatcher {
    pub(crate) async fn run(mut self) {
        let mut version: Option<String> = None;
        loop {
            let mut rv = match version.take() {
                Some(rv) => rv,
                None => match self.list().await {
                    Ok(rv) => rv,
                    Err(e) => {
                        // Including a 410 (an expired `continue` token): a
                        // server that answers 410 to every list must not spin.
                        self.failed(&e);
                        self.wait_backoff().await;
                        continue;
                    }
                },
            };
            let started = Instant::now();
            let mut events = 0u64;
            match self.watch(&mut rv, &mut events).await {
                Ok(()) => {
                    self.metrics.restart("end_of_stream");
                    tracing::debug!(resource = self.resource.name(), "watch ended; resuming");
                    // A server or proxy that closes at once must not make us spin.
                    if events == 0 && started.elapsed() < Duration::from_secs(1) {
                        self.wait_backoff().await;
                    }
                    version = Some(rv);
                }
                Err(e) if e.is_expired() => {
                    self.metrics.restart("expired");
                    tracing::debug!(resource = self.resource.name(), error = %e, "watch expired; listing again");
                }
                Err(e) => {
                    self.failed(&e);
                    self.wait_backoff().await;
                    // Resume from the last version seen; a 410 then forces a list.
                    version = Some(rv);
                }
            }
        }
    }

    fn failed(&mut self, e: &KubeError) {
        self.metrics.restart(e.reason());
        if e.is_expired() {
            return;
        }
        let text = e.to_string();
        if self.last_logged.as_deref() != Some(text.as_str()) {
            tracing::warn!(
                resource = self.resource.name(),
                error = %text,
                "Kubernetes list/watch failed; retrying with backoff (repeats are counted in wirespan_k8s_watch_restarts_total, not logged)"
            );
            self.last_logged = Some(text);
        }
    }

    fn succeeded(&mut self) {
        self.backoff = BACKOFF_FIRST;
        if self.last_logged.take().is_some() {
            tracing::info!(
                resource = self.resource.name(),
                "Kubernetes list/watch recovered"
            );
        }
    }

    async fn wait_backoff(&mut self) {
        let jitter = fastrand::u64(0..=self.backoff.as_millis() as u64 / 2);
        tokio::time::sleep(self.backoff + Duration::from_millis(jitter)).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn selector_query(&self) -> String {
        match &self.field_selector {
            Some(s) => format!("&fieldSelector={}", query_escape(s)),
            None => String::new(),
        }
    }

    /// List every object, page by page, and replace the stored ones. Returns
    /// the list's resourceVersion, where the watch starts.
    async fn list(&mut self) -> Result<String, KubeError> {
        let mut conn = self.client.connect().await?;
        let mut changes = Vec::new();
        let mut refused = 0u64;
        let mut continue_token = String::new();
        let resource_version = loop {
            let mut query = format!(
                "{}?limit={LIST_PAGE_SIZE}{}",
                self.resource.path(),
                self.selector_query()
            );
            if !continue_token.is_empty() {
                query.push_str("&continue=");
                query.push_str(&query_escape(&continue_token));
            }
            let response = conn.get(&query).await?;
            let body = read_body(
                &mut response.into_body(),
                LIST_PAGE_MAX_BYTES,
                LIST_PAGE_TIMEOUT,
                "list page",
            )
            .await?;
            let (page, meta) = decode_list(self.resource, &body)?;
            for change in page {
                if !matches!(change, Change::Upsert(_)) {
                    continue;
                }
                if changes.len() < self.max_objects {
                    changes.push(change);
                } else {
                    refused += 1;
                }
            }
            if meta.continue_token.is_empty() {
                break meta.resource_version;
            }
            continue_token = meta.continue_token;
        };
        // Build the new objects and indexes without the lock, so lookups wait
        // only for the swap; the cap is checked again at the swap, when the
        // other resources' counts are exact.
        let others = {
            let store = self.shared.read();
            store.total() - store.len(self.resource)
        };
        let mut fresh = Store::new(self.max_objects.saturating_sub(others));
        let refused_fresh = fresh.replace(self.resource, changes);
        let (trimmed, len) = {
            let mut store = self.shared.write();
            let others = store.total() - store.len(self.resource);
            let trimmed = fresh.trim(self.resource, self.max_objects.saturating_sub(others));
            store.swap_resource(self.resource, &mut fresh);
            (trimmed, store.len(self.resource))
        };
        // The previous objects are freed here, outside the lock.
        drop(fresh);
        self.metrics
            .refused
            .add(refused + (refused_fresh + trimmed) as u64);
        self.metrics.objects.set(len as i64);
        self.metrics.lists.inc();
        self.shared.synced[self.resource.index()].store(true, Ordering::Release);
        self.succeeded();
        tracing::debug!(resource = self.resource.name(), objects = len, %resource_version, "listed");
        Ok(resource_version)
    }

    /// Watch from `rv`, applying events and advancing `rv`, until the server
    /// ends the stream (`Ok`) or something fails.
    async fn watch(&mut self, rv: &mut String, events: &mut u64) -> Result<(), KubeError> {
        let timeout_secs = 240 + fastrand::u64(0..120);
        let query = format!(
            "{}?watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={timeout_secs}{}",
            self.resource.path(),
            query_escape(rv),
            self.selector_query()
        );
        let mut conn = self.client.connect().await?;
        let mut body = conn.get(&query).await?.into_body();
        // Bookmarks come about every minute; silence past the server's own
        // timeout means a dead connection.
        let idle = Duration::from_secs(timeout_secs + 30);
        let mut lines = LineDecoder::new(MAX_EVENT_BYTES);
        loop {
            let frame = tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| KubeError::Timeout("waiting for a watch event"))?;
            let Some(frame) = frame else { break };
            if let Ok(data) = frame?.into_data() {
                lines.feed(&data, |line| {
                    *events += 1;
                    self.handle_event(line, rv)
                })?;
            }
        }
        lines.finish(|line| self.handle_event(line, rv))
    }

    fn handle_event(&mut self, line: &[u8], rv: &mut String) -> Result<(), KubeError> {
        let event: RawWatchEvent<'_> =
            serde_json::from_slice(line).map_err(|source| KubeError::Decode {
                what: "watch event",
                source,
            })?;
        match apply_event(&self.shared, self.resource, &event)? {
            EventOutcome::Applied { applied, version } => {
                if applied == Applied::Refused {
                    self.metrics.refused.inc();
                }
                let len = self.shared.read().len(self.resource);
                self.metrics.objects.set(len as i64);
                *rv = version;
                self.succeeded();
            }
            EventOutcome::Bookmark(version) => *rv = version,
            EventOutcome::Skipped => self.metrics.events_skipped.inc(),
        }
        Ok(())
    }
}

// === Event decoding ===

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EventOutcome {
    Applied {
        applied: Applied,
        version: String,
    },
    Bookmark(String),
    /// An object that did not decode, or an unknown event type.
    Skipped,
}

/// Apply one decoded watch event to the store. An ERROR event is returned as
/// the error its `Status` describes (410 Gone for an expired version).
pub(crate) fn apply_event(
    shared: &Shared,
    resource: Resource,
    event: &RawWatchEvent<'_>,
) -> Result<EventOutcome, KubeError> {
    let object = event.object.get();
    match event.kind {
        "ADDED" | "MODIFIED" | "DELETED" => {
            let Ok((change, version)) = decode_object(resource, object) else {
                return Ok(EventOutcome::Skipped);
            };
            let change = if event.kind == "DELETED" {
                let (resource, key) = crate::records::change_key(&change);
                Change::Remove(resource, key)
            } else {
                change
            };
            let applied = shared.write().apply(change);
            Ok(EventOutcome::Applied { applied, version })
        }
        "BOOKMARK" => match serde_json::from_str::<MetadataOnly>(object) {
            Ok(m) => Ok(EventOutcome::Bookmark(m.metadata.resource_version)),
            Err(_) => Ok(EventOutcome::Skipped),
        },
        "ERROR" => {
            let status: Status = serde_json::from_str(object).unwrap_or_default();
            Err(KubeError::Status {
                code: status.code,
                reason: status.reason,
                message: status.message,
            })
        }
        _ => Ok(EventOutcome::Skipped),
    }
}

fn decode_object(resource: Resource, json: &str) -> Result<(Change, String), serde_json::Error> {
    fn one<T: DeserializeOwned>(
        json: &str,
        version: impl Fn(&T) -> String,
        change: fn(T) -> Change,
    ) -> Result<(Change, String), serde_json::Error> {
        let object: T = serde_json::from_str(json)?;
        let v = version(&object);
        Ok((change(object), v))
    }
    match resource {
        Resource::Pods => one(
            json,
            |p: &Pod| p.metadata.resource_version.clone(),
            pod_change,
        ),
        Resource::Services => one(
            json,
            |s: &Service| s.metadata.resource_version.clone(),
            service_change,
        ),
        Resource::ReplicaSets => one(
            json,
            |r: &ReplicaSet| r.metadata.resource_version.clone(),
            replicaset_change,
        ),
    }
}

fn decode_list(
    resource: Resource,
    body: &[u8],
) -> Result<(Vec<Change>, crate::objects::ListMeta), KubeError> {
    fn page<T: DeserializeOwned>(
        body: &[u8],
        change: fn(T) -> Change,
    ) -> Result<(Vec<Change>, crate::objects::ListMeta), KubeError> {
        let list: List<T> = serde_json::from_slice(body).map_err(|source| KubeError::Decode {
            what: "list",
            source,
        })?;
        Ok((list.items.into_iter().map(change).collect(), list.metadata))
    }
    match resource {
        Resource::Pods => page::<Pod>(body, pod_change),
        Resource::Services => page::<Service>(body, service_change),
        Resource::ReplicaSets => page::<ReplicaSet>(body, replicaset_change),
    }
}

// === Newline-delimited stream ===

/// Splits a byte stream into lines however it is cut into reads, holding at
/// most one partial line of at most `max_line` bytes.
pub(crate) struct LineDecoder {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    max_line: usize,
}

impl LineDecoder {
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            max_line,
        }
    }

    /// Append `data` and call `on_line` for each complete, non-blank line.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        mut on_line: impl FnMut(&[u8]) -> Result<(), KubeError>,
    ) -> Result<(), KubeError> {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + pos;
            let line = &self.buf[start..end];
            if !line.iter().all(u8::is_ascii_whitespace) {
                on_line(line)?;
            }
            start = end + 1;
            self.scanned = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > self.max_line {
            return Err(KubeError::TooLarge {
                what: "watch event",
                limit: self.max_line,
            });
        }
        Ok(())
    }

    /// The last line, if the stream did not end with a newline.
    pub(crate) fn finish(
        &mut self,
        mut on_line: impl FnMut(&[u8]) -> Result<(), KubeError>,
    ) -> Result<(), KubeError> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        on_line(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity;
    use std::net::IpAddr;

    fn shared(max: usize) -> Shared {
        Shared {
            store: RwLock::new(Store::new(max)),
            synced: Default::default(),
        }
    }

    const POD_ADDED: &str = r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-5d8f-abcde","namespace":"shop","uid":"11111111-2222-3333-4444-555555555555","resourceVersion":"101","labels":{"app":"web","pod-template-hash":"5d8f"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d8f","uid":"x","controller":true,"blockOwnerDeletion":true}]},"spec":{"nodeName":"node-a","containers":[{"name":"app","image":"nginx"}]},"status":{"phase":"Running","podIP":"10.1.2.3","podIPs":[{"ip":"10.1.2.3"},{"ip":"fd00::3"}],"containerStatuses":[{"name":"app","ready":true,"restartCount":0,"image":"nginx","imageID":"sha","containerID":"containerd://aaaa","started":true}]}}}"#;
    const BOOKMARK: &str = r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"150","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null},"status":{}}}"#;
    const EXPIRED: &str = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 101 (150)","reason":"Expired","code":410}}"#;

    /// Feed `stream` cut at `cuts` and apply every event; the versions seen.
    fn run(shared: &Shared, stream: &str, cuts: &[usize]) -> Result<Vec<String>, KubeError> {
        let mut decoder = LineDecoder::new(1 << 20);
        let mut versions = Vec::new();
        let mut on_line = |line: &[u8]| -> Result<(), KubeError> {
            let event: RawWatchEvent<'_> =
                serde_json::from_slice(line).map_err(|source| KubeError::Decode {
                    what: "watch event",
                    source,
                })?;
            match apply_event(shared, Resource::Pods, &event)? {
                EventOutcome::Applied { version, .. } | EventOutcome::Bookmark(version) => {
                    versions.push(version)
                }
                EventOutcome::Skipped => versions.push("skipped".into()),
            }
            Ok(())
        };
        let bytes = stream.as_bytes();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            decoder.feed(&bytes[at..cut], &mut on_line)?;
            at = cut;
        }
        decoder.finish(&mut on_line)?;
        Ok(versions)
    }

    #[test]
    fn events_decode_whatever_the_read_boundaries() {
        let deleted = POD_ADDED
            .replace("ADDED", "DELETED")
            .replace("\"101\"", "\"160\"");
        let stream = format!("{POD_ADDED}\n{BOOKMARK}\n\n{deleted}\n");
        let n = stream.len();
        // Every single cut point, and every pair of cut points a prime apart.
        let mut cut_sets: Vec<Vec<usize>> = (0..=n).map(|c| vec![c]).collect();
        cut_sets.extend((0..n).step_by(7).map(|c| vec![c, (c + 13).min(n)]));
        cut_sets.push((0..n).collect()); // one byte a read
        for cuts in cut_sets {
            let s = shared(10);
            let versions = run(&s, &stream, &cuts).expect("decodes");
            assert_eq!(versions, ["101", "150", "160"], "cuts {cuts:?}");
            assert_eq!(s.read().len(Resource::Pods), 0);
        }
    }

    #[test]
    fn added_event_is_looked_up() {
        let s = shared(10);
        assert_eq!(run(&s, POD_ADDED, &[]).expect("decodes"), ["101"]);
        let store = s.read();
        let ip: IpAddr = "fd00::3".parse().expect("ip");
        let peer = identity::for_ip(&store, ip).expect("pod by ip");
        assert_eq!(
            (peer.name.as_str(), peer.namespace.as_str()),
            ("web", "shop")
        );
        let cgroup = crate::cgroup::CgroupRef {
            pod_uid: None,
            container_id: Some("aaaa".into()),
        };
        let id = identity::for_cgroup(&store, &cgroup).expect("pod by container");
        assert_eq!(id.attribute("k8s.container.name"), Some("app"));
        assert_eq!(id.attribute("k8s.deployment.name"), Some("web"));
    }

    #[test]
    fn error_410_is_expired() {
        let s = shared(10);
        let stream = format!("{POD_ADDED}\n{EXPIRED}\n");
        let err = run(&s, &stream, &[5]).expect_err("410");
        assert!(err.is_expired(), "{err}");
        assert_eq!(err.reason(), "expired");
        // The event before the error was applied.
        assert_eq!(s.read().len(Resource::Pods), 1);
    }

    #[test]
    fn bad_object_is_skipped_bad_line_is_an_error() {
        let s = shared(10);
        let bad_object = r#"{"type":"ADDED","object":{"metadata":{"name":7}}}"#;
        let unknown = r#"{"type":"SURPRISE","object":{}}"#;
        assert_eq!(
            run(&s, &format!("{bad_object}\n{unknown}\n"), &[]).expect("skips"),
            ["skipped", "skipped"]
        );
        let err = run(&s, "{\"type\":\"ADDED\",\"obj\n", &[]).expect_err("corrupt line");
        assert_eq!(err.reason(), "decode");
    }

    #[test]
    fn line_longer_than_the_limit_is_refused() {
        let mut d = LineDecoder::new(16);
        let mut lines = 0;
        assert!(d
            .feed(b"0123456789\n", |_| {
                lines += 1;
                Ok(())
            })
            .is_ok());
        let err = d
            .feed(b"0123456789abcdefXYZ", |_| Ok(()))
            .expect_err("too long");
        assert_eq!(err.reason(), "too_large");
        assert_eq!(lines, 1);
    }

    #[test]
    fn refused_at_the_cap() {
        let s = shared(0);
        let line = POD_ADDED.as_bytes();
        let event: RawWatchEvent<'_> = serde_json::from_slice(line).expect("event");
        assert_eq!(
            apply_event(&s, Resource::Pods, &event).expect("applies"),
            EventOutcome::Applied {
                applied: Applied::Refused,
                version: "101".into()
            }
        );
    }
}
