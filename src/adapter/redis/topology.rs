//! Who serves each hash slot of a Redis Cluster, read from the `CLUSTER NODES` views of several
//! nodes and merged the way the cluster itself settles conflicts: for every slot, the master claim
//! with the highest config epoch wins. One node's view may lag a failover by a few hundred
//! milliseconds (it has not yet heard the promoted replica's announcement); the merge of all views
//! does not, as long as one node that knows answers. Sans-IO: text in, slot owners out.

use std::collections::HashSet;

/// Number of hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// A node's address as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    /// Host (the announced IP).
    pub host: String,
    /// Client port.
    pub port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A master's claim on slots, as one node sees it.
#[derive(Debug, PartialEq)]
struct Claim {
    addr: NodeAddr,
    epoch: u64,
    /// Inclusive slot ranges.
    ranges: Vec<(u16, u16)>,
}

/// One node's `CLUSTER NODES` text, parsed: the master claims, the replicas (as `(master,
/// replica)`) and the node addresses it names, failed nodes left out of both.
#[derive(Debug, Default, PartialEq)]
pub struct View {
    claims: Vec<Claim>,
    replicas: Vec<(NodeAddr, NodeAddr)>,
    nodes: Vec<NodeAddr>,
}

/// `ip:port@cport[,hostname]` → the client address; `None` for a node without one (`:0@0`).
fn parse_addr(field: &str) -> Option<NodeAddr> {
    let hostport = field.split(['@', ',']).next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then(|| NodeAddr {
        host: host.to_owned(),
        port,
    })
}

/// `5461-10922` or `5461`; `None` for a migration marker (`[5461->-id]`) or anything else.
fn parse_range(field: &str) -> Option<(u16, u16)> {
    let (lo, hi) = field.split_once('-').unwrap_or((field, field));
    let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo <= hi && usize::from(hi) < SLOTS).then_some((lo, hi))
}

impl View {
    /// Parses `CLUSTER NODES` output. Lines it cannot read are skipped: a partial view only
    /// weakens the merge, and another node's view fills the gap.
    pub fn parse(text: &str) -> View {
        let mut view = View::default();
        let mut ids: Vec<(&str, NodeAddr)> = Vec::new();
        let mut replicas: Vec<(&str, NodeAddr)> = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(addr), Some(flags), Some(master), Some(epoch)) = (
                fields.first(),
                fields.get(1),
                fields.get(2),
                fields.get(3),
                fields.get(6),
            ) else {
                continue;
            };
            let Some(addr) = parse_addr(addr) else { continue };
            let flags: Vec<&str> = flags.split(',').collect();
            if flags.iter().any(|f| matches!(*f, "handshake" | "noaddr")) {
                continue;
            }
            // A node the cluster marks failed is not asked on the next read (one that swallows
            // packets would cost every read its deadline); its claims still count.
            if !flags.contains(&"fail") {
                view.nodes.push(addr.clone());
            }
            ids.push((id, addr.clone()));
            if flags.contains(&"slave") && !flags.contains(&"fail") {
                replicas.push((master, addr.clone()));
            }
            if !flags.contains(&"master") {
                continue;
            }
            let Ok(epoch) = epoch.parse() else { continue };
            let ranges: Vec<(u16, u16)> = fields.iter().skip(8).filter_map(|f| parse_range(f)).collect();
            if !ranges.is_empty() {
                view.claims.push(Claim { addr, epoch, ranges });
            }
        }
        for (master, replica) in replicas {
            if let Some((_, m)) = ids.iter().find(|(id, _)| *id == master) {
                view.replicas.push((m.clone(), replica));
            }
        }
        view
    }
}

/// The master of every slot, merged from several views.
#[derive(Debug)]
pub struct SlotOwners {
    addrs: Vec<NodeAddr>,
    /// Per slot: index into `addrs` and the winning claim's epoch; `None` when no view claims it.
    slots: Vec<Option<(u16, u64)>>,
    replicas: Vec<(NodeAddr, NodeAddr)>,
    nodes: Vec<NodeAddr>,
}

impl SlotOwners {
    /// Merges `views`: per slot, the claim with the highest config epoch (the first on a tie).
    pub fn merge(views: &[View]) -> SlotOwners {
        let mut owners = SlotOwners {
            addrs: Vec::new(),
            slots: vec![None; SLOTS],
            replicas: Vec::new(),
            nodes: Vec::new(),
        };
        let mut seen = HashSet::new();
        for view in views {
            for pair in &view.replicas {
                if !owners.replicas.contains(pair) {
                    owners.replicas.push(pair.clone());
                }
            }
            for node in &view.nodes {
                if seen.insert(node.clone()) {
                    owners.nodes.push(node.clone());
                }
            }
            for claim in &view.claims {
                let index = match owners.addrs.iter().position(|a| *a == claim.addr) {
                    Some(i) => i,
                    None => {
                        owners.addrs.push(claim.addr.clone());
                        owners.addrs.len() - 1
                    }
                };
                let Ok(index) = u16::try_from(index) else { continue };
                for &(lo, hi) in &claim.ranges {
                    for slot in &mut owners.slots[usize::from(lo)..=usize::from(hi)] {
                        if slot.is_none_or(|(_, epoch)| claim.epoch > epoch) {
                            *slot = Some((index, claim.epoch));
                        }
                    }
                }
            }
        }
        owners
    }

