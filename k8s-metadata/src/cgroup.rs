//! The pod UID and container ID in the text of `/proc/<pid>/cgroup`, for the
//! kubelet's two cgroup drivers (systemd and cgroupfs), cgroup v1 and v2, and the
//! containerd, CRI-O and Docker runtimes.
//!
//! Examples of the paths recognised (one line of the file each):
//!
//! ```text
//! 0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f3c…_4e.slice/cri-containerd-<id>.scope
//! 0::/kubepods.slice/kubepods-pod<uid_>.slice/crio-<id>.scope
//! 12:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice/docker-<id>.scope
//! 0::/kubepods/burstable/pod<uid>/<id>
//! 11:cpu,cpuacct:/kubepods/pod<uid>/crio-<id>
//! 0::/../../kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope   (seen from another cgroup namespace)
//! ```

/// What a process's cgroup says about where it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupRef {
    /// The pod's `metadata.uid`, with dashes (the systemd driver writes `_`).
    /// For a static pod this is the kubelet's config hash, not the mirror pod's
    /// UID; the container ID still finds it.
    pub pod_uid: Option<String>,
    /// The container runtime's ID (64 hex digits), without the runtime prefix.
    pub container_id: Option<String>,
}

/// The pod UID and container ID of a process, from the text of its
/// `/proc/<pid>/cgroup`. `None` when no line names a Kubernetes pod or container
/// (a host process, or a container not started by the kubelet).
///
/// Every line is read (cgroup v1 has one a hierarchy); the first line that
/// names a pod wins, and a container ID found on a line that names no pod
/// (for example a runtime's nested cgroup) is kept when nothing better is seen.
pub fn parse_cgroup(text: &str) -> Option<CgroupRef> {
    let mut fallback: Option<CgroupRef> = None;
    for line in text.lines() {
        // hierarchy-ID:controller-list:cgroup-path; the path may contain ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let found = parse_path(path);
        if found.pod_uid.is_some() {
            return Some(found);
        }
        if found.container_id.is_some() && fallback.is_none() {
            fallback = Some(found);
        }
    }
    fallback
}

fn parse_path(path: &str) -> CgroupRef {
    let mut out = CgroupRef::default();
    let mut in_kubepods = false;
    for component in path.split('/') {
        if component.is_empty() || component == ".." {
            continue;
        }
        if component.contains("kubepods") {
            in_kubepods = true;
        }
        if let Some(uid) = pod_uid(component) {
            out.pod_uid = Some(uid);
            continue;
        }
        // A bare 64-hex component is a container only under a pod (cgroupfs
        // driver); a runtime-prefixed scope is one anywhere.
        if let Some(id) = prefixed_container_id(component) {
            out.container_id = Some(id.to_string());
        } else if (in_kubepods || out.pod_uid.is_some()) && is_container_id(component) {
            out.container_id = Some(component.to_string());
        }
    }
    out
}

