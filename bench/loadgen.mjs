#!/usr/bin/env node
// Load generator for Yjs sync servers, independent of every server under test.
//
// Speaks two wire protocols over raw `ws` sockets (no providers: 1,000
// WebsocketProviders in one process would measure the provider, not the
// server):
//   yws        y-websocket: one document per socket, room = URL path;
//              frame = varUint type (0 sync, 1 awareness) + payload.
//   hocuspocus frame = varString docName + varUint type + payload; the client
//              sends Auth(Token, "") then Sync step1; the server answers
//              Auth(Authenticated) and step2; SyncStatus (8) is ignored.
//
// Usage:
//   node loadgen.mjs run '<json config>'     one scenario run, JSON on stdout
//   node loadgen.mjs probe '<json config>'   connect+sync one client, exit 0/1
//   node loadgen.mjs trace '<json config>'   build the large-document trace
//
// Every phase has a deadline; a global watchdog ends the process whatever
// happens, so a stuck server can never hang the harness.
//
// Measurement model: writers insert tokens "w<writer>:<seq>;" into a Y.Text
// and record the send time; receivers do not integrate updates into a Y.Doc
// (that would make the load generator, not the server, the bottleneck).
// They find tokens by scanning each update's bytes: Yjs encodes inserted
// text as a UTF-8 string inside the update, whether the server forwards the
// client's update, re-encodes it (yrs) or merges several (Hocuspocus 4). At
// the end a fresh client syncs and integrates the whole document to check
// that every token is really in it.

import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const TEXT = 'bench'
const MSG_SYNC = 0
const MSG_AWARENESS = 1
const MSG_AUTH = 2
const MSG_SYNC_REPLY = 4 // Hocuspocus only
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2
const AUTH_TOKEN = 0
const AUTH_DENIED = 1
const EMPTY_STATE_VECTOR = new Uint8Array([0])
const EMPTY_UPDATE = new Uint8Array([0, 0])
const TOKEN_RE = /w(\d+):(\d+);/g

const log = (...a) => process.stderr.write(`[loadgen] ${a.join(' ')}\n`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const now = () => performance.now()

// ---------------------------------------------------------------- /proc --

const CLK_TCK = 100 // Linux USER_HZ; true on every mainstream kernel config

/** pid plus all its descendants (a uvicorn master and its workers). */
function processTree (rootPid) {
  const children = new Map()
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (!children.has(ppid)) children.set(ppid, [])
      children.get(ppid).push(Number(entry))
    } catch { /* process exited while we listed /proc */ }
  }
  const out = []
  const stack = [rootPid]
  while (stack.length) {
    const pid = stack.pop()
    out.push(pid)
    for (const c of children.get(pid) || []) stack.push(c)
  }
  return out
}

const roots = (pids) => (Array.isArray(pids) ? pids : [pids]).filter(Boolean)

/** Sum of VmRSS (KiB) over the servers' process trees; null without pids. */
function treeRssKiB (rootPids) {
  if (!roots(rootPids).length) return null
  let total = 0
  for (const pid of roots(rootPids).flatMap(processTree)) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (m) total += Number(m[1])
    } catch { /* exited */ }
  }
  return total
}

/** utime+stime in ms summed over the trees (live processes only). */
function treeCpuMs (rootPids) {
  if (!roots(rootPids).length) return null
  let ticks = 0
  for (const pid of roots(rootPids).flatMap(processTree)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(f[11]) + Number(f[12]) // fields 14 and 15: utime, stime
    } catch { /* exited */ }
  }
  return (ticks * 1000) / CLK_TCK
}

async function sampleRss (pid, samples = 3, gapMs = 300) {
  const values = []
  for (let i = 0; i < samples; i++) {
    if (i) await sleep(gapMs)
    values.push(treeRssKiB(pid))
  }
  if (values[0] === null) return null
  values.sort((a, b) => a - b)
  return values[Math.floor(values.length / 2)]
}

// -------------------------------------------------------------- frames --

function syncFrame (proto, doc, sub, payload, type = MSG_SYNC) {
  const e = encoding.createEncoder()
  if (proto === 'hocuspocus') encoding.writeVarString(e, doc)
  encoding.writeVarUint(e, type)
  encoding.writeVarUint(e, sub)
  encoding.writeVarUint8Array(e, payload)
  return encoding.toUint8Array(e)
}

