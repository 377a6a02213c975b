//! The ssconf store on a real file system: writing, re-reading, replacing whole sets,
//! Ganeti-compatible paths, refusals with clear errors, and readers racing a writer.
//!
//! Run with `cargo test -p gnt-core --test ssconf_store`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use gnt_core::error::{Chain, Classify, ErrorKind};
use gnt_core::ssconf::{
    MAX_VALUE_BYTES, Published, SsconfError, SsconfKey, SsconfSet, SsconfStore, SsconfVersion,
};

/// A set in which every listed key holds `value` (on two lines where the key takes
/// several), so a mixed read is easy to spot.
fn uniform_set(keys: &[SsconfKey], value: &str) -> SsconfSet {
    let mut set = SsconfSet::new();
    for key in keys {
        let text = if key.is_single_line() {
            format!("{value}-{key}")
        } else {
            format!("{value}\n{value}-{key}")
        };
        set.insert(*key, text).unwrap();
    }
    set
}

fn ganeti_read(dir: &Path, key: SsconfKey) -> Option<String> {
    // Ganeti's ReadSsconfFile: open the stable path, read, strip trailing newlines.
    fs::read_to_string(dir.join(key.file_name()))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

#[test]
fn a_written_set_reads_back_equal_and_through_ganetis_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    assert!(
        store.read().unwrap().is_empty(),
        "a fresh directory has no ssconf"
    );

    let mut set = SsconfSet::new();
    set.insert(SsconfKey::ClusterName, "cluster.example.com")
        .unwrap();
    set.insert(SsconfKey::PrimaryIpFamily, "10").unwrap();
    set.insert(SsconfKey::ClusterTags, "value\nwith\nnewlines\n")
        .unwrap();
    set.insert(SsconfKey::InstanceList, "").unwrap();
    store.replace(&set, SsconfVersion::new(1, 1)).unwrap();

    assert_eq!(store.read().unwrap(), set);
    // Ganeti's test vectors: exact file contents at Ganeti's paths.
    let raw = |key: SsconfKey| fs::read(dir.path().join(key.file_name())).unwrap();
    assert_eq!(raw(SsconfKey::ClusterName), b"cluster.example.com\n");
    assert_eq!(raw(SsconfKey::ClusterTags), b"value\nwith\nnewlines\n");
    assert_eq!(raw(SsconfKey::InstanceList), b"");
    assert_eq!(raw(SsconfKey::PrimaryIpFamily), b"10\n");
    assert_eq!(
        store.read_key(SsconfKey::ClusterName).unwrap().as_deref(),
        Some("cluster.example.com")
    );
    assert_eq!(store.read_key(SsconfKey::MasterNode).unwrap(), None);
    assert!(!dir.path().join("ssconf_master_node").exists());
}

#[test]
fn files_are_read_only_for_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    store
        .replace(
            &uniform_set(&[SsconfKey::ClusterName], "a"),
            SsconfVersion::new(1, 1),
        )
        .unwrap();
    let meta = fs::metadata(dir.path().join("ssconf_cluster_name")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o444);
}

#[test]
fn replacing_a_set_drops_keys_the_new_set_lacks_and_collects_old_generations() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    let first = uniform_set(
        &[
            SsconfKey::ClusterName,
            SsconfKey::NodeList,
            SsconfKey::MasterNode,
        ],
        "one",
    );
    let second = uniform_set(&[SsconfKey::ClusterName, SsconfKey::OnlineNodes], "two");
    assert_eq!(store.replace(&first, SsconfVersion::new(1, 1)).unwrap(), 1);
    assert_eq!(store.replace(&second, SsconfVersion::new(1, 1)).unwrap(), 2);
    assert_eq!(store.read().unwrap(), second);
    assert_eq!(ganeti_read(dir.path(), SsconfKey::NodeList), None);
    assert!(
        fs::symlink_metadata(dir.path().join("ssconf_node_list")).is_err(),
        "the stable path of a dropped key is removed"
    );
    assert_eq!(
        ganeti_read(dir.path(), SsconfKey::OnlineNodes).as_deref(),
        Some("two\ntwo-online_nodes")
    );
    for n in 3..=6 {
        assert_eq!(store.replace(&first, SsconfVersion::new(1, 1)).unwrap(), n);
    }
    let generations: Vec<String> = fs::read_dir(dir.path().join(".ssconf"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    assert_eq!(
        generations.len(),
        2,
        "current and previous only: {generations:?}"
    );
}

#[test]
fn clearing_removes_every_key_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    store
        .replace(&uniform_set(SsconfKey::ALL, "x"), SsconfVersion::new(1, 1))
        .unwrap();
    store.clear().unwrap();
    assert!(store.read().unwrap().is_empty());
    for key in SsconfKey::ALL {
        assert!(fs::symlink_metadata(dir.path().join(key.file_name())).is_err());
    }
    // And it can be written again afterwards.
    let again = uniform_set(&[SsconfKey::ClusterName], "y");
    store.replace(&again, SsconfVersion::new(1, 1)).unwrap();
    assert_eq!(store.read().unwrap(), again);
}

