//! Who listens on a TCP port of this host: what a daemon that cannot bind its port tells
//! the operator at once (`port 1811 is in use by PID 4242 (gnt-noded)`), instead of "see
//! `ss -ltnp`".
//!
//! Read from `/proc`, as `ss -p` does: the listening sockets of `/proc/net/tcp` and
//! `tcp6` (state `0A`) on the port give socket inodes, and the process holding one has a
//! descriptor linking to `socket:[inode]`. Best effort: a process of another PID namespace,
//! or one whose descriptors this process may not read, is simply not found.

use std::collections::BTreeSet;
use std::fs;

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    /// Its PID.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PID {} ({})", self.pid, self.command)
    }
}

/// The socket inodes listening on TCP `port`, from the text of `/proc/net/tcp` or `tcp6`.
fn listening_inodes(table: &str, port: u16) -> impl Iterator<Item = u64> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let state = fields.get(3)?;
        let inode = fields.get(9)?;
        let (_, hex_port) = local.rsplit_once(':')?;
        (u16::from_str_radix(hex_port, 16).ok()? == port && *state == "0A")
            .then(|| inode.parse().ok())
            .flatten()
    })
}

/// The first process found listening on TCP `port` (either family), if any.
pub fn port_holder(port: u16) -> Option<PortHolder> {
    let inodes: BTreeSet<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port).collect::<Vec<_>>())
        .filter(|inode| *inode != 0)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: BTreeSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .ok()
                .and_then(|target| target.to_str().map(|t| wanted.contains(t)))
                .unwrap_or(false)
        });
        if holds {
            let command = fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default();
            return Some(PortHolder { pid, command });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_of_the_port_are_found_in_the_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0713 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0713 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 20 4 30 10 -1\n";
        // Port 0x0713 = 1811: only the listening one counts, not the connection.
        assert_eq!(listening_inodes(table, 1811).collect::<Vec<_>>(), [4242]);
        assert_eq!(listening_inodes(table, 1812).count(), 0);
    }

    #[test]
    fn this_process_is_found_holding_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = port_holder(port).expect("our own listener");
        assert_eq!(holder.pid, std::process::id());
        drop(listener);
        assert_eq!(port_holder(port), None);
    }
}
