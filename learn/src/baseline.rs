//! Reading events into a [`Baseline`]: who starts what, who writes the config, who talks to whom, who
//! listens, who reads the secrets. Values are kept exactly as the rules evaluator reads them (a field
//! that is empty in the event is absent to a rule, and is counted as unjudged here), so rules proposed from
//! the baseline judge the learned events the way the baseline saw them.

use std::collections::{BTreeMap, BTreeSet};

use auditloop_model::{Event, EventBody, File, FileOp, Net, NetOp, WallTime};
use serde::Serialize;

/// How a baseline is learned and turned into rules.
#[derive(Clone, Debug)]
pub struct Options {
    /// Paths whose writes are config writes: a path equal to an entry or below it (entries ending in `/`
    /// are directories). `/etc/` by default; the agent adds its watched paths.
    pub config_paths: Vec<String>,
    /// Parents that start fewer programs than this in the window get no rule (too little to judge).
    pub min_starts: u64,
    /// Parents that start more distinct programs than this get no rule (too varied to baseline).
    pub max_programs: usize,
    /// Parents (by the basename of their executable) never baselined: interactive shells and the like,
    /// whose children are whatever a person types.
    pub skip_parents: Vec<String>,
    /// The most rules one proposal holds; past it, the least supported subjects are left out (and listed).
    pub max_rules: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config_paths: vec!["/etc/".into()],
            min_starts: 3,
            max_programs: 40,
            skip_parents: [
                "bash", "sh", "dash", "zsh", "ksh", "fish", "busybox", "sudo", "su", "tmux",
                "screen", "login", "xargs", "env", "nohup", "timeout", "nice", "make", "script",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            max_rules: 200,
        }
    }
}

/// How often something was seen in the window, and when first and last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Events.
    pub count: u64,
    /// Time of the first.
    pub first: WallTime,
    /// Time of the last.
    pub last: WallTime,
}

impl Seen {
    fn at(time: WallTime) -> Seen {
        Seen {
            count: 1,
            first: time,
            last: time,
        }
    }

    fn add(&mut self, time: WallTime) {
        self.count += 1;
        self.first = self.first.min(time);
        self.last = self.last.max(time);
    }

    fn merge(&mut self, other: &Seen) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

/// Adds every entry of `from` to `into` (counts summed, first/last widened).
pub(crate) fn merge_seen<K: Ord + Clone>(into: &mut BTreeMap<K, Seen>, from: &BTreeMap<K, Seen>) {
    for (k, s) in from {
        into.entry(k.clone())
            .and_modify(|m| m.merge(s))
            .or_insert(*s);
    }
}

fn bump<K: Ord>(map: &mut BTreeMap<K, Seen>, key: K, time: WallTime) {
    map.entry(key)
        .and_modify(|s| s.add(time))
        .or_insert_with(|| Seen::at(time));
}

/// One subject (a path, a program) and the values seen with it (its writers, its destinations, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Keyed {
    /// All its events.
    pub seen: Option<Seen>,
    /// Each value and how often.
    pub by: BTreeMap<String, Seen>,
    /// Events whose value was absent (an unknown executable): a rule cannot judge them.
    pub unjudged: u64,
}

impl Keyed {
    fn add(&mut self, value: Option<&str>, time: WallTime) {
        match &mut self.seen {
            Some(s) => s.add(time),
            None => self.seen = Some(Seen::at(time)),
        }
        match value {
            Some(v) => bump(&mut self.by, v.to_owned(), time),
            None => self.unjudged += 1,
        }
    }

    fn merge(&mut self, other: &Keyed) {
        match (&mut self.seen, &other.seen) {
            (Some(s), Some(o)) => s.merge(o),
            (None, Some(o)) => self.seen = Some(*o),
            (_, None) => {}
        }
        merge_seen(&mut self.by, &other.by);
        self.unjudged += other.unjudged;
    }
}

/// The programs one parent started, and as which users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParentExecs {
    /// Programs (`exec.filename`) and how often.
    pub programs: Keyed,
    /// Real user ids (`user.uid`) of the started programs.
    pub users: BTreeMap<u32, Seen>,
}

