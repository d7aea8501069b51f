// Close codes in words, from the README's close-code table, plus the codes a
// browser makes up itself (1005, 1006, 1015). The point of the demo's "what
// happened" panel: the seeds of this project saw sockets close with a bare
// 1005 and nobody could tell why, so no code is ever shown without words.

const CODES = {
  1000: ['closed normally', 'The connection was closed on purpose.'],
  1001: ['server restarting',
    'The server is shutting down or restarting (it closes its sockets after its drain period). ' +
    'This page reconnects by itself; what you typed meanwhile is kept and sent once it is back.'],
  1002: ['protocol error', 'The server could not parse a frame this client sent.'],
  1003: ['text frame', 'The server accepts binary frames only.'],
  1005: ['closed without a code',
    'The socket closed without a close code. collab always sends one, so something between ' +
    'this page and the server (a proxy or a load balancer) closed it.'],
  1006: ['connection lost',
    'The connection dropped without a close frame: the server crashed or was killed, the ' +
    'network went away, or the server could not be reached at all.'],
  1007: ['invalid data', 'A frame parsed, but the server rejected its content (an invalid update or awareness state).'],
  1008: ['policy violation',
    'The server refused this connection by policy: an invalid room name, or too many frames ' +
    'sent before authentication finished. Retrying will not help.'],
  1009: ['too large', 'A message was larger than the server accepts (COLLAB_MAX_FRAME_BYTES).'],
  1011: ['server error', 'The server hit an internal error; its log has the details under this connection\'s id.'],
  1012: ['service restart', 'The host server is restarting (uvicorn sends this when collab is mounted in another app).'],
  1013: ['overloaded, try again later',
    'The server is overloaded, a dependency (the store) is down, it is draining before a ' +
    'restart, or this client read too slowly. This page retries with a growing delay.'],
  1015: ['TLS failed', 'The TLS handshake failed (certificate not trusted?).'],
  4401: ['not authorized',
    'The server\'s authenticate hook refused this connection: no token, or not a valid one. ' +
    'Enter a token and connect again.'],
  4403: ['forbidden', 'The token was understood, but it may not open this room.'],
  4408: ['timed out', 'No answer in time (authentication or keepalive).'],
}

export function explain (code) {
  const known = CODES[code]
  if (known) return { title: known[0], words: known[1] }
  if (code >= 4000 && code < 5000) {
    return { title: 'closed by the application', words: 'An application-defined close code; the reason says more.' }
  }
  return { title: 'closed', words: 'A close code collab does not send itself; the reason, if any, says more.' }
}

// Codes after which an automatic retry cannot succeed: the page waits for the
// user (a new token, another room) instead of knocking forever.
export function retryable (code) {
  return !(code === 1008 || (code >= 4400 && code < 4500))
}
