//! The UI's commands, across the cluster: `emit(nsp, filter, ev, ...args)`,
//! `join(nsp, room, filter?)`, `leave(nsp, room, filter?)` and `_disconnect(nsp, close, filter?)`,
//! where `filter` is a socket id or a room. Malformed commands are logged and dropped; commands
//! for a namespace that does not exist are dropped (the UI cannot create namespaces).

use crate::server::{BroadcastOperator, Event, Server, Socket};
use serde_json::Value;

/// Registers the command handlers on an admin socket.
pub(super) fn register(io: &Server, socket: &Socket) {
    let on = |name: &'static str, run: fn(&Server, &Event) -> Result<(), String>| {
        let io = io.clone();
        socket.on(name, move |s, ev, _ack| {
            if let Err(e) = run(&io, &ev) {
                tracing::info!(sid = %s.id(), command = name, error = %e, "admin command dropped");
            }
        });
    };
    on("emit", emit);
    on("join", join);
    on("leave", leave);
    on("_disconnect", disconnect);
}

fn string_arg<'a>(ev: &'a Event, i: usize, what: &str) -> Result<&'a str, String> {
    ev.args
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("argument {i} ({what}) must be a string"))
}

/// An optional filter: absent, null or "" mean every socket.
fn filter_arg(ev: &Event, i: usize) -> Result<Option<&str>, String> {
    match ev.args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("argument {i} (filter) must be a string")),
    }
}

/// The operator over `nsp` (which must exist), narrowed to `filter`.
fn target(io: &Server, nsp: &str, filter: Option<&str>) -> Result<BroadcastOperator, String> {
    let nsp = io
        .namespaces()
        .into_iter()
        .find(|n| n.name() == nsp)
        .ok_or_else(|| format!("no namespace {nsp:?}"))?;
    Ok(match filter {
        Some(f) => nsp.to(f),
        None => nsp.broadcast(),
    })
}

fn emit(io: &Server, ev: &Event) -> Result<(), String> {
    let nsp = string_arg(ev, 0, "namespace")?;
    let filter = filter_arg(ev, 1)?;
    let event = string_arg(ev, 2, "event name")?;
    let args = ev.args.get(3..).unwrap_or(&[]).to_vec();
    target(io, nsp, filter)?
        .emit_args(event, args, ev.binary.clone())
        .map_err(|e| e.to_string())
}

fn join(io: &Server, ev: &Event) -> Result<(), String> {
    let nsp = string_arg(ev, 0, "namespace")?;
    let room = string_arg(ev, 1, "room")?;
    target(io, nsp, filter_arg(ev, 2)?)?.sockets_join(&[room]);
    Ok(())
}

fn leave(io: &Server, ev: &Event) -> Result<(), String> {
    let nsp = string_arg(ev, 0, "namespace")?;
    let room = string_arg(ev, 1, "room")?;
    target(io, nsp, filter_arg(ev, 2)?)?.sockets_leave(&[room]);
    Ok(())
}

fn disconnect(io: &Server, ev: &Event) -> Result<(), String> {
    let nsp = string_arg(ev, 0, "namespace")?;
    let close = match ev.args.get(1) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("argument 1 (close) must be a boolean".into()),
    };
    target(io, nsp, filter_arg(ev, 2)?)?.disconnect_sockets(close);
    Ok(())
}
