//! The bundled recording is what its committed generator makes.

use crate::root;
use vigil::simulate::{generate, SimOptions};

#[test]
fn the_committed_fixture_is_what_the_generator_makes() {
    let (csv, labels) = generate(&SimOptions::default(), "pumps.csv").expect("generate");
    let committed = std::fs::read_to_string(root().join("fixtures/pumps.csv")).expect("fixture");
    assert!(
        csv == committed,
        "fixtures/pumps.csv differs from `vigil simulate` output: regenerate it"
    );
    let committed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/pumps.labels.json")).expect("labels"),
    )
    .expect("labels JSON");
    assert_eq!(serde_json::to_value(&labels).expect("labels"), committed);
}

#[test]
fn the_generator_refuses_too_small_recordings() {
    let small = SimOptions {
        pumps: 3,
        ..SimOptions::default()
    };
    assert!(generate(&small, "x.csv").is_err());
    let short = SimOptions {
        seconds: 60,
        ..SimOptions::default()
    };
    assert!(generate(&short, "x.csv").is_err());
}
