//! How `gnt node list` and `gnt node info` print nodes. `node list` lets an operator choose,
//! as Ganeti's `gnt-node list` does: `-o`
//! takes a format (`text`, the default table; `json`) or a comma-separated list of fields by
//! Ganeti's names (`-o name,pip,master_candidate`), printed with Ganeti's headers and its
//! `Y`/`N` flags, so that scripts written for `gnt-node list` read it; `--no-headers` and
//! `--separator S` (columns joined by S, unpadded) as in Ganeti.

use gnt_proto::master::v1::NodeRecord;
use serde_json::json;

use super::output::{Output, table, yes_no};

/// A field of `gnt node list -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `name`.
    Name,
    /// `pip`: the primary address.
    Pip,
    /// `sip`: the secondary address.
    Sip,
    /// `master`.
    Master,
    /// `offline`.
    Offline,
    /// `drained`.
    Drained,
    /// `master_candidate`.
    MasterCandidate,
    /// `role`: Ganeti's one letter, `M`aster, `C`andidate, `D`rained, `O`ffline or
    /// `R`egular.
    Role,
}

/// Every field: its name, its header (Ganeti's both).
const FIELDS: [(Field, &str, &str); 8] = [
    (Field::Name, "name", "Node"),
    (Field::Pip, "pip", "PrimaryIP"),
    (Field::Sip, "sip", "SecondaryIP"),
    (Field::Master, "master", "IsMaster"),
    (Field::Offline, "offline", "Offline"),
    (Field::Drained, "drained", "Drained"),
    (Field::MasterCandidate, "master_candidate", "MasterC"),
    (Field::Role, "role", "Role"),
];

/// The choice of `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The default table.
    Text,
    /// JSON.
    Json,
    /// These fields.
    Fields(Vec<Field>),
}

