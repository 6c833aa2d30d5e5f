//! BPF LSM enforcement (loaded only where the kernel runs BPF LSM): refuses, with `EPERM`, the execs and
//! the changes of protected files that deny rules name, before they happen.
//!
//! - `bprm_check_security`: the file about to be executed, by identity ([`EXEC_DENY_INODES`]) and by the
//!   path the kernel prints for it ([`EXEC_DENY`], `bpf_d_path`: absolute, every link resolved);
//! - `file_open` for writing: the file by identity and by path ([`FILE_DENY_INODES`], [`FILE_DENY`]);
//! - `path_unlink`, `path_rename`, `path_chmod`, `path_chown`, `path_truncate`: the file by identity, or an
//!   entry of a protected directory (its parent's identity with `DENY_BELOW`).
//!
//! Structure members are read at offsets the agent looked up in the kernel's BTF ([`LSM_OFFSETS`]); the
//! verifier checks every load against the hook's argument types. Each refusal is recorded ([`LsmDeny`]) and
//! wakes the reader. The agent's own process is never refused (it restores files by rollback).

use agent_common::wire::{
    DENY_BELOW, DENY_KILL, DenyRule, FMODE_WRITE, HOOK_CHMOD, HOOK_CHOWN, HOOK_EXEC, HOOK_OPEN,
    HOOK_RENAME, HOOK_TRUNCATE, HOOK_UNLINK, InodeKey, LSM_OFFSETS_LEN, LsmDeny, OFF_BPRM_FILE,
    OFF_DENTRY_INODE, OFF_DENTRY_PARENT, OFF_FILE_INODE, OFF_FILE_MODE, OFF_FILE_PATH,
    OFF_INODE_INO, OFF_INODE_SB, OFF_PATH_DENTRY, OFF_SB_DEV, PATH_KEY_LEN, PATH_LEN, RecordKind,
};
use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, path},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_d_path, bpf_send_signal},
    },
    macros::lsm,
    maps::lpm_trie::Key,
    programs::LsmContext,
};

use crate::{
    emit::{header, reserve},
    maps::{EXEC_DENY, EXEC_DENY_INODES, FILE_DENY, FILE_DENY_INODES, IGNORE_TGIDS, LSM_SCRATCH},
};

/// Structure member offsets, indexed by `OFF_*`; written by the agent from the kernel's BTF before load.
#[unsafe(no_mangle)]
static LSM_OFFSETS: [u32; LSM_OFFSETS_LEN] = [0; LSM_OFFSETS_LEN];

/// `-EPERM`.
const EPERM: i32 = -1;

#[inline(always)]
fn off(i: usize) -> usize {
    // SAFETY: reads the frozen read-only global; volatile so the value set at load time is used.
    (unsafe { core::ptr::read_volatile(&LSM_OFFSETS[i]) }) as usize
}

/// Loads a `T` at byte offset `at` of the kernel object `base` (a typed pointer the verifier tracks).
#[inline(always)]
fn load<T: Copy>(base: *const u8, at: usize) -> T {
    // SAFETY: the verifier checks the load against the BTF type of `base` (a fault reads zero).
    unsafe { core::ptr::read_volatile(base.add(at).cast::<T>()) }
}

/// The identity of `inode`; `None` for a null pointer (a negative dentry has no inode: every pointer is
/// checked before it is followed, a load through null faults in the kernel).
#[inline(always)]
fn inode_key(inode: *const u8) -> Option<InodeKey> {
    if inode.is_null() {
        return None;
    }
    let sb: *const u8 = load(inode, off(OFF_INODE_SB));
    if sb.is_null() {
        return None;
    }
    Some(InodeKey {
        ino: load(inode, off(OFF_INODE_INO)),
        dev: load(sb, off(OFF_SB_DEV)),
        pad: 0,
    })
}

/// The identity of the inode of `dentry`.
#[inline(always)]
fn dentry_key(dentry: *const u8) -> Option<InodeKey> {
    if dentry.is_null() {
        return None;
    }
    inode_key(load(dentry, off(OFF_DENTRY_INODE)))
}

/// Whether the current process is the agent.
#[inline(always)]
fn is_agent() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is only tested for presence.
    unsafe { IGNORE_TGIDS.get(tgid).is_some() }
}

/// Whether `rule` refuses `hook` for the current user.
#[inline(always)]
fn applies(rule: &DenyRule, hook: u32) -> bool {
    rule.ops & hook != 0 && (rule.uid == u32::MAX || rule.uid == bpf_get_current_uid_gid() as u32)
}