function awarenessFrame (proto, doc, clientId, clock, state) {
  const inner = encoding.createEncoder()
  if (state === undefined) {
    encoding.writeVarUint(inner, 0) // no entries: a pure keepalive
  } else {
    encoding.writeVarUint(inner, 1)
    encoding.writeVarUint(inner, clientId)
    encoding.writeVarUint(inner, clock)
    encoding.writeVarString(inner, JSON.stringify(state))
  }
  const e = encoding.createEncoder()
  if (proto === 'hocuspocus') encoding.writeVarString(e, doc)
  encoding.writeVarUint(e, MSG_AWARENESS)
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  return encoding.toUint8Array(e)
}

function authFrame (doc) {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, doc)
  encoding.writeVarUint(e, MSG_AUTH)
  encoding.writeVarUint(e, AUTH_TOKEN)
  encoding.writeVarString(e, '')
  return encoding.toUint8Array(e)
}

// -------------------------------------------------------------- client --

/**
 * One socket, one document. `open()` resolves when the server's step2 (the
 * answer to our step1) has arrived, i.e. the client is synced.
 */
class Client {
  constructor (run, { url, room, proto, writer = -1, keepDoc = false, onUpdate = null }) {
    this.run = run
    this.url = url
    this.room = room
    this.proto = proto
    this.writer = writer // global writer index, -1 for a pure receiver
    this.onUpdate = onUpdate
    this.ws = null
    this.synced = false
    this.syncedAt = 0
    this.step2 = null // kept only when keepDoc (verification / large doc)
    this.keepDoc = keepDoc
    this.doc = null
    this.closedUnexpectedly = false
    this.killed = false
  }

  open (timeoutMs) {
    const target = this.proto === 'hocuspocus' ? this.url : this.url + encodeURIComponent(this.room)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`sync timeout after ${timeoutMs} ms (${this.room})`))
        this.kill()
      }, timeoutMs)
      this._resolveSync = () => { clearTimeout(timer); resolve(this) }
      this._rejectSync = (err) => { clearTimeout(timer); reject(err) }
      // Clients do not offer permessage-deflate: the Node servers do not
      // enable it but uvicorn does, which would tax only the Python servers.
      const ws = new WebSocket(target, { perMessageDeflate: false, handshakeTimeout: timeoutMs })
      this.ws = ws
      ws.binaryType = 'nodebuffer'
      ws.on('open', () => this._onOpen())
      ws.on('message', (data, isBinary) => {
        this.run.framesIn++
        if (!isBinary) return
        try {
          this._onFrame(data)
        } catch (err) {
          this.run.note(`decode error: ${err.message}`)
        }
      })
      ws.on('error', (err) => {
        this.run.note(`socket error: ${err.code || err.message}`)
        if (!this.synced) this._rejectSync(err)
      })
      ws.on('close', (code) => {
        if (!this.run.closing && !this.killed) {
          this.closedUnexpectedly = true
          this.run.countClose(code)
        }
        if (!this.synced) this._rejectSync(new Error(`closed ${code} before sync`))
      })
    })
  }

  _onOpen () {
    const d = this.room
    if (this.writer >= 0 || this.keepDoc) this.doc = new Y.Doc()
    if (this.proto === 'hocuspocus') this.ws.send(authFrame(d))
    const sv = this.doc ? Y.encodeStateVector(this.doc) : EMPTY_STATE_VECTOR
    this.ws.send(syncFrame(this.proto, d, SYNC_STEP1, sv))
    if (this.run.cfg.awareness) {
      this.awarenessId = crypto.randomInt(1, 2 ** 31)
      this.ws.send(awarenessFrame(this.proto, d, this.awarenessId, 1, { user: { name: `c${this.run.clients.length}` } }))
    }
  }

  _onFrame (buf) {
    const dec = decoding.createDecoder(buf)
    if (this.proto === 'hocuspocus') decoding.readVarString(dec)
    const type = decoding.readVarUint(dec)
    if (type === MSG_SYNC || type === MSG_SYNC_REPLY) {
      const sub = decoding.readVarUint(dec)
      if (sub === SYNC_STEP1) {
        // Answer the server's step1 with what it lacks. Receivers never
        // write, so their diff is always the empty update.
        const diff = this.doc ? Y.encodeStateAsUpdate(this.doc, decoding.readVarUint8Array(dec)) : EMPTY_UPDATE
        this.send(syncFrame(this.proto, this.room, SYNC_STEP2, diff))
      } else if (sub === SYNC_STEP2) {
        const payload = decoding.readVarUint8Array(dec)
        if (!this.synced) {
          this.synced = true
          this.syncedAt = now()
          if (this.keepDoc) this.step2 = payload.slice()
          // A writer needs the current state so its inserts have valid
          // origins; after this it never integrates remote updates.
          if (this.doc && this.writer >= 0) Y.applyUpdate(this.doc, payload)
          this._resolveSync()
        } else if (this.onUpdate) {
          this.onUpdate(this, payload)
        }
      } else if (sub === SYNC_UPDATE) {
        const payload = decoding.readVarUint8Array(dec)
        if (this.onUpdate) this.onUpdate(this, payload)
      }
    } else if (type === MSG_AUTH && this.proto === 'hocuspocus') {
      const sub = decoding.readVarUint(dec)
      if (sub === AUTH_DENIED) this._rejectSync(new Error(`permission denied: ${decoding.readVarString(dec)}`))
    }
    // awareness, SyncStatus (8) and anything else: ignored
  }

  send (frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame)
  }

  kill () {
    this.killed = true
    try { this.ws && this.ws.terminate() } catch { /* already gone */ }
  }
}

