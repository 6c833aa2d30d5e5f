#!/usr/bin/env python3
"""Measures which capabilities the auditloop agent uses (the table in docs/operations.md).

Runs the release agent as root under `setpriv --bounding-set=-all,+... --inh-caps=-all --no-new-privs` with
the packaged config and default rules plus test rules (a kernel exec kill, an exec.sha256 kill through the
exec guard, a kill on a file event, rollbacks), performs one stimulus per check, and prints one JSON line
of check results per capability set. Needs root and a kernel that loads the agent's programs.

    sudo python3 packaging/tools/measure-capabilities.py            # all, then each capability dropped
    sudo python3 packaging/tools/measure-capabilities.py -kill      # all but CAP_KILL
    sudo python3 packaging/tools/measure-capabilities.py sys_admin,bpf   # all but these
    sudo python3 packaging/tools/measure-capabilities.py only:bpf,perfmon

AGENT=path overrides the binary (default: target/release/auditloop); scratch files go to $TMPDIR.
"""
import hashlib, json, os, pwd, shutil, signal, subprocess, sys, threading, time, queue

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("AGENT", f"{REPO}/target/release/auditloop")
SCRATCH = os.environ.get("TMPDIR", "/tmp")
NOBODY = pwd.getpwnam("nobody")

def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, **kw)

def setup(w):
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    os.chmod(w, 0o755)
    rules = f"{w}/rules.d"; os.makedirs(rules)
    shutil.copy(f"{REPO}/rules/default.yaml", rules)
    for d in ["killk", "guard", "killfile", "conf", "nobodyhome"]:
        os.makedirs(f"{w}/{d}")
    os.chmod(f"{w}/killfile", 0o777)
    shutil.copy("/bin/true", f"{w}/killk/prog")
    data = open("/bin/echo", "rb").read() + b"capm-unique\n"
    open(f"{w}/guard/renamed", "wb").write(data); os.chmod(f"{w}/guard/renamed", 0o755)
    sha = hashlib.sha256(data).hexdigest()
    nh = f"{w}/nobodyhome"
    shutil.copy("/bin/sleep", f"{nh}/nprog")
    os.chown(nh, NOBODY.pw_uid, NOBODY.pw_gid); os.chmod(nh, 0o700)
    os.chown(f"{nh}/nprog", NOBODY.pw_uid, NOBODY.pw_gid); os.chmod(f"{nh}/nprog", 0o700)
    open(f"{w}/conf/root.conf", "w").write("good root\n"); os.chmod(f"{w}/conf/root.conf", 0o644)
    open(f"{w}/conf/shadowlike", "w").write("good shadow\n")
    os.chown(f"{w}/conf/shadowlike", 0, 42); os.chmod(f"{w}/conf/shadowlike", 0o640)
    open(f"{w}/conf/nobody.conf", "w").write("good nobody\n")
    os.chown(f"{w}/conf/nobody.conf", NOBODY.pw_uid, NOBODY.pw_gid); os.chmod(f"{w}/conf/nobody.conf", 0o644)
    os.makedirs(f"{w}/nconf"); os.chown(f"{w}/nconf", NOBODY.pw_uid, NOBODY.pw_gid); os.chmod(f"{w}/nconf", 0o755)
    open(f"{w}/nconf/in-nobody-dir.conf", "w").write("good ndir\n")
    open(f"{rules}/capm.yaml", "w").write(f"""
- rule: capm_kill_kernel
  condition: evt.kind = exec and exec.filename startswith {w}/killk/
  output: "k"
  actions: [kill]
- rule: capm_kill_guard
  condition: evt.kind = exec and exec.sha256 = {sha}
  output: "g"
  actions: [kill]
- rule: capm_kill_late
  condition: evt.kind = file and file.path startswith {w}/killfile/
  output: "l"
  actions: [kill]
- rule: capm_rollback
  condition: evt.kind = config_change and change.path startswith {w}/
  output: "r"
  actions: [alert, rollback]
""")
    cfg = open(f"{REPO}/packaging/auditloop/config.yaml").read()
    cfg = cfg.replace("state_dir: /var/lib/auditloop", f"state_dir: {w}/state")
    cfg = cfg.replace("rules: /etc/auditloop/rules.d", f"rules: {rules}")
    cfg += f"watch:\n  paths: [{w}/conf/root.conf, {w}/conf/shadowlike, {w}/conf/nobody.conf, {w}/nconf/in-nobody-dir.conf]\n"
    open(f"{w}/config.yaml", "w").write(cfg)
    jail = f"{w}/jail"
    libs = subprocess.run(["ldd", "/bin/sleep"], capture_output=True, text=True).stdout
    for tok in libs.split():
        if tok.startswith("/"):
            os.makedirs(os.path.dirname(jail + tok), exist_ok=True)
            shutil.copy(tok, jail + tok)
    os.makedirs(f"{jail}/bin", exist_ok=True)
    jdata = open("/bin/sleep", "rb").read() + b"jail\n"
    open(f"{jail}/bin/sleep", "wb").write(jdata); os.chmod(f"{jail}/bin/sleep", 0o755)
    os.makedirs(f"{w}/suid")
    sdata = open("/bin/sleep", "rb").read() + b"suid\n"
    open(f"{w}/suid/sleep", "wb").write(sdata); os.chmod(f"{w}/suid/sleep", 0o4755)
    global JAIL_SHA, SUID_SHA
    JAIL_SHA = hashlib.sha256(jdata).hexdigest(); SUID_SHA = hashlib.sha256(sdata).hexdigest()
    return sha

