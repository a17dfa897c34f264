// The gateway's JSON REST (docs/GATEWAY.md): POST /api/v1/SVC/VERB. Every
// list is asked for a page at a time and every history sampled by the
// server: the UI never asks for a whole run list or a whole history.
const TOKEN = 'cairn.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const token = {
  get: () => localStorage.getItem(TOKEN) || '',
  set: (t) => (t ? localStorage.setItem(TOKEN, t) : localStorage.removeItem(TOKEN)),
};

// The workspace the app works in (the gateway's cairn-workspace header);
// '' is the caller's default.
const WORKSPACE = 'cairn.workspace';
export const workspace = {
  get: () => localStorage.getItem(WORKSPACE) || '',
  set: (w) => (w ? localStorage.setItem(WORKSPACE, w) : localStorage.removeItem(WORKSPACE)),
};

// The caller's headers: the token and the workspace.
export function authHeaders() {
  const h = {};
  if (token.get()) h.Authorization = 'Bearer ' + token.get();
  if (workspace.get()) h['cairn-workspace'] = workspace.get();
  return h;
}

// Listeners told when the gateway asks for credentials (the login form).
const unauthorized = new Set();
export const onUnauthorized = (fn) => (unauthorized.add(fn), () => unauthorized.delete(fn));

export async function call(svc, verb, body = {}, signal) {
  const headers = { 'Content-Type': 'application/json', ...authHeaders() };
  const r = await fetch(`/api/v1/${svc}/${verb}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal,
  });
  const j = await r.json().catch(() => ({}));
  if (r.status === 401) unauthorized.forEach((fn) => fn());
  if (!r.ok) throw new ApiError(r.status, j.code || '', j.error || r.statusText);
  return j;
}

export const tracking = (verb, body, signal) => call('tracking', verb, body, signal);

// A filter or order_by name: metrics.KEY, quoted with backticks unless plain.
export const field = (kind, key) =>
  /^[A-Za-z_][A-Za-z0-9_.]*$/.test(key) ? `${kind}.${key}` : `${kind}.\`${key}\``;

// [{key, value}] -> {key: value}
export const kv = (list) => Object.fromEntries((list || []).map((p) => [p.key, p.value]));

export const fmtTime = (ms) => (ms ? new Date(Number(ms)).toLocaleString() : '');
export function fmtDuration(info) {
  const a = Number(info.start_time), b = Number(info.end_time) || (info.status === 'RUNNING' ? Date.now() : 0);
  if (!a || !b || b < a) return '';
  const s = (b - a) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}
export const fmtNum = (v) =>
  v === undefined || v === null ? '' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(5)) : String(v);

export const registry = (verb, body, signal) => call('registry', verb, body, signal);
export const endpoints = (verb, body, signal) => call('endpoints', verb, body, signal);
export const jobs = (verb, body, signal) => call('jobs', verb, body, signal);

// A filter's quoted value: 'it''s' (the registry's and tracking's syntax).
export const quote = (s) => `'${String(s).replace(/'/g, "''")}'`;
