//! Which cgroup a process is in, for Kubernetes metadata: the text of its
//! `/proc/PID/cgroup`, read when the process is first seen, or, for a process
//! already gone (a 10 ms curl that is the only process of a Job's container),
//! rebuilt from the cgroup v2 id that its exec record carries.
//!
//! An id is the inode number of the cgroup's directory in the unified
//! hierarchy, so it is found again by `stat` (the path of a live process) or,
//! failing that, by one bounded walk of the hierarchy. Known ids are cached
//! (bounded); an id the walk did not find is not walked for again for a while.
//!
//! Only cgroup v2 ids are resolved: on a cgroup v1 host the v2 id is the root
//! and says nothing, and only the `/proc` text of a live process helps.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cached ids before the cache is cleared (it refills from live processes).
const MAX_CACHED: usize = 16_384;
/// Most directories one walk visits.
const MAX_WALK_ENTRIES: usize = 100_000;
/// An id not found by a walk is not walked for again within this time.
const MISS_RETRY: Duration = Duration::from_secs(10);

/// The cgroup v2 mount point, from `/proc/self/mountinfo`.
pub fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // "... mount-point options - fstype source super-options"
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The unified-hierarchy path in `/proc/PID/cgroup` text (the `0::` line).
fn v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

pub struct CgroupPaths {
    root: Option<PathBuf>,
    /// cgroup id → `/proc/PID/cgroup`-style text (just the `0::` line).
    by_id: HashMap<u64, Arc<str>>,
    misses: HashMap<u64, Instant>,
}

impl CgroupPaths {
    pub fn discover() -> Self {
        Self::with_root(cgroup2_root())
    }

    pub fn with_root(root: Option<PathBuf>) -> Self {
        Self {
            root,
            by_id: HashMap::new(),
            misses: HashMap::new(),
        }
    }

    /// The cgroup text of process `pid`, whose exec record said `cgroup_id`
    /// (0: unknown). `/proc` first (it has every hierarchy, v1 included), then
    /// the id.
    pub fn text_for(&mut self, pid: u32, cgroup_id: u64) -> Option<Arc<str>> {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            self.learn(&text);
            return Some(text.into());
        }
        self.by_id(cgroup_id)
    }

    /// Remembers the id of the v2 path in `text` (a live process's cgroup).
    fn learn(&mut self, text: &str) {
        let (Some(root), Some(path)) = (&self.root, v2_path(text)) else {
            return;
        };
        if path == "/" {
            return;
        }
        if let Ok(meta) = std::fs::metadata(root.join(path.trim_start_matches('/'))) {
            self.insert(meta.ino(), path);
        }
    }

    fn insert(&mut self, id: u64, path: &str) {
        if self.by_id.len() >= MAX_CACHED {
            self.by_id.clear();
        }
        self.by_id.insert(id, format!("0::{path}\n").into());
    }

    /// The cgroup text for `id`, walking the hierarchy once if it is unknown.
    pub fn by_id(&mut self, id: u64) -> Option<Arc<str>> {
        if id == 0 {
            return None;
        }
        if let Some(t) = self.by_id.get(&id) {
            return Some(t.clone());
        }
        if self
            .misses
            .get(&id)
            .is_some_and(|at| at.elapsed() < MISS_RETRY)
        {
            return None;
        }
        let root = self.root.clone()?;
        self.walk(&root);
        match self.by_id.get(&id) {
            Some(t) => Some(t.clone()),
            None => {
                if self.misses.len() >= MAX_CACHED {
                    self.misses.clear();
                }
                self.misses.insert(id, Instant::now());
                None
            }
        }
    }

    /// Caches the id of every directory under `root` (bounded).
    fn walk(&mut self, root: &Path) {
        let mut stack = vec![root.to_path_buf()];
        let mut visited = 0usize;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                visited += 1;
                if visited > MAX_WALK_ENTRIES {
                    return;
                }
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_dir() {
                    continue;
                }
                let path = entry.path();
                if let Ok(rel) = path.strip_prefix(root) {
                    let rel = format!("/{}", rel.display());
                    self.insert(meta.ino(), &rel);
                }
                stack.push(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_path_is_the_unified_line() {
        let text = "4:memory:/kubepods/pod1/abc\n0::/kubepods.slice/x.scope\n";
        assert_eq!(v2_path(text), Some("/kubepods.slice/x.scope"));
        assert_eq!(v2_path("4:memory:/x\n"), None);
    }

    /// A directory tree standing in for the hierarchy: ids are inode numbers.
    #[test]
    fn ids_are_found_by_walking_and_misses_are_remembered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let leaf = dir
            .path()
            .join("kubepods.slice/kubepods-podabc.slice/cri-containerd-0123.scope");
        std::fs::create_dir_all(&leaf).expect("dirs");
        let id = std::fs::metadata(&leaf).expect("stat").ino();
        let mut paths = CgroupPaths::with_root(Some(dir.path().to_path_buf()));
        assert_eq!(
            paths.by_id(id).as_deref(),
            Some("0::/kubepods.slice/kubepods-podabc.slice/cri-containerd-0123.scope\n")
        );
        assert_eq!(paths.by_id(0), None);
        // Unknown: walked once, then remembered as a miss.
        assert_eq!(paths.by_id(u64::MAX), None);
        assert!(paths.misses.contains_key(&u64::MAX));
    }

    #[test]
    fn a_live_process_is_read_from_proc() {
        let mut paths = CgroupPaths::with_root(None);
        let me = std::process::id();
        let text = paths.text_for(me, 0).expect("own cgroup");
        assert_eq!(
            &*text,
            std::fs::read_to_string("/proc/self/cgroup")
                .expect("read")
                .as_str()
        );
        // A pid that does not exist and no id: nothing.
        assert_eq!(paths.text_for(u32::MAX, 0), None);
    }
}
