//! Tracepoint records whose layout differs between kernels, and which program reads which layout.
//!
//! The kernel programs load record fields at constant offsets (lockdown refuses `bpf_probe_read_kernel`),
//! and a program that loads past the end of a record fails to attach (EACCES). So a record with two layouts
//! gets one program per layout, and the one to attach is decided by what the kernel offers: the
//! tracepoint's `format` file under tracefs, never the kernel's version number. The variants are listed in
//! [`HOOKS`]; docs/kernels.md lists the kernels each layout was seen on.
//!
//! The loader attaches, for each hook, the variant [`choose`] picks.

use std::path::Path;

/// One field of a record as a `format` file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name (`child_pid`; `parent_comm` for `char parent_comm[16]`).
    pub name: String,
    /// Byte offset in the record.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

/// A program and the tracepoint and fields it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Program name in the kernel object.
    pub program: &'static str,
    /// Tracepoint category.
    pub category: &'static str,
    /// Tracepoint name.
    pub tracepoint: &'static str,
    /// Fields the program loads, or whose presence it relies on: name, offset, size.
    pub fields: &'static [(&'static str, usize, usize)],
}

/// A hook whose record differs between kernels: the program the loader's tables name and the variants
/// (that one among them), the first that fits wins.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// The program the loader's tables name for this hook.
    pub default: &'static str,
    /// Every program for this hook, preferred first.
    pub variants: &'static [Variant],
}

/// The hooks with more than one layout.
pub const HOOKS: &[Hook] = &[
    Hook {
        default: "sched_process_fork",
        variants: &[
            // 6.18: the comms became `__data_loc char[]` (4-byte descriptors).
            Variant {
                program: "sched_process_fork",
                category: "sched",
                tracepoint: "sched_process_fork",
                fields: &[("parent_comm", 8, 4), ("child_pid", 20, 4)],
            },
            // 6.1, 6.12: `char parent_comm[16]`, `char child_comm[16]`.
            Variant {
                program: "sched_process_fork_comm16",
                category: "sched",
                tracepoint: "sched_process_fork",
                fields: &[("parent_comm", 8, 16), ("child_pid", 44, 4)],
            },
        ],
    },
    Hook {
        default: "sched_process_exit",
        variants: &[
            // 6.18: `bool group_dead` at 32 says the thread is the last of its process.
            Variant {
                program: "sched_process_exit_group_dead",
                category: "sched",
                tracepoint: "sched_process_exit",
                fields: &[("group_dead", 32, 1)],
            },
            // 6.1, 6.12: no `group_dead`; the program reads no field (the leader's exit counts).
            Variant {
                program: "sched_process_exit",
                category: "sched",
                tracepoint: "sched_process_exit",
                fields: &[],
            },
        ],
    },
    Hook {
        default: "io_uring_submit_req",
        variants: &[
            // 6.12, 6.18 (6.1's `io_uring_submit_sqe` is not read: io_uring is not recorded there).
            Variant {
                program: "io_uring_submit_req",
                category: "io_uring",
                tracepoint: "io_uring_submit_req",
                fields: &[("opcode", 32, 1), ("flags", 40, 8), ("sq_thread", 48, 1)],
            },
        ],
    },
];

/// Parses a tracepoint's `format` file: its `field:` lines.
pub fn parse_format(text: &str) -> Vec<Field> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let decl = line.strip_prefix("field:")?;
            let mut parts = decl.split(';').map(str::trim);
            let declaration = parts.next()?;
            let number = |key: &str, part: Option<&str>| -> Option<usize> {
                part?.strip_prefix(key)?.parse().ok()
            };
            let offset = number("offset:", parts.next())?;
            let size = number("size:", parts.next())?;
            let last = declaration.split_whitespace().last()?;
            let name = last.split('[').next()?.trim_start_matches('*');
            Some(Field {
                name: name.to_owned(),
                offset,
                size,
            })
        })
        .collect()
}

/// Whether the record `fields` has every field `variant` reads where it reads it.
pub fn fits(variant: &Variant, fields: &[Field]) -> bool {
    variant.fields.iter().all(|&(name, offset, size)| {
        fields
            .iter()
            .any(|f| f.name == name && f.offset == offset && f.size == size)
    })
}

/// The first variant of `hook` whose tracepoint this kernel has and whose fields fit its format file
/// under `events` (`/sys/kernel/tracing/events`).
pub fn choose(hook: &Hook, events: &Path) -> Option<&'static Variant> {
    hook.variants.iter().find(|v| {
        let format = events.join(v.category).join(v.tracepoint).join("format");
        std::fs::read_to_string(format).is_ok_and(|text| fits(v, &parse_format(&text)))
    })
}

#[cfg(test)]
mod tests {
    use super::{Field, HOOKS, fits, parse_format};

    const FORK_6_12: &str = "name: sched_process_fork
ID: 310
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;

print fmt: \"comm=%s pid=%d child_comm=%s child_pid=%d\", REC->parent_comm, REC->parent_pid, REC->child_comm, REC->child_pid
";

    const FORK_6_18: &str = "format:
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
";

    #[test]
    fn fields_are_named_without_array_suffixes() {
        let fields = parse_format(FORK_6_12);
        assert_eq!(fields.len(), 8);
        assert_eq!(
            fields[4],
            Field {
                name: "parent_comm".into(),
                offset: 8,
                size: 16
            }
        );
        assert_eq!(parse_format(FORK_6_18)[1].name, "parent_comm");
    }

    #[test]
    fn each_fork_layout_has_exactly_one_program() {
        let fork = &HOOKS[0];
        for (text, want) in [
            (FORK_6_12, "sched_process_fork_comm16"),
            (FORK_6_18, "sched_process_fork"),
        ] {
            let fields = parse_format(text);
            let fitting: Vec<&str> = fork
                .variants
                .iter()
                .filter(|v| fits(v, &fields))
                .map(|v| v.program)
                .collect();
            assert_eq!(fitting, vec![want]);
        }
    }

    #[test]
    fn exit_prefers_group_dead_and_falls_back_to_the_leader() {
        let exit = &HOOKS[1];
        let with = parse_format("\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n");
        let first = exit.variants.iter().find(|v| fits(v, &with));
        assert_eq!(
            first.map(|v| v.program),
            Some("sched_process_exit_group_dead")
        );
        let first = exit.variants.iter().find(|v| fits(v, &[]));
        assert_eq!(first.map(|v| v.program), Some("sched_process_exit"));
    }
}
