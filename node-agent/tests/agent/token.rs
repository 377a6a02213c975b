//! The join token, attacked: a removed node's old token replayed by a master of another CA
//! with any expiry claim (also where the node's ledger was lost), expiry claims beyond the
//! node's own copy, a guessing loop, and streams opened at once to multiply guesses.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gnt_core::join::JoinToken;
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster::TestMaster;
use gnt_node_agent::AgentStatus;
use gnt_proto::bootstrap::v1::JoinClientMessage;
use gnt_proto::bootstrap::v1::bootstrap_client::BootstrapClient;
use gnt_proto::node::v1::LeaveClusterRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::join::TokenSource;
use gnt_transports::{ClientTls, Connector, DialOptions};
use tokio_stream::wrappers::ReceiverStream;

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
    leave(&topology);
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
    // One instant for both: computed twice, a second boundary between them made the
    // claim a second later than the token's own expiry (refused for that reason instead).
    let expired = now() - 60;
    let (agent, _) = agent_with_file(&topology, &format!("{TOKEN}.{expired}"));
    let (_, message) = refusal(
        topology.join("node1", IpPolicy::HybridIpv6, any(1811), move |p| {
            p.expires_at_unix = expired;
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

    // A bare token is good until the master's claim or a day after this node first saw
    // it, whichever comes first: first seen 25 hours ago, it has expired whatever the claim.
    let token: JoinToken = TOKEN.parse().unwrap();
    let ledger = state.join("join-ledger");
    std::fs::write(
        &ledger,
        format!("{} {} - -\n", token.hash_hex(), now() - 25 * 3600),
    )
    .unwrap();
    let (agent, _) = agent_with_file(&topology, TOKEN);
    let (_, message) = refusal(
        topology.join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.expires_at_unix = now() + 3600;
        }),
    );
    assert!(message.contains("the join token expired"), "{message}");
    drop(agent);

    // Seen just now, it joins on a master's claim of a week: the node has no expiry of its
    // own to hold the claim against, only its cap.
    std::fs::remove_file(&ledger).unwrap();
    let (agent, _) = agent_with_file(&topology, TOKEN);
    topology
        .join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.expires_at_unix = now() + 7 * 86400;
        })
        .unwrap();
    agent.wait_member();
}

#[test]
fn a_token_file_removed_after_the_join_leaves_the_agent_waiting_for_a_new_one() {
    let topology = Topology::new();
    let (agent, file) = agent_with_file(&topology, TOKEN);
    topology.join_hybrid("node1");
    agent.wait_member();
    // The unit's comment allows removing the file once the node has joined.
    std::fs::remove_file(&file).unwrap();
    leave(&topology);
    agent.wait(|s| matches!(s, AgentStatus::Bootstrap(_)));
    let fresh: JoinToken = "qwerty.0123456789qwerty".parse().unwrap();
    std::fs::write(&file, format!("{}\n", fresh.expose())).unwrap();
    topology
        .join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.token = fresh
        })
        .unwrap();
    agent.wait_member();
}

#[test]
fn a_member_whose_ledger_was_lost_still_spends_the_token_it_joined_with() {
    let topology = Topology::new();
    let state = topology.state_dir("node1");
    let attacker_dir = tempfile::tempdir().unwrap();
    let attacker = Arc::new(TestMaster::new(attacker_dir.path(), "master.lab.test").unwrap());
    let attack = |topology: &Topology| {
        topology.join_from(
            &attacker,
            "node1",
            IpPolicy::HybridIpv6,
            any(1811),
            |plan| {
                plan.expires_at_unix = now() + 23 * 3600;
            },
        )
    };

    // Lost while it runs as a member (or never written: a node that joined before there was
    // a ledger): leaving spends the token it holds.
    let (agent, _) = agent_with_file(&topology, TOKEN);
    topology.join_hybrid("node1");
    agent.wait_member();
    std::fs::remove_file(state.join("join-ledger")).unwrap();
    leave(&topology);
    agent.wait(|s| matches!(s, AgentStatus::Bootstrap(_)));
    let (_, message) = refusal(attack(&topology));
    assert!(
        message.contains("was already used on this node"),
        "{message}"
    );
    drop(agent);

    // Lost while the agent was down: starting as a member spends it.
    std::fs::remove_file(state.join("join-ledger")).unwrap();
    let fresh: JoinToken = "qwerty.0123456789qwerty".parse().unwrap();
    let (agent, file) = agent_with_file(&topology, &fresh.expose());
    topology
        .join("node1", IpPolicy::HybridIpv6, any(1811), |p| {
            p.token = fresh.clone()
        })
        .unwrap();
    agent.wait_member();
    drop(agent);
    std::fs::remove_file(state.join("join-ledger")).unwrap();
    let agent = Agent::start_with(topology.host("node1"), &state, TokenSource::File(file));
    agent.wait_member();
    leave(&topology);
    agent.wait(|s| matches!(s, AgentStatus::Bootstrap(_)));
    let (_, message) = refusal(topology.join_from(
        &attacker,
        "node1",
        IpPolicy::HybridIpv6,
        any(1811),
        move |plan| plan.token = fresh,
    ));
    assert!(
        message.contains("was already used on this node"),
        "{message}"
    );
}

/// The master tells node1 to leave.
fn leave(topology: &Topology) {
    let connector = topology
        .master
        .connector("[fd00:77::11]:1811".parse().unwrap(), IpPolicy::HybridIpv6);
    topology
        .host("master")
        .block_on(async move {
            let channel = connector.channel().await.unwrap();
            NodeAgentClient::new(gnt_integration::cluster::stamped(channel, 1))
                .leave_cluster(LeaveClusterRequest {})
                .await
                .unwrap()
        })
        .unwrap();
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

#[test]
fn silent_streams_opened_at_once_get_two_tries_and_the_master_still_gets_in() {
    let topology = Topology::new();
    let agent = Agent::start(topology.host("node1"), &topology.state_dir("node1"));
    // Ten connections from node2, each opening a Join that never says hello: once, all of
    // them were admitted, each worth a guess and 30 s of memory.
    let answers = topology
        .host("node2")
        .block_on(async {
            let mut opened = Vec::new();
            for _ in 0..10 {
                opened.push(tokio::spawn(async {
                    let tls = ClientTls::danger_unverified_server(None).unwrap();
                    let channel = Connector::tcp_addr(
                        "[fd00:77::11]:1811".parse().unwrap(),
                        DialOptions::new(IpPolicy::HybridIpv6),
                    )
                    .with_tls(tls)
                    .channel()
                    .await
                    .unwrap();
                    let (silent, rx) = tokio::sync::mpsc::channel::<JoinClientMessage>(1);
                    let answer = BootstrapClient::new(channel)
                        .join(ReceiverStream::new(rx))
                        .await;
                    (answer.map(|_| ()).map_err(|s| s.code()), silent)
                }));
            }
            let mut answers = Vec::new();
            for handle in opened {
                answers.push(handle.await.unwrap());
            }
            answers
        })
        .unwrap();
    let admitted = answers.iter().filter(|(a, _)| a.is_ok()).count();
    let throttled = answers
        .iter()
        .filter(|(a, _)| *a == Err(tonic::Code::Unavailable))
        .count();
    assert_eq!(admitted, 2, "{answers:?}");
    assert_eq!(throttled, 8, "{answers:?}");
    drop(answers);
    // The master, another source with a clean record, is not held up by them.
    topology.join_hybrid("node1");
    agent.wait_member();
}
