//! Finding TCP connections that were open before the agent started, from /proc,
//! so that their traffic is captured too (they are marked as joined midway).
//!
//! Each process's sockets are matched by inode against the `net/tcp` tables of
//! its own network namespace. A socket listed in a LISTEN row's port is on the
//! server side.

use probes_common::role;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One established socket of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededSocket {
    pub tgid: u32,
    pub fd: i32,
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    /// `probes_common::role` value.
    pub role: u32,
}

/// (address, port)
type SockEnd = (IpAddr, u16);

#[derive(Default)]
struct NetTable {
    /// inode -> (local, remote) of ESTABLISHED sockets.
    established: HashMap<u64, (SockEnd, SockEnd)>,
    listening_ports: HashSet<u16>,
}

/// Parses the hex address of /proc/net/tcp (v4: one host-order u32; v6: four).
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(addr.get(8 * i..8 * i + 8)?, 16).ok()?;
                bytes[4 * i..4 * i + 4].copy_from_slice(&word.swap_bytes().to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

fn parse_net_table(text: &str, table: &mut NetTable) {
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 {
            continue;
        }
        let (Some(local), Some(remote)) = (parse_addr(cols[1]), parse_addr(cols[2])) else {
            continue;
        };
        let Ok(inode) = cols[9].parse::<u64>() else {
            continue;
        };
        match cols[3] {
            "0A" => {
                table.listening_ports.insert(local.1);
            }
            "01" => {
                table.established.insert(inode, (local, remote));
            }
            _ => {}
        }
    }
}

fn load_net_table(pid: u32) -> NetTable {
    let mut table = NetTable::default();
    for file in ["tcp", "tcp6"] {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) {
            parse_net_table(&text, &mut table);
        }
    }
    table
}

/// Every established TCP socket of every process except `skip_pid`.
pub fn established_sockets(skip_pid: u32) -> Vec<SeededSocket> {
    let mut out = Vec::new();
    let mut tables: HashMap<String, NetTable> = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == skip_pid {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut sockets: Vec<(i32, u64)> = Vec::new();
        for fd in fds.flatten() {
            let Some(fd_num) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                sockets.push((fd_num, inode));
            }
        }
        if sockets.is_empty() {
            continue;
        }
        let netns = fs::read_link(format!("/proc/{pid}/ns/net"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let table = tables.entry(netns).or_insert_with(|| load_net_table(pid));
        for (fd, inode) in sockets {
            if let Some((local, remote)) = table.established.get(&inode) {
                let role = if table.listening_ports.contains(&local.1) {
                    role::SERVER
                } else {
                    role::CLIENT
                };
                out.push(SeededSocket {
                    tgid: pid,
                    fd,
                    local: *local,
                    remote: *remote,
                    role,
                });
            }
        }
    }
    out
}

/// The capture filters the probes apply at connect/accept, applied to a
/// seeded socket: only listed processes (when any), only connections with a
/// listed port (when any), never one with an excluded port.
pub fn allowed(s: &SeededSocket, pids: &[u32], ports: &[u16], exclude: &[u16]) -> bool {
    let (a, b) = (s.local.1, s.remote.1);
    (pids.is_empty() || pids.contains(&s.tgid))
        && (ports.is_empty() || ports.contains(&a) || ports.contains(&b))
        && !exclude.contains(&a)
        && !exclude.contains(&b)
}

/// The probes' 16-byte address form (IPv4 as IPv4-mapped IPv6).
pub fn raw_addr(ip: IpAddr) -> ([u8; 16], u16) {
    match ip {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), 2),
        IpAddr::V6(v6) => (v6.octets(), 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp_rows() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1\n";
        let mut t = NetTable::default();
        parse_net_table(text, &mut t);
        assert!(t.listening_ports.contains(&8080));
        let (l, r) = t.established[&2222];
        assert_eq!(l, ("127.0.0.1".parse().unwrap(), 8080));
        assert_eq!(r, ("127.0.0.1".parse().unwrap(), 50000));
        let v6 = parse_addr("00000000000000000000000001000000:0050").unwrap();
        assert_eq!(v6, ("::1".parse().unwrap(), 80));
        assert!(parse_addr("zz:1").is_none());
    }

    #[test]
    fn seeding_applies_the_capture_filters() {
        let ip = "127.0.0.1".parse().unwrap();
        let s = SeededSocket {
            tgid: 5,
            fd: 3,
            local: (ip, 8080),
            remote: (ip, 50000),
            role: role::SERVER,
        };
        assert!(allowed(&s, &[], &[], &[]));
        assert!(allowed(&s, &[5], &[8080], &[]));
        assert!(!allowed(&s, &[6], &[], &[]));
        assert!(!allowed(&s, &[], &[9090], &[]));
        assert!(!allowed(&s, &[], &[], &[50000]));
    }

    #[test]
    fn finds_a_real_established_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let me = std::process::id();
        let found = established_sockets(0);
        let mine: Vec<_> = found.iter().filter(|s| s.tgid == me).collect();
        assert!(
            mine.iter()
                .any(|s| s.role == role::SERVER && s.local.1 == port),
            "{mine:?}"
        );
        assert!(
            mine.iter()
                .any(|s| s.role == role::CLIENT && s.remote.1 == port),
            "{mine:?}"
        );
    }
}
