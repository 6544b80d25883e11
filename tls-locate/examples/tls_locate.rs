//! `cargo run -p tls-locate --example tls-locate -- [--sites] FILE...`:
//! prints what [`tls_locate::locate`] finds, its time and the process's
//! peak RSS (VmHWM: it counts the mapped file pages the scans touched; RssAnon is the heap); `--sites` also dumps every ssl_lib error site.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::path::Path;
use std::time::Instant;

use tls_locate::analysis::{find_suffix_strings, Analysis, SOURCE_FILE_SUFFIXES};
use tls_locate::elf::ElfView;
use tls_locate::{locate, LocateOptions};

fn vm_hwm() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| {
            ["VmHWM", "RssAnon", "RssFile"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dump_sites(path: &Path) {
    let data = std::fs::read(path).expect("read");
    let view = ElfView::parse(&data).expect("elf");
    let files = find_suffix_strings(&view, &SOURCE_FILE_SUFFIXES);
    for f in &files {
        println!("file string {:#x} {}", f.vaddr, f.text);
    }
    let opts = LocateOptions::default();
    let mut a = Analysis::new(&view, &opts, Instant::now()).expect("analysis");
    let mut sites = a.error_sites(&files).expect("sites");
    sites.sort_by_key(|s| (s.function.start, s.at));
    for s in &sites {
        println!(
            "fn {:#x}+{:#x} at {:#x} {:?} lib={} func={:?} reason={} line={} name={:?}",
            s.function.start,
            s.function.len(),
            s.at,
            s.shape,
            s.lib,
            s.func_code,
            s.reason,
            s.line,
            s.func_name
        );
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--refs") {
        let data = std::fs::read(&args[1]).expect("read");
        let view = ElfView::parse(&data).expect("elf");
        let target = u64::from_str_radix(args[2].trim_start_matches("0x"), 16).expect("hex");
        let set = tls_locate::code::TargetSet::new(vec![target]);
        for s in view.code_sections() {
            for hit in tls_locate::code::scan_references(s.bytes, s.vaddr, &set) {
                println!("{hit:#x}");
            }
        }
        return;
    }
    let sites = args.first().is_some_and(|a| a == "--sites");
    if sites {
        args.remove(0);
    }
    for arg in args {
        let path = Path::new(&arg);
        if sites {
            dump_sites(path);
            continue;
        }
        let start = Instant::now();
        let result = locate(path, &LocateOptions::default());
        let elapsed = start.elapsed();
        match result {
            Ok(found) => {
                println!("{arg}: {:?}, {:?}, {}", found.library, elapsed, vm_hwm());
                for f in &found.functions {
                    println!(
                        "  {:<13} vaddr {:#x} offset {:#x} from {:?}",
                        f.name, f.vaddr, f.file_offset, f.source
                    );
                }
                for u in &found.unidentified {
                    println!(
                        "  {:<13} not identified: {} ({})",
                        u.name, u.reason, u.detail
                    );
                }
                println!("  stats {:?}", found.stats);
            }
            Err(e) => println!(
                "{arg}: error {} ({e}), {:?}, {}",
                e.reason(),
                elapsed,
                vm_hwm()
            ),
        }
    }
}
