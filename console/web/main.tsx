import { render } from 'preact';
import { App } from './app.js';
import './styles.css';

const root = document.getElementById('app')!;
// The "Loading…" placeholder of index.html goes; the app takes its place.
root.replaceChildren();
render(<App />, root);