#[test]
fn the_version_is_published_with_its_set_and_an_old_manifest_reads_as_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    assert_eq!(store.read_published().unwrap(), Published::default());
    let set = uniform_set(&[SsconfKey::ClusterName, SsconfKey::NodeList], "s");
    store.replace(&set, SsconfVersion::new(1, 41)).unwrap();
    store.replace(&set, SsconfVersion::new(2, 42)).unwrap();
    assert_eq!(
        store.read_published().unwrap(),
        Published::new(set.clone(), SsconfVersion::new(2, 42))
    );
    // The version is in the generation's manifest, beside the keys, never a file of its own.
    let generation = dir.path().join(".ssconf/current");
    let manifest = generation.join("MANIFEST");
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        "epoch 2\nserial 42\ncluster_name\nnode_list\n"
    );
    let files: Vec<String> = fs::read_dir(&generation)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "MANIFEST")
        .collect();
    assert!(
        files.iter().all(|name| name.starts_with("ssconf_")),
        "{files:?}"
    );
    assert_eq!(files.len(), 2);

    // A generation written before serials existed: the same set, version 0.
    fs::set_permissions(&manifest, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&manifest, "cluster_name\nnode_list\n").unwrap();
    assert_eq!(
        store.read_published().unwrap(),
        Published::new(set, SsconfVersion::default())
    );

    // A serial that does not parse is an error naming the manifest and its line.
    fs::write(&manifest, "cluster_name\nserial forty\n").unwrap();
    let err = store.read_published().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Environment);
    let message = err.to_string();
    assert!(
        message.contains("MANIFEST, line 2: 'forty' is not a serial number"),
        "{message}"
    );
}

#[test]
fn files_ganeti_wrote_directly_are_read_then_replaced_by_links() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("ssconf_cluster_name"),
        "legacy.example.com\n\n",
    )
    .unwrap();
    fs::write(dir.path().join("ssconf_primary_ip_family"), "2\n").unwrap();
    fs::write(dir.path().join("config.data"), "not ssconf").unwrap();
    let store = SsconfStore::new(dir.path());
    let legacy = store.read_published().unwrap();
    assert_eq!(
        legacy.set.get(SsconfKey::ClusterName),
        Some("legacy.example.com")
    );
    assert_eq!(legacy.set.len(), 2);
    assert_eq!(legacy.serial, 0, "Ganeti's files carry no serial");

    let new = uniform_set(&[SsconfKey::ClusterName], "new");
    store.replace(&new, SsconfVersion::new(1, 1)).unwrap();
    assert_eq!(store.read().unwrap(), new);
    let link = fs::symlink_metadata(dir.path().join("ssconf_cluster_name")).unwrap();
    assert!(link.file_type().is_symlink());
    assert!(!dir.path().join("ssconf_primary_ip_family").exists());
    assert!(
        dir.path().join("config.data").exists(),
        "other files are left alone"
    );
}

#[test]
fn an_unknown_ssconf_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ssconf_bogus"), "x\n").unwrap();
    let err = SsconfStore::new(dir.path()).read().unwrap_err();
    let expected = format!(
        "unknown ssconf file {}: 'bogus' is not an ssconf key",
        dir.path().join("ssconf_bogus").display()
    );
    assert_eq!(err.to_string(), expected);
    assert_eq!(err.kind(), ErrorKind::Environment);
}

#[test]
fn an_oversize_file_is_an_error_naming_it_not_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssconf_instance_list");
    fs::write(&path, vec![b'A'; MAX_VALUE_BYTES + 1]).unwrap();
    let store = SsconfStore::new(dir.path());
    let err = store.read().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "ssconf file {} holds 131073 bytes; ssconf allows at most 131072",
            path.display()
        )
    );
    assert_eq!(err.kind(), ErrorKind::Environment);
    // Exactly the limit reads fine, as in Ganeti...
    fs::write(&path, vec![b'A'; MAX_VALUE_BYTES]).unwrap();
    let read = store.read().unwrap();
    assert_eq!(
        read.get(SsconfKey::InstanceList).unwrap().len(),
        MAX_VALUE_BYTES
    );
    // ...but cannot be written back: with its newline the file would exceed the limit.
    let err = store.replace(&read, SsconfVersion::new(1, 1)).unwrap_err();
    assert!(
        matches!(err, SsconfError::TooLarge { size: 131073, .. }),
        "{err}"
    );
    assert_eq!(
        fs::read(&path).unwrap().len(),
        MAX_VALUE_BYTES,
        "nothing was written"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_malformed_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssconf_node_list");
    fs::write(&path, b"node1\nnode\xff2\n").unwrap();
    let err = SsconfStore::new(dir.path()).read().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("ssconf file {}, line 2: not valid UTF-8", path.display())
    );
}

#[test]
fn typed_reads_of_a_stored_set_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    let mut set = SsconfSet::new();
    set.insert(SsconfKey::PrimaryIpFamily, "10").unwrap();
    set.insert(SsconfKey::NodePrimaryIps, "node1 192.0.2.1")
        .unwrap();
    store.replace(&set, SsconfVersion::new(1, 1)).unwrap();
    let err = store.read().unwrap().node_primary_ips().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "ssconf file {}, line 1: 192.0.2.1 is not an IPv6 address",
            dir.path().join("ssconf_node_primary_ips").display()
        )
    );
    assert_eq!(err.kind(), ErrorKind::Environment);
}

