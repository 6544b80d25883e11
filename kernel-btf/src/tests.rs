//! Unit tests on small hand-built BTF blobs.

use crate::parse::*;
use crate::{resolve_kernel_offsets, Btf, BtfError};

/// Builds BTF blobs type by type. Type ids start at 1, in order of creation.
pub(crate) struct Builder {
    types: Vec<u8>,
    strs: Vec<u8>,
    next_id: u32,
    big_endian: bool,
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            types: Vec::new(),
            strs: vec![0],
            next_id: 1,
            big_endian: false,
        }
    }

    fn word(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn put(&mut self, v: u32) {
        let w = self.word(v);
        self.types.extend_from_slice(&w);
    }

    fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strs.len() as u32;
        self.strs.extend_from_slice(name.as_bytes());
        self.strs.push(0);
        off
    }

    /// Raw `btf_type` record; returns its id.
    pub fn rec(&mut self, name: &str, kind: u8, kflag: bool, vlen: u16, st: u32) -> u32 {
        let name_off = self.s(name);
        let info = (u32::from(kflag) << 31) | (u32::from(kind) << 24) | u32::from(vlen);
        self.put(name_off);
        self.put(info);
        self.put(st);
        self.next_id += 1;
        self.next_id - 1
    }

    pub fn int(&mut self, name: &str, size: u32, bits: u32, bit_off: u32) -> u32 {
        let id = self.rec(name, KIND_INT, false, 0, size);
        self.put((bit_off << 16) | bits);
        id
    }

    pub fn modifier(&mut self, kind: u8, name: &str, target: u32) -> u32 {
        self.rec(name, kind, false, 0, target)
    }

    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.rec("", KIND_ARRAY, false, 0, 0);
        self.put(elem);
        self.put(index);
        self.put(n);
        id
    }

    /// STRUCT or UNION; each member is (name, type id, raw offset word).
    pub fn composite(
        &mut self,
        kind: u8,
        name: &str,
        size: u32,
        kflag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let id = self.rec(name, kind, kflag, members.len() as u16, size);
        for &(n, t, off) in members {
            let n = self.s(n);
            self.put(n);
            self.put(t);
            self.put(off);
        }
        id
    }

    pub fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(KIND_STRUCT, name, size, false, members)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let magic = if self.big_endian {
            BTF_MAGIC.to_be_bytes()
        } else {
            BTF_MAGIC.to_le_bytes()
        };
        out.extend_from_slice(&magic);
        out.extend_from_slice(&[1, 0]);
        let tl = self.types.len() as u32;
        for v in [24, 0, tl, tl, self.strs.len() as u32] {
            out.extend_from_slice(&self.word(v));
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strs);
        out
    }
}

/// A miniature `struct sock_common` / `struct sock`, shaped like Linux 6.x.
fn sock_builder(sk_common_at: u32) -> Builder {
    sock_into(Builder::new(), sk_common_at)
}

fn sock_into(mut b: Builder, sk_common_at: u32) -> Builder {
    let u16_ = b.int("short unsigned int", 2, 16, 0);
    let u32_ = b.int("unsigned int", 4, 32, 0);
    let u64_ = b.int("long long unsigned int", 8, 64, 0);
    let be32 = b.modifier(KIND_TYPEDEF, "__be32", u32_);
    let be16 = b.modifier(KIND_TYPEDEF, "__be16", u16_);
    let addr_s = b.strukt(
        "",
        8,
        &[("skc_daddr", be32, 0), ("skc_rcv_saddr", be32, 32)],
    );
    let addr_u = b.composite(
        KIND_UNION,
        "",
        8,
        false,
        &[("skc_addrpair", u64_, 0), ("", addr_s, 0)],
    );
    let port_s = b.strukt("", 4, &[("skc_dport", be16, 0), ("skc_num", u16_, 16)]);
    let port_u = b.composite(
        KIND_UNION,
        "",
        4,
        false,
        &[("skc_portpair", u32_, 0), ("", port_s, 0)],
    );
    let in6 = b.strukt("in6_addr", 16, &[("s6_addr32", u32_, 0)]);
    let arr = b.array(in6, u32_, 2);
    let common = b.strukt(
        "sock_common",
        136,
        &[
            ("", addr_u, 0),
            ("", port_u, 12 * 8),
            ("skc_family", u16_, 16 * 8),
            ("skc_v6_daddr", in6, 56 * 8),
            ("skc_v6_rcv_saddr", in6, 72 * 8),
            ("pair", arr, 88 * 8),
        ],
    );
    let td = b.modifier(KIND_TYPEDEF, "sock_common_t", common);
    let cst = b.modifier(KIND_CONST, "", td);
    let td2 = b.modifier(KIND_TYPEDEF, "sock_common_ct", cst);
    b.strukt(
        "sock",
        600,
        &[
            ("__sk_common", td2, sk_common_at * 8),
            ("sk_type", u16_, 534 * 8),
        ],
    );
    b
}

