//! The conformance suite: what every [`Store`](crate::store::Store) backend must do, whatever database is
//! behind it. The collector's ingest and query API rely on exactly these behaviours.
//!
//! Each case is a function taking a fresh, empty store and returning `Err` only when the store itself
//! fails; a behaviour that differs fails an assertion. [`store_conformance!`](crate::store_conformance)
//! turns every case into a `#[test]`:
//!
//! ```ignore
//! mod conformance {
//!     // Any expression giving a value that dereferences to a fresh store: a `Box<dyn Store>`, an `Arc`, or
//!     // a fixture that owns the store's temporary directory.
//!     auditloop_collector::store_conformance!(PgFixture::new());
//! }
//! ```
//!
//! The suite is compiled for the collector's own tests and, with the `conformance` feature, for other
//! crates (a PostgreSQL backend runs it unchanged). Test data is made of the store's own types
//! (`fixture.rs`); nothing here depends on ingest, HTTP or SQLite.
//!
//! Cases: committing (`commits.rs`), finding records, verified, pending and replaced (`records.rs`), alerts,
//! their collapsing and silence (`alerts.rs`), fleet alerts, their states, the audit log and change notices (`fleet.rs`), holds and verdicts
//! (`holds.rs`), hosts, enrollment, tokens and last contact (`hosts.rs`), the
//! lineage walk's lookups and the login and network filters (`lineage.rs`).

mod alerts;
mod commits;
pub(crate) mod fixture;
mod fleet;
mod holds;
mod hosts;
mod lineage;
mod records;

pub use alerts::{
    alerts_are_stored_by_commits_and_rejections, alerts_filter_by_host_kind_since_and_after,
    repeated_alerts_collapse_per_host_and_kind, silence_is_raised_once_per_quiet_spell,
};
pub use commits::{
    a_commit_can_replace_pending_records, a_commit_stores_records_and_the_host_record,
    a_conflicting_commit_stores_nothing, a_failed_commit_stores_nothing,
    stored_hashes_read_back_for_replays, the_host_record_round_trips_every_field,
};
pub use fleet::{
    chain_alerts_join_the_fleet_list_and_reopen, live_feeds_are_told_of_changes,
    replaced_pending_findings_are_dropped, rule_alerts_are_listed_with_their_actions,
    state_changes_are_audited, the_live_feed_follows_revisions,
};
pub use holds::holds_are_kept_and_decided_once;
pub use hosts::{
    a_rejection_changes_nothing_but_alerts, enrollment_creates_a_host_once,
    hosts_are_listed_with_their_counters, last_contact_moves_only_with_a_checkpoint,
    replacing_an_enrollment_keeps_the_old_chain,
};
pub use lineage::{
    a_record_is_read_by_host_and_seq, flow_records_match_both_ends_within_the_range,
    process_records_match_pid_start_and_role, records_filter_by_login_and_network_ends,
};
pub use records::{
    records_are_pending_until_a_checkpoint_covers_them, records_combine_filters,
    records_filter_by_host_and_kind, records_filter_by_path, records_filter_by_pid,
    records_filter_by_text, records_filter_by_time, records_page_in_ingest_order,
    replaced_records_never_lend_their_ids,
};

/// Expands to one `#[test]` per conformance case, each run on a fresh store made by evaluating `$fresh`
/// (any expression whose value dereferences to a [`Store`](crate::store::Store); it is kept alive, and so
/// may own the store's files, until the case ends).
#[macro_export]
macro_rules! store_conformance {
    ($fresh:expr) => {
        $crate::store_conformance!(@cases $fresh;
            a_commit_stores_records_and_the_host_record,
            the_host_record_round_trips_every_field,
            a_conflicting_commit_stores_nothing,
            a_failed_commit_stores_nothing,
            stored_hashes_read_back_for_replays,
            a_commit_can_replace_pending_records,
            records_filter_by_host_and_kind,
            records_filter_by_time,
            records_filter_by_path,
            records_filter_by_pid,
            records_filter_by_text,
            records_combine_filters,
            records_page_in_ingest_order,
            records_are_pending_until_a_checkpoint_covers_them,
            replaced_records_never_lend_their_ids,
            alerts_are_stored_by_commits_and_rejections,
            repeated_alerts_collapse_per_host_and_kind,
            alerts_filter_by_host_kind_since_and_after,
            silence_is_raised_once_per_quiet_spell,
            enrollment_creates_a_host_once,
            replacing_an_enrollment_keeps_the_old_chain,
            a_rejection_changes_nothing_but_alerts,
            last_contact_moves_only_with_a_checkpoint,
            hosts_are_listed_with_their_counters,
            a_record_is_read_by_host_and_seq,
            process_records_match_pid_start_and_role,
            flow_records_match_both_ends_within_the_range,
            records_filter_by_login_and_network_ends,
            rule_alerts_are_listed_with_their_actions,
            chain_alerts_join_the_fleet_list_and_reopen,
            state_changes_are_audited,
            replaced_pending_findings_are_dropped,
            the_live_feed_follows_revisions,
            live_feeds_are_told_of_changes,
            holds_are_kept_and_decided_once,
        );
    };
    (@cases $fresh:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() -> ::std::result::Result<(), $crate::store::StoreError> {
                let fresh = $fresh;
                $crate::store::conformance::$case(::std::ops::Deref::deref(&fresh))
            }
        )+
    };
}
