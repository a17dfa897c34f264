// Cairn Studio: the app's frame (header, login) and its routes.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, onUnauthorized, token, workspace } from './api.js';
import { go, Link, useLocation } from './router.jsx';
import { Experiments } from './experiments.jsx';
import { Runs } from './runs.jsx';
import { Run } from './run.jsx';
import { Compare } from './compare.jsx';
import { Model, Models } from './models.jsx';
import { Endpoint, Endpoints } from './endpoints.jsx';
import { Job, Jobs } from './jobs.jsx';
import { Audit } from './audit.jsx';
import 'uplot/dist/uPlot.min.css';
import './style.css';

function Login({ done }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [tok, setTok] = useState('');
  const [error, setError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    setError('');
    try {
      token.set(tok || (await call('auth', 'login', { user, password })).token);
      done();
    } catch (err) {
      setError(err.message);
    }
  };
  return (
    <form class="login" onSubmit={submit} aria-labelledby="login-h">
      <h2 id="login-h">Log in</h2>
      <label>User <input value={user} onInput={(e) => setUser(e.target.value)} autocomplete="username" /></label>
      <label>Password <input type="password" value={password} onInput={(e) => setPassword(e.target.value)} autocomplete="current-password" /></label>
      <label>or a token <input value={tok} onInput={(e) => setTok(e.target.value)} /></label>
      <button type="submit">Log in</button>
      {error && <p class="error" role="alert">{error}</p>}
    </form>
  );
}

// The workspaces the caller may pick: every one for an admin
// (list_workspaces), else those of the caller's role assignments (whoami);
// shown when there is more than the default. A pick is kept in the browser
// and sent as the cairn-workspace header; the app starts again at /.
async function workspaceNames() {
  // only where security runs (sys.health is public and names the services)
  const health = await call('sys', 'health').catch(() => ({}));
  if (!(health.plugins || []).some((p) => p.name === 'auth')) return [];
  try {
    return (await call('auth', 'list_workspaces')).workspaces.map((w) => w.name);
  } catch {
    try {
      return (await call('auth', 'whoami')).assignments.map((a) => a.ws).filter((w) => w && !w.includes('*'));
    } catch {
      return [];
    }
  }
}

function WorkspaceSwitcher({ changed }) {
  const [names, setNames] = useState([]);
  useEffect(() => void workspaceNames().then(setNames), []);
  const cur = workspace.get() || 'default';
  const all = [...new Set(['default', ...names, cur])];
  if (all.length < 2) return null;
  const pick = (w) => {
    workspace.set(w === 'default' ? '' : w);
    go('/');
    changed();
  };
  return (
    <label class="workspace">
      Workspace{' '}
      <select value={cur} onChange={(e) => pick(e.target.value)} data-testid="workspace">
        {all.map((w) => <option key={w}>{w}</option>)}
      </select>
    </label>
  );
}

function route(loc) {
  const [path, query] = loc.split('?');
  const q = new URLSearchParams(query || '');
  let m;
  if ((m = path.match(/^\/experiments\/([^/]+)$/))) return <Runs key={m[1]} experimentId={decodeURIComponent(m[1])} />;
  if ((m = path.match(/^\/runs\/([^/]+)$/))) return <Run key={m[1]} runId={decodeURIComponent(m[1])} />;
  if (path === '/compare') return <Compare runIds={(q.get('runs') || '').split(',').filter(Boolean)} initialMetric={q.get('metric') || ''} />;
  if (path === '/' || path === '/experiments') return <Experiments />;
  if (path === '/models') return <Models />;
  if (path === '/endpoints') return <Endpoints />;
  if (path === '/jobs') return <Jobs />;
  if (path === '/audit') return <Audit />;
  if ((m = path.match(/^\/jobs\/([^/]+)$/))) return <Job key={m[1]} name={decodeURIComponent(m[1])} />;
  if ((m = path.match(/^\/endpoints\/([^/]+)$/))) return <Endpoint key={m[1]} name={decodeURIComponent(m[1])} />;
  if ((m = path.match(/^\/models\/([^/]+)$/))) return <Model key={m[1]} name={decodeURIComponent(m[1])} />;
  return <p role="alert">No page at {path}. <Link href="/">Experiments</Link></p>;
}

function App() {
  const loc = useLocation();
  const [login, setLogin] = useState(false);
  const [gen, setGen] = useState(0); // redraws the page after a login
  useEffect(() => onUnauthorized(() => setLogin(true)), []);
  return (
    <>
      <header>
        <Link href="/" class="brand">Cairn Studio</Link>
        <nav aria-label="Main">
          <Link href="/">Experiments</Link>
          <Link href="/models">Models</Link>
          <Link href="/endpoints">Endpoints</Link>
          <Link href="/jobs">Jobs</Link>
          <Link href="/audit">Audit</Link>
        </nav>
        <WorkspaceSwitcher key={gen} changed={() => setGen(gen + 1)} />
        {token.get() && <button class="link" onClick={() => (token.set(''), workspace.set(''), setGen(gen + 1))}>Log out</button>}
      </header>
      <main key={gen}>{login ? <Login done={() => (setLogin(false), setGen(gen + 1))} /> : route(loc)}</main>
    </>
  );
}

render(<App />, document.getElementById('app'));
