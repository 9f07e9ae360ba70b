//! `sio-bench`: the load generator behind `scripts/bench`. Scenarios `connect`, `fanout`,
//! `echo` and `storm` against any server speaking the bench contract (`join` / `message` / `echo`); one JSON
//! result line on stdout per run, progress on stderr.

mod connect;
mod echo;
mod fanout;
mod polling;
mod proto;
mod restorm;
mod sioclient;
mod stats;
mod storm;
mod ws;

use stats::Opts;

const USAGE: &str = "usage: sio-bench <connect|fanout|echo|storm> [--key value ...]

common:  --servers 127.0.0.1:3000[,host:port...]  clients are spread round-robin
         --proto sio|msgpack|raw   --label NAME   --pids PID[,PID...] (server processes to sample)
         --source-ips 127.0.0.2-127.0.0.9 (spread client sockets over local addresses)
         --threads N (client runtime worker threads, default 2)
         --deflate on|off (offer permessage-deflate, inflate what arrives compressed; default off)
         --message-bytes N (fanout senders send chat lines of N bytes; default a 47-byte line)
connect: --clients N --rate PER_S --hold SECS --processes P
fanout:  --receivers R --senders S --warmup SECS --duration SECS
         --rate DELIVERIES_PER_S (open loop; 0 = closed loop) --window MESSAGES_IN_FLIGHT
         --transport websocket|polling (receivers; senders stay on WebSocket)
echo:    --clients C --duration SECS
storm:   --clients N --concurrency C (clients between handshake and join at once) --rooms R
reconnect-storm: --servers NGINX --clients N --rooms R --concurrency C --kill PID --victim sio-2
         --deadline SECS (after the kill) --settle SECS (before it) --nginx-pid PID (its workers' CPU)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(scenario) = args.get(1).cloned() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let rest = args.get(2..).unwrap_or_default();
    let result = Opts::parse(rest).and_then(|opts| {
        let threads: usize = opts.num("threads", 2)?;
        match opts.get("deflate") {
            None | Some("off") => {}
            Some("on") => ws::offer_deflate(true),
            Some(v) => return Err(format!("--deflate: {v:?} is not on or off")),
        }
        if let Some(n) = opts.get("message-bytes") {
            let n: usize = n
                .parse()
                .map_err(|_| format!("--message-bytes: {n:?} is not a number"))?;
            proto::set_message_bytes(n);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match scenario.as_str() {
            "connect" => connect::run(opts, rest),
            "connect-worker" => rt.block_on(connect::worker(opts)),
            "fanout" => rt.block_on(fanout::run(opts)),
            "echo" => rt.block_on(echo::run(opts)),
            "storm" => rt.block_on(storm::run(opts)),
            "reconnect-storm" => rt.block_on(restorm::run(opts)),
            _ => Err(format!("unknown scenario {scenario:?}\n{USAGE}")),
        }
    });
    if let Err(e) = result {
        eprintln!("sio-bench: {e}");
        std::process::exit(1);
    }
}