/// Prints the path of `p` (a `struct path *`) into the per-CPU key; `None` when it does not fit.
#[inline(always)]
fn path_key(p: *const u8) -> Option<&'static mut Key<[u8; PATH_KEY_LEN]>> {
    let key = LSM_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch owned by this program run; `p` is a `struct path` the verifier tracks.
    unsafe {
        let words = (*key).data.as_mut_ptr().cast::<u64>();
        let mut i = 0;
        while i < PATH_KEY_LEN / 8 {
            words.add(i).write_unaligned(0);
            i += 1;
        }
        let n = bpf_d_path(
            p as *mut path,
            (*key).data.as_mut_ptr().cast(),
            PATH_KEY_LEN as u32,
        );
        if n <= 0 {
            return None;
        }
        (*key).prefix_len = (PATH_KEY_LEN * 8) as u32;
        Some(&mut *key)
    }
}

/// Records the refusal and returns `-EPERM` (after SIGKILL for a kill rule).
#[inline(always)]
fn deny(
    hook: u32,
    rule: &DenyRule,
    inode: InodeKey,
    path: Option<&Key<[u8; PATH_KEY_LEN]>>,
) -> i32 {
    if rule.flags & DENY_KILL != 0 {
        // SAFETY: plain helper call; SIGKILL (9) to the current task.
        unsafe { bpf_send_signal(9) };
    }
    if let Some(mut entry) = reserve::<LsmDeny>(RecordKind::LsmDeny) {
        let ev = entry.as_mut_ptr();
        // SAFETY: `ev` points at a reserved, exclusively owned record; every field is written below
        // (path bytes past `path_len` are never read).
        unsafe {
            (*ev).header = header(RecordKind::LsmDeny);
            (*ev).hook = hook;
            (*ev).rule = rule.rule;
            (*ev).flags = rule.flags;
            (*ev).inode = inode;
            (*ev).path_len = 0;
            if let Some(key) = path {
                let mut i = 0;
                while i < PATH_KEY_LEN {
                    (*ev).path[i] = key.data[i];
                    if key.data[i] == 0 {
                        (*ev).path_len = i as u32 + 1;
                        break;
                    }
                    i += 1;
                }
                (*ev).path[PATH_LEN - 1] = 0;
            }
        }
        entry.submit(BPF_RB_FORCE_WAKEUP.into());
    }
    EPERM
}

/// `bprm_check_security(struct linux_binprm *bprm)`: refuses a denied exec before the new program runs.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    // Argument 0 is the binprm, argument 1 the previous programs' verdict.
    let (bprm, ret): (*const u8, i32) = (ctx.arg(0), ctx.arg(1));
    if ret != 0 {
        return ret;
    }
    let file: *const u8 = load(bprm, off(OFF_BPRM_FILE));
    if file.is_null() {
        return 0;
    }
    let Some(inode) = inode_key(load(file, off(OFF_FILE_INODE))) else {
        return 0;
    };
    // SAFETY: lookups only; the values are copied.
    if let Some(rule) = unsafe { EXEC_DENY_INODES.get(inode) }.copied()
        && applies(&rule, HOOK_EXEC)
    {
        let key = path_key(
            // SAFETY: `f_path` is a member of `struct file`.
            unsafe { file.add(off(OFF_FILE_PATH)) },
        );
        return deny(HOOK_EXEC, &rule, inode, key.as_deref());
    }
    // SAFETY: `f_path` is a member of `struct file`.
    let key = path_key(unsafe { file.add(off(OFF_FILE_PATH)) });
    if let Some(key) = key
        && let Some(rule) = EXEC_DENY.get(&*key).copied()
        && applies(&rule, HOOK_EXEC)
    {
        return deny(HOOK_EXEC, &rule, inode, Some(key));
    }
    0
}

