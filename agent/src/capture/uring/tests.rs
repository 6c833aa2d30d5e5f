use agent_common::decode::{Record, UringStrs};
use agent_common::wire::{
    IOSQE_FIXED_FILE, RecordHeader, RecordKind, STR_LEN, URING_RING_UNKNOWN, URING_SQ_THREAD,
    URING_SQE_FOUND, URING_STR_UNREADABLE, URING_STR1_SOCKADDR, UringComplete, UringFile, UringOp,
    UringSetup,
};
use auditloop_model::{
    ChangeTrigger, Event, EventBody, FileOp, NetOp, UringOp as Op, UringUnresolved,
};

use crate::capture::assemble::Assembler;
use crate::capture::policy::PathPolicy;
use crate::capture::proctable::ProcessTable;
use crate::clock::Clock;
use crate::config::CaptureConfig;

use super::{URING_PAIR_TIMEOUT_NS, UringPairing};

const RING: u64 = 7;
/// A process id above `pid_max`: `/proc` knows nothing of it.
const PID: u32 = 3_999_999_999;

fn header(kind: RecordKind, tid: u32, t: u64, name: &[u8]) -> RecordHeader {
    let mut comm = [0u8; 16];
    comm[..name.len()].copy_from_slice(name);
    RecordHeader {
        kind: kind as u32,
        aux: 0,
        ktime_ns: t,
        pid: PID,
        tid,
        uid: 0,
        gid: 0,
        comm,
        cgroup_id: 0,
    }
}

fn op(req: u64, opcode: u8, fd: i32) -> UringOp {
    UringOp {
        header: header(RecordKind::UringOp, PID, req, b"prog"),
        req,
        ring: RING,
        off: 0,
        fd,
        len: 0,
        op_flags: 0,
        file_index: 0,
        flags: URING_SQE_FOUND,
        ring_fd: 3,
        opcode,
        sqe_flags: 0,
        reserved: [0; 6],
    }
}

fn strs(first: &[u8], second: &[u8]) -> Option<Box<UringStrs>> {
    let mut s = UringStrs {
        lens: [0, 0],
        strs: [[0; STR_LEN]; 2],
    };
    for (i, text) in [first, second].into_iter().enumerate() {
        if !text.is_empty() {
            s.strs[i][..text.len()].copy_from_slice(text);
            s.lens[i] = u32::try_from(text.len() + 1).unwrap();
        }
    }
    Some(Box::new(s))
}

fn complete(req: u64, res: i32) -> Record {
    Record::UringComplete(UringComplete {
        header: header(RecordKind::UringComplete, 1, req + 1, b"iou-wrk-1"),
        req,
        res,
        cflags: 0,
    })
}

fn assembler(sensitive: &[&str], ignored: &[&str]) -> (Assembler, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let procs = ProcessTable::new(64, dir.path());
    let mut a = Assembler::new(Clock::with_offset(0), procs);
    let mut config = CaptureConfig {
        sensitive_paths: sensitive.iter().map(|s| s.to_string()).collect(),
        ..CaptureConfig::default()
    };
    config.ignore.path_prefixes = ignored.iter().map(|s| s.to_string()).collect();
    a.set_policy(PathPolicy::new(&config));
    (a, dir)
}

fn uring(ev: &Event) -> &auditloop_model::IoUring {
    match &ev.event {
        EventBody::IoUring(u) => u,
        other => panic!("not io_uring: {other:?}"),
    }
}

fn file(ev: &Event) -> &auditloop_model::File {
    match &ev.event {
        EventBody::File(f) => f,
        other => panic!("not file: {other:?}"),
    }
}

#[test]
fn pairing_keeps_a_request_until_its_first_completion() {
    let mut p = UringPairing::default();
    assert!(p.on_submit(op(1, 22, 5), None).is_none());
    assert_eq!(p.pending(), 1);
    let done = p.on_complete(1).unwrap();
    assert_eq!(done.op.req, 1);
    assert!(
        p.on_complete(1).is_none(),
        "a multishot request's later completions find nothing"
    );
    p.on_submit(op(2, 22, 5), None);
    p.on_submit(op(3, 22, 5), None);
    assert!(
        p.take_stale(3 + URING_PAIR_TIMEOUT_NS)
            .iter()
            .map(|o| o.op.req)
            .eq([2])
    );
    assert_eq!(p.take_all().len(), 1);
}

