//! Who each observed process is: its service name and OpenTelemetry resource.
//!
//! New processes are named from their exec record, which the kernel filled with
//! the executable path and the environment (so OTEL_SERVICE_NAME is seen even for
//! a curl that lives 10 ms). Processes that were running before the agent are
//! read from /proc once, on first sight.

use span_model::{any_value, AnyValue, KeyValue, ProcessResource};
use std::collections::HashMap;
use std::sync::Arc;
use wirespan_config::ServiceRule;

use probes_common::records::ExecView;

/// Where a process's service name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSource {
    OtelServiceName,
    OtelResourceAttributes,
    ConfigRule,
    /// The Kubernetes workload (or pod) the process runs in.
    Kubernetes,
    Executable,
    /// Neither an exec record nor /proc was available: the process was gone.
    Unknown,
}

/// One process's identity.
#[derive(Debug)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub exe_name: String,
    pub exe_path: String,
    /// Shared with every span naming this process as a peer.
    pub service_name: Arc<str>,
    pub name_source: NameSource,
    pub resource: Arc<ProcessResource>,
}

/// Facts about a process, from an exec record or /proc.
#[derive(Debug, Default, Clone)]
pub struct ProcessFacts {
    pub pid: u32,
    pub ppid: u32,
    pub exe_path: String,
    pub comm: String,
    /// Values of the OTEL_* variables the identity uses.
    pub otel_service_name: Option<String>,
    pub otel_resource_attributes: Option<String>,
    /// cgroup v2 id from the exec record (0: unknown).
    pub cgroup_id: u64,
}

impl ProcessFacts {
    /// From the kernel's exec record.
    pub fn from_exec(view: &ExecView<'_>) -> Self {
        let mut facts = ProcessFacts {
            pid: view.header.tgid,
            ppid: view.ppid,
            exe_path: String::from_utf8_lossy(view.filename).into_owned(),
            comm: String::from_utf8_lossy(view.comm).into_owned(),
            cgroup_id: view.cgroup_id,
            ..Default::default()
        };
        facts.read_environment(view.env);
        facts
    }

    /// From /proc, for a process that was running before the agent.
    pub fn from_proc(pid: u32) -> Option<Self> {
        let base = format!("/proc/{pid}");
        let comm = std::fs::read_to_string(format!("{base}/comm")).ok()?;
        // A replaced or removed executable reads as "PATH (deleted)".
        let exe_path = std::fs::read_link(format!("{base}/exe"))
            .map(|p| {
                let p = p.to_string_lossy();
                p.strip_suffix(" (deleted)").unwrap_or(&p).to_string()
            })
            .unwrap_or_default();
        let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut facts = ProcessFacts {
            pid,
            ppid,
            exe_path,
            comm: comm.trim_end().to_string(),
            ..Default::default()
        };
        if let Ok(env) = std::fs::read(format!("{base}/environ")) {
            facts.read_environment(&env);
        }
        Some(facts)
    }

    fn read_environment(&mut self, env: &[u8]) {
        for entry in env.split(|b| *b == 0) {
            if let Some(v) = entry.strip_prefix(b"OTEL_SERVICE_NAME=") {
                self.otel_service_name = Some(String::from_utf8_lossy(v).into_owned());
            } else if let Some(v) = entry.strip_prefix(b"OTEL_RESOURCE_ATTRIBUTES=") {
                self.otel_resource_attributes = Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }

    fn exe_name(&self) -> String {
        match self.exe_path.rsplit('/').next() {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => self.comm.clone(),
        }
    }
}

/// Parses OTEL_RESOURCE_ATTRIBUTES (`k=v,k2=v2`, values percent-encoded).
pub fn parse_resource_attributes(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn kv(key: &str, value: impl Into<AttrValue>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(value.into().0),
        }),
        ..Default::default()
    }
}

/// Conversion into an OTLP attribute value.
pub struct AttrValue(any_value::Value);

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue(any_value::Value::StringValue(s.to_string()))
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue(any_value::Value::StringValue(s))
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue(any_value::Value::IntValue(v))
    }
}

