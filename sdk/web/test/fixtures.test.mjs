// The Web SDK's own scenario-shaped fixtures (test/fixtures/*.json), replayed like the shared
// ones, and checks that the runner itself can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { partialMatch, runScenario } from './runner.mjs';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('there are fixtures', () => assert.ok(files.length >= 5));

for (const file of files) {
  test(`fixture ${file}`, () => {
    const sc = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    assert.ok(runScenario(sc) > 0);
  });
}

const load = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));

test('the runner fails on a wrong expectation', () => {
  const sc = load('login_events_logout.json');
  const i = sc.steps.findIndex((s) => 'expect' in s);
  sc.steps[i].expect[0].event.reason = 'LOGINED';
  assert.throws(() => runScenario(sc), /step 1/);
});

test('the runner fails on an extra or a missing output', () => {
  const sc = load('login_events_logout.json');
  const i = sc.steps.findIndex((s) => 'expect' in s);
  sc.steps[i].expect.pop();
  assert.throws(() => runScenario(sc), /expected 1 elements, got 2/);
  const sc2 = load('never_back.json');
  sc2.steps.push({ advance: 1 }, { expect: [{ connect: true }] });
  assert.throws(() => runScenario(sc2), /expected 1 elements, got 0/);
});

test('the runner fails on an unknown step or command', () => {
  assert.throws(() => runScenario({ steps: [{ bogus: 1 }] }), /unknown step/);
  assert.throws(() => runScenario({ steps: [{ do: 'fly' }] }), /unknown command/);
  assert.throws(
    () => runScenario({ steps: [{ do: 'login_room', room: 'r', user: { id: 'u' }, token: 't', handle: 1 }, { recv: { t: 'ok', id: '$last' } }] }),
    /\$last: no such request/,
  );
});

test('partial matching', () => {
  assert.equal(partialMatch({ a: 1 }, { a: 1, b: 2 }), null);
  assert.notEqual(partialMatch({ a: 1, c: 3 }, { a: 1 }), null);
  assert.notEqual(partialMatch([1], [1, 2]), null);
  assert.equal(partialMatch({ x: [{ id: 'a' }] }, { x: [{ id: 'a', name: '' }] }), null);
  assert.notEqual(partialMatch({ x: { y: 1 } }, { x: [1] }), null);
  assert.notEqual(partialMatch(0, '0'), null);
  assert.equal(partialMatch(null, null), null);
  assert.notEqual(partialMatch(null, undefined), null);
});
