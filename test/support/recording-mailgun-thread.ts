// `recordingMailgun` answering every request 200, run in a worker thread (recordingThread in
// pacing.test.ts): it listens on `workerData.port`, says 'listening', then posts each Hit.
import { createServer } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { recordingMailgun } from './recording-mailgun.js';

const { port } = workerData as { port: number };
const server = createServer(
  recordingMailgun(
    () => ({ status: 200 }),
    (hit) => parentPort?.postMessage(hit),
  ),
);
server.listen(port, '127.0.0.1', () => parentPort?.postMessage('listening'));