class Agent:
    def __init__(self, caps, w):
        bset = "-all" + "".join(f",+{c}" for c in caps)
        cmd = ["setpriv", f"--bounding-set={bset}", "--inh-caps=-all", "--no-new-privs",
               AGENT, "run", "--config", f"{w}/config.yaml", "--output", "json"]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.q = queue.Queue(); self.seen = []; self.err = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: [self.err.append(l) for l in self.p.stderr], daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try: self.q.put(json.loads(line))
            except Exception: pass
        self.q.put(None)

    def wait(self, pred, timeout=8):
        for ev in self.seen:
            if pred(ev): return ev
        end = time.time() + timeout
        while time.time() < end:
            try: ev = self.q.get(timeout=0.2)
            except queue.Empty: continue
            if ev is None: return None
            self.seen.append(ev)
            if pred(ev): return ev
        return None

def kind(ev, k): return k in ev.get("event", {})

def run(caps, label):
    w = f"{SCRATCH}/auditloop-caps-{label}"
    sha = setup(w)
    res = {}
    a = Agent(caps, w)
    started = a.wait(lambda e: kind(e, "agent_start"), 20)
    res["starts"] = started is not None
    if not started:
        time.sleep(1)
        res["error"] = "".join(a.err)[-400:]
        a.p.kill(); return res
    time.sleep(1.0)
    mark = f"capm-{label}-{time.time_ns()}"
    subprocess.run(["/bin/true", mark])
    ev = a.wait(lambda e: kind(e, "exec") and mark in e["event"]["exec"].get("argv", []))
    res["exec_event"] = ev is not None
    res["exec_sha256"] = bool(ev and ev["event"]["exec"].get("sha256"))
    # write under /etc: file event and write_below_etc alert
    etc = f"/etc/{mark}"
    open(etc, "w").write("x\n"); os.unlink(etc)
    ev = a.wait(lambda e: kind(e, "alert") and e["event"]["alert"].get("rule") == "write_below_etc"
                and etc in json.dumps(e))
    res["etc_write_alert"] = ev is not None
    # nobody: relative exec from a 0700 dir; canonical filename and hash
    nm = f"0.{time.time_ns()}"
    q = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c",
                          f"cd {w}/nobodyhome && exec ./nprog 0.5 {nm}"])
    ev = a.wait(lambda e: kind(e, "exec") and nm in e["event"]["exec"].get("argv", []))
    q.wait()
    x = ev["event"]["exec"] if ev else {}
    res["nobody_exec_canonical"] = x.get("filename") == f"{w}/nobodyhome/nprog"
    res["nobody_exec_sha256"] = bool(x.get("sha256"))
    # a nobody process in a chroot: its /bin/sleep is not the agent's
    jm = f"0.{time.time_ns()}"
    subprocess.run(["/usr/sbin/chroot", "--userspec=nobody:nogroup", f"{w}/jail", "/bin/sleep", "0.5", jm])
    ev = a.wait(lambda e: kind(e, "exec") and jm in e["event"]["exec"].get("argv", []) and e["event"]["exec"]["argv"][0] == "/bin/sleep")
    res["chroot_exec_sha256_right_file"] = bool(ev) and ev["event"]["exec"].get("sha256") == JAIL_SHA
    # a setuid program run by nobody (not dumpable)
    sm = f"0.{time.time_ns()}"
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c",
                    f"cd {w}/suid && exec ./sleep 0.5 {sm}"])
    ev = a.wait(lambda e: kind(e, "exec") and sm in e["event"]["exec"].get("argv", []))
    x = ev["event"]["exec"] if ev else {}
    res["setuid_exec_canonical"] = x.get("filename") == f"{w}/suid/sleep"
    res["setuid_exec_sha256"] = x.get("sha256") == SUID_SHA
    # kernel kill
    r = subprocess.run([f"{w}/killk/prog", "k"])
    res["kill_kernel"] = r.returncode == -9
    # guard kill (sha256 rule)
    gp = subprocess.Popen([f"{w}/guard/renamed", "guardmark"], stdout=subprocess.PIPE)
    gp.communicate()
    ev = a.wait(lambda e: kind(e, "exec") and e["process"]["pid"] == gp.pid)
    res["kill_guard_before_run"] = bool(ev) and ev["event"]["exec"].get("stopped_by_rule") == "capm_kill_guard"
    res["kill_guard_killed"] = gp.returncode == -9
    # late kill (pidfd) of a nobody process
    q = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c",
                          f"echo x > {w}/killfile/f.$$; sleep 6"])
    try:
        rc = q.wait(timeout=5)
    except subprocess.TimeoutExpired:
        q.kill(); q.wait(); rc = None
    res["kill_nobody_pidfd"] = rc == -9
    # rollbacks
    for name in ["conf/root.conf", "conf/shadowlike", "conf/nobody.conf", "nconf/in-nobody-dir.conf"]:
        f = f"{w}/{name}"
        st0 = os.stat(f); good = open(f).read()
        open(f, "w").write("bad\n")
        ev = a.wait(lambda e: kind(e, "action") and e["event"]["action"].get("action") == "rollback"
                    and e["event"]["action"].get("path") == f)
        st = os.stat(f)
        ok = ev is not None and ev["event"]["action"].get("ok") is not False and open(f).read() == good \
            and (st.st_uid, st.st_gid, st.st_mode) == (st0.st_uid, st0.st_gid, st0.st_mode)
        res[f"rollback_{name}"] = ok
        if not ok and ev: res[f"rollback_{name}_detail"] = ev["event"]["action"].get("detail")
    a.p.send_signal(signal.SIGTERM)
    try:
        rc = a.p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        a.p.kill(); rc = None
    stop = a.wait(lambda e: kind(e, "agent_stop"), 3)
    res["clean_stop"] = rc == 0 and stop is not None
    warn = [l.strip()[:200] for l in a.err if "WARN" in l or "ERROR" in l]
    if warn: res["warnings"] = warn[:6]
    shutil.rmtree(w, ignore_errors=True)
    return res

ALL = ["bpf", "perfmon", "sys_admin", "sys_ptrace", "kill", "dac_read_search", "dac_override", "chown",
       "fowner", "net_admin"]

if __name__ == "__main__":
    sets = sys.argv[1:] or ["all"] + [f"-{c}" for c in ALL]
    for s in sets:
        if s == "all": caps, label = ALL, "all"
        elif s.startswith("-"): caps, label = [c for c in ALL if c != s[1:]], "no_" + s[1:]
        elif s.startswith("only:"): caps, label = s[5:].split(","), "only_" + s[5:].replace(",", "_")
        else: caps, label = [c for c in ALL if c not in s.split(",")], "no_" + s.replace(",", "_")
        r = run(caps, label)
        print(label, json.dumps(r), flush=True)
