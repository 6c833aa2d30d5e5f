# A file deny rule (rules/deny.yaml: everything under /tmp/vm/protected/). With BPF LSM: opening a protected
# file for writing fails with EPERM by every spelling (path, `..` and `//`, a symlink, a hard link made
# elsewhere, /proc/self/root, a reopened read-only descriptor, a bind mount), and so do unlink, rename (both ways), chmod, chown and truncate, and
# creating a file there; reading works; the bytes on disk never change; the journal has the refused file
# events (`denied_by_rule`, the kernel's path), the deny actions and the alerts, and it verifies. Without
# BPF LSM the same rules file loads, `rules check` says the rule falls back to a kill, and the writer is
# killed after its write.
. "$VM_LIB"
check=$("$AUDITLOOP" rules check /vm/rules) || fail "auditloop rules check rejected the suite's rules"
line=$(printf '%s\n' "$check" | grep 'vm_protect_files:')
f=/tmp/vm/protected/app.conf
agent_shared
if [ "$VM_LSM" != 1 ]; then
    printf '%s\n' "$line" | grep -q 'falls back to a pidfd kill' || fail "rules check: $line"
    sh -c "echo changed >> $f; sleep 5; touch $VM_WORK/survived"
    rc=$?
    [ "$rc" -eq 137 ] || fail "the writer was not killed (status $rc)"
    [ -e "$VM_WORK/survived" ] && fail "the writer survived"
    export_journal
    expect_event "kill fallback" '"action"' '"rule":"vm_protect_files"' '"action":"kill"' 'fell back to a kill' > /dev/null
    exit 0
fi
printf '%s\n' "$line" | grep -q 'BPF LSM file hooks' || fail "rules check: $line"
before=$(md5sum "$f" /tmp/vm/protected/sub/deep.conf)
[ "$(cat "$f")" = original ] || fail "cannot read the protected file"
ln -s "$f" "$VM_WORK/symlink"
ln "$f" "$VM_WORK/hardlink" || fail "cannot hard-link the protected file"
refused() {
    what=$1
    shift
    err=$("$@" 2>&1) && fail "$what succeeded"
    printf '%s\n' "$err" | grep -q 'not permitted' || fail "$what: not EPERM: $err"
}
for spelling in "$f" /tmp/vm/protected/../protected//app.conf "$VM_WORK/symlink" "$VM_WORK/hardlink" \
    "/proc/self/root$f" /tmp/vm/protected/sub/deep.conf; do
    refused "append to $spelling" sh -c "echo changed >> $spelling"
    refused "truncating open of $spelling" sh -c ": > $spelling"
done
# Through a descriptor: a read-only descriptor reopened for writing by its /proc link.
exec 3< "$f"
refused "write through /proc/self/fd of a read-only descriptor" sh -c "echo changed > /proc/self/fd/3"
exec 3<&-
# Through a bind mount of the directory: another path the kernel prints, the same inodes.
mkdir -p "$VM_WORK/bind"
mount --bind /tmp/vm/protected "$VM_WORK/bind" || fail "cannot bind-mount the protected directory"
refused "append through a bind mount" sh -c "echo changed >> $VM_WORK/bind/app.conf"
refused "unlink through a bind mount" rm -f "$VM_WORK/bind/sub/deep.conf"
umount "$VM_WORK/bind"
refused "creating a file in the protected directory" sh -c "echo new > /tmp/vm/protected/new.conf"
refused "unlink" rm -f "$f"
refused "unlink through the hard link's directory entry" rm -f /tmp/vm/protected/sub/deep.conf
refused "rename away" mv "$f" "$VM_WORK/moved"
echo replacement > "$VM_WORK/replacement"
refused "rename over" mv "$VM_WORK/replacement" "$f"
refused "chmod" chmod 777 "$f"
refused "chown" chown 1000 "$f"
refused "truncate" truncate -s 0 "$f"
after=$(md5sum "$f" /tmp/vm/protected/sub/deep.conf)
[ "$before" = "$after" ] || fail "the protected bytes changed: $before / $after"
[ "$(cat "$VM_WORK/hardlink")" = original ] || fail "cannot read through the hard link"
export_journal
ev=$(expect_event "a refused open" '"file"' '"denied_by_rule":"vm_protect_files"' "\"kernel_path\":\"$f\"")
printf '%s\n' "$ev" | grep -q '"success":false' || fail "the refused open says it succeeded: $ev"
# Kernel and userspace agree: the path the kernel printed is the path userspace resolved.
printf '%s\n' "$ev" | grep -q "\"path\":\"$f\"" || fail "userspace resolved another path: $ev"
for op in unlink rename chmod chown; do
    expect_event "refused $op" '"file"' "\"op\":\"$op\"" '"denied_by_rule":"vm_protect_files"' > /dev/null
done
seq=$(json_num "$ev" seq)
action=$(expect_event "deny action" '"action"' '"rule":"vm_protect_files"' "\"trigger_seq\":$seq")
printf '%s\n' "$action" | grep -q '"ok":true' || fail "the deny action is not ok: $action"
printf '%s\n' "$action" | grep -q 'BPF LSM' || fail "the action does not say BPF LSM refused it: $action"
expect_event "alert" '"alert"' '"rule":"vm_protect_files"' "\"trigger_seq\":$seq" > /dev/null
"$AUDITLOOP" verify "$JOURNAL" > "$VM_WORK/verify.txt" 2>&1
rc=$?
# A running agent's tail is not signed yet (3); 1 would be damage.
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "verify exited $rc: $(tail -n 3 "$VM_WORK/verify.txt")"
