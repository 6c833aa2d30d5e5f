//! The drill's io_uring stimulus: one `IORING_OP_OPENAT` request that creates the drill's own file, on a
//! ring set up and driven with raw system calls (no library), the way a program hiding its file work
//! from syscall tracing would. Runs in a forked child: no allocation, only system calls on memory the
//! kernel maps.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

/// `IORING_OP_OPENAT`.
const OP_OPENAT: u8 = 18;
/// `IORING_FEAT_SINGLE_MMAP`.
const FEAT_SINGLE_MMAP: u32 = 1;
/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;
/// mmap offset of the submission queue ring.
const OFF_SQ_RING: libc::off_t = 0;
/// mmap offset of the completion queue ring.
const OFF_CQ_RING: libc::off_t = 0x800_0000;
/// mmap offset of the submission queue entries.
const OFF_SQES: libc::off_t = 0x1000_0000;

/// `struct io_sqring_offsets`.
#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_cqring_offsets`.
#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params`.
#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

const _: () = assert!(std::mem::size_of::<Params>() == 120);

/// `struct io_uring_sqe` (the fields an openat uses).
#[repr(C)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    open_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    splice_fd_in: i32,
    addr3: u64,
    pad: u64,
}

const _: () = assert!(std::mem::size_of::<Sqe>() == 64);

/// `struct io_uring_cqe`.
#[repr(C)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Maps `len` bytes of the ring `fd` at `offset`.
///
/// # Safety
/// `fd` must be an io_uring descriptor.
unsafe fn map(fd: libc::c_int, len: usize, offset: libc::off_t) -> Result<*mut u8, i32> {
    // SAFETY: a fresh shared mapping of the ring; the kernel checks `len` and `offset`.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(errno());
    }
    Ok(ptr.cast())
}

/// Creates `path` (`O_WRONLY | O_CREAT | O_EXCL`, mode 0600) through io_uring, closes and unlinks it.
///
/// # Safety
/// Call only in the drill's forked child (see `child::run`).
pub unsafe fn create_unlink(path: &CString) -> Result<(), i32> {
    let mut params = Params::default();
    // SAFETY (whole function): raw io_uring system calls; every pointer written through lies inside a
    // mapping whose size the kernel reported in `params`.
    unsafe {
        let fd = libc::syscall(libc::SYS_io_uring_setup, 2u32, &mut params as *mut Params);
        if fd < 0 {
            return Err(errno());
        }
        let fd = fd as libc::c_int;
        let result = submit_openat(fd, &params, path);
        libc::close(fd);
        let opened = result?;
        if opened < 0 {
            return Err(-opened);
        }
        libc::close(opened);
        if libc::unlink(path.as_ptr()) != 0 {
            return Err(errno());
        }
        Ok(())
    }
}

/// Submits one openat of `path` on ring `fd` and waits for its completion; its result.
unsafe fn submit_openat(fd: libc::c_int, p: &Params, path: &CString) -> Result<i32, i32> {
    // SAFETY (whole function): see `create_unlink`.
    unsafe {
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<Cqe>();
        let single = p.features & FEAT_SINGLE_MMAP != 0;
        let sq = map(
            fd,
            if single { sq_len.max(cq_len) } else { sq_len },
            OFF_SQ_RING,
        )?;
        let cq = if single {
            sq
        } else {
            map(fd, cq_len, OFF_CQ_RING)?
        };
        let sqes = map(
            fd,
            p.sq_entries as usize * std::mem::size_of::<Sqe>(),
            OFF_SQES,
        )?
        .cast::<Sqe>();
        let at = |base: *mut u8, off: u32| base.add(off as usize);
        let tail = &*at(sq, p.sq_off.tail).cast::<AtomicU32>();
        let mask = *at(sq, p.sq_off.ring_mask).cast::<u32>();
        let index = tail.load(Ordering::Acquire) & mask;
        sqes.add(index as usize).write(Sqe {
            opcode: OP_OPENAT,
            flags: 0,
            ioprio: 0,
            fd: libc::AT_FDCWD,
            off: 0,
            addr: path.as_ptr() as u64,
            len: 0o600,
            open_flags: (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC) as u32,
            user_data: 0x00d1_1100,
            buf_index: 0,
            personality: 0,
            splice_fd_in: 0,
            addr3: 0,
            pad: 0,
        });
        at(sq, p.sq_off.array)
            .cast::<u32>()
            .add(index as usize)
            .write(index);
        tail.fetch_add(1, Ordering::Release);
        let entered = libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            1u32,
            1u32,
            ENTER_GETEVENTS,
            std::ptr::null::<libc::c_void>(),
            0usize,
        );
        if entered < 0 {
            return Err(errno());
        }
        let head = &*at(cq, p.cq_off.head).cast::<AtomicU32>();
        let cq_tail = &*at(cq, p.cq_off.tail).cast::<AtomicU32>();
        let cq_mask = *at(cq, p.cq_off.ring_mask).cast::<u32>();
        let h = head.load(Ordering::Acquire);
        if cq_tail.load(Ordering::Acquire) == h {
            return Err(libc::EAGAIN);
        }
        let cqe = at(cq, p.cq_off.cqes)
            .cast::<Cqe>()
            .add((h & cq_mask) as usize)
            .read();
        head.store(h.wrapping_add(1), Ordering::Release);
        Ok(cqe.res)
    }
}
