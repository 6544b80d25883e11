//! `cargo run -p go-binary --release --example inspect -- FILE...`: prints
//! what `inspect_tls` finds, how many pclntab entries carry each hooked
//! name, the time taken and the VmHWM (peak RSS) growth across the calls
//! (set NO_FACTS=1 to skip the table facts, which read each file into memory,
//! so the growth is inspect_tls's own: mapped pages touched + allocations).
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::time::Instant;

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let before = vm_hwm_kib();
    for arg in std::env::args().skip(1) {
        let path = std::path::Path::new(&arg);
        let start = Instant::now();
        let result = go_binary::inspect_tls(path);
        let elapsed = start.elapsed();
        match result {
            Ok(t) => {
                println!(
                    "{arg}: {} in {elapsed:?}; symtab={} dwarf={} offsets={:?}",
                    t.version, t.has_symtab, t.has_dwarf, t.offsets
                );
                for f in [&t.write, &t.read] {
                    println!(
                        "  {} entry={:#x} end={:#x} size={} file_off={:#x} rets={}",
                        f.name,
                        f.entry_address,
                        f.end_address,
                        f.end_address - f.entry_address,
                        f.entry_file_offset,
                        f.return_file_offsets.len()
                    );
                }
            }
            Err(e) => println!("{arg}: error {} ({e}) in {elapsed:?}", e.reason()),
        }
        if std::env::var_os("NO_FACTS").is_some() {
            continue;
        }
        if let Ok(data) = std::fs::read(path) {
            print_table_facts(&data);
        }
    }
    if let (Some(b), Some(a)) = (before, vm_hwm_kib()) {
        println!("VmHWM {b} KiB -> {a} KiB (+{} KiB)", a.saturating_sub(b));
    }
}

fn print_table_facts(data: &[u8]) {
    use object::{Object, ObjectSection};
    let Ok(file) = object::read::elf::ElfFile64::<object::LittleEndian>::parse(data) else {
        return;
    };
    let text = file.section_by_name(".text").map_or(0, |s| s.address());
    let Some(bytes) = file
        .section_by_name(".gopclntab")
        .and_then(|s| s.data().ok())
    else {
        return;
    };
    let Ok(table) = go_binary::pclntab::Pclntab::parse(bytes, text) else {
        return;
    };
    let start = Instant::now();
    let n = table.find_all(go_binary::READ_FUNCTION).count();
    let scan = start.elapsed();
    let m = table.find_all(go_binary::WRITE_FUNCTION).count();
    let t0 = Instant::now();
    go_binary::pclntab::Pclntab::parse(bytes, text).ok();
    let parse = t0.elapsed();
    let compressed = file
        .section_by_name(".debug_info")
        .and_then(|s| s.compressed_data().ok())
        .map(|c| (c.format, c.data.len(), c.uncompressed_size));
    println!(
        "  pclntab {:?} nfunc={} textStart={:#x} .text={text:#x}; entries named Read={n} Write={m}; \
         name scan {scan:?}, parse+validate {parse:?}; .debug_info {compressed:?}",
        table.version(),
        table.len(),
        table.text_start(),
    );
}
