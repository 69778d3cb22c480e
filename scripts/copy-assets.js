// Copies what Node-RED loads beside each node set's (and editor plugin's) compiled .js: its editor .html, locales/
// and, for node sets, icons/.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const nodeRed = require(path.join(root, 'package.json'))['node-red'];

function copyBeside(js) {
  const out = path.join(root, path.dirname(js));
  const src = path.join(root, path.relative('dist', path.dirname(js)));
  const set = path.basename(js, '.js');
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(path.join(src, `${set}.html`), path.join(out, `${set}.html`));
  fs.cpSync(path.join(src, 'locales'), path.join(out, 'locales'), { recursive: true });
  return { out, set };
}

for (const js of Object.values(nodeRed.nodes)) {
  const { out, set } = copyBeside(js);
  // Node-RED looks for icons in icons/ beside the set's .js; each bus ships its own.
  fs.mkdirSync(path.join(out, 'icons'), { recursive: true });
  fs.copyFileSync(path.join(root, 'icons', `busbar-${set}.svg`), path.join(out, 'icons', `busbar-${set}.svg`));
}
for (const js of Object.values(nodeRed.plugins ?? {})) copyBeside(js);
