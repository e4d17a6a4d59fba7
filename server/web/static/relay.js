// relay.js: a Socket.IO client of the relay (browsers, Node) that resumes by itself.
//
// socket.io-client plus the relay's resume protocol (README, "Replay on reconnect"): it keeps
// each stream's position (epoch and highest offset seen), resumes the room-less stream, every
// joined room and every room the server subscribed it to (the user's stream, the token's
// subscribe claim) after each reconnect, drops repeats (bounded memory), and tells the app
// whether each stream was recovered or must be resynced.
//
// One ES module, two ways to get it. Served by the relay at /static/relay.js, next to the
// pinned socket.io-client bundle it imports (server/web/assets.py fetches it): no bundler, no
// CDN. And as the npm package `sqs-push-relay-client` (package.json, relay.d.ts and README.md
// beside this file), whose `prepack` writes dist/relay.js: this file with its one import of
// the vendored bundle turned into the bare "socket.io-client", the package's peer dependency.
// Keep that import on one line, as it is: the pack script finds it there or fails.
//
//   import { connect } from "/static/relay.js";
//   const relay = connect("", { token: () => fetchMyToken(), rooms: ["shop"] });
//   relay.on("event", (event, msg) => console.log(event, msg.data));
//   relay.on("recovery", ({ room, recovered, replayed, reason }) => { if (!recovered) resync(room); });
//   relay.on("presence", ({ room, joined, left }) => showWhoIsThere(room, joined, left));
//   const members = await relay.members("chat:42"); // [{user, connections, info}, ...]
//
// The Python helper (client/ in the repository) keeps the same state the same way.

import { io } from "./vendor/socket.io-4.8.1.esm.min.js";

const RECOVERY_EVENT = "relay:recovery";
// marks a resume answer as "try again" (the history could not be read; nothing is known to be
// lost): the stream keeps its position and is resumed again, backing off
const RESUME_RETRY = "retry";
const EXPIRED_EVENT = "relay:expired";
const OVERFLOW_EVENT = "relay:overflow";
const DISCONNECTED_EVENT = "relay:disconnected";
const PRESENCE_EVENT = "relay:presence";
const RESERVED_PREFIX = "relay:";
/** Ids remembered per client by default: a bound on memory. */
export const MAX_IDS = 10000;
const JOIN_ATTEMPTS = 20; // a join or presence request refused for the rate is tried again
const JOIN_RETRY_MS = 250;
const CALL_TIMEOUT_MS = 10000;

function positionOf(message) {
  if (!message || typeof message !== "object") return null;
  const { epoch, offset } = message;
  return typeof epoch === "string" && Number.isInteger(offset) ? { epoch, offset } : null;
}

/** Positions per stream (room, or null for the room-less events), recently seen ids, and the
 * rooms the server subscribed the client to. */
export class Streams {
  constructor({ maxIds = MAX_IDS } = {}) {
    if (!(maxIds >= 1)) throw new RangeError("maxIds must be at least 1");
    this.maxIds = maxIds;
    this.positions = new Map();
    this.ids = new Set(); // insertion order: the oldest is forgotten first
    this.subscribed = new Set(); // rooms the server subscribed the client to, in its order
    this.answeredNow = null; // rooms the connect under way answered for (null: none under way)
    this.retrying = new Set(); // streams whose resume was answered "try again", none served since
  }

  /** The `since` to send on a resume, or null when none is known. */
  since(room = null) {
    const p = this.positions.get(room);
    return p ? { epoch: p.epoch, offset: p.offset } : null;
  }

  /** Record an event; true if the app should get it, false if it is a repeat. */
  accept(payload) {
    if (!payload || typeof payload !== "object") return true;
    const room = payload.room ?? null;
    const position = positionOf(payload);
    const known = this.positions.get(room);
    if (position && known && position.epoch === known.epoch && position.offset <= known.offset) {
      return false; // offsets rise by one per event within an epoch: an exact test
    }
    if (this.retrying.has(room) && !(position && known && position.epoch === known.epoch && position.offset === known.offset + 1)) {
      return false; // above a gap not yet resumed: the served resume sends it again
    }
    if (typeof payload.id === "string") {
      const key = JSON.stringify([room, payload.id]); // a redelivery under a new epoch
      if (this.ids.has(key)) return false;
      this.ids.add(key);
      while (this.ids.size > this.maxIds) this.ids.delete(this.ids.values().next().value);
    }
    if (position) this.positions.set(room, position);
    return true;
  }

