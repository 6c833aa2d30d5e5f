//! Structure member offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The kernel programs are built without CO-RE relocations, so the few members the LSM programs read are
//! looked up here by name and handed to them as constants. Only what that needs is parsed: the type
//! section's records and the string table (format: the kernel's `Documentation/bpf/btf.rst`).

use std::collections::HashMap;

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// Why a BTF lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error("{VMLINUX_BTF}: {0}")]
    Io(#[from] std::io::Error),
    /// The data is not BTF this parser understands.
    #[error("{VMLINUX_BTF}: {0}")]
    Format(&'static str),
    /// No struct of that name.
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    /// The struct has no such member.
    #[error("BTF struct {0} has no member {1}")]
    NoMember(String, String),
}

struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

struct Type {
    name: u32,
    kind: u32,
    /// `size_or_type`: the referenced type of typedefs and qualifiers.
    ty: u32,
    members: Vec<Member>,
}

/// The parsed types (structs and unions with their members; other kinds only hold their place).
pub struct Btf {
    strings: Vec<u8>,
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    let bytes = data.get(at..at + 4).ok_or(BtfError::Format("truncated"))?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Bytes that follow a type's common 12-byte record, by kind (`vlen` = number of members/params/values).
fn extra_len(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        3 => 12,                   // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,        // ENUM, FUNC_PROTO
        _ => return Err(BtfError::Format("unknown type kind")),
    })
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        Btf::parse(&std::fs::read(VMLINUX_BTF)?)
    }

    /// Parses little-endian BTF.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let magic = data.get(0..2).ok_or(BtfError::Format("truncated"))?;
        if u16::from_le_bytes([magic[0], magic[1]]) != MAGIC {
            return Err(BtfError::Format("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or(BtfError::Format("section out of bounds"))
        };
        let types_data = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();
        // Type ids start at 1; id 0 is `void`.
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            ty: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at < types_data.len() {
            let name = u32_at(types_data, at)?;
            let info = u32_at(types_data, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let bitfields = info >> 31 == 1;
            let ty = u32_at(types_data, at + 8)?;
            at += 12;
            let mut members = Vec::new();
            if kind == KIND_STRUCT || kind == KIND_UNION {
                for i in 0..vlen {
                    let m = at + 12 * i;
                    let offset = u32_at(types_data, m + 8)?;
                    members.push(Member {
                        name: u32_at(types_data, m)?,
                        ty: u32_at(types_data, m + 4)?,
                        bit_offset: if bitfields {
                            offset & 0xff_ffff
                        } else {
                            offset
                        },
                    });
                }
            }
            at += extra_len(kind, vlen)?;
            types.push(Type {
                name,
                kind,
                ty,
                members,
            });
        }
        let mut btf = Btf {
            strings,
            types,
            structs: HashMap::new(),
        };
        let mut structs = HashMap::new();
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name != 0 {
                let name = btf.string(t.name).to_owned();
                // The first complete definition wins (modules may repeat names; vmlinux does not).
                structs
                    .entry(name)
                    .or_insert(u32::try_from(id).unwrap_or(u32::MAX));
            }
        }
        btf.structs = structs;
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or_default()
    }

    /// Byte offset of `member` in `struct name`, looking through anonymous structs and unions.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs
            .get(name)
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))?;
        self.find(id, member, 0)
            .map(|bits| bits / 8)
            .ok_or_else(|| BtfError::NoMember(name.to_owned(), member.to_owned()))
    }

    fn find(&self, id: u32, member: &str, base_bits: u32) -> Option<u32> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            if m.name != 0 && self.string(m.name) == member {
                return Some(base_bits + m.bit_offset);
            }
        }
        // Anonymous members: search inside them.
        for m in t.members.iter().filter(|m| m.name == 0) {
            let inner = self.resolve(m.ty)?;
            if let Some(bits) = self.find(inner, member, base_bits + m.bit_offset) {
                return Some(bits);
            }
        }
        None
    }

    /// The struct or union behind `id` (through typedefs and qualifiers).
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..16 {
            let t = self.types.get(id as usize)?;
            if t.kind == KIND_STRUCT || t.kind == KIND_UNION {
                return Some(id);
            }
            if !matches!(t.kind, 8..=11 | 18) {
                return None;
            }
            id = t.ty;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `struct inner { int a; }` and `struct outer { int x; union { struct inner i; }; int
    /// y; }` (the union anonymous), strings and all.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0outer\0x\0i\0y\0".to_vec();
        let s = |name: &str| {
            let pos = strings
                .windows(name.len() + 2)
                .position(|w| {
                    w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0
                })
                .unwrap();
            (pos + 1) as u32
        };
        let mut types = Vec::new();
        let mut put = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_le_bytes()));
        // 1: int
        put(&[s("int"), 1 << 24, 4, 32]);
        // 2: struct inner { a: int @0 }
        put(&[s("inner"), (4 << 24) | 1, 4, s("a"), 1, 0]);
        // 3: anonymous union { i: inner @0 }
        put(&[0, (5 << 24) | 1, 4, s("i"), 2, 0]);
        // 4: struct outer { x @0, (anon) @32, y @64 }
        put(&[
            s("outer"),
            (4 << 24) | 3,
            12,
            s("x"),
            1,
            0,
            0,
            3,
            32,
            s("y"),
            1,
            64,
        ]);
        let mut out = Vec::new();
        out.extend(MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(w.to_le_bytes());
        }
        out.extend(&types);
        out.extend(&strings);
        out
    }

    #[test]
    fn offsets_of_members_direct_and_in_anonymous_unions() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("outer", "x").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "i").unwrap(), 4);
        assert_eq!(btf.member_offset("outer", "y").unwrap(), 8);
        assert!(matches!(
            btf.member_offset("outer", "z"),
            Err(BtfError::NoMember(..))
        ));
        assert!(matches!(
            btf.member_offset("nope", "x"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(b"\x9f\xeb\x01\x00\xff\xff\xff\xff").is_err());
        let mut cut = blob();
        cut.truncate(40);
        assert!(Btf::parse(&cut).is_err());
    }

    /// The running kernel's BTF (every kernel the agent supports has it): the offsets the LSM programs
    /// read are found and sane.
    #[test]
    fn running_kernel_offsets() {
        let btf = Btf::from_sys_fs().unwrap();
        assert_eq!(btf.member_offset("path", "dentry").unwrap(), 8);
        let offsets = crate::capture::lsm::offsets(&btf).unwrap();
        assert!(
            offsets.iter().filter(|&&o| o == 0).count() <= 2,
            "{offsets:?}"
        );
    }
}
