//! The columns a [`HostRecord`](crate::store::HostRecord) is kept in, one per field, the same in every SQL
//! backend (the checkpoint point's fields prefixed `cp_`): their names in order, how many there are, and
//! the `SET` list of an update. Each backend binds and reads them with its own driver (`host_row.rs`).

/// The host record's columns, in the order backends bind and read them.
pub(crate) const COLUMNS: &str = "next_seq, last_hash, epoch, epoch_key, genesis_key, next_segment, \
     segment_generation, last_checkpoint_seq, first_seq, anchor_key, generation, clean_stop, \
     spool_overflowing, enrolled_key, tofu, cp_last_hash, cp_epoch, cp_epoch_key, cp_next_segment, \
     cp_segment_generation, cp_generation, cp_clean_stop, cp_spool_overflowing";

/// How many columns [`COLUMNS`] names.
pub(crate) const COUNT: usize = 23;

/// The position of `enrolled_key` in [`COLUMNS`].
pub(crate) const ENROLLED_KEY: usize = 13;

/// `col = <mark>n` for every column of [`COLUMNS`], numbered from `first` (`mark` is the backend's
/// placeholder prefix: `?` for SQLite, `$` for PostgreSQL): the `SET` list of an update.
pub(crate) fn assignments(first: usize, mark: char) -> String {
    COLUMNS
        .split(',')
        .enumerate()
        .map(|(i, column)| format!("{} = {mark}{}", column.trim(), first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{COLUMNS, COUNT, ENROLLED_KEY, assignments};

    #[test]
    fn the_list_matches_its_count_and_positions() {
        let names: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(names.len(), COUNT);
        assert_eq!(names[ENROLLED_KEY], "enrolled_key");
        assert!(assignments(2, '$').starts_with("next_seq = $2, last_hash = $3"));
        assert!(assignments(2, '?').ends_with("cp_spool_overflowing = ?24"));
    }
}
