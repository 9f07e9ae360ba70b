//! `sio-bench`: the load generator behind `scripts/bench`. Scenarios `connect`, `fanout`,
//! `echo` and `storm` against any server speaking the bench contract (`join` / `message` / `echo`); one JSON
//! result line on stdout per run, progress on stderr.

mod connect;
mod echo;
mod fanout;
mod polling;
mod proto;
mod stats;
mod storm;
mod ws;

use stats::Opts;

const USAGE: &str = "usage: sio-bench <connect|fanout|echo|storm> [--key value ...]

common:  --servers 127.0.0.1:3000[,host:port...]  clients are spread round-robin
         --proto sio|msgpack|raw   --label NAME   --pids PID[,PID...] (server processes to sample)
         --source-ips 127.0.0.2-127.0.0.9 (spread client sockets over local addresses)
         --threads N (client runtime worker threads, default 2)
connect: --clients N --rate PER_S --hold SECS --processes P
fanout:  --receivers R --senders S --warmup SECS --duration SECS
         --rate DELIVERIES_PER_S (open loop; 0 = closed loop) --window MESSAGES_IN_FLIGHT
         --transport websocket|polling (receivers; senders stay on WebSocket)
echo:    --clients C --duration SECS
storm:   --clients N --concurrency C (clients between handshake and join at once) --rooms R";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(scenario) = args.get(1).cloned() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let rest = args.get(2..).unwrap_or_default();
    let result = Opts::parse(rest).and_then(|opts| {
        let threads: usize = opts.num("threads", 2)?;
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
            _ => Err(format!("unknown scenario {scenario:?}\n{USAGE}")),
        }
    });
    if let Err(e) = result {
        eprintln!("sio-bench: {e}");
        std::process::exit(1);
    }
}