/// What normally happens on a host (or a group of hosts) in a window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Baseline {
    /// Events read.
    pub events: u64,
    /// Time of the earliest and the latest event read.
    pub window: Option<(WallTime, WallTime)>,
    /// Successful execs by parent executable (`proc.pexe`).
    pub execs: BTreeMap<String, ParentExecs>,
    /// Successful execs whose parent's executable was unknown.
    pub execs_unknown_parent: u64,
    /// Successful writes of config paths (`file.path`, or a rename's or link's `file.target`) by writer
    /// executable (`proc.exe`).
    pub config_writes: BTreeMap<String, Keyed>,
    /// Outbound inet connections by program (`proc.exe`), by destination address (`net.address`).
    pub connects: BTreeMap<String, Keyed>,
    /// Destination ports by program (for the record; rules judge addresses).
    pub connect_ports: BTreeMap<String, BTreeSet<u16>>,
    /// Outbound connections whose program was unknown.
    pub connects_unknown_program: u64,
    /// inet listens, by the program (`proc.exe`) that listened.
    pub listens: Keyed,
    /// inet listen ports by program.
    pub listen_ports: BTreeMap<String, Keyed>,
    /// Programs that listened or accepted a connection: the servers.
    pub servers: BTreeSet<String>,
    /// Sensitive reads by path (`file.path`), by reader executable (`proc.exe`).
    pub reads: BTreeMap<String, Keyed>,
    /// Sensitive reads by path, by the reader's real user id (`user.uid`).
    pub read_users: BTreeMap<String, BTreeMap<u32, Seen>>,
}

impl Baseline {
    /// Adds `other` (another host's baseline, for a fleet group) to this one.
    pub fn merge(&mut self, other: &Baseline) {
        self.events += other.events;
        self.window = match (self.window, other.window) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (w, None) | (None, w) => w,
        };
        for (k, p) in &other.execs {
            let mine = self.execs.entry(k.clone()).or_default();
            mine.programs.merge(&p.programs);
            merge_seen(&mut mine.users, &p.users);
        }
        self.execs_unknown_parent += other.execs_unknown_parent;
        merge_map(&mut self.config_writes, &other.config_writes);
        merge_map(&mut self.connects, &other.connects);
        for (k, ports) in &other.connect_ports {
            self.connect_ports
                .entry(k.clone())
                .or_default()
                .extend(ports);
        }
        self.connects_unknown_program += other.connects_unknown_program;
        self.listens.merge(&other.listens);
        merge_map(&mut self.listen_ports, &other.listen_ports);
        self.servers.extend(other.servers.iter().cloned());
        merge_map(&mut self.reads, &other.reads);
        for (path, users) in &other.read_users {
            merge_seen(self.read_users.entry(path.clone()).or_default(), users);
        }
    }
}

fn merge_map(into: &mut BTreeMap<String, Keyed>, from: &BTreeMap<String, Keyed>) {
    for (k, v) in from {
        into.entry(k.clone()).or_default().merge(v);
    }
}

/// Builds a [`Baseline`] from events, one at a time.
#[derive(Debug)]
pub struct Learner {
    options: Options,
    baseline: Baseline,
}

