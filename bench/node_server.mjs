// `node bench/node_server.mjs --port PORT [--host HOST]`: Node's socket.io 4 server with its
// default settings, the `node` case of bench/scale.py: the peer users would pick instead of
// this relay, measured with the same clients (bench/loadgen.mjs) on the same machine.
//
// Everything socket.io does is its default: `new Server(httpServer)`, path /socket.io/, the
// "/" namespace, every connection accepted (an `auth` a client sends is ignored), both
// transports, no compression. What the bench adds is only what it needs:
//
// - GET /healthz: {"status": "ok", "clients": N, "emitted": N}, the readiness signal.
// - POST /emit {"rate", "duration_s", "batch", "seq_start"}: broadcasts `rate` events/s for
//   `duration_s` to every client, `batch` at a time, paced as bench/producer.py paces its
//   sends to SQS (a batch is due at start + its first index / rate); answers when the last
//   one is emitted with {"sent", "elapsed_s", "achieved_rate", "max_late_s", "errors"} (the
//   producer's report). The broadcasts are triggered by this process's own timer: no queue,
//   no worker, nothing but socket.io's emit on the server's CPU.
//
// Each broadcast is the event "bench" with this relay's payload, field for field and of the
// same size (server/payload.py): id (a UUID, as SQS's MessageId), data {seq, t}, room (null:
// to everyone), offset, epoch (12 hex digits), sent_ms, received_ms, emitted_ms. The trigger
// (the batch's timer firing) stands in for both the producer's send and the worker's
// receive: `t`, sent_ms and received_ms are its time, so the clients' latency starts at the
// trigger here, where for the relay it starts at the producer's send to SQS; emitted_ms is
// taken just before each emit, as the relay does, and emit -> client compares across all.
import http from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
  },
});

const epoch = randomBytes(6).toString("hex");
let offset = 0;
let emitted = 0;
let offering = false;

function nowS() {
  // sub-millisecond, as Python's time.time() in the producer's `t`
  return (performance.timeOrigin + performance.now()) / 1000;
}

function broadcast(seqs) {
  const triggerS = nowS();
  const triggerMs = Math.floor(triggerS * 1000);
  for (const seq of seqs) {
    offset++;
    io.emit("bench", {
      id: randomUUID(),
      data: { seq, t: triggerS },
      room: null,
      offset,
      epoch,
      sent_ms: triggerMs,
      received_ms: triggerMs,
      emitted_ms: Date.now(),
    });
    emitted++;
  }
}

function offer({ rate, duration_s: durationS, batch = 1, seq_start: seqStart = 0 }) {
  const total = Math.floor(rate * durationS);
  const size = Math.max(1, Math.floor(batch));
  const started = Date.now() + 50;
  let next = 0;
  let maxLateMs = 0;
  return new Promise((resolve) => {
    const tick = () => {
      while (next < total) {
        const due = started + (next / rate) * 1000;
        const late = Date.now() - due;
        if (late < 0) break;
        maxLateMs = Math.max(maxLateMs, late);
        const seqs = [];
        for (let i = next; i < Math.min(total, next + size); i++) seqs.push(seqStart + i);
        broadcast(seqs);
        next += seqs.length;
      }
      if (next < total) {
        setTimeout(tick, Math.max(0, started + (next / rate) * 1000 - Date.now()));
        return;
      }
      const elapsedS = (Date.now() - started) / 1000;
      resolve({
        sent: total,
        elapsed_s: elapsedS,
        achieved_rate: elapsedS > 0 ? total / elapsedS : 0,
        max_late_s: maxLateMs / 1000,
        errors: [],
      });
    };
    setTimeout(tick, Math.max(0, started - Date.now()));
  });
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

// socket.io takes /socket.io/ and hands every other request to this listener
const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    reply(res, 200, { status: "ok", clients: io.engine.clientsCount, emitted });
    return;
  }
  if (req.method === "POST" && req.url === "/emit") {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (body += chunk));
    req.on("end", async () => {
      let request;
      try {
        request = JSON.parse(body);
        if (!(request.rate > 0 && request.duration_s > 0)) throw new Error("rate, duration_s");
      } catch (err) {
        reply(res, 400, { error: `bad request: ${err.message}` });
        return;
      }
      if (offering) {
        reply(res, 409, { error: "a load is already being offered" });
        return;
      }
      offering = true;
      try {
        reply(res, 200, await offer(request));
      } finally {
        offering = false;
      }
    });
    return;
  }
  reply(res, 404, { error: "not found" });
});
const io = new Server(httpServer);

httpServer.listen(Number(args.port), args.host, () => {
  console.log(`socket.io listening on http://${args.host}:${args.port} (epoch ${epoch})`);
});
process.on("SIGTERM", () => process.exit(0));
