//! Resolves every offset against the running kernel's BTF and checks relations
//! that hold on any kernel. Expected numbers are not hard-coded: the test must
//! pass on whatever kernel runs it.
//!
//! Without `/sys/kernel/btf/vmlinux` the test FAILS, unless
//! `WIRESPAN_ALLOW_NO_BTF=1` is set, in which case it prints a loud skip line.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use kernel_btf::{resolve_kernel_offsets, Btf, BtfError, SYS_FS_VMLINUX};

fn load() -> Option<(Vec<u8>, Btf)> {
    match std::fs::read(SYS_FS_VMLINUX) {
        Ok(data) => {
            let btf = Btf::from_bytes(&data).expect("parse the running kernel's BTF");
            Some((data, btf))
        }
        Err(e) if std::env::var("WIRESPAN_ALLOW_NO_BTF").as_deref() == Ok("1") => {
            eprintln!(
                "!!!!! SKIPPED: {SYS_FS_VMLINUX} unreadable ({e}); kernel BTF tests did NOT run \
                 (WIRESPAN_ALLOW_NO_BTF=1) !!!!!"
            );
            None
        }
        Err(e) => panic!(
            "{SYS_FS_VMLINUX} is unreadable ({e}): this kernel has no BTF \
             (CONFIG_DEBUG_INFO_BTF). Set WIRESPAN_ALLOW_NO_BTF=1 to skip deliberately."
        ),
    }
}

/// (bit offset, bit size) of a member.
fn bits(btf: &Btf, s: &str, m: &str) -> (u32, u32) {
    btf.member_bit_offset_and_size(s, m)
        .unwrap_or_else(|e| panic!("{s}.{m}: {e}"))
}

/// Byte offset `off` lies, with `size_bits`, inside struct `s` and is naturally aligned.
fn check_in(btf: &Btf, s: &str, what: &str, off: u32, size_bits: u32) {
    let size = btf.struct_size(s).unwrap();
    assert!(size_bits.is_multiple_of(8), "{what}: {size_bits} bits");
    let bytes = size_bits / 8;
    assert!(
        off + bytes <= size,
        "{what} at {off}+{bytes} beyond {s} ({size} bytes)"
    );
    let align = bytes.min(8);
    assert_eq!(off % align, 0, "{what} at {off} not aligned to {align}");
}

#[test]
fn resolves_every_offset_on_the_running_kernel() {
    let Some((_, btf)) = load() else { return };
    let k = resolve_kernel_offsets(&btf).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{k:#?}");

    let ptr_bits = bits(&btf, "task_struct", "mm").1;
    assert!(ptr_bits == 64 || ptr_bits == 32, "pointer width {ptr_bits}");
    for (s, m, off) in [
        ("task_struct", "files", k.task_files),
        ("task_struct", "mm", k.task_mm),
        ("task_struct", "real_parent", k.task_real_parent),
        ("files_struct", "fdt", k.files_fdt),
        ("fdtable", "fd", k.fdtable_fd),
        ("file", "private_data", k.file_private_data),
        ("socket", "sk", k.socket_sk),
    ] {
        assert_eq!(
            bits(&btf, s, m),
            (off * 8, ptr_bits),
            "{s}.{m} is a pointer"
        );
        check_in(&btf, s, &format!("{s}.{m}"), off, ptr_bits);
    }
    for (s, m, off) in [
        ("task_struct", "tgid", k.task_tgid),
        ("fdtable", "max_fds", k.fdtable_max_fds),
    ] {
        assert_eq!(bits(&btf, s, m), (off * 8, 32), "{s}.{m} is 32-bit");
        check_in(&btf, s, &format!("{s}.{m}"), off, 32);
    }

    // sock_common sits at the start of sock (the kernel casts between them).
    assert_eq!(btf.member_offset("sock", "__sk_common").unwrap(), 0);
    for (m, off, size) in [
        ("skc_family", k.sk_family, 16),
        ("skc_daddr", k.sk_daddr, 32),
        ("skc_rcv_saddr", k.sk_rcv_saddr, 32),
        ("skc_dport", k.sk_dport, 16),
        ("skc_num", k.sk_num, 16),
        ("skc_v6_daddr", k.sk_v6_daddr, 128),
        ("skc_v6_rcv_saddr", k.sk_v6_rcv_saddr, 128),
    ] {
        assert_eq!(
            bits(&btf, "sock_common", m),
            (off * 8, size),
            "sock_common.{m}"
        );
        check_in(&btf, "sock_common", m, off, size);
    }
    // The address pair and port pair are read as one 8- and one 4-byte word.
    assert_eq!(k.sk_rcv_saddr, k.sk_daddr + 4);
    assert_eq!(k.sk_num, k.sk_dport + 2);
    assert_eq!(k.sk_v6_rcv_saddr, k.sk_v6_daddr + 16);

    assert_eq!(k.sk_type_bits, 16);
    assert!(k.sk_type >= btf.struct_size("sock_common").unwrap());
    assert!(k.sk_type + 2 <= btf.struct_size("sock").unwrap());

    for (m, off) in [
        ("arg_start", k.mm_arg_start),
        ("arg_end", k.mm_arg_end),
        ("env_start", k.mm_env_start),
        ("env_end", k.mm_env_end),
    ] {
        check_in(&btf, "mm_struct", m, off, bits(&btf, "mm_struct", m).1);
    }
    assert!(k.mm_arg_start < k.mm_arg_end);
    assert!(k.mm_arg_end < k.mm_env_start);
    assert!(k.mm_env_start < k.mm_env_end);
}

#[test]
fn errors_name_the_missing_field() {
    let Some((_, btf)) = load() else { return };
    let e = btf.member_offset("sock", "skc_daddr").unwrap_err();
    assert!(matches!(e, BtfError::NoSuchMember { .. }));
    assert!(
        e.to_string()
            .contains("no member `skc_daddr` in struct `sock`"),
        "{e}"
    );
    let e = btf
        .member_offset("wirespan_no_such_struct", "x")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel BTF has no struct `wirespan_no_such_struct`"
    );
    // A real bitfield: skc_reuse (4 bits) in sock_common, on every kernel with BTF.
    let (_, width) = bits(&btf, "sock_common", "skc_reuse");
    assert_eq!(width, 4);
    assert!(matches!(
        btf.member_offset("sock_common", "skc_reuse"),
        Err(BtfError::Bitfield { bits: 4, .. })
    ));
}

#[test]
fn truncated_real_blob_is_an_error() {
    let Some((data, _)) = load() else { return };
    for cut in [
        1,
        23,
        24,
        4096,
        data.len() / 3,
        data.len() / 2,
        data.len() - 1,
    ] {
        assert!(Btf::from_bytes(&data[..cut]).is_err(), "cut at {cut}");
    }
}
