//! The records file's schema (version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`) and the steps
//! that bring older files up to it.
//!
//! Version 1 indexed path and pid per row; version 2 moved them to the search file and kept each host's
//! chain state as a JSON document of the verifier's own type; version 3 keeps a host's record as columns of
//! its own ([`HOST_COLUMNS`]), so no other crate's type is a storage format; version 4 enrolls hosts (their
//! pinned key, the digest of their token, whether their chain was trusted on first use) and keeps one alert
//! per host and kind, with a count and the last time; version 5 adds the searchable columns of login and
//! network ends and the lineage key ([`LINEAGE_COLUMNS`]), derived again from every stored payload
//! (`rederive.rs`); version 6 never gives a record id twice ([`records_table`]) and keeps a tombstone of
//! each deleted record until its search entries are gone ([`DELETED_RECORDS`]).

use rusqlite::{Connection, Transaction};

use crate::store::error::StoreError;
use crate::store::sqlite::{fleet, holds, legacy, rederive};

/// Schema version kept in `PRAGMA user_version`.
pub(super) const SCHEMA_VERSION: i64 = 7;

/// The columns of `records` after its id in versions 1 to 4 (version 5 adds [`LINEAGE_COLUMNS`]).
const RECORD_COLUMNS_V4: [(&str, &str); 10] = [
    ("host_id", "INTEGER NOT NULL"),
    ("seq", "INTEGER NOT NULL"),
    ("hash", "BLOB NOT NULL"),
    ("kind", "TEXT NOT NULL"),
    ("time_ns", "INTEGER"),
    ("pid", "INTEGER"),
    ("path", "TEXT"),
    ("summary", "TEXT"),
    ("payload", "BLOB NOT NULL"),
    ("stored_ns", "INTEGER NOT NULL"),
];

/// The searchable columns of `records` added by version 5: the process's login uid, a network event's ends
/// (addresses normalized), and the lineage key (what the record tells about which process: `role` is
/// `exec`, `fork`, `connect` or `accept`; `role_pid` and `role_start_ns` name the process).
const LINEAGE_COLUMNS: [(&str, &str); 8] = [
    ("loginuid", "INTEGER"),
    ("local_addr", "TEXT"),
    ("local_port", "INTEGER"),
    ("remote_addr", "TEXT"),
    ("remote_port", "INTEGER"),
    ("role", "TEXT"),
    ("role_pid", "INTEGER"),
    ("role_start_ns", "INTEGER"),
];

/// The columns of the `hosts` table (the host record's columns are the ones [`super::host_row`] reads and
/// writes).
pub(super) const HOST_COLUMNS: &str = "
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    next_seq INTEGER NOT NULL,
    last_hash BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    epoch_key BLOB,
    genesis_key BLOB,
    next_segment INTEGER,
    segment_generation INTEGER NOT NULL,
    last_checkpoint_seq INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    anchor_key BLOB,
    generation INTEGER,
    clean_stop INTEGER NOT NULL,
    spool_overflowing INTEGER NOT NULL,
    status TEXT NOT NULL,
    records INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    last_checkpoint_ns INTEGER,
    silence_alerted INTEGER NOT NULL DEFAULT 0,
    enrolled_key BLOB,
    tofu INTEGER NOT NULL DEFAULT 0,
    token_digest BLOB,
    cp_last_hash BLOB,
    cp_epoch INTEGER,
    cp_epoch_key BLOB,
    cp_next_segment INTEGER,
    cp_segment_generation INTEGER,
    cp_generation INTEGER,
    cp_clean_stop INTEGER,
    cp_spool_overflowing INTEGER
";

/// The `hosts` table's index on token digests (several hosts without a token are fine: NULLs differ).
const HOST_INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS hosts_token ON hosts (token_digest);
";

