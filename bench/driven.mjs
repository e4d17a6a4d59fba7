// How the harness drives a Node client process: each line "report" on stdin calls `report`;
// the end of stdin or SIGTERM calls `stop`. Shared by bench/loadgen.mjs and the cluster
// test's clients (tests/integration/cluster_clients.mjs).
export function drive({ report, stop }) {
  let pending = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line === "report") report();
    }
  });
  process.stdin.on("end", stop);
  process.on("SIGTERM", stop);
}
