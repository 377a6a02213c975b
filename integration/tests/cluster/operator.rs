//! What an operator sees (issue 14): output formats, refusals of calls that change node
//! state, and results that say what they mean.

use gnt_core::policy::IpPolicy;

use crate::support::{gnt_ok, running};

#[test]
fn node_info_in_json_is_the_object_node_list_gives() {
    let cluster = running(IpPolicy::HybridIpv6, 1);
    let list = gnt_ok(&cluster, &["node", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let info = gnt_ok(&cluster, &["node", "info", "-o", "json", "node1.lab.test"]);
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(info["name"], "node1.lab.test", "{info}");
    assert_eq!(info["secondary_ip"], "10.78.0.11", "{info}");
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node1.lab.test")
        .unwrap();
    assert_eq!(listed, &info);
}