/// `file_open(struct file *file)`: refuses opening a protected file for writing.
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    // Argument 0 is the file, argument 1 the previous programs' verdict.
    let (file, ret): (*const u8, i32) = (ctx.arg(0), ctx.arg(1));
    if ret != 0 {
        return ret;
    }
    let mode: u32 = load(file, off(OFF_FILE_MODE));
    if mode & FMODE_WRITE == 0 || is_agent() {
        return 0;
    }
    let Some(inode) = inode_key(load(file, off(OFF_FILE_INODE))) else {
        return 0;
    };
    // SAFETY: lookups only; the values are copied.
    if let Some(rule) = unsafe { FILE_DENY_INODES.get(inode) }.copied()
        && rule.flags & DENY_BELOW == 0
        && applies(&rule, HOOK_OPEN)
    {
        // SAFETY: `f_path` is a member of `struct file`.
        let key = path_key(unsafe { file.add(off(OFF_FILE_PATH)) });
        return deny(HOOK_OPEN, &rule, inode, key.as_deref());
    }
    // SAFETY: `f_path` is a member of `struct file`.
    let key = path_key(unsafe { file.add(off(OFF_FILE_PATH)) });
    if let Some(key) = key
        && let Some(rule) = FILE_DENY.get(&*key).copied()
        && applies(&rule, HOOK_OPEN)
    {
        return deny(HOOK_OPEN, &rule, inode, Some(key));
    }
    0
}

/// Refuses `hook` on `dentry` when the file, or its directory with `DENY_BELOW`, is protected.
#[inline(always)]
fn check_dentry(hook: u32, dentry: *const u8) -> i32 {
    if is_agent() {
        return 0;
    }
    if dentry.is_null() {
        return 0;
    }
    // A negative dentry (a rename's new name, not there yet) has no inode of its own.
    let inode = dentry_key(dentry).unwrap_or(InodeKey {
        ino: 0,
        dev: 0,
        pad: 0,
    });
    // SAFETY: lookups only; the values are copied.
    if inode.ino != 0
        && let Some(rule) = unsafe { FILE_DENY_INODES.get(inode) }.copied()
        && rule.flags & DENY_BELOW == 0
        && applies(&rule, hook)
    {
        return deny(hook, &rule, inode, None);
    }
    let Some(parent) = dentry_key(load(dentry, off(OFF_DENTRY_PARENT))) else {
        return 0;
    };
    // SAFETY: lookups only; the values are copied.
    if let Some(rule) = unsafe { FILE_DENY_INODES.get(parent) }.copied()
        && rule.flags & DENY_BELOW != 0
        && applies(&rule, hook)
    {
        return deny(hook, &rule, inode, None);
    }
    0
}

/// `path_unlink(const struct path *dir, struct dentry *dentry)`.
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    // Argument 1 is the dentry being removed, argument 2 the previous programs' verdict.
    let (dentry, ret): (*const u8, i32) = (ctx.arg(1), ctx.arg(2));
    if ret != 0 {
        return ret;
    }
    check_dentry(HOOK_UNLINK, dentry)
}

/// `path_rename(old_dir, old_dentry, new_dir, new_dentry, …)`: the file renamed, or the one it replaces.
#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    // Arguments 1 and 3 are the source and destination dentries, 5 the previous verdict (after
    // the rename flags, an argument since 5.19).
    let (old, new, ret): (*const u8, *const u8, i32) = (ctx.arg(1), ctx.arg(3), ctx.arg(5));
    if ret != 0 {
        return ret;
    }
    let ret = check_dentry(HOOK_RENAME, old);
    if ret != 0 {
        return ret;
    }
    check_dentry(HOOK_RENAME, new)
}

/// Refuses `hook` on the file at `p` (a `struct path *`).
#[inline(always)]
fn check_path(hook: u32, p: *const u8) -> i32 {
    if p.is_null() {
        return 0;
    }
    check_dentry(hook, load(p, off(OFF_PATH_DENTRY)))
}

/// `path_chmod(const struct path *path, umode_t mode)`.
#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    // Argument 0 is the path, argument 2 the previous programs' verdict.
    let (p, ret): (*const u8, i32) = (ctx.arg(0), ctx.arg(2));
    if ret != 0 {
        return ret;
    }
    check_path(HOOK_CHMOD, p)
}

/// `path_chown(const struct path *path, kuid_t uid, kgid_t gid)`.
#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    // Argument 0 is the path, argument 3 the previous programs' verdict.
    let (p, ret): (*const u8, i32) = (ctx.arg(0), ctx.arg(3));
    if ret != 0 {
        return ret;
    }
    check_path(HOOK_CHOWN, p)
}

/// `path_truncate(const struct path *path)`.
#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    // Argument 0 is the path, argument 1 the previous programs' verdict.
    let (p, ret): (*const u8, i32) = (ctx.arg(0), ctx.arg(1));
    if ret != 0 {
        return ret;
    }
    check_path(HOOK_TRUNCATE, p)
}
