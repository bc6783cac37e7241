//! Every operation of Discord's official OpenAPI description (vendored in
//! `tests/data/discord-rest-routes.json`, with the commit it comes from), filled with realistic
//! values, gets a template of its own shape, and no filled value reaches a label.
//!
//! To check a newer spec, run the ignored helper with the file (the vendored form, or
//! Discord's `openapi.json` itself):
//!
//! ```text
//! BOTSCOPE_ROUTES_SPEC=/path/to/openapi.json \
//!     cargo test -p botscope-http --test official_routes -- --ignored --nocapture
//! ```

mod common;

use std::collections::BTreeSet;

use botscope_http::route;
use common::official::{VENDORED, fill, gaps, operations};
use http::Method;
use serde_json::Value;

#[test]
fn the_vendored_list_keeps_its_provenance_and_all_operations() {
    let spec: Value = serde_json::from_str(VENDORED).unwrap();
    let source = spec["source"].as_str().unwrap();
    assert!(source.contains("discord/discord-api-spec") && source.contains("commit"));
    let ops = operations(VENDORED);
    assert_eq!(ops.len(), 242);
    let distinct: BTreeSet<_> = ops.iter().collect();
    assert_eq!(distinct.len(), ops.len());
}

#[test]
fn every_official_route_is_labelled_with_its_own_shape_and_no_value() {
    let ops = operations(VENDORED);
    let (words, wrong) = gaps(&ops);
    let operations: BTreeSet<&str> = wrong
        .iter()
        .filter_map(|line| line.split(" -> ").next())
        .collect();
    assert!(
        words.is_empty() && wrong.is_empty(),
        "path words outside the vocabulary: {words:?}\n{} of {} operations labelled wrong:\n{}",
        operations.len(),
        ops.len(),
        wrong.join("\n")
    );
}

#[test]
fn distinct_official_routes_get_distinct_labels() {
    let ops = operations(VENDORED);
    let shape = |path: &str| {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let shapes: BTreeSet<String> = ops.iter().map(|op| shape(&op.path)).collect();
    let labels: BTreeSet<String> = ops
        .iter()
        .map(|op| {
            let method = Method::from_bytes(op.method.as_bytes()).unwrap();
            shape(&route::template(
                &method,
                &format!("/api/v10{}", fill(op, 0).0),
            ))
        })
        .collect();
    assert_eq!(labels, shapes);
}

/// Prints what the vocabulary lacks for the spec file at `$BOTSCOPE_ROUTES_SPEC` (the vendored
/// form or Discord's `openapi.json`): see the module docs.
#[test]
#[ignore = "a helper: needs BOTSCOPE_ROUTES_SPEC"]
fn print_vocabulary_gaps() {
    let Some(file) = std::env::var_os("BOTSCOPE_ROUTES_SPEC") else {
        println!("set BOTSCOPE_ROUTES_SPEC to a spec file");
        return;
    };
    let text = std::fs::read_to_string(&file).expect("a readable spec file");
    let ops = operations(&text);
    let (words, wrong) = gaps(&ops);
    println!("{} operations", ops.len());
    println!("path words the vocabulary lacks ({}):", words.len());
    for word in &words {
        println!("  {word}");
    }
    println!("routes labelled wrong ({}):", wrong.len());
    for line in &wrong {
        println!("  {line}");
    }
}
