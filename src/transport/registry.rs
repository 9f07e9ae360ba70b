//! The live sessions of one Engine.IO endpoint, by sid, with a handle to each driver.

use super::conn::transport_from_u8;
use super::driver::Cmd;
use crate::engineio::TransportKind;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// How HTTP handlers reach a session's driver.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) cmds: super::mailbox::MailSender<Cmd>,
    pub(crate) outbox: Arc<super::outbox::Outbox>,
    pub(crate) transport: Arc<AtomicU8>,
}

impl Handle {
    pub(crate) fn transport(&self) -> TransportKind {
        transport_from_u8(self.transport.load(Ordering::Relaxed))
    }
}

/// Sessions by sid.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: RwLock<HashMap<Arc<str>, Handle>>,
}

impl Registry {
    pub(crate) fn insert(&self, sid: Arc<str>, handle: Handle) {
        self.sessions.write().insert(sid, handle);
    }

    pub(crate) fn get(&self, sid: &str) -> Option<Handle> {
        let map = self.sessions.read();
        map.get(sid).filter(|h| !h.cmds.is_closed()).cloned()
    }

    pub(crate) fn remove(&self, sid: &str) {
        self.sessions.write().remove(sid);
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.read().len()
    }

    pub(crate) fn handles(&self) -> Vec<Handle> {
        self.sessions.read().values().cloned().collect()
    }
}
