use std::net::{Ipv4Addr, SocketAddr};

use super::*;
use crate::io::PlainIo;
use crate::peer::{ListenAddr, PeerAddr, PeerInfo};

/// Host `10.0.0.last`.
fn host(last: u8) -> PeerAddr {
    PeerAddr::tcp(SocketAddr::from((Ipv4Addr::new(10, 0, 0, last), 4000)))
}

/// A connection from `host(last)` over an in-process pipe.
fn from_host(last: u8) -> Connection {
    Connection::plain(
        PlainIo::Memory(tokio::io::duplex(1).0),
        PeerInfo::new(host(last), ListenAddr::Memory),
    )
}

fn admission(max_connections: usize, max_handshakes: usize, max_per_peer: usize) -> Admission {
    Admission::new(ConnectionLimits {
        max_connections,
        max_handshakes,
        max_per_peer,
        idle_timeout: None,
    })
}

/// `host(10)` is the master: protected.
fn protect_the_master(admission: &mut Admission) {
    admission.protect(Protected::when(|peer| peer.remote() == &host(10)));
}

/// A handshake that never ends.
fn never() -> impl Future<Output = Option<Connection>> {
    std::future::pending()
}

fn pending_ids(admission: &Admission) -> Vec<tokio::task::Id> {
    admission
        .order
        .iter()
        .map(|(_, _, task)| task.id())
        .collect()
}

