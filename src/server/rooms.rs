//! The local room index of one namespace: rooms to members and sockets to rooms (Node's
//! in-memory adapter state), and the target computation for broadcasts.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A socket id.
pub type Sid = Arc<str>;
pub use crate::adapter::types::Room;

/// A multiply-rotate hasher for socket ids. Sids are server-generated random strings, so no client
/// can choose colliding keys, and a broadcast hashes one per member: SipHash's DoS resistance
/// buys nothing here and cost ~5% of a fan-out's CPU. Room names (client-chosen) keep SipHash.
#[derive(Clone, Copy, Debug, Default)]
pub struct SidHasher(u64);

impl Hasher for SidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`SidHasher`]s.
pub type SidHash = BuildHasherDefault<SidHasher>;
/// A set of socket ids.
pub type SidSet = HashSet<Sid, SidHash>;

/// The members of one room: a dense array that broadcasts walk (no hashing, one entry after the
/// other) and each member's position, to remove it in O(1).
#[derive(Debug)]
pub struct Members<M> {
    list: Vec<(Sid, M)>,
    pos: HashMap<Sid, usize, SidHash>,
}

impl<M> Members<M> {
    fn new() -> Members<M> {
        Members {
            list: Vec::with_capacity(1),
            pos: HashMap::with_capacity_and_hasher(1, SidHash::default()),
        }
    }

    fn insert(&mut self, sid: &Sid, member: M) {
        if !self.pos.contains_key(sid) {
            self.pos.insert(sid.clone(), self.list.len());
            self.list.push((sid.clone(), member));
        }
    }

    fn remove(&mut self, sid: &str) {
        let Some(at) = self.pos.remove(sid) else { return };
        self.list.swap_remove(at);
        if let Some((moved, _)) = self.list.get(at) {
            self.pos.insert(moved.clone(), at);
        }
    }

    /// Whether `sid` is a member.
    pub fn contains(&self, sid: &str) -> bool {
        self.pos.contains_key(sid)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The members, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &(Sid, M)> {
        self.list.iter()
    }
}

/// Rooms ↔ sockets; each room membership carries `M` (what a broadcast needs of the member).
#[derive(Debug)]
pub struct RoomIndex<M = ()> {
    rooms: HashMap<Room, Members<M>>,
    sids: HashMap<Sid, HashSet<Room>, SidHash>,
}

impl<M> Default for RoomIndex<M> {
    fn default() -> Self {
        RoomIndex {
            rooms: HashMap::new(),
            sids: HashMap::default(),
        }
    }
}

impl<M: Clone> RoomIndex<M> {
    /// Adds `sid` (carrying `member`) to `rooms`; returns the rooms this created.
    pub fn add_all(&mut self, sid: &Sid, member: &M, rooms: impl IntoIterator<Item = Room>) -> Vec<Room> {
        let mut created = Vec::new();
        let joined = self.sids.entry(sid.clone()).or_default();
        for room in rooms {
            joined.insert(room.clone());
            let members = self.rooms.entry(room.clone()).or_insert_with(|| {
                created.push(room);
                Members::new()
            });
            members.insert(sid, member.clone());
        }
        created
    }
}

impl<M> RoomIndex<M> {
    /// Removes `sid` from `room`; returns the room if that deleted it.
    pub fn del(&mut self, sid: &Sid, room: &str) -> Option<Room> {
        if let Some(joined) = self.sids.get_mut(sid) {
            joined.remove(room);
        }
        let members = self.rooms.get_mut(room)?;
        members.remove(sid);
        if members.is_empty() {
            return self.rooms.remove_entry(room).map(|(r, _)| r);
        }
        None
    }

    /// Removes `sid` from every room; returns the rooms that deleted.
    pub fn del_all(&mut self, sid: &Sid) -> Vec<Room> {
        let mut deleted = Vec::new();
        let Some(joined) = self.sids.remove(sid) else {
            return deleted;
        };
        for room in joined {
            if let Some(members) = self.rooms.get_mut(&room) {
                members.remove(sid);
                if members.is_empty() {
                    self.rooms.remove(&room);
                    deleted.push(room);
                }
            }
        }
        deleted
    }

    /// Whether `room` has members here.
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Whether `id` is a socket id (its own room) rather than a named room.
    pub fn is_socket(&self, id: &str) -> bool {
        self.sids.contains_key(id)
    }

    /// The rooms of `sid`.
    pub fn rooms_of(&self, sid: &str) -> Option<&HashSet<Room>> {
        self.sids.get(sid)
    }

    /// Members of `room`.
    pub fn members(&self, room: &str) -> Option<&Members<M>> {
        self.rooms.get(room)
    }

    /// All rooms.
    pub fn all_rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms.keys()
    }

