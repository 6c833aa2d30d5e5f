//! The PostgreSQL schema (version [`SCHEMA_VERSION`], kept in `auditloop_schema`) and its migration on
//! start.
//!
//! Replicas start together: the migration runs in one transaction under an advisory lock, so exactly one
//! of them creates the schema and the others find it done. A database whose version is newer than this
//! collector's is refused.
//!
//! `records` is partitioned by the day its rows were stored (`stored_ns`, one partition per UTC day,
//! `partitions.rs`), so retention drops whole partitions. Its indexes are declared once on the parent and
//! made on every partition. PostgreSQL cannot enforce a unique index across partitions without the
//! partition key in it, so `(host_id, seq)` is a plain index: a commit holds its host's row lock and checks
//! that every new sequence number is above the host's highest stored one (`write.rs`), which is what
//! uniqueness means for a chain that only grows. Text compared by range (paths, addresses) uses the `C`
//! collation: byte order, the order prefix bounds assume.

use deadpool_postgres::Client;

use crate::store::error::StoreError;

/// This collector's schema version.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The advisory lock the migration holds (any constant of our own; `pg_advisory_xact_lock` keys are
/// shared by every client of the database).
const MIGRATE_LOCK: i64 = 0x6175_6469_746c_0001;

/// The whole schema of version 1.
const SCHEMA: &str = r#"
CREATE TABLE hosts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    next_seq BIGINT NOT NULL,
    last_hash BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    epoch_key BYTEA,
    genesis_key BYTEA,
    next_segment BIGINT,
    segment_generation BIGINT NOT NULL,
    last_checkpoint_seq BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    anchor_key BYTEA,
    generation BIGINT,
    clean_stop BOOLEAN NOT NULL,
    spool_overflowing BOOLEAN NOT NULL,
    enrolled_key BYTEA,
    tofu BOOLEAN NOT NULL,
    cp_last_hash BYTEA,
    cp_epoch BIGINT,
    cp_epoch_key BYTEA,
    cp_next_segment BIGINT,
    cp_segment_generation BIGINT,
    cp_generation BIGINT,
    cp_clean_stop BOOLEAN,
    cp_spool_overflowing BOOLEAN,
    status TEXT NOT NULL,
    records BIGINT NOT NULL DEFAULT 0,
    events BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    batches BIGINT NOT NULL DEFAULT 0,
    created_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL,
    last_checkpoint_ns BIGINT,
    silence_alerted BOOLEAN NOT NULL DEFAULT FALSE,
    token_digest BYTEA UNIQUE
);

CREATE SEQUENCE records_id AS BIGINT;
CREATE TABLE records (
    id BIGINT NOT NULL,
    host_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    kind TEXT NOT NULL,
    time_ns BIGINT,
    pid BIGINT,
    path TEXT COLLATE "C",
    summary TEXT,
    loginuid BIGINT,
    local_addr TEXT COLLATE "C",
    local_port BIGINT,
    remote_addr TEXT COLLATE "C",
    remote_port BIGINT,
    role TEXT,
    role_pid BIGINT,
    role_start_ns BIGINT,
    payload BYTEA NOT NULL,
    stored_ns BIGINT NOT NULL
) PARTITION BY RANGE (stored_ns);
CREATE INDEX records_id_idx ON records (id);
CREATE INDEX records_host_seq ON records (host_id, seq);
CREATE INDEX records_time ON records (time_ns);
CREATE INDEX records_kind ON records (kind, id);
CREATE INDEX records_pid ON records (pid) WHERE pid IS NOT NULL;
CREATE INDEX records_path ON records (path) WHERE path IS NOT NULL;
CREATE INDEX records_local_addr ON records (local_addr) WHERE local_addr IS NOT NULL;
CREATE INDEX records_remote_addr ON records (remote_addr) WHERE remote_addr IS NOT NULL;
CREATE INDEX records_process ON records (host_id, role_pid, role, role_start_ns, time_ns)
    WHERE role IS NOT NULL;
CREATE INDEX records_connects ON records (local_addr, local_port, time_ns) WHERE role = 'connect';
CREATE INDEX records_accepts ON records (remote_addr, remote_port, time_ns) WHERE role = 'accept';

CREATE TABLE checkpoints (
    host_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    stored_ns BIGINT NOT NULL,
    PRIMARY KEY (host_id, seq)
);

CREATE SEQUENCE alerts_id AS BIGINT;
CREATE TABLE alerts (
    id BIGINT PRIMARY KEY DEFAULT nextval('alerts_id'),
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    seq BIGINT,
    detail TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 1,
    last_time_ns BIGINT NOT NULL,
    UNIQUE (host, kind)
);

CREATE SEQUENCE fleet_rev AS BIGINT;
CREATE TABLE fleet_alerts (
    id BIGSERIAL PRIMARY KEY,
    rev BIGINT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    host TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    tags TEXT NOT NULL,
    output TEXT NOT NULL,
    seq BIGINT,
    trigger_seq BIGINT,
    time_ns BIGINT NOT NULL,
    last_time_ns BIGINT NOT NULL,
    count BIGINT NOT NULL,
    state TEXT NOT NULL,
    state_by TEXT,
    state_ns BIGINT,
    state_comment TEXT
);
CREATE UNIQUE INDEX fleet_alerts_rule ON fleet_alerts (host, seq) WHERE source = 'rule';
CREATE UNIQUE INDEX fleet_alerts_chain ON fleet_alerts (host, rule) WHERE source = 'chain';
CREATE INDEX fleet_alerts_time ON fleet_alerts (last_time_ns);
CREATE TABLE fleet_actions (
    host TEXT NOT NULL,
    seq BIGINT NOT NULL,
    trigger_seq BIGINT NOT NULL,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (host, seq)
);
CREATE INDEX fleet_actions_trigger ON fleet_actions (host, trigger_seq);
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    time_ns BIGINT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target);

CREATE TABLE holds (
    host TEXT NOT NULL,
    hold BIGINT NOT NULL,
    rule TEXT NOT NULL,
    pid BIGINT NOT NULL,
    comm TEXT NOT NULL,
    exe TEXT NOT NULL,
    state TEXT NOT NULL,
    stopped_by TEXT NOT NULL,
    requested_ns BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    dflt TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    latency_us BIGINT,
    detail TEXT NOT NULL,
    PRIMARY KEY (host, hold)
);
CREATE INDEX holds_requested ON holds (requested_ns);
CREATE TABLE verdicts (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL,
    hold BIGINT NOT NULL,
    decision TEXT NOT NULL,
    by TEXT NOT NULL,
    comment TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    UNIQUE (host, hold)
);
CREATE TABLE loaded_rules (
    rule TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    time_ns BIGINT NOT NULL
);
"#;

/// Creates the schema in an empty database, or checks the version of an existing one, in one transaction
/// under [`MIGRATE_LOCK`].
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS auditloop_schema (version BIGINT NOT NULL)")
        .await?;
    let version: Option<i64> = tx
        .query_opt("SELECT max(version) FROM auditloop_schema", &[])
        .await?
        .and_then(|row| row.get(0));
    match version {
        Some(SCHEMA_VERSION) => {}
        None => {
            tx.batch_execute(SCHEMA).await?;
            tx.execute(
                "INSERT INTO auditloop_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await?;
        }
        Some(other) => {
            return Err(StoreError::Database(format!(
                "schema version {other} is not supported by this collector (it knows version {SCHEMA_VERSION})"
            )));
        }
    }
    tx.commit().await?;
    Ok(())
}
