// The audit trail (docs/AUDIT.md): audit.query with the filters it takes
// (principal, service, verb, object, a time range), a page at a time
// (page_token; oldest first), and audit.verify's verdict on the chain.
// The status filter is the server's too (min_status, max_status). The
// filters asked are kept in the URL.
import { useState } from 'preact/hooks';
import { call, fmtTime } from './api.js';
import { useLoad } from './hooks.js';

const audit = (verb, body) => call('audit', verb, body);
const FIELDS = [['principal', 'Principal'], ['svc', 'Service'], ['verb', 'Verb'], ['object', 'Object']];
const ms = (local) => (local ? new Date(local).getTime() : undefined);

const KEYS = ['principal', 'svc', 'verb', 'object', 'since', 'until', 'status', 'max'];
const fromUrl = () => {
  const u = new URLSearchParams(location.search);
  const f = { principal: '', svc: '', verb: '', object: '', since: '', until: '', status: '', max: '100' };
  for (const k of KEYS) if (u.get(k)) f[k] = u.get(k);
  return f;
};
// The query asked is kept in the URL (a link to it, the back button).
function toUrl(q) {
  const u = new URLSearchParams();
  for (const k of KEYS) if (q[k] && !(k === 'max' && q[k] === '100')) u.set(k, q[k]);
  const url = '/audit' + (u.size ? '?' + u : '');
  if (url !== location.pathname + location.search) history.replaceState(null, '', url);
}

export function Audit() {
  const [form, setForm] = useState(fromUrl);
  const [q, setQ] = useState(form); // the query asked
  const [tokens, setTokens] = useState(['']); // the page tokens walked: the last is this page's
  const [verdict, setVerdict] = useState(null);
  const tok = tokens[tokens.length - 1];
  const page = useLoad(() => {
    const body = { max_results: Number(q.max) || 100 };
    for (const [k] of FIELDS) if (q[k].trim()) body[k] = q[k].trim();
    if (q.since) body.since = ms(q.since);
    if (q.until) body.until = ms(q.until);
    if (q.status === 'ok') body.max_status = 399; // '' all, 'ok' below 400, 'refused' 400 and above
    if (q.status === 'refused') body.min_status = 400;
    if (tok) body.page_token = tok;
    return audit('query', body);
  }, [q, tok]);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const search = (e) => {
    e.preventDefault();
    setQ({ ...form });
    setTokens(['']);
    toUrl(form);
  };
  // the status asks at once (the other fields wait for Search)
  const pickStatus = (status) => {
    const f = { ...form, status };
    setForm(f);
    setQ(f);
    setTokens(['']);
    toUrl(f);
  };
  const verify = () => {
    setVerdict({ busy: true });
    audit('verify', {}).then((v) => setVerdict(v), (e) => setVerdict({ error: e.message }));
  };
  const recs = page.data?.records || [];
  return (
    <section class="audit">
      <h1>Audit trail</h1>
      <form class="toolbar" onSubmit={search} aria-label="Audit filters">
        {FIELDS.map(([k, label]) => (
          <label key={k}>{label} <input value={form[k]} onInput={set(k)} size="12" /></label>
        ))}
        <label>Since <input type="datetime-local" value={form.since} onInput={set('since')} /></label>
        <label>Until <input type="datetime-local" value={form.until} onInput={set('until')} /></label>
        <label>Per page <select value={form.max} onChange={set('max')}>{['5', '20', '100', '1000'].map((n) => <option key={n}>{n}</option>)}</select></label>
        <button type="submit">Search</button>
        <label>Status <select aria-label="Status" value={form.status} onChange={(e) => pickStatus(e.target.value)}>
          <option value="">all</option><option value="ok">below 400</option><option value="refused">400 and above</option>
        </select></label>
      </form>
      <p class="toolbar">
        <button onClick={verify} disabled={verdict?.busy}>Verify</button>
        {verdict && !verdict.busy && (
          <span data-testid="verdict" class={verdict.ok ? 'status Completed' : 'status Failed'} role="status">
            {verdict.error ? verdict.error : verdict.ok ? `ok: the chain of ${verdict.records} records holds` : `broken at record ${verdict.first_bad_seq} (${verdict.records} checked)`}
          </span>
        )}
      </p>
      {page.error && <p class="error" role="alert">{page.error}</p>}
      <table class="plain" data-testid="audit" aria-busy={!page.data}>
        <thead>
          <tr>{['seq', 'time', 'principal', 'workspace', 'service', 'verb', 'object', 'status'].map((h) => <th scope="col" key={h}>{h}</th>)}</tr>
        </thead>
        <tbody>
          {recs.map((r) => (
            <tr key={r.seq} data-seq={r.seq}>
              <td class="num">{r.seq}</td>
              <td>{fmtTime(r.time)}</td>
              <td>{r.principal}</td>
              <td>{r.ws}</td>
              <td>{r.svc}</td>
              <td>{r.verb}</td>
              <td>{r.object}</td>
              <td class={'num' + (r.status >= 400 ? ' error' : '')}>{r.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.data && !recs.length && <p class="muted">No records.</p>}
      <p class="toolbar">
        <button disabled={tokens.length < 2} onClick={() => setTokens(tokens.slice(0, -1))}>Previous page</button>
        <button disabled={!page.data?.next_page_token} onClick={() => setTokens([...tokens, page.data.next_page_token])}>Next page</button>
        <span class="muted">page {tokens.length}</span>
      </p>
    </section>
  );
}
