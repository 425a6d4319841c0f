// A browser client of the tests: headless Chromium behind an authenticating HTTP proxy, driven
// through its DevTools protocol (Fetch.authRequired answers the proxy's challenge, as a user
// typing into the browser's dialog would). The protocol runs over a pipe
// (--remote-debugging-pipe: NUL-terminated JSON messages on file descriptors 3 and 4), so any
// Node.js from 18 on will do (Debian 12's nodejs is 18), with no WebSocket client.
//
//   node chromium_proxy.mjs CHROMIUM PROXY_PORT USER PASSWORD URL [FLAG...]
//
// FLAGs are passed on to Chromium (e.g. `--ignore-certificate-errors-spki-list=HASH` to trust a
// test origin's certificate by its key).
//
// Prints one line per proxy challenge answered (`auth <scheme>`), then `status <code>` of the
// page's main response, and exits 0; prints `error: ...` and exits 2 if the page does not load
// within 30 s or Chromium exits first.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, port, user, password, url, ...flags] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "chromium-proxy-"));
const browser = spawn(chromium, [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  `--user-data-dir=${profile}`,
  `--proxy-server=http://127.0.0.1:${port}`,
  // Chromium sends loopback addresses direct unless told otherwise.
  "--proxy-bypass-list=<-loopback>",
  "--remote-debugging-pipe",
  ...flags,
  "about:blank",
], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });

let finished = false;
function finish(code, line) {
  if (finished) return;
  finished = true;
  if (line) console.log(line);
  browser.kill("SIGKILL");
  try { rmSync(profile, { recursive: true, force: true }); } catch {}
  process.exit(code);
}
setTimeout(() => finish(2, "error: timed out"), 30000).unref();
browser.on("error", (e) => finish(2, `error: cannot start ${chromium}: ${e.message}`));
browser.on("exit", (code, signal) => finish(2, `error: chromium exited (${code ?? signal})`));

const toBrowser = browser.stdio[3];
const fromBrowser = browser.stdio[4];
fromBrowser.setEncoding("utf8");
let nextId = 1;
const pending = new Map();
const handlers = [];
let buffered = "";
fromBrowser.on("data", (text) => {
  buffered += text;
  let end;
  while ((end = buffered.indexOf("\0")) >= 0) {
    const msg = JSON.parse(buffered.slice(0, end));
    buffered = buffered.slice(end + 1);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    } else if (msg.method) {
      for (const h of handlers) h(msg);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  toBrowser.write(JSON.stringify({ id, method, params, sessionId }) + "\0");
  return new Promise((resolve) => pending.set(id, resolve));
}

const { result: { targetId } } = await send("Target.createTarget", { url: "about:blank" });
const { result: { sessionId } } = await send("Target.attachToTarget", { targetId, flatten: true });
let mainRequest = null;
handlers.push((msg) => {
  if (msg.sessionId !== sessionId) return;
  const p = msg.params;
  if (msg.method === "Fetch.requestPaused") {
    send("Fetch.continueRequest", { requestId: p.requestId }, sessionId);
  } else if (msg.method === "Fetch.authRequired") {
    const scheme = p.authChallenge.scheme;
    console.log(`auth ${p.authChallenge.source} ${scheme}`);
    const response = p.authChallenge.source === "Proxy"
      ? { response: "ProvideCredentials", username: user, password }
      : { response: "CancelAuth" };
    send("Fetch.continueWithAuth", { requestId: p.requestId, authChallengeResponse: response }, sessionId);
  } else if (msg.method === "Network.requestWillBeSent" && p.type === "Document" && !mainRequest) {
    mainRequest = p.requestId;
  } else if (msg.method === "Network.responseReceived" && p.requestId === mainRequest) {
    finish(0, `status ${p.response.status}`);
  } else if (msg.method === "Network.loadingFailed" && p.requestId === mainRequest) {
    finish(2, `error: ${p.errorText}`);
  }
});
await send("Network.enable", {}, sessionId);
await send("Fetch.enable", { handleAuthRequests: true, patterns: [{ urlPattern: "*" }] }, sessionId);
await send("Page.navigate", { url }, sessionId);
