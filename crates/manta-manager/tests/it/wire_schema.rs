//! Our `proto/` against the published SDK's own gRPC stubs: every published method must exist
//! in our descriptor set with the same path, streaming shape, request type and reply type, so
//! the unmodified SDK can call every method we serve and decode every answer. This caught four
//! reply types the reconstructed schema had wrong (docs/protocol.md).

use std::collections::BTreeMap;
use std::process::Command;

use prost::Message as _;

use crate::interop::sdk_python;

/// Prints `path cardinality request reply` for every method the SDK's server stubs declare.
const SCRIPT: &str = r#"
import importlib, pkgutil, warnings
warnings.simplefilter("ignore")
import grpclib.const, manta_common.build as build
for info in pkgutil.walk_packages(build.__path__, build.__name__ + "."):
    module = importlib.import_module(info.name)
    for value in vars(module).values():
        if isinstance(value, type) and hasattr(value, "__mapping__") and value.__module__ == info.name:
            try:
                mapping = value.__mapping__(value.__new__(value))
            except Exception:
                continue
            for path, handler in mapping.items():
                print(path, handler.cardinality.name, handler.request_type.__name__, handler.reply_type.__name__)
"#;

#[test]
fn every_published_method_matches_our_schema() {
    let python = match sdk_python() {
        Ok(p) => p,
        Err(reason) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the schema comparison cannot run in CI: {reason}"
            );
            eprintln!("SKIPPED every_published_method_matches_our_schema: {reason}");
            return;
        }
    };
    let out = Command::new(python).args(["-c", SCRIPT]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: Vec<(String, String, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4).then(|| (f[0].into(), f[1].into(), f[2].into(), f[3].into()))
        })
        .collect();

    // Ours: path -> (cardinality, request message name, reply message name).
    let set = prost_types::FileDescriptorSet::decode(manta_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut ours = BTreeMap::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let shape = match (method.client_streaming(), method.server_streaming()) {
                    (false, false) => "UNARY_UNARY",
                    (true, false) => "STREAM_UNARY",
                    (false, true) => "UNARY_STREAM",
                    (true, true) => "STREAM_STREAM",
                };
                let short = |t: &str| t.rsplit('.').next().unwrap_or(t).to_owned();
                ours.insert(
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    (
                        shape.to_owned(),
                        short(method.input_type()),
                        short(method.output_type()),
                    ),
                );
            }
        }
    }

    let mut compared = 0;
    let mut problems = Vec::new();
    for (path, shape, request, reply) in &published {
        // The node's local light service is deliberately not in our proto (docs/protocol.md).
        if path.starts_with("/node.light_service.") {
            continue;
        }
        compared += 1;
        match ours.get(path) {
            None => problems.push(format!("{path} is missing from proto/")),
            Some(mine) if *mine != (shape.clone(), request.clone(), reply.clone()) => problems
                .push(format!(
                    "{path}: published {shape} {request} -> {reply}, ours {} {} -> {}",
                    mine.0, mine.1, mine.2
                )),
            Some(_) => {}
        }
    }
    assert!(
        compared >= 99,
        "expected the SDK to declare at least the 99 methods of manta-platform.md §5, found {compared}"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
