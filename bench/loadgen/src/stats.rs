//! Measurement helpers: latency histograms, server processes read from `/proc`, and the
//! command-line options every scenario shares.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// A latency histogram in microseconds (1 µs .. 10 min, 2 significant digits: ~10 KiB each).
pub fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid histogram bounds")
}

/// Adds `from` into `into`, saturating rather than failing.
pub fn merge(into: &mut Histogram<u32>, from: &Histogram<u32>) {
    for v in from.iter_recorded() {
        let _ = into.record_n(v.value_iterated_to(), v.count_at_value());
    }
}

/// p50/p99/p999/max of `h` as JSON fields with the given prefix (values in µs).
pub fn percentiles(out: &mut Map<String, Value>, prefix: &str, h: &Histogram<u32>) {
    let q = |q: f64| {
        if h.is_empty() {
            Value::Null
        } else {
            json!(h.value_at_quantile(q))
        }
    };
    out.insert(format!("{prefix}_p50_us"), q(0.5));
    out.insert(format!("{prefix}_p99_us"), q(0.99));
    out.insert(format!("{prefix}_p999_us"), q(0.999));
    out.insert(
        format!("{prefix}_max_us"),
        if h.is_empty() { Value::Null } else { json!(h.max()) },
    );
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Summed RSS (KiB) and CPU seconds of the server processes.
pub fn sample(pids: &[u32]) -> (u64, f64) {
    pids.iter().fold((0, 0.0), |(r, c), &p| {
        (r + rss_kib(p).unwrap_or(0), c + cpu_seconds(p).unwrap_or(0.0))
    })
}

/// The options shared by the scenarios, parsed from `--key value` pairs.
pub struct Opts {
    map: HashMap<String, String>,
}

impl Opts {
    /// Parses `--key value` pairs; anything else is an error naming it.
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let key = a.strip_prefix("--").ok_or(format!("unexpected argument {a:?}"))?;
            let value = it.next().ok_or(format!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Opts { map })
    }

    /// A raw option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A parsed option with a default.
    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: {v:?} is not a valid number")),
        }
    }

    /// `--servers host:port,...` (default 127.0.0.1:3000).
    pub fn servers(&self) -> Result<Vec<SocketAddr>, String> {
        self.get("servers")
            .unwrap_or("127.0.0.1:3000")
            .split(',')
            .map(|s| s.parse().map_err(|_| format!("--servers: {s:?} is not host:port")))
            .collect()
    }

    /// `--pids 1,2,...`: the server processes to sample (may be empty).
    pub fn pids(&self) -> Result<Vec<u32>, String> {
        match self.get("pids") {
            None | Some("") => Ok(vec![]),
            Some(list) => list
                .split(',')
                .map(|p| p.parse().map_err(|_| format!("--pids: {p:?} is not a pid")))
                .collect(),
        }
    }

    /// `--source-ips 127.0.0.2-127.0.0.9`: local addresses to spread client sockets over.
    pub fn source_ips(&self) -> Result<Vec<IpAddr>, String> {
        let Some(spec) = self.get("source-ips") else {
            return Ok(vec![]);
        };
        let bad = || format!("--source-ips: expected a.b.c.X-a.b.c.Y, got {spec:?}");
        let (from, to) = spec.split_once('-').unwrap_or((spec, spec));
        let (from, to): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
            (from.parse().map_err(|_| bad())?, to.parse().map_err(|_| bad())?);
        let (a, b) = (u32::from(from), u32::from(to));
        if b < a {
            return Err(bad());
        }
        Ok((a..=b).map(|n| IpAddr::from(std::net::Ipv4Addr::from(n))).collect())
    }

    /// The fields every result line starts with.
    pub fn header(&self, scenario: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("scenario".into(), json!(scenario));
        m.insert("server".into(), json!(self.get("label").unwrap_or("unnamed")));
        m.insert(
            "instances".into(),
            json!(self.get("servers").map_or(1, |s| s.split(',').count())),
        );
        m
    }
}
