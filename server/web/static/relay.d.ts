// Types for relay.js, the SQS push relay's Socket.IO client helper (npm: sqs-push-relay-client).
// What the server sends and answers: the relay's manual, "The protocol".
import type { ManagerOptions, Socket, SocketOptions } from "socket.io-client";

/** Ids remembered per client by default (10000): a bound on memory. */
export declare const MAX_IDS: number;

/** Where a stream stands: the offset of its last event in the server run `epoch`. */
export interface Position {
  epoch: string;
  offset: number;
}

/** One relayed event's argument, always this object. */
export interface RelayMessage {
  /** The SQS MessageId: unique per message. */
  id: string;
  /** The envelope's data (or the whole body): any JSON value. */
  data: unknown;
  /** The room it was sent to, or null for every client of the namespace. */
  room: string | null;
  /** Its position in its stream (namespace + room): 1, 2, 3, ... within an epoch. */
  offset: number;
  epoch: string;
  /** When SQS accepted the message, ms since the Unix epoch. */
  sent_ms?: number;
  /** When a worker received it from SQS, ms since the Unix epoch. */
  received_ms?: number;
  /** When the server emitted it, ms since the Unix epoch. */
  emitted_ms?: number;
  [key: string]: unknown;
}

/** What came of a resume, for the room-less stream (`room` null), a joined room, or a room the
 * server subscribed the client to (the user's stream "relay:user:<sub>", the token's
 * subscribe claim). */
export interface Recovery {
  room: string | null;
  /** false: events were missed for good; resync this stream from your source of truth. */
  recovered: boolean;
  /** How many missed events were sent again (they came as "event"s before this). */
  replayed: number;
  /** Why it was not recovered; null when it was. */
  reason: string | null;
}

/** "closed": the app's backend disconnected the user (a logout, a ban): the client is closed
 * and does not reconnect. */
export type StatusState = "connected" | "disconnected" | "refused" | "too slow" | "closed";

export interface Status {
  state: StatusState;
  /** connected: the socket's id; disconnected: socket.io-client's reason; refused: the
   * server's message; too slow, closed: the server's reason. */
  detail: string | undefined;
}

/** The server's answer to a join (or a leave). */
export interface JoinAnswer {
  ok: boolean;
  room?: string;
  epoch?: string;
  offset?: number;
  recovered?: boolean;
  /** true: the history could not be read now and nothing is known to be lost ("try again"):
   * the helper keeps the room's position and joins again, backing off. */
  retry?: boolean;
  replayed?: number;
  reason?: string;
  error?: string;
  [key: string]: unknown;
}

/** One member of a presence room (a user, however many connections it has). */
export interface PresenceMember {
  user: string;
  /** The user's connections in the room across all servers; 0 within its reconnect grace. */
  connections: number;
  /** The public info object of the user's token (PRESENCE_INFO_CLAIM), or null. */
  info: Record<string, unknown> | null;
}

/** The server's answer to a presence request: one page of a presence room's members. */
export interface PresenceAnswer {
  ok: boolean;
  room?: string;
  /** How many members the room has. */
  count?: number;
  /** This page, sorted by user; left out when the room has more than PRESENCE_MAX_MEMBERS. */
  members?: PresenceMember[];
  /** The `after` of the next page; null on the last. */
  next?: string | null;
  /** Why it was refused (ok false). */
  error?: string;
  [key: string]: unknown;
}

/** `relay:presence`: who joined and who left a presence room this client is in. */
export interface PresenceNotice {
  room: string;
  joined: { user: string; info: Record<string, unknown> | null }[];
  left: string[];
  /** How many joins and leaves were left out of this notice: ask for the members. */
  more?: number;
}

/** A presence request refused, or a room with more members than the server lists. */
export declare class PresenceError extends Error {
  constructor(message: string, answer: PresenceAnswer | null | undefined);
  /** The server's answer. */
  readonly answer: PresenceAnswer | null | undefined;
}

/** A JWT, or a function called before every (re)connect that returns one. */
export type TokenSource =
  | string
  | null
  | (() => string | null | undefined | Promise<string | null | undefined>);

/** `connect`'s options: the relay's own, and socket.io-client's (all but `auth`, which the
 * helper fills with the token and the position to resume from). */
export interface RelayOptions extends Partial<Omit<ManagerOptions & SocketOptions, "auth">> {
  token?: TokenSource;
  /** Rooms to join now and after every reconnect. */
  rooms?: string[];
  /** The Socket.IO namespace; "/" by default. */
  namespace?: string;
  /** Ids remembered to drop repeats across epochs; MAX_IDS by default. */
  maxIds?: number;
}

