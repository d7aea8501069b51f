// A Yjs peer process driven by the Python tests (tests/support/jsclient.py).
//
// Protocol: one JSON object per line.
//   stdin  -> {"id": 1, "cmd": "connect", ...}
//   stdout <- {"id": 1, "ok": true, "result": ...}
//             {"id": 1, "ok": false, "error": "message", "kind": "timeout", ...}
//             {"event": "close", "handle": "a", "code": 4401, "reason": "..."}   (unsolicited)
// stdout carries nothing else (console.log is redirected to stderr).
// Commands run concurrently: a pending wait_* never blocks another command.
// Every wait has a timeout (timeout_ms, default 10000) and then answers with
// an error of kind "timeout"; nothing here can hang the test.
//
// Connections are addressed by a caller-chosen `handle`. Two kinds:
//   "yws"  y-websocket WebsocketProvider (room = URL path), cmd "connect"
//   "hp"   HocuspocusProvider (many documents per socket), cmd "connect_hocuspocus"
//
// Commands (besides "id" and "cmd"; *_ms are milliseconds):
//   ping                                   -> "pong"
//   mint {secret, claims?, expires_in_s?}  -> an HS256 JWT (tests/js/mint.mjs, node:crypto)
//   connect {handle, url, room, params?, protocols?, headers?, ca_file?, cert_file?,
//            key_file?, reject_unauthorized?, reconnect?, max_backoff_ms?,
//            resync_interval_ms?, wait? (false: don't wait for sync), timeout_ms?,
//            keep_on_error?, trace?}       -> {client_id}   y-websocket, replies once synced
//   connect_hocuspocus {handle, url, name, token?, socket?, wait? ("synced" | "authenticated"
//            | "none"), session_awareness?, flush_delay_ms?, delay_ms?, max_backoff_ms?,
//            max_attempts?, headers?, ca_file?, ..., timeout_ms?, keep_on_error?, trace?}
//                                          -> {client_id, scope}; fails fast with
//                                             kind "authenticationFailed" + reason
//   hocuspocus_socket {socket, url, ...}   a shared socket for several connect_hocuspocus
//   close_socket {socket}
//   insert {handle, text, index? (default: end), name? (Y.Text, default "text")} -> text
//   delete {handle, index, length, name?}  -> text
//   text {handle, name?}                   -> text
//   map_set {handle, key, value, name? (default "map")}; map {handle, name?} -> object
//   format {handle, index, length, attributes, name?}  Y.Text formatting -> delta
//   array_push {handle, values (list), name? (default "array")} -> array
//   to_json {handle, types: {field: "text"|"delta"|"map"|"array"|"xml"}} -> {field: value}
//                                          (what the HTTP API's /json export must match)
//   encode_state / state_vector {handle}   -> base64; apply_update {handle, update (base64)}
//   wait_text {handle, equals? | contains? (string or list), name?, timeout_ms?} -> text
//   wait_synced {handle, acked? (hp: server acked all our updates), timeout_ms?}
//   set_awareness {handle, field? (default "user"), value} -> local state
//   clear_awareness {handle}               (setLocalState(null): "I left")
//   awareness {handle}                     -> {clientID: state} of all known states
//   wait_awareness {handle, value?, path? (default "user.name"), present? (default true),
//            count?, timeout_ms?}          -> states
//   client_id {handle}                     -> doc.clientID
//   send_stateless {handle, payload}       (hp)
//   disconnect {handle}                    graceful close; replies once the socket closed
//   terminate {handle}                     drop TCP without a close frame (server sees 1006);
//                                          the provider then reconnects
//   exit                                   close everything, reply, exit
//
// Events (all carry "handle"):
//   status {status}                 connecting / connected / disconnected
//   synced {state}                  handshake done (true) / lost (false)
//   close {code, reason, local}     a socket of this connection closed
//                                   (local=true: we closed it, code null)
//   closed {code, reason}           yws: server close that stops reconnecting (4400-4499)
//   connection_error {message}      yws: socket error (e.g. HTTP 403 on upgrade)
//   permission_denied {reason}      yws: auth message "permission denied"
//   authenticated {scope}           hp
//   authenticationFailed {reason}   hp
//   stateless {payload}             hp
//   text {text}, awareness {states} only with "trace": true on connect
//   socket_close {socket, code, reason}, socket_status {socket, status}
//                                   a shared hocuspocus_socket (handle null)
//   error {message, stack}          an exception escaped somewhere in this process (handle null)

