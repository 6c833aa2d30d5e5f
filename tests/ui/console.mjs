// Drives Debian's headless Chromium through the collector's console, against a collector filled by a real
// agent (started by tests/console.rs, which passes a JSON config file). Every step asserts what the page
// shows; any failure throws, and the process exits non-zero. Screenshots go to config.shots.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
mkdirSync(cfg.shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ["--no-sandbox", "--disable-gpu"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(90_000);
const shot = (name) => page.screenshot({ path: `${cfg.shots}/${name}.png`, fullPage: true });
const log = (...a) => console.log("ui:", ...a);
const fail = (msg) => { throw new Error(msg); };

async function until(what, fn, timeoutMs = 90_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function hostBadge() {
  await page.goto(`${cfg.url}/`);
  return page.locator(`tr[data-host="${cfg.host}"] td.chain .badge`).first().getAttribute("data-badge").catch(() => null);
}

try {
  // 1. Log in and see the host healthy.
  await page.goto(`${cfg.url}/`);
  if (!page.url().endsWith("/login")) fail(`not sent to the login page: ${page.url()}`);
  await shot("login");
  await page.fill("#token", cfg.approver_token);
  await page.click("button[type=submit]");
  await until("the host to be verified", async () => (await hostBadge()) === "verified");
  await shot("fleet");
  log("logged in; host verified");

  // 2. Trigger a rule; the alert appears live, without a reload; acknowledge it with a comment.
  await page.goto(`${cfg.url}/alerts`);
  await page.waitForSelector("#feed-status:text('live')");
  const marker = await page.evaluate(() => { window.__noReload = true; return 1; });
  execFileSync(cfg.alert_trigger);
  const row = page.locator(`tr[data-rule="${cfg.alert_rule}"]`).first();
  await row.waitFor();
  if (!(await page.evaluate(() => window.__noReload === true))) fail("the page reloaded");
  if (marker !== 1) fail("marker");
  await shot("alerts-live");
  await row.locator("input[name=comment]").fill("looked at it from the console");
  await row.locator("button[value=acknowledged]").click();
  await page.waitForURL(/\/alerts/);
  const acked = page.locator(`tr[data-rule="${cfg.alert_rule}"][data-state="acknowledged"]`).first();
  await acked.waitFor();
  const text = await acked.textContent();
  if (!text.includes("looked at it from the console")) fail(`comment not shown: ${text}`);
  await shot("alerts-acknowledged");
  const triggerHref = await acked.locator("td:nth-child(7) a").getAttribute("href");
  log("alert acknowledged; trigger", triggerHref);

  // 3. Search for the event, open its process tree, verify now.
  await page.goto(`${cfg.url}/search?host=${encodeURIComponent(cfg.host)}&kind=exec&q=${encodeURIComponent(cfg.alert_text)}&pending=1`);
  const count = parseInt((await page.locator("#result-count strong").textContent()).replace(/\D/g, ""), 10);
  if (!(count >= 1)) fail(`search found ${count}`);
  await shot("search");
  await page.locator("#results tbody tr td a").first().click();
  await page.waitForSelector("#tree");
  if (!(await page.locator("#tree").textContent()).includes("pid")) fail("no process tree");
  await shot("event");
  await page.click("#verify-now");
  const ok = page.locator("#verify-result");
  await ok.waitFor();
  if ((await ok.getAttribute("data-ok")) !== "true") fail(`verify failed: ${await ok.textContent()}`);
  await shot("verify-ok");
  log("search, tree, verify ok");

  // 4. Tamper with a stored record: the host turns red, the bad record named.
  const seq = parseInt(triggerHref.split("/").pop(), 10);
  execFileSync("python3", ["-c", `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
n = db.execute("UPDATE records SET payload = payload || x'00' WHERE seq = ? AND host_id = (SELECT id FROM hosts WHERE name = ?)", (int(sys.argv[2]), sys.argv[3])).rowcount
db.commit()
assert n == 1, n
`, cfg.db, String(seq), cfg.host]);
  await page.goto(`${cfg.url}${triggerHref}`);
  await page.click("#verify-now");
  await ok.waitFor();
  if ((await ok.getAttribute("data-ok")) !== "false") fail("the tampered chain verified");
  if ((await ok.getAttribute("data-seq")) !== String(seq)) fail(`named ${await ok.getAttribute("data-seq")}, not ${seq}`);
  await shot("verify-tampered");
  if ((await hostBadge()) !== "tampered") fail("the host is not shown tampered");
  await shot("fleet-tampered");
  log("tamper found at", seq);

  // The rules page lists the rule's hits.
  await page.goto(`${cfg.url}/rules`);
  await page.waitForSelector(`#rule-hits tr[data-rule="${cfg.alert_rule}"]`);
  await shot("rules");

  // 5. Holds: approve (the process goes on and writes its marker), deny (killed before its next
  // instruction: no marker), and let one time out to the default (deny: no marker).
  if (cfg.hold_trigger) {
    const { spawn } = await import("node:child_process");
    const { existsSync } = await import("node:fs");
    const holdRow = async (n) => {
      // The holds page is not live: reload until the n-th hold waits.
      return until(`hold ${n} to wait`, async () => {
        await page.goto(`${cfg.url}/holds`);
        const rows = page.locator("#waiting tr[data-state=requested]");
        return (await rows.count()) > 0 ? rows.first() : null;
      });
    };
    const held = (n) => {
      const child = spawn(cfg.hold_trigger, [String(n)], { stdio: "ignore" });
      return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    };
    const marker = (n) => `${cfg.hold_markers}/marker-${n}`;
    // Approve.
    const first = held(1);
    let row = await holdRow(1);
    await shot("holds-waiting");
    if (existsSync(marker(1))) fail("the held process ran before the decision");
    await row.locator("input[name=comment]").fill("expected maintenance");
    await row.locator("button[value=approve]").click();
    const done1 = await first;
    if (done1.code !== 0) fail(`the approved process did not finish: ${JSON.stringify(done1)}`);
    if (!existsSync(marker(1))) fail("the approved process wrote no marker");
    log("hold approved; the process finished");
    // Deny.
    const second = held(2);
    row = await holdRow(2);
    await row.locator("button[value=deny]").click();
    const done2 = await second;
    if (done2.signal !== "SIGKILL") fail(`the denied process was not killed: ${JSON.stringify(done2)}`);
    if (existsSync(marker(2))) fail("the denied process wrote its marker");
    log("hold denied; the process was killed");
    // Time out to the default (deny).
    const third = held(3);
    await holdRow(3);
    const done3 = await third;
    if (done3.signal !== "SIGKILL") fail(`the timed-out process was not killed: ${JSON.stringify(done3)}`);
    if (existsSync(marker(3))) fail("the timed-out process wrote its marker");
    await until("the outcomes on the holds page", async () => {
      await page.goto(`${cfg.url}/holds`);
      const states = await page.locator("#decided tr").evaluateAll((rows) => rows.map((r) => r.dataset.state));
      return ["approved", "denied", "timed_out"].every((s) => states.includes(s));
    });
    log("hold timed out to deny");
  }
  await page.goto(`${cfg.url}/holds`);
  await shot("holds");
  console.log("ui: all steps passed");
} catch (e) {
  await shot("failure").catch(() => {});
  console.error("ui: FAILED:", e.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
