//! The local room index of one namespace: rooms to members and sockets to rooms (Node's
//! in-memory adapter state), and the target computation for broadcasts.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A socket id.
pub type Sid = Arc<str>;
/// A room name.
pub type Room = Arc<str>;

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

/// Rooms ↔ sockets.
#[derive(Debug, Default)]
pub struct RoomIndex {
    rooms: HashMap<Room, SidSet>,
    sids: HashMap<Sid, HashSet<Room>, SidHash>,
}

impl RoomIndex {
    /// Adds `sid` to `rooms`; returns the rooms this created.
    pub fn add_all(&mut self, sid: &Sid, rooms: impl IntoIterator<Item = Room>) -> Vec<Room> {
        let mut created = Vec::new();
        let joined = self.sids.entry(sid.clone()).or_default();
        for room in rooms {
            joined.insert(room.clone());
            let members = self.rooms.entry(room.clone()).or_insert_with(|| {
                created.push(room);
                SidSet::default()
            });
            members.insert(sid.clone());
        }
        created
    }

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
    pub fn members(&self, room: &str) -> Option<&SidSet> {
        self.rooms.get(room)
    }

    /// All rooms.
    pub fn all_rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms.keys()
    }

    /// Calls `f` once for each socket targeted by a broadcast to `rooms` (all sockets when empty)
    /// minus the members of `except` (Node's `apply`).
    pub fn for_each_target(&self, rooms: &[Room], except: &[Room], mut f: impl FnMut(&Sid)) {
        let excluded = |sid: &Sid| {
            except
                .iter()
                .any(|r| self.rooms.get(r).is_some_and(|m| m.contains(sid)))
        };
        if rooms.is_empty() {
            for sid in self.sids.keys() {
                if !excluded(sid) {
                    f(sid);
                }
            }
            return;
        }
        if rooms.len() == 1 {
            if let Some(members) = self.rooms.get(&rooms[0]) {
                for sid in members {
                    if !excluded(sid) {
                        f(sid);
                    }
                }
            }
            return;
        }
        let mut seen = SidSet::default();
        for room in rooms {
            let Some(members) = self.rooms.get(room) else { continue };
            for sid in members {
                if !excluded(sid) && seen.insert(sid.clone()) {
                    f(sid);
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

    fn targets(idx: &RoomIndex, rooms: &[&str], except: &[&str]) -> Vec<String> {
        let rooms: Vec<Room> = rooms.iter().map(|r| s(r)).collect();
        let except: Vec<Room> = except.iter().map(|r| s(r)).collect();
        let mut out = Vec::new();
        idx.for_each_target(&rooms, &except, |sid| out.push(sid.to_string()));
        out.sort();
        out
    }

    #[test]
    fn union_minus_except() {
        let mut idx = RoomIndex::default();
        idx.add_all(&s("a"), [s("a"), s("r1")]);
        idx.add_all(&s("b"), [s("b"), s("r1"), s("r2")]);
        idx.add_all(&s("c"), [s("c"), s("r2")]);
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
}