#[test]
fn write_open_read_write_close_through_io_uring() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("conf");
    let (mut a, _procs) = assembler(&[], &[]);
    let mut out = Vec::new();
    let mut open = op(1, 18, -100);
    open.op_flags = (libc::O_WRONLY | libc::O_CREAT) as u32;
    open.len = 0o600;
    a.push(
        Record::UringOp(open, strs(target.to_str().unwrap().as_bytes(), b"")),
        &mut out,
    );
    assert!(out.is_empty(), "a request waits for its completion");
    a.push(complete(1, 9), &mut out);
    let [ev, f] = &out[..] else {
        panic!("expected io_uring + file: {out:?}")
    };
    let u = uring(ev);
    assert_eq!(
        (u.op, u.fd, u.ret, u.success),
        (Op::Openat, 9, Some(9), true)
    );
    assert_eq!(u.path, target.to_str().unwrap());
    assert!(u.file_or_net && u.unresolved.is_empty(), "{u:?}");
    let f = file(f);
    assert_eq!(
        (f.op, f.syscall.as_str(), f.fd),
        (FileOp::Open, "io_uring_openat", 9)
    );
    assert_eq!(f.mode, 0o600);
    out.clear();
    a.push(Record::UringOp(op(2, 23, 9), None), &mut out);
    a.push(complete(2, 25), &mut out);
    a.push(Record::UringOp(op(3, 19, 9), None), &mut out);
    a.push(complete(3, 0), &mut out);
    let names: Vec<(Op, &str)> = out
        .iter()
        .map(|e| (uring(e).op, uring(e).path.as_str()))
        .collect();
    let path = target.to_str().unwrap();
    assert_eq!(names, [(Op::Write, path), (Op::Close, path)]);
    let touches = a.take_touches();
    assert!(
        touches
            .iter()
            .any(|t| t.path == path && t.trigger == ChangeTrigger::CloseWrite),
        "closing a descriptor opened for writing tells the config watch: {touches:?}"
    );
}

#[test]
fn read_only_opens_make_file_events_only_for_sensitive_paths_and_ignored_paths_none() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let plain = dir.path().join("plain");
    let noisy = dir.path().join("noisy");
    let ignored = format!("{}/", noisy.display());
    let (mut a, _procs) = assembler(&[secret.to_str().unwrap()], &[ignored.as_str()]);
    let mut out = Vec::new();
    let mut write = op(3, 18, -100);
    write.op_flags = libc::O_WRONLY as u32;
    let cases = [
        (op(1, 18, -100), secret.clone()),
        (op(2, 18, -100), plain.clone()),
        (write, noisy.join("x")),
    ];
    for (i, (rec, path)) in cases.into_iter().enumerate() {
        let req = rec.req;
        a.push(
            Record::UringOp(rec, strs(path.to_str().unwrap().as_bytes(), b"")),
            &mut out,
        );
        a.push(complete(req, i32::try_from(10 + i).unwrap()), &mut out);
    }
    let kinds: Vec<&str> = out.iter().map(|e| e.kind().as_str()).collect();
    assert_eq!(
        kinds,
        ["io_uring", "file", "io_uring", "io_uring"],
        "{out:?}"
    );
    assert_eq!(file(&out[1]).op, FileOp::Read);
    assert!(
        uring(&out[0]).file_or_net && !uring(&out[2]).file_or_net && !uring(&out[3]).file_or_net
    );
}

#[test]
fn relative_paths_resolve_against_a_directory_opened_through_io_uring() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shadow"), "x").unwrap();
    let (mut a, _procs) = assembler(&[dir.path().join("shadow").to_str().unwrap()], &[]);
    let mut out = Vec::new();
    let mut open_dir = op(1, 18, -100);
    open_dir.op_flags = libc::O_DIRECTORY as u32;
    a.push(
        Record::UringOp(open_dir, strs(dir.path().to_str().unwrap().as_bytes(), b"")),
        &mut out,
    );
    a.push(complete(1, 4), &mut out);
    a.push(
        Record::UringOp(op(2, 18, 4), strs(b"shadow", b"")),
        &mut out,
    );
    a.push(complete(2, 5), &mut out);
    let [dir_ev, ev, f] = &out[..] else {
        panic!("expected open dir, open, file: {out:?}")
    };
    assert!(
        !uring(dir_ev).file_or_net,
        "a directory open is not a file event"
    );
    let want = dir.path().join("shadow");
    assert_eq!(uring(ev).path, want.to_str().unwrap());
    assert_eq!(uring(ev).raw_path, "shadow");
    assert_eq!(file(f).path, want.to_str().unwrap());
    assert_eq!(file(f).raw_path, "shadow");
}

