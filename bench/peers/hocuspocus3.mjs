// Hocuspocus 3.x (installed under the npm alias "hocuspocus-server-3"):
// a bare Server, no extensions, default settings.
// Usage: node peers/hocuspocus3.mjs PORT
import { Server } from 'hocuspocus-server-3'

const port = Number(process.argv[2] || 1234)
const server = new Server({ port, address: '127.0.0.1', quiet: true, stopOnSignals: true })
await server.listen()
console.log(`hocuspocus3 listening on 127.0.0.1:${port}`)
