// Replays every shared scenario (../../tests/scenarios/*.json, format in its README.md) through
// the TypeScript core. A file that cannot be replayed is a failing test, not a skipped one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runScenario } from './runner.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dir = join(here, '..', '..', '..', 'tests', 'scenarios');

test('the shared scenario folder exists', () => {
  assert.ok(existsSync(join(dir, 'README.md')), `${dir}/README.md is missing`);
});

const files = existsSync(dir)
  ? readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
  : [];

if (files.length === 0) {
  test('shared scenarios', (t) => t.skip('no tests/scenarios/*.json yet'));
}

for (const file of files) {
  test(`scenario ${file}`, () => {
    const sc = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    assert.ok(Array.isArray(sc.steps), `${file}: no steps`);
    const checked = runScenario(sc);
    assert.ok(checked > 0, `${file}: no expect step`);
  });
}

test('outputs left unchecked after the last step fail a scenario', () => {
  const login = { do: 'login_room', room: 'r1', user: { id: 'u1' }, token: 't', handle: 1 };
  assert.throws(() => runScenario({ name: 'x', steps: [login] }), /left unchecked/);
  const expect = { expect: [{ event: { reason: 'LOGINING' } }, { connect: true }] };
  assert.equal(runScenario({ name: 'x', steps: [login, expect] }), 1);
  const wrong = { recv_text: '{', rejected: 'invalid_field' };
  assert.throws(() => runScenario({ name: 'x', steps: [login, wrong] }), /rejection as malformed/);
});
