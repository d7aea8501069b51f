// Bundle the demo page into static files: node build.mjs [--outdir DIR]
// (default ../collab/demo/static, which is committed and shipped in the
// Python package). The test suite rebuilds into a temporary directory and
// compares byte for byte, so the committed bundle cannot drift from src/.
import { build } from 'esbuild'
import { copyFile, mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const at = args.indexOf('--outdir')
const outdir = resolve(at >= 0 ? args[at + 1] : join(here, '..', 'collab', 'demo', 'static'))

await mkdir(outdir, { recursive: true })
await build({
  entryPoints: [join(here, 'src', 'main.js')],
  outfile: join(outdir, 'demo.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'eof',
  // Reproducible output: no absolute paths, no timestamps.
  sourcemap: false,
  charset: 'utf8',
  logLevel: 'warning',
})
for (const name of ['index.html', 'demo.css']) {
  await copyFile(join(here, 'src', name), join(outdir, name))
}
console.log(`built ${outdir}`)