  /** Take the position from a connect or join answer; for a resume, what came of it. An answer
   * that says "try again" is no outcome yet: null, the stream's own position kept, and
   * `retrying` holds the stream until a later answer. */
  answered(room, answer) {
    room = room ?? null;
    if (answer?.[RESUME_RETRY] === true && this.positions.has(room)) {
      this.retrying.add(room);
      return null;
    }
    this.retrying.delete(room);
    const position = positionOf(answer);
    const known = this.positions.get(room);
    const failed = answer?.recovered === false;
    if (position && (failed || !known || known.epoch !== position.epoch || known.offset < position.offset)) {
      this.positions.set(room, position);
    }
    if (!answer || typeof answer !== "object" || !("recovered" in answer)) return null;
    return {
      room,
      recovered: answer.recovered === true,
      replayed: Number.isInteger(answer.replayed) ? answer.replayed : 0,
      reason: typeof answer.reason === "string" ? answer.reason : null,
    };
  }

  forget(room) {
    this.retrying.delete(room ?? null);
    this.positions.delete(room ?? null);
    this.subscribed.delete(room);
  }

  /** Note a room the server subscribed the client to (an event came from a room it did not
   * join): its position is presented at the next connect. */
  subscribe(room) {
    this.subscribed.add(room);
  }

  /** The `streams` of the connect auth: each server-subscribed room's position (null: none
   * known yet). Once per connect: a room the connect's answers leave out is dropped. */
  connectStreams() {
    this.answeredNow = new Set();
    return Object.fromEntries([...this.subscribed].map((room) => [room, this.since(room)]));
  }

  /** Take a relay:recovery answer of the connect: one per server-subscribed room, then the
   * room-less stream's, which ends the connect's answers. What came of the resume. */
  recovery(answer) {
    const room = answer?.room;
    if (typeof room === "string") {
      this.subscribe(room);
      this.answeredNow?.add(room);
      return this.answered(room, answer);
    }
    if (this.answeredNow) {
      // a token without the room any more (or another user's): not presented again
      for (const r of [...this.subscribed]) if (!this.answeredNow.has(r)) this.subscribed.delete(r);
      this.answeredNow = null;
    }
    return this.answered(null, answer);
  }
}

/** A presence request that was refused, or a room with more members than the server lists:
 * `answer` is the server's answer ({ok: false, error} or {ok: true, count} with no members). */
export class PresenceError extends Error {
  constructor(message, answer) {
    super(message);
    this.name = "PresenceError";
    this.answer = answer;
  }
}

/**
 * A socket.io-client connection that resumes by itself.
 *
 * Listeners (`on(kind, fn)`):
 * - "event": (event, msg): every relayed event once, in order per stream;
 * - "recovery": ({room, recovered, replayed, reason}) after each resume (room: null for the
 *   room-less events, a joined room, or one the server subscribed it to, such as the user's
 *   stream "relay:user:<sub>"); recovered false means events were missed for good: resync
 *   that stream from your own source of truth. A resume the server answers "try again" (its
 *   history unavailable a while, in cluster mode) is not reported: it is asked again, backing
 *   off (reconnectionDelay doubling up to reconnectionDelayMax), until it is served;
 * - "presence": ({room, joined: [{user, info}], left: [user], more?}): who joined and who left
 *   a presence room (the server's PRESENCE_ROOMS) this client is in, as the server sends
 *   `relay:presence`; never an "event" (it has no offset: nothing to resume);
 * - "status": ({state, detail}): "connected", "disconnected" (with the reason), "refused",
 *   "too slow" (the server cut this client for not reading fast enough; it reconnects and
 *   resumes by itself), "closed" (detail: the reason; the app's backend disconnected the
 *   user, after a logout or a ban: this client is done and does not reconnect; `disconnected`
 *   keeps the reason; connect again with a new client and a new token).
 */
