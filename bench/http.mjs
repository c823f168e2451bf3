// One HTTP request on a fresh connection. Reusing idle keep-alive connections races with workerd
// closing them (the request is then lost as ECONNRESET, and a seed or a renewal is not safe to
// simply send again), so the benchmark's own set-up requests never reuse one.
import { request as httpRequest } from 'node:http';

/** Sends `body` (an object is sent as JSON) and resolves with the status and the text of the answer. */
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const allHeaders = payload !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json', ...headers } : headers;
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(url, { method, headers: allHeaders, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        text += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode, text }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

/** A JSON request that must succeed; its parsed answer. */
export async function requestJson(url, options) {
  const { status, text } = await request(url, options);
  if (status < 200 || status >= 300) throw new Error(`${options?.method ?? 'GET'} ${url}: ${status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}
