# The journal an agent wrote verifies after a clean stop (signed through its last record), against the
# genesis key, and a changed byte is found.
. "$VM_LIB"
agent_start ""
/bin/true "vm-journal-$$"
wait_out '"exec"' "vm-journal-$$"
agent_stop
"$AUDITLOOP" key show --state-dir "$STATE" > "$VM_WORK/genesis.pub" || fail "key show failed"
"$AUDITLOOP" verify "$JOURNAL" --pubkey "$VM_WORK/genesis.pub" > "$VM_WORK/verify.txt"
rc=$?
cat "$VM_WORK/verify.txt"
[ "$rc" -eq 0 ] || fail "auditloop verify exited $rc: $(head -n 1 "$VM_WORK/verify.txt")"
export_journal
expect_event "the marked exec" '"exec"' "vm-journal-$$" > /dev/null
