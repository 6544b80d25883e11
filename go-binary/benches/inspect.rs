//! `cargo bench -p go-binary`: inspect_tls on Go binaries that ship with the
//! Go 1.19 toolchain (stripped, with crypto/tls): `bin/go` and the largest
//! tool that links crypto/tls (`pkg/tool/linux_amd64/trace`; `compile`, the
//! largest tool, has no crypto/tls), plus the cheap `is_go_executable`
//! check and the pclntab parse + name lookup alone.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use object::{Object, ObjectSection};

const BINARIES: [&str; 2] = [
    "/usr/lib/go-1.19/bin/go",
    "/usr/lib/go-1.19/pkg/tool/linux_amd64/trace",
];

fn bench(c: &mut Criterion) {
    for path in BINARIES {
        let path = Path::new(path);
        assert!(
            path.exists(),
            "{} missing: `apt-get install golang-1.19-go`",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        go_binary::inspect_tls(path).expect("inspects");
        c.bench_function(&format!("inspect_tls/{name}"), |b| {
            b.iter(|| go_binary::inspect_tls(black_box(path)).unwrap())
        });
        let data = std::fs::read(path).unwrap();
        c.bench_function(&format!("is_go_executable/{name}"), |b| {
            b.iter(|| go_binary::is_go_executable(black_box(&data)))
        });
        let file = object::File::parse(&*data).unwrap();
        let text = file.section_by_name(".text").unwrap().address();
        let table = file.section_by_name(".gopclntab").unwrap().data().unwrap();
        c.bench_function(&format!("pclntab_parse_and_find/{name}"), |b| {
            b.iter(|| {
                let t = go_binary::pclntab::Pclntab::parse(black_box(table), text).unwrap();
                t.find_function(go_binary::READ_FUNCTION).unwrap()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
