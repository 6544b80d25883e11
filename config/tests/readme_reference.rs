//! The README's configuration reference is the default file, verbatim.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

#[test]
fn readme_configuration_reference_matches_default_yaml() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the repository root");
    let start = readme
        .find("<!-- config-reference:start -->\n```yaml\n")
        .expect("README has the config-reference start marker");
    let body = &readme[start + "<!-- config-reference:start -->\n```yaml\n".len()..];
    let end = body
        .find("```\n<!-- config-reference:end -->")
        .expect("README has the config-reference end marker");
    assert_eq!(
        &body[..end],
        wirespan_config::default_yaml(),
        "README.md's configuration reference differs from config/src/default.yaml: copy the file into the README"
    );
}
