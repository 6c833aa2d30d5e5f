//! The searchable columns of a `records` row: their names and how a record's [`SearchColumns`] bind to
//! them, shared by inserts (`write.rs`) and the migration that derives them again (`rederive.rs`).

use rusqlite::Statement;

use crate::store::commit::SearchColumns;
use crate::store::sqlite::conn::int;

/// The searchable columns of `records`, in the order [`bind`] binds them.
pub(super) const SEARCH_COLUMNS: &str = "time_ns, pid, path, summary, loginuid, local_addr, local_port, \
     remote_addr, remote_port, role, role_pid, role_start_ns";

/// How many columns [`SEARCH_COLUMNS`] names.
pub(super) const COUNT: usize = 12;

/// Binds `c` to parameters `first..first + COUNT` of `stmt`, in the order of [`SEARCH_COLUMNS`].
pub(super) fn bind(
    stmt: &mut Statement<'_>,
    first: usize,
    c: &SearchColumns,
) -> rusqlite::Result<()> {
    let at = |i: usize| first + i;
    stmt.raw_bind_parameter(at(0), c.time_ns.map(int))?;
    stmt.raw_bind_parameter(at(1), c.pid)?;
    stmt.raw_bind_parameter(at(2), c.path.as_deref())?;
    stmt.raw_bind_parameter(at(3), c.summary.as_deref())?;
    stmt.raw_bind_parameter(at(4), c.loginuid)?;
    stmt.raw_bind_parameter(at(5), c.local_address.as_deref())?;
    stmt.raw_bind_parameter(at(6), c.local_port)?;
    stmt.raw_bind_parameter(at(7), c.remote_address.as_deref())?;
    stmt.raw_bind_parameter(at(8), c.remote_port)?;
    let key = c.lineage.as_ref();
    stmt.raw_bind_parameter(at(9), key.map(|k| k.role.as_str()))?;
    stmt.raw_bind_parameter(at(10), key.map(|k| k.pid))?;
    stmt.raw_bind_parameter(at(11), key.and_then(|k| k.start_ns).map(int))?;
    Ok(())
}