export class RelayClient {
  constructor(url, { token = null, rooms = [], namespace = "/", maxIds = MAX_IDS, ...ioOptions } = {}) {
    this.streams = new Streams({ maxIds });
    this.rooms = [...new Set(rooms)];
    this.listeners = { event: [], recovery: [], status: [], presence: [] };
    this.closed = false;
    /** Why the app's backend disconnected the user (null: it did not). */
    this.disconnected = null;
    this.token = token;
    // a resume answered "try again" is asked again after this, doubling up to the max
    this.retryDelayMs = ioOptions.reconnectionDelay ?? 1000;
    this.retryDelayMaxMs = ioOptions.reconnectionDelayMax ?? 5000;
    this.resumeTries = 0;
    this.rejoining = new Map(); // room -> tries, while its join is answered "try again"
    this.resuming = null; // the timer of the next connect that resumes the connect's streams
    const target = namespace === "/" ? url || undefined : `${url || ""}${namespace}`;
    this.socket = io(target, {
      ...ioOptions,
      // called before every (re)connect: a fresh token, and where the room-less stream and
      // the rooms the server subscribed this client to stand
      auth: (cb) => {
        const resume = () => ({ since: this.streams.since(null), streams: this.streams.connectStreams() });
        this._token().then(
          (t) => cb({ ...(t ? { token: t } : {}), ...resume() }),
          () => cb(resume()),
        );
      },
    });
    // socket.io-client hands on events that came before the connect completed (the replay
    // and the connect answer) before "connect" fires: the positions are current here.
    this.socket.on("connect", () => {
      this.refusals = 0;
      this._emit("status", { state: "connected", detail: this.socket.id });
      this._resumeRooms();
    });
    this.socket.on("disconnect", (reason) => {
      this._emit("status", { state: "disconnected", detail: reason });
      // socket.io-client does not reconnect after the server disconnected it: for the relay
      // that is an expired token, so connect again (the auth callback brings a new one).
      if (reason === "io server disconnect" && !this.closed) setTimeout(() => this.socket.connect(), 250);
    });
    this.refusals = 0;
    this.socket.on("connect_error", (err) => {
      if (this.socket.active) return; // a transport failure: socket.io-client retries itself
      // The server refused the connect (a token expired or could not be fetched):
      // socket.io-client gives up here; with a token function, try again, backing off.
      this._emit("status", { state: "refused", detail: err.message });
      if (typeof this.token === "function" && !this.closed) {
        const delay = Math.min(30000, 500 * 2 ** this.refusals++);
        setTimeout(() => { if (!this.closed && !this.socket.connected) this.socket.connect(); }, delay);
      }
    });
    this.socket.onAny((event, payload) => this._onEvent(event, payload));
  }

  /** The rooms the server subscribed this client to without a join (the user's stream
   * "relay:user:<sub>" first, then the token's subscribe claim), as far as its answers told;
   * resumed after every reconnect like joined rooms. */
  get subscribed() {
    return [...this.streams.subscribed];
  }

  on(kind, fn) {
    if (!(kind in this.listeners)) throw new TypeError(`unknown listener kind ${kind}`);
    this.listeners[kind].push(fn);
    return this;
  }

  /** Join `room` now and after every reconnect; resolves to the server's answer (null while
   * disconnected: it is joined on the next connect). */
  async join(room, { since = null } = {}) {
    // A position the page was rendered at (the backend's read API): resumed from, once.
    const seed = positionOf(since);
    if (seed && !this.streams.positions.has(room)) this.streams.positions.set(room, seed);
    if (!this.rooms.includes(room)) this.rooms.push(room);
    if (!this.socket.connected) return null;
    const answer = await this._join(room);
    if (!answer?.ok) {
      this.rooms = this.rooms.filter((r) => r !== room); // refused: not kept, nor its position
      this.streams.forget(room);
    }
    return answer;
  }

  /** Leave `room` and forget its position: a later join starts from then. */
  async leave(room) {
    this.rooms = this.rooms.filter((r) => r !== room);
    this.streams.forget(room);
    return this.socket.connected ? this._call("leave", room) : null;
  }

  /** Who is in presence room `room`, one page: resolves to the server's answer,
   * {ok, room, count, members: [{user, connections, info}], next} (no members above the
   * server's PRESENCE_MAX_MEMBERS; `next`: the `after` of the next page, null on the last), or
   * {ok: false, error} for a refusal (a room without presence, one the token does not allow;
   * "not connected" while disconnected). Any client the token allows in the room may ask. */
  async presence(room, { after = null } = {}) {
    if (!this.socket.connected) return { ok: false, room, error: "not connected" };
    return this._retried("presence", { room, after: after ?? null });
  }

  /** Every member of presence room `room`, page after page: resolves to
   * [{user, connections, info}, ...], sorted by user; rejects with a PresenceError (its
   * `answer` is the server's) when a page is refused or the room has more members than the
   * server lists. Stops at the last page, and at the largest count the server gave (a `next`
   * asked for twice, or an empty page, ends it too): never an endless loop. */
  async members(room) {
    const members = [];
    const asked = new Set();
    let after = null;
    let count = 0;
    for (;;) {
      const answer = await this.presence(room, { after });
      if (!answer?.ok) throw new PresenceError(`presence of room ${room}: ${answer?.error}`, answer);
      if (!Array.isArray(answer.members)) {
        throw new PresenceError(`room ${room} has ${answer.count} members: more than the server lists`, answer);
      }
      members.push(...answer.members);
      count = Math.max(count, Number.isInteger(answer.count) ? answer.count : 0);
      const next = answer.next ?? null;
      if (next === null || asked.has(next) || answer.members.length === 0 || members.length >= count) {
        return members;
      }
      asked.add(next);
      after = next;
    }
  }

  /** Send a client event (relayed only if the server allows it); resolves to the answer. */
  emit(event, data) {
    return this._call(event, data);
  }