import { Buffer } from 'node:buffer'
import fs from 'node:fs'
import * as readline from 'node:readline'

import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import * as Y from 'yjs'

import { mintToken } from './mint.mjs'

// Libraries log with console.log; stdout is reserved for the protocol.
console.log = console.error
console.info = console.error
console.debug = console.error

const DEFAULT_TIMEOUT_MS = 10000
const MAX_TIMEOUT_MS = 300000
const CLOSE_WAIT_MS = 5000

class CommandError extends Error {
  constructor (message, extra = {}) {
    super(message)
    this.extra = extra
  }
}

const write = (obj) => {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const emit = (event, handle, data = {}) => write({ ...data, event, handle })

/** @type {Map<string, Conn>} */
const conns = new Map()
/** @type {Map<string, {socket: HocuspocusProviderWebsocket, url: string}>} */
const sockets = new Map()

const need = (msg, key) => {
  if (msg[key] === undefined || msg[key] === null) {
    throw new CommandError(`missing "${key}"`, { kind: 'bad_request' })
  }
  return msg[key]
}

const timeoutOf = (msg) => {
  const t = msg.timeout_ms ?? DEFAULT_TIMEOUT_MS
  if (typeof t !== 'number' || !(t > 0) || t > MAX_TIMEOUT_MS) {
    throw new CommandError(`timeout_ms must be in (0, ${MAX_TIMEOUT_MS}], got ${t}`, { kind: 'bad_request' })
  }
  return t
}

/** A ws subclass carrying per-connection options (headers, TLS material). */
const makeWS = (msg) => {
  const opts = {}
  if (msg.headers) opts.headers = msg.headers
  if (msg.ca_file) opts.ca = fs.readFileSync(msg.ca_file)
  if (msg.cert_file) opts.cert = fs.readFileSync(msg.cert_file)
  if (msg.key_file) opts.key = fs.readFileSync(msg.key_file)
  if (msg.reject_unauthorized === false) opts.rejectUnauthorized = false
  if (Object.keys(opts).length === 0) return WebSocket
  return class extends WebSocket {
    constructor (address, protocols) {
      super(address, protocols, opts)
    }
  }
}

const closeRecord = (ev) => (ev
  ? { code: ev.code ?? null, reason: ev.reason ? String(ev.reason) : '', local: false }
  : { code: null, reason: '', local: true })

class Conn {
  constructor (kind, handle, doc, trace) {
    this.kind = kind
    this.handle = handle
    this.doc = doc
    this.trace = !!trace
    this.provider = null
    this.closes = []
    this.authFailure = null
    this.destroyed = false
    /** @type {Set<() => void>} */
    this.waiters = new Set()
    doc.on('update', () => {
      this.poke()
      if (this.trace) emit('text', handle, { text: this.doc.getText('text').toString() })
    })
  }

  get awareness () { return this.provider.awareness }

  get synced () {
    return this.kind === 'yws' ? this.provider.synced : this.provider.isSynced
  }

  watchAwareness () {
    this.awareness.on('change', () => {
      this.poke()
      if (this.trace) emit('awareness', this.handle, { states: this.awarenessStates() })
    })
    this.awareness.on('update', () => this.poke())
  }

  awarenessStates () {
    return Object.fromEntries(Array.from(this.awareness.getStates().entries()).map(([k, v]) => [String(k), v]))
  }

  /** The live ws.WebSocket of this connection, or null. */
  socket () {
    return this.kind === 'yws' ? this.provider.ws : this.provider.configuration.websocketProvider.webSocket
  }

  poke () {
    for (const w of Array.from(this.waiters)) w()
  }

  /**
   * Resolve with check()'s value once it is not undefined; re-evaluated on
   * every document/awareness/connection change. check() may throw to fail.
   */
  waitFor (check, timeoutMs, describe) {
    return new Promise((resolve, reject) => {
      let timer = null
      const finish = (fn, value) => {
        this.waiters.delete(evaluate)
        clearTimeout(timer)
        fn(value)
      }
      const evaluate = () => {
        if (this.destroyed) {
          finish(reject, new CommandError(`connection ${JSON.stringify(this.handle)} was disconnected while waiting for ${describe()}`, {
            kind: 'disconnected',
            closes: this.closes
          }))
          return
        }
        let value
        try {
          value = check()
        } catch (err) {
          finish(reject, err)
          return
        }
        if (value !== undefined) finish(resolve, value)
      }
      timer = setTimeout(() => {
        finish(reject, new CommandError(`timeout after ${timeoutMs} ms waiting for ${describe()}`, {
          kind: 'timeout',
          closes: this.closes
        }))
      }, timeoutMs)
      this.waiters.add(evaluate)
      evaluate()
    })
  }

  /** Close the socket gracefully and wait until it is closed (bounded). */
  async destroy () {
    if (this.destroyed) return
    this.destroyed = true
    // A provider on a shared Hocuspocus socket only detaches; the socket stays open.
    const ownsSocket = this.kind === 'yws' || !!this.ownSocket
    const ws = ownsSocket ? this.socket() : null
    const closed = ws && ws.readyState !== WebSocket.CLOSED
      ? new Promise((resolve) => {
        const timer = setTimeout(() => { try { ws.terminate() } catch {} resolve() }, CLOSE_WAIT_MS)
        ws.once('close', () => { clearTimeout(timer); resolve() })
      })
      : Promise.resolve()
    this.provider.destroy()
    if (this.ownSocket) this.ownSocket.destroy()
    this.poke()
    await closed
  }
}

const getConn = (msg) => {
  const handle = need(msg, 'handle')
  const conn = conns.get(handle)
  if (!conn) throw new CommandError(`unknown handle ${JSON.stringify(handle)}`, { kind: 'unknown_handle' })
  return conn
}

const newHandle = (msg) => {
  const handle = need(msg, 'handle')
  if (conns.has(handle)) throw new CommandError(`handle ${JSON.stringify(handle)} already in use`, { kind: 'bad_request' })
  return handle
}

const failConnect = async (conn, err, keep) => {
  if (!keep) {
    conns.delete(conn.handle)
    await conn.destroy()
  }
  throw err
}

// ---------------------------------------------------------------- y-websocket

async function cmdConnect (msg) {
  const handle = newHandle(msg)
  const doc = new Y.Doc()
  const conn = new Conn('yws', handle, doc, msg.trace)
  const opts = {
    WebSocketPolyfill: makeWS(msg),
    disableBc: true,
    params: msg.params ?? {},
    protocols: msg.protocols ?? [],
    maxBackoffTime: msg.max_backoff_ms ?? 2500,
    resyncInterval: msg.resync_interval_ms ?? -1
  }
  if (msg.reconnect === false) opts.shouldReconnect = () => false
  const provider = new WebsocketProvider(need(msg, 'url'), need(msg, 'room'), doc, opts)
  conn.provider = provider
  conns.set(handle, conn)
  conn.watchAwareness()
  // y-websocket only console.warns a permission-denied auth message.
  provider.messageHandlers[2] = (_encoder, decoder) => {
    authProtocol.readAuthMessage(decoder, doc, (_doc, reason) => {
      emit('permission_denied', handle, { reason })
      conn.poke()
    })
  }
  provider.on('status', ({ status }) => { emit('status', handle, { status }); conn.poke() })
  provider.on('sync', (state) => { emit('synced', handle, { state }); conn.poke() })
  provider.on('connection-close', (ev) => {
    const rec = closeRecord(ev)
    conn.closes.push(rec)
    emit('close', handle, rec)
    conn.poke()
  })
  provider.on('closed', (ev) => { emit('closed', handle, { code: ev.code, reason: ev.reason }); conn.poke() })
  provider.on('connection-error', (ev) => {
    emit('connection_error', handle, { message: String(ev?.message ?? ev?.error?.message ?? ev?.type ?? ev) })
  })
  if (msg.wait === false || msg.wait === 'none') return { client_id: doc.clientID }
  const timeoutMs = timeoutOf(msg)
  try {
    await conn.waitFor(() => (provider.synced ? true : undefined), timeoutMs,
      () => `y-websocket sync of room ${JSON.stringify(msg.room)} at ${msg.url} (closes: ${JSON.stringify(conn.closes)})`)
  } catch (err) {
    await failConnect(conn, err, msg.keep_on_error)
  }
  return { client_id: doc.clientID }
}

// ---------------------------------------------------------------- hocuspocus

const hpSocketOptions = (msg) => ({
  url: need(msg, 'url'),
  WebSocketPolyfill: makeWS(msg),
  // Reconnect quickly in tests; the defaults back off up to 30 s.
  delay: msg.delay_ms ?? 100,
  minDelay: msg.delay_ms ?? 100,
  maxDelay: msg.max_backoff_ms ?? 2500,
  maxAttempts: msg.max_attempts ?? 0,
  messageReconnectTimeout: msg.message_reconnect_timeout_ms ?? 30000
})

async function cmdHocuspocusSocket (msg) {
  const name = need(msg, 'socket')
  if (sockets.has(name)) throw new CommandError(`socket ${JSON.stringify(name)} already exists`, { kind: 'bad_request' })
  const socket = new HocuspocusProviderWebsocket(hpSocketOptions(msg))
  socket.on('close', ({ event }) => emit('socket_close', null, { socket: name, ...closeRecord(event) }))
  socket.on('status', ({ status }) => emit('socket_status', null, { socket: name, status }))
  sockets.set(name, { socket, url: msg.url })
  return { socket: name }
}

async function cmdCloseSocket (msg) {
  const name = need(msg, 'socket')
  const entry = sockets.get(name)
  if (!entry) throw new CommandError(`unknown socket ${JSON.stringify(name)}`, { kind: 'unknown_handle' })
  sockets.delete(name)
  entry.socket.destroy()
  return true
}

async function cmdConnectHocuspocus (msg) {
  const handle = newHandle(msg)
  const doc = new Y.Doc()
  const conn = new Conn('hp', handle, doc, msg.trace)
  let websocketProvider
  if (msg.socket) {
    const entry = sockets.get(msg.socket)
    if (!entry) throw new CommandError(`unknown socket ${JSON.stringify(msg.socket)}`, { kind: 'unknown_handle' })
    websocketProvider = entry.socket
  } else {
    websocketProvider = new HocuspocusProviderWebsocket(hpSocketOptions(msg))
    conn.ownSocket = websocketProvider
  }
  const provider = new HocuspocusProvider({
    websocketProvider,
    name: need(msg, 'name'),
    document: doc,
    token: msg.token ?? null,
    sessionAwareness: msg.session_awareness ?? false,
    flushDelay: msg.flush_delay_ms ?? false
  })
  conn.provider = provider
  conns.set(handle, conn)
  conn.watchAwareness()
  provider.on('status', ({ status }) => { emit('status', handle, { status }); conn.poke() })
  provider.on('synced', ({ state }) => { emit('synced', handle, { state }); conn.poke() })
  provider.on('authenticated', ({ scope }) => { emit('authenticated', handle, { scope }); conn.poke() })
  provider.on('authenticationFailed', ({ reason }) => {
    conn.authFailure = reason ?? ''
    emit('authenticationFailed', handle, { reason })
    conn.poke()
  })
  provider.on('stateless', ({ payload }) => emit('stateless', handle, { payload }))
  // SyncStatus acks change no document state; wait_synced(acked) needs the nudge.
  provider.on('unsyncedChanges', () => conn.poke())
  provider.on('close', ({ event }) => {
    const rec = closeRecord(event)
    conn.closes.push(rec)
    emit('close', handle, rec)
    conn.poke()
  })
  // With a caller-supplied socket the provider does not attach itself.
  provider.attach()

  const wait = msg.wait ?? 'synced'
  if (wait === false || wait === 'none') return { client_id: doc.clientID }
  if (wait !== 'synced' && wait !== 'authenticated') {
    throw new CommandError(`wait must be "synced", "authenticated" or "none", got ${JSON.stringify(wait)}`, { kind: 'bad_request' })
  }
  const timeoutMs = timeoutOf(msg)
  try {
    await conn.waitFor(() => {
      if (conn.authFailure !== null) {
        throw new CommandError(`authenticationFailed: ${conn.authFailure}`, { kind: 'authenticationFailed', reason: conn.authFailure })
      }
      if (wait === 'authenticated' ? provider.isAuthenticated : provider.isSynced) return true
      return undefined
    }, timeoutMs, () => `hocuspocus ${wait} of ${JSON.stringify(msg.name)} at ${msg.url} (closes: ${JSON.stringify(conn.closes)})`)
  } catch (err) {
    await failConnect(conn, err, msg.keep_on_error)
  }
  return { client_id: doc.clientID, scope: provider.authorizedScope ?? null }
}

// ---------------------------------------------------------------- document

const textOf = (conn, msg) => conn.doc.getText(msg.name ?? 'text')

function cmdInsert (msg) {
  const conn = getConn(msg)
  const text = textOf(conn, msg)
  const index = msg.index ?? text.length
  text.insert(index, String(need(msg, 'text')))
  return text.toString()
}

function cmdDelete (msg) {
  const conn = getConn(msg)
  const text = textOf(conn, msg)
  text.delete(need(msg, 'index'), need(msg, 'length'))
  return text.toString()
}

const cmdText = (msg) => textOf(getConn(msg), msg).toString()

function cmdMapSet (msg) {
  const conn = getConn(msg)
  conn.doc.getMap(msg.name ?? 'map').set(String(need(msg, 'key')), msg.value ?? null)
  return true
}

const cmdMap = (msg) => getConn(msg).doc.getMap(msg.name ?? 'map').toJSON()

function cmdFormat (msg) {
  const text = textOf(getConn(msg), msg)
  text.format(need(msg, 'index'), need(msg, 'length'), need(msg, 'attributes'))
  return text.toDelta()
}

function cmdArrayPush (msg) {
  const array = getConn(msg).doc.getArray(msg.name ?? 'array')
  array.push(need(msg, 'values'))
  return array.toJSON()
}

function cmdToJson (msg) {
  const doc = getConn(msg).doc
  const out = {}
  for (const [field, kind] of Object.entries(need(msg, 'types'))) {
    if (kind === 'text') out[field] = doc.getText(field).toString()
    else if (kind === 'delta') out[field] = doc.getText(field).toDelta()
    else if (kind === 'map') out[field] = doc.getMap(field).toJSON()
    else if (kind === 'array') out[field] = doc.getArray(field).toJSON()
    else if (kind === 'xml') out[field] = doc.getXmlFragment(field).toString()
    else throw new CommandError(`unknown kind ${JSON.stringify(kind)}`, { kind: 'bad_request' })
  }
  return out
}

const cmdEncodeState = (msg) => Buffer.from(Y.encodeStateAsUpdate(getConn(msg).doc)).toString('base64')

const cmdStateVector = (msg) => Buffer.from(Y.encodeStateVector(getConn(msg).doc)).toString('base64')

function cmdApplyUpdate (msg) {
  Y.applyUpdate(getConn(msg).doc, Buffer.from(need(msg, 'update'), 'base64'), 'jsclient')
  return true
}

async function cmdWaitText (msg) {
  const conn = getConn(msg)
  const text = textOf(conn, msg)
  const timeoutMs = timeoutOf(msg)
  const contains = msg.contains === undefined ? [] : [].concat(msg.contains)
  if (msg.equals === undefined && contains.length === 0) {
    throw new CommandError('wait_text needs "equals" or "contains"', { kind: 'bad_request' })
  }
  return conn.waitFor(() => {
    const s = text.toString()
    if (msg.equals !== undefined && s !== msg.equals) return undefined
    if (!contains.every((part) => s.includes(part))) return undefined
    return s
  }, timeoutMs, () => `text ${msg.equals !== undefined ? `== ${JSON.stringify(msg.equals)}` : ''}` +
    `${contains.length ? ` containing ${JSON.stringify(contains)}` : ''}; current ${JSON.stringify(text.toString())}`)
}

async function cmdWaitSynced (msg) {
  const conn = getConn(msg)
  const timeoutMs = timeoutOf(msg)
  return conn.waitFor(() => {
    if (!conn.synced) return undefined
    // Hocuspocus acks every update (SyncStatus); "acked" = the server applied all of ours.
    if (msg.acked && conn.kind === 'hp' && conn.provider.hasUnsyncedChanges) return undefined
    return true
  }, timeoutMs, () => `synced${msg.acked ? ' and acked' : ''} (synced=${conn.synced}${conn.kind === 'hp' ? `, unsyncedChanges=${conn.provider.unsyncedChanges}` : ''}, closes: ${JSON.stringify(conn.closes)})`)
}

// ---------------------------------------------------------------- awareness

function cmdSetAwareness (msg) {
  const conn = getConn(msg)
  conn.awareness.setLocalStateField(msg.field ?? 'user', msg.value ?? null)
  return conn.awareness.getLocalState()
}

function cmdClearAwareness (msg) {
  getConn(msg).awareness.setLocalState(null)
  return true
}

const cmdAwareness = (msg) => getConn(msg).awarenessStates()

const lookup = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj)

