// Live updates: the gateway's server-sent events (GET /api/v1/events,
// docs/GATEWAY.md) for some runs and jobs. Read with fetch, not
// EventSource, which cannot send the bearer token; a stream that ends or
// fails is opened again after the server's `retry` (the gateway ends every
// stream when credentials change, so each reconnection is checked afresh).
import { useEffect, useRef, useState } from 'preact/hooks';
import { authHeaders } from './api.js';

const MAX_SUBJECTS = 100; // the gateway's bound

// Parse one SSE block ("event: x\ndata: {...}") into [type, data].
function parseBlock(block) {
  let type = 'message', data = '', retry = 0;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue; // a keep-alive comment
    const i = line.indexOf(':');
    const name = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (name === 'event') type = value;
    else if (name === 'data') data += (data ? '\n' : '') + value;
    else if (name === 'retry') retry = Number(value) || 0;
  }
  return { type, data, retry };
}

// Stream the events of runs and jobs into onEvent(type, body) until
// signal aborts; resolves then. onState(s): 'open' | 'closed' | an error.
export async function streamEvents({ runs = [], jobs = [] }, onEvent, signal, onState) {
  const q = new URLSearchParams();
  runs.slice(0, MAX_SUBJECTS).forEach((r) => q.append('run', r));
  jobs.slice(0, MAX_SUBJECTS - Math.min(runs.length, MAX_SUBJECTS)).forEach((j) => q.append('job', j));
  if (![...q.keys()].length) return;
  let wait = 3000;
  while (!signal.aborted) {
    try {
      const r = await fetch(`/api/v1/events?${q}`, { headers: authHeaders(), signal });
      if (!r.ok) {
        const j = await r.json().catch(() => ({}));
        onState?.(j.error || `${r.status} ${r.statusText}`);
        if (r.status === 404 || r.status === 403 || r.status === 400) return; // asking again won't help
      } else {
        onState?.('open');
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const ev = parseBlock(buf.slice(0, end));
            buf = buf.slice(end + 2);
            if (ev.retry) wait = ev.retry;
            if (ev.data) {
              let body = null;
              try {
                body = JSON.parse(ev.data);
              } catch {
                continue;
              }
              onEvent(ev.type, body);
            }
          }
        }
        onState?.('closed');
      }
    } catch (e) {
      if (signal.aborted) return;
      onState?.(e.message);
    }
    await new Promise((res) => {
      const t = setTimeout(res, wait);
      signal.addEventListener('abort', () => (clearTimeout(t), res()), { once: true });
    });
  }
}

// A hook: events of runs/jobs (their ids joined as the dependency) while
// the component is shown and `on` holds; fn sees the latest closure.
export function useEvents({ runs = [], jobs = [] }, fn, on = true) {
  const f = useRef(fn);
  f.current = fn;
  const key = runs.join(',') + '|' + jobs.join(',');
  useEffect(() => {
    if (!on || (!runs.length && !jobs.length)) return;
    const ctl = new AbortController();
    streamEvents({ runs, jobs }, (t, b) => f.current(t, b), ctl.signal, (s) => f.current('state', s));
    return () => ctl.abort();
  }, [key, on]);
}

const LIVE_MS = 1000; // a burst of metrics events asks again at most this often

// The live state of some runs: tick grows (at most once a second) when
// metrics are logged to them, and onStatus(body) hears each status change
// at once; state: 'open', 'closed' or why the stream failed ('' before).
export function useLiveRuns(runIds, onStatus) {
  const [tick, setTick] = useState(0);
  const [state, setState] = useState('');
  const t = useRef({ at: 0, timer: 0 });
  useEffect(() => () => clearTimeout(t.current.timer), []);
  const soon = () => {
    const a = t.current;
    if (a.timer) return;
    a.timer = setTimeout(() => ((a.timer = 0), (a.at = Date.now()), setTick((n) => n + 1)), Math.max(0, a.at + LIVE_MS - Date.now()));
  };
  useEvents({ runs: runIds }, (type, body) => {
    if (type === 'state') setState(body);
    else if (type === 'run.metrics') soon();
    else if (type === 'run.status') (soon(), onStatus?.(body));
  });
  return { tick, state };
}