/// The `records` table since version 6, named `name`: every column of version 5, and ids that are never
/// given twice.
///
/// Until version 6 the id was a plain `INTEGER PRIMARY KEY`, which SQLite makes the largest id stored plus
/// one: once the newest records were deleted (the pending records a commit replaces), the next records got
/// their ids. The search file, which keeps its entries by record id up to a mark, then had the deleted
/// records' entries under other records' ids, and never indexed those records (their ids were below its
/// mark), so searches missed them; a reader paging `after` the id of a deleted record skipped them too.
///
/// `AUTOINCREMENT` makes SQLite keep the largest id ever used (in `sqlite_sequence`, updated in the
/// transaction that uses it) and never go below it, for every insert, whichever code makes it. The other
/// way, a high-water mark of the store's own in `meta` and explicit ids on insert, would have spared the
/// migration its copy of the table, but would rest on every insert binding them. The cost: one
/// `sqlite_sequence` update per insert statement (always the same page; inserting 200,000 records in
/// statements of 64 and transactions of 4,000 measured no difference), and once, the copy that adding the
/// keyword takes ([`rebuild_records`]).
fn records_table(name: &str) -> String {
    let columns: String = RECORD_COLUMNS_V4
        .iter()
        .chain(LINEAGE_COLUMNS.iter())
        .map(|(column, ty)| format!(",\n    {column} {ty}"))
        .collect();
    format!("CREATE TABLE {name} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT{columns}\n);")
}

/// The names of every column of `records` (since version 5), its id first.
fn record_names() -> String {
    let mut names = vec!["id"];
    names.extend(
        RECORD_COLUMNS_V4
            .iter()
            .chain(LINEAGE_COLUMNS.iter())
            .map(|(column, _)| *column),
    );
    names.join(", ")
}

/// The indexes of `records`.
const RECORD_INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS records_host_seq ON records (host_id, seq);
CREATE INDEX IF NOT EXISTS records_time ON records (time_ns);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind);
";

/// Since version 6, a tombstone of each deleted record: the columns the search file indexes it by. The
/// transaction that deletes records adds theirs (`write.rs`); the indexer takes the records' entries out of
/// the search file by them, then drops the tombstones (`search.rs`).
const DELETED_RECORDS: &str = "
CREATE TABLE IF NOT EXISTS deleted_records (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL,
    time_ns INTEGER,
    pid INTEGER,
    path TEXT,
    local_addr TEXT,
    local_port INTEGER,
    remote_addr TEXT,
    remote_port INTEGER,
    role TEXT,
    role_pid INTEGER,
    role_start_ns INTEGER
);
";

/// The columns of [`DELETED_RECORDS`], which `records` has under the same names.
pub(super) const DELETED_COLUMNS: &str = "id, host_id, time_ns, pid, path, local_addr, local_port, \
     remote_addr, remote_port, role, role_pid, role_start_ns";

