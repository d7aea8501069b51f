// Reference @hocuspocus/server 3.x for tests and later conformance checks.
//
//   node hocuspocus-server.mjs [--port N]     (default 0: the OS picks a free port)
//
// Listens on 127.0.0.1 only. Prints one JSON line to stdout once listening:
//   {"event": "listening", "port": 12345, "version": "3.4.4"}
// then stays quiet on stdout (logs go to stderr). Exits on SIGTERM/SIGINT or
// when stdin closes (so a crashed test never leaves it running).
//
// Behaviour the tests rely on:
//   - onAuthenticate rejects the token "bad" with reason "bad-token";
//     every other token (including none) is accepted read-write;
//     the token "readonly" is accepted read-only.
//   - a stateless message "echo:<x>" is answered to the sender with "echo:<x>";
//     "broadcast:<x>" is sent to every connection of the document as "<x>".

import fs from 'node:fs'
import { Server } from '@hocuspocus/server'

console.log = console.error
console.info = console.error

// The package's "exports" hide package.json; read it from the install.
const { version } = JSON.parse(fs.readFileSync(
  new URL('./node_modules/@hocuspocus/server/package.json', import.meta.url), 'utf8'))

const args = process.argv.slice(2)
const portIndex = args.indexOf('--port')
const port = portIndex >= 0 ? Number(args[portIndex + 1]) : 0

const server = new Server({
  name: 'collab-reference',
  address: '127.0.0.1',
  port,
  quiet: true,
  stopOnSignals: false,
  // No debounce surprises in tests.
  debounce: 0,
  async onAuthenticate ({ token, connectionConfig }) {
    if (token === 'bad') {
      // `reason` is what the provider's authenticationFailed event carries.
      throw Object.assign(new Error('bad token'), { reason: 'bad-token' })
    }
    if (token === 'readonly') connectionConfig.readOnly = true
    return { token }
  },
  async onStateless ({ payload, document, connection }) {
    if (payload.startsWith('echo:')) connection.sendStateless(payload)
    else if (payload.startsWith('broadcast:')) document.broadcastStateless(payload.slice('broadcast:'.length))
  }
})

let stopping = false
async function stop (code) {
  if (stopping) return
  stopping = true
  const timer = setTimeout(() => process.exit(code), 5000)
  timer.unref()
  try {
    await server.destroy()
  } finally {
    process.exit(code)
  }
}

process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))
process.stdin.on('end', () => stop(0))
process.stdin.on('error', () => stop(0))
process.stdin.resume()

await server.listen()
process.stdout.write(JSON.stringify({ event: 'listening', port: server.address.port, version }) + '\n')