async function cmdWaitAwareness (msg) {
  const conn = getConn(msg)
  const timeoutMs = timeoutOf(msg)
  const path = msg.path ?? 'user.name'
  const present = msg.present ?? true
  const hasValue = msg.value !== undefined
  if (!hasValue && msg.count === undefined) {
    throw new CommandError('wait_awareness needs "value" (with "path", "present") and/or "count"', { kind: 'bad_request' })
  }
  return conn.waitFor(() => {
    const states = conn.awarenessStates()
    const values = Object.values(states)
    if (msg.count !== undefined && values.length !== msg.count) return undefined
    if (hasValue) {
      const found = values.some((s) => JSON.stringify(lookup(s, path)) === JSON.stringify(msg.value))
      if (found !== present) return undefined
    }
    return states
  }, timeoutMs, () => `awareness ${hasValue ? `${path}=${JSON.stringify(msg.value)} ${present ? 'present' : 'absent'}` : ''}` +
    `${msg.count !== undefined ? ` count=${msg.count}` : ''}; current ${JSON.stringify(conn.awarenessStates())}`)
}

// ---------------------------------------------------------------- misc

const cmdClientId = (msg) => getConn(msg).doc.clientID

function cmdSendStateless (msg) {
  const conn = getConn(msg)
  if (conn.kind !== 'hp') throw new CommandError('send_stateless is a Hocuspocus command', { kind: 'bad_request' })
  conn.provider.sendStateless(String(need(msg, 'payload')))
  return true
}

