// The y-websocket reference server (@y/websocket-server 0.1.x, the yjs-13
// line): its own setupWSConnection on a `ws` server, no persistence.
// Usage: node peers/ywebsocket.mjs PORT
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'

const port = Number(process.argv[2] || 1234)
const wss = new WebSocketServer({ noServer: true })
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' })
  res.end('okay')
})
wss.on('connection', setupWSConnection)
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0))
server.listen(port, '127.0.0.1', () => {
  console.log(`y-websocket listening on 127.0.0.1:${port}`)
})
