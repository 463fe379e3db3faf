//! The hosts in a TCP ring: each sends to the next rank and receives from the previous one.
//! A sum is a ring reduce-scatter then a ring all-gather (every host sends about twice its
//! buffer, whatever the number of hosts); a gather passes each host's bytes around.
//!
//! Joining: every host listens, connects to its successor (resolving its name until the
//! startup deadline: hosts come up at different times) and accepts its predecessor. Both
//! sides of a connection introduce themselves (magic, protocol version, job name, world size,
//! rank, fingerprint of build and configuration): a host of another job is turned away, one of
//! this job with another build or configuration fails the job. After that, every read and
//! write has the exchange timeout; a host that dies closes its sockets and its neighbours
//! fail at once, a host that hangs makes them fail at the timeout, and the failure travels
//! around the ring as each host exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{ClusterError, Collective, Hosts, Settings};

const MAGIC: [u8; 4] = *b"SGSR";
const VERSION: u32 = 1;

pub struct Ring {
    rank: usize,
    hosts: Vec<String>,
    timeout: Duration,
    /// `(to next, from previous)`; one exchange at a time.
    links: Mutex<(TcpStream, TcpStream)>,
    sent: AtomicU64,
}

/// What a host says of itself when it connects.
#[derive(Debug, Clone, PartialEq)]
struct Hello {
    job: String,
    world: u32,
    rank: u32,
    fingerprint: [u8; 32],
}

impl Hello {
    fn encode(&self, refusal: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.world.to_le_bytes());
        out.extend_from_slice(&self.rank.to_le_bytes());
        out.extend_from_slice(&self.fingerprint);
        for text in [self.job.as_str(), refusal.unwrap_or("")] {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// Read a hello; `Err` explains what arrived instead. The refusal text, if any, second.
    fn read(stream: &mut TcpStream) -> Result<(Hello, String), String> {
        let mut head = [0u8; 4 + 4 + 4 + 4 + 32];
        stream.read_exact(&mut head).map_err(|e| format!("no introduction ({e})"))?;
        if head[..4] != MAGIC {
            return Err("not a sagestep host (wrong magic bytes)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        if u32_at(4) != VERSION {
            return Err(format!("protocol version {}, this host speaks {VERSION}", u32_at(4)));
        }
        let mut text = || -> Result<String, String> {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).map_err(|e| e.to_string())?;
            let len = u32::from_le_bytes(len) as usize;
            if len > 4096 {
                return Err(format!("a {len}-byte name"));
            }
            let mut bytes = vec![0u8; len];
            stream.read_exact(&mut bytes).map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|_| "a name that is not UTF-8".to_string())
        };
        let job = text()?;
        let refusal = text()?;
        let hello =
            Hello { job, world: u32_at(8), rank: u32_at(12), fingerprint: head[16..48].try_into().expect("32 bytes") };
        Ok((hello, refusal))
    }

    /// Why `other`, claiming to be host `expected_rank` of our job, cannot be part of it.
    fn mismatch(&self, other: &Hello, expected_rank: usize) -> Option<String> {
        if other.world != self.world {
            Some(format!("it counts {} hosts, this host {}", other.world, self.world))
        } else if other.rank as usize != expected_rank {
            Some(format!("it is rank {}, rank {expected_rank} was expected", other.rank))
        } else if other.fingerprint != self.fingerprint {
            Some("it runs another build or configuration (fingerprints differ)".into())
        } else {
            None
        }
    }
}

