// `node cluster_clients.mjs --url URL --token JWT --clients N --rooms r0,r1,r2`: clients of the
// relay made with the page's own helper (server/web/static/relay.js, which resumes by itself) over
// the pinned socket.io-client, half over WebSocket and half over HTTP long-polling (the
// client's fetch transport: Node has no XMLHttpRequest). Client n joins room n % rooms.
// Each sends its own `affinity` query parameter, so that nginx spreads them over the servers.
//
// Prints {"ready": N} once every client is connected and in its room; then each line
// "report" on stdin prints, per client, two tallies of event ids in arrival order: `ids`, what
// the app got from relay.js (after its de-duplication), and `wire`, every relayed event as
// the socket handed it on (before relay.js looked at it: repeats included); then the
// recoveries and the status changes. SIGTERM or the end of stdin ends it.
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { drive } from "../../bench/driven.mjs";
import { randomUUID } from "node:crypto";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    clients: { type: "string", default: "12" },
    rooms: { type: "string", default: "r0,r1,r2" },
    static: { type: "string" },
  },
});
const vendor = await import(pathToFileURL(`${args.static}/vendor/socket.io-4.8.1.esm.min.js`).href);
const { connect } = await import(pathToFileURL(`${args.static}/relay.js`).href);

// socket.io-client 4.8.1's fetch transport reads a poll's body without handling its failure
// (`res.text().then(...)`, not returned): when a server dies while nginx streams its response,
// the rejection is unhandled, and Node ends the whole process on one. Reading the body inside
// fetch turns a cut body into a failed fetch, which the transport does handle (as a poll
// error: the client reconnects), as a browser's XMLHttpRequest transport would.
const nodeFetch = globalThis.fetch;
globalThis.fetch = async (...request) => {
  const res = await nodeFetch(...request);
  const body = await res.arrayBuffer();
  return new Response(body.byteLength ? body : null, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
};

const rooms = args.rooms.split(",");
const clients = [];
let ready = 0;
const allReady = new Promise((resolve) => {
  for (let n = 0; n < Number(args.clients); n++) {
    const polling = n % 2 === 1;
    const state = {
      n,
      room: rooms[n % rooms.length],
      transport: polling ? "polling" : "websocket",
      ids: [],
      wire: [],
      recoveries: [],
      statuses: [],
      joined: false,
    };
    const relay = connect(args.url, {
      token: args.token,
      transports: polling ? [vendor.Fetch] : [vendor.WebSocket],
      query: { affinity: randomUUID() },
      // a client that lost its server is away a while: it has a gap to recover
      reconnectionDelay: 1500,
      reconnectionDelayMax: 3000,
    });
    relay.on("event", (_event, payload) => state.ids.push(payload.id));
    relay.on("recovery", (r) => state.recoveries.push(r));
    relay.on("status", ({ state: s, detail }) => {
      state.statuses.push(`${s}: ${detail}`);
      if (s === "connected" && !state.joined) {
        state.joined = true;
        relay.join(state.room).then((answer) => {
          if (!answer?.ok) {
            state.statuses.push(`join refused: ${JSON.stringify(answer)}`);
            return;
          }
          if (++ready === Number(args.clients)) resolve();
        });
      }
    });
    // socket.io-client calls every onAny listener for each event packet it decodes (those
    // that came before the connect completed too, once it has): this one sees what relay.js's
    // own listener sees, before relay.js drops repeats.
    relay.socket.onAny((event, payload) => {
      if (!event.startsWith("relay:")) state.wire.push(payload?.id ?? null);
    });
    clients.push({ relay, state });
  }
});

await allReady;
console.log(JSON.stringify({ ready }));

function report() {
  console.log(JSON.stringify({
    clients: clients.map(({ relay, state }) => ({ ...state, connected: relay.socket.connected })),
  }));
}

function stop() {
  for (const { relay } of clients) relay.close();
  process.exit(0);
}

drive({ report, stop });
