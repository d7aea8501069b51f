// The page's connection state machine:
//
//   connecting ──open──▶ syncing ──synced──▶ synced
//       ▲                   │                  │
//       │ timer            close             close
//       │                   ▼                  ▼
//   reconnecting ◀──────── (retryable?) ──no──▶ stopped
//
// Every close is recorded with its code and reason exactly as the server sent
// them (the "what happened" panel). A retryable close schedules the next
// attempt with backoff.js; after a sync the backoff starts over.

import { Backoff } from './backoff.js'
import { explain, retryable } from './closecodes.js'
import { openConnection } from './connection.js'

const MAX_EVENTS = 20

export class Session {
  constructor ({ kind, doc, awareness, room, wsBase, hocuspocusPath, onChange }) {
    this.kind = kind
    this.options = { doc, awareness, room, wsBase, hocuspocusPath }
    this.onChange = onChange
    this.backoff = new Backoff()
    this.state = 'connecting'
    this.retryAt = 0 // ms since epoch of the next attempt, while reconnecting
    this.lastClose = null // {code, reason, title, words}
    this.events = [] // closes and denials, newest first; a repeat of the newest is counted
    this.retries = [] // scheduled reconnects, newest first
    this.timer = null
    this.conn = null
    this.token = ''
  }

  start (token = '') {
    this.token = token
    const on = {
      open: () => this.set('syncing'),
      synced: () => { this.backoff.reset(); this.set('synced') },
      close: (code, reason) => this.closed(code, reason),
      denied: (reason) => this.denied(reason),
    }
    this.conn = openConnection(this.kind, { ...this.options, token, on })
    this.url = this.conn.url
    this.connectNow()
  }

  // A new token: a new provider on the same document and awareness.
  restart (token) {
    this.stopTimer()
    this.conn?.destroy()
    this.backoff.reset()
    this.start(token)
  }

  connectNow () {
    this.stopTimer()
    this.set('connecting')
    this.conn.connect()
  }

  closed (code, reason) {
    const entry = { kind: 'close', code, reason, ...explain(code), at: new Date() }
    this.lastClose = entry
    this.record(entry)
    if (!retryable(code)) {
      this.set('stopped')
      return
    }
    const { attempt, ceiling, delay } = this.backoff.next()
    this.retries.unshift({ attempt, ceiling, delay, at: new Date() })
    this.retries.length = Math.min(this.retries.length, MAX_EVENTS)
    this.retryAt = Date.now() + delay * 1000
    this.stopTimer()
    this.timer = setTimeout(() => this.connectNow(), delay * 1000)
    this.set('reconnecting')
  }

  denied (reason) {
    const entry = {
      kind: 'denied',
      code: null,
      reason,
      title: 'permission denied',
      words: 'The server\'s authenticate hook refused this document. Over the Hocuspocus ' +
        'protocol a denial is a message, not a close: the socket stays open. ' +
        'Enter a token and connect again.',
      at: new Date(),
    }
    this.lastClose = entry
    this.record(entry)
    this.set('stopped')
  }

  // While a server is down every attempt fails the same way: one entry with a
  // count, so the panel still shows what came before (the 1001 of a restart).
  record (entry) {
    const newest = this.events[0]
    if (newest && newest.kind === entry.kind && newest.code === entry.code &&
        newest.reason === entry.reason) {
      newest.count += 1
      newest.at = entry.at
      return
    }
    this.events.unshift({ ...entry, count: 1 })
    this.events.length = Math.min(this.events.length, MAX_EVENTS)
  }

  set (state) {
    this.state = state
    this.onChange(this)
  }

  stopTimer () {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }
}
