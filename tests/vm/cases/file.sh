# create, write, rename and unlink a file: each is journaled with its path.
. "$VM_LIB"
dir="$VM_WORK/files"
mkdir -p "$dir"
agent_shared
echo "first" > "$dir/a.txt"
echo "more" >> "$dir/a.txt"
mv "$dir/a.txt" "$dir/b.txt"
rm "$dir/b.txt"
wait_out '"unlink' "$dir/b.txt"
export_journal
expect_event "open for write of a.txt" '"file"' '"op":"open"' "\"path\":\"$dir/a.txt\"" > /dev/null
expect_event "rename a.txt to b.txt" '"file"' '"op":"rename"' "\"path\":\"$dir/a.txt\"" "\"target\":\"$dir/b.txt\"" > /dev/null
expect_event "unlink of b.txt" '"file"' '"op":"unlink"' "\"path\":\"$dir/b.txt\"" > /dev/null