#[test]
fn a_missing_state_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no").join("such");
    let err = SsconfStore::new(&missing)
        .replace(
            &uniform_set(&[SsconfKey::ClusterName], "x"),
            SsconfVersion::new(1, 1),
        )
        .unwrap_err();
    assert!(
        Chain(&err).to_string().starts_with(&format!(
            "cannot create directory {}",
            missing.join(".ssconf").display()
        )),
        "{}",
        Chain(&err)
    );
    assert_eq!(err.kind(), ErrorKind::Environment);
}

#[test]
fn a_writer_waits_for_the_lock_then_gives_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    store
        .replace(
            &uniform_set(&[SsconfKey::ClusterName], "a"),
            SsconfVersion::new(1, 1),
        )
        .unwrap();
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(".ssconf/lock"))
        .unwrap();
    lock.lock().unwrap();
    let started = Instant::now();
    let err = store
        .replace(
            &uniform_set(&[SsconfKey::ClusterName], "b"),
            SsconfVersion::new(1, 1),
        )
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
    assert!(matches!(err, SsconfError::LockTimeout { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("another process holds the ssconf lock"),
        "{err}"
    );
    drop(lock);
    assert_eq!(
        store.read().unwrap(),
        uniform_set(&[SsconfKey::ClusterName], "a"),
        "the refused write changed nothing"
    );
}

#[test]
fn concurrent_readers_never_see_keys_of_two_sets_nor_a_set_with_another_serial() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    let keys = SsconfKey::ALL;
    // Each set has its own serial: a reader must get a set with its own serial, never one
    // with the serial of the set before or after it.
    let sets = [
        Published::new(uniform_set(keys, "alpha"), SsconfVersion::new(1, 1)),
        Published::new(uniform_set(keys, "beta"), SsconfVersion::new(1, 2)),
    ];
    // A third shape with fewer keys: a mixed read could also show up as a wrong key count.
    let small = Published::new(uniform_set(&keys[..5], "gamma"), SsconfVersion::new(1, 3));
    store
        .replace(&sets[0].set, SsconfVersion::new(1, sets[0].serial))
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop, reads) = (store.clone(), stop.clone(), reads.clone());
            let allowed = [sets[0].clone(), sets[1].clone(), small.clone()];
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seen = store.read_published().unwrap();
                    assert!(allowed.contains(&seen), "mixed read: {seen:?}");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Ganeti's per-file reader: each file must be complete, never torn.
    let ganeti_reader = {
        let (dir, stop) = (dir.path().to_owned(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for key in [SsconfKey::ClusterName, SsconfKey::UidPool] {
                    if let Some(value) = ganeti_read(&dir, key) {
                        let ok = ["alpha", "beta", "gamma"].iter().any(|v| {
                            value == format!("{v}-{key}") && key.is_single_line()
                                || value == format!("{v}\n{v}-{key}")
                        });
                        assert!(ok, "torn file {key}: {value:?}");
                    }
                }
            }
        })
    };

    let writes = 300;
    for i in 0..writes {
        let next = if i % 7 == 3 { &small } else { &sets[i % 2] };
        store
            .replace(&next.set, SsconfVersion::new(1, next.serial))
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    ganeti_reader.join().unwrap();
    assert!(reads.load(Ordering::Relaxed) > 0);
    eprintln!(
        "{writes} writes, {} consistent reads",
        reads.load(Ordering::Relaxed)
    );
}

#[test]
fn a_generation_missing_a_file_is_never_returned_short() {
    // What a reader sees when cleanup deletes its generation under it: one file gone.
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    store
        .replace(
            &uniform_set(SsconfKey::ALL, "full"),
            SsconfVersion::new(1, 1),
        )
        .unwrap();
    let current = dir
        .path()
        .join(".ssconf")
        .join(fs::read_link(dir.path().join(".ssconf/current")).unwrap());
    fs::remove_file(current.join("ssconf_node_list")).unwrap();
    let err = store.read().unwrap_err();
    assert!(
        Chain(&err)
            .to_string()
            .contains("generations kept changing"),
        "{}",
        Chain(&err)
    );
}

#[test]
fn concurrent_writers_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let store = SsconfStore::new(dir.path());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                for i in 0..25 {
                    store
                        .replace(
                            &uniform_set(
                                &[SsconfKey::ClusterName, SsconfKey::NodeList],
                                &format!("w{w}i{i}"),
                            ),
                            SsconfVersion::new(1, 1),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let last = store.read().unwrap();
    let value = last
        .get(SsconfKey::NodeList)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        last,
        uniform_set(&[SsconfKey::ClusterName, SsconfKey::NodeList], &value)
    );
    // 100 writes, each a new generation.
    assert_eq!(
        store
            .replace(
                &uniform_set(&[SsconfKey::ClusterName], "final"),
                SsconfVersion::new(1, 1)
            )
            .unwrap(),
        101
    );
}