export type EventListener = (event: string, message: RelayMessage) => void;
export type RecoveryListener = (recovery: Recovery) => void;
export type StatusListener = (status: Status) => void;
export type PresenceListener = (notice: PresenceNotice) => void;

/** Positions per stream (room, or null for the room-less events), recently seen ids, and the
 * rooms the server subscribed the client to. */
export declare class Streams {
  constructor(options?: { maxIds?: number });
  readonly maxIds: number;
  positions: Map<string | null, Position>;
  ids: Set<string>;
  /** Rooms the server subscribed the client to without a join, in its order. */
  subscribed: Set<string>;
  /** Streams whose last resume was answered "try again" (`retry`), none served since: each
   * keeps its position and takes only the event right after it until a resume is served. */
  retrying: Set<string | null>;
  /** The `since` to send on a resume, or null when none is known. */
  since(room?: string | null): Position | null;
  /** Record an event; true if the app should get it, false if it is a repeat. */
  accept(payload: unknown): boolean;
  /** Take the position from a connect or join answer; for a resume, what came of it (null for
   * an answer that says "try again": the stream is then `retrying`). */
  answered(room: string | null | undefined, answer: unknown): Recovery | null;
  forget(room: string | null | undefined): void;
  /** Note a room the server subscribed the client to: presented at the next connect. */
  subscribe(room: string): void;
  /** The `streams` of the connect auth (each server-subscribed room's position); once per
   * connect: a room the connect's answers leave out is dropped. */
  connectStreams(): Record<string, Position | null>;
  /** Take a relay:recovery answer of the connect (a server-subscribed room's, or last the
   * room-less stream's); for a resume, what came of it. */
  recovery(answer: unknown): Recovery | null;
}

/** A socket.io-client connection that resumes by itself. */
export declare class RelayClient {
  constructor(url: string | undefined, options?: RelayOptions);
  readonly streams: Streams;
  /** The rooms joined now and after every reconnect. */
  rooms: string[];
  /** The rooms the server subscribed this client to without a join (the user's stream
   * "relay:user:<sub>" first, then the token's subscribe claim), resumed after every
   * reconnect like joined rooms. */
  readonly subscribed: string[];
  /** socket.io-client's socket. */
  readonly socket: Socket;
  closed: boolean;
  /** Why the app's backend disconnected the user (a logout, a ban; status "closed"), or null:
   * after it this client is closed and does not reconnect. */
  disconnected: string | null;
  token: TokenSource;
  /** Every relayed event once, in order per stream. */
  on(kind: "event", listener: EventListener): this;
  /** After each resume of a stream (room-less, joined, or server-subscribed); recovered
   * false means resync that stream. */
  on(kind: "recovery", listener: RecoveryListener): this;
  /** Connection changes; it reconnects and resumes by itself after each. */
  on(kind: "status", listener: StatusListener): this;
  /** Who joined and who left a presence room this client is in (`relay:presence`); never an
   * "event". */
  on(kind: "presence", listener: PresenceListener): this;
  /** Join `room` now and after every reconnect: the server's answer, or null while
   * disconnected (it is joined on the next connect). `since`: the position the page was
   * rendered at (the backend's read API, GET /api/streams): what came after it is replayed
   * first, nothing before it; ignored once the stream has a position of its own. */
  join(room: string, options?: { since?: Position | null }): Promise<JoinAnswer | null>;
  /** Leave `room` and forget its position: the server's answer, or null while disconnected. */
  leave(room: string): Promise<JoinAnswer | null>;
  /** Who is in presence room `room`, one page from `after` (null: the first): the server's
   * answer; {ok: false, error} when refused, or while disconnected ("not connected"). */
  presence(room: string, options?: { after?: string | null }): Promise<PresenceAnswer>;
  /** Every member of presence room `room`, through all pages (bounded by the server's count);
   * rejects with a PresenceError when refused or when the room is too large to list. */
  members(room: string): Promise<PresenceMember[]>;
  /** Send a client event (relayed only if the server allows it); the server's answer. */
  emit(event: string, data?: unknown): Promise<unknown>;
  close(): void;
}

/** `new RelayClient(url, options)`: url "" (or undefined) is the page's own origin. */
export declare function connect(url?: string, options?: RelayOptions): RelayClient;