/// `kubepods-burstable-pod<uid_>.slice`, `kubepods-pod<uid_>.slice` (systemd) or
/// `pod<uid>` (cgroupfs).
fn pod_uid(component: &str) -> Option<String> {
    let raw = if let Some(slice) = component.strip_suffix(".slice") {
        let at = slice.rfind("-pod")?;
        if !slice[..at].contains("kubepods") {
            return None;
        }
        &slice[at + 4..]
    } else {
        component.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    is_pod_uid(&uid).then_some(uid)
}

/// A UUID with dashes (36) or a static pod's config hash (32 hex digits).
fn is_pod_uid(s: &str) -> bool {
    let hex_digits = s.bytes().filter(u8::is_ascii_hexdigit).count();
    let dashes = s.bytes().filter(|&b| b == b'-').count();
    hex_digits == 32 && hex_digits + dashes == s.len() && (dashes == 0 || dashes == 4)
}

/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`,
/// `libpod-<id>.scope` (systemd driver) or `crio-<id>` (CRI-O, cgroupfs driver).
/// `crio-conmon-<id>.scope` is CRI-O's monitor process, not the container.
fn prefixed_container_id(component: &str) -> Option<&str> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    ["cri-containerd-", "crio-", "docker-", "libpod-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .filter(|id| is_container_id(id))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1ab3e8c0b2d9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3";
    const UID: &str = "0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9";
    const UID_: &str = "0f3c2a1b_9d8e_4f7a_b6c5_d4e3f2a1b0c9";

    fn both(uid: &str, id: &str) -> Option<CgroupRef> {
        Some(CgroupRef {
            pod_uid: Some(uid.to_string()),
            container_id: Some(id.to_string()),
        })
    }

    #[test]
    fn systemd_driver_v2_each_runtime() {
        for (qos, scope) in [
            ("burstable", format!("cri-containerd-{ID}.scope")),
            ("besteffort", format!("crio-{ID}.scope")),
            ("burstable", format!("docker-{ID}.scope")),
        ] {
            let text = format!(
                "0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID_}.slice/{scope}\n"
            );
            assert_eq!(parse_cgroup(&text), both(UID, ID), "{text}");
        }
        // Guaranteed QoS has no QoS level in the path.
        let text = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse_cgroup(&text), both(UID, ID));
    }

    #[test]
    fn cgroupfs_driver_v2_and_v1() {
        let v2 = format!("0::/kubepods/burstable/pod{UID}/{ID}\n");
        assert_eq!(parse_cgroup(&v2), both(UID, ID));
        let v1 = format!(
            "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n\
             11:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{ID}\n\
             1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n\
             0::/\n"
        );
        assert_eq!(parse_cgroup(&v1), both(UID, ID));
        let crio = format!("0::/kubepods/pod{UID}/crio-{ID}");
        assert_eq!(parse_cgroup(&crio), both(UID, ID));
    }

    #[test]
    fn v1_with_systemd_driver_and_unrelated_first_lines() {
        let text = format!(
            "13:misc:/\n\
             12:rdma:/\n\
             5:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope\n"
        );
        assert_eq!(parse_cgroup(&text), both(UID, ID));
    }

    #[test]
    fn seen_from_a_cgroup_namespace_and_kind_nodes() {
        let nested =
            format!("0::/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse_cgroup(&nested), both(UID, ID));
        // kind / nested kubelet: kubepods under another slice.
        let kind = format!(
            "0::/system.slice/docker-0000000000000000000000000000000000000000000000000000000000000000.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(parse_cgroup(&kind), both(UID, ID));
    }

    #[test]
    fn static_pod_hash_uid() {
        let hash = "5d7a1b2c3e4f5a6b7c8d9e0f1a2b3c4d";
        let text = format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse_cgroup(&text), both(hash, ID));
    }

    #[test]
    fn pod_without_container_and_conmon() {
        let sandbox = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
        );
        assert_eq!(
            parse_cgroup(&sandbox),
            Some(CgroupRef {
                pod_uid: Some(UID.to_string()),
                container_id: None
            })
        );
        let conmon = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope");
        assert_eq!(parse_cgroup(&conmon).and_then(|r| r.container_id), None);
    }

    #[test]
    fn not_kubernetes() {
        assert_eq!(
            parse_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(parse_cgroup("0::/system.slice/containerd.service\n"), None);
        assert_eq!(parse_cgroup(""), None);
        assert_eq!(parse_cgroup("garbage without colons"), None);
        // A bare 64-hex component outside kubepods is not a container.
        assert_eq!(parse_cgroup(&format!("0::/foo/{ID}")), None);
        // A plain docker container (no pod) still yields its container id.
        assert_eq!(
            parse_cgroup(&format!("0::/system.slice/docker-{ID}.scope")),
            Some(CgroupRef {
                pod_uid: None,
                container_id: Some(ID.to_string())
            })
        );
        // "pod" followed by something that is not a UID.
        assert_eq!(parse_cgroup("0::/kubepods/podman/abc"), None);
    }
}