    /// The master serving `slot`, if any view names one.
    pub fn owner(&self, slot: u16) -> Option<&NodeAddr> {
        let (index, _) = (*self.slots.get(usize::from(slot))?)?;
        self.addrs.get(usize::from(index))
    }

    /// The replicas of `master` that some view names and none reports failed.
    pub fn replicas_of<'a>(&'a self, master: &'a NodeAddr) -> impl Iterator<Item = &'a NodeAddr> + 'a {
        self.replicas.iter().filter(move |(m, _)| m == master).map(|(_, r)| r)
    }

    /// Every node any view named (masters and replicas) and none marked failed, for the next
    /// read to ask.
    pub fn nodes(&self) -> &[NodeAddr] {
        &self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// The old master's view right after a manual failover: 7003 (epoch 7) took 0-5460 from it.
    const DEMOTED: &str = "\
a1 127.0.0.1:7000@17000 myself,slave d4 0 1700000000000 4 connected
b2 127.0.0.1:7001@17001 master - 0 1700000000000 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master - 0 1700000000000 3 connected 10923-16383
d4 127.0.0.1:7003@17003 master - 0 1700000000000 7 connected 0-5460
e5 127.0.0.1:7004@17004 slave b2 0 1700000000000 2 connected
f6 127.0.0.1:7005@17005 slave c3 0 1700000000000 3 connected
";

    /// A node that has not heard yet: 7000 (epoch 4) still serves 0-5460, 7003 is its replica.
    const LAGGING: &str = "\
a1 127.0.0.1:7000@17000 master - 0 1700000000000 4 connected 0-5460
b2 127.0.0.1:7001@17001 myself,master - 0 1700000000000 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master - 0 1700000000000 3 connected 10923-16383
d4 127.0.0.1:7003@17003 slave a1 0 1700000000000 4 connected
e5 127.0.0.1:7004@17004 slave b2 0 1700000000000 2 connected
f6 127.0.0.1:7005@17005 slave c3 0 1700000000000 3 connected
";

    #[test]
    fn parses_claims_addresses_and_skips_what_it_cannot_read() {
        let view = View::parse(
            "x1 10.0.0.1:6379@16379,redis-1 myself,master - 0 0 5 connected 0-99 100 [101->-y2] 102-16383\n\
             y2 :0@0 master,noaddr - 0 0 6 disconnected 101\n\
             z3 10.0.0.3:6379@16379 master,fail - 0 0 1 disconnected\n\
             r4 10.0.0.4:6379@16379 slave x1 0 0 5 connected\n\
             r5 10.0.0.5:6379@16379 slave,fail x1 0 0 5 disconnected\n\
             garbage\n",
        );
        let ten = |host: &str| NodeAddr {
            host: host.into(),
            port: 6379,
        };
        assert_eq!(
            view,
            View {
                claims: vec![Claim {
                    addr: ten("10.0.0.1"),
                    epoch: 5,
                    ranges: vec![(0, 99), (100, 100), (102, 16383)],
                }],
                replicas: vec![(ten("10.0.0.1"), ten("10.0.0.4"))],
                nodes: vec![ten("10.0.0.1"), ten("10.0.0.4")],
            }
        );
    }

    #[test]
    fn the_highest_epoch_wins_whatever_the_order_of_the_views() {
        for views in [
            vec![View::parse(LAGGING), View::parse(DEMOTED)],
            vec![View::parse(DEMOTED), View::parse(LAGGING)],
        ] {
            let owners = SlotOwners::merge(&views);
            assert_eq!(owners.owner(0), Some(&addr(7003)));
            assert_eq!(owners.owner(5460), Some(&addr(7003)));
            assert_eq!(owners.owner(5461), Some(&addr(7001)));
            assert_eq!(owners.owner(16383), Some(&addr(7002)));
            let mut nodes = owners.nodes().to_vec();
            nodes.sort();
            assert_eq!(nodes, (7000..=7005).map(addr).collect::<Vec<_>>());
            // Each view's roles, merged: the lagging one still names 7003 a replica of 7000.
            assert_eq!(owners.replicas_of(&addr(7003)).collect::<Vec<_>>(), vec![&addr(7000)]);
            assert_eq!(owners.replicas_of(&addr(7000)).collect::<Vec<_>>(), vec![&addr(7003)]);
            assert_eq!(owners.replicas_of(&addr(7001)).collect::<Vec<_>>(), vec![&addr(7004)]);
        }
    }

    #[test]
    fn a_lagging_view_alone_names_the_old_master_and_an_unclaimed_slot_has_no_owner() {
        let owners = SlotOwners::merge(&[View::parse(LAGGING)]);
        assert_eq!(owners.owner(42), Some(&addr(7000)));
        let partial = SlotOwners::merge(&[View::parse(
            "b2 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 5461-10922\n",
        )]);
        assert_eq!(partial.owner(0), None);
        assert_eq!(partial.owner(5461), Some(&addr(7001)));
        assert_eq!(SlotOwners::merge(&[]).owner(0), None);
    }
}