fn set_timeouts(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

impl Ring {
    pub fn connect(hosts: &Hosts, job: &str, fingerprint: [u8; 32], settings: &Settings) -> Result<Self, ClusterError> {
        let (rank, world) = (hosts.rank(), hosts.world());
        let me = Hello { job: job.to_string(), world: world as u32, rank: rank as u32, fingerprint };
        let listen = settings.addresses.get(&hosts.current).map_or_else(
            || SocketAddr::from(([0, 0, 0, 0], settings.port)),
            |a| SocketAddr::from(([0, 0, 0, 0], a.port())),
        );
        let listener =
            TcpListener::bind(listen).map_err(|source| ClusterError::Listen { addr: listen.to_string(), source })?;
        let deadline = Instant::now() + settings.startup;
        let next = (rank + 1) % world;
        let prev = (rank + world - 1) % world;
        let (to_next, from_prev) = std::thread::scope(|s| {
            let out = s.spawn(|| connect_next(&hosts.hosts[next], next, &me, settings, deadline));
            let inbound = accept_prev(&listener, &hosts.hosts[prev], prev, &me, settings, deadline);
            (out.join().expect("the connecting thread does not panic"), inbound)
        });
        let (to_next, from_prev) = (to_next?, from_prev?);
        for s in [&to_next, &from_prev] {
            set_timeouts(s, settings.timeout).map_err(|source| ClusterError::Lost {
                host: hosts.current.clone(),
                operation: "setup",
                source,
            })?;
        }
        tracing::info!(rank, world, next = %hosts.hosts[next], previous = %hosts.hosts[prev], "joined the hosts of the job");
        Ok(Self {
            rank,
            hosts: hosts.hosts.clone(),
            timeout: settings.timeout,
            links: Mutex::new((to_next, from_prev)),
            sent: AtomicU64::new(0),
        })
    }

    fn next(&self) -> &str {
        &self.hosts[(self.rank + 1) % self.hosts.len()]
    }

    fn prev(&self) -> &str {
        &self.hosts[(self.rank + self.hosts.len() - 1) % self.hosts.len()]
    }

    fn io_error(&self, host: &str, operation: &'static str, e: std::io::Error) -> ClusterError {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ClusterError::Timeout { host: host.to_string(), operation, timeout: self.timeout }
            }
            _ => ClusterError::Lost { host: host.to_string(), operation, source: e },
        }
    }

    /// Send `out` to the next host while receiving the previous host's message.
    fn exchange(
        &self,
        links: &mut (TcpStream, TcpStream),
        out: &[u8],
        operation: &'static str,
    ) -> Result<Vec<u8>, ClusterError> {
        let (to_next, from_prev) = (&mut links.0, &mut links.1);
        let (sent, received) = std::thread::scope(|s| {
            let sender = s.spawn(|| -> std::io::Result<()> {
                to_next.write_all(&(out.len() as u64).to_le_bytes())?;
                to_next.write_all(out)?;
                to_next.flush()
            });
            let received = (|| -> std::io::Result<Result<Vec<u8>, String>> {
                let mut len = [0u8; 8];
                from_prev.read_exact(&mut len)?;
                let len = u64::from_le_bytes(len);
                // A peer's length is checked before it sizes anything.
                if len > (1 << 40) {
                    return Ok(Err(format!("a {len}-byte message")));
                }
                let mut data = vec![0u8; len as usize];
                from_prev.read_exact(&mut data)?;
                Ok(Ok(data))
            })();
            (sender.join().expect("the sending thread does not panic"), received)
        });
        sent.map_err(|e| self.io_error(self.next(), operation, e))?;
        self.sent.fetch_add(out.len() as u64 + 8, Ordering::Relaxed);
        received.map_err(|e| self.io_error(self.prev(), operation, e))?.map_err(|problem| ClusterError::Protocol {
            host: self.prev().to_string(),
            operation,
            problem,
        })
    }
}

