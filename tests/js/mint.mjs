// Mint an HS256 JWT with Node's built-in crypto: no package needed.
//
// As a module (tests/js/client.mjs's "mint" command uses it):
//   import { mintToken } from './mint.mjs'
//   const token = mintToken(secret, { rooms: ['team/*'], readonly: true })
//   // exp defaults to now + 300 s; pass { exp } (or expiresIn) to choose.
//
// From a shell (the secret comes from the environment, so it stays out of
// `ps` and shell history):
//   COLLAB_JWT_SECRET=... node tests/js/mint.mjs '{"rooms": ["team/*"]}' [expires_in_s]

import { Buffer } from 'node:buffer'
import { createHmac } from 'node:crypto'
import { pathToFileURL } from 'node:url'

const base64url = (data) => Buffer.from(data).toString('base64url')

export function mintToken (secret, claims = {}, { expiresIn = 300 } = {}) {
  if (!secret) throw new Error('mintToken: empty secret')
  const now = Math.floor(Date.now() / 1000)
  const payload = { iat: now, exp: now + expiresIn, ...claims }
  const signingInput = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.` +
    base64url(JSON.stringify(payload))
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url')
  return `${signingInput}.${signature}`
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secret = process.env.COLLAB_JWT_SECRET
  if (!secret) {
    console.error('set COLLAB_JWT_SECRET')
    process.exit(2)
  }
  const claims = JSON.parse(process.argv[2] ?? '{}')
  const expiresIn = process.argv[3] === undefined ? 300 : Number(process.argv[3])
  process.stdout.write(mintToken(secret, claims, { expiresIn }) + '\n')
}
