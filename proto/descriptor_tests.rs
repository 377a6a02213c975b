//! Checks on the descriptor set served by reflection: it decodes, it holds every service,
//! every package is versioned, and every element carries the comment grpcurl shows.

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};

use super::FILE_DESCRIPTOR_SET;

// Field numbers in descriptor.proto, which source-code-info paths are made of.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const MESSAGE_ONEOF: i32 = 8;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("the descriptor set decodes")
}

fn our_files() -> Vec<FileDescriptorProto> {
    descriptors()
        .file
        .into_iter()
        .filter(|f| f.package().starts_with("gnt."))
        .collect()
}

#[test]
fn every_service_is_in_the_descriptor_set_with_its_imports() {
    let set = descriptors();
    let services: Vec<String> = set
        .file
        .iter()
        .flat_map(|f| {
            f.service
                .iter()
                .map(move |s| format!("{}.{}", f.package(), s.name()))
        })
        .collect();
    for expected in [
        "gnt.node.v1.NodeAgent",
        "gnt.bootstrap.v1.Bootstrap",
        "gnt.master.v1.Master",
        "gnt.diag.v1.Diagnostics",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} missing: {services:?}"
        );
    }
    assert!(
        set.file
            .iter()
            .any(|f| f.name() == "google/protobuf/duration.proto"),
        "imports must be included so that reflection can resolve them"
    );
}

#[test]
fn every_package_is_versioned() {
    for file in our_files() {
        let package = file.package();
        let version = package.rsplit('.').next().unwrap_or_default();
        assert!(
            version.len() >= 2
                && version.starts_with('v')
                && version[1..].bytes().all(|b| b.is_ascii_digit()),
            "package {package} of {} is not versioned (gnt.<name>.v<N>)",
            file.name()
        );
    }
}

#[test]
fn every_element_is_documented() {
    let mut undocumented = Vec::new();
    for file in our_files() {
        let documented: Vec<Vec<i32>> = file
            .source_code_info
            .as_ref()
            .expect("source info is kept for reflection")
            .location
            .iter()
            .filter(|l| !l.leading_comments().trim().is_empty())
            .map(|l| l.path.clone())
            .collect();
        let mut check = |path: Vec<i32>, what: String| {
            if !documented.contains(&path) {
                undocumented.push(format!("{}: {what}", file.name()));
            }
        };
        for (i, message) in file.message_type.iter().enumerate() {
            walk_message(
                message,
                vec![FILE_MESSAGE, i as i32],
                file.package(),
                &mut check,
            );
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            walk_enum(
                enumeration,
                vec![FILE_ENUM, i as i32],
                file.package(),
                &mut check,
            );
        }
        for (i, service) in file.service.iter().enumerate() {
            let path = vec![FILE_SERVICE, i as i32];
            check(path.clone(), format!("service {}", service.name()));
            for (j, method) in service.method.iter().enumerate() {
                let mut method_path = path.clone();
                method_path.extend([SERVICE_METHOD, j as i32]);
                check(
                    method_path,
                    format!("rpc {}.{}", service.name(), method.name()),
                );
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "undocumented:\n{}",
        undocumented.join("\n")
    );
}

fn walk_message(
    message: &DescriptorProto,
    path: Vec<i32>,
    scope: &str,
    check: &mut impl FnMut(Vec<i32>, String),
) {
    let name = format!("{scope}.{}", message.name());
    // Map entries are synthesised by the compiler and cannot carry comments.
    if message.options.as_ref().is_some_and(|o| o.map_entry()) {
        return;
    }
    check(path.clone(), format!("message {name}"));
    for (j, field) in message.field.iter().enumerate() {
        let mut field_path = path.clone();
        field_path.extend([MESSAGE_FIELD, j as i32]);
        check(field_path, format!("field {name}.{}", field.name()));
    }
    for (j, oneof) in message.oneof_decl.iter().enumerate() {
        // The compiler wraps each proto3 `optional` field in a oneof of its own, which has
        // no source to carry a comment (the field's comment documents it).
        let synthetic = message
            .field
            .iter()
            .filter(|f| f.oneof_index == Some(j as i32))
            .all(|f| f.proto3_optional());
        if synthetic {
            continue;
        }
        let mut oneof_path = path.clone();
        oneof_path.extend([MESSAGE_ONEOF, j as i32]);
        check(oneof_path, format!("oneof {name}.{}", oneof.name()));
    }
    for (j, nested) in message.nested_type.iter().enumerate() {
        let mut nested_path = path.clone();
        nested_path.extend([MESSAGE_NESTED, j as i32]);
        walk_message(nested, nested_path, &name, check);
    }
    for (j, enumeration) in message.enum_type.iter().enumerate() {
        let mut enum_path = path.clone();
        enum_path.extend([MESSAGE_ENUM, j as i32]);
        walk_enum(enumeration, enum_path, &name, check);
    }
}

fn walk_enum(
    enumeration: &EnumDescriptorProto,
    path: Vec<i32>,
    scope: &str,
    check: &mut impl FnMut(Vec<i32>, String),
) {
    let name = format!("{scope}.{}", enumeration.name());
    check(path.clone(), format!("enum {name}"));
    for (j, value) in enumeration.value.iter().enumerate() {
        let mut value_path = path.clone();
        value_path.extend([ENUM_VALUE, j as i32]);
        check(value_path, format!("enum value {name}.{}", value.name()));
    }
}
