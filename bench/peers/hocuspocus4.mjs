// Hocuspocus 4.x: a bare Server, no extensions, default settings.
// Usage: node peers/hocuspocus4.mjs PORT
import { Server } from '@hocuspocus/server'

const port = Number(process.argv[2] || 1234)
const server = new Server({ port, address: '127.0.0.1', quiet: true, stopOnSignals: true })
await server.listen()
console.log(`hocuspocus4 listening on 127.0.0.1:${port}`)
