// The demo page served at /demo/{room} by `collab serve --demo`: a CodeMirror 6
// editor on a Yjs document, over y-websocket or Hocuspocus (?provider=...),
// with names and cursors from awareness, a status line and a "what happened"
// panel. Everything comes from this bundle: no CDN at run time.

import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { EditorView, keymap, lineNumbers, drawSelection } from '@codemirror/view'
import { EditorState } from '@codemirror/state'
import { defaultKeymap } from '@codemirror/commands'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { KINDS } from './connection.js'
import { Session } from './session.js'

const COLORS = ['#d7263d', '#1b998b', '#2e86ab', '#f46036', '#8e44ad', '#c5a000', '#3d9970', '#e83e8c']
const NAMES = ['Ada', 'Grace', 'Alan', 'Barbara', 'Edsger', 'Frances', 'Ken', 'Margaret', 'Dennis', 'Radia']

const $ = (id) => document.getElementById(id)

// A colour per name, so that a person keeps theirs across reloads and two
// names seldom share one.
function colorFor (name) {
  let hash = 0
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0
  return COLORS[hash % COLORS.length]
}

function randomUser () {
  const name = `${NAMES[Math.floor(Math.random() * NAMES.length)]} ${Math.floor(Math.random() * 90 + 10)}`
  return { name, color: colorFor(name) }
}

// Per tab, so two tabs of one browser are two people.
function loadUser () {
  try {
    const saved = JSON.parse(sessionStorage.getItem('collab-demo-user') || 'null')
    if (saved && typeof saved.name === 'string' && typeof saved.color === 'string') return saved
  } catch (_) { /* a corrupt entry: start with a new name */ }
  return randomUser()
}

function saveUser (user) {
  sessionStorage.setItem('collab-demo-user', JSON.stringify(user))
}

function userState (user) {
  return { name: user.name, color: user.color, colorLight: user.color + '33' }
}

function renderStatus (session) {
  const el = $('status')
  el.dataset.state = session.state
  let text
  switch (session.state) {
    case 'connecting': text = 'connecting…'; break
    case 'syncing': text = 'connected · syncing…'; break
    case 'synced': text = 'connected · synced'; break
    case 'reconnecting': {
      const seconds = Math.max(0, (session.retryAt - Date.now()) / 1000)
      text = `reconnecting in ${seconds.toFixed(1)} s`
      break
    }
    default: text = 'disconnected · not retrying'
  }
  $('status-text').textContent = text
  const last = session.lastClose
  $('last-close').textContent = last === null
    ? ''
    : last.code === null
      ? `last: permission denied “${last.reason}”`
      : `last close: ${last.code} ${last.title}${last.reason ? ` “${last.reason}”` : ' (no reason given)'}`
  $('reconnect').hidden = !(session.state === 'reconnecting' || session.state === 'stopped')
}

function renderEvents (session) {
  const list = $('events')
  list.replaceChildren(...session.events.map((e) => {
    const li = document.createElement('li')
    li.className = 'event'
    li.dataset.code = e.code === null ? 'denied' : String(e.code)
    const head = document.createElement('div')
    head.className = 'event-head'
    const time = e.at.toLocaleTimeString()
    const times = e.count > 1 ? ` (×${e.count}, last at ${time})` : ''
    head.textContent = (e.code === null ? e.title : `${e.code} ${e.title}`) +
      (times || ` · ${time}`)
    const reason = document.createElement('div')
    reason.className = 'event-reason'
    reason.textContent = e.reason ? `server said: “${e.reason}”` : 'no reason given'
    const words = document.createElement('div')
    words.className = 'event-words'
    words.textContent = e.words
    li.append(head, reason, words)
    return li
  }))
  $('no-events').hidden = list.children.length > 0
}

function renderPeople (awareness) {
  const people = []
  awareness.getStates().forEach((state, clientID) => {
    if (!state.user) return
    const li = document.createElement('li')
    li.className = 'person'
    li.style.setProperty('--color', state.user.color)
    li.textContent = state.user.name + (clientID === awareness.clientID ? ' (you)' : '')
    people.push(li)
  })
  $('people').replaceChildren(...people)
}

async function main () {
  const base = document.documentElement.dataset.base // root path + "/demo", set by the server
  const room = decodeURIComponent(location.pathname.slice(base.length + 1))
  const config = await (await fetch(`${base}/_/config.json`)).json()
  const params = new URLSearchParams(location.search)
  const kind = KINDS.includes(params.get('provider')) ? params.get('provider') : 'y-websocket'

  document.title = `${room} · collab demo`
  $('room').textContent = room
  for (const link of document.querySelectorAll('[data-provider]')) {
    const p = new URLSearchParams(location.search)
    p.set('provider', link.dataset.provider)
    link.href = `?${p}`
    link.classList.toggle('current', link.dataset.provider === kind)
    if (link.dataset.provider === kind) link.setAttribute('aria-current', 'page')
  }

  const doc = new Y.Doc()
  const awareness = new Awareness(doc)
  const user = loadUser()
  saveUser(user)
  awareness.setLocalState({ user: userState(user) })
  const nameInput = $('name')
  nameInput.value = user.name
  nameInput.addEventListener('input', () => {
    user.name = nameInput.value.trim() || 'anonymous'
    user.color = colorFor(user.name)
    saveUser(user)
    awareness.setLocalStateField('user', userState(user))
  })
  awareness.on('change', () => renderPeople(awareness))
  renderPeople(awareness)

  const ytext = doc.getText('text')
  const undoManager = new Y.UndoManager(ytext)
  const view = new EditorView({
    parent: $('editor'),
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
        lineNumbers(),
        drawSelection(),
        EditorView.lineWrapping,
        yCollab(ytext, awareness, { undoManager }),
        // Remote names always visible, not only on hover: the demo is about seeing who is there.
        EditorView.theme({ '.cm-ySelectionInfo': { opacity: '1' } }),
      ],
    }),
  })

  const wsBase = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${config.root}`
  const session = new Session({
    kind, doc, awareness, room, wsBase,
    hocuspocusPath: config.hocuspocus_path,
    onChange: (s) => { renderStatus(s); renderEvents(s) },
  })
  $('mode').textContent = kind === 'hocuspocus' ? 'Hocuspocus provider' : 'y-websocket provider'

  const tokenInput = $('token')
  $('auth').hidden = !config.auth
  $('auth').addEventListener('submit', (event) => {
    event.preventDefault()
    session.restart(tokenInput.value)
    // A new provider may have dropped our presence (Hocuspocus clears it on destroy).
    awareness.setLocalState({ user: userState(user) })
  })
  $('reconnect').addEventListener('click', () => session.connectNow())
  // The countdown of "reconnecting in N s".
  setInterval(() => { if (session.state === 'reconnecting') renderStatus(session) }, 100)

  session.start(config.auth ? tokenInput.value : '')
  $('endpoint').textContent = session.url
  // For people poking around in the console, and for the browser tests.
  window.collabDemo = { doc, awareness, session, view, text: () => ytext.toString() }
}

main().catch((err) => {
  $('status-text').textContent = `the page failed to start: ${err}`
  $('status').dataset.state = 'stopped'
})