    /// What `sid` carries, found in its own room (or, if it left that, in any of its rooms).
    fn payload(&self, sid: &Sid, joined: &HashSet<Room>) -> Option<&M> {
        let at = |room: &str| {
            let members = self.rooms.get(room)?;
            members.pos.get(sid).map(|&i| &members.list[i].1)
        };
        at(sid).or_else(|| joined.iter().find_map(|r| at(r)))
    }

    /// Calls `f` once for each socket targeted by a broadcast to `rooms` (all sockets when empty)
    /// minus the members of `except` (Node's `apply`).
    pub fn for_each_target(&self, rooms: &[Room], except: &[Room], mut f: impl FnMut(&Sid, &M)) {
        let except: Vec<&Members<M>> = except.iter().filter_map(|r| self.rooms.get(r)).collect();
        let excluded = |sid: &Sid| except.iter().any(|m| m.contains(sid));
        if rooms.is_empty() {
            for (sid, joined) in &self.sids {
                if let Some(m) = self.payload(sid, joined)
                    && !excluded(sid)
                {
                    f(sid, m);
                }
            }
            return;
        }
        if rooms.len() == 1 {
            if let Some(members) = self.rooms.get(&rooms[0]) {
                for (sid, m) in &members.list {
                    if !excluded(sid) {
                        f(sid, m);
                    }
                }
            }
            return;
        }
        let mut seen = SidSet::default();
        for room in rooms {
            let Some(members) = self.rooms.get(room) else { continue };
            for (sid, m) in &members.list {
                if !excluded(sid) && seen.insert(sid.clone()) {
                    f(sid, m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Arc<str> {
        Arc::from(x)
    }

    fn targets(idx: &RoomIndex<()>, rooms: &[&str], except: &[&str]) -> Vec<String> {
        let rooms: Vec<Room> = rooms.iter().map(|r| s(r)).collect();
        let except: Vec<Room> = except.iter().map(|r| s(r)).collect();
        let mut out = Vec::new();
        idx.for_each_target(&rooms, &except, |sid, _| out.push(sid.to_string()));
        out.sort();
        out
    }

    #[test]
    fn union_minus_except() {
        let mut idx = RoomIndex::default();
        idx.add_all(&s("a"), &(), [s("a"), s("r1")]);
        idx.add_all(&s("b"), &(), [s("b"), s("r1"), s("r2")]);
        idx.add_all(&s("c"), &(), [s("c"), s("r2")]);
        assert_eq!(targets(&idx, &["r1", "r2"], &[]), ["a", "b", "c"]);
        assert_eq!(targets(&idx, &["r1", "r2"], &["b"]), ["a", "c"]);
        assert_eq!(targets(&idx, &[], &["r2"]), ["a"]);
        assert_eq!(targets(&idx, &["r1"], &["nope"]), ["a", "b"]);
        idx.del(&s("b"), "r1");
        assert_eq!(targets(&idx, &["r1"], &[]), ["a"]);
        idx.del_all(&s("a"));
        assert!(idx.members("r1").is_none(), "empty rooms are deleted");
        assert!(idx.rooms_of("a").is_none());
    }

    #[test]
    fn member_arrays_stay_consistent_and_carry_their_payload() {
        let mut idx: RoomIndex<u32> = RoomIndex::default();
        for i in 0..5 {
            idx.add_all(&s(&format!("s{i}")), &i, [s(&format!("s{i}")), s("r")]);
        }
        // Removing from the middle and the end moves the last member into the gap.
        idx.del(&s("s1"), "r");
        idx.del(&s("s4"), "r");
        idx.add_all(&s("s0"), &0, [s("r")]); // joining twice is a no-op
        let collect = |idx: &RoomIndex<u32>, rooms: &[Room]| {
            let mut got = Vec::new();
            idx.for_each_target(rooms, &[], |sid, m| got.push((sid.to_string(), *m)));
            got.sort();
            got
        };
        let pairs = |v: &[(&str, u32)]| v.iter().map(|(a, b)| (a.to_string(), *b)).collect::<Vec<_>>();
        assert_eq!(collect(&idx, &[s("r")]), pairs(&[("s0", 0), ("s2", 2), ("s3", 3)]));
        assert_eq!(idx.members("r").map(|m| m.len()), Some(3));
        assert!(idx.members("r").is_some_and(|m| m.contains("s3") && !m.contains("s4")));
        // A socket that left its own room is still reached by a broadcast to everyone.
        idx.del(&s("s2"), "s2");
        assert_eq!(
            collect(&idx, &[]),
            pairs(&[("s0", 0), ("s1", 1), ("s2", 2), ("s3", 3), ("s4", 4)])
        );
    }
}