// ------------------------------------------------------------ helpers --

function latencySummary (sorted) {
  return {
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length ? sorted[sorted.length - 1] : null)
  }
}

function percentile (sorted, p) {
  if (!sorted.length) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

function round (x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return null
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Open clients `batch` at a time; a batch must sync before the next starts. */
async function openBatched (run, clients, batch, timeoutMs, deadline) {
  let failed = 0
  for (let i = 0; i < clients.length; i += batch) {
    if (now() > deadline) {
      failed += clients.length - i
      run.note(`connect deadline hit, ${clients.length - i} clients not opened`)
      break
    }
    const results = await Promise.allSettled(clients.slice(i, i + batch).map((c) => c.open(timeoutMs)))
    for (const r of results) {
      if (r.status === 'rejected') {
        failed++
        run.note(r.reason.message)
      }
    }
  }
  return failed
}

/** Connect a fresh client, take the server's step2 and integrate it. */
async function fetchDoc (run, url, room, timeoutMs) {
  const c = new Client(run, { url, room, proto: run.cfg.proto, keepDoc: true })
  try {
    await c.open(timeoutMs)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, c.step2)
    return doc
  } finally {
    c.kill()
  }
}

// ------------------------------------------------------------- the run --

class Run {
  constructor (cfg) {
    this.cfg = cfg
    this.clients = []
    this.closing = false
    this.closes = {}
    this.framesIn = 0 // every frame the clients took (awareness included)
    this.notes = new Map()
    this.keepalive = null
  }

  note (msg) {
    this.notes.set(msg, (this.notes.get(msg) || 0) + 1)
  }

  countClose (code) {
    this.closes[code] = (this.closes[code] || 0) + 1
  }

  roomName (i) {
    return `${this.cfg.roomPrefix}-${i}`
  }

  urlFor (isWriter, room = 0, index = 0) {
    const urls = this.cfg.urls
    // spread (bench/scaleout.py): client i of room r on instance (r + i) mod n,
    // so every room spans instances and every instance serves every role.
    if (this.cfg.spread) return urls[(room + index) % urls.length]
    return this.cfg.split && urls.length > 1 && !isWriter ? urls[1] : urls[0]
  }

  startKeepalive () {
    // Hocuspocus closes a socket that sent nothing for `timeout` (60 s in
    // 4.x); a real provider renews awareness every 15 s. An awareness update
    // with no entries keeps the socket alive without fan-out.
    if (this.cfg.proto !== 'hocuspocus') return
    this.keepalive = setInterval(() => {
      for (const c of this.clients) c.send(awarenessFrame('hocuspocus', c.room, 0, 0))
    }, 20000)
  }

  shutdown () {
    this.closing = true
    if (this.keepalive) clearInterval(this.keepalive)
    for (const c of this.clients) c.kill()
  }

  summary () {
    return {
      unexpected_closes: this.closes,
      notes: Object.fromEntries([...this.notes.entries()].slice(0, 20))
    }
  }
}

/** Scenarios A, B, C, F, G, H, I: rooms with writers; latency and throughput. */
async function runFanout (run) {
  const cfg = run.cfg
  const { rooms, clientsPerRoom, writersPerRoom, edits, rate } = cfg
  const totalWriters = rooms * writersPerRoom
  const slots = totalWriters * edits
  const sentAt = new Float64Array(slots)
  const expected = rooms * writersPerRoom * edits * (clientsPerRoom - 1)
  const latencies = new Float64Array(expected) // every delivery, warm-up included
  // Paced runs: edits sent in the first `warmupMs` of the edit phase are
  // delivered, counted and verified like the rest, but left out of the
  // percentiles. This process's own receive path is cold then (V8 has not
  // optimised it yet), and how cold depends on how many frames the server
  // happened to send before the edits, not on how fast it serves them.
  const warmupMs = rate > 0 ? cfg.warmupMs : 0
  const measuredLat = new Float64Array(expected)
  let measuredCount = 0
  const lastBySlot = new Float64Array(slots) // latency of each edit's last receipt
  let delivered = 0
  let firstSend = Infinity
  let lastReceipt = 0
  let stray = 0
  let updateFrames = 0 // frames carrying updates, all receivers: merging shows here
  let echoes = 0 // a writer's own edit sent back to it (y-websocket does)
  let allDeliveredResolve = null
  const allDelivered = new Promise((resolve) => { allDeliveredResolve = resolve })
  if (expected === 0) allDeliveredResolve()

  const seen = new Map() // client -> Uint8Array over (writer, seq)
  const onUpdate = (client, payload) => {
    const t = now()
    updateFrames++
    const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1')
    let bitmap = seen.get(client)
    if (!bitmap) { bitmap = new Uint8Array(slots); seen.set(client, bitmap) }
    TOKEN_RE.lastIndex = 0
    for (let m = TOKEN_RE.exec(text); m; m = TOKEN_RE.exec(text)) {
      const w = Number(m[1]); const s = Number(m[2])
      if (w === client.writer) { echoes++; continue }
      if (w >= totalWriters || s >= edits) { stray++; continue }
      const slot = w * edits + s
      if (bitmap[slot] || !sentAt[slot]) continue
      bitmap[slot] = 1
      if (delivered < expected) {
        latencies[delivered++] = t - sentAt[slot]
        if (sentAt[slot] - editStart >= warmupMs) measuredLat[measuredCount++] = t - sentAt[slot]
      }
      lastBySlot[slot] = t - sentAt[slot]
      lastReceipt = t
      if (delivered === expected) allDeliveredResolve()
    }
  }

  // Build clients: the first `writersPerRoom` of each room write.
  const primers = []
  const others = []
  const writers = []
  for (let r = 0; r < rooms; r++) {
    for (let i = 0; i < clientsPerRoom; i++) {
      const isWriter = i < writersPerRoom
      const c = new Client(run, {
        url: run.urlFor(isWriter, r, i),
        room: run.roomName(r),
        proto: cfg.proto,
        writer: isWriter ? r * writersPerRoom + i : -1,
        onUpdate
      })
      run.clients.push(c)
      if (isWriter) writers.push(c)
      // pycrdt-websocket 0.16.5 never syncs a second client that joins a
      // brand-new room while the first is still starting it, so every
      // room gets one client first (same for every server).
      ;(i === 0 ? primers : others).push(c)
    }
  }

  const rssBefore = await sampleRss(cfg.serverPids, 1)
  const cpu0 = treeCpuMs(cfg.serverPids)
  const t0 = now()
  const deadline = t0 + cfg.connectDeadlineMs
  let failed = await openBatched(run, primers, cfg.batch, cfg.syncTimeoutMs, deadline)
  failed += await openBatched(run, others, cfg.batch, cfg.syncTimeoutMs, deadline)
  const connectMs = now() - t0
  const cpu1 = treeCpuMs(cfg.serverPids)
  run.startKeepalive()
  await sleep(cfg.settleMs)
  const rssConnected = await sampleRss(cfg.serverPids)
  log(`connected ${run.clients.length - failed}/${run.clients.length} in ${connectMs.toFixed(0)} ms`)

  // Edit phase. Writer k of W sends edit s at t0 + (s + k/W) / rate, so
  // writers are spread evenly instead of firing in lockstep.
  const live = writers.filter((w) => w.synced)
  const text = new Map(live.map((w) => [w, w.doc.getText(TEXT)]))
  for (const w of live) {
    w.doc.on('update', (update) => {
      w.send(syncFrame(cfg.proto, w.room, SYNC_UPDATE, update))
    })
  }
  const edit = (w, s) => {
    const slot = w.writer * edits + s
    const t = now()
    sentAt[slot] = t
    if (t < firstSend) firstSend = t
    const ytext = text.get(w)
    ytext.insert(ytext.length, `w${w.writer}:${s};`)
  }
  const editStart = now()
  const framesBeforeEdits = run.framesIn
  const selfCpu0 = process.cpuUsage()
  const editDeadline = editStart + cfg.editDeadlineMs
  if (rate > 0) {
    const order = []
    live.forEach((w, k) => {
      for (let s = 0; s < edits; s++) order.push([editStart + ((s + k / live.length) * 1000) / rate, w, s])
    })
    order.sort((a, b) => a[0] - b[0])
    for (const [due, w, s] of order) {
      const wait = due - now()
      if (wait > 1) await sleep(wait)
      if (now() > editDeadline) { run.note('edit deadline hit'); break }
      edit(w, s)
    }
  } else {
    // Flat out: round-robin over writers, yielding to the event loop so
    // receipts keep being timed, and backing off when a socket's send
    // buffer grows (bounded by the edit deadline).
    for (let s = 0; s < edits && now() < editDeadline; s++) {
      for (const w of live) {
        while (w.ws.bufferedAmount > 256 * 1024 && now() < editDeadline) await sleep(1)
        edit(w, s)
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  const editMs = now() - editStart
  const expectedLive = live.length * edits * (clientsPerRoom - 1)
  await Promise.race([allDelivered, sleep(cfg.drainTimeoutMs)])
  // Deliveries to clients that never synced cannot arrive; wait no longer
  // than the drain timeout for the rest.
  const cpu2 = treeCpuMs(cfg.serverPids)
  const selfCpu = process.cpuUsage(selfCpu0)
  const busyWall = now() - editStart
  const rssAfter = await sampleRss(cfg.serverPids, 1)

  const sortedAll = Array.from(latencies.subarray(0, delivered)).sort((a, b) => a - b)
  const sorted = Array.from(measuredLat.subarray(0, measuredCount)).sort((a, b) => a - b)
  const span = lastReceipt > firstSend ? (lastReceipt - firstSend) / 1000 : null

  // Verify that the server kept every edit: a fresh client syncs room 0
  // (and the last room) and counts the tokens in the integrated text.
  const verify = []
  for (const r of [...new Set([0, rooms - 1])]) {
    try {
      const doc = await fetchDoc(run, run.urlFor(false), run.roomName(r), cfg.syncTimeoutMs)
      const found = (doc.getText(TEXT).toString().match(TOKEN_RE) || []).length
      verify.push({ room: r, tokens: found, expected: writersPerRoom * edits })
    } catch (err) {
      verify.push({ room: r, error: err.message })
    }
  }

  return {
    clients: run.clients.length,
    clients_failed: failed,
    connect_sync_ms: round(connectMs, 1),
    connect_cpu_ms: cpu0 === null ? null : round(cpu1 - cpu0, 0),
    edits_sent: countSent(sentAt),
    edit_phase_ms: round(editMs, 1),
    deliveries_expected: expected,
    deliveries_expected_live: expectedLive,
    deliveries: delivered,
    delivered_fraction: expected ? round(delivered / expected, 4) : null,
    deliveries_per_s: span ? round(delivered / span, 1) : null,
    latency_ms: latencySummary(sorted),
    warmup_ms: warmupMs,
    latency_ms_with_warmup: latencySummary(sortedAll),
    frames_before_edits: framesBeforeEdits,
    // The three edits whose last receipt came latest: with few edits the
    // p99 is set by one of them, so when they were sent says what stalled.
    slowest_edits: slowestEdits(lastBySlot, sentAt, editStart, edits),
    stray_tokens: stray,
    update_frames: updateFrames,
    echoed_to_author: echoes,
    server_cpu_ms_edit_phase: cpu1 === null ? null : round(cpu2 - cpu1, 0),
    // Near 100 % means the load generator, not the server, set the pace.
    loadgen_cpu_pct: round((100 * (selfCpu.user + selfCpu.system)) / 1000 / busyWall, 1),
    rss_kib: { before: rssBefore, connected: rssConnected, after: rssAfter },
    rss_per_conn_kib: rssBefore !== null ? round((rssConnected - rssBefore) / Math.max(1, run.clients.length - failed), 1) : null,
    verify,
    verify_ok: verify.every((v) => v.tokens === v.expected)
  }
}

function slowestEdits (lastBySlot, sentAt, editStart, edits) {
  const slots = Array.from(lastBySlot.keys()).filter((i) => sentAt[i])
  slots.sort((a, b) => lastBySlot[b] - lastBySlot[a])
  return slots.slice(0, 3).map((i) => ({
    writer: Math.floor(i / edits),
    seq: i % edits,
    sent_at_ms: round(sentAt[i] - editStart, 1),
    last_receipt_ms: round(lastBySlot[i])
  }))
}

function countSent (sentAt) {
  let n = 0
  for (let i = 0; i < sentAt.length; i++) if (sentAt[i]) n++
  return n
}

/**
 * Scenarios D and J: N idle clients, client i in room i mod `rooms` (D: one
 * room; J: one room per client); memory per connection.
 */
async function runIdle (run) {
  const cfg = run.cfg
  const n = cfg.clients
  const rooms = Math.max(1, cfg.rooms)
  const mk = (i) => new Client(run, { url: cfg.urls[0], room: run.roomName(i % rooms), proto: cfg.proto })
  const primer = mk(0)
  run.clients.push(primer)
  await primer.open(cfg.syncTimeoutMs)
  await sleep(cfg.settleMs)
  const rssBefore = await sampleRss(cfg.serverPids)
  const rest = []
  for (let i = 1; i < n; i++) { const c = mk(i); rest.push(c); run.clients.push(c) }
  const cpu0 = treeCpuMs(cfg.serverPids)
  const t0 = now()
  const failed = await openBatched(run, rest, cfg.batch, cfg.syncTimeoutMs, t0 + cfg.connectDeadlineMs)
  const connectMs = now() - t0
  const cpu1 = treeCpuMs(cfg.serverPids)
  run.startKeepalive()
  await sleep(cfg.settleMs)
  const rssAfter = await sampleRss(cfg.serverPids, 5, 400)
  const opened = rest.length - failed
  const stillOpen = run.clients.filter((c) => c.synced && !c.closedUnexpectedly).length
  return {
    clients: n,
    rooms,
    clients_failed: failed,
    clients_open_at_end: stillOpen,
    connect_sync_ms: round(connectMs, 1),
    connect_cpu_ms: cpu0 === null ? null : round(cpu1 - cpu0, 0),
    rss_kib: { before: rssBefore, after: rssAfter },
    rss_per_conn_kib: rssBefore !== null && opened > 0 ? round((rssAfter - rssBefore) / opened, 1) : null
  }
}

// -------------------------------------------------------- large document --

/** Small deterministic PRNG (mulberry32), so every run edits the same text. */
function prng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const WORDS = 'the quick brown fox jumps over lazy dog collaborative editing sync server yjs document room cursor typing latency'.split(' ')

/**
 * A synthetic editing trace of `ops` single operations by three authors:
 * mostly typing at a moving cursor, some backspaces, some jumps, and now and
 * then an author syncs with another, so the document has interleaved
 * authors and tombstones like a real one. Cached on disk by (ops, seed).
 */
function buildTrace (cfg) {
  const { ops, seed, cacheDir } = cfg.trace
  const file = path.join(cacheDir, `trace-${ops}-${seed}.bin`)
  const metaFile = file + '.json'
  if (fs.existsSync(file) && fs.existsSync(metaFile)) {
    return { update: new Uint8Array(fs.readFileSync(file)), meta: JSON.parse(fs.readFileSync(metaFile, 'utf8')) }
  }
  const t0 = now()
  const rand = prng(seed)
  const authors = [0, 1, 2].map((i) => { const d = new Y.Doc(); d.clientID = 1000 + i; return d })
  const cursors = [0, 0, 0]
  let applied = 0
  for (let i = 0; i < ops; i++) {
    const a = i % 4000 < 2000 ? 0 : (rand() < 0.5 ? 1 : 2)
    const doc = authors[a]
    const text = doc.getText(TEXT)
    const len = text.length
    let cur = Math.min(cursors[a], len)
    const r = rand()
    if (r < 0.05 || len === 0) {
      cur = Math.floor(rand() * (len + 1)) // jump
      text.insert(cur, WORDS[Math.floor(rand() * WORDS.length)] + ' ')
      cur += 1
    } else if (r < 0.17 && cur > 0) {
      text.delete(cur - 1, 1) // backspace
      cur -= 1
    } else {
      text.insert(cur, String.fromCharCode(97 + Math.floor(rand() * 26)))
      cur += 1
    }
    cursors[a] = cur
    applied++
    if (i % 500 === 499) {
      // Exchange state between two authors, as collaborators do.
      const x = authors[Math.floor(rand() * 3)]; const y = authors[Math.floor(rand() * 3)]
      if (x !== y) {
        Y.applyUpdate(y, Y.encodeStateAsUpdate(x, Y.encodeStateVector(y)))
        Y.applyUpdate(x, Y.encodeStateAsUpdate(y, Y.encodeStateVector(x)))
      }
    }
  }
  const final = new Y.Doc()
  for (const d of authors) Y.applyUpdate(final, Y.encodeStateAsUpdate(d))
  const update = Y.encodeStateAsUpdate(final)
  const str = final.getText(TEXT).toString()
  const meta = {
    ops: applied,
    seed,
    update_bytes: update.byteLength,
    text_length: str.length,
    text_sha256: crypto.createHash('sha256').update(str).digest('hex'),
    build_ms: round(now() - t0, 0)
  }
  fs.mkdirSync(cacheDir, { recursive: true })
  fs.writeFileSync(file, update)
  fs.writeFileSync(metaFile, JSON.stringify(meta))
  return { update, meta }
}

function textDigest (doc) {
  const str = doc.getText(TEXT).toString()
  return { len: str.length, sha: crypto.createHash('sha256').update(str).digest('hex') }
}

/** Scenario E: preload a large document, then N clients join at once. */
async function runLargeDoc (run) {
  const cfg = run.cfg
  const { update, meta } = buildTrace(cfg)
  const room = run.roomName(0)
  const url = cfg.urls[0]
  const cpuStart = treeCpuMs(cfg.serverPids)

  // The loader stays connected: without a store, the peers drop a room's
  // document when its last client leaves.
  const loader = new Client(run, { url, room, proto: cfg.proto })
  run.clients.push(loader)
  await loader.open(cfg.syncTimeoutMs)
  const tLoad = now()
  loader.send(syncFrame(cfg.proto, room, SYNC_UPDATE, update))

  // The y-websocket protocol has no acknowledgement: poll with fresh
  // clients until one receives the whole document (bounded).
  let preloadMs = null
  for (let attempt = 0; attempt < 40 && now() - tLoad < cfg.syncTimeoutMs; attempt++) {
    try {
      const d = textDigest(await fetchDoc(run, url, room, cfg.syncTimeoutMs))
      if (d.sha === meta.text_sha256) { preloadMs = now() - tLoad; break }
    } catch (err) {
      run.note(`preload probe: ${err.message}`)
    }
    await sleep(250)
  }
  if (preloadMs === null) throw new Error('large document never became visible to a new client')
  await sleep(cfg.settleMs)
  const rssLoaded = await sampleRss(cfg.serverPids, 1)

  // All joiners at once: no batching, this is the thundering herd.
  const joiners = []
  for (let i = 0; i < cfg.joiners; i++) {
    const c = new Client(run, { url, room, proto: cfg.proto, keepDoc: i === cfg.joiners - 1 })
    joiners.push(c)
    run.clients.push(c)
  }
  const cpu0 = treeCpuMs(cfg.serverPids)
  const t0 = now()
  const results = await Promise.allSettled(joiners.map((c) => c.open(cfg.syncTimeoutMs)))
  const cpu1 = treeCpuMs(cfg.serverPids)
  const failed = results.filter((r) => r.status === 'rejected').length
  for (const r of results) if (r.status === 'rejected') run.note(r.reason.message)
  const times = joiners.filter((c) => c.synced).map((c) => c.syncedAt - t0).sort((a, b) => a - b)

  // Outside the timing: the last joiner really received the whole text.
  let verifyOk = false
  const last = joiners[joiners.length - 1]
  if (last.step2) {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, last.step2)
    verifyOk = textDigest(doc).sha === meta.text_sha256
  }
  return {
    trace: meta,
    preload_ms: round(preloadMs, 1),
    joiners: cfg.joiners,
    clients_failed: failed,
    join_all_ms: times.length ? round(times[times.length - 1], 1) : null,
    join_p50_ms: round(percentile(times, 50), 1),
    step2_bytes: last.step2 ? last.step2.byteLength : null,
    server_cpu_ms_join: cpu0 === null ? null : round(cpu1 - cpu0, 0),
    server_cpu_ms_total: cpuStart === null ? null : round(cpu1 - cpuStart, 0),
    rss_kib: { loaded: rssLoaded, after_join: await sampleRss(cfg.serverPids, 1) },
    verify_ok: verifyOk && failed === 0
  }
}

// ----------------------------------------------------------------- main --

const DEFAULTS = {
  proto: 'yws',
  urls: ['ws://127.0.0.1:1234/'],
  split: false,
  kind: 'fanout',
  rooms: 1,
  clientsPerRoom: 10,
  writersPerRoom: 1,
  edits: 100,
  rate: 20,
  clients: 100,
  joiners: 50,
  awareness: false,
  batch: 50,
  serverPids: [],
  roomPrefix: 'bench',
  syncTimeoutMs: 20000,
  connectDeadlineMs: 90000,
  editDeadlineMs: 60000,
  drainTimeoutMs: 10000,
  settleMs: 1000,
  warmupMs: 250,
  watchdogMs: 240000,
  trace: { ops: 120000, seed: 7, cacheDir: path.join(path.dirname(new URL(import.meta.url).pathname), '.cache') }
}

async function main () {
  const [mode, raw] = process.argv.slice(2)
  if (!['run', 'probe', 'trace'].includes(mode)) {
    process.stderr.write('usage: node loadgen.mjs run|probe|trace \'<json config>\'\n')
    process.exit(2)
  }
  const cfg = { ...DEFAULTS, ...JSON.parse(raw || '{}') }
  cfg.trace = { ...DEFAULTS.trace, ...(cfg.trace || {}) }
  const watchdog = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ok: false, error: `watchdog: run exceeded ${cfg.watchdogMs} ms` }) + '\n')
    process.exit(3)
  }, cfg.watchdogMs)
  watchdog.unref()

  if (mode === 'trace') {
    const { meta } = buildTrace(cfg)
    process.stdout.write(JSON.stringify({ ok: true, trace: meta }) + '\n')
    process.exit(0)
  }

  const run = new Run(cfg)
  if (mode === 'probe') {
    try {
      await fetchDoc(run, cfg.urls[0], run.roomName(0), cfg.syncTimeoutMs)
      process.stdout.write(JSON.stringify({ ok: true }) + '\n')
      process.exit(0)
    } catch (err) {
      process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\n')
      process.exit(1)
    }
  }

  let result
  try {
    const fn = { fanout: runFanout, idle: runIdle, largedoc: runLargeDoc }[cfg.kind]
    if (!fn) throw new Error(`unknown kind ${cfg.kind}`)
    result = { ok: true, ...(await fn(run)), ...run.summary() }
  } catch (err) {
    result = { ok: false, error: err.message, ...run.summary() }
  }
  run.shutdown()
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

main()