/// `-o`'s value: `text`, `json`, or fields (refused naming the valid ones).
pub(super) fn parse_selection(text: &str) -> Result<Selection, String> {
    match text {
        "text" => return Ok(Selection::Text),
        "json" => return Ok(Selection::Json),
        _ => {}
    }
    text.split(',')
        .map(|name| {
            FIELDS
                .iter()
                .find(|(_, known, _)| *known == name.trim())
                .map(|(field, _, _)| *field)
                .ok_or_else(|| {
                    let names: Vec<&str> = FIELDS.iter().map(|(_, n, _)| *n).collect();
                    format!(
                        "unknown field '{name}': give text, json, or fields among {}",
                        names.join(",")
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Selection::Fields)
}

fn flag(value: bool) -> String {
    if value { "Y" } else { "N" }.to_owned()
}

fn value(node: &NodeRecord, field: Field) -> String {
    let addresses = node.addresses.clone().unwrap_or_default();
    match field {
        Field::Name => addresses.name,
        Field::Pip => addresses.primary_ip,
        Field::Sip => addresses.secondary_ip,
        Field::Master => flag(node.master),
        Field::Offline => flag(node.offline),
        Field::Drained => flag(node.drained),
        Field::MasterCandidate => flag(node.master_candidate),
        // Ganeti's precedence: master, candidate, drained, offline, regular.
        Field::Role => if node.master {
            "M"
        } else if node.master_candidate {
            "C"
        } else if node.drained {
            "D"
        } else if node.offline {
            "O"
        } else {
            "R"
        }
        .to_owned(),
    }
}

/// The lines of `nodes` with `fields`: a header line unless `headers` is false, columns
/// padded to align, or joined by `separator` when one is given.
pub(super) fn lines(
    nodes: &[NodeRecord],
    fields: &[Field],
    headers: bool,
    separator: Option<&str>,
) -> Vec<String> {
    let header: Vec<String> = fields
        .iter()
        .map(|f| {
            FIELDS
                .iter()
                .find(|(field, _, _)| field == f)
                .map_or("", |(_, _, header)| *header)
                .to_owned()
        })
        .collect();
    let mut rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| fields.iter().map(|f| value(node, *f)).collect())
        .collect();
    if headers {
        rows.insert(0, header);
    }
    if let Some(separator) = separator {
        return rows.iter().map(|row| row.join(separator)).collect();
    }
    let widths: Vec<usize> = (0..fields.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect::<Vec<_>>()
                .join(" ")
                .trim_end()
                .to_owned()
        })
        .collect()
}

pub(super) fn node_list(nodes: &[NodeRecord], output: Output) {
    if output == Output::Json {
        let list: Vec<_> = nodes.iter().map(node_json).collect();
        println!("{:#}", serde_json::Value::Array(list));
        return;
    }
    let rows: Vec<[String; 7]> = nodes
        .iter()
        .map(|n| {
            let a = n.addresses.clone().unwrap_or_default();
            [
                a.name,
                a.primary_ip,
                a.secondary_ip,
                yes_no(n.master).to_owned(),
                yes_no(n.offline).to_owned(),
                yes_no(n.drained).to_owned(),
                yes_no(n.master_candidate).to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "Node",
            "Primary",
            "Secondary",
            "Master",
            "Offline",
            "Drained",
            "Candidate",
        ],
        &rows,
    );
}

/// A node in JSON: the same object in `node list -o json` (an array of them) and
/// `node info -o json`, so that a script reads both alike.
fn node_json(node: &NodeRecord) -> serde_json::Value {
    let a = node.addresses.clone().unwrap_or_default();
    json!({
        "name": a.name,
        "primary_ip": a.primary_ip,
        "secondary_ip": a.secondary_ip,
        "master": node.master,
        "offline": node.offline,
        "drained": node.drained,
        "master_candidate": node.master_candidate,
        "certificate_sha256": node.certificate_sha256,
    })
}

/// `gnt node info`: one block per node, a blank line between; in JSON one object, or an
/// array of them for several nodes.
pub(super) fn node_info(nodes: &[NodeRecord], output: Output) {
    if output == Output::Json {
        match nodes {
            [node] => println!("{:#}", node_json(node)),
            several => println!(
                "{:#}",
                serde_json::Value::Array(several.iter().map(node_json).collect())
            ),
        }
        return;
    }
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let a = node.addresses.clone().unwrap_or_default();
        println!("Node:         {}", a.name);
        println!("Primary IP:   {}", a.primary_ip);
        println!("Secondary IP: {}", a.secondary_ip);
        println!("Master:       {}", yes_no(node.master));
        println!("Offline:      {}", yes_no(node.offline));
        println!("Drained:      {}", yes_no(node.drained));
        println!("Candidate:    {}", yes_no(node.master_candidate));
        println!("Certificate:  SHA256 {}", node.certificate_sha256);
    }
}

#[cfg(test)]
mod tests {
    use gnt_proto::cluster::v1::NodeAddresses;

    use super::*;

    fn node(name: &str, master: bool, offline: bool, candidate: bool) -> NodeRecord {
        flagged(name, master, offline, false, candidate)
    }

    fn flagged(
        name: &str,
        master: bool,
        offline: bool,
        drained: bool,
        candidate: bool,
    ) -> NodeRecord {
        NodeRecord {
            addresses: Some(NodeAddresses {
                name: name.to_owned(),
                primary_ip: "10.77.0.10".to_owned(),
                secondary_ip: "10.78.0.10".to_owned(),
            }),
            master,
            offline,
            drained,
            master_candidate: candidate,
            ..NodeRecord::default()
        }
    }

    #[test]
    fn fields_are_ganetis_and_unknown_ones_are_refused_naming_the_valid_ones() {
        assert_eq!(parse_selection("text"), Ok(Selection::Text));
        assert_eq!(parse_selection("json"), Ok(Selection::Json));
        assert_eq!(
            parse_selection("name,master_candidate"),
            Ok(Selection::Fields(vec![Field::Name, Field::MasterCandidate]))
        );
        let error = parse_selection("name,bogus").unwrap_err();
        assert!(
            error.starts_with("unknown field 'bogus': give text, json, or fields among name,pip,"),
            "{error}"
        );
    }

    #[test]
    fn rows_align_or_join_with_the_separator_with_or_without_headers() {
        let nodes = [
            node("master.lab.test", true, false, true),
            node("node1.lab.test", false, false, true),
            node("node2.lab.test", false, true, false),
        ];
        let fields = [Field::Name, Field::MasterCandidate, Field::Role];
        assert_eq!(
            lines(&nodes, &fields, true, None),
            [
                "Node            MasterC Role",
                "master.lab.test Y       M",
                "node1.lab.test  Y       C",
                "node2.lab.test  N       O",
            ]
        );
        assert_eq!(
            lines(&nodes, &fields, false, Some("|")),
            [
                "master.lab.test|Y|M",
                "node1.lab.test|Y|C",
                "node2.lab.test|N|O"
            ]
        );
    }

    #[test]
    fn the_role_letter_follows_ganetis_precedence_and_drained_is_a_field() {
        let nodes = [
            flagged("m", true, false, false, true),
            flagged("c", false, false, false, true),
            flagged("d", false, false, true, false),
            flagged("o", false, true, false, false),
            flagged("r", false, false, false, false),
            // Not a state the master makes, but the letter must still be decided: the
            // candidate flag wins over drained, drained over offline.
            flagged("cd", false, false, true, true),
            flagged("do", false, true, true, false),
        ];
        let fields = parse_selection("name,drained,role").unwrap();
        let Selection::Fields(fields) = fields else {
            panic!("fields expected");
        };
        assert_eq!(
            lines(&nodes, &fields, false, Some(" ")),
            [
                "m N M", "c N C", "d Y D", "o N O", "r N R", "cd Y C", "do Y D"
            ]
        );
        assert_eq!(
            node_json(&nodes[2])["drained"],
            serde_json::Value::Bool(true)
        );
    }
}
