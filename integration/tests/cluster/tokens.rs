//! Join tokens as an operator manages them (issue 13, part 4): `gnt node token list`
//! shows id, expiry and use, never a secret; `gnt node token delete` revokes an unused
//! token at once; a used one cannot be revoked.

use gnt_core::policy::IpPolicy;

use crate::support::{empty, gnt_ok};

#[test]
fn tokens_are_listed_without_secrets_and_revoked_at_once() {
    let cluster = empty(IpPolicy::Ipv4, 1, &[]);
    assert!(cluster.init().unwrap().success());
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    let first = cluster.token().unwrap();
    let second = cluster.token().unwrap();
    let id = |token: &str| token.split('.').next().unwrap().to_owned();
    let secret = |token: &str| token.split('.').nth(1).unwrap().to_owned();
    let listed = |cluster: &gnt_integration::cluster_lab::ClusterLab| {
        let out = gnt_ok(cluster, &["node", "token", "list", "-o", "json"]);
        for token in [&first, &second] {
            assert!(
                !out.stdout.contains(&secret(token)),
                "a secret is shown: {out}"
            );
        }
        let text = gnt_ok(cluster, &["node", "token", "list"]);
        for token in [&first, &second] {
            assert!(
                !text.stdout.contains(&secret(token)),
                "a secret is shown: {text}"
            );
        }
        let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let both = listed(&cluster);
    assert_eq!(
        both,
        [
            (id(&first), "unused".to_owned()),
            (id(&second), "unused".to_owned())
        ]
    );

    cluster.start_noded("node1", Some(&first)).unwrap();
    let added = cluster.node_add("node1", &first, None).unwrap();
    assert!(added.success(), "{added}");
    let revoked = gnt_ok(&cluster, &["node", "token", "delete", &id(&second)]);
    assert!(
        revoked
            .stdout
            .contains(&format!("Join token {} revoked", id(&second))),
        "{revoked}"
    );
    assert_eq!(
        listed(&cluster),
        [(id(&first), "used by node1.lab.test".to_owned())]
    );

    // A revoked token no longer adds anything.
    let refused = cluster
        .gnt(&["node", "add", "--join-token", &second, "node9.lab.test"])
        .unwrap();
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused
            .stderr
            .contains(&format!("unknown join token '{}'", id(&second))),
        "{refused}"
    );
    // A used token has nothing left to revoke; an unknown id is named.
    let used = cluster
        .gnt(&["node", "token", "delete", &id(&first)])
        .unwrap();
    assert_eq!(used.code, 76, "{used}");
    assert!(
        used.stderr
            .contains("was used to add node1.lab.test already"),
        "{used}"
    );
    let unknown = cluster.gnt(&["node", "token", "delete", "zzzzzz"]).unwrap();
    assert_eq!(unknown.code, 67, "{unknown}");
    assert!(
        unknown
            .stderr
            .contains("no join token 'zzzzzz' to revoke; `gnt node token list` shows the tokens"),
        "{unknown}"
    );
}