#[test]
fn unresolved_reasons_name_what_is_missing() {
    let (mut a, _procs) = assembler(&[], &[]);
    let mut out = Vec::new();
    // SQE not found: the descriptor comes from the kernel's lookup, nothing else is known.
    let mut lost = op(1, 22, -1);
    lost.flags = 0;
    a.push(Record::UringOp(lost, None), &mut out);
    a.push(
        Record::UringFile(UringFile {
            header: header(RecordKind::UringFile, PID, 2, b"prog"),
            req: 1,
            fd: 77,
            reserved: 0,
        }),
        &mut out,
    );
    a.push(complete(1, 3), &mut out);
    // A ring set up before capture started.
    let mut unknown = op(2, 0, -1);
    unknown.flags = URING_RING_UNKNOWN;
    a.push(Record::UringOp(unknown, None), &mut out);
    a.push(complete(2, 0), &mut out);
    // A registered file whose opening was not seen.
    let mut fixed = op(3, 22, 2);
    fixed.sqe_flags = IOSQE_FIXED_FILE;
    a.push(Record::UringOp(fixed, None), &mut out);
    a.push(complete(3, 1), &mut out);
    // A path that could not be read.
    let mut unreadable = op(4, 36, -100);
    unreadable.flags |= URING_STR_UNREADABLE;
    a.push(Record::UringOp(unreadable, strs(b"", b"")), &mut out);
    // No completion within the timeout.
    a.flush_stale(10 + URING_PAIR_TIMEOUT_NS, &mut out);
    let got: Vec<(Op, i64, Vec<UringUnresolved>)> = out
        .iter()
        .filter(|e| e.kind().as_str() == "io_uring")
        .map(|e| (uring(e).op, uring(e).fd, uring(e).unresolved.clone()))
        .collect();
    use UringUnresolved::{FdUnknown, FixedFile, NoCompletion, PathUnresolved, RingUnknown};
    use UringUnresolved::{SqeNotFound, StringUnreadable};
    assert_eq!(
        got,
        [
            (Op::Read, 77, vec![SqeNotFound, FdUnknown]),
            (Op::Nop, -1, vec![RingUnknown]),
            (Op::Read, 2, vec![FixedFile]),
            (
                Op::Unlinkat,
                -100,
                vec![StringUnreadable, PathUnresolved, NoCompletion]
            ),
        ]
    );
}

#[test]
fn direct_descriptors_are_remembered_by_ring_and_slot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("direct");
    let (mut a, _procs) = assembler(&[], &[]);
    let mut out = Vec::new();
    let mut open = op(1, 18, -100);
    open.op_flags = libc::O_WRONLY as u32 | libc::O_CREAT as u32;
    open.file_index = 3; // slot 2
    a.push(
        Record::UringOp(open, strs(path.to_str().unwrap().as_bytes(), b"")),
        &mut out,
    );
    a.push(complete(1, 0), &mut out);
    let mut write = op(2, 23, 2);
    write.sqe_flags = IOSQE_FIXED_FILE;
    a.push(Record::UringOp(write, None), &mut out);
    a.push(complete(2, 4), &mut out);
    let last = uring(out.last().unwrap());
    assert!(last.fixed_file && last.unresolved.is_empty(), "{last:?}");
    assert_eq!(last.path, path.to_str().unwrap());
}

#[test]
fn sqpoll_submissions_are_the_ring_owners() {
    let (mut a, _procs) = assembler(&[], &[]);
    let mut out = Vec::new();
    a.push(
        Record::UringSetup(UringSetup {
            header: header(RecordKind::UringSetup, PID, 1, b"prog"),
            ring: RING,
            fd: 3,
            sq_entries: 8,
            cq_entries: 16,
            flags: 2,
            layout: 1,
            reserved: 0,
        }),
        &mut out,
    );
    let mut rec = op(2, 0, -1);
    rec.flags |= URING_SQ_THREAD;
    rec.header.tid = PID + 1;
    rec.header.comm = *b"iou-sqp-1\0\0\0\0\0\0\0";
    a.push(Record::UringOp(rec, None), &mut out);
    a.push(complete(2, 0), &mut out);
    let EventBody::IoUringSetup(setup) = &out[0].event else {
        panic!("{out:?}")
    };
    assert!(setup.sqpoll && setup.layout_known);
    let ev = &out[1];
    assert_eq!((ev.process.pid, ev.process.tid), (PID, PID + 1));
    assert_eq!(ev.process.comm, "prog");
    assert!(uring(ev).sq_thread);
}

#[test]
fn connect_makes_a_net_event() {
    let (mut a, _procs) = assembler(&[], &[]);
    let mut out = Vec::new();
    let mut rec = op(1, 16, 5);
    rec.flags |= URING_STR1_SOCKADDR;
    let mut addr = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
    addr.extend([0; 8]);
    let mut s = strs(b"", b"").unwrap();
    s.strs[0][..16].copy_from_slice(&addr);
    s.lens[0] = 16;
    a.push(Record::UringOp(rec, Some(s)), &mut out);
    a.push(complete(1, 0), &mut out);
    let u = uring(&out[0]);
    assert_eq!(
        (u.family.as_str(), u.address.as_str(), u.port),
        ("inet", "127.0.0.1", 8080)
    );
    let EventBody::Net(n) = &out[1].event else {
        panic!("{out:?}")
    };
    assert_eq!((n.op, n.port, n.success), (NetOp::Connect, 8080, true));
}