/// The hosts (last byte) of the established connections still open, oldest first.
fn established_hosts(admission: &Admission) -> Vec<u8> {
    established::lock(&admission.established)
        .iter()
        .map(|(_, entry)| match entry.origin {
            Origin::Host(IpAddr::V4(v4)) => v4.octets()[3],
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Establishes a connection from `host(last)`; it must get a place.
fn enter(admission: &mut Admission, last: u8) -> Connection {
    match admission.enter(from_host(last)) {
        Finished::Established { connection, .. } => connection,
        other => panic!("{other:?}"),
    }
}

fn is_dropped(connection: &Connection) -> bool {
    connection.peer().tracking().unwrap().is_dropped()
}

#[test]
fn defaults_follow_the_descriptor_limit() {
    let systemd = ConnectionLimits::for_fd_limit(1024);
    assert_eq!(systemd.max_connections, 480);
    assert_eq!(systemd.max_handshakes, 128);
    assert_eq!(systemd.max_per_peer, 32);
    assert_eq!(systemd.idle_timeout, None);
    let high = ConnectionLimits::for_fd_limit(1 << 20);
    assert_eq!(high.max_connections, MAX_CONNECTIONS);
    assert_eq!(high.max_handshakes, MAX_HANDSHAKES);
    assert_eq!(high.max_per_peer, MAX_PER_PEER);
    let tiny = ConnectionLimits::for_fd_limit(16);
    assert_eq!(tiny.max_connections, MIN_CONNECTIONS);
    assert_eq!(tiny.max_handshakes, MIN_CONNECTIONS / 2);
    assert_eq!(tiny.max_per_peer, MIN_CONNECTIONS / 4);
}

#[tokio::test]
async fn too_many_handshakes_cost_the_peer_holding_the_most_its_oldest() {
    let mut admission = admission(10, 4, 10);
    // The master's connection is the oldest; a flood from one host follows.
    admission.start(Origin::from(&host(10)), never());
    for _ in 0..3 {
        admission.start(Origin::from(&host(66)), never());
    }
    let master = pending_ids(&admission)[0];
    for _ in 0..20 {
        assert_eq!(admission.admit(), Admit::Evicted);
        admission.start(Origin::from(&host(66)), never());
        assert_eq!(pending_ids(&admission)[0], master, "the master's stays");
    }
    // Host 66 goes down to one; then both hold as many, and the oldest of all goes.
    assert!(admission.drop_pending());
    assert!(admission.drop_pending());
    assert_eq!(pending_ids(&admission)[0], master);
    assert!(admission.drop_pending());
    assert!(!pending_ids(&admission).contains(&master));
    assert_eq!(admission.pending(), 1);
}

#[tokio::test]
async fn a_full_listener_drops_the_connections_of_the_peer_holding_the_most_never_protected_ones() {
    let mut admission = admission(5, 5, 10);
    protect_the_master(&mut admission);
    let master = enter(&mut admission, 10);
    let rogue: Vec<Connection> = (0..3).map(|_| enter(&mut admission, 66)).collect();
    admission.start(Origin::from(&host(7)), never());
    assert_eq!(established_hosts(&admission), [10, 66, 66, 66]);

    // Full: the rogue's oldest goes, not the older master's, not host 7's pending one.
    assert_eq!(admission.admit(), Admit::Evicted);
    assert!(is_dropped(&rogue[0]));
    assert_eq!(established_hosts(&admission), [10, 66, 66]);
    assert_eq!(admission.pending(), 1);

    admission.start(Origin::from(&host(8)), never());

    // The rogue's connection without calls goes, not its older one with a call.
    rogue[1].peer().tracking().unwrap().call_started();
    assert_eq!(admission.admit(), Admit::Evicted);
    assert!(is_dropped(&rogue[2]) && !is_dropped(&rogue[1]));
    admission.start(Origin::from(&host(9)), never());

    // Every peer holds one: one without calls, the oldest (host 7's pending one).
    assert_eq!(admission.admit(), Admit::Evicted);
    assert!(!is_dropped(&rogue[1]));
    assert_eq!(admission.pending(), 2);
    assert_eq!(
        admission
            .order
            .iter()
            .map(|(_, o, _)| *o)
            .collect::<Vec<_>>(),
        [Origin::from(&host(8)), Origin::from(&host(9))]
    );
    assert_eq!(admission.admit(), Admit::Yes);

    // Protected connections alone: newcomers are refused.
    let mut admission = self::admission(2, 2, 10);
    protect_the_master(&mut admission);
    let masters = [enter(&mut admission, 10), enter(&mut admission, 10)];
    assert_eq!(admission.admit(), Admit::Refused);
    assert!(!masters.iter().any(is_dropped) && !is_dropped(&master));
    drop(masters);
    assert_eq!(admission.established(), 0);
    assert_eq!(admission.admit(), Admit::Yes);
}

#[tokio::test]
async fn protection_is_asked_at_every_choice() {
    let allowed = Arc::new(std::sync::RwLock::new(host(10)));
    let mut admission = admission(2, 2, 10);
    let now = allowed.clone();
    admission.protect(Protected::when(move |peer| {
        *peer.remote() == *now.read().unwrap()
    }));
    let first = enter(&mut admission, 10);
    let second = enter(&mut admission, 11);
    assert_eq!(admission.admit(), Admit::Evicted);
    assert!(is_dropped(&second) && !is_dropped(&first));
    // Host 10 is no longer the master, host 12 is.
    *allowed.write().unwrap() = host(12);
    let third = enter(&mut admission, 12);
    assert_eq!(admission.admit(), Admit::Evicted);
    assert!(is_dropped(&first) && !is_dropped(&third));
}

#[tokio::test]
async fn a_peer_beyond_its_share_loses_its_oldest_idle_connection_or_the_newcomer() {
    let mut admission = admission(100, 10, 2);
    protect_the_master(&mut admission);
    // Protected connections are no one's share.
    let masters: Vec<Connection> = (0..5).map(|_| enter(&mut admission, 10)).collect();
    let first = enter(&mut admission, 66);
    let second = enter(&mut admission, 66);
    let Finished::Established {
        connection: third,
        displaced: true,
    } = admission.enter(from_host(66))
    else {
        panic!("the third takes the first's place")
    };
    assert!(is_dropped(&first) && !is_dropped(&second) && !is_dropped(&third));
    assert!(!masters.iter().any(is_dropped));
    assert_eq!(established_hosts(&admission), [10, 10, 10, 10, 10, 66, 66]);

    // Both carry calls: the newcomer is closed instead.
    for held in [&second, &third] {
        held.peer().tracking().unwrap().call_started();
    }
    assert!(matches!(
        admission.enter(from_host(66)),
        Finished::OverShare
    ));
    assert!(!is_dropped(&second) && !is_dropped(&third));
    // Another peer has its own share.
    enter(&mut admission, 67);
}

#[tokio::test]
async fn connections_without_calls_are_closed_after_the_idle_checks_protected_ones_never() {
    let mut admission = admission(100, 10, 10);
    protect_the_master(&mut admission);
    let master = enter(&mut admission, 10);
    let idle = enter(&mut admission, 66);
    let calling = enter(&mut admission, 67);
    let watching = enter(&mut admission, 68);
    watching.peer().tracking().unwrap().call_started();
    // A new connection counts as just used: the fifth check closes it.
    for check in 0..=IDLE_CHECKS {
        let tracking = calling.peer().tracking().unwrap();
        tracking.call_started();
        tracking.call_ended();
        let expected = usize::from(check == IDLE_CHECKS);
        assert_eq!(admission.close_idle(), expected, "check {check}");
    }
    assert!(is_dropped(&idle));
    assert!(!is_dropped(&master) && !is_dropped(&calling) && !is_dropped(&watching));
    assert_eq!(established_hosts(&admission), [10, 67, 68]);
    for _ in 0..2 * IDLE_CHECKS {
        admission.close_idle();
    }
    assert!(is_dropped(&calling), "no call since");
    assert!(!is_dropped(&master) && !is_dropped(&watching));
}

#[tokio::test]
async fn a_connection_never_used_goes_first_and_closing_leaves_those_with_bytes_to_drain() {
    let mut admission = admission(3, 3, 10);
    let used = enter(&mut admission, 66);
    let tracking = used.peer().tracking().unwrap();
    tracking.call_started();
    tracking.call_ended();
    let silent = enter(&mut admission, 66);
    let calling = enter(&mut admission, 66);
    calling.peer().tracking().unwrap().call_started();
    // The youngest but one goes: it never carried a call.
    assert_eq!(admission.admit(), Admit::Evicted);
    assert!(is_dropped(&silent) && !is_dropped(&used) && !is_dropped(&calling));

    // Closing: a connection never used goes; one whose call has just ended may still have
    // its answer queued, one with a call has it to finish.
    let never = enter(&mut admission, 67);
    assert_eq!(admission.close_undrained(), 1);
    assert!(is_dropped(&never) && !is_dropped(&used) && !is_dropped(&calling));
    // Once an idle check has found it quiet, there is nothing left to drain.
    admission.close_idle();
    admission.close_idle();
    assert_eq!(admission.close_undrained(), 1);
    assert!(is_dropped(&used) && !is_dropped(&calling));
}