/// Resolve and connect to the next host, retrying until the deadline; introduce ourselves
/// and check its answer.
fn connect_next(
    host: &str,
    rank: usize,
    me: &Hello,
    settings: &Settings,
    deadline: Instant,
) -> Result<TcpStream, ClusterError> {
    let started = Instant::now();
    let mut last_problem = String::new();
    loop {
        let addr = match settings.addresses.get(host) {
            Some(a) => Some(*a),
            None => match (host, settings.port).to_socket_addrs() {
                Ok(mut addrs) => addrs.next(),
                Err(e) => {
                    last_problem = e.to_string();
                    None
                }
            },
        };
        if let Some(addr) = addr {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            match TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(5))) {
                Ok(mut stream) => {
                    set_timeouts(&stream, Duration::from_secs(30)).ok();
                    let introduce = stream.write_all(&me.encode(None)).and_then(|()| stream.flush());
                    if let Err(e) = introduce {
                        last_problem = e.to_string();
                    } else {
                        match Hello::read(&mut stream) {
                            Ok((_, refusal)) if !refusal.is_empty() => {
                                return Err(ClusterError::Handshake { host: host.to_string(), problem: refusal });
                            }
                            Ok((hello, _)) => {
                                if hello.job != me.job {
                                    return Err(ClusterError::Handshake {
                                        host: host.to_string(),
                                        problem: format!("it runs job `{}`, this host `{}`", hello.job, me.job),
                                    });
                                }
                                if let Some(problem) = me.mismatch(&hello, rank) {
                                    return Err(ClusterError::Handshake { host: host.to_string(), problem });
                                }
                                return Ok(stream);
                            }
                            Err(problem) => last_problem = problem,
                        }
                    }
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::Connect {
                        host: host.to_string(),
                        addr: addr.to_string(),
                        waited: started.elapsed(),
                        source: e,
                    });
                }
                Err(e) => last_problem = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Resolve {
                host: host.to_string(),
                waited: started.elapsed(),
                problem: last_problem,
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Accept the previous host; connections from other jobs are turned away and waited past,
/// one of this job that does not fit fails the job.
fn accept_prev(
    listener: &TcpListener,
    host: &str,
    rank: usize,
    me: &Hello,
    settings: &Settings,
    deadline: Instant,
) -> Result<TcpStream, ClusterError> {
    let started = Instant::now();
    listener
        .set_nonblocking(true)
        .map_err(|source| ClusterError::Listen { addr: format!("port {}", settings.port), source })?;
    loop {
        match listener.accept() {
            Ok((mut stream, from)) => {
                stream.set_nonblocking(false).ok();
                set_timeouts(&stream, Duration::from_secs(30)).ok();
                match Hello::read(&mut stream) {
                    Err(problem) => tracing::warn!(%from, "turned away a connection: {problem}"),
                    Ok((hello, _)) if hello.job != me.job => {
                        let why = format!("this host runs job `{}`, not `{}`", me.job, hello.job);
                        let _ = stream.write_all(&me.encode(Some(&why)));
                        tracing::warn!(%from, "turned away a host of another job (`{}`)", hello.job);
                    }
                    Ok((hello, _)) => {
                        if let Some(problem) = me.mismatch(&hello, rank) {
                            let _ = stream.write_all(&me.encode(Some(&problem)));
                            return Err(ClusterError::Handshake { host: host.to_string(), problem });
                        }
                        stream.write_all(&me.encode(None)).and_then(|()| stream.flush()).map_err(|source| {
                            ClusterError::Lost { host: host.to_string(), operation: "setup", source }
                        })?;
                        return Ok(stream);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(ClusterError::NoPeer { host: host.to_string(), waited: started.elapsed() });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => return Err(ClusterError::Listen { addr: format!("port {}", settings.port), source }),
        }
    }
}

/// Segment `k` of `n` nearly equal parts of `len` items.
fn segment(len: usize, n: usize, k: usize) -> std::ops::Range<usize> {
    let base = len / n;
    let extra = len % n;
    let start = k * base + k.min(extra);
    start..start + base + usize::from(k < extra)
}

fn to_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Collective for Ring {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.hosts.len()
    }

    fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn allreduce_sum(&self, values: &mut [i64]) -> Result<(), ClusterError> {
        let n = self.hosts.len();
        let mut links = self.links.lock().expect("no exchange panics while holding the links");
        let operation = "a sum";
        let check = |got: &[u8], want: usize| -> Result<(), ClusterError> {
            if got.len() == want * 8 {
                Ok(())
            } else {
                Err(ClusterError::Protocol {
                    host: self.prev().to_string(),
                    operation,
                    problem: format!("{} bytes where {} were due", got.len(), want * 8),
                })
            }
        };
        // Reduce-scatter: after n - 1 steps, segment (rank + 1) % n holds the full sum.
        for step in 0..n - 1 {
            let send = segment(values.len(), n, (self.rank + n - step) % n);
            let recv = segment(values.len(), n, (self.rank + 2 * n - step - 1) % n);
            let got = self.exchange(&mut links, &to_bytes(&values[send]), operation)?;
            check(&got, recv.len())?;
            for (v, chunk) in values[recv].iter_mut().zip(got.chunks_exact(8)) {
                *v = v.wrapping_add(i64::from_le_bytes(chunk.try_into().expect("8 bytes")));
            }
        }
        // All-gather the summed segments.
        for step in 0..n - 1 {
            let send = segment(values.len(), n, (self.rank + 1 + n - step) % n);
            let recv = segment(values.len(), n, (self.rank + n - step) % n);
            let got = self.exchange(&mut links, &to_bytes(&values[send]), operation)?;
            check(&got, recv.len())?;
            for (v, chunk) in values[recv].iter_mut().zip(got.chunks_exact(8)) {
                *v = i64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            }
        }
        Ok(())
    }

    fn allgather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>, ClusterError> {
        let n = self.hosts.len();
        let mut links = self.links.lock().expect("no exchange panics while holding the links");
        let mut all = vec![Vec::new(); n];
        all[self.rank] = mine.to_vec();
        // Step s: pass on the item of rank (rank - s), receive that of rank (rank - s - 1).
        for step in 0..n - 1 {
            let send = (self.rank + n - step) % n;
            let recv = (self.rank + 2 * n - step - 1) % n;
            let got = self.exchange(&mut links, &all[send], "a gather")?;
            all[recv] = got;
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_buffer() {
        for (len, n) in [(10, 3), (2, 4), (0, 2), (7, 7)] {
            let total: usize = (0..n).map(|k| segment(len, n, k).len()).sum();
            assert_eq!(total, len);
            assert_eq!(segment(len, n, n - 1).end, len);
        }
    }

    /// Hosts on loopback: sums and gathers agree with the world of one, on every host.
    #[test]
    fn hosts_on_loopback_sum_and_gather() {
        for world in [2usize, 3, 4] {
            let hosts: Vec<String> = (1..=world).map(|i| format!("algo-{i}")).collect();
            let addresses = hosts
                .iter()
                .map(|h| {
                    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                    (h.clone(), SocketAddr::from(([127, 0, 0, 1], port)))
                })
                .collect();
            let settings =
                Settings { port: 0, addresses, startup: Duration::from_secs(20), timeout: Duration::from_secs(20) };
            let results: Vec<(Vec<i64>, Vec<Vec<u8>>)> = std::thread::scope(|s| {
                let handles: Vec<_> = hosts
                    .iter()
                    .map(|current| {
                        let h = Hosts { hosts: hosts.clone(), current: current.clone() };
                        let settings = settings.clone();
                        s.spawn(move || {
                            let ring = Ring::connect(&h, "job", [7; 32], &settings).unwrap();
                            let r = ring.rank() as i64;
                            let mut values: Vec<i64> = (0..11).map(|i| i * 10 + r).collect();
                            ring.allreduce_sum(&mut values).unwrap();
                            let gathered = ring.allgather(format!("rank {r}").as_bytes()).unwrap();
                            (values, gathered)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let n = world as i64;
            let expected: Vec<i64> = (0..11).map(|i| i * 10 * n + n * (n - 1) / 2).collect();
            for (values, gathered) in &results {
                assert_eq!(values, &expected, "world {world}");
                let names: Vec<String> = gathered.iter().map(|g| String::from_utf8_lossy(g).into_owned()).collect();
                assert_eq!(names, (0..world).map(|r| format!("rank {r}")).collect::<Vec<_>>());
            }
        }
    }
}