/** The provider's bookkeeping that the server drives (Authenticated, SyncStatus). */
function cmdHocuspocusState (msg) {
  const conn = getConn(msg)
  if (conn.kind !== 'hp') throw new CommandError('hocuspocus_state is a Hocuspocus command', { kind: 'bad_request' })
  const p = conn.provider
  return {
    synced: p.isSynced,
    unsynced_changes: p.unsyncedChanges,
    authenticated: p.isAuthenticated,
    scope: p.authorizedScope ?? null
  }
}

async function cmdDisconnect (msg) {
  const conn = getConn(msg)
  conns.delete(conn.handle)
  await conn.destroy()
  return true
}

/** Drop the TCP connection without a close frame (the server sees 1006). The provider reconnects. */
function cmdTerminate (msg) {
  const conn = getConn(msg)
  const ws = conn.socket()
  if (!ws) throw new CommandError('no open socket', { kind: 'not_connected' })
  ws.terminate()
  return true
}

async function shutdown () {
  await Promise.allSettled(Array.from(conns.values()).map((c) => c.destroy()))
  conns.clear()
  for (const { socket } of sockets.values()) socket.destroy()
  sockets.clear()
}

let exiting = false
async function cmdExit () {
  exiting = true
  await shutdown()
  return true
}

const commands = {
  ping: () => 'pong',
  mint: (msg) => mintToken(msg.secret, msg.claims ?? {}, { expiresIn: msg.expires_in_s ?? 300 }),
  connect: cmdConnect,
  hocuspocus_socket: cmdHocuspocusSocket,
  close_socket: cmdCloseSocket,
  connect_hocuspocus: cmdConnectHocuspocus,
  insert: cmdInsert,
  delete: cmdDelete,
  text: cmdText,
  map_set: cmdMapSet,
  map: cmdMap,
  format: cmdFormat,
  array_push: cmdArrayPush,
  to_json: cmdToJson,
  encode_state: cmdEncodeState,
  state_vector: cmdStateVector,
  apply_update: cmdApplyUpdate,
  wait_text: cmdWaitText,
  wait_synced: cmdWaitSynced,
  set_awareness: cmdSetAwareness,
  clear_awareness: cmdClearAwareness,
  awareness: cmdAwareness,
  wait_awareness: cmdWaitAwareness,
  client_id: cmdClientId,
  send_stateless: cmdSendStateless,
  hocuspocus_state: cmdHocuspocusState,
  disconnect: cmdDisconnect,
  terminate: cmdTerminate,
  exit: cmdExit
}

