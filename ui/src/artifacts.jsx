// A run's artifacts: one directory level at a time (list_artifacts, a page
// of 1000), and a preview of the file chosen: text and JSON (the first
// 256 KiB only: the rest is never read), CSV as a table (its first 100
// rows), images; every file has a download link. Files come through the
// gateway's artifact proxy, streamed from the store. A browser's own
// request (a link's navigation, an <img>) carries no bearer token: with
// one set, those go to a short-lived signed URL the gateway makes for the
// file instead (docs/GATEWAY.md), still streamed, never held in memory.
import { useEffect, useState } from 'preact/hooks';
import { authHeaders, call, token } from './api.js';

const PREVIEW_BYTES = 256 << 10;
const CSV_ROWS = 100;
const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;

const fileUrl = (info, p) =>
  `/api/2.0/mlflow-artifacts/artifacts/${encodeURIComponent(info.experiment_id)}/${encodeURIComponent(info.run_id)}/artifacts/${p.split('/').map(encodeURIComponent).join('/')}`;
const signedUrl = (info, path) =>
  call('artifacts', 'download_url', { run_id: info.run_id, path }).then((r) => r.url);

// The file downloaded from a signed URL, as its link would without auth.
function download(url, name) {
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// The first max bytes of a file, as text; the download is cut off there.
async function head(url, max) {
  const r = await fetch(url, { headers: authHeaders() });
  if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
  const reader = r.body.getReader();
  const parts = [];
  let n = 0;
  while (n < max) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.length;
  }
  reader.cancel().catch(() => {});
  const all = new Uint8Array(Math.min(n, max));
  let at = 0;
  for (const p of parts) {
    all.set(p.subarray(0, all.length - at), at);
    at += Math.min(p.length, all.length - at);
  }
  return { text: new TextDecoder().decode(all), cut: n >= max };
}

// One CSV line's cells (quotes as RFC 4180 has them).
function csvCells(line) {
  const out = [];
  let cell = '', q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q && c === '"' && line[i + 1] === '"') (cell += '"'), i++;
    else if (c === '"') q = !q;
    else if (c === ',' && !q) out.push(cell), (cell = '');
    else cell += c;
  }
  out.push(cell);
  return out;
}

function Preview({ info, file }) {
  const [state, setState] = useState(null);
  const url = fileUrl(info, file.path);
  useEffect(() => {
    const failed = (e) => setState({ error: e.message });
    setState(null);
    if (!IMAGE.test(file.path)) head(url, PREVIEW_BYTES).then(setState, failed);
    else if (!token.get()) setState({ src: url });
    else signedUrl(info, file.path).then((src) => setState({ src }), failed);
  }, [url]);
  if (!state) return <p aria-busy="true">Loading {file.path}…</p>;
  if (state.error) return <p class="error" role="alert">{state.error}</p>;
  if (state.src) return <img src={state.src} alt={file.path} class="preview-img" data-testid="preview" />;
  const cut = state.cut && <p class="muted">The first {PREVIEW_BYTES >> 10} KiB of {file.file_size} bytes.</p>;
  if (/\.csv$/i.test(file.path)) {
    const lines = state.text.split(/\r?\n/).filter(Boolean).slice(0, CSV_ROWS + 1);
    const [hdr, ...rows] = lines.map(csvCells);
    return (
      <div data-testid="preview">
        <table class="plain">
          <thead><tr>{(hdr || []).map((h, i) => <th scope="col" key={i}>{h}</th>)}</tr></thead>
          <tbody>{rows.map((r, i) => <tr key={i}>{r.map((c, j) => <td key={j}>{c}</td>)}</tr>)}</tbody>
        </table>
        {cut}
      </div>
    );
  }
  let text = state.text;
  if (/\.json$/i.test(file.path) && !state.cut) {
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch { /* shown as it is */ }
  }
  return (
    <div data-testid="preview">
      <pre class="preview">{text}</pre>
      {cut}
    </div>
  );
}

export function Artifacts({ info }) {
  const [dir, setDir] = useState('');
  const [files, setFiles] = useState(null);
  const [error, setError] = useState('');
  const [chosen, setChosen] = useState(null);
  const [dlError, setDlError] = useState('');
  // Without a token the plain link serves (nothing to carry); with one, a
  // signed URL instead of the link's own navigation, which would be a 401.
  const onDownload = (e, f, name) => {
    if (!token.get()) return;
    e.preventDefault();
    setDlError('');
    signedUrl(info, f.path).then((url) => download(url, name), (err) => setDlError(`${name}: ${err.message}`));
  };
  useEffect(() => {
    call('artifacts', 'list_artifacts', { run_id: info.run_id, ...(dir ? { path: dir } : {}), max_results: 1000 })
      .then((r) => setFiles(r.files || []), (e) => setError(e.message));
  }, [info.run_id, dir]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!files) return null;
  const up = dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '';
  return (
    <section class="artifacts">
      <h2>Artifacts{dir && ` / ${dir}`}</h2>
      {!files.length && !dir && <p class="muted">none</p>}
      <ul class="files" aria-label="Artifacts">
        {dir && <li><button class="link" onClick={() => setDir(up)}>..</button></li>}
        {files.map((f) => {
          const name = f.path.split('/').pop();
          return (
            <li key={f.path}>
              {f.is_dir ? (
                <button class="link" onClick={() => (setDir(f.path), setChosen(null))}>{name}/</button>
              ) : (
                <>
                  <button class="link" aria-pressed={chosen?.path === f.path} onClick={() => setChosen(f)}>{name}</button>{' '}
                  <span class="muted">{Number(f.file_size).toLocaleString()} B</span>{' '}
                  <a href={fileUrl(info, f.path)} download={name} aria-label={`download ${name}`} onClick={(e) => onDownload(e, f, name)}>download</a>
                </>
              )}
            </li>
          );
        })}
      </ul>
      {dlError && <p class="error" role="alert">{dlError}</p>}
      {chosen && <Preview info={info} file={chosen} />}
    </section>
  );
}
