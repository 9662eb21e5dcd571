#!/usr/bin/env bash
# The playground's third-party files (GraphiQL, React, ReactDOM) come from npm
# packages pinned, with their integrity hashes, in assets/SOURCES.json. This
# script downloads those exact tarballs with npm and:
#
#   refresh.sh                 writes the files listed there into assets/ and
#                              records each file's size and SHA-256;
#   refresh.sh NAME@VERSION…   moves those packages to other exact versions
#                              first, pinning the new tarballs' integrity;
#   refresh.sh --check         changes nothing and fails unless every tarball
#                              has its pinned integrity and every committed file
#                              is byte for byte the one in it (CI runs this).
#
# Only the files listed in SOURCES.json are kept; anything else in their
# folders is removed (refresh) or reported (check). It needs node and npm, and
# npm's registry; it never runs a package's scripts.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
for tool in node npm tar; do
  command -v "$tool" >/dev/null || { echo "refresh.sh: $tool is needed" >&2; exit 1; }
done

exec node - "$here/assets" "$@" <<'JS'
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

const [assets, ...args] = process.argv.slice(2);
const check = args.includes('--check');
const bumps = args.filter((a) => a !== '--check');
if (check && bumps.length > 0) die('--check takes no NAME@VERSION');

const manifestPath = path.join(assets, 'SOURCES.json');
const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));

function die(msg) {
  console.error('refresh.sh: ' + msg);
  process.exit(1);
}
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const sri = (b) => 'sha512-' + crypto.createHash('sha512').update(b).digest('base64');

for (const spec of bumps) {
  const at = spec.lastIndexOf('@');
  const name = spec.slice(0, at);
  const version = spec.slice(at + 1);
  const pkg = manifest.packages.find((p) => p.name === name);
  if (at <= 0 || !pkg) die(`${spec}: want NAME@VERSION of a package in SOURCES.json`);
  if (!/^\d+\.\d+\.\d+$/.test(version)) die(`${spec}: pin an exact version, such as 1.2.3`);
  if (pkg.version !== version) {
    pkg.version = version;
    delete pkg.integrity; // pinned again below, from the new tarball
  }
}

const problems = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keyplane-playground-'));
try {
  for (const pkg of manifest.packages) {
    const id = `${pkg.name}@${pkg.version}`;
    const dir = path.join(tmp, pkg.name.replace(/\//g, '+'));
    fs.mkdirSync(dir);
    const out = execFileSync(
      'npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir, id],
      { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const info = JSON.parse(out)[0];
    const tarball = fs.readFileSync(path.join(dir, info.filename));
    const integrity = sri(tarball);
    if (integrity !== info.integrity) die(`${id}: the tarball hashes to ${integrity}, npm says ${info.integrity}`);
    if (check && !pkg.integrity) {
      problems.push(`${id}: SOURCES.json pins no integrity`);
    } else if (pkg.integrity && pkg.integrity !== integrity) {
      problems.push(`${id}: the tarball's integrity is ${integrity}, SOURCES.json pins ${pkg.integrity}`);
      continue;
    }
    pkg.integrity = integrity;

    execFileSync('tar', ['-xzf', path.join(dir, info.filename), '-C', dir]);
    for (const f of pkg.files) {
      const want = fs.readFileSync(path.join(dir, f.from));
      const dst = path.join(assets, f.to);
      if (!check) {
        fs.mkdirSync(path.dirname(dst), { recursive: true });
        fs.writeFileSync(dst, want);
        f.size = want.length;
        f.sha256 = sha256(want);
        continue;
      }
      if (f.size !== want.length || f.sha256 !== sha256(want)) {
        problems.push(`${f.to}: SOURCES.json's size or sha256 are not those of ${f.from} in ${id}`);
      }
      if (!fs.existsSync(dst)) {
        problems.push(`${f.to}: missing`);
      } else if (!fs.readFileSync(dst).equals(want)) {
        problems.push(`${f.to}: differs from ${f.from} in ${id}`);
      }
    }
  }

  // The folders of the listed files hold nothing else.
  const listed = new Set(manifest.packages.flatMap((p) => p.files.map((f) => f.to)));
  const folders = new Set([...listed].map((to) => to.split('/')[0]));
  const walk = (rel) => {
    const abs = path.join(assets, rel);
    if (!fs.existsSync(abs)) return;
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const child = rel + '/' + e.name;
      if (e.isDirectory()) walk(child);
      else if (!listed.has(child)) {
        if (check) problems.push(`${child}: not listed in SOURCES.json`);
        else fs.unlinkSync(path.join(assets, child));
      }
    }
  };
  for (const folder of folders) walk(folder);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const p of problems) console.error('refresh.sh: ' + p);
  die(check ? 'the committed files do not match the pinned versions (above)'
    : 'nothing written to SOURCES.json');
}
for (const pkg of manifest.packages) {
  const bytes = pkg.files.reduce((n, f) => n + f.size, 0);
  console.log(`${check ? 'ok' : 'wrote'}  ${pkg.name}@${pkg.version}  ${pkg.integrity}  ${pkg.files.length} files, ${bytes} bytes`);
}
if (!check) {
  manifest.packages = manifest.packages.map(({ name, version, integrity, license, files }) =>
    ({ name, version, integrity, license, files }));
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
}
JS
