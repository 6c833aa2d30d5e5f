# A watched config file changes: the config_change event carries old and new content as a diff.
. "$VM_LIB"
dir="$VM_WORK/etc"
mkdir -p "$dir"
printf 'port 22\nlog info\n' > "$dir/app.conf"
agent_start "watch:
  paths: [$dir]"
printf 'port 2222\nlog info\n' > "$dir/app.conf"
wait_out '"config_change"' "$dir/app.conf" 'port 2222'
agent_stop
export_journal
line=$(expect_event "config_change of app.conf" '"config_change"' "\"path\":\"$dir/app.conf\"" '+port 2222')
printf '%s\n' "$line" | grep -qF -- '-port 22\n' || fail "diff lacks the removed line: $line"
