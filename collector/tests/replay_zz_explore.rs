#[path = "fixtures/support.rs"]
mod support;
#[test]
fn explore() {
    for f in support::ALL_FIXTURES {
        let (sum, spans, reg) = support::replay(f);
        println!(
            "=== {f} records={} spans={}\n{}",
            sum.records,
            spans.len(),
            support::describe(&spans)
        );
        for l in reg
            .render()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
        {
            println!("  {l}");
        }
    }
}
