// The dashboard in a real headless Chromium (the distribution's /usr/bin/chromium, driven by
// playwright-core): it loads, shows the running job, its graph and its checkpoints, and a
// savepoint triggered from the page completes; the checkpoint, stop-with-savepoint and cancel
// buttons act on the job. Every wait is for an event (the page's status line, an element, the
// process's exit), never a sleep.
//
// Runs the `weir` binary built by `cargo test --workspace` (target/debug/weir, or $WEIR_BIN) on a
// job file written here. With $SCREENSHOT=path it also saves a screenshot of the page there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const weirBin = process.env.WEIR_BIN || join(root, 'target/debug/weir');
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 60_000;

/// Starts `weir run` on a rate-limited counting job; resolves once it prints its REST address
/// and says the job is RUNNING.
function startWeir(dir) {
  const job = join(dir, 'browser-test.yaml');
  writeFileSync(job, `
name: browser-test
config:
  execution.checkpointing.interval: 300 ms
  execution.checkpointing.dir: ${dir}/checkpoints
  execution.checkpointing.savepoint-dir: ${dir}/savepoints
  parallelism.default: 2
  rest.port: 0
pipeline:
  - source: sequence
    uid: numbers
    to: 1000000000
    rate: 5000
  - operator: count
    uid: counts
    key-by: value
  - sink: discard
    uid: sink
`);
  const child = spawn(weirBin, ['run', job], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  // Once the job has ended and its operation results were fetched, `weir run` exits by itself.
  const exited = new Promise((r) => child.once('close', (code) => r({ code, out })));
  const ready = new Promise((resolveReady, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const addr = out.match(/REST API listening on (http:\/\/\S+)/);
      if (addr && /Job [0-9a-f]{32} is RUNNING/.test(out)) resolveReady(addr[1]);
    });
    child.on('exit', (code) => reject(new Error(`weir exited (${code}) before the job ran:\n${out}\n${err}`)));
  });
  return { child, ready, exited };
}

/// Runs `body(page, dir, weir)` against the dashboard of a fresh `weir run`, in a fresh Chromium
/// profile; asserts the page had no script errors; ends Chromium and `weir` whatever happens.
async function withDashboard(body) {
  assert.ok(existsSync(weirBin), `${weirBin} is missing: run cargo build (or cargo test) first`);
  assert.ok(existsSync(chromiumBin), `${chromiumBin} is missing: apt-get install chromium`);
  const dir = mkdtempSync(join(tmpdir(), 'weir-browser-'));
  const profile = mkdtempSync(join(tmpdir(), 'weir-chromium-'));
  const weir = startWeir(dir);
  let browser;
  try {
    const url = await weir.ready;
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumBin,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    const page = browser.pages()[0] || await browser.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url + '/');
    await body(page, dir, weir);
    assert.deepEqual(errors, [], 'no script errors on the page');
  } finally {
    if (browser) await browser.close();
    if (weir.child.exitCode === null && weir.child.signalCode === null) {
      weir.child.kill('SIGTERM'); // weir cancels the job and exits
    }
    await weir.exited;
    rmSync(profile, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/// Clicks `button` and waits for the operation's result on the page's status line.
async function operate(page, button) {
  await page.click(button);
  const status = page.locator('#op-status:is([data-state="completed"], [data-state="failed"])');
  await status.waitFor();
  const text = await status.textContent();
  assert.equal(await status.getAttribute('data-state'), 'completed', text);
  return text;
}

test('the dashboard shows the running job and its checkpoints, and takes a savepoint', { timeout: 120_000 }, async () => {
  await withDashboard(async (page, dir) => {
    // The job is listed as RUNNING and selected.
    const row = page.locator('#jobs tbody tr', { hasText: 'browser-test' });
    await row.locator('.badge', { hasText: 'RUNNING' }).waitFor();
    await page.locator('#job-state', { hasText: 'RUNNING' }).waitFor();
    // The job graph: one node per operator, with parallelism.
    for (const uid of ['numbers', 'counts', 'sink']) {
      await page.locator(`#graph g.node[data-uid="${uid}"]`, { hasText: '×2' }).waitFor();
    }
    // Its checkpoints: completed ones counted and listed in the history.
    await page.waitForFunction(() => Number(document.querySelector('[data-count="completed"] b')?.textContent) >= 1);
    await page.locator('#history tbody tr .badge', { hasText: 'COMPLETED' }).first().waitFor();
    assert.notEqual(await page.locator('#latest-completed').textContent(), 'none');

    // A savepoint from the page, awaited through the page's status line.
    const text = await operate(page, '#btn-savepoint');
    const location = text.replace(/^Savepoint completed: /, '');
    assert.ok(location.startsWith(join(dir, 'savepoints')), text);
    assert.ok(existsSync(join(location, '_metadata')), `${location}/_metadata`);
    // The statistics list it too, once the page has refreshed.
    await page.locator('#history tbody tr', { hasText: 'SAVEPOINT' }).first().waitFor();

    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  });
});

test('the checkpoint and stop-with-savepoint buttons act on the job', { timeout: 120_000 }, async () => {
  await withDashboard(async (page, dir, weir) => {
    await page.locator('#job-state', { hasText: 'RUNNING' }).waitFor();
    const checkpoint = await operate(page, '#btn-checkpoint');
    assert.match(checkpoint, /^Checkpoint completed: checkpoint \d+$/);
    const stop = await operate(page, '#btn-stop');
    const location = stop.replace(/^Stop with savepoint completed: /, '');
    assert.ok(location.startsWith(join(dir, 'savepoints')), stop);
    assert.ok(existsSync(join(location, '_metadata')), stop);
    // The job ends FINISHED, and `weir run` with it (the page has fetched the result).
    const { code, out } = await weir.exited;
    assert.match(out, /Job [0-9a-f]{32} FINISHED/);
    assert.equal(code, 0, out);
  });
});

test('the cancel button cancels the job', { timeout: 120_000 }, async () => {
  await withDashboard(async (page, _dir, weir) => {
    await page.locator('#job-state', { hasText: 'RUNNING' }).waitFor();
    assert.equal(await operate(page, '#btn-cancel'), 'Cancel requested');
    const { code, out } = await weir.exited;
    assert.match(out, /Job [0-9a-f]{32} CANCELED/);
    assert.equal(code, 3, `exit code 3 is CANCELED: ${out}`);
  });
});
