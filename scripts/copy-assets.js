// Copies what Node-RED loads beside each node set's compiled .js: its editor .html, locales/ and icons/.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const sets = require(path.join(root, 'package.json'))['node-red'].nodes;
for (const js of Object.values(sets)) {
  const out = path.join(root, path.dirname(js));
  const src = path.join(root, path.relative('dist', path.dirname(js)));
  const set = path.basename(js, '.js');
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(path.join(src, `${set}.html`), path.join(out, `${set}.html`));
  fs.cpSync(path.join(src, 'locales'), path.join(out, 'locales'), { recursive: true });
  // Node-RED looks for icons in icons/ beside the set's .js; each bus ships its own.
  fs.mkdirSync(path.join(out, 'icons'), { recursive: true });
  fs.copyFileSync(path.join(root, 'icons', `busbar-${set}.svg`), path.join(out, 'icons', `busbar-${set}.svg`));
}