/// Processes in a pod the Kubernetes metadata did not know yet (its
/// container id is posted a moment after the container starts, and nothing is
/// known before the first list): tried again at most this often.
const K8S_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// Most processes waiting for their pod at once; beyond it the oldest wait ends.
const MAX_K8S_PENDING: usize = 4096;

/// A process named before its pod was known.
struct PendingPod {
    facts: ProcessFacts,
    cgroup: Arc<str>,
    tried: std::time::Instant,
}

/// Every known process, by tgid.
pub struct ProcessTable {
    processes: HashMap<u32, Arc<ProcessIdentity>>,
    kube: Option<Arc<dyn crate::identity::KubeLookup>>,
    cgroups: crate::cgroups::CgroupPaths,
    pending_pods: HashMap<u32, PendingPod>,
    rules: Vec<ServiceRule>,
    host_name: String,
    /// The agent's own OTEL_RESOURCE_ATTRIBUTES (such as k8s.node.name set by a
    /// DaemonSet), added to every resource unless the process sets the key.
    host_attributes: Vec<(String, String)>,
    /// False when replaying a recording: its pids are not this host's.
    read_proc: bool,
    next_resource_id: u64,
}

impl ProcessTable {
    pub fn new(rules: Vec<ServiceRule>, host_name: String) -> Self {
        Self {
            processes: HashMap::new(),
            kube: None,
            cgroups: crate::cgroups::CgroupPaths::with_root(None),
            pending_pods: HashMap::new(),
            rules,
            host_name,
            host_attributes: Vec::new(),
            read_proc: true,
            next_resource_id: 1,
        }
    }

    /// Name processes in pods from Kubernetes metadata.
    pub fn with_kubernetes(mut self, kube: Arc<dyn crate::identity::KubeLookup>) -> Self {
        self.kube = Some(kube);
        self.cgroups = crate::cgroups::CgroupPaths::discover();
        self
    }

    /// Never read /proc (replay: the recording's pids belong to another time).
    pub fn without_proc(mut self) -> Self {
        self.read_proc = false;
        self
    }

    /// Attributes every resource gets (the process's own win); `service.name`
    /// is ignored here, as it names the agent, not the observed process.
    pub fn with_host_attributes(mut self, attributes: Vec<(String, String)>) -> Self {
        self.host_attributes = attributes
            .into_iter()
            .filter(|(k, _)| k != "service.name")
            .collect();
        self
    }

    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// A process called exec: it gets a new identity (the old program is gone).
    pub fn on_exec(&mut self, facts: ProcessFacts) -> Arc<ProcessIdentity> {
        let identity = Arc::new(self.build(facts));
        self.processes.insert(identity.pid, identity.clone());
        identity
    }

    pub fn on_exit(&mut self, pid: u32) {
        self.processes.remove(&pid);
        self.pending_pods.remove(&pid);
    }

    /// The identity of `pid`, loaded from /proc on first sight.
    pub fn get_or_load(&mut self, pid: u32) -> Arc<ProcessIdentity> {
        if !self.pending_pods.is_empty() {
            self.retry_pod(pid);
        }
        if let Some(p) = self.processes.get(&pid) {
            return p.clone();
        }
        let from_proc = if self.read_proc {
            ProcessFacts::from_proc(pid)
        } else {
            None
        };
        let facts = from_proc.unwrap_or(ProcessFacts {
            pid,
            ..Default::default()
        });
        self.on_exec(facts)
    }

    pub fn get(&self, pid: u32) -> Option<&Arc<ProcessIdentity>> {
        self.processes.get(&pid)
    }

    /// A process whose pod was not known: look again (at most every
    /// `K8S_RETRY`), and rename it once the pod is known.
    fn retry_pod(&mut self, pid: u32) {
        let (Some(kube), Some(p)) = (&self.kube, self.pending_pods.get_mut(&pid)) else {
            return;
        };
        if p.tried.elapsed() < K8S_RETRY {
            return;
        }
        p.tried = std::time::Instant::now();
        if kube.for_cgroup(&p.cgroup).is_none() {
            return;
        }
        if let Some(p) = self.pending_pods.remove(&pid) {
            let identity = Arc::new(self.build(p.facts));
            self.processes.insert(pid, identity);
        }
    }