async function handleLine (line) {
  if (!line.trim()) return
  let msg
  try {
    msg = JSON.parse(line)
  } catch (err) {
    emit('error', null, { message: `unparsable command line: ${err.message}`, line })
    return
  }
  const id = msg.id ?? null
  try {
    const fn = commands[msg.cmd]
    if (!fn) throw new CommandError(`unknown cmd ${JSON.stringify(msg.cmd)}`, { kind: 'bad_request' })
    const result = await fn(msg)
    write({ id, ok: true, result: result ?? null })
  } catch (err) {
    const reply = { id, ok: false, error: String(err?.message ?? err), kind: 'error', ...(err?.extra ?? {}) }
    // A CommandError is an expected outcome; anything else is a bug here or in a library.
    if (!(err instanceof CommandError)) reply.stack = err?.stack
    write(reply)
  }
  if (exiting && msg.cmd === 'exit') {
    // Let stdout drain before leaving.
    process.stdout.write('', () => process.exit(0))
  }
}

process.on('uncaughtException', (err) => {
  emit('error', null, { message: String(err?.message ?? err), stack: err?.stack })
})
process.on('unhandledRejection', (err) => {
  emit('error', null, { message: String(err?.message ?? err), stack: err?.stack })
})

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => { handleLine(line) })
rl.on('close', async () => {
  // The test process went away: close everything and leave, bounded.
  setTimeout(() => process.exit(0), CLOSE_WAIT_MS + 1000).unref()
  await shutdown()
  process.exit(0)
})

emit('ready', null, { pid: process.pid, node: process.version })
