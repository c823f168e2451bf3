import { env } from 'cloudflare:workers';
import { afterEach, beforeAll } from 'vitest';
import schema from '../schema.sql?raw';
import { testClock } from '../src/clock';

// schema.sql is applied to the test D1 exactly as `npm start` and the deploy step apply it.
beforeAll(async () => {
  const statements = schema
    .replace(/--.*$/gm, '')
    .split(';')
    .map((statement) => statement.trim())
    .filter(Boolean);
  await env.DB.batch(statements.map((statement) => env.DB.prepare(statement)));
});

afterEach(() => {
  testClock.reset();
});