    /// The pod of a process, from its cgroup; remembers a process that looks
    /// like a pod's but whose pod is not known yet.
    fn pod_of(&mut self, facts: &ProcessFacts) -> Option<crate::identity::PodIdentity> {
        let kube = self.kube.as_ref()?;
        if !self.read_proc {
            return None;
        }
        let cgroup = self.cgroups.text_for(facts.pid, facts.cgroup_id)?;
        let pod = kube.for_cgroup(&cgroup);
        if pod.is_none() && kube.is_pod_cgroup(&cgroup) {
            if self.pending_pods.len() >= MAX_K8S_PENDING {
                if let Some(oldest) = self
                    .pending_pods
                    .iter()
                    .min_by_key(|(_, p)| p.tried)
                    .map(|(pid, _)| *pid)
                {
                    self.pending_pods.remove(&oldest);
                }
            }
            self.pending_pods.insert(
                facts.pid,
                PendingPod {
                    facts: facts.clone(),
                    cgroup,
                    tried: std::time::Instant::now(),
                },
            );
        }
        pod
    }

    fn build(&mut self, facts: ProcessFacts) -> ProcessIdentity {
        let pod = self.pod_of(&facts);
        let exe_name = facts.exe_name();
        let extra = facts
            .otel_resource_attributes
            .as_deref()
            .map(parse_resource_attributes)
            .unwrap_or_default();
        let from_attrs = extra
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone());
        let rule = self.rules.iter().find(|r| {
            r.exe_name
                .as_deref()
                .is_none_or(|n| n == exe_name || n == facts.comm)
                && r.exe_path_prefix
                    .as_deref()
                    .is_none_or(|p| facts.exe_path.starts_with(p))
                && (r.exe_name.is_some() || r.exe_path_prefix.is_some())
        });
        let (service_name, name_source) =
            if let Some(n) = facts.otel_service_name.clone().filter(|n| !n.is_empty()) {
                (n, NameSource::OtelServiceName)
            } else if let Some(n) = from_attrs {
                (n, NameSource::OtelResourceAttributes)
            } else if let Some(r) = rule {
                (r.name.clone(), NameSource::ConfigRule)
            } else if let Some(p) = &pod {
                (p.service_name.clone(), NameSource::Kubernetes)
            } else if !exe_name.is_empty() {
                (exe_name.clone(), NameSource::Executable)
            } else {
                (
                    format!("unknown_service:pid-{}", facts.pid),
                    NameSource::Unknown,
                )
            };