/// Every table but `hosts`, `records` and `deleted_records`, and their indexes, as a new file gets them.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    host_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    head_seq INTEGER NOT NULL,
    stored_ns INTEGER NOT NULL,
    PRIMARY KEY (host_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    seq INTEGER,
    detail TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    last_time_ns INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_host_kind ON alerts (host, kind);
CREATE INDEX IF NOT EXISTS alerts_kind ON alerts (kind);
";

/// The database's identity (since version 2), which the search file checks it indexes.
const META: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
";

/// Version 1 to 2: path and pid are indexed in the search file instead (which starts empty and catches
/// up in chunks).
const MIGRATE_1_TO_2: &str = "
DROP INDEX IF EXISTS records_pid;
DROP INDEX IF EXISTS records_path;
";

/// Version 3 to 4, hosts: the key a host's chain already starts from (its genesis key, or for a host first
/// stored from an anchor, the anchor's key) becomes its enrolled key; an anchored chain was trusted on
/// first use. Tokens are issued later (`auditloop-collector issue-host-tokens`). Where the chain stood at
/// its last checkpoint is not known (`cp_*` stay NULL until the next checkpoint).
const MIGRATE_3_TO_4_HOSTS: &str = "
ALTER TABLE hosts ADD COLUMN enrolled_key BLOB;
ALTER TABLE hosts ADD COLUMN tofu INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN token_digest BLOB;
ALTER TABLE hosts ADD COLUMN cp_last_hash BLOB;
ALTER TABLE hosts ADD COLUMN cp_epoch INTEGER;
ALTER TABLE hosts ADD COLUMN cp_epoch_key BLOB;
ALTER TABLE hosts ADD COLUMN cp_next_segment INTEGER;
ALTER TABLE hosts ADD COLUMN cp_segment_generation INTEGER;
ALTER TABLE hosts ADD COLUMN cp_generation INTEGER;
ALTER TABLE hosts ADD COLUMN cp_clean_stop INTEGER;
ALTER TABLE hosts ADD COLUMN cp_spool_overflowing INTEGER;
UPDATE hosts SET enrolled_key = COALESCE(genesis_key, anchor_key), tofu = (anchor_key IS NOT NULL);
";

/// Versions 1 to 3 to 4, alerts: the alerts of one host and kind collapse into the newest of them, counting
/// them, with the first and the last time.
const MIGRATE_ALERTS_TO_4: &str = "
ALTER TABLE alerts ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_time_ns INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET last_time_ns = time_ns;
UPDATE alerts SET
    count = (SELECT COUNT(*) FROM alerts a WHERE a.host = alerts.host AND a.kind = alerts.kind),
    time_ns = (SELECT MIN(a.time_ns) FROM alerts a WHERE a.host = alerts.host AND a.kind = alerts.kind),
    last_time_ns = (SELECT MAX(a.time_ns) FROM alerts a WHERE a.host = alerts.host AND a.kind = alerts.kind)
    WHERE id IN (SELECT MAX(id) FROM alerts GROUP BY host, kind);
DELETE FROM alerts WHERE id NOT IN (SELECT MAX(id) FROM alerts GROUP BY host, kind);
DROP INDEX IF EXISTS alerts_host;
CREATE UNIQUE INDEX alerts_host_kind ON alerts (host, kind);
";

/// Creates the schema in a new file, or brings an older one up to [`SCHEMA_VERSION`] in one transaction;
/// refuses a newer one.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if !(0..SCHEMA_VERSION).contains(&version) {
        return Err(StoreError::Database(format!(
            "schema version {version} is not supported by this collector (it knows version {SCHEMA_VERSION})"
        )));
    }
    let tx = conn.transaction()?;
    if version == 0 {
        tx.execute_batch(&format!(
            "CREATE TABLE hosts ({HOST_COLUMNS}); {HOST_INDEXES} {records} {RECORD_INDEXES} \
             {DELETED_RECORDS} {TABLES} {META} {fleet} {holds}",
            records = records_table("records"),
            fleet = fleet::TABLES,
            holds = holds::TABLES,
        ))?;
    } else {
        if version == 1 {
            tx.execute_batch(&format!("{MIGRATE_1_TO_2} {META}"))?;
        }
        if version <= 2 {
            rebuild_hosts(&tx)?;
        } else if version == 3 {
            tx.execute_batch(MIGRATE_3_TO_4_HOSTS)?;
        }
        if version < 4 {
            tx.execute_batch(&format!("{HOST_INDEXES} {MIGRATE_ALERTS_TO_4}"))?;
        }
        if version < 5 {
            add_lineage_columns(&tx)?;
            rederive::all(&tx)?;
        }
        if version < 6 {
            rebuild_records(&tx)?;
        }
        // Version 7: the fleet-alert tables, with the alerts and actions already stored.
        tx.execute_batch(fleet::TABLES)?;
        tx.execute_batch(holds::TABLES)?;
        fleet::backfill(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Adds version 5's columns to `records` (empty; they are derived again).
fn add_lineage_columns(tx: &Transaction<'_>) -> Result<(), StoreError> {
    for (name, ty) in LINEAGE_COLUMNS {
        tx.execute_batch(&format!("ALTER TABLE records ADD COLUMN {name} {ty};"))?;
    }
    Ok(())
}

/// Version 2 to 4, hosts: the `hosts` table is rebuilt with each host's JSON chain state split into columns
/// (row ids are kept: records refer to them).
fn rebuild_hosts(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(&format!("CREATE TABLE hosts_v4 ({HOST_COLUMNS});"))?;
    legacy::copy_hosts(tx, "hosts", "hosts_v4")?;
    tx.execute_batch("DROP TABLE hosts; ALTER TABLE hosts_v4 RENAME TO hosts;")?;
    Ok(())
}

/// Versions 1 to 5 to 6: `records` is copied into [`records_table`], ids kept (readers' cursors name
/// records by them), and gets its indexes again; `deleted_records` starts empty.
///
/// The search file's version changes with this one, so it starts over and indexes every record once
/// (`search.rs`): a file of version 5 may hold entries of deleted records under the ids of others, and lack
/// those others. Ids of records deleted before the migration above the largest id left are not known (no
/// earlier version kept them) and may be given once more; from then on, none is. The copy writes every row
/// once more, like version 5's backfill.
fn rebuild_records(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let names = record_names();
    tx.execute_batch(&format!(
        "{table} INSERT INTO records_v6 ({names}) SELECT {names} FROM records ORDER BY id; \
         DROP TABLE records; ALTER TABLE records_v6 RENAME TO records; {RECORD_INDEXES} {DELETED_RECORDS}",
        table = records_table("records_v6"),
    ))?;
    Ok(())
}
