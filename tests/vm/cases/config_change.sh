# A watched config file changes: the config_change event carries old and new content as a diff. (The
# runner writes /tmp/vm/watch/app.conf before any agent starts, so the agent knows its first content.)
. "$VM_LIB"
file=/tmp/vm/watch/app.conf
agent_shared
printf 'port 2222\nlog info\n' > "$file"
wait_out '"config_change"' "$file" 'port 2222'
export_journal
line=$(expect_event "config_change of $file" '"config_change"' "\"path\":\"$file\"" '+port 2222')
printf '%s\n' "$line" | grep -qF -- '-port 22\n' || fail "diff lacks the removed line: $line"
