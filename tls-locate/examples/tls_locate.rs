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
    let mut a = if std::env::var_os("DESCENT").is_some() {
        Analysis::from_descent(&view, &opts, Instant::now()).expect("analysis")
    } else {
        Analysis::new(&view, &opts, Instant::now()).expect("analysis")
    };
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
    if args.first().is_some_and(|a| a == "--decode") {
        let data = std::fs::read(&args[1]).expect("read");
        let view = ElfView::parse(&data).expect("elf");
        let h = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
        let (a, b) = (h(&args[2]), h(&args[3]));
        let bytes = view.code_at(a, b - a).expect("code");
        match tls_locate::code::decode_function(bytes, a) {
            Ok(f) => {
                for c in &f.calls {
                    println!(
                        "{:#x} -> {:x?} tail={} {:x?}",
                        c.at, c.target, c.tail, c.args
                    );
                }
            }
            Err(e) => println!("{e}"),
        }
        return;
    }
    if args.first().is_some_and(|a| a == "--validate") {
        // Ground truth from .symtab: is every proven entry a symbol start?
        use object::{Object, ObjectSymbol};
        let data = std::fs::read(&args[1]).expect("read");
        let view = ElfView::parse(&data).expect("elf");
        let file = object::File::parse(&*data).expect("object");
        let mut syms: Vec<u64> = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .map(|s| s.address())
            .collect();
        syms.sort_unstable();
        syms.dedup();
        let with_fdes = args.get(2).is_some_and(|a| a == "--with-fdes");
        let fdes: Vec<u64> = if with_fdes {
            tls_locate::analysis::function_table(&view)
                .map(|t| t.ranges().iter().map(|r| r.start).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let d = tls_locate::descent::descend(&view, &fdes, &mut || Ok(())).expect("descent");
        let bad: Vec<u64> = d
            .entries
            .iter()
            .copied()
            .filter(|e| syms.binary_search(e).is_err())
            .collect();
        let weak_bad = d
            .weak_entries
            .iter()
            .filter(|e| syms.binary_search(e).is_err())
            .count();
        let taken_bad = d
            .taken
            .iter()
            .filter(|e| syms.binary_search(e).is_err())
            .count();
        println!(
            "{} text symbols; {} strong entries, {} not a symbol start {:x?}; {} weak entries, {} not a symbol; {} taken, {} not a symbol; {} instructions, {} conflicts, {} invalid (strong roots alone: {} conflicts, {} invalid)",
            syms.len(),
            d.entries.len(),
            bad.len(),
            &bad[..bad.len().min(10)],
            d.weak_entries.len(),
            weak_bad,
            d.taken.len(),
            taken_bad,
            d.instructions,
            d.conflict_count,
            d.invalid.len(),
            d.strong_conflicts,
            d.strong_invalid
        );
        if std::env::var_os("VERBOSE").is_some() {
            for b in &bad {
                println!("bad-entry {b:#x}");
            }
            for c in &d.conflicts {
                println!("conflict {c:#x}");
            }
            for c in &d.invalid {
                println!("invalid {c:#x}");
            }
        }
        return;
    }
    if args.first().is_some_and(|a| a == "--descent") {
        let data = std::fs::read(&args[1]).expect("read");
        let view = ElfView::parse(&data).expect("elf");
        let start = Instant::now();
        let fdes: Vec<u64> = tls_locate::analysis::function_table(&view)
            .map(|t| t.ranges().iter().map(|r| r.start).collect())
            .unwrap_or_default();
        let d = tls_locate::descent::descend(&view, &fdes, &mut || Ok(())).expect("descent");
        println!(
            "{:?}: {} instructions, {} entries ({} weak), {} taken, roots {:?}, {} conflicts, {} invalid (strong roots alone: {} conflicts, {} invalid), {}",
            start.elapsed(),
            d.instructions,
            d.entries.len(),
            d.weak_entries.len(),
            d.taken.len(),
            d.roots,
            d.conflict_count,
            d.invalid.len(),
            d.strong_conflicts,
            d.strong_invalid,
            vm_hwm()
        );
        for c in d.conflicts.iter().take(40) {
            println!("conflict {c:#x}");
        }
        for c in d.invalid.iter().take(40) {
            println!("invalid {c:#x}");
        }
        let bounds = d.boundaries();
        for a in &args[2..] {
            let v = u64::from_str_radix(a.trim_start_matches("0x"), 16).expect("hex");
            let i = bounds.partition_point(|&b| b <= v);
            for &b in &bounds[i.saturating_sub(3)..(i + 2).min(bounds.len())] {
                println!(
                    "  boundary {b:#x} entry={} weak={} taken={}",
                    d.is_entry(b),
                    d.weak_entries.binary_search(&b).is_ok(),
                    d.is_taken(b)
                );
            }
            println!(
                "{v:#x}: start={} entry={} taken={}",
                d.is_instruction_start(v),
                d.is_entry(v),
                d.is_taken(v),
            );
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
