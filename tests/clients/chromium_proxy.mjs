// A browser client of the tests: headless Chromium behind an authenticating HTTP proxy, driven
// through its DevTools protocol (Fetch.authRequired answers the proxy's challenge, as a user
// typing into the browser's dialog would). Needs Node.js 20+ (run with --experimental-websocket
// on 20; 22 has WebSocket built in) and Chromium.
//
//   node --experimental-websocket chromium_proxy.mjs CHROMIUM PROXY_PORT USER PASSWORD URL
//
// Prints one line per proxy challenge answered (`auth <scheme>`), then `status <code>` of the
// page's main response, and exits 0; prints `error: ...` and exits 2 if the page does not load
// within 20 s.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, port, user, password, url] = process.argv.slice(2);
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
  "--remote-debugging-port=0",
  "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });

function finish(code, line) {
  if (line) console.log(line);
  browser.kill("SIGKILL");
  try { rmSync(profile, { recursive: true, force: true }); } catch {}
  process.exit(code);
}
setTimeout(() => finish(2, "error: timed out"), 20000).unref();

const wsUrl = await new Promise((resolve) => {
  let text = "";
  browser.stderr.on("data", (chunk) => {
    text += chunk;
    const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
});

const ws = new WebSocket(wsUrl);
await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
let nextId = 1;
const pending = new Map();
const handlers = [];
ws.addEventListener("message", (event) => {
  const msg = JSON.parse(event.data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  } else if (msg.method) {
    for (const h of handlers) h(msg);
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, params, sessionId }));
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
