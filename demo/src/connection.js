// One provider behind one small interface, so the page's state machine
// (session.js) does not care which protocol it speaks:
//   connect(), destroy(), and the callbacks open(), synced(), close(code, reason),
//   denied(reason).
//
// Both providers come with their own reconnect loop. We switch it off and
// reconnect from session.js instead, because the page must say "reconnecting
// in N s" and neither provider tells when its next attempt is due:
// - y-websocket: `shouldReconnect: () => false` turns every close into a
//   stop (the provider's own timer then finds `shouldConnect` false);
// - Hocuspocus: `maxAttempts: 1` (one try per connect()) and, on a close,
//   `disconnect()` before the provider's own handler would schedule a retry.

import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'

export const KINDS = ['y-websocket', 'hocuspocus']

function ywebsocket ({ doc, awareness, room, wsBase, token, on }) {
  const provider = new WebsocketProvider(wsBase, room, doc, {
    connect: false,
    awareness,
    params: token ? { token } : {},
    // Two tabs of one browser would otherwise sync through a BroadcastChannel
    // and look connected with the server gone.
    disableBc: true,
    shouldReconnect: () => false,
  })
  provider.on('status', ({ status }) => { if (status === 'connected') on.open() })
  provider.on('sync', (isSynced) => { if (isSynced) on.synced() })
  provider.on('connection-close', (event) => {
    // null: we closed it ourselves (destroy), nothing to report.
    if (event) on.close(event.code, event.reason)
  })
  return {
    url: `${wsBase}/${room}`, // without ?token=: shown on the page
    connect: () => provider.connect(),
    destroy: () => provider.destroy(),
  }
}

function hocuspocus ({ doc, awareness, room, wsBase, hocuspocusPath, token, on }) {
  // The document's name in the URL too: collab routes every path under the
  // Hocuspocus path to its Hocuspocus endpoint, as the Hocuspocus server does.
  const socket = new HocuspocusProviderWebsocket({
    url: `${wsBase}${hocuspocusPath}/${room}`,
    autoConnect: false,
    maxAttempts: 1,
  })
  let closed = false
  socket.on('status', ({ status }) => { if (status === 'connected') on.open() })
  socket.on('close', ({ event }) => {
    if (closed) return
    socket.disconnect() // before the provider's own close handler schedules a retry
    on.close(event.code, event.reason)
  })
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name: room,
    document: doc,
    awareness,
    token: () => token,
    onSynced: ({ state }) => { if (state) on.synced() },
    // collab (like Hocuspocus) denies a document with a message and keeps the
    // socket open: there is no close code to show, only the reason.
    onAuthenticationFailed: ({ reason }) => on.denied(reason),
  })
  provider.attach()
  return {
    url: socket.url,
    connect: () => { socket.connect() },
    destroy: () => {
      closed = true
      provider.destroy()
      socket.destroy()
    },
  }
}

export function openConnection (kind, options) {
  return kind === 'hocuspocus' ? hocuspocus(options) : ywebsocket(options)
}
