// Runs tests/client/streams_cases.json against relay.js's Streams (node streams_cases.mjs);
// prints one JSON line: {"failures": [...], "cases": N}. tests/client/test_streams.py runs it.
import { readFileSync } from "node:fs";
import { Streams } from "../../server/web/static/relay.js";

const { cases } = JSON.parse(readFileSync(new URL("./streams_cases.json", import.meta.url)));
const failures = [];
for (const [name, steps] of Object.entries(cases)) {
  const streams = new Streams();
  steps.forEach((step, n) => {
    let got;
    if (step.op === "accept") got = streams.accept(step.payload);
    else if (step.op === "answered") got = streams.answered(step.room, step.answer);
    else if (step.op === "since") got = streams.since(step.room);
    else if (step.op === "recovery") got = streams.recovery(step.answer);
    else if (step.op === "connect_streams") got = streams.connectStreams();
    else if (step.op === "subscribed") got = [...streams.subscribed];
    else if (step.op === "subscribe") return streams.subscribe(step.room);
    else if (step.op === "forget") return streams.forget(step.room);
    else throw new Error(`unknown op ${step.op}`);
    if (JSON.stringify(got) !== JSON.stringify(step.expect)) {
      failures.push({ case: name, step: n, expected: step.expect, got: got ?? null });
    }
  });
}
console.log(JSON.stringify({ failures, cases: Object.keys(cases).length }));
