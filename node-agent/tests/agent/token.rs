//! The join token, attacked: a removed node's old token replayed by a master of another CA
//! with any expiry claim, expiry claims beyond the node's own copy, and a guessing loop.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gnt_core::join::JoinToken;
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster::TestMaster;
use gnt_node_agent::AgentStatus;
use gnt_proto::node::v1::LeaveClusterRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::join::TokenSource;

use crate::support::{Agent, TOKEN, Topology, any, refusal, snapshot};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap()
}

/// An agent of `topology`'s node1 whose token is read from a file holding `token`.
fn agent_with_file(topology: &Topology, token: &str) -> (Agent, std::path::PathBuf) {
    let file = topology.dir.path().join("node1-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let agent = Agent::start_with(
        topology.host("node1"),
        &topology.state_dir("node1"),
        TokenSource::File(file.clone()),
    );
    (agent, file)
}

#[test]
fn a_removed_node_refuses_its_old_token_from_any_master_with_any_expiry() {
    let topology = Topology::new();
    let (agent, file) = agent_with_file(&topology, TOKEN);
    topology.join_hybrid("node1");
    agent.wait_member();

    // The master removes the node: it leaves and waits for a Join again.
    let connector = topology
        .master
        .connector("[fd00:77::11]:1811".parse().unwrap(), IpPolicy::HybridIpv6);
    topology
        .host("master")
        .block_on(async move {
            let channel = connector.channel().await.unwrap();
            NodeAgentClient::new(channel)
                .leave_cluster(LeaveClusterRequest {})
                .await
                .unwrap()
        })
        .unwrap();
    agent.wait(|s| matches!(s, AgentStatus::Bootstrap(_)));

    // Someone who saw the token (it was typed on two hosts and lives in a file) tries it,
    // with a CA of their own and an expiry of their choosing.
    let attacker_dir = tempfile::tempdir().unwrap();
    let attacker = Arc::new(TestMaster::new(attacker_dir.path(), "master.lab.test").unwrap());
    let state = topology.state_dir("node1");
    let attack = |topology: &Topology| {
        topology.join_from(
            &attacker,
            "node1",
            IpPolicy::HybridIpv6,
            any(1811),
            |plan| {
                plan.expires_at_unix = now() + 10 * 365 * 86400;
            },
        )
    };
    let before = snapshot(&state);
    let (code, message) = refusal(attack(&topology));
    assert_eq!(code, tonic::Code::Unauthenticated, "{message}");
    assert!(
        message.contains("was already used on this node"),
        "{message}"
    );
    assert_eq!(snapshot(&state), before, "the state changed");

    // Nor after a restart, with the same file.
    drop(agent);
    let (agent, _) = agent_with_file(&topology, TOKEN);
    let (_, message) = refusal(attack(&topology));
    assert!(
        message.contains("was already used on this node"),
        "{message}"
    );
    assert!(matches!(agent.status(), AgentStatus::Bootstrap(_)));

    // A new token in the file is taken at the next Join, without a restart.
    let fresh = "qwerty.0123456789qwerty".parse::<JoinToken>().unwrap();
    std::fs::write(&file, format!("{}\n", fresh.expose())).unwrap();
    topology
        .join("node1", IpPolicy::HybridIpv6, any(1811), |plan| {
            plan.token = fresh
        })
        .unwrap();
    agent.wait_member();
}

#[test]
fn the_node_enforces_its_own_copy_of_the_tokens_expiry() {
    let topology = Topology::new();
    let state = topology.state_dir("node1");

    // The token says it expires in an hour; a master claiming ten days is refused.
    let hour = now() + 3600;
    let dated = format!("{TOKEN}.{hour}");
    let (agent, _) = agent_with_file(&topology, &dated);
    let before = snapshot(&state);
    let (code, message) = refusal(
        topology.join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.expires_at_unix = now() + 10 * 86400;
        }),
    );
    assert_eq!(code, tonic::Code::Unauthenticated);
    assert!(message.contains("later than this node allows"), "{message}");
    assert_eq!(snapshot(&state), before);
    drop(agent);

    // A token whose own expiry has passed is refused whatever the master claims.
    let (agent, _) = agent_with_file(&topology, &format!("{TOKEN}.{}", now() - 60));
    let (_, message) = refusal(
        topology.join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.expires_at_unix = now() - 60;
        }),
    );
    assert!(message.contains("the join token expired"), "{message}");
    let (_, message) = refusal(
        topology.join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.expires_at_unix = now() + 3600;
        }),
    );
    assert!(message.contains("later than this node allows"), "{message}");
    drop(agent);

    // A bare token is good for a day from when the node first saw it.
    let (agent, _) = agent_with_file(&topology, TOKEN);
    let (_, message) = refusal(
        topology.join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.expires_at_unix = now() + 2 * 86400;
        }),
    );
    assert!(message.contains("later than this node allows"), "{message}");
    // Within it, and with the matching claim of a dated token, the Join goes through.
    topology.join_hybrid("node1");
    agent.wait_member();
}

#[test]
fn a_guessing_loop_is_throttled_per_source_and_the_real_master_still_gets_in() {
    let topology = Topology::new();
    let agent = Agent::start(topology.host("node1"), &topology.state_dir("node1"));
    let guess = |secret: &str| {
        let token: JoinToken = format!("abcdef.{secret}").parse().unwrap();
        topology.join_via(
            "node2",
            &topology.master,
            "node1",
            IpPolicy::HybridIpv6,
            any(1811),
            move |p| p.token = token,
        )
    };
    // The node's bound is 5 failures a minute from one source.
    for i in 0..5 {
        let (code, message) = refusal(guess(&format!("{i:0>16}")));
        assert_eq!(code, tonic::Code::Unauthenticated, "guess {i}: {message}");
    }
    let (code, message) = refusal(guess("ffffffffffffffff"));
    assert_eq!(code, tonic::Code::Unavailable, "{message}");
    assert!(
        message.contains("too many failed join attempts"),
        "{message}"
    );
    // The right token from another source is not held up.
    topology.join_hybrid("node1");
    agent.wait_member();
}