/// A field that is absent to a rule when empty.
fn known(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// File operations that change a path (what a config write is).
pub(crate) const WRITE_OPS: [FileOp; 8] = [
    FileOp::Open,
    FileOp::Unlink,
    FileOp::Rename,
    FileOp::Link,
    FileOp::Symlink,
    FileOp::Chmod,
    FileOp::Chown,
    FileOp::Truncate,
];

/// Whether `path` is one of `prefixes` (an entry ending in `/` is a directory and covers what is below).
pub(crate) fn covered(prefixes: &[String], path: &str) -> bool {
    prefixes.iter().any(|p| {
        if p.ends_with('/') {
            path.starts_with(p.as_str())
        } else {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    })
}

impl Learner {
    /// An empty learner.
    pub fn new(options: Options) -> Learner {
        Learner {
            options,
            baseline: Baseline::default(),
        }
    }

    /// The options it learns with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The baseline so far.
    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// The finished baseline.
    pub fn finish(self) -> Baseline {
        self.baseline
    }

    /// Adds one event.
    pub fn observe(&mut self, event: &Event) {
        let b = &mut self.baseline;
        let t = event.time;
        b.events += 1;
        b.window = Some(match b.window {
            Some((first, last)) => (first.min(t), last.max(t)),
            None => (t, t),
        });
        match &event.event {
            EventBody::Exec(exec) => {
                if exec.success {
                    self.exec(event, &exec.filename);
                }
            }
            EventBody::File(file) => {
                if file.success {
                    self.file(event, file);
                }
            }
            EventBody::Net(net) => {
                if matches!(net.family.as_str(), "inet" | "inet6") {
                    self.net(event, net);
                }
            }
            EventBody::Fork(_)
            | EventBody::Exit(_)
            | EventBody::Loss(_)
            | EventBody::AgentStart(_)
            | EventBody::AgentStop(_)
            | EventBody::SetId(_)
            | EventBody::Ptrace(_)
            | EventBody::Kill(_)
            | EventBody::SetName(_)
            | EventBody::MemfdCreate(_)
            | EventBody::Syscall(_)
            | EventBody::ConfigChange(_)
            | EventBody::ConfigLoaded(_)
            | EventBody::JournalRecovered(_)
            | EventBody::Alert(_)
            | EventBody::Action(_)
            | EventBody::RulesLoaded(_)
            | EventBody::RulesRejected(_)
            | EventBody::IoUring(_)
            | EventBody::IoUringSetup(_)
            | EventBody::Tamper(_)
            | EventBody::Hold(_) => {}
        }
    }

    fn exec(&mut self, event: &Event, filename: &str) {
        let b = &mut self.baseline;
        let t = event.time;
        match known(&event.process.parent_exe) {
            Some(parent) => {
                let p = b.execs.entry(parent.to_owned()).or_default();
                p.programs.add(Some(filename), t);
                bump(&mut p.users, event.process.uid, t);
            }
            None => b.execs_unknown_parent += 1,
        }
    }

    fn file(&mut self, event: &Event, file: &File) {
        let b = &mut self.baseline;
        let t = event.time;
        let exe = known(&event.process.exe);
        if file.op == FileOp::Read {
            b.reads.entry(file.path.clone()).or_default().add(exe, t);
            bump(
                b.read_users.entry(file.path.clone()).or_default(),
                event.process.uid,
                t,
            );
            return;
        }
        if !WRITE_OPS.contains(&file.op) {
            return;
        }
        let prefixes = &self.options.config_paths;
        if covered(prefixes, &file.path) {
            b.config_writes
                .entry(file.path.clone())
                .or_default()
                .add(exe, t);
        }
        if matches!(file.op, FileOp::Rename | FileOp::Link)
            && file.target != file.path
            && covered(prefixes, &file.target)
        {
            b.config_writes
                .entry(file.target.clone())
                .or_default()
                .add(exe, t);
        }
    }

    fn net(&mut self, event: &Event, net: &Net) {
        let b = &mut self.baseline;
        let t = event.time;
        let exe = known(&event.process.exe);
        match net.op {
            NetOp::Connect => match exe {
                Some(exe) => {
                    b.connects
                        .entry(exe.to_owned())
                        .or_default()
                        .add(known(&net.address), t);
                    b.connect_ports
                        .entry(exe.to_owned())
                        .or_default()
                        .insert(net.port);
                }
                None => b.connects_unknown_program += 1,
            },
            NetOp::Listen => {
                let port = net.port.to_string();
                b.listens.add(exe, t);
                if let Some(exe) = exe {
                    b.listen_ports
                        .entry(exe.to_owned())
                        .or_default()
                        .add(Some(&port), t);
                    b.servers.insert(exe.to_owned());
                }
            }
            NetOp::Accept => {
                if let Some(exe) = exe {
                    b.servers.insert(exe.to_owned());
                }
            }
            NetOp::Bind => {}
        }
    }
}
