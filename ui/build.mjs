// Build Cairn Studio's bundle: node build.mjs OUT_DIR (tools/build.sh names
// BUILD/share/cairn/ui). Writes OUT_DIR/index.html and OUT_DIR/assets/
// (names carry a content hash, so the gateway lets browsers cache them for a
// year), each with a gzip'ed twin the gateway sends to clients that take it.
// Does nothing when OUT_DIR/index.html is newer than every input, so a
// second build costs a stat of each source file.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, 'dist'));
const LIMIT_GZ = 200 * 1024; // the budget for the initial JS

function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...fs.readdirSync(p).map((f) => newest(path.join(p, f))));
}

function upToDate() {
  const index = path.join(out, 'index.html');
  if (!fs.existsSync(index)) return false;
  const inputs = ['src', 'index.html', 'build.mjs', 'package-lock.json'];
  return fs.statSync(index).mtimeMs >= Math.max(...inputs.map((f) => newest(path.join(here, f))));
}

function gzip(file) {
  const gz = zlib.gzipSync(fs.readFileSync(file), { level: 9 });
  fs.writeFileSync(file + '.gz', gz);
  return gz.length;
}

async function build() {
  fs.rmSync(path.join(out, 'assets'), { recursive: true, force: true });
  const r = await esbuild.build({
    entryPoints: [path.join(here, 'src/main.jsx')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: path.join(out, 'assets'),
    entryNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
  });
  const files = Object.keys(r.metafile.outputs).map((f) => path.resolve(f));
  const js = files.find((f) => f.endsWith('.js'));
  const css = files.find((f) => f.endsWith('.css'));
  const rel = (f) => '/assets/' + path.basename(f);
  const html = fs
    .readFileSync(path.join(here, 'index.html'), 'utf8')
    .replace('%CSS%', css ? rel(css) : '')
    .replace('%JS%', rel(js));
  fs.writeFileSync(path.join(out, 'index.html'), html);
  const jsGz = gzip(js);
  if (css) gzip(css);
  gzip(path.join(out, 'index.html'));
  console.log(`studio: ${path.relative(process.cwd(), out) || '.'}: ${rel(js)} ${jsGz} bytes gzip'ed`);
  if (jsGz > LIMIT_GZ) throw new Error(`the JS is ${jsGz} bytes gzip'ed, over ${LIMIT_GZ}`);
}

if (upToDate()) process.exit(0);
fs.mkdirSync(out, { recursive: true });
build().catch((e) => {
  console.error('studio: ' + e.message);
  process.exit(1);
});
