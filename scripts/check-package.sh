#!/usr/bin/env bash
# Checks the package as a user gets it from the registry (issue 15 item 1):
#  1. `npm pack` (which runs the `prepack` build) ships dist/, LICENSE and the bin;
#  2. no published declaration file imports `ssh2` (a consumer has no @types/ssh2);
#  3. the tarball installs into a fresh temp project (outside this repo, so nothing resolves
#     to our node_modules) and is imported as ESM and as CJS;
#  4. that project type-checks against it with `strict` and `skipLibCheck: false`, under
#     `moduleResolution: nodenext` (.mts and .cts) and under `node10` (CJS, typesVersions);
#  5. the linked bin runs: `ssh-tether --version` prints the package version, `--help` works;
#  6. @arethetypeswrong/cli and publint on the packed package.
# Needs the registry for the consumer's dependencies (ssh2, zod...). Run from anywhere.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ssh-tether-pack.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
TSC="$ROOT/node_modules/typescript/bin/tsc"
VERSION="$(node -p "require('./package.json').version")"
NODE_TYPES="$(node -p "require('./package.json').devDependencies['@types/node']")"
PROM="$(node -p "require('./package.json').devDependencies['prom-client']")"

echo "== npm pack (runs prepack: the build)"
npm pack --silent --pack-destination "$TMP" >"$TMP/pack.out"
TARBALL="$TMP/$(tail -n 1 "$TMP/pack.out")"
[ -f "$TARBALL" ] || { echo "npm pack produced no tarball ($TARBALL)"; exit 1; }
tar -tzf "$TARBALL" >"$TMP/files"
for f in package/LICENSE package/package.json package/dist/index.js package/dist/index.cjs \
  package/dist/index.d.ts package/dist/index.d.cts package/dist/prometheus.js package/dist/prometheus.cjs \
  package/dist/prometheus.d.ts package/dist/prometheus.d.cts package/dist/cli.js; do
  grep -qx "$f" "$TMP/files" || { echo "missing from the tarball: $f"; exit 1; }
done
echo "tarball $(basename "$TARBALL"): $(wc -l <"$TMP/files") files"

echo "== declarations do not import ssh2"
mkdir "$TMP/unpacked"
tar -xzf "$TARBALL" -C "$TMP/unpacked"
if grep -nE "(from|import|require\() *['\"]ssh2['\"]|import\(['\"]ssh2['\"]\)" "$TMP"/unpacked/package/dist/*.d.ts "$TMP"/unpacked/package/dist/*.d.cts; then
  echo "a published declaration file imports ssh2 (consumers have no @types/ssh2)"
  exit 1
fi

echo "== install the tarball into a temp project"
APP="$TMP/app"
mkdir -p "$APP/src"
cat >"$APP/package.json" <<'JSON'
{ "name": "ssh-tether-consumer", "version": "1.0.0", "private": true, "type": "module" }
JSON
(cd "$APP" && npm install --silent --no-audit --no-fund --ignore-scripts "$TARBALL" "@types/node@$NODE_TYPES" "prom-client@$PROM")
if [ -e "$APP/node_modules/@types/ssh2" ]; then
  echo "the consumer project got @types/ssh2: the check would prove nothing"
  exit 1
fi

cat >"$APP/src/esm.mts" <<'TS'
import { SshClient, SshError, quoteArgv, DEFAULTS, type ExecResult, type SshErrorCode } from 'ssh-tether';
import { registerMetrics, METRIC_NAMES } from 'ssh-tether/prometheus';
import { Registry } from 'prom-client';

const client = new SshClient({ host: 'example.invalid', sshConfig: false, reconnect: false });
const code: SshErrorCode = 'ERR_SSH_CLOSED';
const run = async (): Promise<ExecResult<string> | undefined> => (client.state === 'idle' ? undefined : client.exec(['true']));
const stop = registerMetrics(client, { registry: new Registry() });
stop();
if (typeof SshError !== 'function' || quoteArgv(['a b']) !== "'a b'" || typeof run !== 'function') process.exit(1);
if (!METRIC_NAMES.length || typeof DEFAULTS !== 'object' || code !== 'ERR_SSH_CLOSED') process.exit(1);
await client.close();
console.log('ESM import ok');
TS
cat >"$APP/src/cjs.cts" <<'TS'
import tether = require('ssh-tether');
import prometheus = require('ssh-tether/prometheus');

const client = new tether.SshClient({ host: 'example.invalid', sshConfig: false, reconnect: false });
const err: tether.SshError = new tether.SshConfigError('x: bad', { field: 'x' });
if (err.code !== 'ERR_SSH_CONFIG' || typeof prometheus.registerMetrics !== 'function') process.exit(1);
void client.close().then(() => console.log('CJS require ok'));
TS
cat >"$APP/src/legacy.ts" <<'TS'
import { SshClient } from 'ssh-tether';
import { registerMetrics } from 'ssh-tether/prometheus';

export const make = (): SshClient => new SshClient({ host: 'example.invalid' });
export const metrics: typeof registerMetrics = registerMetrics;
TS
cat >"$APP/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "lib": ["ES2023", "ESNext.Disposable"], "types": ["node"],
    "module": "nodenext", "moduleResolution": "nodenext",
    "strict": true, "exactOptionalPropertyTypes": true, "skipLibCheck": false,
    "outDir": "out", "rootDir": "src"
  },
  "files": ["src/esm.mts", "src/cjs.cts"]
}
JSON
cat >"$APP/tsconfig.node10.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "lib": ["ES2023", "ESNext.Disposable"], "types": ["node"],
    "module": "commonjs", "moduleResolution": "node10", "ignoreDeprecations": "6.0",
    "strict": true, "skipLibCheck": false, "esModuleInterop": true, "noEmit": true
  },
  "files": ["src/legacy.ts"]
}
JSON

echo "== type-check (nodenext: ESM + CJS; strict, skipLibCheck false) and run"
(cd "$APP" && node "$TSC" -p tsconfig.json)
(cd "$APP" && node out/esm.mjs && node out/cjs.cjs)
echo "== type-check (node10, CJS: typesVersions for ssh-tether/prometheus)"
(cd "$APP" && node "$TSC" -p tsconfig.node10.json)

echo "== the bin"
BIN="$APP/node_modules/.bin/ssh-tether"
[ -x "$BIN" ] || { echo "no executable bin at $BIN"; exit 1; }
got="$("$BIN" --version)"
[ "$got" = "$VERSION" ] || { echo "ssh-tether --version printed '$got', expected '$VERSION'"; exit 1; }
"$BIN" --help | grep -q "Usage: ssh-tether" || { echo "ssh-tether --help did not print the usage"; exit 1; }
echo "bin ok: ssh-tether $got"

echo "== @arethetypeswrong/cli and publint on the tarball"
npx --no-install attw "$TARBALL"
npx --no-install publint "$TMP/unpacked/package" --strict
echo "== package check passed"