        let mut attributes = Vec::with_capacity(12 + extra.len());
        attributes.push(kv("service.name", service_name.as_str()));
        attributes.push(kv(
            "service.instance.id",
            format!("{}:{}", self.host_name, facts.pid),
        ));
        attributes.push(kv("process.pid", facts.pid as i64));
        if facts.ppid != 0 {
            attributes.push(kv("process.parent_pid", facts.ppid as i64));
        }
        if !exe_name.is_empty() {
            attributes.push(kv("process.executable.name", exe_name.as_str()));
        }
        if !facts.exe_path.is_empty() {
            attributes.push(kv("process.executable.path", facts.exe_path.as_str()));
        }
        attributes.push(kv("host.name", self.host_name.as_str()));
        attributes.push(kv("telemetry.sdk.name", "wirespan"));
        attributes.push(kv("telemetry.sdk.language", "rust"));
        attributes.push(kv("telemetry.sdk.version", env!("CARGO_PKG_VERSION")));
        attributes.push(kv("telemetry.distro.name", "wirespan"));
        attributes.push(kv("telemetry.distro.version", env!("CARGO_PKG_VERSION")));
        // The process's own resource attributes, except those we set ourselves,
        // then its pod's, then the host's.
        let from_pod = pod.into_iter().flat_map(|p| {
            let namespace = ("service.namespace".to_string(), p.service_namespace);
            p.attributes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .chain(std::iter::once(namespace))
        });
        for (k, v) in extra
            .into_iter()
            .chain(from_pod)
            .chain(self.host_attributes.iter().cloned())
        {
            if !attributes.iter().any(|a| a.key == k) {
                attributes.push(kv(&k, v));
            }
        }
        let id = self.next_resource_id;
        self.next_resource_id += 1;
        ProcessIdentity {
            pid: facts.pid,
            exe_name,
            exe_path: facts.exe_path,
            service_name: service_name.into(),
            name_source,
            resource: Arc::new(ProcessResource { id, attributes }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(id: &'a ProcessIdentity, key: &str) -> Option<&'a any_value::Value> {
        id.resource
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn facts(exe: &str, env: &[u8]) -> ProcessFacts {
        let mut f = ProcessFacts {
            pid: 42,
            ppid: 1,
            exe_path: exe.to_string(),
            comm: "comm".into(),
            ..Default::default()
        };
        f.read_environment(env);
        f
    }

    #[test]
    fn service_name_precedence() {
        let rules = vec![ServiceRule {
            exe_name: Some("curl".into()),
            exe_path_prefix: None,
            name: "from-rule".into(),
        }];
        let mut t = ProcessTable::new(rules, "h".into());
        let a = t.on_exec(facts("/usr/bin/curl", b"A=1\0OTEL_SERVICE_NAME=checkout\0"));
        assert_eq!(
            (&*a.service_name, a.name_source),
            ("checkout", NameSource::OtelServiceName)
        );
        let b = t.on_exec(facts(
            "/usr/bin/curl",
            b"OTEL_RESOURCE_ATTRIBUTES=service.name=cart,deployment.environment=prod%20eu\0",
        ));
        assert_eq!(
            (&*b.service_name, b.name_source),
            ("cart", NameSource::OtelResourceAttributes)
        );
        assert_eq!(
            attr(&b, "deployment.environment"),
            Some(&any_value::Value::StringValue("prod eu".into()))
        );
        let c = t.on_exec(facts("/usr/bin/curl", b""));
        assert_eq!(
            (&*c.service_name, c.name_source),
            ("from-rule", NameSource::ConfigRule)
        );
        let d = t.on_exec(facts("/usr/sbin/nginx", b""));
        assert_eq!(
            (&*d.service_name, d.name_source),
            ("nginx", NameSource::Executable)
        );
        assert_eq!(
            attr(&d, "process.pid"),
            Some(&any_value::Value::IntValue(42))
        );
        assert_eq!(
            attr(&d, "process.executable.name"),
            Some(&any_value::Value::StringValue("nginx".into()))
        );
        assert_ne!(c.resource.id, d.resource.id);
    }

    #[test]
    fn host_attributes_reach_every_resource_unless_the_process_sets_them() {
        let mut t = ProcessTable::new(Vec::new(), "h".into()).with_host_attributes(vec![
            ("k8s.node.name".into(), "node-1".into()),
            ("deployment.environment".into(), "prod".into()),
            ("service.name".into(), "wirespan".into()),
        ]);
        let p = t.on_exec(facts(
            "/usr/bin/app",
            b"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=dev\0",
        ));
        assert_eq!(
            attr(&p, "k8s.node.name"),
            Some(&any_value::Value::StringValue("node-1".into()))
        );
        assert_eq!(
            attr(&p, "deployment.environment"),
            Some(&any_value::Value::StringValue("dev".into()))
        );
        assert_eq!(&*p.service_name, "app");
    }

    #[test]
    fn resource_attribute_parsing_tolerates_junk() {
        assert_eq!(
            parse_resource_attributes("a=1, b = x%2Cy ,=bad,novalue,c=%zz"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x,y".to_string()),
                ("c".to_string(), "%zz".to_string())
            ]
        );
    }

    #[test]
    fn own_process_is_found_in_proc() {
        let f = ProcessFacts::from_proc(std::process::id()).expect("own /proc entry");
        assert_eq!(f.pid, std::process::id());
        assert!(!f.comm.is_empty());
    }
}
