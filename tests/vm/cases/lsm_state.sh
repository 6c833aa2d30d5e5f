# The BPF LSM is active exactly when the boot asked for it (auditloop.lsm=1 on the kernel command line).
. "$VM_LIB"
lsms=$(cat /sys/kernel/security/lsm) || fail "cannot read /sys/kernel/security/lsm"
note "lsm=$lsms VM_LSM=$VM_LSM"
case ",$lsms," in
*,bpf,*) active=1 ;;
*) active=0 ;;
esac
[ -n "$VM_LSM" ] || fail "no auditloop.lsm= on the kernel command line"
[ "$active" = "$VM_LSM" ] || fail "bpf LSM active=$active but auditloop.lsm=$VM_LSM (lsm=$lsms)"