#[test]
fn anonymous_unions_and_typedef_chains() {
    let btf = Btf::from_bytes(&sock_builder(0).build()).unwrap();
    let off = |s, m| btf.member_offset(s, m).unwrap();
    assert_eq!(off("sock_common", "skc_daddr"), 0);
    assert_eq!(off("sock_common", "skc_rcv_saddr"), 4);
    assert_eq!(off("sock_common", "skc_dport"), 12);
    assert_eq!(off("sock_common", "skc_num"), 14);
    assert_eq!(off("sock_common", "skc_family"), 16);
    assert_eq!(off("sock_common", "skc_v6_rcv_saddr"), 72);
    assert_eq!(off("sock_common", "skc_v6_rcv_saddr.s6_addr32"), 72);
    assert_eq!(off("sock", "__sk_common.skc_num"), 14);
    assert_eq!(off("sock", "sk_type"), 534);
    assert_eq!(
        btf.member_bit_offset_and_size("sock", "sk_type").unwrap(),
        (534 * 8, 16)
    );
    // Array of two 16-byte structs; a typedef'd, const struct of 136 bytes.
    assert_eq!(
        btf.member_bit_offset_and_size("sock_common", "pair")
            .unwrap(),
        (88 * 8, 256)
    );
    assert_eq!(
        btf.member_bit_offset_and_size("sock", "__sk_common")
            .unwrap(),
        (0, 136 * 8)
    );
    assert_eq!(btf.struct_size("sock_common").unwrap(), 136);
}

#[test]
fn nested_offsets_add_up() {
    let btf = Btf::from_bytes(&sock_builder(40).build()).unwrap();
    assert_eq!(
        btf.member_offset("sock", "__sk_common.skc_daddr").unwrap(),
        40
    );
    assert_eq!(
        btf.member_offset("sock", "__sk_common.skc_dport").unwrap(),
        52
    );
    assert_eq!(
        btf.member_offset("sock", "__sk_common.skc_v6_daddr.s6_addr32")
            .unwrap(),
        96
    );
}

#[test]
fn lookup_errors_name_what_is_missing() {
    let btf = Btf::from_bytes(&sock_builder(0).build()).unwrap();
    let e = btf
        .member_offset("sock", "__sk_common.skc_bogus")
        .unwrap_err();
    assert!(
        matches!(&e, BtfError::NoSuchMember { struct_name, member, .. }
        if struct_name == "sock_common" && member == "skc_bogus")
    );
    assert_eq!(
        e.to_string(),
        "kernel BTF has no member `skc_bogus` in struct `sock_common` \
         (resolving `sock.__sk_common.skc_bogus`)"
    );
    let e = btf.member_offset("sock", "skc_daddr").unwrap_err();
    assert!(
        e.to_string()
            .contains("no member `skc_daddr` in struct `sock`"),
        "{e}"
    );
    let e = btf.member_offset("task_struct", "mm").unwrap_err();
    assert_eq!(e.to_string(), "kernel BTF has no struct `task_struct`");
    let e = btf.member_offset("sock", "sk_type.x").unwrap_err();
    assert!(matches!(e, BtfError::NotComposite { .. }), "{e}");
    for bad in ["", ".", "__sk_common.", ".sk_type"] {
        assert!(btf.member_offset("sock", bad).is_err(), "{bad:?}");
    }
    // Anonymous members are not addressable by an empty name.
    assert!(btf.member_offset("sock_common", "").is_err());
}

