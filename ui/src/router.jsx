// Routes are paths (the gateway answers index.html for any path of the app):
// pushState, and a popstate listener that redraws.
import { useEffect, useState } from 'preact/hooks';

const here = () => location.pathname + location.search;

export function useLocation() {
  const [loc, setLoc] = useState(here());
  useEffect(() => {
    const f = () => setLoc(here());
    addEventListener('popstate', f);
    return () => removeEventListener('popstate', f);
  }, []);
  return loc;
}

export function go(url, replace = false) {
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function Link({ href, children, ...rest }) {
  const click = (e) => {
    if (e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    go(href);
  };
  return (
    <a href={href} onClick={click} {...rest}>
      {children}
    </a>
  );
}