  close() {
    this.closed = true;
    clearTimeout(this.resuming);
    this.socket.disconnect();
  }

  async _token() {
    return typeof this.token === "function" ? await this.token() : this.token;
  }

  _call(event, data) {
    return this.socket.timeout(CALL_TIMEOUT_MS).emitWithAck(event, data);
  }

  async _resumeRooms() {
    for (const room of [...this.rooms]) {
      try {
        await this._join(room);
      } catch (err) {
        return; // disconnected meanwhile: the next connect resumes again
      }
    }
  }

  /** One join of `room` at a time: a join asked for while one is under way (the app's, from
   * a status listener, and the reconnect's resume) shares its answer instead of replaying the
   * room a second time. */
  _join(room) {
    this._joining ??= new Map();
    if (!this._joining.has(room)) {
      const joining = this._joinNow(room).finally(() => this._joining.delete(room));
      this._joining.set(room, joining);
    }
    return this._joining.get(room);
  }

  async _joinNow(room) {
    const answer = await this._retried("join", () => ({ room, since: this.streams.since(room) }));
    if (answer?.ok) this._report(this.streams.answered(room, answer));
    if (this.streams.retrying.has(room)) this._rejoinLater(room);
    else this.rejoining.delete(room);
    return answer;
  }

  /** Join `room` again, backing off, while its resume is answered "try again" (a reconnect
   * meanwhile resumes it anyway). */
  _rejoinLater(room) {
    const tries = this.rejoining.get(room) ?? 0;
    this.rejoining.set(room, tries + 1);
    const delay = Math.min(this.retryDelayMs * 2 ** tries, this.retryDelayMaxMs);
    setTimeout(() => {
      if (this.closed || !this.socket.connected || !this.rooms.includes(room)) return;
      if (this.streams.retrying.has(room)) this._join(room).catch(() => {});
    }, delay);
  }

  /** After the connect's last answer: if a stream's resume was answered "try again", connect
   * again (which resumes every stream from its own position), backing off. */
  _resumeAgainIfAsked() {
    const s = this.streams;
    if (!s.retrying.has(null) && ![...s.subscribed].some((room) => s.retrying.has(room))) {
      this.resumeTries = 0;
      return;
    }
    if (this.closed || this.resuming) return;
    const delay = Math.min(this.retryDelayMs * 2 ** this.resumeTries++, this.retryDelayMaxMs);
    this.resuming = setTimeout(() => {
      this.resuming = null;
      if (this.closed) return;
      this.socket.disconnect();
      this.socket.connect();
    }, delay);
  }

  /** `event` with `request` (or what the function gives, made again for each try), tried
   * again while the server refuses it for the connection's rate (CLIENT_EVENT_RATE). */
  async _retried(event, request) {
    let answer;
    for (let attempt = 0; attempt < JOIN_ATTEMPTS; attempt++) {
      answer = await this._call(event, typeof request === "function" ? request() : request);
      if (!String(answer?.error ?? "").includes("rate limit")) break;
      await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_MS));
    }
    return answer;
  }

  _onEvent(event, payload) {
    // one per server-subscribed room (its room), then the room-less stream's (null)
    if (event === RECOVERY_EVENT) {
      this._report(this.streams.recovery(payload));
      if (typeof payload?.room !== "string") this._resumeAgainIfAsked();
    }
    else if (event === OVERFLOW_EVENT) this._emit("status", { state: "too slow", detail: payload?.reason });
    else if (event === DISCONNECTED_EVENT) {
      // The backend disconnected the user: stop for good (the server closes the connection;
      // closing it here too means no reconnect of socket.io-client's own either).
      this.disconnected = typeof payload?.reason === "string" ? payload.reason : "";
      this.closed = true;
      this._emit("status", { state: "closed", detail: this.disconnected });
      this.socket.disconnect(); // then "disconnected", "io client disconnect"
    }
    // who joined and who left a presence room: no offset, no id, not an "event"
    else if (event === PRESENCE_EVENT) this._emit("presence", payload);
    else if (event === EXPIRED_EVENT || event.startsWith(RESERVED_PREFIX)) return;
    else if (this.streams.accept(payload)) {
      const room = payload?.room;
      if (typeof room === "string" && !this.rooms.includes(room)) this.streams.subscribe(room);
      this._emit("event", event, payload);
    }
  }

  _report(recovery) {
    if (recovery) this._emit("recovery", recovery);
  }

  _emit(kind, ...args) {
    for (const fn of this.listeners[kind]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`relay.js: a ${kind} listener failed`, err);
      }
    }
  }
}

/** `new RelayClient(url, options)`: url "" (or undefined) is the page's own origin. */
export function connect(url, options = {}) {
  return new RelayClient(url, options);
}