/// `unsigned int a:4, b:12, sk_type:16;` at byte 8, in both BTF encodings.
fn bitfield_sock(kflag: bool) -> Vec<u8> {
    let mut b = Builder::new();
    let u32_ = b.int("unsigned int", 4, 32, 0);
    let u64_ = b.int("long unsigned int", 8, 64, 0);
    let members: Vec<(&str, u32, u32)> = if kflag {
        vec![
            ("sk_flags", u64_, 0),
            ("a", u32_, (4 << 24) | 64),
            ("b", u32_, (12 << 24) | 68),
            ("sk_type", u32_, (16 << 24) | 80),
        ]
    } else {
        // Pre-kind_flag encoding: the bitfield's width and bit offset live in INTs.
        let a = b.int("unsigned int", 4, 4, 0);
        let bb = b.int("unsigned int", 4, 12, 4);
        let t = b.int("unsigned int", 4, 16, 16);
        vec![
            ("sk_flags", u64_, 0),
            ("a", a, 64),
            ("b", bb, 64),
            ("sk_type", t, 64),
        ]
    };
    b.composite(KIND_STRUCT, "sock", 16, kflag, &members);
    b.build()
}

#[test]
fn bitfields_in_both_encodings() {
    for kflag in [true, false] {
        let btf = Btf::from_bytes(&bitfield_sock(kflag)).unwrap();
        let bo = |m| btf.member_bit_offset_and_size("sock", m).unwrap();
        assert_eq!(bo("a"), (64, 4), "kflag={kflag}");
        assert_eq!(bo("b"), (68, 12), "kflag={kflag}");
        assert_eq!(bo("sk_type"), (80, 16), "kflag={kflag}");
        assert_eq!(bo("sk_flags"), (0, 64), "kflag={kflag}");
        let e = btf.member_offset("sock", "sk_type").unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::Bitfield {
                    bit_offset: 80,
                    bits: 16,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(crate::resolve::sk_type(&btf).unwrap(), (10, 16));
        // `b` is not byte-aligned: the sk_type convention cannot express it.
        assert!(btf.member_offset("sock", "b").is_err());
    }
}

#[test]
fn duplicate_struct_names_must_agree() {
    let mut b = Builder::new();
    let u32_ = b.int("unsigned int", 4, 32, 0);
    b.strukt("dup", 8, &[("x", u32_, 0), ("y", u32_, 32)]);
    b.strukt("dup", 8, &[("x", u32_, 0), ("y", u32_, 0)]);
    b.strukt("dup", 4, &[("z", u32_, 0)]);
    let btf = Btf::from_bytes(&b.build()).unwrap();
    assert_eq!(btf.member_offset("dup", "x").unwrap(), 0);
    assert_eq!(btf.member_offset("dup", "z").unwrap(), 0);
    assert!(matches!(
        btf.member_offset("dup", "y"),
        Err(BtfError::Ambiguous { .. })
    ));
    assert!(matches!(
        btf.struct_size("dup"),
        Err(BtfError::Ambiguous { .. })
    ));
}

#[test]
fn every_kind_is_skipped_with_its_record_size() {
    let mut b = Builder::new();
    let u32_ = b.int("int", 4, 32, 0);
    b.rec("p", KIND_PTR, false, 0, u32_);
    b.rec("e", KIND_ENUM, false, 2, 4);
    b.put(0);
    b.put(0);
    b.put(0);
    b.put(0);
    b.rec("f", KIND_FWD, false, 0, 0);
    b.modifier(KIND_VOLATILE, "", u32_);
    b.modifier(KIND_RESTRICT, "", u32_);
    let proto = b.rec("", KIND_FUNC_PROTO, false, 1, u32_);
    b.put(0);
    b.put(u32_);
    b.rec("fn", KIND_FUNC, false, 0, proto);
    let var = b.rec("v", KIND_VAR, false, 0, u32_);
    b.put(1);
    b.rec(".data", KIND_DATASEC, false, 1, 4);
    b.put(var);
    b.put(0);
    b.put(4);
    b.rec("double", KIND_FLOAT, false, 0, 8);
    b.rec("tag", KIND_DECL_TAG, false, 0, var);
    b.put(u32::MAX);
    let tt = b.modifier(KIND_TYPE_TAG, "rcu", u32_);
    b.rec("e64", KIND_ENUM64, true, 1, 8);
    b.put(0);
    b.put(1);
    b.put(2);
    let ptr = b.rec("", KIND_PTR, false, 0, tt);
    b.strukt("last", 16, &[("tagged", tt, 0), ("p", ptr, 64)]);
    let btf = Btf::from_bytes(&b.build()).unwrap();
    assert_eq!(btf.type_count(), 16);
    assert_eq!(btf.member_offset("last", "p").unwrap(), 8);
    assert_eq!(
        btf.member_bit_offset_and_size("last", "tagged").unwrap(),
        (0, 32)
    );
    // No `long` in this blob: pointers default to 8 bytes.
    assert_eq!(
        btf.member_bit_offset_and_size("last", "p").unwrap(),
        (64, 64)
    );
}

#[test]
fn big_endian_blob_parses_the_same() {
    let le = Btf::from_bytes(&sock_into(Builder::new(), 8).build()).unwrap();
    let mut be = Builder::new();
    be.big_endian = true;
    let blob = sock_into(be, 8).build();
    assert_eq!(&blob[..2], &[0xEB, 0x9F]);
    let be = Btf::from_bytes(&blob).unwrap();
    for path in ["__sk_common.skc_num", "__sk_common.skc_v6_daddr", "sk_type"] {
        assert_eq!(
            le.member_bit_offset_and_size("sock", path).unwrap(),
            be.member_bit_offset_and_size("sock", path).unwrap()
        );
    }
    assert_eq!(be.member_offset("sock", "__sk_common.skc_num").unwrap(), 22);
}

#[test]
fn cycles_are_errors_not_overflows() {
    let mut b = Builder::new();
    // Type 1: a typedef of itself; type 2: a struct with an anonymous member of its own type.
    b.modifier(KIND_TYPEDEF, "loop", 1);
    b.strukt("selfish", 4, &[("", 2, 0)]);
    b.strukt("holder", 8, &[("l", 1, 0)]);
    let btf = Btf::from_bytes(&b.build()).unwrap();
    assert!(btf.member_offset("selfish", "x").is_err());
    assert!(btf.member_bit_offset_and_size("holder", "l").is_err());
    assert!(btf.member_offset("holder", "l.x").is_err());
}

#[test]
fn header_errors() {
    let good = sock_builder(0).build();
    assert!(matches!(Btf::from_bytes(&[]), Err(BtfError::Truncated(_))));
    assert!(matches!(
        Btf::from_bytes(b"ELF\0"),
        Err(BtfError::BadMagic(_))
    ));
    let mut v2 = good.clone();
    v2[2] = 2;
    assert!(matches!(
        Btf::from_bytes(&v2),
        Err(BtfError::UnsupportedVersion(2))
    ));
    let mut short_hdr = good.clone();
    short_hdr[4] = 8;
    assert!(matches!(
        Btf::from_bytes(&short_hdr),
        Err(BtfError::Malformed(_))
    ));
    let mut unknown = Builder::new();
    unknown.rec("x", 20, false, 0, 0);
    assert!(matches!(
        Btf::from_bytes(&unknown.build()),
        Err(BtfError::UnknownKind { id: 1, kind: 20 })
    ));
    let mut bad_str = Builder::new();
    bad_str.strukt("s", 4, &[]);
    let mut blob = bad_str.build();
    blob.pop(); // the string section's last NUL
    let hl = blob.len() - 24 - 12;
    blob[20..24].copy_from_slice(&(hl as u32).to_le_bytes());
    assert!(Btf::from_bytes(&blob).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let good = sock_builder(0).build();
    for len in 0..good.len() {
        assert!(Btf::from_bytes(&good[..len]).is_err(), "len {len}");
    }
}

/// Exercise lookups on whatever parsed; none may panic.
fn poke(btf: &Btf) {
    resolve_kernel_offsets(btf).ok();
    for (s, m) in [
        ("sock", "__sk_common.skc_daddr"),
        ("sock", "sk_type"),
        ("sock_common", "pair"),
        ("sock_common", "skc_v6_daddr.s6_addr32"),
        ("s", "b"),
    ] {
        btf.member_offset(s, m).ok();
        btf.member_bit_offset_and_size(s, m).ok();
        btf.struct_size(s).ok();
    }
}

#[test]
fn fuzz_random_and_mutated_input_never_panics() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let good = sock_builder(8).build();
    let kflag = bitfield_sock(true);
    let mut parsed = 0;
    for i in 0..20_000 {
        let base = if i % 2 == 0 { &good } else { &kflag };
        let mut blob = base.clone();
        match rnd() % 4 {
            // Flip a few bytes anywhere (header included).
            0 | 1 => {
                for _ in 0..1 + rnd() % 4 {
                    let at = (rnd() as usize) % blob.len();
                    blob[at] = rnd() as u8;
                }
            }
            // Random bytes behind a valid header.
            2 => {
                let n = (rnd() % 256) as usize;
                blob.truncate(24);
                blob.extend((0..n).map(|_| rnd() as u8));
                let tl = (rnd() % (n as u64 + 1)) as u32;
                blob[12..16].copy_from_slice(&tl.to_le_bytes());
                blob[16..20].copy_from_slice(&tl.to_le_bytes());
                blob[20..24].copy_from_slice(&(n as u32 - tl).to_le_bytes());
            }
            // Truncate and then flip.
            _ => {
                blob.truncate((rnd() as usize) % blob.len());
                if !blob.is_empty() {
                    let at = (rnd() as usize) % blob.len();
                    blob[at] ^= 1 << (rnd() % 8);
                }
            }
        }
        if let Ok(btf) = Btf::from_bytes(&blob) {
            parsed += 1;
            poke(&btf);
        }
    }
    // Enough mutants must parse for the lookups to be exercised too.
    assert!(parsed > 1_000, "only {parsed} mutants parsed");
}

/// A miniature kernel with every struct `resolve_kernel_offsets` needs.
fn mini_kernel(skip: &str) -> Vec<u8> {
    let mut b = sock_builder(0);
    let u64_ = b.int("long unsigned int", 8, 64, 0);
    let add = |b: &mut Builder, name: &str, members: &[(&str, u32)]| {
        if name == skip {
            return;
        }
        let ms: Vec<(&str, u32, u32)> = members
            .iter()
            .map(|&(n, byte)| (n, u64_, byte * 8))
            .collect();
        b.strukt(name, 4096, &ms);
    };
    add(
        &mut b,
        "task_struct",
        &[
            ("mm", 1136),
            ("tgid", 1268),
            ("real_parent", 1280),
            ("files", 1824),
        ],
    );
    add(&mut b, "files_struct", &[("fdt", 32)]);
    add(&mut b, "fdtable", &[("max_fds", 0), ("fd", 8)]);
    add(&mut b, "file", &[("private_data", 24)]);
    add(&mut b, "socket", &[("sk", 24)]);
    let anon = b.strukt(
        "",
        32,
        &[
            ("arg_start", u64_, 0),
            ("arg_end", u64_, 64),
            ("env_start", u64_, 128),
            ("env_end", u64_, 192),
        ],
    );
    if skip != "mm_struct" {
        b.strukt("mm_struct", 1024, &[("", anon, 480 * 8)]);
    }
    b.build()
}

#[test]
fn resolves_all_kernel_offsets() {
    let btf = Btf::from_bytes(&mini_kernel("")).unwrap();
    let k = resolve_kernel_offsets(&btf).unwrap();
    let want = probes_common::KernelOffsets {
        task_files: 1824,
        task_mm: 1136,
        task_real_parent: 1280,
        task_tgid: 1268,
        files_fdt: 32,
        fdtable_fd: 8,
        fdtable_max_fds: 0,
        file_private_data: 24,
        socket_sk: 24,
        sk_family: 16,
        sk_daddr: 0,
        sk_rcv_saddr: 4,
        sk_dport: 12,
        sk_num: 14,
        sk_v6_daddr: 56,
        sk_v6_rcv_saddr: 72,
        sk_type: 534,
        sk_type_bits: 16,
        mm_arg_start: 480,
        mm_arg_end: 488,
        mm_env_start: 496,
        mm_env_end: 504,
    };
    assert_eq!(k, want);
    for missing in ["mm_struct", "fdtable", "socket"] {
        let e = resolve_kernel_offsets(&Btf::from_bytes(&mini_kernel(missing)).unwrap());
        assert_eq!(
            e.unwrap_err().to_string(),
            format!("kernel BTF has no struct `{missing}`")
        );
    }
}

/// The probes read syscall arguments at `probes_common::pt_regs` offsets;
/// the collector refuses to attach if the running kernel disagrees. This
/// checks the same on the machine running the tests (skipped without BTF).
#[test]
fn host_pt_regs_matches_the_probes_constants() {
    use probes_common::pt_regs;
    let Ok(btf) = Btf::from_sys_fs() else {
        return;
    };
    for (member, expected) in [
        ("di", pt_regs::DI),
        ("si", pt_regs::SI),
        ("dx", pt_regs::DX),
        ("r10", pt_regs::R10),
        ("orig_ax", pt_regs::ORIG_AX),
    ] {
        assert_eq!(
            u64::from(btf.member_offset("pt_regs", member).unwrap()),
            expected,
            "pt_regs.{member}"
        );
    }
    assert_eq!(
        u64::from(btf.struct_size("pt_regs").unwrap()),
        pt_regs::SIZE
    );
}
